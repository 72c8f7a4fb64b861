"""The faults an SRE meets, as a catalogue: for each, ``status`` names it, ``trace`` stops where the
kernel drops the packet, and ``trace`` names the cause (issue 12).

Every case runs on a fresh small lab (two nodes, one pod each where the lab allows). It breaks the
lab with the commands an operator (or a bug) would run, then asks three questions:

1. does ``status`` (``lab.verify()``) name the changed object: a problem (or a daemon) whose text
   matches ``status``? (``status=None``: the lab is healthy and status must say so);
2. does the trace stop in the namespace where the kernel really drops the packet (``stop``)? The
   hop is confirmed independently of netlab: tcpdump sees the probe on ``seen`` and never on
   ``gone`` (the interface the plan would have used next);
3. does the trace name the cause: its most likely cause matches ``cause``?

The cases cover drift in planned objects, faults outside the plan (inserted rules, chain
policies, extra routes, rp_filter with asymmetric routing, a stopped daemon, lost BGP routes),
faults upstream of the drop (SNAT missing on the source node, the destination's bridge down, a
wrong route on the source) and faults that break only some flows (one port's DNAT, one pod's
route). A summary table (fault | status | stop hop | cause) is printed at the end of the module.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from netlab import bgp
from netlab.trace import engine
from tests.helpers import Capture, ipj, wait_until

pytestmark = pytest.mark.kernel

SMALL = {"nodes": 2, "pods": 1}
ANY_IP = "(icmp or udp or tcp) and not tcp port 179"  # the probe in any form (plain, VXLAN, UDP); no BGP, no IGMP


@dataclass(frozen=True)
class Fault:
    """One case of the catalogue. Commands are ``"host: argv"`` with ``{placeholders}`` from the
    lab (see :func:`context`); ``seen``/``gone`` are ``(host, iface)`` for the independent
    capture, with the BPF filter ``bpf`` (placeholders too)."""

    name: str
    lab: str
    setup: tuple[str, ...]
    status: str | None  # regex over status's problems; None: status must report a healthy lab
    stop: str  # the host where the kernel drops the packet
    cause: str  # regex over the trace's most likely cause (host and text)
    seen: tuple[str, str] | None = None
    gone: tuple[str, str] | None = None
    src: str = "node1-pod1"
    dst: str = "node2-pod1"
    proto: str = "icmp"
    port: int | None = None
    overrides: dict = field(default_factory=dict)
    bpf: str = ANY_IP
    gone_bpf: str | None = None  # the filter on ``gone`` when it differs (an answer that never left)
    size: int | None = None
    settle: str | None = None  # a named wait (see SETTLE) after the setup
    also_works: tuple[str, str, str, int | None] | None = None  # (src, dst, proto, port) unaffected by it


def _fault(name: str, lab: str, setup: list[str] | tuple[str, ...], status: str | None, stop: str, cause: str,
           **kw) -> Fault:
    return Fault(name, lab, tuple(setup), status, stop, cause, **kw)


VX = "udp port 8472"
CASES: list[Fault] = [
    # ---- flannel vxlan -------------------------------------------------------------------------
    _fault("vxlan: FDB entry for node2's VTEP deleted on node1", "vxlan",
           ["node1: bridge fdb del {mac_node2_flannel.1} dev flannel.1 dst {ip_node2} self"],
           r"fdb .*flannel\.1.*missing", "node1", r"flannel\.1", seen=("node1", "flannel.1"), gone=("node1", "eth0"),
           bpf=f"icmp or {VX}"),
    _fault("vxlan: permanent neighbour of node2's VTEP deleted on node1", "vxlan",
           ["node1: ip neigh del 10.244.2.0 dev flannel.1"],
           r"neigh.*10\.244\.2\.0.*missing", "node1", r"10\.244\.2\.0", seen=("node1", "cni0"),
           gone=("node1", "flannel.1")),
    _fault("vxlan: node2's VTEP down", "vxlan", ["node2: ip link set flannel.1 down"],
           r"flannel\.1.*down", "node2", r"flannel\.1", seen=("node2", "eth0"), gone=("node2", "cni0")),
    _fault("vxlan: inserted FORWARD -j DROP on node1 (not in the plan)", "vxlan",
           ["node1: iptables -I FORWARD -j DROP"],
           r"FORWARD.*DROP", "node1", r"FORWARD -j DROP", seen=("node1", "cni0"), gone=("node1", "flannel.1")),
    _fault("vxlan: INPUT policy DROP in the destination pod (not in the plan)", "vxlan",
           ["node2-pod1: iptables -P INPUT DROP"],
           r"INPUT.*DROP", "node2-pod1", r"policy DROP", seen=("node2-pod1", "eth0"), gone=("node2-pod1", "eth0"),
           bpf="icmp[icmptype] == icmp-echo", gone_bpf="icmp[icmptype] == icmp-echoreply"),
    _fault("vxlan: hand-added blackhole route to the pod on node1", "vxlan",
           ["node1: ip route add blackhole {ip_node2-pod1}/32"],
           r"blackhole", "node1", r"blackhole", seen=("node1", "cni0"), gone=("node1", "flannel.1")),
    _fault("vxlan: rp_filter=1 on node2 with the route back via the underlay (asymmetric)", "vxlan",
           ["node2: ip route replace 10.244.1.0/24 via {ip_node1} dev eth0", "node2: sysctl -qw net.ipv4.conf.all.rp_filter=1"],
           r"10\.244\.1\.0/24|rp_filter", "node2", r"reverse-path|rp_filter", seen=("node2", "flannel.1"),
           gone=("node2", "cni0")),
    _fault("vxlan: destination bridge cni0 down (upstream: dies at the router)", "vxlan",
           ["node2: ip link set cni0 down"],
           r"cni0.*down", "router", r"node2.*cni0|cni0.*node2", seen=("router", "eth0"), gone=("node2-pod1", "eth0")),
    _fault("vxlan: wrong route on the source node (to the router instead of the VTEP)", "vxlan",
           ["node1: ip route replace 10.244.2.0/24 via 192.168.100.1 dev eth0"],
           r"10\.244\.2\.0/24", "router", r"node1.*10\.244\.2", seen=("router", "eth0"), gone=("node1", "flannel.1")),
    _fault("vxlan: address no host has (10.244.2.99 inside node2's /24)", "vxlan", [], None, "node2",
           r"no host has this address.*node2 ARPed", dst="10.244.2.99", seen=("node2", "eth0"), gone=("node2", "cni0"),
           bpf=VX),
    _fault("vxlan: node1's VTEP MTU lowered below the pod MTU", "vxlan", ["node1: ip link set flannel.1 mtu 1300"],
           r"flannel\.1.*mtu", "node1", r"FragFails|mtu|MTU", seen=("node1", "cni0"), gone=("node1", "flannel.1"),
           bpf="icmp[icmptype] == icmp-echo", size=1380),
    # ---- flannel host-gw -----------------------------------------------------------------------
    _fault("host-gw: node1's route to node2's subnet deleted (dies at the router)", "host-gw",
           ["node1: ip route del 10.244.2.0/24"],
           r"10\.244\.2\.0/24.*missing", "router", r"node1.*10\.244\.2", seen=("router", "eth0"), gone=("node2", "eth0")),
    _fault("host-gw: FORWARD drop for one source pod on node2 (only that pod's flows)", "host-gw",
           ["node2: iptables -I FORWARD -s {ip_node1-pod1} -j DROP"],
           r"FORWARD.*DROP", "node2", r"FORWARD -s", seen=("node2", "eth0"), gone=("node2", "cni0"),
           also_works=("node1", "node2-pod1", "icmp", None)),
    _fault("host-gw: ip_forward off on node2", "host-gw", ["node2: sysctl -qw net.ipv4.ip_forward=0"],
           r"ip_forward", "node2", r"ip_forward|InAddrErrors", seen=("node2", "eth0"), gone=("node2", "cni0")),
    _fault("host-gw: the destination pod lost its routes (only its answers)", "host-gw",
           ["node2-pod1: ip route del default", "node2-pod1: ip route del 10.244.0.0/16"],
           r"default via 10\.244\.2\.1.*missing|10\.244\.0\.0/16.*missing", "node2-pod1", r"node2-pod1",
           seen=("node2-pod1", "eth0"), gone=("node2-pod1", "eth0"), bpf="icmp[icmptype] == icmp-echo",
           gone_bpf="icmp[icmptype] == icmp-echoreply",
           also_works=("node1-pod1", "node2", "icmp", None)),
    _fault("host-gw: node1's neighbour entry for node2 poisoned to a wrong MAC (the switch floods it)", "host-gw",
           ["node1: ip neigh replace {ip_node2} dev eth0 lladdr 02:00:00:00:00:99 nud permanent"],
           r"neigh|02:00:00:00:00:99", "switch", r"02:00:00:00:00:99", seen=("switch", "{port_node1}"),
           gone=("node2", "eth0"), gone_bpf="icmp and ether dst {mac_node2_eth0}"),  # flooded copies are not for node2
    # ---- flannel UDP ---------------------------------------------------------------------------
    _fault("flannel-udp: node1's forwarder SIGSTOPped", "flannel-udp", ["node1: kill -STOP {pid_node1}"],
           r"flannel-udp.*stopped|stopped", "node1", r"flannel-udp", seen=("node1", "cni0"), gone=("node1", "eth0")),
    _fault("flannel-udp: node2's forwarder killed", "flannel-udp", ["node2: kill -KILL {pid_node2}"],
           r"flannel-udp", "node2", r"flannel-udp", seen=("node2", "eth0"), gone=("node2", "cni0"),
           settle="node2 forwarder gone"),
    _fault("flannel-udp: node1's TUN down (dies at the router)", "flannel-udp", ["node1: ip link set flannel0 down"],
           r"flannel0.*down", "router", r"node1.*flannel0|flannel0", seen=("router", "eth0"), gone=("node2", "eth0")),
    # ---- Calico BGP ----------------------------------------------------------------------------
    _fault("calico: proxy ARP off on the pod's cali interface", "calico",
           ["node1: sysctl -qw net.ipv4.conf.{veth_node1-pod1}.proxy_arp=0", "node1-pod1: ip neigh flush dev eth0"],
           r"proxy_arp", "node1-pod1", r"proxy_arp", gone=("node1-pod1", "eth0"), bpf="icmp"),
    # BIRD re-installs a route deleted under it at its next kernel scan, so the fault only lasts
    # with node1's BIRD hung (stopped) first: the route is lost and nothing puts it back
    _fault("calico: node1's BIRD hung and its route to node2's block deleted", "calico",
           ["node1: kill -STOP {pid_node1}", "node1: ip route del 192.168.2.0/26"],
           r"192\.168\.2\.0/26", "router", r"node1.*(192\.168\.2\.0/26|bird)", seen=("router", "eth0"),
           gone=("node2", "eth0")),
    _fault("calico: birdc disable of node1's session to node2", "calico",
           ["node1: birdc -s {bird_node1} disable {session_node1}"],
           r"Established|192\.168\.2\.0/26", "router", r"192\.168\.2\.0/26", seen=("router", "eth0"),
           gone=("node2", "eth0"), settle="node1 lost node2's block"),
    _fault("calico: node2's BIRD SIGSTOPped (the session times out)", "calico", ["node2: kill -STOP {pid_node2}"],
           r"bird.*stopped|stopped", "router", r"bird", seen=("router", "eth0"), gone=("node2", "eth0"),
           settle="node1 lost node2's block"),
    _fault("calico: the destination pod's cali interface down", "calico", ["node2: ip link set {veth_node2-pod1} down"],
           r"down", "node2", r"{veth_node2-pod1}", seen=("node2", "eth0"), gone=("node2-pod1", "eth0")),
    _fault("calico: a DROP rule inserted at the top of cali-FORWARD on node2", "calico",
           ["node2: iptables -I cali-FORWARD -o cali+ -j DROP"],
           r"cali-FORWARD.*DROP", "node2", r"cali-FORWARD -o cali\+ -j DROP", seen=("node2", "eth0"),
           gone=("node2-pod1", "eth0")),
    # ---- Calico with a route reflector ---------------------------------------------------------
    _fault("calico-rr: the reflector's session to node2 disabled", "calico-rr",
           ["rr: birdc -s {bird_rr} disable {session_rr_node2}"],
           r"Established|192\.168\.2\.0/26", "router", r"192\.168\.2\.0/26", seen=("router", "eth0"),
           gone=("node2", "eth0"), settle="node1 lost node2's block"),
    _fault("calico-rr: the destination pod lost its default route (only its answers)", "calico-rr",
           ["node2-pod1: ip route del default"],
           r"default via 169\.254\.1\.1.*missing", "node2-pod1", r"node2-pod1.*default", seen=("node2-pod1", "eth0"),
           gone=("node2-pod1", "eth0"), bpf="icmp[icmptype] == icmp-echo", gone_bpf="icmp[icmptype] == icmp-echoreply",
           also_works=("node1-pod1", "node2", "icmp", None)),
    # ---- Calico VXLAN --------------------------------------------------------------------------
    _fault("calico-vxlan: FDB entry for node2's VTEP deleted on node1", "calico-vxlan",
           ["node1: bridge fdb del {mac_node2_vxlan.calico} dev vxlan.calico dst {ip_node2} self"],
           r"fdb .*vxlan\.calico.*missing", "node1", r"vxlan\.calico", seen=("node1", "vxlan.calico"),
           gone=("node1", "eth0"), bpf="icmp or udp port 4789"),
    _fault("calico-vxlan: VXLAN port dropped by an INPUT rule on node2", "calico-vxlan",
           ["node2: iptables -I INPUT -p udp --dport 4789 -j DROP"],
           r"INPUT.*4789", "node2", r"INPUT -p udp", seen=("node2", "eth0"), gone=("node2", "vxlan.calico")),
    _fault("calico-vxlan: node1's route to node2's block deleted (dies at the router)", "calico-vxlan",
           ["node1: ip route del 192.168.2.0/26"],
           r"192\.168\.2\.0/26.*missing", "router", r"node1.*192\.168\.2\.0/26", seen=("router", "eth0"),
           gone=("node1", "vxlan.calico")),
    # ---- Docker NAT between hosts --------------------------------------------------------------
    _fault("docker-nat: MASQUERADE missing on the source node (upstream: the answer dies on node2)", "docker-nat",
           ["node1: iptables -t nat -D POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"],
           r"MASQUERADE", "node2", r"node1.*MASQUERADE", src="executor1", dst="node2", proto="tcp", port=12346,
           seen=("executor2", "eth0"), gone=("node2", "eth0"), bpf="tcp port 7070",
           gone_bpf="tcp[tcpflags] & tcp-ack != 0"),
    _fault("docker-nat: one published port's DNAT deleted (docker-proxy answers)", "docker-nat",
           ["node2: iptables -t nat -D DOCKER ! -i docker0 -p tcp -m tcp --dport 12347 -j DNAT --to-destination 172.17.0.2:7070"],
           r"12347 -j DNAT", "node2", r"docker-proxy.*DNAT", src="executor1", dst="node2", proto="tcp", port=12347,
           overrides={"nodes": 2, "pods": 2}, seen=("node2", "eth0"), gone=("node2", "docker0"), bpf="tcp",
           also_works=("executor1", "node2", "tcp", 12348)),
    _fault("docker-nat: DNAT deleted without the userland proxy (the node resets)", "docker-nat",
           ["node2: iptables -t nat -D DOCKER -p tcp -m tcp --dport 12346 -j DNAT --to-destination 172.17.0.2:7070"],
           r"12346 -j DNAT", "node2", r"reset.*DNAT did not happen", src="executor1", dst="node2", proto="tcp",
           port=12346, overrides={"nodes": 2, "pods": 1, "options": {"userland_proxy": False}},
           seen=("node2", "eth0"), gone=("node2", "docker0"), bpf="tcp"),
    _fault("docker-nat: the published port's FORWARD ACCEPT deleted (FORWARD policy DROP)", "docker-nat",
           ["node2: iptables -D DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 7070 -j ACCEPT"],
           r"DOCKER.*7070.*ACCEPT", "node2", r"ACCEPT|policy DROP", src="executor1", dst="node2", proto="tcp",
           port=12346, seen=("node2", "eth0"), gone=("node2", "docker0"), bpf="tcp"),
    # ---- Docker bridge -------------------------------------------------------------------------
    _fault("bridge: MASQUERADE missing (upstream: the router cannot answer)", "bridge",
           ["node1: iptables -t nat -D POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"],
           r"MASQUERADE", "router", r"node1.*MASQUERADE", src="container1", dst="router", seen=("router", "eth0"),
           gone=("router", "eth0"), bpf="icmp[icmptype] == icmp-echo", gone_bpf="icmp[icmptype] == icmp-echoreply",
           overrides={"pods": 2}),
    _fault("bridge: container2's port detached from docker0", "bridge",
           ["node1: ip link set {veth_container2} nomaster"],
           r"{veth_container2}.*master", "container1", r"172\.17\.0\.3|{veth_container2}", src="container1",
           dst="container2", gone=("container1", "eth0"), bpf="icmp", overrides={"pods": 2}),
    _fault("bridge: FORWARD's ACCEPT for docker0 egress deleted (policy DROP)", "bridge",
           ["node1: iptables -D FORWARD -i docker0 ! -o docker0 -j ACCEPT"],
           r"FORWARD.*docker0.*ACCEPT", "node1", r"ACCEPT|policy DROP", src="container1", dst="router",
           seen=("node1", "docker0"), gone=("node1", "eth0"), bpf="icmp", overrides={"pods": 2}),
]


# ---- the lab's names, read from the kernel and the lab's state ----------------------------------

def _peer_of_eth0(lab, host: str) -> str | None:
    """The node-side name of a pod's eth0 (its veth peer), from the kernel (ifindex and netns id)."""
    ns = lab.ns(host)
    node = lab.plan.host(host).node
    if not node:
        return None
    me = ipj(ns, "link", "show", "dev", "eth0")[0]
    return next((x["ifname"] for x in ipj(lab.ns(node), "link") if x["ifindex"] == me.get("link_index")), None)


