"""The plan: the desired kernel objects of a lab, per namespace, as plain frozen data.

A datapath module builds a :class:`Plan` from the lab model without touching the kernel. The same
plan object is then used by

- :mod:`netlab.kernel.apply` to create it (netlink, iptables-restore, daemons),
- :mod:`netlab.kernel.verify` to diff it against what the kernel holds (``netlab status``),
- :mod:`netlab.explain` to print the equivalent ``ip``/``bridge``/``iptables`` script,
- :mod:`netlab.kernel.teardown`, through the namespaces and daemons recorded from it,

so there is never a second copy of the truth.

Each class declares its kind once, in ``SPEC`` (:mod:`netlab.spec`): its phase, and every
field's iproute2 keyword and netlink attribute. Objects are applied in phases
(:data:`netlab.spec.PHASES`), and in plan order within a phase.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv4Network, ip_address
from typing import ClassVar, Iterator, Union

from .encap import Encap
from .spec import LINK_FIELDS, MASTER, PHASES, Declared, Field, Kind, Phase, ends_of, spec_of


@dataclass(frozen=True)
class Netns:
    """A network namespace: a node, a pod, the underlay switch or a router.

    ``role`` is one of ``node``, ``pod``, ``switch``, ``router``. ``host`` is the short name a
    user types (``node1``, ``node1-pod2``, ``switch``).
    """

    name: str
    role: str
    host: str
    node: str | None = None  # the node a pod lives on


@dataclass(frozen=True)
class Bridge(Declared):
    """A Linux bridge. ``txqueuelen`` None leaves the kernel's default (1000); Docker creates
    docker0 with 0 (a bridge is a software device with no qdisc queue of its own)."""

    SPEC: ClassVar[Kind] = Kind("links", link="bridge", round=0, fields=LINK_FIELDS + (
        Field("stp", ip="stp_state 1|stp_state 0", nla="IFLA_BR_STP_STATE", where="data", default=False),))

    ns: str
    name: str
    mtu: int | None = None
    mac: str | None = None
    stp: bool = False  # the bridge plugin and Docker leave STP off: no 30 s listening/learning delay
    txqueuelen: int | None = None


@dataclass(frozen=True)
class VethEnd:
    ns: str
    name: str
    mtu: int | None = None
    mac: str | None = None
    master: str | None = None  # bridge in the same namespace
    hairpin: bool = False  # bridge-port flag (kube-flannel's hairpinMode)
    txqueuelen: int | None = None  # None: the kernel's default (1000); Docker and the CNI plugins use 0


@dataclass(frozen=True)
class Veth(Declared):
    """A veth pair, created from ``a.ns`` with its peer placed straight into ``b.ns``.

    Because the pair is born with each end in its own lab namespace, no link ever appears in the
    root namespace, not even for a moment.
    """

    SPEC: ClassVar[Kind] = Kind("links", link="veth", round=1, ends=("a", "b"), fields=LINK_FIELDS + (
        MASTER, Field("hairpin", ip="hairpin on|hairpin off", nla="IFLA_BRPORT_MODE", where="brport", default=False)))

    a: VethEnd
    b: VethEnd

    @property
    def ns(self) -> str:
        return self.a.ns

    @property
    def name(self) -> str:
        return self.a.name


@dataclass(frozen=True)
class Vxlan(Declared):
    """A VXLAN tunnel endpoint (VTEP) device: ``ip link add NAME type vxlan id VNI …``."""

    SPEC: ClassVar[Kind] = Kind("links", link="vxlan", round=2, fields=LINK_FIELDS[:2] + (
        Field("vni", ip="id", nla="IFLA_VXLAN_ID", where="data"),
        Field("local", ip="local", nla="IFLA_VXLAN_LOCAL", where="data"),
        Field("dev", ip="dev", nla="IFLA_VXLAN_LINK", where="data", ref=True),
        Field("port", ip="dstport", nla="IFLA_VXLAN_PORT", where="data"),
        Field("learning", ip="learning|nolearning", nla="IFLA_VXLAN_LEARNING", where="data")))

    ns: str
    name: str
    vni: int
    port: int
    local: str
    dev: str
    learning: bool = False
    mtu: int | None = None
    mac: str | None = None


@dataclass(frozen=True)
class Tun(Declared):
    """A persistent TUN device (IFF_TUN|IFF_NO_PI: layer 3, no packet-info header)."""

    SPEC: ClassVar[Kind] = Kind("links", link="tun", round=2, fields=LINK_FIELDS[1:2])

    ns: str
    name: str
    mtu: int | None = None


@dataclass(frozen=True)
class Ipip(Declared):
    """An IP-in-IP tunnel device (``ip tunnel add NAME mode ipip``), NOARP, inner IP in outer IP.

    ``tunl0`` is special: it is the kernel's fallback IPIP device (``remote any local any``) that
    appears by itself in every namespace once the ``ipip`` module is loaded. Apply then only sets
    its MTU and brings it up, as Felix does (it runs ``ip tunnel add tunl0`` only if it is missing).
    With ``remote any`` the kernel takes the outer destination from the route's gateway, which is
    why Calico's routes read ``via <node IP> dev tunl0 onlink``.
    """

    SPEC: ClassVar[Kind] = Kind("links", link="ipip", round=2, fields=LINK_FIELDS[1:2] + (
        Field("local", ip="local", nla="IFLA_IPIP_LOCAL", where="data", optional=True),
        Field("remote", ip="remote", nla="IFLA_IPIP_REMOTE", where="data", optional=True)))

    ns: str
    name: str
    local: str | None = None
    remote: str | None = None
    mtu: int | None = None


Link = Union[Bridge, Veth, Vxlan, Tun, Ipip]


@dataclass(frozen=True)
class Addr(Declared):
    SPEC: ClassVar[Kind] = Kind("addresses", cmd="ip -n {ns} addr add", undo="ip -n {ns} addr del{keys}",
                                fields=(Field("cidr", key=True), Field("dev", ip="dev", key=True)))

    ns: str
    dev: str
    cidr: str  # "10.244.1.0/32"

    @property
    def interface(self) -> IPv4Interface:
        return IPv4Interface(self.cidr)


@dataclass(frozen=True, slots=True)
class Route(Declared):
    """An IPv4 route in the main table.

    ``proto`` defaults to ``boot`` (3), what ``ip route add`` and the Go netlink library use, so
    ``ip route`` prints no ``proto`` for it, exactly as on a real flannel node.
    """

    SPEC: ClassVar[Kind] = Kind("routes", cmd="ip -n {ns} route add", undo="ip -n {ns} route del{keys}", fields=(
        Field("type", default="unicast"), Field("dst", key=True), Field("via", ip="via"),
        Field("dev", ip="dev", optional=True), Field("src", ip="src"),
        # iproute2 names RT_SCOPE_UNIVERSE "global"; it rejects "universe"
        Field("scope", ip="scope", optional=True, shown=(("universe", "global"),)),
        Field("proto", ip="proto", default="boot"), Field("onlink", ip="onlink", default=False)))

    ns: str
    dst: str  # "default" or a CIDR in canonical form (the network address)
    via: str | None = None
    dev: str | None = None
    onlink: bool = False
    scope: str | None = None  # None: the kernel's choice (universe with a gateway, link without)
    type: str = "unicast"  # or "blackhole"
    proto: str = "boot"
    src: str | None = None

    @property
    def network(self) -> IPv4Network:
        return IPv4Network("0.0.0.0/0" if self.dst == "default" else self.dst)


@dataclass(frozen=True, slots=True)
class Neigh(Declared):
    """A permanent ARP entry (NUD_PERMANENT): the kernel never ages or re-resolves it."""

    SPEC: ClassVar[Kind] = Kind("neighbours", cmd="ip -n {ns} neigh replace", undo="ip -n {ns} neigh del{keys}", fields=(
        Field("dst", key=True), Field("lladdr", ip="lladdr"), Field("dev", ip="dev", key=True),
        Field("state", ip="nud")))

    ns: str
    dev: str
    dst: str
    lladdr: str
    state: str = "permanent"


@dataclass(frozen=True, slots=True)
class Fdb(Declared):
    """A VXLAN forwarding entry: inner MAC -> outer (underlay) destination IP, ``self permanent``."""

    SPEC: ClassVar[Kind] = Kind("fdb", cmd="bridge -n {ns} fdb append", tail="self permanent",
                                undo="bridge -n {ns} fdb del{keys} self", fields=(
        Field("lladdr", key=True), Field("dev", ip="dev", key=True), Field("dst", ip="dst", key=True)))

    ns: str
    dev: str
    lladdr: str
    dst: str


@dataclass(frozen=True)
class Sysctl(Declared):
    """A sysctl inside a namespace. ``key`` is the path under /proc/sys with slashes
    (``net/ipv4/conf/eth0/arp_notify``), which also works for interface names with dots
    (``net/ipv6/conf/flannel.1/accept_ra``); ``sysctl -w`` accepts the same form.

    ``required=False`` marks a sysctl that may be absent on some hosts and is then moot: for
    example ``net/bridge/bridge-nf-call-iptables`` only exists while br_netfilter is loaded, and
    without it bridged frames skip iptables anyway, which is what setting it to 0 asks for.
    """

    SPEC: ClassVar[Kind] = Kind("sysctls")

    ns: str
    key: str
    value: str
    required: bool = True

    @property
    def path(self) -> str:
        return "/proc/sys/" + (self.key if "/" in self.key else self.key.replace(".", "/"))


@dataclass(frozen=True)
class Rule:
    """One iptables rule, in ``iptables -S`` syntax without the ``-A CHAIN`` part."""

    table: str
    chain: str
    spec: str


@dataclass(frozen=True)
class Ruleset(Declared):
    """The iptables rules of one namespace, loaded at once with ``iptables-restore --noflush``.

    ``chains`` are the user chains to create (table, chain); ``policies`` set built-in chain
    policies (table, chain, policy).
    """

    SPEC: ClassVar[Kind] = Kind("iptables")

    ns: str
    rules: tuple[Rule, ...]
    chains: tuple[tuple[str, str], ...] = ()
    policies: tuple[tuple[str, str, str], ...] = ()

    def restore_text(self) -> str:
        """The ruleset in iptables-restore's format, one ``*table … COMMIT`` block per table."""
        tables: dict[str, list[str]] = {}
        order = ("raw", "mangle", "nat", "filter")
        for table, chain, policy in self.policies:
            tables.setdefault(table, []).append(f":{chain} {policy} [0:0]")
        for table, chain in self.chains:
            tables.setdefault(table, []).append(f":{chain} - [0:0]")
        for r in self.rules:
            tables.setdefault(r.table, []).append(f"-A {r.chain} {r.spec}")
        out = []
        for table in sorted(tables, key=lambda t: order.index(t) if t in order else 99):
            out.append(f"*{table}")
            out.extend(tables[table])
            out.append("COMMIT")
        return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Daemon(Declared):
    """A long-running process in a namespace (flannel's UDP forwarder, BIRD, …).

    ``argv`` may contain ``{run}``, replaced by the lab's state directory at start time.
    ``ready`` is an optional path (with ``{run}``) that must exist before the daemon counts as up.
    ``stats`` is an optional path (with ``{run}``) where the daemon keeps a flat JSON object of
    counters; ``netlab status`` shows it next to the daemon's PID and liveness.
    """

    SPEC: ClassVar[Kind] = Kind("daemons")

    ns: str
    name: str
    argv: tuple[str, ...]
    ready: str | None = None
    stats: str | None = None
    control: str | None = None  # its control socket (with {run}), e.g. BIRD's for birdc


