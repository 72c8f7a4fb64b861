"""apply.pipelined: batches made on a second thread, handed over in order (no root needed)."""

from __future__ import annotations

import sys
import threading

import pytest

from netlab.kernel.apply import pipelined


def test_every_namespace_in_order_and_the_switch_interval_restored():
    before = sys.getswitchinterval()
    work = {f"ns{i}": [i] * 3 for i in range(500)}
    got = list(pipelined(lambda ns, items: (ns, sum(items)), work, ahead=4))  # type: ignore[arg-type]
    assert got == [(f"ns{i}", 3 * i) for i in range(500)]
    assert sys.getswitchinterval() == before


def test_a_failure_while_encoding_is_raised_to_the_sender():
    def make(ns, items):
        if ns == "ns3":
            raise LookupError("no interface flannel.1 in namespace ns3")
        return ns

    with pytest.raises(LookupError, match="ns3"):
        list(pipelined(make, {f"ns{i}": [] for i in range(10)}))  # type: ignore[arg-type]


def test_a_sender_that_stops_early_stops_the_encoder():
    made = []
    gen = pipelined(lambda ns, items: made.append(ns) or ns, {f"ns{i}": [] for i in range(10_000)}, ahead=2)  # type: ignore[arg-type]
    assert next(gen) == "ns0"
    gen.close()  # what a refused entry does: the for loop is left by an exception
    assert not any(t.name == "netlab-encode" and t.is_alive() for t in threading.enumerate())
    assert len(made) < 10_000
