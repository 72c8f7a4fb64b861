"""The flannel-udp plan has the DATAPATHS.md §2a facts, and the forwarder's packet logic (TTL and
checksum, longest-prefix match, ICMP net unreachable) is right as pure functions (no root)."""

from __future__ import annotations

import random
import struct
import os
import sys
from ipaddress import IPv4Address, IPv4Network

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP

from netlab import api, model, naming
from netlab.daemons import flannel_udp as fwd
from netlab.errors import LabFileError
from netlab.explain import script
from netlab.plan import Addr, Bridge, Daemon, Route, Ruleset, Sysctl, Tun, Veth


def plan(**over):
    return api.build_plan(model.load("flannel-udp", name="p", overrides=over))


def arg(argv: tuple[str, ...], flag: str) -> str:
    return argv[argv.index(flag) + 1]


# --- the plan ------------------------------------------------------------------------------------

def test_flannel0_tun_with_its_lease_as_a_32_and_one_overlay_route():
    p = plan()
    assert {t.ns: t for t in p.of(Tun)} == {"p-node1": Tun("p-node1", "flannel0", mtu=1472),
                                             "p-node2": Tun("p-node2", "flannel0", mtu=1472)}
    assert Addr("p-node1", "flannel0", "10.244.1.0/32") in p.objects
    assert Addr("p-node2", "flannel0", "10.244.2.0/32") in p.objects
    routes = [r for r in p.of(Route) if r.ns == "p-node1" and r.dev == "flannel0"]
    assert routes == [Route("p-node1", "10.244.0.0/16", dev="flannel0", scope="universe")]
    # no per-node routes in the kernel: the forwarding table lives in the daemon
    assert not [r for r in p.of(Route) if r.ns == "p-node1" and r.dst.startswith("10.244.2.")]


def test_cni0_veths_and_pods_at_mtu_1472():
    p = plan()
    assert Bridge("p-node1", "cni0", mtu=1472, mac=naming.mac("p", "node1", "cni0")) in p.objects
    assert Addr("p-node1", "cni0", "10.244.1.1/24") in p.objects
    pod_veths = [v for v in p.of(Veth) if v.a.master == "cni0"]
    assert len(pod_veths) == 4 and {(v.a.mtu, v.b.mtu) for v in pod_veths} == {(1472, 1472)}
    assert Addr("p-node2-pod2", "eth0", "10.244.2.3/24") in p.objects


def test_masquerade_and_forward_rules_are_flanneld_s():
    p = plan()
    rs = next(r for r in p.of(Ruleset) if r.ns == "p-node1")
    text = rs.restore_text()
    assert '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG' in text
    assert "-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4" in text and "MASQUERADE --random-fully" in text
    assert "-A FLANNEL-FWD -s 10.244.0.0/16" in text
    assert Sysctl("p-node1", "net/ipv4/ip_forward", "1") in p.objects


def test_one_forwarder_per_node_with_the_whole_table_on_its_command_line():
    p = plan(nodes=3)
    daemons = {d.ns: d for d in p.of(Daemon)}
    assert set(daemons) == {"p-node1", "p-node2", "p-node3"}
    d = daemons["p-node1"]
    # this environment's interpreter, spelled one way however netlab was started
    assert d.argv[:3] == (naming.python(), "-m", "netlab.daemons.flannel_udp")
    assert os.path.samefile(d.argv[0], sys.executable)
    assert arg(d.argv, "--tun") == "flannel0" and arg(d.argv, "--tun-addr") == "10.244.1.0"
    assert arg(d.argv, "--listen") == "192.168.100.11:8285" and arg(d.argv, "--mode") == "flannel"
    routes = [d.argv[i + 1] for i, a in enumerate(d.argv) if a == "--route"]
    assert routes == ["10.244.2.0/24=192.168.100.12", "10.244.3.0/24=192.168.100.13"]
    assert d.ready and d.ready.startswith("{run}/") and d.stats and d.stats.startswith("{run}/")
    assert arg(d.argv, "--ready") == d.ready and arg(d.argv, "--stats") == d.stats
    # the argv parses into the daemon's config
    cfg = fwd.parse_args(list(d.argv[3:]))
    assert cfg.listen == ("192.168.100.11", 8285) and len(cfg.routes) == 2 and cfg.mtu == 1472


def test_mtu_and_options():
    assert {t.mtu for t in plan(mtu=9000).of(Tun)} == {8972}
    p = api.build_plan(model.load("flannel-udp", name="p", overrides={"options": {"mode": "vnet-hdr", "port": 9000}}))
    d = p.of(Daemon)[0]
    assert arg(d.argv, "--mode") == "vnet-hdr" and arg(d.argv, "--listen").endswith(":9000")
    with pytest.raises(LabFileError, match="options.mode"):
        model.load("flannel-udp", name="p", overrides={"options": {"mode": "fast"}})
    with pytest.raises(LabFileError, match="underlay MTU"):
        model.load("flannel-udp", name="p", overrides={"options": {"mtu": 1480}})


def test_explain_shows_the_tun_the_route_and_the_daemons():
    text = script(plan())
    assert "ip -n p-node1 tuntap add dev flannel0 mode tun" in text
    assert "ip -n p-node1 route add 10.244.0.0/16 dev flannel0" in text
    assert "netlab.daemons.flannel_udp" in text and "--route 10.244.2.0/24=192.168.100.12" in text


# --- the forwarder's pure logic --------------------------------------------------------------------

def _header(rng: random.Random) -> bytearray:
    ihl = rng.choice([5, 5, 5, 6, 15])
    h = bytearray(rng.randbytes(ihl * 4))
    h[0] = 0x40 | ihl
    h[8] = rng.randint(2, 255)
    h[10:12] = b"\0\0"
    h[10:12] = struct.pack("!H", fwd.checksum(h))
    return h


