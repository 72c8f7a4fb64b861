"""netlab bench's statistics, schedule and analysis on synthetic samples: pure, no root."""

from __future__ import annotations

import pytest

from netlab.bench.iperf import Test, receiver_rate
from netlab.bench.report import analyse
from netlab.bench.runner import schedule
from netlab.bench.stats import drift, human_rate, ratio, summarize


def test_summary_is_min_median_max_and_spread_over_successful_runs():
    s = summarize([10.0, None, 30.0, 20.0])
    assert (s.n, s.min, s.median, s.max) == (3, 10.0, 20.0, 30.0)
    assert s.spread == pytest.approx(1.0)
    assert summarize([None, None]) is None
    assert summarize([]) is None


def test_even_count_median_is_the_mean_of_the_middle_two():
    assert summarize([1.0, 2.0, 3.0, 10.0]).median == 2.5


def test_ratio_uses_medians_and_bounds_by_both_spreads():
    lab, base = summarize([7.0, 8.0, 9.0]), summarize([9.0, 10.0, 11.0])
    r = ratio(lab, base)
    assert r.value == pytest.approx(0.8)
    assert r.low == pytest.approx(7 / 11) and r.high == pytest.approx(1.0)
    assert r.overlaps(0.95, 1.2) and not r.overlaps(1.01, 2)
    assert ratio(lab, None) is None and ratio(None, base) is None
    assert ratio(lab, summarize([0.0])) is None


def test_drift_is_first_to_last_successful_round():
    assert drift([100.0, None, 90.0]) == pytest.approx(-0.1)
    assert drift([100.0]) is None
    assert drift([None, 5.0]) is None


def test_human_rate():
    assert human_rate(16.2e9, "bit/s") == "16.2G"
    assert human_rate(410_000, "pkt/s") == "410k"
    assert human_rate(12.0, "pkt/s") == "12"


def test_schedule_interleaves_targets_and_rotates_each_round():
    slots = schedule(["a", "b", "c"], ["tcp", "udp"], repeat=3, offloads=["on", "off"])
    assert len(slots) == 3 * 2 * 3 * 2
    on = [s for s in slots if s.offload == "on"]
    # round 1: a b c for each test, round 2 starts with b, round 3 with c
    assert [s.target for s in on if s.round == 1 and s.test == "tcp"] == ["a", "b", "c"]
    assert [s.target for s in on if s.round == 2 and s.test == "tcp"] == ["b", "c", "a"]
    assert [s.target for s in on if s.round == 3 and s.test == "udp"] == ["c", "a", "b"]
    # every target is measured once per test per round: no target runs N times in a row
    for r in (1, 2, 3):
        for t in ("tcp", "udp"):
            assert sorted(s.target for s in on if (s.round, s.test) == (r, t)) == ["a", "b", "c"]
    # all "on" runs come before the first "off" run (offloads are switched once)
    first_off = next(i for i, s in enumerate(slots) if s.offload == "off")
    assert all(s.offload == "off" for s in slots[first_off:])


TCP = Test("tcp", "TCP ×1", (), "bit/s")
UDP = Test("udp-pps", "UDP 64 B", ("-u",), "pkt/s")


def test_receiver_rate_prefers_the_server_and_counts_received_datagrams():
    server = {"end": {"sum_received": {"bits_per_second": 5e9, "seconds": 2.0, "packets": 1000, "lost_packets": 100}}}
    client = {"end": {"sum_received": {"bits_per_second": 4e9}, "sum_sent": {"bits_per_second": 9e9}}}
    assert receiver_rate(TCP, server, client) == 5e9
    assert receiver_rate(TCP, None, client) == 4e9
    assert receiver_rate(TCP, {"error": "boom"}, client) == 4e9
    assert receiver_rate(UDP, server, None) == pytest.approx(450.0)
    assert receiver_rate(TCP, None, {"error": "unable to connect"}) is None


def _targets():
    return [
        {"id": "underlay", "kind": "baseline", "mtu": 1500},
        {"id": "veth", "kind": "baseline", "mtu": 1500},
        {"id": "vxlan", "kind": "lab", "lab": "vxlan", "datapath": "flannel-vxlan", "claim": "vxlan", "mtu": 1450},
        {"id": "udp", "kind": "lab", "lab": "flannel-udp", "datapath": "flannel-udp", "claim": "flannel-udp",
         "mtu": 1472},
        {"id": "vxlan@explain", "kind": "explain", "lab": "vxlan", "datapath": "flannel-vxlan", "mtu": 1450},
    ]


def _samples(values: dict[str, list[float | None]], test="tcp", offload="on", mss=None):
    out = []
    for tid, vals in values.items():
        for i, v in enumerate(vals):
            out.append({"target": tid, "test": test, "offload": offload, "round": i + 1, "value": v,
                        "unit": "bit/s", "error": None if v is not None else "failed",
                        "mss": (mss or {}).get(tid)})
    return out


def test_analyse_ratios_claims_verdicts_and_explain_comparison():
    samples = _samples({"underlay": [10.0, 10.0, 10.0], "veth": [20.0, 20.0, 20.0], "vxlan": [7.4, 7.5, 7.6],
                        "udp": [0.3, 0.4, 0.5], "vxlan@explain": [7.5, 7.5, 7.5]},
                       mss={"underlay": 1448, "vxlan": 1398})
    an = analyse(_targets(), samples, ["tcp"], ["on"])
    vx = an.row("vxlan", "tcp", "on")
    assert vx.ratio.value == pytest.approx(0.75) and vx.ratio_veth.value == pytest.approx(0.375)
    assert vx.verdict.status == "holds" and vx.mss == 1398
    udp = an.row("udp", "tcp", "on")
    # relative claim: far worse than the VXLAN lab measured in the same run
    assert udp.verdict.status == "holds" and "vs vxlan 0.75" in udp.verdict.why
    assert an.row("underlay", "tcp", "on").verdict is None  # baselines get no verdict
    (e,) = an.explain
    assert e.lab == "vxlan" and e.ratio.value == pytest.approx(1.0) and e.ok


def test_analyse_keeps_failed_runs_out_of_the_statistics():
    samples = _samples({"underlay": [10.0, 10.0], "veth": [10.0, 10.0], "vxlan": [None, None],
                        "udp": [None, 1.0], "vxlan@explain": [5.0, 5.0]})
    an = analyse(_targets(), samples, ["tcp"], ["on"])
    vx = an.row("vxlan", "tcp", "on")
    assert vx.summary is None and vx.ratio is None and len(vx.errors) == 2
    assert vx.verdict.status == "n/a"
    assert an.row("udp", "tcp", "on").summary.n == 1
    assert an.explain[0].ratio is None and an.explain[0].ok is None


def test_explain_below_threshold_is_flagged_with_or_without_overlap():
    samples = _samples({"underlay": [10.0], "veth": [10.0], "vxlan": [8.0], "udp": [1.0], "vxlan@explain": [10.0]})
    an = analyse(_targets(), samples, ["tcp"], ["on"])
    assert an.explain[0].ok is False and an.explain[0].note == "slower than the explain build"
