"""``netlab trace`` and ``netlab capture`` on real labs (issue 5).

Golden hop lists: for each lab, the namespaces, interfaces, directions and layer stacks of a
cross-node probe are written here from DATAPATHS.md (the section is named at each lab), not from
netlab's output. Interface names that the datapath draws at random or hashes (veth<hex>,
cali<hex>, the switch port of a node) are read from the kernel independently with ``ip -j``:
the veth whose peer is the pod's eth0, the switch port whose peer is the node's eth0.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from netlab import model
from netlab.trace import engine
from tests.helpers import ipj, link_counter, nsexec, ping, sh, wait_for_quiet, wait_until

pytestmark = pytest.mark.kernel

LABS = {f.stem for f in model.available()}
NETLAB = [sys.executable, "-m", "netlab"]

E3 = "Ether/IP/ICMP"  # a plain pod frame
VX = "Ether/IP/UDP/VXLAN/Ether/IP/ICMP"  # §2b / §3c: outer Ether/IP/UDP/VXLAN, inner Ether/IP
ETHER_TYPES = {"Ether": "eth", "IP": "ip", "UDP": "udp", "VXLAN": "vxlan", "ICMP": "icmp", "TCP": "tcp"}


def needs(lab: str) -> None:
    """Every lab these tests trace has landed: a lab file that is missing or no longer listed is a
    failure here, never a skip that would hide it."""
    assert lab in LABS, f"lab {lab} is not among the lab files ({sorted(LABS)})"


# ---- reading the kernel independently -----------------------------------------------------------

def link(ns: str, name: str) -> dict:
    return ipj(ns, "link", "show", "dev", name)[0]


def peer(ns: str, name: str, peer_ns: str) -> str:
    """The name, in ``peer_ns``, of the other end of veth ``ns:name``: the link's peer namespace id
    (``link_netnsid``, mapped to a name by ``ip netns list-id``) and peer ifindex (``link_index``)."""
    me = link(ns, name)
    ids = json.loads(sh("ip", "-j", "-n", ns, "netns", "list-id", check=False).stdout or "[]")
    if {i.get("name") for i in ids if i["nsid"] == me.get("link_netnsid")} != {peer_ns}:
        raise AssertionError(f"{ns}:{name} has no peer in {peer_ns}")
    return next(l["ifname"] for l in ipj(peer_ns, "link") if l["ifindex"] == me["link_index"])


def addr(ns: str, dev: str = "eth0") -> str:
    return next(a["local"] for a in ipj(ns, "addr", "show", "dev", dev)[0]["addr_info"] if a["family"] == "inet")


def rows(result: engine.TraceResult, leg: str | None = None) -> list[tuple[str, str, str, str]]:
    return [(h.frame.host, h.frame.iface, "tx" if h.frame.direction == "out" else "rx", "/".join(h.decoded.names))
            for h in result.hops if leg is None or h.leg == leg]


def hop(result: engine.TraceResult, leg: str, host: str, iface: str, direction: str) -> engine.Hop:
    return next(h for h in result.hops if h.leg == leg and h.frame.host == host and h.frame.iface == iface
                and h.frame.direction == ("out" if direction == "tx" else "in"))


def layer(h: engine.Hop, name: str, nth: int = 0) -> dict:
    return [l.fields for l in h.decoded.layers if l.name == name and not l.quoted][nth]


def mirror(path: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The reply crosses the same interfaces backwards, each in the other direction."""
    return [(h, i, "rx" if d == "tx" else "tx") for h, i, d in reversed(path)]


def with_stacks(path: list[tuple[str, str, str]], stacks: list[str]) -> list[tuple[str, str, str, str]]:
    assert len(path) == len(stacks)
    return [(*p, s) for p, s in zip(path, stacks)]


class Pods:
    """Two pods on two nodes, and the interface names between them, from the kernel."""

    def __init__(self, lab, a: str = "node1-pod1", b: str = "node2-pod1", node_a: str = "node1",
                 node_b: str = "node2") -> None:
        self.lab, self.a, self.b, self.node_a, self.node_b = lab, a, b, node_a, node_b
        self.host_a = peer(lab.ns(a), "eth0", lab.ns(node_a))
        self.host_b = peer(lab.ns(b), "eth0", lab.ns(node_b))
        self.port_a = peer(lab.ns(node_a), "eth0", lab.ns("switch"))
        self.port_b = peer(lab.ns(node_b), "eth0", lab.ns("switch"))
        self.ip_a, self.ip_b = addr(lab.ns(a)), addr(lab.ns(b))
        self.node_ip_a, self.node_ip_b = addr(lab.ns(node_a)), addr(lab.ns(node_b))

    def underlay(self) -> list[tuple[str, str, str]]:
        return [(self.node_a, "eth0", "tx"), ("switch", self.port_a, "rx"), ("switch", self.port_b, "tx"),
                (self.node_b, "eth0", "rx")]