def _switch_port(lab, host: str) -> str | None:
    try:
        sw = lab.ns("switch")
    except Exception:
        return None
    me = ipj(lab.ns(host), "link", "show", "dev", "eth0")[0]
    return next((x["ifname"] for x in ipj(sw, "link") if x["ifindex"] == me.get("link_index")), None)


def context(lab) -> dict[str, str]:
    """Placeholders for the commands: ``ip_<host>``, ``veth_<pod>``, ``mac_<host>_<dev>``,
    ``port_<node>`` (its switch port), ``pid_<host>``, ``bird_<host>`` (birdc socket) and
    ``session_<host>`` / ``session_<host>_<peer>`` (BIRD protocol names)."""
    ctx: dict[str, str] = {}
    for n in lab.plan.namespaces:
        addrs = ipj(n.name, "-4", "addr", "show", "dev", "eth0") if n.role != "switch" else []
        if addrs and addrs[0].get("addr_info"):
            ctx[f"ip_{n.host}"] = addrs[0]["addr_info"][0]["local"]
        if n.role == "pod":
            ctx[f"veth_{n.host}"] = _peer_of_eth0(lab, n.host) or "?"
        if n.role == "node":
            ctx[f"port_{n.host}"] = _switch_port(lab, n.host) or "?"
            for link in ipj(n.name, "link"):
                ctx[f"mac_{n.host}_{link['ifname']}"] = link.get("address", "")
    for d in lab.state.daemons:
        host = next(n.host for n in lab.plan.namespaces if n.name == d.ns)
        ctx.setdefault(f"pid_{host}", str(d.pid))
    ips = {v: k[3:] for k, v in ctx.items() if k.startswith("ip_")}
    for sp in bgp.expected(lab.plan):
        ctx[f"bird_{sp.host}"] = sp.socket_in(lab.state.dir)
        for s in sp.sessions:
            ctx.setdefault(f"session_{sp.host}", s.name)
            ctx[f"session_{sp.host}_{ips.get(s.neighbor, s.neighbor)}"] = s.name
    return ctx


