"""Each datapath declares its encapsulation once, on the plan (netlab.encap), and the MTU sizing,
the MTU check, the trace decoder, the capture hints and bench's claims all read that one
declaration (pure, no root)."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN as VXLANHeader

from netlab import api, encap, model
from netlab.bench.claims import classify
from netlab.datapaths import get
from netlab.encap import ETHERNET, IPIP, UDP as UDP_ENCAP, UNDERLAY_MTU_MAX, VXLAN, Encap
from netlab.errors import LabFileError
from netlab.plan import Daemon, Ipip, Plan, Tun, Veth, Vxlan
from netlab.trace.decode import SCAPY_VXLAN_PORTS, decode, udp_ports


def plan(lab: str, **over) -> Plan:
    return api.build_plan(model.load(lab, name="p", overrides=over))


def lab_stems() -> list[str]:
    return [f.stem for f in model.available()]


# -- the declarations ---------------------------------------------------------------------------------

def test_overheads_are_the_header_sizes():
    # VXLAN: outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8; flannel UDP: IPv4 20 + UDP 8; IPIP: IPv4 20
    assert (VXLAN.name, VXLAN.overhead, VXLAN.carries) == ("vxlan", 50, "ethernet")
    assert (UDP_ENCAP.name, UDP_ENCAP.overhead, UDP_ENCAP.carries) == ("udp", 28, "ip")
    assert (IPIP.name, IPIP.overhead, IPIP.carries, IPIP.udp_port) == ("ipip", 20, "ip", None)


def test_on_sets_only_the_port_and_max_mtu_follows_the_underlay_maximum():
    v = VXLAN.on(4444)
    assert v == Encap("vxlan", 50, "ethernet", 4444) and VXLAN.udp_port is None
    assert (VXLAN.max_mtu, UDP_ENCAP.max_mtu, IPIP.max_mtu) == (8950, 8972, 8980)
    assert UNDERLAY_MTU_MAX == 9000


EXPECTED = {
    # lab: (name, overhead, carries, udp_port) or None (routed or bridged, nothing wrapped)
    "vxlan": ("vxlan", 50, "ethernet", 8472),
    "flannel-udp": ("udp", 28, "ip", 8285),
    "calico-vxlan": ("vxlan", 50, "ethernet", 4789),
    "calico-ipip": ("ipip", 20, "ip", None),
    "host-gw": None,
    "calico": None,
    "calico-rr": None,
    "docker-nat": None,
    "bridge": None,
    "baseline": None,
}


@pytest.mark.parametrize("lab", sorted(EXPECTED))
def test_overhead_per_datapath(lab):
    e = plan(lab).encap
    want = EXPECTED[lab]
    assert (None if e is None else (e.name, e.overhead, e.carries, e.udp_port)) == want


@pytest.mark.parametrize("lab", [s for s in EXPECTED if EXPECTED[s] is not None])
@pytest.mark.parametrize("underlay_mtu", [1500, 9000])
def test_pod_mtu_is_the_underlay_minus_the_overhead(lab, underlay_mtu):
    p = plan(lab, mtu=underlay_mtu)
    assert p.encap is not None
    pod_ns = {n.name for n in p.namespaces if n.role == "pod"}
    pod_ends = [v.b for v in p.of(Veth) if v.b.ns in pod_ns]
    assert pod_ends and {e.mtu for e in pod_ends} == {underlay_mtu - p.encap.overhead}


# -- every lab's plan declares what its links do ----------------------------------------------------------

@pytest.mark.parametrize("lab", lab_stems())
def test_every_lab_plans_an_encap_consistent_with_its_links(lab):
    p = plan(lab)
    m = model.load(lab, name="p")
    vteps, tuns, ipips = p.of(Vxlan), p.of(Tun), p.of(Ipip)
    if vteps:
        assert p.encap is not None and p.encap.name == "vxlan" and p.encap.carries == ETHERNET
        assert {v.port for v in vteps} == {p.encap.udp_port}
        assert {v.mtu for v in vteps} == {m.underlay.mtu - p.encap.overhead}
    elif tuns:
        assert p.encap is not None and p.encap.name == "udp" and p.encap.carries == "ip"
        assert p.encap.udp_port == m.options.port
        # the forwarder listens on the port the plan declares
        for d in p.of(Daemon):
            assert d.argv[d.argv.index("--port") + 1] == str(p.encap.udp_port)
        assert {t.mtu for t in tuns} == {m.underlay.mtu - p.encap.overhead}
    elif ipips:
        assert p.encap == IPIP
        assert {t.mtu for t in ipips} == {m.underlay.mtu - IPIP.overhead}
    else:
        assert p.encap is None, f"{lab} has no tunnel device but declares {p.encap}"


def test_the_plan_follows_the_port_option():
    assert plan("vxlan", options={"port": 4444}).encap == VXLAN.on(4444)
    assert plan("calico-vxlan", options={"port": 4790}).encap == VXLAN.on(4790)
    assert plan("flannel-udp", options={"port": 9000}).encap == UDP_ENCAP.on(9000)


# -- one MTU check ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("lab,overhead,label", [
    ("vxlan", 50, "VXLAN"), ("calico-vxlan", 50, "VXLAN"), ("flannel-udp", 28, "UDP"), ("calico-ipip", 20, "IPIP"),
])
def test_the_mtu_check_message(lab, overhead, label):
    asked = 1500 - overhead + 1
    with pytest.raises(LabFileError) as e:
        model.load(lab, name="p", overrides={"options": {"mtu": asked}})
    assert e.value.what.endswith(f"options.mtu: {asked} + {overhead} bytes of {label} overhead "
                                 "exceeds the underlay MTU 1500")
    assert e.value.fix == f"use options.mtu <= {1500 - overhead} or leave it unset"


@pytest.mark.parametrize("lab,overhead", [("vxlan", 50), ("calico-vxlan", 50), ("flannel-udp", 28), ("calico-ipip", 20)])
def test_an_mtu_that_just_fits_is_taken(lab, overhead):
    p = plan(lab, options={"mtu": 1500 - overhead})
    assert p.encap is not None and p.encap.overhead == overhead


def test_the_check_reads_the_lab_options_and_the_encap():
    class Opts:
        mtu = 1471

    class Underlay:
        mtu = 1500

    class FakeLab:
        src, options, underlay = "lab.yaml", Opts(), Underlay()

    lab = FakeLab()
    encap.check_mtu(lab, UDP_ENCAP)  # type: ignore[arg-type]
    encap.check_mtu(lab, None)  # type: ignore[arg-type]
    Opts.mtu = 1473
    with pytest.raises(LabFileError, match="1473 \\+ 28 bytes of UDP overhead exceeds the underlay MTU 1500"):
        encap.check_mtu(lab, UDP_ENCAP)  # type: ignore[arg-type]
    Opts.mtu = 1501
    with pytest.raises(LabFileError, match="options.mtu: 1501 exceeds the underlay MTU 1500"):
        encap.check_mtu(lab, None)  # type: ignore[arg-type]
    assert encap.mtu_of(lab, IPIP) == 1501  # type: ignore[arg-type]  # the asked MTU wins
    Opts.mtu = None  # type: ignore[assignment]
    assert encap.mtu_of(lab, IPIP) == 1480 and encap.mtu_of(lab, None) == 1500  # type: ignore[arg-type]


def test_option_bounds_come_from_the_encap():
    with pytest.raises(LabFileError, match="from 576 to 8950"):
        model.load("vxlan", name="p", overrides={"mtu": 9000, "options": {"mtu": 8951}})
    assert plan("vxlan", mtu=9000, options={"mtu": 8950}).encap == VXLAN.on(8472)


# -- the trace decoder reads the plan's ports -------------------------------------------------------------

def bad_checksum_inner() -> IP:
    """An inner IPv4 packet that only the port can identify: its checksum is wrong, so the
    decoder's shape test (well-formed header, matching checksum) refuses it."""
    return IP(src="10.244.1.2", dst="10.244.2.2", chksum=0x1234) / ICMP()