def trace(lab, src: str, dst: str, **kw) -> engine.TraceResult:
    r = engine.run(lab.plan, src, dst, **kw)
    if not r.complete and not kw.get("allow_stop"):
        print(json.dumps(r.as_dict()["stop"], indent=1))
    return r


def socket_fds() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


def offloads(ns: str, ifaces: list[str]) -> dict[str, str]:
    return {i: nsexec(ns, "ethtool", "-k", i).stdout for i in ifaces}


def packet_sockets(ns: str) -> str:
    return nsexec(ns, "ss", "-0", "-a", "-n").stdout


# ---- vxlan (DATAPATHS.md §2b, §4) ---------------------------------------------------------------

def vxlan_golden(lab) -> tuple[Pods, list[tuple[str, str, str, str]]]:
    p = Pods(lab)
    request = [("node1-pod1", "eth0", "tx"), ("node1", p.host_a, "rx"),
               ("node1", "cni0", "rx"),  # addressed to the gateway 10.244.1.1 on cni0: up to the node
               ("node1", "flannel.1", "tx"),  # 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink
               *p.underlay(),  # the VTEP's UDP 8472 datagram over the underlay
               ("node2", "flannel.1", "rx"), ("node2", "cni0", "tx"), ("node2", p.host_b, "tx"),
               ("node2-pod1", "eth0", "rx")]
    stacks = [E3, E3, E3, E3, VX, VX, VX, VX, E3, E3, E3, E3]
    return p, with_stacks(request, stacks) + with_stacks(mirror(request), stacks[::-1])


def test_vxlan_golden_hops_json_speed_and_nothing_left_behind(lab_factory, tmp_path):
    needs("vxlan")
    lab = lab_factory("vxlan")
    p, golden = vxlan_golden(lab)
    ping(lab.ns("node1-pod1"), p.ip_b)  # ARP and bridge learning done, as on any live cluster
    watched = {lab.ns("node1"): ["eth0", "cni0", "flannel.1", p.host_a], lab.ns("node1-pod1"): ["eth0"]}
    before_off = {ns: offloads(ns, ifs) for ns, ifs in watched.items()}
    before_sockets = {ns: packet_sockets(ns) for ns in (lab.ns("node1"), lab.ns("switch"))}
    before_state = sorted(os.listdir(f"/run/netlab/{lab.name}"))
    before_fds = socket_fds()

    r = trace(lab, "node1-pod1", "node2-pod1")
    assert r.complete and r.stop is None
    assert rows(r) == golden
    # §2b: outer IP node -> node, UDP to 8472, VXLAN flags 0x08 (I) vni 1, inner MACs = the VTEPs'
    out = hop(r, "request", "node1", "eth0", "tx")
    assert (layer(out, "IP")["src"], layer(out, "IP")["dst"]) == (p.node_ip_a, p.node_ip_b)
    assert layer(out, "UDP")["dport"] == 8472
    assert layer(out, "VXLAN") == {"vni": 1, "flags": 0x08}
    vtep1, vtep2 = link(lab.ns("node1"), "flannel.1")["address"], link(lab.ns("node2"), "flannel.1")["address"]
    assert (layer(out, "Ether", 1)["src"], layer(out, "Ether", 1)["dst"]) == (vtep1, vtep2)
    assert (layer(out, "IP", 1)["src"], layer(out, "IP", 1)["dst"]) == (p.ip_a, p.ip_b)
    # what the hops did: node1 routes (MAC rewrite, TTL 64 -> 63), the VTEP wraps, node2's unwraps
    kinds = lambda h: [c.kind for c in h.changes]  # noqa: E731
    assert kinds(hop(r, "request", "node1", "flannel.1", "tx")) == ["mac-rewrite", "ttl"]
    assert kinds(out) == ["encap-added"]
    assert out.changes[0].new["layers"] == ["Ether", "IP", "UDP", "VXLAN"]
    assert kinds(hop(r, "request", "node2", "flannel.1", "rx")) == ["encap-removed"]
    assert layer(hop(r, "request", "node2-pod1", "eth0", "rx"), "IP")["ttl"] == 62

    # --json is the same hop list (how fast the command is, is a benchmark's business, not a test's:
    # under emulation in the stock-kernel VM it takes several seconds)
    cp = sh(*NETLAB, "trace", lab.name, "node1-pod1", "node2-pod1", "--json", check=False)
    assert cp.returncode == 0, cp.stderr
    data = json.loads(cp.stdout)
    assert data["complete"] is True and data["legs"] == ["request", "reply"]
    assert [(h["host"], h["iface"], "tx" if h["direction"] == "out" else "rx", "/".join(h["stack"]))
            for h in data["hops"]] == golden

    # nothing left behind: no socket of ours, no packet socket in the lab, offloads and files as before
    assert socket_fds() == before_fds
    assert {ns: packet_sockets(ns) for ns in before_sockets} == before_sockets
    assert {ns: offloads(ns, ifs) for ns, ifs in watched.items()} == before_off
    assert sorted(os.listdir(f"/run/netlab/{lab.name}")) == before_state
    assert list(tmp_path.iterdir()) == []