@dataclass(frozen=True)
class File(Declared):
    """A file netlab writes before any daemon starts, typically a daemon's config (BIRD's).

    ``path`` must start with ``{run}/``: the file lives in the lab's state directory
    (/run/netlab/<lab>/), so ``down`` removes it with that directory and nothing else is ever
    written. It belongs to no namespace. ``explain`` prints it as a heredoc.
    """

    SPEC: ClassVar[Kind] = Kind("files")

    path: str
    content: str


KernelObject = Union[Bridge, Veth, Vxlan, Tun, Ipip, Addr, Route, Neigh, Fdb, Sysctl, Ruleset, File, Daemon]


@dataclass
class Plan:
    """Everything a lab needs in the kernel, in order. Built by a datapath, never by hand."""

    lab: str
    namespaces: list[Netns] = field(default_factory=list)
    objects: list[KernelObject] = field(default_factory=list)
    encap: Encap | None = None  # how pod packets cross the underlay (None: routed or bridged bare)

    def add_ns(self, ns: Netns) -> Netns:
        if ns.name in self._index()[1]:
            raise ValueError(f"namespace {ns.name} planned twice")
        self.namespaces.append(ns)
        return ns

    def _index(self) -> tuple[dict[str, Netns], set[str]]:
        """Namespaces by host name (what a user types) and by full name, the first one planned
        winning, as a scan in order would, and the set of full names: a 3000-namespace plan is
        asked tens of thousands of times. Brought up to date with the namespace list on every
        call (it only grows)."""
        index, full, seen = self.__dict__.get("_by_name", ({}, set(), 0))
        for n in self.namespaces[seen:]:
            index.setdefault(n.host, n)
            index.setdefault(n.name, n)
            full.add(n.name)
        self.__dict__["_by_name"] = (index, full, len(self.namespaces))
        return index, full

    def add(self, *objs: KernelObject) -> None:
        self.objects.extend(objs)

    def of(self, kind: type) -> list:
        """The objects of one kind, in plan order. Asked a dozen times per bring-up (limits,
        verify, bgp), so the objects are sorted into kinds once, in one pass, and the index
        is brought up to date with the list on every call (it only grows), like
        :meth:`_index`: a 1,000-node plan has three million objects."""
        by_type = self._by_type()
        types = [t for t in by_type if issubclass(t, kind)]
        if len(types) > 1:  # a base class of several kinds: their objects in plan order
            return [o for o in self.objects if isinstance(o, kind)]
        return list(by_type[types[0]]) if types else []

    def _by_type(self) -> dict[type, list]:
        by_type, seen = self.__dict__.get("_kinds", ({}, 0))
        for o in self.objects[seen:]:
            by_type.setdefault(type(o), []).append(o)
        self.__dict__["_kinds"] = (by_type, len(self.objects))
        return by_type

    def in_ns(self, ns: str) -> list[KernelObject]:
        return [o for o in self.objects if _touches(o, ns)]

    def in_phase(self, phase: str) -> list[KernelObject]:
        """This phase's objects in plan order (links: by creation round, then plan order)."""
        return self._buckets().get(phase, [])

    def phased(self) -> Iterator[tuple[Phase, list[KernelObject]]]:
        """The phases that have objects, in :data:`~netlab.spec.PHASES` order."""
        buckets = self._buckets()
        for phase in PHASES:
            if buckets.get(phase.name):
                yield phase, buckets[phase.name]

    def _buckets(self) -> dict[str, list[KernelObject]]:
        """One pass over the objects (a 100-node lab has 30,000), each into its kind's phase."""
        out: dict[str, list[KernelObject]] = {}
        for o in self.objects:
            out.setdefault(o.SPEC.phase, []).append(o)
        if "links" in out:
            out["links"].sort(key=lambda o: o.SPEC.round)
        return out

    def host(self, name: str) -> Netns:
        """Find a namespace by what a user types: ``node1``, ``node1-pod1``, ``switch`` or the full name."""
        found = self._index()[0].get(name)
        if found is None:
            raise KeyError(name)
        return found

    def links(self) -> list[Link]:
        return self.in_phase("links")  # type: ignore[return-value]  # the links phase holds links only

    def address_of(self, ns: str) -> str | None:
        """The address a host is known by: its eth0's, else the first planned one (what hints,
        traces, exercises and bench all use for a pod, a node or the router)."""
        addrs = sorted((a for a in self.of(Addr) if a.ns == ns), key=lambda a: a.dev != "eth0")
        return str(addrs[0].interface.ip) if addrs else None

    def addresses(self, ns: str) -> list[str]:
        return [a.cidr for a in self.of(Addr) if a.ns == ns]

    def check(self) -> None:
        """Internal consistency: every namespace referenced is planned, names fit IFNAMSIZ,
        routes are written as the kernel reports them. Checked kind by kind over the distinct
        values (a 1,000-node plan has a million routes through a thousand gateways), and the
        first offender in plan order is the one named."""
        from .naming import check_ifname

        known = {n.name for n in self.namespaces}
        for kind, objs in self._by_type().items():
            if issubclass(kind, File):
                for o in objs:
                    if not o.path.startswith("{run}/") or ".." in o.path.split("/"):
                        raise ValueError(f"file {o.path} is outside the lab's state directory {{run}}/")
            elif spec_of(objs[0]).link:
                for o in objs:
                    for end in ends_of(o):
                        _check_ns(o, end.ns, known)
                        check_ifname(end.name)
            else:  # every other kind lives in one namespace
                stray = {o.ns for o in objs} - known
                if stray:
                    first = next(o for o in objs if o.ns in stray)
                    _check_ns(first, first.ns, known)
                if issubclass(kind, Route):
                    _check_routes(objs)


