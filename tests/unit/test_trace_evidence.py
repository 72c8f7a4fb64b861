"""Counter parsing and deltas for stop evidence (no root: text in, lines out)."""

from __future__ import annotations

from netlab import api, model
from netlab.trace import evidence, path

SNMP = """Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams InUnknownProtos InDiscards InDelivers OutRequests OutDiscards OutNoRoutes
Ip: 1 64 10 0 0 3 0 0 7 9 0 0
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors
Udp: 1 0 0 1 0
"""
DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
flannel.1:     100       1    0    0    0     0          0         0      200       2    0    0    0     0       0          0
"""
IPT = """*filter
:INPUT ACCEPT [5:300]
:FORWARD DROP [2:120]
:DOCKER - [0:0]
[0:0] -A DOCKER -d 172.17.0.2/32 -j ACCEPT
[1:60] -A FORWARD -i docker0 -j DROP
COMMIT
"""


def test_parsers():
    assert evidence._read_snmp(SNMP)["Ip.OutNoRoutes"] == 0 and evidence._read_snmp(SNMP)["Udp.NoPorts"] == 0
    assert evidence._read_dev(DEV)["flannel.1"]["tx_drop"] == 0
    ipt = evidence._iptables_counters(IPT)
    assert ipt["filter FORWARD policy DROP"] == 2
    assert ipt["filter -A FORWARD -i docker0 -j DROP"] == 1
    assert "filter INPUT policy ACCEPT" in ipt


def test_only_moved_drop_counters_are_reported():
    before = evidence.Counters(evidence._read_snmp(SNMP), evidence._read_dev(DEV), evidence._iptables_counters(IPT))
    after = evidence.Counters(evidence._read_snmp(SNMP.replace("7 9 0 0\n", "7 9 0 1\n")),
                              evidence._read_dev(DEV.replace("2    0    0", "3    0    1")),
                              evidence._iptables_counters(IPT.replace("[2:120]", "[3:180]")))
    lines = evidence.counter_deltas(before, after)
    assert "Ip.OutNoRoutes +1" in lines
    assert "flannel.1 tx_drop +1" in lines
    assert "iptables filter FORWARD policy DROP: +1 packets" in lines
    assert not any("tx_packets" in l or "ACCEPT" in l for l in lines)  # traffic is not evidence


def test_dnat_rules_come_from_the_plan():
    if "docker-nat" not in {f.stem for f in model.available()}:
        return
    p = api.build_plan(model.load("docker-nat", name="p"))
    node2 = p.host("node2").name
    rule, to = path.dnat_for(p, node2, "tcp", 12347)
    assert to == "172.17.0.2:7070" and "--dport 12347" in rule
    assert path.dnat_for(p, node2, "tcp", 9) is None
    assert path.dnat_for(p, node2, "udp", 12347) is None


def test_counters_that_move_while_idle_are_not_the_probes():
    # flannel.1 tx_drop rises in an idle lab (IPv6 multicast with no FDB entry): the same rise in
    # the idle window cancels it; the rp_filter drop (netstat) moved only in the probe window
    netstat = "TcpExt: IPReversePathFilter ListenDrops\nTcpExt: {} 0\n"
    c = lambda drop, rp: evidence.Counters({**evidence._read_snmp(SNMP), **evidence._read_snmp(netstat.format(rp))},  # noqa: E731
                                           evidence._read_dev(DEV.replace("2    0    0", f"2    0    {drop}")))
    lines = evidence.counter_deltas(c(0, 0), c(1, 1), idle=(c(1, 1), c(2, 1)))
    assert lines == ["TcpExt.IPReversePathFilter +1"]