def test_vxlan_across_two_racks_goes_through_the_router(lab_factory):
    # issue 3's two-rack underlay: VTEPs only need IP reachability, so the VXLAN datagram is routed
    # by the router between the racks' switches (outer TTL -1, outer MACs rewritten)
    needs("vxlan")
    lab = lab_factory("vxlan", racks=2)
    a, b = lab.ns("node1-pod1"), lab.ns("node2-pod1")
    ip_b = addr(b)
    ping(a, ip_b)
    s1, s2, rt = lab.ns("switch1"), lab.ns("switch2"), lab.ns("router")
    n1_port, n2_port = peer(lab.ns("node1"), "eth0", s1), peer(lab.ns("node2"), "eth0", s2)
    def leg_into(switch: str) -> tuple[str, str]:
        """(router interface, switch port) of the veth between the router and ``switch``."""
        for l in ipj(rt, "link"):
            if l["ifname"] != "lo":
                try:
                    return l["ifname"], peer(rt, l["ifname"], switch)
                except AssertionError:
                    continue
        raise AssertionError(f"router has no leg into {switch}")

    (leg1, r1_port), (leg2, r2_port) = leg_into(s1), leg_into(s2)
    host_a, host_b = peer(a, "eth0", lab.ns("node1")), peer(b, "eth0", lab.ns("node2"))
    request = [("node1-pod1", "eth0", "tx"), ("node1", host_a, "rx"), ("node1", "cni0", "rx"), ("node1", "flannel.1", "tx"),
               ("node1", "eth0", "tx"), ("switch1", n1_port, "rx"), ("switch1", r1_port, "tx"), ("router", leg1, "rx"),
               ("router", leg2, "tx"), ("switch2", r2_port, "rx"), ("switch2", n2_port, "tx"), ("node2", "eth0", "rx"),
               ("node2", "flannel.1", "rx"), ("node2", "cni0", "tx"), ("node2", host_b, "tx"), ("node2-pod1", "eth0", "rx")]
    stacks = [E3] * 4 + [VX] * 8 + [E3] * 4
    r = trace(lab, "node1-pod1", "node2-pod1")
    assert r.complete
    assert rows(r) == with_stacks(request, stacks) + with_stacks(mirror(request), stacks[::-1])
    routed = hop(r, "request", "router", leg2, "tx")
    assert [c.kind for c in routed.changes] == ["mac-rewrite", "ttl"]
    assert layer(routed, "IP")["ttl"] == 63 and layer(routed, "IP", 1)["ttl"] == 63  # outer and inner