@dataclass(frozen=True)
class PodPair:
    """The pod pair every cross-node example uses (hints, tests, bench): the first pod of the
    first node and the first pod of the second node, with the addresses the plan gives them."""

    src: Netns
    dst: Netns
    src_ip: str
    dst_ip: str


def cross_node_pair_or_reason(plan: Plan, routable: bool = True) -> PodPair | str:
    """The cross-node pod pair, or why this plan has none.

    Read from the plan alone (namespaces with role ``node`` and ``pod``, ``Addr`` objects), so
    every caller agrees on one pair. With ``routable`` (the default) a pair whose destination
    address is planned in more than one namespace is refused, as Docker's per-host 172.17.0.0/16
    makes it: there is no pod-to-pod path then, only published ports; ``routable=False`` returns
    it anyway, for the lab whose lesson is that overlap.
    """
    nodes = [n for n in plan.namespaces if n.role == "node"]
    if len(nodes) < 2:
        return "one node only: no pod-to-pod path across nodes to measure"
    firsts = [next((p for p in plan.namespaces if p.role == "pod" and p.node == n.host), None) for n in nodes[:2]]
    src, dst = firsts
    if src is None or dst is None:
        return "no pod on each of the first two nodes"
    sip, dip = plan.address_of(src.name), plan.address_of(dst.name)
    if not sip or not dip:
        return "the plan gives the first pods no address"
    holders = {a.ns for a in plan.of(Addr) if str(a.interface.ip) == dip}
    if routable and len(holders) > 1:
        return (f"pod addresses overlap across nodes ({dip} is planned in {len(holders)} namespaces): "
                "pods cross nodes only through published ports and NAT, not pod-to-pod")
    return PodPair(src, dst, sip, dip)


