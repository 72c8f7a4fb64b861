"""What a hop changed, on synthetic packets (no root)."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

from netlab.trace.decode import decode
from netlab.trace.diff import diff

POD_MAC, CNI_MAC, VTEP1, VTEP2 = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:11", "02:00:00:00:00:12"


def eth(pkt, ethernet=True):
    return decode(bytes(pkt), ethernet)


def kinds(changes):
    return [c.kind for c in changes]


def test_routing_hop_rewrites_macs_and_decrements_ttl():
    a = eth(Ether(src=POD_MAC, dst=CNI_MAC) / IP(src="10.244.1.2", dst="10.244.2.2", ttl=64) / ICMP())
    b = eth(Ether(src=VTEP1, dst=VTEP2) / IP(src="10.244.1.2", dst="10.244.2.2", ttl=63) / ICMP())
    ch = diff(a, b)
    assert kinds(ch) == ["mac-rewrite", "ttl"]
    assert "64 -> 63" in ch[1].text


def test_vxlan_encapsulation_is_added_then_removed():
    inner = Ether(src=VTEP1, dst=VTEP2) / IP(src="10.244.1.2", dst="10.244.2.2", ttl=63) / ICMP()
    outer = Ether() / IP(src="192.168.100.11", dst="192.168.100.12") / UDP(sport=4000, dport=8472) / VXLAN(flags=8, vni=1) / inner
    ch = diff(eth(inner), eth(outer))
    assert kinds(ch) == ["encap-added"]
    assert ch[0].new["layers"] == ["Ether", "IP", "UDP", "VXLAN"]
    ch = diff(eth(outer), eth(inner))
    assert kinds(ch) == ["encap-removed"] and ch[0].old["layers"] == ["Ether", "IP", "UDP", "VXLAN"]


def test_tun_drops_the_ethernet_header_and_flannel_udp_wraps_bare_ip():
    before = eth(Ether() / IP(src="10.244.1.2", dst="10.244.2.2", ttl=63) / ICMP())
    tun = decode(bytes(IP(src="10.244.1.2", dst="10.244.2.2", ttl=63) / ICMP()), ethernet=False)
    ch = diff(before, tun)
    assert kinds(ch) == ["encap-removed"] and ch[0].old["layers"] == ["Ether"]
    # flanneld's proxy lowers the inner TTL itself before sending it in UDP 8285
    wire = eth(Ether() / IP(src="192.168.100.11", dst="192.168.100.12") / UDP(sport=8285, dport=8285)
               / IP(src="10.244.1.2", dst="10.244.2.2", ttl=62) / ICMP())
    ch = diff(tun, wire)
    assert kinds(ch) == ["encap-added", "ttl"]
    assert ch[0].new["layers"] == ["Ether", "IP", "UDP"]
    assert ch[1].text.startswith("inner TTL 63 -> 62")


def test_docker_nat_three_rewrites():
    # node1: SNAT 172.17.0.2:40000 -> 192.168.100.11:40000 (MASQUERADE ! -o docker0)
    syn1 = eth(Ether() / IP(src="172.17.0.2", dst="192.168.100.12", ttl=64) / TCP(sport=40000, dport=12347, flags="S"))
    syn2 = eth(Ether() / IP(src="192.168.100.11", dst="192.168.100.12", ttl=63) / TCP(sport=40000, dport=12347, flags="S"))
    ch = diff(syn1, syn2)
    snat = [c for c in ch if c.kind == "snat"][0]
    assert snat.old == {"addr": "172.17.0.2", "port": 40000} and snat.new == {"addr": "192.168.100.11", "port": 40000}
    # node2: DNAT 192.168.100.12:12347 -> 172.17.0.2:7070
    syn3 = eth(Ether() / IP(src="192.168.100.11", dst="172.17.0.2", ttl=62) / TCP(sport=40000, dport=7070, flags="S"))
    dnat = [c for c in diff(syn2, syn3) if c.kind == "dnat"][0]
    assert "192.168.100.12:12347 -> 172.17.0.2:7070" in dnat.text
    # the reply: conntrack undoes both
    r1 = eth(Ether() / IP(src="172.17.0.2", dst="192.168.100.11") / TCP(sport=7070, dport=40000, flags="SA"))
    r2 = eth(Ether() / IP(src="192.168.100.12", dst="192.168.100.11") / TCP(sport=12347, dport=40000, flags="SA"))
    r3 = eth(Ether() / IP(src="192.168.100.12", dst="172.17.0.2") / TCP(sport=12347, dport=40000, flags="SA"))
    assert kinds(diff(r1, r2, reply=True)) == ["undnat"]
    assert kinds(diff(r2, r3, reply=True)) == ["unsnat"]


def test_unchanged_hop_reports_nothing():
    p = eth(Ether(src=POD_MAC, dst=CNI_MAC) / IP() / ICMP())
    assert diff(p, p) == []