def test_flannel_udp_on_another_port_decodes_ip_in_udp_with_the_plans_port():
    p = plan("flannel-udp", options={"port": 9000})
    pkt = Ether() / IP(src="192.168.100.11", dst="192.168.100.12") / UDP(sport=9000, dport=9000) / bad_checksum_inner()
    assert decode(bytes(pkt), True, p.encap).names == ["Ether", "IP", "UDP", "IP", "ICMP"]
    # without the plan, or with the default port's plan, 9000 means nothing
    assert decode(bytes(pkt), True).names == ["Ether", "IP", "UDP"]
    assert decode(bytes(pkt), True, plan("flannel-udp").encap).names == ["Ether", "IP", "UDP"]


def test_8285_is_not_special_outside_flannel_udp():
    pkt = Ether() / IP() / UDP(sport=8285, dport=8285) / bad_checksum_inner()
    assert decode(bytes(pkt), True, plan("flannel-udp").encap).names == ["Ether", "IP", "UDP", "IP", "ICMP"]
    assert decode(bytes(pkt), True, plan("vxlan").encap).names == ["Ether", "IP", "UDP"]


def test_vxlan_on_the_plans_port():
    p = plan("vxlan", options={"port": 4444})
    pkt = Ether() / IP() / UDP(sport=40000, dport=4444) / VXLANHeader(flags=0x08, vni=1) / Ether() / IP() / ICMP()
    assert decode(bytes(pkt), True, p.encap).names == ["Ether", "IP", "UDP", "VXLAN", "Ether", "IP", "ICMP"]
    assert "VXLAN" not in decode(bytes(pkt), True, plan("vxlan").encap).names