def test_vxlan_broken_fdb_names_the_hop_where_the_packet_stops(lab_factory):
    needs("vxlan")
    lab = lab_factory("vxlan")
    p = Pods(lab)
    vtep2 = link(lab.ns("node2"), "flannel.1")["address"]
    sh("bridge", "-n", lab.ns("node1"), "fdb", "del", vtep2, "dev", "flannel.1", "dst", p.node_ip_b, "self")
    # a VTEP just brought up drops its own IPv6 MLD reports (no FDB entry for them) for a few
    # seconds; trace subtracts an idle window, but a report dropped in that window as well as in
    # the probe's cancels the probe's drop out: wait until flannel.1 has been quiet for a second
    wait_for_quiet(link_counter(lab.ns("node1"), "flannel.1", "tx", "dropped"), 1.0)
    r = trace(lab, "node1-pod1", "node2-pod1", timeout=0.5)
    assert not r.complete and r.stop is not None
    # the frame reaches the VTEP and goes no further: flannel.1 has no FDB entry for node2's VTEP MAC
    assert rows(r)[-1] == ("node1", "flannel.1", "tx", E3)
    last = r.stop.last.frame
    assert (last.host, last.iface, last.direction) == ("node1", "flannel.1", "out")
    assert r.stop.expected.kind == "vxlan" and r.stop.expected.iface == "eth0" and p.node_ip_b in r.stop.expected.text
    ev = "\n".join(r.stop.evidence)
    assert re.search(r"flannel.1 tx_drop \+[1-9]", ev)
    assert re.search(rf"fdb append {vtep2} dev flannel.1 dst {re.escape(p.node_ip_b)} self permanent: missing", ev)
    # the CLI says the same and exits non-zero
    cp = sh(*NETLAB, "trace", lab.name, "node1-pod1", "node2-pod1", "--timeout", "0.5", check=False)
    assert cp.returncode == 1 and "STOPPED" in cp.stdout and "last seen: hop 4, node1:flannel.1 tx" in cp.stdout