def fill(text: str, ctx: dict[str, str]) -> str:
    return re.sub(r"\{([\w.-]+)\}", lambda m: ctx[m.group(1)], text)


def run_setup(lab, fault: Fault, ctx: dict[str, str]) -> None:
    for line in fault.setup:
        host, cmd = line.split(": ", 1)
        cp = lab.exec(host, shlex.split(fill(cmd, ctx)))
        assert cp.returncode == 0, f"{line}: {cp.stderr}"


def _has_route(lab, host: str, prefix: str) -> bool:
    return any(r.get("dst") == prefix for r in ipj(lab.ns(host), "route"))


SETTLE: dict[str, Callable] = {
    "node1 lost node2's block": lambda lab, ctx: wait_until(
        lambda: not _has_route(lab, "node1", "192.168.2.0/26"), timeout=30, interval=0.2,
        what="node1 without a route to node2's block"),
    "node2 forwarder gone": lambda lab, ctx: wait_until(
        lambda: not Path(f"/proc/{ctx['pid_node2']}").exists() or
        Path(f"/proc/{ctx['pid_node2']}/stat").read_text().split(") ")[1][0] in "ZX",
        timeout=10, what="node2's forwarder exited"),
}


# ---- the three answers ---------------------------------------------------------------------------

def status_lines(rep) -> list[str]:
    out = [f"{f.ns} {f.what} {f.detail}" for f in rep.problems]
    out += [f"daemon {d['name']} {d['state']}" for d in rep.daemons if not d["alive"]]
    return out


