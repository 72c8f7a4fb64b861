"""The kernel filters, compiled by libpcap and run by a small cBPF interpreter (no root, no kernel)."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from netlab.trace import bpf
from netlab.trace.probe import Probe

TUN = 65534  # ARPHRD_NONE


def probe(proto="icmp", **kw) -> Probe:
    return Probe(proto, "10.244.1.2", "10.244.2.2", port=kw.pop("port", 80 if proto != "icmp" else None), **kw)


def accepts(prog, pkt, hatype=bpf.ARPHRD_ETHER, ifindex=0) -> bool:
    return bpf.run(prog, bytes(pkt), hatype=hatype, ifindex=ifindex) > 0


def test_link_type_branch_runs_the_right_program():
    prog = bpf.for_expr("icmp")
    assert accepts(prog, Ether() / IP() / ICMP())
    assert not accepts(prog, Ether() / IP() / UDP())
    assert accepts(prog, IP() / ICMP(), hatype=TUN)  # raw IP: no Ethernet header
    assert not accepts(prog, IP() / UDP(), hatype=TUN)
    # the Ethernet program on a raw packet would read the IP header as MACs: never chosen
    assert not accepts(bpf.by_link_type(bpf.compile_expr("icmp", bpf.DLT_EN10MB), [(bpf.BPF_RET, 0, 0, 0)]),
                       IP() / ICMP(), hatype=TUN)


def test_ifindex_prefix_selects_interfaces():
    prog = bpf.only_ifindexes([3, 7], bpf.accept_all())
    assert accepts(prog, Ether(), ifindex=3) and accepts(prog, Ether(), ifindex=7)
    assert not accepts(prog, Ether(), ifindex=4)


def test_long_programs_are_jumped_over():
    # an Ethernet program longer than a conditional jump can skip (255) needs the 'ja'
    long_expr = " or ".join(f"host 10.0.{i // 250}.{i % 250}" for i in range(120))
    prog = bpf.for_expr(long_expr)
    assert accepts(prog, IP(dst="10.0.0.119") / ICMP(), hatype=TUN)
    assert not accepts(prog, IP(dst="10.9.0.1") / ICMP(), hatype=TUN)


def test_probe_filter_matches_the_probe_plain_and_encapsulated():
    p = probe()
    prog = bpf.for_expr(p.bpf())
    pkt = p.packet()
    assert accepts(prog, Ether() / pkt)
    assert accepts(prog, pkt, hatype=TUN)
    # after NAT: other addresses, same id and payload
    natted = pkt.copy()
    natted[IP].src = "192.168.100.11"
    assert accepts(prog, Ether() / natted)
    # flannel VXLAN / Calico VXLAN / flannel UDP / IPIP, on any port
    for port in (8472, 4789, 4444):
        assert accepts(prog, Ether() / IP() / UDP(sport=1, dport=port) / VXLAN(flags=8, vni=1) / Ether() / pkt)
    assert accepts(prog, Ether() / IP() / UDP(sport=8285, dport=8285) / pkt)
    assert accepts(prog, Ether() / IP(proto=4) / pkt)
    # the echo reply (the destination's own id, payload echoed)
    reply = IP(src="10.244.2.2", dst="10.244.1.2", id=1) / ICMP(type=0, id=p.icmp_id, seq=1) / Raw(p.payload)
    assert accepts(prog, Ether() / reply)
    # an ICMP error quoting the probe
    err = IP(src="10.244.1.0", dst="10.244.1.2") / ICMP(type=3, code=0) / bytes(pkt)[:28]
    assert accepts(prog, err, hatype=TUN)


def test_probe_filter_rejects_other_traffic():
    p = probe()
    prog = bpf.for_expr(p.bpf())
    other = IP(src="10.244.1.2", dst="10.244.2.2", id=(p.ip_id + 1) & 0xFFFF) / ICMP(type=8) / Raw(b"\x00" * 56)
    assert not accepts(prog, Ether() / other)
    assert not accepts(prog, Ether() / IP() / UDP(dport=8472) / VXLAN(flags=8) / Ether() / other)
    assert not accepts(prog, Ether() / IP() / TCP())
    assert not accepts(prog, Ether(type=0x0806) / Raw(b"\x00" * 28))  # ARP


def test_tcp_probe_matches_syn_and_the_answer_but_not_the_sources_rst():
    p = probe("tcp", port=12347)
    prog = bpf.for_expr(p.bpf())
    assert accepts(prog, Ether() / p.packet())
    synack = IP(src="192.168.100.12", dst="172.17.0.2") / TCP(sport=12347, dport=p.sport, flags="SA", seq=5, ack=p.isn + 1)
    assert accepts(prog, Ether() / synack)
    rst = IP(src="172.17.0.2", dst="192.168.100.12") / TCP(sport=p.sport, dport=12347, flags="R", seq=p.isn + 1, ack=0)
    assert not accepts(prog, Ether() / rst)


def test_udp_probe_matches_payload_and_port_unreachable():
    p = probe("udp", port=9999)
    prog = bpf.for_expr(p.bpf())
    assert accepts(prog, Ether() / p.packet())
    unreach = IP(src="10.244.2.2", dst="10.244.1.2") / ICMP(type=3, code=3) / bytes(p.packet())[:28]
    assert accepts(prog, Ether() / unreach)


def test_classify():
    from netlab.trace.decode import decode

    p = probe()
    assert p.classify(decode(bytes(Ether() / p.packet()), True)) == "request"
    reply = IP(id=9) / ICMP(type=0, id=p.icmp_id, seq=1) / Raw(p.payload)
    assert p.classify(decode(bytes(reply), False)) == "reply"
    err = IP() / ICMP(type=3, code=4) / bytes(p.packet())[:28]
    assert p.classify(decode(bytes(err), False)) == "error"
    assert p.classify(decode(bytes(IP() / UDP()), False)) is None


def test_probe_filter_matches_after_a_virtio_net_hdr():
    p = probe()
    prog = bpf.for_expr(p.bpf())
    assert accepts(prog, Ether() / IP() / UDP(sport=8285, dport=8285) / Raw(bytes(10) + bytes(p.packet())))