def cross_node_pair(plan: Plan) -> PodPair | None:
    """The routable cross-node pod pair, or None (:func:`cross_node_pair_or_reason` says why)."""
    found = cross_node_pair_or_reason(plan)
    return found if isinstance(found, PodPair) else None


def _check_routes(routes: list[Route]) -> None:
    """A gateway is an address, and a destination is written as its network, the way the kernel
    reports it back (``10.244.1.0/24``, never ``10.244.1.7/24``), so verify can compare them."""
    for via in dict.fromkeys(o.via for o in routes if o.via):  # distinct, in plan order
        _address(via)
    for dst in dict.fromkeys(o.dst for o in routes if o.dst != "default"):
        _network(dst)


@functools.lru_cache(maxsize=4096)
def _address(text: str) -> None:
    ip_address(text)  # a 150-node lab has 23,000 routes but a few hundred distinct gateways


@functools.lru_cache(maxsize=4096)
def _network(text: str) -> None:
    try:
        canonical = str(IPv4Network(text)) == text
    except ValueError as e:
        raise ValueError(f"route destination {text}: {e}") from None
    if not canonical:
        raise ValueError(f"route destination {text} is not written as its network")


def _check_ns(o: KernelObject, ns: str, known: set[str]) -> None:
    if ns not in known:
        raise ValueError(f"{type(o).__name__} refers to unplanned namespace {ns}")


def _namespaces_of(o: KernelObject) -> tuple[str, ...]:
    if isinstance(o, File):
        return ()
    return tuple(end.ns for end in ends_of(o))


def _touches(o: KernelObject, ns: str) -> bool:
    return ns in _namespaces_of(o)