def start_captures(lab, fault: Fault, ctx: dict[str, str], tmp: Path) -> dict[str, Capture]:
    caps: dict[str, Capture] = {}
    try:
        for role, where in (("seen", fault.seen), ("gone", fault.gone)):
            if where is not None:
                host, iface = where[0], fill(where[1], ctx)
                bpf = fault.gone_bpf if role == "gone" and fault.gone_bpf else fault.bpf
                caps[role] = Capture(lab.ns(host), iface, fill(bpf, ctx), tmp / f"{role}.pcap", count=1)
    except Exception:
        for c in caps.values():  # never leave a tcpdump behind in the lab
            c.proc.terminate()
            c.proc.wait(timeout=5)
        raise
    return caps


def confirm(caps: dict[str, Capture]) -> tuple[bool, str]:
    """The independent capture agrees with the stop: the probe on ``seen``, never on ``gone``."""
    got = {role: len(c.packets(timeout=1.0 if role == "seen" else 0.2)) for role, c in caps.items()}
    ok = got.get("seen", 1) >= 1 and got.get("gone", 0) == 0
    return ok, ", ".join(f"{role} {n}" for role, n in got.items())


RESULTS: list[tuple[str, bool, bool, bool, str]] = []


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    yield
    if not RESULTS:
        return
    rep = request.config.pluginmanager.get_plugin("terminalreporter")
    mark = {True: "right", False: "WRONG"}
    width = max(len(r[0]) for r in RESULTS)
    lines = [f"{'fault':<{width}} | status | stop hop | cause", "-" * (width + 27)]
    lines += [f"{n:<{width}} | {mark[s]:<6} | {mark[h]:<8} | {mark[c]}" for n, s, h, c, _ in RESULTS]
    total = len(RESULTS)
    lines.append(f"right: status {sum(r[1] for r in RESULTS)}/{total}, stop hop {sum(r[2] for r in RESULTS)}/{total}, "
                 f"cause {sum(r[3] for r in RESULTS)}/{total}")
    out = rep.write_line if rep is not None else print
    out("")
    for ln in lines:
        out(ln)
    Path(os.environ.get("NETLAB_FAULT_TABLE", "/tmp/netlab-fault-table.txt")).write_text(
        "\n".join(lines) + "\n\n" + "\n".join(f"{r[0]}: {r[4]}" for r in RESULTS) + "\n")


