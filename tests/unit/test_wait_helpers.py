"""The test harness's waiting helpers (tests/helpers.py), no root: a wait returns as soon as its
condition holds, and a wait that times out fails naming what never happened and what it saw last."""

from __future__ import annotations

import itertools
import subprocess
import time
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from tests.helpers import (Capture, link_stats, parse_snmp, pcap_count, wait_for_counter, wait_until)


def counter(start: int = 0, step: int = 1):
    """A reader whose value moves by ``step`` at each read, like a counter under traffic."""
    values = itertools.count(start, step)
    return lambda: next(values)


# ---- wait_until -----------------------------------------------------------------------------------

def test_wait_until_returns_the_first_truthy_value_without_waiting():
    calls = []
    t0 = time.monotonic()
    assert wait_until(lambda: calls.append(1) or {"ok": 1}, timeout=5) == {"ok": 1}
    assert len(calls) == 1 and time.monotonic() - t0 < 0.5


def test_wait_until_polls_until_the_condition_holds():
    read = counter()
    assert wait_until(lambda: (v := read()) >= 3 and v, timeout=5, interval=0.001) == 3


def test_wait_until_times_out_with_what_and_the_last_value():
    t0 = time.monotonic()
    with pytest.raises(AssertionError) as e:
        wait_until(lambda: [], timeout=0.2, interval=0.01, what="the route to 10.244.2.0/24")
    took = time.monotonic() - t0
    assert 0.2 <= took < 2
    msg = str(e.value)
    assert "the route to 10.244.2.0/24" in msg and "0.2s" in msg and "last seen: []" in msg


def test_wait_until_adds_the_state_it_waited_on_at_a_timeout():
    problems = ["BGP session node1 Mesh_10_0_0_13: not Established"]
    with pytest.raises(AssertionError, match="not Established"):
        wait_until(lambda: None, timeout=0.05, interval=0.01, what="the routes withdrawn", detail=lambda: problems)
    # ...and only then: a wait that succeeds never calls it
    assert wait_until(lambda: 1, detail=lambda: 1 / 0) == 1


def test_wait_until_retries_only_the_exceptions_it_is_told_are_not_yet():
    attempts = itertools.count()

    def appears_on_the_third_read() -> str:
        if next(attempts) < 2:
            raise FileNotFoundError("stats.json")
        return "written"

    assert wait_until(appears_on_the_third_read, timeout=5, interval=0.001, retry_on=(OSError,)) == "written"
    # the last "not yet" exception is named when it never stops
    with pytest.raises(AssertionError, match="FileNotFoundError"):
        wait_until(lambda: open("/nonexistent/netlab-test"), timeout=0.05, interval=0.01, retry_on=(OSError,))
    # anything else is a bug, not a timing: at once, as itself
    t0 = time.monotonic()
    with pytest.raises(ZeroDivisionError):
        wait_until(lambda: 1 / 0, timeout=5, retry_on=(OSError,))
    assert time.monotonic() - t0 < 0.5


# ---- wait_for_counter -----------------------------------------------------------------------------

def test_wait_for_counter_moves_from_the_value_it_reads_first():
    assert wait_for_counter(counter(100), 5, timeout=5, interval=0.001) == 105


def test_wait_for_counter_from_a_base_read_before_the_traffic():
    # the traffic was sent between the base read and the wait: already there, no polling
    assert wait_for_counter(lambda: 12, 2, base=10, timeout=5) == 12


def test_wait_for_counter_with_a_predicate_may_end_at_zero():
    values = iter([3, 2, 1, 0, 0])
    assert wait_for_counter(lambda: next(values), lambda v: v == 0, base=3, timeout=5, interval=0.001) == 0


def test_wait_for_counter_times_out_naming_the_counter_and_its_last_value():
    with pytest.raises(AssertionError) as e:
        wait_for_counter(lambda: 7, 1, timeout=0.1, interval=0.01, what="node2 eth0 rx_packets")
    msg = str(e.value)
    assert "node2 eth0 rx_packets" in msg and "moving by 1 from 7" in msg and "last read: 7" in msg


# ---- counters as iproute2 and /proc print them ----------------------------------------------------

IP_J_S_LINK = [{"ifindex": 2, "ifname": "eth0", "flags": ["UP"], "mtu": 1500,
                "stats64": {"rx": {"bytes": 980, "packets": 12, "errors": 0, "dropped": 1},
                            "tx": {"bytes": 640, "packets": 8, "errors": 0, "dropped": 0}}}]


def test_link_stats_reads_ip_j_s_link():
    assert link_stats(IP_J_S_LINK) == 12
    assert link_stats(IP_J_S_LINK, "tx", "bytes") == 640
    assert link_stats(IP_J_S_LINK, "rx", "dropped") == 1
    old = [{"ifname": "eth0", "stats": IP_J_S_LINK[0]["stats64"]}]  # iproute2 without 64-bit stats
    assert link_stats(old, "tx") == 8


SNMP = """Ip: Forwarding DefaultTTL InReceives InHdrErrors
Ip: 1 64 1234 0
Icmp: InMsgs InErrors OutMsgs OutDestUnreachs
Icmp: 5 0 7 2
Udp: InDatagrams NoPorts
Udp: 40 3
"""


def test_parse_snmp_pairs_the_name_and_value_lines():
    t = parse_snmp(SNMP)
    assert t["Ip"] == {"Forwarding": 1, "DefaultTTL": 64, "InReceives": 1234, "InHdrErrors": 0}
    assert t["Icmp"]["OutDestUnreachs"] == 2 and t["Udp"]["NoPorts"] == 3


# ---- Capture waits for packets, not for a fixed time ----------------------------------------------

def pcap_bytes(tmp_path: Path, n: int) -> bytes:
    f = tmp_path / "w.pcap"
    wrpcap(str(f), [Ether() / IP(dst="10.0.0.2") / ICMP() for _ in range(n)])
    return f.read_bytes()


def test_pcap_count_counts_complete_records_only(tmp_path):
    data = pcap_bytes(tmp_path, 3)
    assert pcap_count(data) == 3
    assert pcap_count(data[:-1]) == 2  # the last record is still being written
    assert pcap_count(data[:24]) == 0 and pcap_count(b"") == 0


def fake_capture(path: Path, count: int) -> Capture:
    """A Capture whose 'tcpdump' is a process that never exits by itself: only the packet count
    (or the timeout) can end the wait."""
    cap = Capture.__new__(Capture)
    cap.path, cap.count = path, count
    cap.proc = subprocess.Popen(["sleep", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return cap


def test_capture_returns_once_it_has_its_count(tmp_path):
    f = tmp_path / "c.pcap"
    f.write_bytes(pcap_bytes(tmp_path, 2))
    cap = fake_capture(f, count=2)
    t0 = time.monotonic()
    pkts = cap.packets(timeout=10)
    assert len(pkts) == 2 and time.monotonic() - t0 < 2
    assert cap.proc.returncode is not None  # tcpdump is stopped either way


def test_capture_returns_what_it_has_after_the_timeout(tmp_path):
    f = tmp_path / "c.pcap"
    f.write_bytes(pcap_bytes(tmp_path, 1))
    cap = fake_capture(f, count=4)
    t0 = time.monotonic()
    assert len(cap.packets(timeout=0.3)) == 1  # the caller's assertions say what is missing
    assert 0.3 <= time.monotonic() - t0 < 3
    cap = fake_capture(tmp_path / "none.pcap", count=1)
    assert cap.packets(timeout=0.1) == []
