"""What the plan says about a packet's way through a lab: endpoints, namespaces, links, next steps.

Nothing here knows a lab by name. A datapath only ever produces a :class:`~netlab.plan.Plan`, so
everything a trace needs is read from plan objects:

- **endpoints**: a host name (``node1-pod1``, ``node2``) or an address, looked up in the plan's
  :class:`~netlab.plan.Addr` objects;
- **namespaces on the path**: the source, its node, every switch and router of the underlay, the
  destination node and the destination (and, when the destination is a node, that node's pods:
  a DNAT rule on the node may hand the packet to one of them, as Docker's published ports do);
- **interfaces** in those namespaces: every planned link (veth ends, bridges, VXLAN and TUN
  devices), so the capture covers the pod's eth0, the host veth or cali*, the bridge, the VTEP or
  TUN, the node's eth0, the switch and router ports;
- **the next step** after a hop (:func:`expected_next`): a veth transmits into its peer; a bridge
  port hands the frame to its bridge; a VXLAN device sends UDP out of its underlay device to the
  FDB's destination; a TUN device hands the packet to the namespace's daemon; anything else is a
  route lookup, done here over the plan's routes and connected subnets (longest prefix) and, for
  the kernel's own answer, by ``ip route get`` in :mod:`.evidence`.

Routes a daemon installs (BIRD in the Calico labs) are not in the plan; the plan lookup then says
so, and the kernel's answer is what counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, ip_address

from ..errors import NetlabError
from ..plan import Addr, Bridge, Daemon, Fdb, Netns, Plan, Route, Ruleset, Tun, Vxlan
from ..spec import ends_of, spec_of


@dataclass(frozen=True)
class Endpoint:
    spec: str  # what the user typed
    addr: str  # the IPv4 address the probe uses
    ns: Netns | None  # the namespace holding it (None: outside the lab)


@dataclass(frozen=True)
class Iface:
    """A planned interface: the namespace, its name, and what kind of link it is."""

    ns: str
    name: str
    kind: str  # veth, bridge, vxlan, tun, ipip
    obj: object = field(compare=False, hash=False, default=None)
    peer: tuple[str, str] | None = None  # (ns, name) of a veth's other end
    master: str | None = None  # the bridge a veth end is a port of


def interfaces(plan: Plan) -> dict[tuple[str, str], Iface]:
    """Every planned interface, from the links' declarations: each end of each link, its kind,
    the other end of a pair (a veth transmits into its peer) and its bridge."""
    out: dict[tuple[str, str], Iface] = {}
    for o in plan.links():
        spec = spec_of(o)
        ends = ends_of(o)
        for i, end in enumerate(ends):
            other = ends[1 - i] if len(ends) == 2 else None
            out[(end.ns, end.name)] = Iface(end.ns, end.name, spec.link or "", end,
                                            (other.ns, other.name) if other else None, getattr(end, "master", None))
    return out


def owners(plan: Plan, addr: str) -> list[Netns]:
    want = ip_address(addr)
    names = {a.ns for a in plan.of(Addr) if a.interface.ip == want}
    return [n for n in plan.namespaces if n.name in names]


def covering(plan: Plan, addr: str, most: int = 4) -> list[Netns]:
    """The namespaces with a connected subnet holding ``addr``, most specific first (at most
    ``most``). For an address no host owns (10.244.2.99 in node2's /24), these are where the
    probe goes: the node routes it onto that subnet and ARPs for it there."""
    want = ip_address(addr)
    nets = [(a.interface.network.prefixlen, a.ns) for a in plan.of(Addr)
            if a.interface.network.prefixlen < 32 and want in a.interface.network]
    if not nets:
        return []
    longest = max(p for p, _ in nets)
    names = {ns for p, ns in nets if p == longest}
    return [n for n in plan.namespaces if n.name in names][:most]


def resolve(plan: Plan, spec: str, role: str) -> Endpoint:
    """``spec`` is a host name (node1, node1-pod1, router, the full namespace name) or an IPv4 address."""
    try:
        ip = IPv4Address(spec)
    except ValueError:
        ip = None
    if ip is None:
        try:
            ns = plan.host(spec)
        except KeyError:
            hosts = ", ".join(n.host for n in plan.namespaces)
            raise NetlabError(f"lab '{plan.lab}' has no node or pod '{spec}' (the {role})",
                              f"use one of: {hosts}, or an address") from None
        addr = plan.address_of(ns.name)
        if addr is None:
            raise NetlabError(f"{spec} has no IP address in lab '{plan.lab}' (it is a {ns.role})",
                              "trace between hosts that have addresses: pods, nodes, the router")
        return Endpoint(spec, addr, ns)
    found = owners(plan, str(ip))
    if len(found) > 1:
        if role == "source":
            raise NetlabError(f"{ip} belongs to several hosts: {', '.join(n.host for n in found)}",
                              "name the source host instead of its address")
        return Endpoint(spec, str(ip), None)  # every owner is captured (path_namespaces)
    return Endpoint(spec, str(ip), found[0] if found else None)


def node_of(plan: Plan, ns: Netns) -> Netns | None:
    if ns.role == "node":
        return ns
    if ns.node:
        try:
            return plan.host(ns.node)
        except KeyError:
            return None
    return None


def path_namespaces(plan: Plan, src: Endpoint, dst: Endpoint) -> list[Netns]:
    """The namespaces a packet from ``src`` to ``dst`` (and its reply) may cross, in path order."""
    chosen: list[Netns] = []

    def add(n: Netns | None) -> None:
        if n is not None and n not in chosen:
            chosen.append(n)

    add(src.ns)
    if src.ns is not None:
        add(node_of(plan, src.ns))
    for n in plan.namespaces:
        if n.role == "switch":
            add(n)
    for n in plan.namespaces:
        if n.role == "router":
            add(n)
    targets = [dst.ns] if dst.ns is not None else owners(plan, dst.addr) or covering(plan, dst.addr)
    for t in targets:
        node = node_of(plan, t)
        add(node)
        add(t)
        if t.role == "node":
            # a DNAT on the node may deliver to any of its pods (Docker's published ports)
            for n in plan.namespaces:
                if n.role == "pod" and n.node == t.host:
                    add(n)
    return chosen


# ---- routing over the plan ---------------------------------------------------------------------

@dataclass(frozen=True)
class PlanRoute:
    dst: IPv4Network
    dev: str | None
    via: str | None
    type: str
    text: str


def plan_routes(plan: Plan, ns: str) -> list[PlanRoute]:
    """The namespace's routes as the plan has them: its Route objects plus the connected subnet of
    each address (what the kernel adds as ``proto kernel scope link``)."""
    out = []
    for a in plan.of(Addr):
        if a.ns == ns:
            net = a.interface.network
            if net.prefixlen < 32:
                out.append(PlanRoute(net, a.dev, None, "unicast", f"{net} dev {a.dev} proto kernel scope link"))
    for r in plan.of(Route):
        if r.ns == ns:
            text = f"{r.dst}" + (f" via {r.via}" if r.via else "") + (f" dev {r.dev}" if r.dev else "")
            if r.type != "unicast":
                text = f"{r.type} {r.dst}"
            out.append(PlanRoute(r.network, r.dev, r.via, r.type, text + (" onlink" if r.onlink else "")))
    return out


def local_addresses(plan: Plan, ns: str) -> set[str]:
    return {str(a.interface.ip) for a in plan.of(Addr) if a.ns == ns}


def lookup(plan: Plan, ns: str, dst: str) -> PlanRoute | None:
    """Longest-prefix match over :func:`plan_routes` (None: the plan has no route for ``dst``)."""
    ip = IPv4Address(dst)
    best = None
    for r in plan_routes(plan, ns):
        if ip in r.dst and (best is None or r.dst.prefixlen > best.dst.prefixlen):
            best = r
    return best


# ---- the next step after a hop -----------------------------------------------------------------

@dataclass
class Expectation:
    """What the plan says should happen after the last hop: in words, and as (ns, iface, dir)."""

    text: str
    ns: str | None = None
    iface: str | None = None
    direction: str | None = None
    kind: str = ""  # veth, bridge, vxlan, tun, route, local, unknown


def dnat_for(plan: Plan, ns: str, proto: str | None, dport: int | None) -> tuple[str, str] | None:
    """A planned nat-table DNAT rule in ``ns`` that would match a packet to ``proto``/``dport``:
    (rule text, ``--to-destination`` value). Docker's published ports are such rules."""
    for rs in plan.of(Ruleset):
        if rs.ns != ns:
            continue
        for r in rs.rules:
            if r.table != "nat" or "-j DNAT" not in r.spec:
                continue
            to = re.search(r"--to-destination (\S+)", r.spec)
            p = re.search(r"-p (\w+)", r.spec)
            dp = re.search(r"--dport (\d+)", r.spec)
            if proto and p and p.group(1) != proto:
                continue
            if dp and (dport is None or int(dp.group(1)) != dport):
                continue
            if to:
                return f"-A {r.chain} {r.spec}", to.group(1)
    return None


def underlay_dev(plan: Plan, ns: str) -> str | None:
    for r in plan.of(Route):
        if r.ns == ns and r.dst == "default" and r.dev:
            return r.dev
    return "eth0" if any(a.ns == ns and a.dev == "eth0" for a in plan.of(Addr)) else None


@dataclass(frozen=True)
class _Seen:
    """Where the packet was last seen and what it carried there: the questions every next-step
    rule asks of the plan (``me`` is the planned interface, None if the plan does not describe it)."""

    plan: Plan
    host_of: dict[str, str]
    ifs: dict[tuple[str, str], Iface]
    ns: str
    iface: str
    me: Iface | None
    dst_ip: str | None
    dst_mac: str | None
    udp_dport: int | None
    l4: tuple[str, int] | None

    def where(self, ns: str, iface: str) -> str:
        return f"{self.host_of.get(ns, ns)}:{iface}"

    @property
    def host(self) -> str:
        return self.host_of.get(self.ns, self.ns)

    def daemons(self) -> list[str]:
        return [d.name for d in self.plan.of(Daemon) if d.ns == self.ns]


# -- after a transmit: the device the packet left by decides where it goes ----------------------

def _out_of_veth(s: _Seen) -> Expectation | None:
    """A veth has no wire: what one end transmits, its peer receives, in the peer's namespace."""
    if s.me is None or not s.me.peer:
        return None
    pns, pname = s.me.peer
    return Expectation(f"arrive on {s.where(pns, pname)} (the other end of the veth pair)", pns, pname, "in", "veth")


def _into_vtep(s: _Seen) -> Expectation | None:
    """The packet enters a VTEP: the FDB entry for the inner destination MAC names the outer
    destination, and the frame leaves the VXLAN device's underlay device as UDP to it."""
    if s.me is None or not isinstance(s.me.obj, Vxlan):
        return None
    vx = s.me.obj
    fdb = [f for f in s.plan.of(Fdb)
           if f.ns == s.ns and f.dev == s.iface and (s.dst_mac is None or f.lladdr == s.dst_mac)]
    if fdb:
        return Expectation(f"leave {s.where(s.ns, vx.dev)} as VXLAN (UDP {vx.port}, vni {vx.vni}) to {fdb[0].dst}, "
                           f"by the FDB entry {fdb[0].lladdr} dst {fdb[0].dst}", s.ns, vx.dev, "out", "vxlan")
    return Expectation(f"leave {s.where(s.ns, vx.dev)} as VXLAN (UDP {vx.port}) — but the plan has no FDB entry "
                       f"on {s.iface} for MAC {s.dst_mac}", s.ns, vx.dev, "out", "vxlan")


def _into_tun(s: _Seen) -> Expectation | None:
    """A TUN device hands what is routed into it to the user-space process holding it (flannel's
    UDP forwarder), which sends it on as UDP out of the node's underlay device."""
    daemons = s.daemons()
    dev = underlay_dev(s.plan, s.ns)
    who = f"the daemon {', '.join(daemons)}" if daemons else "the process holding the TUN"
    return Expectation(f"{who} reads it from {s.iface} and sends it as UDP out of {s.where(s.ns, dev or '?')}",
                       s.ns, dev, "out", "tun")


def _into_ipip(s: _Seen) -> Expectation | None:
    """An IPIP tunnel wraps the packet in an outer IP header (protocol 4) addressed to the route's
    gateway and sends it out of the underlay device."""
    dev = underlay_dev(s.plan, s.ns)
    return Expectation(f"leave {s.where(s.ns, dev or '?')} as IP-in-IP (protocol 4) to the route's gateway",
                       s.ns, dev, "out", "ipip")


def _out_of_bridge(s: _Seen) -> Expectation | None:
    """A bridge transmits through the port its FDB learnt the destination MAC on (all, if none)."""
    ports = [i.name for i in s.ifs.values() if i.ns == s.ns and i.master == s.iface]
    return Expectation(f"leave through the bridge port that has MAC {s.dst_mac} ({', '.join(ports)})",
                       s.ns, None, "out", "bridge")


_AFTER_TRANSMIT = {"veth": _out_of_veth, "vxlan": _into_vtep, "tun": _into_tun, "ipip": _into_ipip,
                   "bridge": _out_of_bridge}


def _after_transmit(s: _Seen) -> Expectation:
    """The next step after a transmit on ``s.iface``, by the kind of device it is."""
    rule = _AFTER_TRANSMIT.get(s.me.kind) if s.me is not None else None
    exp = rule(s) if rule is not None else None
    if exp is not None:
        return exp
    return Expectation(f"leave {s.where(s.ns, s.iface)} (an interface the plan does not describe)",
                       None, None, None, "unknown")


# -- after a receive: a bridge port, a local delivery, or a route lookup -----------------------

def _into_bridge_port(s: _Seen, br: str) -> Expectation:
    """A frame received on a bridge port is the bridge's to forward: up to the bridge itself if
    the destination MAC is the bridge's own, else out of the port the MAC was learnt on."""
    ports = [i.name for i in s.ifs.values() if i.ns == s.ns and i.master == br and i.name != s.iface]
    brobj = next((b for b in s.plan.of(Bridge) if b.ns == s.ns and b.name == br), None)
    return Expectation(f"bridge {br} forwards the frame for {s.dst_mac}: up to {br} itself if that is its MAC"
                       + (f" ({brobj.mac})" if brobj is not None and brobj.mac else "")
                       + f", else out of another port ({', '.join(ports)})", s.ns, None, None, "bridge")


def _vxlan_decap(s: _Seen) -> Expectation | None:
    """UDP to a local address on a VXLAN device's port: that device decapsulates it."""
    decap = [v for v in s.plan.of(Vxlan) if v.ns == s.ns and s.udp_dport is not None and v.port == s.udp_dport]
    if not decap:
        return None
    return Expectation(f"the VXLAN device {s.where(s.ns, decap[0].name)} decapsulates it "
                       f"(UDP {decap[0].port}, vni {decap[0].vni})", s.ns, decap[0].name, "in", "vxlan")


def _tun_daemon_receives(s: _Seen) -> Expectation | None:
    """UDP to the plan's encapsulation port on a node with a TUN device and a daemon: the daemon
    (flannel's UDP forwarder) reads the datagram and writes the inner packet into the TUN, where
    the kernel routes it again. UDP to any other port is not the overlay's."""
    tuns = [t for t in s.plan.of(Tun) if t.ns == s.ns]
    daemons = s.daemons()
    encap = s.plan.encap
    if not (tuns and daemons and encap is not None and encap.carries == "ip" and s.udp_dport == encap.udp_port):
        return None
    return Expectation(f"the daemon {', '.join(daemons)} receives UDP {s.udp_dport} and writes the inner packet "
                       f"to {s.where(s.ns, tuns[0].name)}", s.ns, tuns[0].name, "out", "tun")


def _dnat_on_arrival(s: _Seen) -> Expectation | None:
    """A nat-table DNAT rule matching the packet (Docker's published ports) rewrites its
    destination on arrival; the route to the new destination then decides the way out."""
    dnat = dnat_for(s.plan, s.ns, *(s.l4 or (None, None)))
    if dnat is None:
        return None
    rule, to = dnat
    target = to.rsplit(":", 1)[0] if ":" in to else to
    r = lookup(s.plan, s.ns, target)
    via = f"; then the route '{r.text}': leave {s.where(s.ns, r.dev or '?')}" if r is not None else ""
    return Expectation(f"DNAT to {to} by the nat rule '{rule}'{via}", s.ns, r.dev if r else None, "out", "dnat")


_TO_LOCAL_ADDRESS = (_vxlan_decap, _tun_daemon_receives, _dnat_on_arrival)


def _to_local_address(s: _Seen) -> Expectation:
    """A packet to one of the namespace's own addresses: a tunnel endpoint or a DNAT may take it
    further (tried in that order, as the kernel meets them); otherwise it is delivered here."""
    for rule in _TO_LOCAL_ADDRESS:
        exp = rule(s)
        if exp is not None:
            return exp
    return Expectation(f"delivered to {s.host} itself ({s.dst_ip} is its address): expect an answer",
                       s.ns, None, None, "local")


def _forwarded(s: _Seen, dst_ip: str) -> Expectation:
    """A packet to someone else's address is forwarded by the longest-prefix route the plan has
    for it; an unreachable/blackhole/prohibit route drops it."""
    r = lookup(s.plan, s.ns, dst_ip)
    if r is None:
        return Expectation(f"route lookup for {dst_ip} in {s.host}: the plan has no route "
                           "(a daemon such as BIRD may install it)", s.ns, None, "out", "route")
    if r.type != "unicast":
        return Expectation(f"route lookup for {dst_ip}: the plan has '{r.text}', so the kernel drops it",
                           s.ns, None, None, "route")
    return Expectation(f"forwarded by the route '{r.text}': leave {s.where(s.ns, r.dev or '?')}"
                       + (f" towards {r.via}" if r.via else ""), s.ns, r.dev, "out", "route")


def _after_receive(s: _Seen) -> Expectation:
    """The next step after a receive on ``s.iface``: a bridge port's frame is the bridge's; a
    packet for a local address is delivered (or decapsulated, or DNATed); the rest is routed."""
    if s.me is not None and s.me.kind == "veth" and s.me.master:
        return _into_bridge_port(s, s.me.master)
    if s.dst_ip is not None and s.dst_ip in local_addresses(s.plan, s.ns):
        return _to_local_address(s)
    if s.dst_ip is None:
        return Expectation("unknown (the packet has no IP destination)", kind="unknown")
    return _forwarded(s, s.dst_ip)


def expected_next(plan: Plan, host_of: dict[str, str], ns: str, iface: str, direction: str,
                  dst_ip: str | None, dst_mac: str | None = None, udp_dport: int | None = None,
                  l4: tuple[str, int] | None = None) -> Expectation:
    """The step the plan expects after the packet was seen on ``ns:iface`` going ``direction``.

    ``dst_ip``/``dst_mac`` are the packet's outermost destination addresses at that hop (for a
    VXLAN device, the frame's destination MAC is what its FDB is looked up with); ``l4`` is its
    transport protocol and destination port, for the DNAT rules a node may apply on arrival.
    """
    ifs = interfaces(plan)
    s = _Seen(plan, host_of, ifs, ns, iface, ifs.get((ns, iface)), dst_ip, dst_mac, udp_dport, l4)
    return _after_transmit(s) if direction == "out" else _after_receive(s)


def is_bridge_port(plan_ifs: dict[tuple[str, str], Iface], ns: str, name: str) -> bool:
    i = plan_ifs.get((ns, name))
    return i is not None and i.master is not None



def in_subnet(addr: str, cidr: str) -> bool:
    return IPv4Address(addr) in IPv4Interface(cidr).network
