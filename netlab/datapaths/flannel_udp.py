"""Flannel's UDP backend (DATAPATHS.md §2a): a TUN device and a user-space forwarder per node.

On each node X (lease 10.244.X.0/24):

- ``cni0`` 10.244.X.1/24 with the pods behind it (the CNI bridge plugin, :mod:`.cni`), MTU 1472;
- ``flannel0``: a TUN device, IFF_TUN|IFF_NO_PI, so what the kernel routes into it comes out of
  the file descriptor as a bare IPv4 packet (no Ethernet header, no packet-info header). It holds
  ``10.244.X.0/32`` — a /32, so no subnet or broadcast route is created, and host-to-pod traffic
  has a source address — and MTU = underlay MTU - 28 (outer IP 20 + UDP 8);
- one route for the whole overlay, ``10.244.0.0/16 dev flannel0`` (scope universe, no gateway).
  ``cni0``'s connected /24 is longer, so local pods never go near the tunnel;
- flanneld's masquerade and forward rules (:func:`.flannel.masq_rules`);
- ``net.ipv4.conf.flannel0.accept_local=1`` — **netlab's addition; flanneld sets no sysctl**. The
  forwarder's ICMP net unreachable comes from the TUN's own address (as flanneld's does) and is
  written *into* flannel0, so the kernel receives a packet whose source is one of its own
  addresses. The 6.18 kernel netlab is developed on drops that as a martian source unless
  accept_local is set (seen: the reply shows up in ``tcpdump -i flannel0`` and never reaches the
  pod); without it a learner would see flanneld's behaviour only in the forwarder's counters;
- the forwarder (:mod:`netlab.daemons.flannel_udp`), started by ``up`` in the node's namespace:
  it reads packets from flannel0, picks the destination node by longest-prefix match over a
  (subnet -> node IP) table that lives only in user space (there are no per-node routes in the
  kernel at all), lowers the TTL and sends the packet as the payload of UDP 8285->8285.

The kernel therefore only ever sees "10.244.0.0/16 is over there, through flannel0": the whole
overlay topology is in the daemon. That, and two user/kernel copies per packet on each side, is
why flannel calls this backend "for debugging only".

``options.mode: vnet-hdr`` is an opt-in fast mode that is **not what flannel does**: the TUN is
opened with IFF_VNET_HDR and TCP segmentation offload, so the daemon moves 64 KB GSO super-packets
(with a 10-byte virtio_net_hdr in front) instead of 1472-byte packets, and the underlay carries
them as IP fragments.

The datapath at its default addresses::

      node1 (192.168.100.11)                          node2 (192.168.100.12)
      +---------------------------------+             +---------------------------------+
      | pod1 eth0 10.244.1.2/24         |             | pod1 eth0 10.244.2.2/24         |
      |   | veth          MTU 1472      |             |   | veth                        |
      | cni0 10.244.1.1/24              |             | cni0 10.244.2.1/24              |
      |   | route 10.244.0.0/16 dev flannel0          |   ^                             |
      | flannel0 10.244.1.0/32 (TUN)    |             | flannel0 10.244.2.0/32 (TUN)    |
      |   ^ read()/write() bare IP      |             |   ^ write() after TTL-1         |
      | forwarder: 10.244.2.0/24 ->     |             | forwarder: 10.244.1.0/24 ->     |
      |   192.168.100.12:8285, TTL-1    |             |   192.168.100.11:8285           |
      | eth0 192.168.100.11/24 :8285    |             | eth0 192.168.100.12/24 :8285    |
      +------|--------------------------+             +------|--------------------------+
             |          switch (br0)    Ether/IP/UDP 8285->8285/IP (no extra header)   |
             +-------------------------[ br0 ]-----------------------------------------+
                                         |
                               router 192.168.100.1 (gateway, "outside")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from .. import encap, naming
from ..encap import Encap
from ..model import Lab
from ..plan import Addr, Daemon, Plan, PodPair, Route, Sysctl, Tun
from ..topology import resolve
from . import Datapath, cni, flannel, underlay
from .hints import RUNS, Line, Steps, col, encap_capture, pod_pair_steps

DEVICE = "flannel0"
DAEMON = "flannel-udp"
MODES = ("flannel", "vnet-hdr")


@dataclass(frozen=True)
class Options:
    port: int = field(default=8285, metadata={"min": 1, "max": 65535})
    mtu: int | None = field(default=None, metadata={"min": 576, "max": encap.UDP.max_mtu})
    mode: str = field(default="flannel", metadata={"choices": MODES})
    batch: int = field(default=64, metadata={"min": 1, "max": 1024})


def encap_of(lab: Lab) -> Encap:
    """Bare IP in UDP on the backend's ``Port`` (default 8285), both source and destination.

    ``mode: vnet-hdr`` puts a 10-byte virtio_net_hdr in front of the inner packet, but its GSO
    super-packets are far larger than any MTU and travel as IP fragments anyway, so the pod MTU
    (and this declaration) stays flannel's.
    """
    return encap.UDP.on(lab.options.port)


def ready_path(ns: str) -> str:
    return f"{{run}}/{ns}.{DAEMON}.ready"


def stats_path(ns: str) -> str:
    return f"{{run}}/{ns}.{DAEMON}.stats.json"


def daemon_argv(lab: Lab, ns: str, tun_addr: str, listen: str, mtu: int,
                routes: list[tuple[str, str]]) -> tuple[str, ...]:
    """The forwarder's command line; its whole forwarding table is in ``--route SUBNET=NODE_IP``.

    flanneld fills the same table from lease events; a lab's leases never change while it is up,
    so the plan can hand the table over once, where ``explain`` and ``ps`` show it.
    """
    argv = [*naming.daemon_argv("flannel_udp"),
            "--tun", DEVICE, "--tun-addr", tun_addr, "--listen", listen, "--port", str(lab.options.port),
            "--mtu", str(mtu), "--mode", lab.options.mode, "--batch", str(lab.options.batch),
            "--ready", ready_path(ns), "--stats", stats_path(ns)]
    for subnet, node_ip in routes:
        argv += ["--route", f"{subnet}={node_ip}"]
    return tuple(argv)


def unleased_address(lab: Lab) -> str | None:
    """An address in the cluster network inside no node's lease: the forwarder has no route for
    it and answers with ICMP net unreachable (None if every /24 of the network is leased)."""
    net = lab.pod_cidr
    first = int(net.network_address) + (lab.nodes + 1) * 256
    return str(IPv4Address(first + 5)) if first + 256 <= int(net.broadcast_address) + 1 else None


def plan(lab: Lab) -> Plan:
    topo = resolve(lab)
    p = Plan(lab.name, encap=encap_of(lab))
    underlay.build(lab, topo, p)
    mtu = encap.mtu_of(lab, p.encap)
    # every node's lease and address, made once: each forwarder's map lists all the others
    leases = [(node.index, str(flannel.lease(lab.pod_cidr, node)), node.addr) for node in topo.nodes]
    for node in topo.nodes:
        subnet = flannel.lease(lab.pod_cidr, node)
        cni.attach(p, topo, node, subnet, lab.pod_cidr, mtu)
        tun_addr = str(subnet.network_address)
        p.add(
            Tun(node.ns, DEVICE, mtu=mtu),
            Addr(node.ns, DEVICE, f"{tun_addr}/32"),
            Route(node.ns, str(lab.pod_cidr), dev=DEVICE, scope="universe"),
            Sysctl(node.ns, f"net/ipv4/conf/{DEVICE}/accept_local", "1"),
            flannel.masq_rules(node.ns, lab.pod_cidr, subnet),
        )
        routes = [(lease, addr) for index, lease, addr in leases if index != node.index]
        p.add(Daemon(node.ns, DAEMON,
                     daemon_argv(lab, node.ns, tun_addr, f"{node.addr}:{lab.options.port}", mtu, routes),
                     ready=ready_path(node.ns), stats=stats_path(node.ns)))
    return p


def validate(lab: Lab) -> None:
    flannel.validate(lab, encap_of(lab))


def next_steps(lab: Lab, p: Plan) -> Steps:
    def lines(pair: PodPair, sw: str) -> list[Line]:
        src = pair.src
        out: list[Line] = [
            col(22, "ping across nodes:", f"netlab exec {lab.name} {src.host} -- ping -c 3 {pair.dst_ip}"),
            encap_capture(22, "see bare IP in UDP:", sw, encap_of(lab)),
            col(22, "the inner packets:", f"netlab exec {lab.name} node1 -- tcpdump -ni {DEVICE}", expect=RUNS),
        ]
        unleased = unleased_address(lab)
        if unleased:
            # the forwarder has no route for it and answers as flanneld does: ICMP net unreachable
            out.append(col(22, "no lease -> ICMP:", f"netlab exec {lab.name} {src.host} -- ping -c 1 {unleased}",
                           expect="fails:Destination Net Unreachable"))
        out += [
            col(22, "forwarder counters:", f"netlab status {lab.name}", f"(logs: {naming.state_dir(lab.name)}/*.{DAEMON}.log)"),
            col(22, "the whole recipe:", f"netlab explain {lab.name}"),
        ]
        if lab.options.mode != "flannel":
            out.insert(0, f"NOTE: mode {lab.options.mode} is a netlab fast mode, NOT flannel's packet format")
        return out
    return pod_pair_steps(lab.name, p, lines)



DATAPATH = Datapath(
    name="flannel-udp",
    summary="Flannel UDP backend: flannel0 TUN + a user-space forwarder, bare IP in UDP 8285, MTU 1472",
    plan=plan,
    Options=Options,
    requires=("bridge", "veth", "tun"),
    validate=validate,
    next_steps=next_steps,
)