@pytest.mark.parametrize("fault", CASES, ids=[re.sub(r"[^\w]+", "-", c.name)[:70] for c in CASES])
def test_fault(lab_factory, tmp_path, fault: Fault):
    lab = lab_factory(fault.lab, **(fault.overrides or SMALL))
    ctx = context(lab)
    run_setup(lab, fault, ctx)
    if fault.settle:
        SETTLE[fault.settle](lab, ctx)

    # 1. status names the changed object
    lines = status_lines(lab.verify())
    if fault.status is None:
        status_ok = not lines
    else:
        status_ok = any(re.search(fill(fault.status, ctx), ln) for ln in lines)

    # 2. and 3. the trace, with an independent capture around the stop
    caps = start_captures(lab, fault, ctx, tmp_path)
    r = engine.run(lab.plan, fault.src, fault.dst, proto=fault.proto, port=fault.port, size=fault.size, timeout=0.5,
                   state=lab.state)
    captured_ok, counts = confirm(caps)
    hosts = {n.name: n.host for n in lab.plan.namespaces}
    stop_host = hosts.get(r.stop.ns or "", r.stop.ns) if r.stop is not None else None
    stop_ok = not r.complete and stop_host == fault.stop and captured_ok
    top = r.stop.causes[0] if r.stop is not None and r.stop.causes else None
    cause_ok = top is not None and re.search(fill(fault.cause, ctx), f"{top.host}: {top.text}") is not None

    also = ""
    if fault.also_works is not None:
        s, d, proto, port = fault.also_works
        other = engine.run(lab.plan, s, d, proto=proto, port=port, timeout=0.5, state=lab.state)
        also = f"; {s} -> {d} {proto} {port or ''}: complete={other.complete}"
        stop_ok = stop_ok and other.complete

    detail = (f"status: {lines[:6]}; stop {stop_host} (want {fault.stop}), capture {counts}; "
              f"top cause: {top.host + ': ' + top.text if top else None}{also}")
    RESULTS.append((fault.name, status_ok, stop_ok, cause_ok, detail))
    assert status_ok and stop_ok and cause_ok, detail + "\n" + json.dumps(
        r.stop.as_dict() if r.stop else None, indent=1)[:4000]


def test_catalogue_covers_every_datapath_on_this_kernel():
    assert len(CASES) >= 30
    labs = {c.lab for c in CASES}
    assert labs == {"vxlan", "host-gw", "flannel-udp", "calico", "calico-rr", "calico-vxlan", "docker-nat", "bridge"}

