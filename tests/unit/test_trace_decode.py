"""Decoding captured bytes into layer stacks (no root): the stacks DATAPATHS.md describes per datapath."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from netlab.encap import VXLAN as VXLAN_ENCAP
from netlab.trace.decode import decode, looks_like_ipv4

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def inner() -> IP:
    return IP(src="10.244.1.2", dst="10.244.2.2", ttl=63) / ICMP(type=8, id=7, seq=1) / Raw(b"x" * 56)


def test_flannel_vxlan_8472_decodes_to_the_inner_frame():
    # §2b: Ether/IP(NODE_A->NODE_B)/UDP(dport 8472)/VXLAN(flags 0x08, vni 1)/Ether/IP(pod->pod)
    pkt = (Ether(src=A, dst=B) / IP(src="192.168.100.11", dst="192.168.100.12") / UDP(sport=51234, dport=8472)
           / VXLAN(flags=0x08, vni=1) / Ether(src="02:00:00:00:01:01", dst="02:00:00:00:02:02") / inner())
    d = decode(bytes(pkt), ethernet=True)
    assert d.names == ["Ether", "IP", "UDP", "VXLAN", "Ether", "IP", "ICMP"]
    assert d.layers[3].fields["vni"] == 1
    assert d.layers[2].fields["dport"] == 8472
    assert d.payload == 56
    assert "VXLAN vni 1" in d.text and "UDP 51234 > 8472" in d.text


def test_calico_vxlan_4789_decodes():
    # §3c: vxlan.calico, VNI 4096, port 4789
    pkt = (Ether() / IP(src="10.0.0.11", dst="10.0.0.12") / UDP(sport=40000, dport=4789) / VXLAN(flags=0x08, vni=4096)
           / Ether() / IP(src="192.168.1.2", dst="192.168.2.2") / ICMP())
    d = decode(bytes(pkt), ethernet=True)
    assert d.names == ["Ether", "IP", "UDP", "VXLAN", "Ether", "IP", "ICMP"]
    assert d.layers[3].fields["vni"] == 4096


def test_vxlan_on_a_port_only_the_plan_knows():
    pkt = Ether() / IP() / UDP(sport=40000, dport=4444) / VXLAN(flags=0x08, vni=9) / Ether() / inner()
    assert "VXLAN" not in decode(bytes(pkt), True).names  # scapy alone does not know 4444
    d = decode(bytes(pkt), True, VXLAN_ENCAP.on(4444))
    assert d.names == ["Ether", "IP", "UDP", "VXLAN", "Ether", "IP", "ICMP"]


def test_flannel_udp_8285_payload_is_bare_ip():
    # §2a: outer IP/UDP(8285 -> 8285)/<raw inner IPv4 packet>, no header of its own
    pkt = Ether() / IP(src="192.168.100.11", dst="192.168.100.12") / UDP(sport=8285, dport=8285) / inner()
    d = decode(bytes(pkt), ethernet=True)
    assert d.names == ["Ether", "IP", "UDP", "IP", "ICMP"]
    assert d.layers[3].fields["src"] == "10.244.1.2"


def test_ip_in_udp_on_another_port_is_recognised_by_shape():
    pkt = Ether() / IP() / UDP(sport=5555, dport=5556) / inner()
    assert decode(bytes(pkt), True).names == ["Ether", "IP", "UDP", "IP", "ICMP"]


def test_random_udp_payload_stays_raw():
    pkt = Ether() / IP() / UDP(sport=5555, dport=53) / Raw(b"\x45" + b"\x00" * 30)
    d = decode(bytes(pkt), True)
    assert d.names == ["Ether", "IP", "UDP"] and d.payload == 31
    assert not looks_like_ipv4(b"\x45" + b"\x00" * 30)


def test_tun_device_frames_have_no_ethernet_header():
    # flannel0 is IFF_TUN|IFF_NO_PI: the capture starts at the IP header
    d = decode(bytes(inner()), ethernet=False)
    assert d.names == ["IP", "ICMP"]


def test_icmp_error_quotes_the_offending_header():
    pkt = (IP(src="10.244.1.0", dst="10.244.1.2") / ICMP(type=3, code=0)
           / IP(src="10.244.1.2", dst="10.244.9.9", id=4242) / ICMP(type=8, id=7, seq=1))
    d = decode(bytes(pkt), ethernet=False)
    assert d.names == ["IP", "ICMP", "quoted IP", "quoted ICMP"]
    assert "net-unreachable" in d.text
    assert d.layers[2].fields["id"] == 4242


def test_tcp_flags_and_ports():
    pkt = Ether() / IP(src="172.17.0.2", dst="192.168.100.12") / TCP(sport=40000, dport=12347, flags="S", seq=99)
    d = decode(bytes(pkt), True)
    assert d.names == ["Ether", "IP", "TCP"]
    assert d.layers[2].fields == {"sport": 40000, "dport": 12347, "flags": "S", "seq": 99, "ack": 0}
    assert "TCP 40000 > 12347 [S]" in d.text


def test_garbage_never_raises():
    d = decode(b"\x00\x01", ethernet=False)
    assert d.layers and d.layers[0].name in ("Raw", "IP")


def test_vnet_hdr_mode_is_shown_as_its_own_layer():
    # netlab's opt-in flannel-udp mode=vnet-hdr: virtio_net_hdr (10 bytes) + IP in UDP 8285
    pkt = Ether() / IP() / UDP(sport=8285, dport=8285) / Raw(bytes(10) + bytes(inner()))
    d = decode(bytes(pkt), True)
    assert d.names == ["Ether", "IP", "UDP", "VirtioNetHdr", "IP", "ICMP"]


def test_calico_ipip_outer_ip_carries_the_pod_packet():
    # §3b: IP(src=NODE_IP_X, dst=NODE_IP_Y, proto=4)/IP(pod->pod); tunl0 itself shows the inner packet
    pkt = Ether() / IP(src="10.0.0.11", dst="10.0.0.12", proto=4) / IP(src="192.168.1.2", dst="192.168.2.2") / ICMP()
    assert decode(bytes(pkt), True).names == ["Ether", "IP", "IP", "ICMP"]
