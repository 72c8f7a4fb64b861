"""What every Calico datapath shares (DATAPATHS.md §3): IPAM blocks, the pod attachment of the
``calico`` CNI plugin, Felix's sysctls and iptables, and the BIRD configuration that confd renders.

This module is a helper, not a datapath (it defines no ``DATAPATH``); the labs are
:mod:`.calico_bgp` (``calico``), :mod:`.calico_rr`, :mod:`.calico_vxlan` and :mod:`.calico_ipip`.

**IPAM.** The pool (default 192.168.0.0/16) is cut into /26 *blocks*. Calico hands blocks to nodes
by affinity, at random places in the pool; netlab gives node X the first /26 of the X-th /24,
``192.168.X.0/26``, so addresses are readable and the plan is a pure function of the lab file.
Pods get /32s from their node's block (``.1``, ``.2``, …); the block's first address ``.0`` is the
node's tunnel address in the IPIP and VXLAN labs, as in Calico where the tunnel IP is allocated
first (e.g. ``192.168.235.128/32`` for block ``.128/26``).

**Pods** (``pkg/dataplane/linux/dataplane_linux.go``). The pod's ``eth0`` holds a /32, so the pod
has no on-link subnet at all: every packet goes to the gateway ``169.254.1.1``, which exists
nowhere. The pod reaches it through ``169.254.1.1 dev eth0 scope link`` followed by ``default via
169.254.1.1 dev eth0``; its ARP request for 169.254.1.1 is answered by the *node* with proxy ARP on
the host end ``caliXXXXXXXXXXX`` (MAC ee:ee:ee:ee:ee:ee, no address). Proxy ARP answers only for
an address the node would route out of *another* interface, so the node needs a route covering
169.254.1.1, which its default route (to the underlay router, inside the lab) is. The node reaches
the pod through ``<pod>/32 dev caliX scope link``. No bridge, no L2 between pods: Calico is pure L3.

**BGP** (confd's ``bird.cfg``/``bird_aggr.cfg``/``bird_ipam.cfg``, rendered here for stock BIRD 2).
Each node originates its blocks as a static *blackhole* (a packet for an unused address of the
block dies on the owner instead of looping), exports only pool routes to its peers, and programs
the kernel with what it learns (``proto bird``). Full mesh by default, one active side per pair:
``passive on`` is written when the peer's IP, compared as a *string*, is greater than ours.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any, Callable

from ..encap import Encap, check_mtu, mtu_of
from ..errors import LabFileError
from ..model import Lab
from ..plan import Addr, Daemon, File, Netns, Plan, PodPair, Route, Rule, Ruleset, Sysctl, Veth, VethEnd
from ..topology import Node, Pod, Topology
from . import underlay
from .hints import Line, Steps, col, encap_capture, pod_pair_steps

DEFAULT_POOL = "192.168.0.0/16"  # CALICO_IPV4POOL_CIDR's default
BLOCK_PREFIX = 26  # BlockSize, lib/clientv3/ippool.go
DEFAULT_AS = 64512  # GlobalDefaultASNumber
GATEWAY = "169.254.1.1"  # the pod's dummy next hop, answered by proxy ARP
CALI_MAC = "ee:ee:ee:ee:ee:ee"  # every host-side veth, so a pod's neighbour entry never changes
K8S_NAMESPACE = "default"  # the Kubernetes namespace the lab's pods live in
RR_HOST = "rr"
RR_HOST_NO = 2  # the route reflector's address in rack 1: .2 (.1 is the router, nodes are .11+)
RR_CLUSTER_ID = "244.0.0.1"  # routeReflectorClusterID, as in Calico's examples
BIRD = "bird"


@dataclass(frozen=True)
class Options:
    """Knobs every Calico lab has (the lab file's ``options:``)."""

    as_number: int = field(default=DEFAULT_AS, metadata={"min": 1, "max": 4294967294})
    nat_outgoing: bool = True  # the IPPool's natOutgoing
    hold_time: int = field(default=9, metadata={"min": 3, "max": 65535})  # BGP hold time, s


# -- IPAM -------------------------------------------------------------------------------------------

def block(pool: IPv4Network, node: Node) -> IPv4Network:
    """Node X's affine block: ``192.168.X.0/26`` in the default pool."""
    return IPv4Network((int(pool.network_address) + node.index * 256, BLOCK_PREFIX))


def pod_ip(blk: IPv4Network, pod: Pod) -> IPv4Address:
    return blk.network_address + pod.index


def tunnel_ip(blk: IPv4Network) -> IPv4Address:
    """The node's tunl0 / vxlan.calico address: the first address of its block."""
    return blk.network_address


def cali_name(pod: Pod) -> str:
    """``VethNameForWorkload``: ``cali`` + the first 11 hex digits of sha1("<namespace>.<pod>").

    The Kubernetes namespace is ``default`` and the pod name is what a user types
    (``node1-pod1``), so the name is the same in every instance of the lab.
    """
    return "cali" + hashlib.sha1(f"{K8S_NAMESPACE}.{pod.host}".encode()).hexdigest()[:11]


def check(lab: Lab, encap: Encap | None, one_rack: bool = False) -> None:
    """Checks every Calico lab shares: the pool holds a block per node, the MTU fits the underlay
    once ``encap`` (None: BGP without encapsulation) wraps it."""
    pool = lab.pod_cidr
    room = pool.num_addresses // 256 - 1
    if pool.prefixlen > 24 or lab.nodes > room:
        raise LabFileError(f"{lab.src}: pod_cidr: the pool {pool} has no room for {lab.nodes} node blocks",
                           "netlab gives node X the block 192.168.X.0/26 of a /16 pool: use a /16 "
                           "(the default 192.168.0.0/16) or a pool of at least /" + str(24 - (lab.nodes + 1).bit_length()))
    if lab.pods > 2 ** (32 - BLOCK_PREFIX) - 1:
        raise LabFileError(f"{lab.src}: pods: a /{BLOCK_PREFIX} block holds at most 63 pods",
                           "use fewer pods per node")
    if one_rack and lab.underlay.racks != 1:
        raise LabFileError(
            f"{lab.src}: underlay.racks: {lab.datapath} needs every node on one L2 segment (got {lab.underlay.racks} racks)",
            "BGP without encapsulation installs 'via <node IP> dev eth0', which needs the next hop on-link "
            "(DATAPATHS.md §3a); use racks: 1, or calico-ipip / calico-vxlan with -o mode=CrossSubnet")
    check_mtu(lab, encap)


# -- pods and node ----------------------------------------------------------------------------------

def attach(plan: Plan, topo: Topology, node: Node, blk: IPv4Network, mtu: int) -> None:
    """The calico CNI plugin's work for each pod of ``node``, plus Felix's per-endpoint sysctls."""
    for pod in topo.pods_of(node):
        plan.add_ns(Netns(pod.ns, "pod", pod.host, node=node.name))
        cali = cali_name(pod)
        ip = pod_ip(blk, pod)
        plan.add(
            Veth(VethEnd(node.ns, cali, mtu=mtu, mac=CALI_MAC), VethEnd(pod.ns, "eth0", mtu=mtu)),
            Addr(pod.ns, "eth0", f"{ip}/32"),
            # order matters: the gateway must be reachable before the default route can use it
            Route(pod.ns, f"{GATEWAY}/32", dev="eth0", scope="link"),
            Route(pod.ns, "default", via=GATEWAY, dev="eth0"),
            # proxy ARP answers the pod's "who has 169.254.1.1?" with ee:ee:ee:ee:ee:ee, and at once
            Sysctl(node.ns, f"net/ipv4/conf/{cali}/proxy_arp", "1"),
            Sysctl(node.ns, f"net/ipv4/neigh/{cali}/proxy_delay", "0"),
            # forwarding on the host end: without it proxy ARP stays silent (DATAPATHS.md §3)
            Sysctl(node.ns, f"net/ipv4/conf/{cali}/forwarding", "1"),
            Sysctl(node.ns, f"net/ipv4/conf/{cali}/route_localnet", "1"),
            # the CNI plugin and Felix: no router advertisements on the host end (absent without IPv6)
            Sysctl(node.ns, f"net/ipv6/conf/{cali}/accept_ra", "0", required=False),
            Route(node.ns, f"{ip}/32", dev=cali, scope="link"),
        )


def rules(node: Node, lab: Lab, tunnel: str | None = None, input_match: str | None = None) -> Ruleset:
    """Felix's iptables, reduced to what carries traffic, with plain matches instead of ipsets.

    - nat ``cali-nat-outgoing``: natOutgoing, MASQUERADE what leaves the pool for outside all pools
      (Felix: ``--match-set cali40masq-ipam-pools src ! --match-set cali40all-ipam-pools dst``);
    - nat ``cali-POSTROUTING``, per tunnel device: masquerade host-originated packets that would
      leave the tunnel with a source that is not the tunnel's own (they carry eth0's address);
    - filter ``cali-FORWARD``: accept to and from workloads (``cali+``), which Felix does through
      its per-endpoint policy chains;
    - filter ``cali-INPUT``: encapsulated traffic only from the underlay (``input_match`` is the
      protocol match, e.g. ``-p udp -m udp --dport 4789``), everything else of that kind dropped.
    """
    pool = str(lab.pod_cidr)
    chains = [("nat", "cali-POSTROUTING"), ("nat", "cali-nat-outgoing"), ("filter", "cali-FORWARD")]
    rs = [
        Rule("nat", "POSTROUTING", "-j cali-POSTROUTING"),
        Rule("nat", "cali-POSTROUTING", "-j cali-nat-outgoing"),
    ]
    if tunnel:
        rs.append(Rule("nat", "cali-POSTROUTING", f"-o {tunnel} -m addrtype ! --src-type LOCAL --limit-iface-out "
                                                  "-m addrtype --src-type LOCAL -j MASQUERADE"))
    if lab.options.nat_outgoing:
        rs.append(Rule("nat", "cali-nat-outgoing", f"-s {pool} ! -d {pool} -j MASQUERADE --random-fully"))
    rs += [
        Rule("filter", "FORWARD", "-j cali-FORWARD"),
        Rule("filter", "cali-FORWARD", "-i cali+ -j ACCEPT"),
        Rule("filter", "cali-FORWARD", "-o cali+ -j ACCEPT"),
    ]
    if input_match:
        chains.append(("filter", "cali-INPUT"))
        rs.append(Rule("filter", "INPUT", "-j cali-INPUT"))
        for r in range(1, lab.underlay.racks + 1):
            rs.append(Rule("filter", "cali-INPUT",
                           f"-s {lab.underlay.rack_cidr(r)} {input_match} -m addrtype --dst-type LOCAL -j ACCEPT"))
        rs.append(Rule("filter", "cali-INPUT", f"{input_match} -j DROP"))
    return Ruleset(node.ns, rules=tuple(rs), chains=tuple(chains))


# -- BIRD ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Peer:
    """One BGP session as confd renders it: ``protocol bgp <name> from bgp_template { … }``."""

    name: str  # Mesh_10_0_0_12, Node_10_0_0_2
    ip: str
    local_ip: str
    direct: bool = True  # same subnet: next hop on-link; else multihop through the router
    rr_client: bool = False

    @property
    def passive(self) -> bool:
        """confd's rule: only the side with the greater IP *string* dials."""
        return self.ip > self.local_ip


def peer_name(prefix: str, ip: str) -> str:
    return f"{prefix}_{ip.replace('.', '_')}"


def mesh_peers(topo: Topology, node: Node) -> list[Peer]:
    return [Peer(peer_name("Mesh", o.addr), o.addr, node.addr, direct=o.rack == node.rack) for o in topo.others(node)]


#: What the kernel protocol installs (confd's ``calico_kernel_programming``), per pool type.
KERNEL_FILTERS = {
    # no encapsulation: krt_tunnel = "" — blocks learned over BGP go in as `via <node IP> dev eth0`
    "bgp": "  if ( net ~ POOL ) then accept;\n  reject;",
    # IPIP: Calico's BIRD fork would install the remote blocks `dev tunl0 onlink` (krt_tunnel =
    # "tunl0"); stock BIRD cannot, so netlab installs those itself and BIRD only its own blackhole
    "static": "  if ( source = RTS_STATIC ) then accept;\n  reject;",
    # VXLAN: Felix programs everything, the filter rejects the pool
    "none": "  reject;",
}


def bird_config(*, host: str, router_id: str, as_number: int, pool: IPv4Network, blocks: list[IPv4Network],
                peers: list[Peer], kernel: str | None, hold_time: int) -> str:
    """The BIRD 2 configuration of one node, or of the route reflector (no blocks, ``kernel=None``).

    Differences from Calico's rendered config, and why:

    - timers: ``hold time`` (default 9 s, keepalive a third of it) instead of BGP's 240 s, so a
      frozen BIRD's routes leave its peers within seconds; a *killed* BIRD's TCP session is closed
      by the kernel, and its peers withdraw its routes at once.
    - ``graceful restart aware`` instead of Calico's ``graceful restart``: with it enabled, peers
      would keep a dead BIRD's routes as stale for the restart time (120 s by default) waiting for
      it to come back; "aware" keeps only the receiving role, so nothing is kept.
    - the kernel protocol learns only underlay routes (to resolve multihop next hops); Calico
      learns everything, pod /32s included, to advertise borrowed addresses, which netlab does not
      model. ``metric 0`` leaves the kernel's default metric, so routes read like Calico's.
    """
    hold = hold_time
    keepalive = max(1, hold // 3)
    lines = [
        f"# BIRD 2 configuration of {host}, rendered by netlab (the shape of Calico's confd templates).",
        f"router id {router_id};",
        "timeformat protocol iso long;",
        "log stderr all;",
        "",
        f"define POOL = {pool};",
        "",
    ]
    if blocks:
        lines.append("# bird_aggr.cfg: advertise each own block whole, never a more specific route inside it")
        lines.append("function calico_aggr() {")
        for b in blocks:
            lines.append(f"  if ( net = {b} ) then {{ accept; }}")
            lines.append(f"  if ( net ~ {b} ) then {{ reject; }}")
        lines.append("}")
        lines.append("")
    lines.append("# bird_ipam.cfg: only pool routes go to peers")
    lines.append("filter calico_export_to_bgp_peers {")
    if blocks:
        lines.append("  calico_aggr();")
    lines += ["  if ( net ~ POOL ) then accept;", "  reject;", "}", ""]
    lines += ["protocol device {", "  scan time 2;", "}", ""]
    if kernel is not None:
        lines += [
            "filter calico_kernel_programming {",
            KERNEL_FILTERS[kernel],
            "}",
            "",
            "# learn the underlay's routes (to resolve multihop next hops), never pool routes",
            "filter calico_kernel_learn {",
            "  if ( net ~ POOL ) then reject;",
            "  accept;",
            "}",
            "",
            "protocol direct {",
            "  ipv4;",
            '  interface "eth0";',
            "}",
            "",
            "protocol kernel {",
            "  ipv4 {",
            "    import filter calico_kernel_learn;",
            "    export filter calico_kernel_programming;",
            "  };",
            "  learn;",
            "  persist;",
            "  scan time 2;",
            "  merge paths on;",
            "  metric 0;",
            "}",
            "",
        ]
    if blocks:
        lines.append("# the node's blocks, originated as blackholes")
        lines.append("protocol static {")
        lines.append("  ipv4;")
        for b in blocks:
            lines.append(f"  route {b} blackhole;")
        lines += ["}", ""]
    lines += [
        "template bgp bgp_template {",
        f"  local as {as_number};",
        "  ipv4 {",
        "    import all;",
        "    export filter calico_export_to_bgp_peers;",
        "    add paths on;",
        "  };",
        "  graceful restart aware;",
        "  connect delay time 2;",
        "  connect retry time 5;",
        "  error wait time 5,30;",
        f"  hold time {hold};",
        f"  keepalive time {keepalive};",
        "}",
        "",
    ]
    for p in peers:
        lines.append(f"protocol bgp {p.name} from bgp_template {{")
        lines.append(f"  neighbor {p.ip} as {as_number};")
        lines.append(f"  source address {p.local_ip};")
        lines.append("  direct;" if p.direct else "  multihop;")
        if p.rr_client:
            lines.append("  rr client;")
            lines.append(f"  rr cluster id {RR_CLUSTER_ID};")
        if p.passive:
            lines.append("  passive on;")
        lines.append("}")
        lines.append("")
    return "\n".join(lines)


def socket_path(host: str) -> str:
    return f"{{run}}/bird-{host}.ctl"


def add_bird(plan: Plan, ns: str, host: str, config: str) -> None:
    """BIRD's config file, then BIRD itself in the foreground (``-f``), so the PID netlab records
    is BIRD's own; its control socket is the readiness signal and what ``birdc`` talks to."""
    conf = f"{{run}}/bird-{host}.conf"
    plan.add(
        File(conf, config),
        Daemon(ns, BIRD, (BIRD, "-f", "-c", conf, "-s", socket_path(host), "-P", f"{{run}}/bird-{host}.pid"),
               control=socket_path(host),
               ready=socket_path(host)),
    )


def route_reflector(plan: Plan, lab: Lab, topo: Topology) -> IPv4Interface:
    """A namespace on rack 1's switch, like the ToR in the seed, with ``eth0`` at ``.2``."""
    rack = topo.racks[0]
    ns = f"{lab.name}-{RR_HOST}"
    ip = IPv4Interface((int(rack.cidr.network_address) + RR_HOST_NO, rack.cidr.prefixlen))
    plan.add_ns(Netns(ns, "rr", RR_HOST))
    mtu = lab.underlay.mtu
    plan.add(
        Veth(VethEnd(ns, "eth0", mtu=mtu), VethEnd(rack.ns, RR_HOST, mtu=mtu, master=underlay.SWITCH_BRIDGE)),
        Addr(ns, "eth0", str(ip)),
    )
    return ip


def rr_ns(lab: Lab) -> str:
    return f"{lab.name}-{RR_HOST}"


# -- the whole lab ------------------------------------------------------------------------------------

def build(lab: Lab, topo: Topology, plan: Plan, *, encap: Encap | None, mesh: bool = True, reflector: bool = False,
          kernel: str | None = "bgp", bird: bool = True) -> dict[str, IPv4Network]:
    """Underlay, pods, Felix's node settings and rules, and (``bird``) a BIRD per node.

    ``encap`` goes on the plan and sizes the pod MTU as Felix's auto-detection does (underlay MTU
    minus the overhead; with ``mode: CrossSubnet`` too, since a pod cannot know which of its
    packets will be wrapped). Returns each node's block by node name, for the
    encapsulation-specific parts.
    """
    plan.encap = encap
    underlay.build(lab, topo, plan)
    mtu = mtu_of(lab, encap)
    blocks = {n.name: block(lab.pod_cidr, n) for n in topo.nodes}
    rr_ip = route_reflector(plan, lab, topo) if reflector else None
    for node in topo.nodes:
        attach(plan, topo, node, blocks[node.name], mtu)
    if not bird:
        return blocks
    opts = lab.options
    if rr_ip is not None:
        clients = [Peer(peer_name("Node", n.addr), n.addr, str(rr_ip.ip), rr_client=True) for n in topo.nodes]
        add_bird(plan, rr_ns(lab), RR_HOST, bird_config(
            host=RR_HOST, router_id=str(rr_ip.ip), as_number=opts.as_number, pool=lab.pod_cidr, blocks=[],
            peers=clients, kernel=None, hold_time=opts.hold_time))
    for node in topo.nodes:
        peers = mesh_peers(topo, node) if mesh else []
        if rr_ip is not None:
            peers.append(Peer(peer_name("Node", str(rr_ip.ip)), str(rr_ip.ip), node.addr))
        add_bird(plan, node.ns, node.name, bird_config(
            host=node.name, router_id=node.addr, as_number=opts.as_number, pool=lab.pod_cidr,
            blocks=[blocks[node.name]], peers=peers, kernel=kernel, hold_time=opts.hold_time))
    return blocks


HINT_WIDTH = 21  # the label column of every Calico lab's hints


def pod_next_steps(lab: Lab, p: Plan, extra: list[Line], see: str = "") -> Steps:
    """The hints every Calico lab shares around its own ``extra`` ones, for the plan's pod pair.

    ``see`` labels a capture of the plan's encapsulation on the source node's switch, in front of
    ``extra`` (the IPIP and VXLAN labs; BGP without encapsulation has nothing wrapped to see).
    """
    def lines(pair: PodPair, sw: str) -> list[Line]:
        src = pair.src
        seen: list[Line] = [encap_capture(HINT_WIDTH, see, sw, p.encap)] if see and p.encap is not None else []
        return [
            col(HINT_WIDTH, "ping across nodes:", f"netlab exec {lab.name} {src.host} -- ping -c 3 {pair.dst_ip}"),
            col(HINT_WIDTH, "the pod's gateway:", f"netlab exec {lab.name} {src.host} -- ip neigh",
                f"({GATEWAY} is {CALI_MAC}: proxy ARP)"),
            *seen,
            *extra,
            col(HINT_WIDTH, "the whole recipe:", f"netlab explain {lab.name}"),
        ]
    return pod_pair_steps(lab.name, p, lines)


def bgp_datapath(name: str, summary: str, plan: Callable[[Lab], Plan], validate: Callable[[Lab], None],
                 next_steps: Callable[[Lab, Plan], Steps]) -> Any:
    """A Calico datapath whose routes come from BIRD (full mesh or route reflector): pods in
    Calico's default pool, no tunnel kinds needed, and ``up`` waits until BGP has converged,
    every node routing every remote block (through birdc, hence the tool)."""
    from .. import bgp
    from . import Datapath

    return Datapath(name=name, summary=summary, plan=plan, Options=Options, default_pod_cidr=DEFAULT_POOL,
                    requires=("bridge", "veth"), tools=("iptables-restore", "bird", "birdc"),
                    validate=validate, next_steps=next_steps, ready=bgp.converge,
                    learned_per_peer=1)  # the block route BIRD learns from every other node