def _capture(lab, args: list[str], traffic, tmp_path: Path) -> subprocess.CompletedProcess:
    proc = subprocess.Popen([*NETLAB, "capture", lab.name, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    line = proc.stderr.readline()
    assert "capturing on" in line, line + proc.stderr.read()
    traffic()
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return subprocess.CompletedProcess(proc.args, 0, out, line + err)


def netlab_stacks(text: str) -> list[tuple[str, str]]:
    """(interface, stack) from `netlab capture --decode` lines: 'time host:iface tx N B  Ether … / IP … / …'."""
    out = []
    for ln in text.splitlines():
        m = re.match(r"\S+ (\S+) (tx|rx) \d+ B  (.*)", ln)
        if m:
            stack = [part.split()[0] for part in m.group(3).split("  [")[0].split(" / ")]
            out.append((m.group(1), ":".join(ETHER_TYPES.get(s, s.lower()) for s in stack)))
    return out


def tshark_stacks(path: Path, *decode_as: str) -> list[tuple[str, str]]:
    args = ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.interface_name", "-e", "frame.protocols"]
    for d in decode_as:
        args += ["-d", d]
    out = sh(*args).stdout
    res = []
    for ln in out.splitlines():
        name, protos = ln.split("\t")
        protos = ":".join(x for x in protos.split(":") if x not in ("ethertype", "data", "raw"))
        res.append((name, protos))
    return res


def test_vxlan_capture_pcapng_read_by_tshark_matches_netlab(lab_factory, tmp_path):
    needs("vxlan")
    lab = lab_factory("vxlan")
    p = Pods(lab)
    ping(lab.ns("node1-pod1"), p.ip_b)
    f = tmp_path / "hops.pcapng"
    cp = _capture(lab, ["node1:eth0", "node1:flannel.1", "-w", str(f), "-c", "4", "--decode",
                        "--filter", "icmp or udp port 8472"],
                  lambda: ping(lab.ns("node1-pod1"), p.ip_b), tmp_path)
    assert list(tmp_path.iterdir()) == [f]  # the file asked for, nothing else
    ours = netlab_stacks(cp.stdout)
    assert len(ours) == 4
    assert ours[0] == ("node1:flannel.1", "eth:ip:icmp")
    assert ours[1] == ("node1:eth0", "eth:ip:udp:vxlan:eth:ip:icmp")
    # Wireshark binds VXLAN to 4789 only; flannel's 8472 is the lab's port (from the plan)
    assert tshark_stacks(f, "udp.port==8472,vxlan") == ours
    # --all-hops: every planned interface of the lab in one pcapng, interfaces named host:iface
    a = tmp_path / "all.pcapng"
    _capture(lab, ["--all-hops", "-w", str(a), "-c", "24", "--filter", "icmp or udp port 8472"],
             lambda: ping(lab.ns("node1-pod1"), p.ip_b), tmp_path)
    names = {n for n, _ in tshark_stacks(a, "udp.port==8472,vxlan")}
    assert {"node1-pod1:eth0", f"node1:{p.host_a}", "node1:cni0", "node1:flannel.1", "node1:eth0"} <= names
    # --split: one classic pcap per interface, with that interface's link type
    _capture(lab, ["node1:eth0", "node1:flannel.1", "-w", str(tmp_path / "s.pcap"), "--split", "-c", "4",
                   "--filter", "icmp or udp port 8472"], lambda: ping(lab.ns("node1-pod1"), p.ip_b), tmp_path)
    split = sorted(x.name for x in tmp_path.glob("s.*.pcap"))
    assert split == ["s.node1.eth0.pcap", "s.node1.flannel.1.pcap"]
    # Ctrl-C ends a capture cleanly too, with a readable file
    g = tmp_path / "int.pcap"
    proc = subprocess.Popen([*NETLAB, "capture", lab.name, "switch:br0", "-w", str(g)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert "capturing on" in proc.stderr.readline()
    proc.send_signal(2)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "packets" in err
    sh("tshark", "-r", str(g))
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted(["hops.pcapng", "all.pcapng", "int.pcap", *split])


def test_capture_marks_gso_super_frames_and_leaves_offloads_alone(lab_factory, tmp_path):
    needs("vxlan")
    lab = lab_factory("vxlan")
    p = Pods(lab)
    before = offloads(lab.ns("node1-pod1"), ["eth0"])
    server = subprocess.Popen(["ip", "netns", "exec", lab.ns("node2-pod1"), "iperf3", "-s", "-1", "-p", "5299"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: nsexec(lab.ns("node2-pod1"), "ss", "-Hntl", "sport = :5299").stdout.strip(),
                   what="iperf3 listening on 5299")
        f = tmp_path / "gso.pcapng"
        cp = _capture(lab, ["node1-pod1:eth0", "-w", str(f), "--decode", "-c", "30", "--filter", "tcp port 5299"],
                      lambda: nsexec(lab.ns("node1-pod1"), "iperf3", "-c", p.ip_b, "-p", "5299", "-n", "4M"), tmp_path)
    finally:
        server.wait(timeout=10)
    # veth passes TCP super-frames unsegmented: longer than the 1450-byte MTU, and marked so
    big = [ln for ln in cp.stdout.splitlines() if "GSO super-frame" in ln]
    assert big, cp.stdout
    assert any(int(re.search(r" (\d+) B ", ln).group(1)) > 1450 + 14 for ln in big)
    comments = sh("tshark", "-r", str(f), "-T", "fields", "-e", "frame.comment").stdout
    assert "segmented later" in comments
    assert offloads(lab.ns("node1-pod1"), ["eth0"]) == before


# ---- flannel-udp (DATAPATHS.md §2a) -------------------------------------------------------------

def test_flannel_udp_golden_tun_and_bare_ip_in_udp_8285(lab_factory, tmp_path):
    needs("flannel-udp")
    lab = lab_factory("flannel-udp")
    p = Pods(lab)
    ping(lab.ns("node1-pod1"), p.ip_b)
    UDPIP = "Ether/IP/UDP/IP/ICMP"  # outer IP/UDP(8285 -> 8285)/<bare inner IPv4>, no header of its own
    TUN = "IP/ICMP"  # flannel0 is IFF_TUN|IFF_NO_PI: no Ethernet header
    request = [("node1-pod1", "eth0", "tx"), ("node1", p.host_a, "rx"), ("node1", "cni0", "rx"),
               ("node1", "flannel0", "tx"),  # 10.244.0.0/16 dev flannel0: to flanneld's proxy
               *p.underlay(),
               ("node2", "flannel0", "rx"),  # the proxy writes it into node2's TUN
               ("node2", "cni0", "tx"), ("node2", p.host_b, "tx"), ("node2-pod1", "eth0", "rx")]
    stacks = [E3, E3, E3, TUN, UDPIP, UDPIP, UDPIP, UDPIP, TUN, E3, E3, E3]
    r = trace(lab, "node1-pod1", "node2-pod1")
    assert r.complete
    assert rows(r) == with_stacks(request, stacks) + with_stacks(mirror(request), stacks[::-1])
    out = hop(r, "request", "node1", "eth0", "tx")
    assert (layer(out, "UDP")["sport"], layer(out, "UDP")["dport"]) == (8285, 8285)
    assert hop(r, "request", "node1", "flannel0", "tx").frame.ethernet is False
    # §2a: the inner TTL drops by 2 per tunnel crossing on top of the two forwarding decrements
    assert layer(hop(r, "request", "node2-pod1", "eth0", "rx"), "IP")["ttl"] == 64 - 1 - 2 - 1
    # tshark agrees on the underlay: told that UDP 8285 carries IP (as flanneld's proxy sends it)
    u = tmp_path / "udp.pcapng"
    cp = _capture(lab, ["node1:eth0", "node1:flannel0", "-w", str(u), "-c", "4", "--decode",
                        "--filter", "icmp or udp port 8285"], lambda: ping(lab.ns("node1-pod1"), p.ip_b), tmp_path)
    ours = netlab_stacks(cp.stdout)
    assert ("node1:eth0", "eth:ip:udp:ip:icmp") in ours and ("node1:flannel0", "ip:icmp") in ours
    assert tshark_stacks(u, "udp.port==8285,ip") == ours
    # a TUN capture is raw IP for tshark too
    f = tmp_path / "tun.pcap"
    _capture(lab, ["node1:flannel0", "-w", str(f), "-c", "2", "--filter", "icmp"],
             lambda: ping(lab.ns("node1-pod1"), p.ip_b), tmp_path)
    assert int.from_bytes(f.read_bytes()[20:24], "little") == 101  # LINKTYPE_RAW in the pcap header
    assert sh("tshark", "-r", str(f), "-T", "fields", "-e", "frame.protocols").stdout.split() == ["raw:ip:icmp:data"] * 2
    # without its user-space forwarder, nothing reads flannel0: the trace names the dead daemon
    d = next(d for d in lab.state.daemons if d.ns == lab.ns("node1"))
    os.kill(d.pid, 9)
    r = trace_until_tun_drops(lab, seconds=30)
    assert not r.complete
    # the last sighting is the route into flannel0 (cni0 rx) or flannel0's own transmit tap, which
    # runs before the TUN driver finds nobody attached and drops it; either way the plan's next
    # step is the daemon's
    assert (rows(r)[-1][:3], r.stop.expected.kind) in ((("node1", "cni0", "rx"), "route"),
                                                       (("node1", "flannel0", "tx"), "tun"))
    ev = "\n".join(r.stop.evidence)
    assert f"daemon {d.name} (pid {d.pid}) is not running" in ev and "flannel0 tx_drop" in ev


def trace_until_tun_drops(lab, seconds: float) -> engine.TraceResult:
    """Trace until flannel0 counts a drop. After SIGKILL the forwarder still holds flannel0 until
    the kernel has scheduled it to exit and closed its files; until then the TUN queues the
    packet instead of dropping it. How long that takes depends on the machine (seconds under
    emulation), so wait for the condition instead of assuming a delay."""
    def stopped_with_a_drop() -> engine.TraceResult | None:
        r = engine.run(lab.plan, "node1-pod1", "node2-pod1", timeout=0.5, state=lab.state)
        return r if not r.complete and "flannel0 tx_drop" in "\n".join(r.stop.evidence) else None
    return wait_until(stopped_with_a_drop, timeout=seconds, interval=0.2,
                      what="a trace stopped at flannel0 with its tx_drop counted")


# ---- docker-nat (DATAPATHS.md §1, the seed's Spark example) -------------------------------------

def test_docker_nat_three_rewrites(lab_factory):
    needs("docker-nat")
    lab = lab_factory("docker-nat")
    p = Pods(lab, "executor1", "executor3")
    T3 = "Ether/IP/TCP"
    request = [("executor1", "eth0", "tx"), ("node1", p.host_a, "rx"), ("node1", "docker0", "rx"),
               *p.underlay(),  # MASQUERADE -s 172.17.0.0/16 ! -o docker0 as it leaves eth0
               ("node2", "docker0", "tx"),  # DOCKER chain: DNAT to 172.17.0.2:7070, routed to docker0
               ("node2", p.host_b, "tx"), ("executor3", "eth0", "rx")]
    r = trace(lab, "executor1", "node2", proto="tcp", port=12347)
    assert r.complete, r.stop
    assert rows(r) == with_stacks(request, [T3] * 10) + with_stacks(mirror(request), [T3] * 10)
    nat = [(h.frame.host, h.frame.iface, c.kind, c.old.get("addr"), c.old.get("port"), c.new.get("addr"),
            c.new.get("port")) for h in r.hops for c in h.changes if c.kind in ("snat", "dnat", "undnat", "unsnat")]
    sport = r.probe.sport
    assert nat == [
        ("node1", "eth0", "snat", "172.17.0.2", sport, p.node_ip_a, sport),  # 1. SNAT on node1
        ("node2", "docker0", "dnat", p.node_ip_b, 12347, "172.17.0.2", 7070),  # 2. DNAT on node2
        ("node2", "eth0", "undnat", "172.17.0.2", 7070, p.node_ip_b, 12347),  # 3. the reply, reversed
        ("node1", "docker0", "unsnat", p.node_ip_a, sport, "172.17.0.2", sport),
    ]
    # executor3 saw node1's address, not executor1's: what Spark's driver.host settings are about
    assert layer(hop(r, "request", "executor3", "eth0", "rx"), "IP")["src"] == p.node_ip_a

    # break it: without the filter DOCKER chain's per-port ACCEPT, FORWARD's policy DROP takes it
    sh("ip", "netns", "exec", lab.ns("node2"), "iptables", "-D", "DOCKER", "-d", "172.17.0.2/32", "!", "-i", "docker0",
       "-o", "docker0", "-p", "tcp", "-m", "tcp", "--dport", "7070", "-j", "ACCEPT")
    r = trace(lab, "executor1", "node2", proto="tcp", port=12347, timeout=0.5)
    assert not r.complete and rows(r)[-1] == ("node2", "eth0", "rx", T3)
    assert r.stop.expected.kind == "dnat" and "172.17.0.2:7070" in r.stop.expected.text
    ev = "\n".join(r.stop.evidence)
    assert "iptables filter FORWARD policy DROP: +1 packets" in ev
    assert "missing: -A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 7070 -j ACCEPT" in ev


# ---- host-gw (DATAPATHS.md §2c) -----------------------------------------------------------------

def test_host_gw_golden_no_encapsulation(lab_factory):
    needs("host-gw")
    lab = lab_factory("host-gw")
    p = Pods(lab)
    ping(lab.ns("node1-pod1"), p.ip_b)
    request = [("node1-pod1", "eth0", "tx"), ("node1", p.host_a, "rx"), ("node1", "cni0", "rx"),
               *p.underlay(),  # 10.244.2.0/24 via <node2 IP> dev eth0: the pod packet itself on the wire
               ("node2", "cni0", "tx"), ("node2", p.host_b, "tx"), ("node2-pod1", "eth0", "rx")]
    r = trace(lab, "node1-pod1", "node2-pod1")
    assert r.complete
    assert rows(r) == with_stacks(request, [E3] * 10) + with_stacks(mirror(request), [E3] * 10)
    out = hop(r, "request", "node1", "eth0", "tx")
    assert (layer(out, "IP")["src"], layer(out, "IP")["dst"]) == (p.ip_a, p.ip_b)
    assert layer(out, "Ether")["dst"] == link(lab.ns("node2"), "eth0")["address"]


# ---- bridge (DATAPATHS.md §1) -------------------------------------------------------------------

def test_bridge_golden_l2_between_containers_and_masquerade_out(lab_factory):
    needs("bridge")
    lab = lab_factory("bridge")
    node = "node1"
    c1 = peer(lab.ns("container1"), "eth0", lab.ns(node))
    c2 = peer(lab.ns("container2"), "eth0", lab.ns(node))
    ip2 = addr(lab.ns("container2"))
    ping(lab.ns("container1"), ip2)
    # same /16 on docker0: bridged, never routed (no MAC rewrite, no TTL change)
    request = [("container1", "eth0", "tx"), (node, c1, "rx"), (node, c2, "tx"), ("container2", "eth0", "rx")]
    r = trace(lab, "container1", "container2")
    assert r.complete
    assert rows(r) == with_stacks(request, [E3] * 4) + with_stacks(mirror(request), [E3] * 4)
    assert all(not h.changes for h in r.hops)
    # outbound: MASQUERADE -s 172.17.0.0/16 ! -o docker0 as it leaves the host
    router_ip = addr(lab.ns("router"))
    r = trace(lab, "container1", "router")
    assert r.complete
    snat = [c for h in r.hops for c in h.changes if c.kind == "snat"]
    assert len(snat) == 1 and snat[0].new["addr"] == addr(lab.ns(node))
    assert hop(r, "request", "router", "eth0", "rx") is not None and r.probe.dst == router_ip


# ---- Calico (DATAPATHS.md §3, §3a, §3c) ---------------------------------------------------------

CALI_MAC = "ee:ee:ee:ee:ee:ee"


def wait_for_bird(lab, node: str, block_of: str, seconds: float = 30) -> None:
    """BIRD installs the remote block (proto bird) some seconds after up."""
    def routed() -> bool:
        return any(r.get("protocol") == "bird" and r.get("gateway") for r in ipj(lab.ns(node), "route")) \
            and ping(lab.ns(f"{node}-pod1"), block_of, timeout=1)
    wait_until(routed, timeout=seconds, interval=0.5, what=f"BIRD's routes in {node} carrying a ping to {block_of}")


def calico_request(p: Pods) -> list[tuple[str, str, str]]:
    # no bridge: the pod's default via 169.254.1.1 is answered by proxy ARP on cali* (MAC ee:…),
    # node1 routes <block>/26 via <node2 IP> dev eth0 (proto bird), node2 <pod>/32 dev caliX
    return [("node1-pod1", "eth0", "tx"), ("node1", p.host_a, "rx"), *p.underlay(), ("node2", p.host_b, "tx"),
            ("node2-pod1", "eth0", "rx")]


@pytest.mark.parametrize("labname", ["calico", "calico-rr"])
def test_calico_golden_no_encapsulation_and_the_cali_mac(lab_factory, labname):
    needs(labname)
    lab = lab_factory(labname, nodes=2)
    p = Pods(lab)
    assert p.host_a.startswith("cali") and p.host_b.startswith("cali")
    wait_for_bird(lab, "node1", p.ip_b)
    request = calico_request(p)
    r = trace(lab, "node1-pod1", "node2-pod1")
    assert r.complete
    assert rows(r) == with_stacks(request, [E3] * 8) + with_stacks(mirror(request), [E3] * 8)
    assert not any(c.kind.startswith("encap") for h in r.hops for c in h.changes)
    assert layer(hop(r, "request", "node1-pod1", "eth0", "tx"), "Ether")["dst"] == CALI_MAC
    assert layer(hop(r, "request", "node2", p.host_b, "tx"), "Ether")["src"] == CALI_MAC
    assert link(lab.ns("node2"), p.host_b)["address"] == CALI_MAC
    if labname == "calico":
        # break one hop: delete node2's /32 route to its pod; the packet dies on node2 (blackhole /26)
        sh("ip", "-n", lab.ns("node2"), "route", "del", f"{p.ip_b}/32")
        r = trace(lab, "node1-pod1", "node2-pod1", timeout=0.5)
        assert not r.complete
        assert rows(r)[-1] == ("node2", "eth0", "rx", E3)
        assert (r.stop.last.frame.host, r.stop.last.frame.iface) == ("node2", "eth0")
        assert r.stop.expected.iface == p.host_b
        ev = "\n".join(r.stop.evidence)
        assert "blackhole" in ev and f"{p.ip_b}/32 dev {p.host_b}" in ev and "missing" in ev


def test_calico_vxlan_golden_4789_vni_4096(lab_factory):
    needs("calico-vxlan")
    lab = lab_factory("calico-vxlan", nodes=2)
    p = Pods(lab)
    ping(lab.ns("node1-pod1"), p.ip_b)
    request = [("node1-pod1", "eth0", "tx"), ("node1", p.host_a, "rx"),
               ("node1", "vxlan.calico", "tx"),  # <block>/26 via <remote tunnel IP> dev vxlan.calico onlink
               *p.underlay(), ("node2", "vxlan.calico", "rx"), ("node2", p.host_b, "tx"), ("node2-pod1", "eth0", "rx")]
    stacks = [E3, E3, E3, VX, VX, VX, VX, E3, E3, E3]
    r = trace(lab, "node1-pod1", "node2-pod1")
    assert r.complete
    assert rows(r) == with_stacks(request, stacks) + with_stacks(mirror(request), stacks[::-1])
    out = hop(r, "request", "node1", "eth0", "tx")
    assert layer(out, "UDP")["dport"] == 4789 and layer(out, "VXLAN")["vni"] == 4096
    assert layer(hop(r, "request", "node2", p.host_b, "tx"), "Ether")["src"] == CALI_MAC
