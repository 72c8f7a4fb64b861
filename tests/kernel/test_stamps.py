"""Receive timestamps are live before a capture starts (the order of a trace's hops rests on them).

The kernel turns timestamps on for everybody only once some socket asks, and the first to ask
waits for a deferred work item (``net_enable_timestamp``); until it has run, packets pass
unstamped and ``recvmsg`` stamps them as they are read. :func:`receive_stamps_live` waits that
out, and every :class:`~netlab.trace.sniff.Sniffer` calls it before handing its sockets over.
"""

from __future__ import annotations

import socket
import struct
import time

import pytest

from netlab.kernel import netns
from netlab.trace.sniff import Sniffer, receive_stamps_live
from tests.helpers import sh, unique_name, wait_until

pytestmark = pytest.mark.kernel


@pytest.fixture
def scratch_ns():
    ns = unique_name("nlstamp")
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield ns
    finally:
        sh("ip", "netns", "del", ns, check=False)


def test_a_frame_sent_the_moment_a_sniffer_opens_is_stamped_as_it_passes(scratch_ns):
    """Three times, a Sniffer opens and one frame goes out on lo at once: both of lo's sightings
    are stamped as they pass, never as they are read.

    Before each opening the test gives the kernel 0.1 s to turn timestamps off again (it does
    that lazily too, once the last socket that asked is closed, and nothing shows when it has).
    Without the wait in the Sniffer, every such opening of 10 came back stamped as read, on
    this 2-core machine with nothing else timestamping; with it, none."""
    with netns.entered(scratch_ns):
        tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    with tx:
        tx.bind(("lo", 0))  # before: a packet socket's bind can wait for an RCU grace period, ~10 ms
        for _ in range(3):
            time.sleep(0.1)
            frames = []
            with Sniffer({scratch_ns: ("h", ["lo"])}) as sniffer:
                assert sniffer.stamped
                t0 = time.time_ns()
                tx.send(bytes(12) + struct.pack("!H", 0x88B6) + bytes(46))
                time.sleep(0.02)  # a stamp made by the reading would be this much later than the send
                wait_until(lambda fs=frames, s=sniffer: fs.extend(s.poll_once(0.1)) or len(fs) >= 2, timeout=5)
            # lo's transmit and its receive: both stamped within 10 ms of the send, not 20 ms later
            seen = [(f.direction, f.stamped_late, t0 <= f.ts_ns < t0 + 10_000_000) for f in frames]
            assert sorted(seen) == [("in", False, True), ("out", False, True)], [(f.ts_ns - t0, f.stamped_late)
                                                                               for f in frames]


def test_no_answer_on_a_down_lo_is_a_quick_false(scratch_ns):
    sh("ip", "-n", scratch_ns, "link", "set", "lo", "down")
    t = time.monotonic()
    assert receive_stamps_live(scratch_ns, timeout=0.5) is False
    assert time.monotonic() - t < 1.5