def test_decrement_ttl_matches_a_full_recompute():
    rng = random.Random(1624)
    for _ in range(5000):
        h = _header(rng)
        ttl = h[8]
        assert fwd.decrement_ttl(h)
        assert h[8] == ttl - 1
        assert fwd.checksum(h) == 0, "header no longer verifies"
        full = bytearray(h)
        full[10:12] = b"\0\0"
        assert struct.unpack("!H", h[10:12])[0] == fwd.checksum(full)


def test_decrement_ttl_at_an_offset_and_at_the_end_of_life():
    pkt = bytearray(10) + bytearray(bytes(IP(src="10.244.1.2", dst="10.244.2.2", ttl=64) / ICMP()))
    assert fwd.decrement_ttl(pkt, 10)
    assert IP(bytes(pkt[10:])).ttl == 63
    assert IP(bytes(pkt[10:])).chksum == IP(bytes(IP(bytes(pkt[10:])))).chksum
    dying = bytearray(bytes(IP(dst="10.244.2.2", ttl=1) / ICMP()))
    before = bytes(dying)
    assert not fwd.decrement_ttl(dying) and bytes(dying) == before


def test_csum_replace16_is_rfc1624_eqn3():
    # RFC 1624 section 4's example: HC = 0xDD2F, m = 0x5555 -> m' = 0x3285 gives 0x0000, not 0xFFFF
    assert fwd.csum_replace16(0xDD2F, 0x5555, 0x3285) == 0x0000


def test_inlined_ttl_path_in_the_forwarder_equals_decrement_ttl():
    """The hot loop inlines decrement_ttl; run it on real packets through a fake TUN and socket."""
    pkt = bytes(IP(src="10.244.1.2", dst="10.244.2.9", ttl=64, id=7) / TCP(dport=80) / (b"x" * 100))
    cfg = fwd.Config(tun="flannel0", tun_addr="10.244.1.0", listen=("192.168.100.11", 8285), port=8285,
                     routes=(fwd.parse_route("10.244.2.0/24=192.168.100.12"),))
    f = fwd.Forwarder(cfg)
    queue = [pkt]
    sent = []

    class FakeTun:
        def readinto(self, mv):
            if not queue:
                return None
            data = queue.pop(0)
            mv[:len(data)] = data
            return len(data)

    class FakeSock:
        def sendto(self, data, peer):
            sent.append((bytes(data), peer))

    f.tunio, f.sock = FakeTun(), FakeSock()
    f.tun_to_udp()
    assert len(sent) == 1
    data, peer = sent[0]
    assert peer == ("192.168.100.12", 8285)
    want = bytearray(pkt)
    fwd.decrement_ttl(want)
    assert data == bytes(want)
    assert f.c.tun_rx == 1 and f.c.udp_tx == 1 and f.c.udp_tx_bytes == len(pkt)


def test_longest_prefix_match():
    table = fwd.build_table([fwd.parse_route(r) for r in (
        "10.244.0.0/16=192.168.100.1", "10.244.2.0/24=192.168.100.12", "10.244.2.128/25=192.168.100.13",
        "10.244.3.0/24=192.168.100.14")])
    assert [e.subnet.prefixlen for e in table] == [25, 24, 24, 16]

    def hop(ip: str) -> str | None:
        e = fwd.lookup(table, int(IPv4Address(ip)))
        return e.node if e else None

    assert hop("10.244.2.5") == "192.168.100.12"
    assert hop("10.244.2.200") == "192.168.100.13"
    assert hop("10.244.3.1") == "192.168.100.14"
    assert hop("10.244.9.9") == "192.168.100.1"
    assert hop("10.245.0.1") is None
    assert fwd.lookup((), 1) is None
    with pytest.raises(ValueError):
        fwd.parse_route("10.244.2.0/24")
    assert fwd.parse_route(" 10.244.2.0/24 = 192.168.100.12").subnet == IPv4Network("10.244.2.0/24")


def test_net_unreachable_is_flanneld_s_reply():
    offender = bytes(IP(src="10.244.1.2", dst="10.244.9.5", ttl=63, id=42) / ICMP(type=8, id=1, seq=1) / (b"p" * 56))
    raw = fwd.net_unreachable(offender, IPv4Address("10.244.1.0").packed)
    reply = IP(raw)
    assert (reply.src, reply.dst, reply.ttl, reply.proto) == ("10.244.1.0", "10.244.1.2", 8, 1)
    assert reply[ICMP].type == 3 and reply[ICMP].code == 0
    assert IP(bytes(reply)).chksum == reply.chksum  # both checksums were right as built
    assert ICMP(bytes(reply[ICMP])).chksum == reply[ICMP].chksum
    quoted = bytes(reply[ICMP].payload)
    assert quoted == offender[:28]  # the offender's header and first 8 bytes


def test_no_icmp_error_about_icmp_errors_or_later_fragments():
    src = IPv4Address("10.244.1.0").packed
    err = bytes(IP(src="10.244.1.2", dst="10.244.9.5") / ICMP(type=11, code=0) / (b"q" * 28))
    assert fwd.net_unreachable(err, src) is None
    later = bytes(IP(src="10.244.1.2", dst="10.244.9.5", frag=185, proto=17) / (b"z" * 64))
    assert fwd.net_unreachable(later, src) is None
    first = bytes(IP(src="10.244.1.2", dst="10.244.9.5", flags="MF") / UDP(dport=53) / (b"z" * 64))
    assert fwd.net_unreachable(first, src) is not None
    assert fwd.net_unreachable(b"\x60" + bytes(39), src) is None  # IPv6: not ours
    assert fwd.net_unreachable(b"\x45\x00", src) is None  # truncated