def test_udp_ports_per_encap():
    assert udp_ports(None) == (frozenset(), frozenset())
    assert udp_ports(IPIP) == (frozenset(), frozenset())
    assert udp_ports(UDP_ENCAP.on(8285)) == (frozenset(), frozenset({8285}))
    assert udp_ports(VXLAN.on(4444)) == (frozenset({4444}), frozenset())
    # scapy binds these itself: no need to re-dissect them
    assert all(udp_ports(VXLAN.on(port)) == (frozenset(), frozenset()) for port in SCAPY_VXLAN_PORTS)


# -- hints and bench read it too ------------------------------------------------------------------------

@pytest.mark.parametrize("lab,port,flag", [("vxlan", 4444, "-e"), ("calico-vxlan", 4444, "-e"), ("flannel-udp", 9000, "-X")])
def test_the_capture_hint_filters_on_the_plans_port(lab, port, flag):
    m = model.load(lab, name="p", overrides={"options": {"port": port}})
    p = api.build_plan(m)
    captures = [h.command for h in get(m.datapath).next_steps(m, p).hints if "tcpdump -ni br0" in h.command]
    assert len(captures) == 1 and captures[0].endswith(f"tcpdump -ni br0 {flag} udp port {port}")


def test_the_ipip_capture_hint_filters_on_protocol_4():
    m = model.load("calico-ipip", name="p")
    p = api.build_plan(m)
    assert any(h.command.endswith("tcpdump -ni br0 ip proto 4") for h in get(m.datapath).next_steps(m, p).hints)


@pytest.mark.parametrize("lab,claim", [
    ("vxlan", "vxlan"), ("calico-vxlan", "vxlan"), ("flannel-udp", "flannel-udp"), ("calico-ipip", "ipip"),
    ("host-gw", "host-gw"), ("calico", "calico-bgp"), ("calico-rr", "calico-bgp"), ("docker-nat", None),
])
def test_bench_classifies_by_the_plans_encap(lab, claim):
    m = model.load(lab, name="p")
    assert classify(m.datapath, plan(lab).encap, m.nodes) == claim
