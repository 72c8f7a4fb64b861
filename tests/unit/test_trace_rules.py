"""The named next-step, verdict, diff and probe rules the trace is built from (no root)."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

from netlab import api, encap, model
from netlab.plan import Fdb, Vxlan
from netlab.trace import path
from netlab.trace.decode import decode
from netlab.trace.diff import _encap_changes
from netlab.trace.engine import Hop, _stop_reason
from netlab.trace.path import Expectation
from netlab.trace.probe import Probe
from netlab.trace.sniff import Frame


def _vxlan_plan():
    return api.build_plan(model.load("vxlan", name="p"))


def test_a_vtep_without_an_fdb_entry_for_the_mac_says_so():
    p = _vxlan_plan()
    vx = p.of(Vxlan)[0]
    exp = path.expected_next(p, {}, vx.ns, vx.name, "out", "10.244.9.9", "02:00:00:00:00:99")
    assert exp.kind == "vxlan" and "no FDB entry" in exp.text and exp.iface == vx.dev
    fdb = next(f for f in p.of(Fdb) if f.ns == vx.ns)
    exp = path.expected_next(p, {}, vx.ns, vx.name, "out", "10.244.9.9", fdb.lladdr)
    assert f"to {fdb.dst}" in exp.text and exp.direction == "out"


def test_an_interface_the_plan_does_not_know_is_unknown_both_ways():
    p = _vxlan_plan()
    ns = p.host("node1").name
    assert path.expected_next(p, {}, ns, "nosuch0", "out", "10.244.2.2").kind == "unknown"
    assert path.expected_next(p, {}, ns, "nosuch0", "in", None).kind == "unknown"
    # received for someone else: the plan's route decides
    assert path.expected_next(p, {}, ns, "nosuch0", "in", "10.244.2.2").kind == "route"


def _hop(host: str) -> Hop:
    data = bytes(Ether() / IP() / ICMP())
    f = Frame(ns=f"p-{host}", host=host, iface="eth0", ifindex=0, direction="in", pkttype=0, hatype=1, ts_ns=0,
              data=data, wirelen=len(data), mtu=1500, seq=0)
    return Hop(1, "request", f, decode(data, True))


def test_stop_reason_names_delivery_dnat_loss_and_lost_answers():
    last = _hop("node2")
    assert "no answer was seen" in _stop_reason(Expectation("", kind="local"), "request", last, "node1")
    assert "to be DNATed" in _stop_reason(Expectation("", kind="dnat"), "request", last, "node1")
    assert "went no further" in _stop_reason(Expectation("", kind="route"), "request", last, "node1")
    assert "never reached node1" in _stop_reason(Expectation("", kind="local"), "reply", last, "node1")


def test_reframing_reports_the_removed_headers_before_the_added_ones():
    old = decode(bytes(Ether() / IP() / UDP(dport=8472) / VXLAN() / Ether() / IP() / ICMP()), True, encap.VXLAN.on(8472))
    new = decode(bytes(IP() / UDP(dport=8285) / IP() / ICMP()), False)
    kinds = [c.kind for c in _encap_changes(old.layers[:5], new.layers[:2])]
    assert kinds == ["encap-removed", "encap-added"]
    assert _encap_changes([], []) == []


def test_an_icmp_error_is_the_probes_only_if_it_quotes_its_ip_id():
    p = Probe("udp", "10.0.0.1", "10.0.0.2", 53, ip_id=7)
    mine = decode(bytes(IP() / ICMP(type=3, code=1) / IP(id=7) / UDP()), False)
    other = decode(bytes(IP() / ICMP(type=3, code=1) / IP(id=8) / UDP()), False)
    assert p.classify(mine) == "error" and p.classify(other) is None
