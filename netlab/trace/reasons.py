"""Why the probe stopped: candidate causes from the whole path, ranked, each with its namespace.

Where a packet dies is often not where it went wrong. Without SNAT on the source node the probe
is delivered with a source the destination cannot answer; with the destination's bridge down
its connected route is gone, so the packet leaves by the default route and dies at a router
that was never on the planned path; with a wrong route on the source it goes the wrong way from
the first hop. So the explanation looks at every namespace the probe crossed *or should have
crossed* (:class:`Scene`), and at four kinds of evidence there:

- the **plan diff** (what ``netlab status`` reports), restricted to those namespaces;
- the **counters the probe moved** (:class:`.evidence.Window`: probe window minus idle window);
- the **kernel's routing answers** in every namespace that routed the probe, compared with the
  plan's (a deviation upstream explains a death downstream), and the neighbour state of the
  route the kernel chose (not the plan's next hop);
- **settings** that decide a drop: the reverse-path filter where ``IPReversePathFilter`` moved,
  proxy ARP on the node side of a pod whose gateway never answered.

Each finding becomes a :class:`Cause` with a score. The scores encode what an SRE weighs: a drop
counter that names a rule or a filter is direct proof; a plan difference that names something
the probe used (its addresses, its subnet, a device it crossed or was routed to) is a likely
cause, more so where the packet stopped or where the kernel routed it differently from the plan;
a generic "no route" at a namespace the packet should never have reached is a symptom.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from .. import bgp
from ..plan import Netns, Plan, Ruleset
from . import evidence
from .evidence import KernelRoute, Moved, Window
from .path import Expectation, interfaces, local_addresses, lookup

#: Scores of evidence that proves a drop by itself (see the module docstring for the order).
PROOF = {"protocol": 95, "unowned": 96, "gateway": 95, "daemon": 97, "rp_filter": 99, "rule": 90,
         "unplanned_rule": 93, "policy": 84, "unplanned_policy": 91, "deviation": 86}
#: Counters that name a mechanism, and how strongly; anything else that moved scores ``OTHER``.
COUNTER_SCORE = {"Ip.FragFails": 80, "Ip.InAddrErrors": 64, "Ip.OutNoRoutes": 60, "IpExt.InNoRoutes": 60,
                 "Udp.NoPorts": 60, "Ip.InHdrErrors": 55, "Ip.InDiscards": 55, "Ip.OutDiscards": 55}
OTHER = 45
PLAN_BASE = 55


@dataclass
class Cause:
    """A candidate cause: how likely (``score``), where (``host``), what (``text``), and which
    kind of evidence says so (``source``: plan, counter, route, neighbour, setting, daemon,
    protocol)."""

    score: int
    host: str
    text: str
    source: str

    def as_dict(self) -> dict:
        return {"score": self.score, "host": self.host, "text": self.text, "source": self.source}


@dataclass
class Scene:
    """What the trace knows when it explains a stop: the plan and state, the probe's addresses,
    the path (namespaces crossed or to be crossed, in order), what was seen where, the stop."""

    plan: Plan
    state: object
    src: str | None  # the probe's source address
    dst: str  # the probe's destination address
    path: list[Netns]
    seen: dict[str, list[tuple[str, str, str | None]]]  # ns -> [(iface, direction, outer dst)]
    stop_ns: str
    stop_iface: str | None
    stop_dir: str | None
    stop_dst: str | None  # the outer destination at the stop hop
    expected: Expectation | None
    window: Window | None
    never_left: bool = False
    extra: list[Cause] = field(default_factory=list)  # protocol findings of the engine

    @property
    def hosts(self) -> dict[str, str]:
        return {n.name: n.host for n in self.plan.namespaces}

    def host(self, ns: str) -> str:
        return self.hosts.get(ns, ns)

    def crossed(self, ns: str) -> bool:
        return ns in self.seen


@dataclass
class Explanation:
    evidence: list[str] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)

    def add(self, host: str, line: str) -> None:
        self.evidence.append(f"{host}: {line}")


# ---- the kernel's routing, namespace by namespace ----------------------------------------------

def _bgp_block(plan: Plan, ns: str, dst: str) -> str | None:
    """The remote block covering ``dst`` that BIRD must have installed in ``ns`` (Calico BGP)."""
    speakers = bgp.expected(plan)
    for sp in speakers:
        if sp.ns == ns and sp.kernel:
            for b in bgp.remote_blocks(speakers, sp):
                if evidence.in_net(dst, b):
                    return b
    return None


def deviation(plan: Plan, ns: str, dst: str, kr: KernelRoute) -> str | None:
    """How the kernel's route for ``dst`` in ``ns`` differs from what the plan makes of it
    (None: it does not). Routes a BGP daemon must install are expected as ``proto bird``."""
    if kr.local:
        return None
    block = _bgp_block(plan, ns, dst)
    planned = lookup(plan, ns, dst)
    # a datapath may plan the block's route itself, BIRD only announcing (calico-ipip: netlab
    # installs "via <node> dev tunl0 onlink"): then the plan's route is the one to compare with
    if block is not None and (planned is None or planned.dst.prefixlen < IPv4Network(block).prefixlen):
        if kr.usable and kr.proto == "bird":
            return None
        return f"BIRD should have installed {block} here; the kernel has {kr.text}"
    if planned is None:
        if kr.usable or not kr.matched:
            return None if not kr.usable or kr.proto in ("bird", "kernel") else \
                f"the kernel routes {kr.text}, a route the plan does not have"
        return f"the kernel has {kr.text}, which the plan does not have"
    if planned.type != "unicast":
        return None if kr.type == planned.type else f"the kernel has {kr.text}; the plan has '{planned.text}'"
    if not kr.usable:
        return f"the kernel has {kr.text}; the plan routes it '{planned.text}'"
    if (planned.dev and kr.dev != planned.dev) or (planned.via and kr.gateway != planned.via):
        return f"the kernel routes {kr.text}; the plan routes it '{planned.text}'"
    return None


def _routed(scene: Scene) -> dict[str, set[str]]:
    """Per namespace, the destinations it had to route for the probe: what it received for an
    address not its own, and the probe's destination in the source namespace."""
    out: dict[str, set[str]] = {}
    for ns, sightings in scene.seen.items():
        mine = local_addresses(scene.plan, ns)
        for _iface, direction, dst in sightings:
            if direction == "in" and dst and dst not in mine:
                out.setdefault(ns, set()).add(dst)
    if scene.path:
        out.setdefault(scene.path[0].name, set()).add(scene.dst)
    return out


def _route_causes(scene: Scene, ex: Explanation) -> dict[str, KernelRoute]:
    """Every routing namespace's kernel answer for what it routed; deviations from the plan are
    causes (the namespace where the packet went a way the plan does not is where it went wrong)."""
    routes: dict[str, KernelRoute] = {}
    for ns, dsts in _routed(scene).items():
        for dst in sorted(dsts):
            kr = evidence.kernel_route(ns, dst)
            routes.setdefault(ns, kr)
            dev = deviation(scene.plan, ns, dst, kr)
            if dev is not None:
                ex.add(scene.host(ns), f"route for {dst}: {dev}")
                score = PROOF["deviation"] + (1 if ns == scene.stop_ns else 0)
                ex.causes.append(Cause(score, scene.host(ns), f"{scene.host(ns)} routes {dst} differently from "
                                       f"the plan: {dev}", "route"))
            elif ns == scene.stop_ns and not kr.usable:
                ex.causes.append(Cause(62, scene.host(ns), f"{scene.host(ns)} has {kr.text}", "route"))
    return routes


def _is_noarp(plan: Plan, ns: str, dev: str | None) -> bool:
    me = interfaces(plan).get((ns, dev or ""))
    return me is not None and me.kind in ("tun", "ipip")


def _owned(plan: Plan, addr: str) -> bool:
    from .path import owners
    return bool(owners(plan, addr))


def _stop_route(scene: Scene, ex: Explanation, routes: dict[str, KernelRoute]) -> None:
    """At the stop: the kernel's lookup as it would be made for this packet (with the source and
    the interface it came in on), and the neighbour entry of the route the kernel chose."""
    ns, host = scene.stop_ns, scene.host(scene.stop_ns)
    dst = scene.stop_dst or scene.dst
    if dst in local_addresses(scene.plan, ns):
        return
    src = scene.src if scene.stop_dst in (None, scene.dst) else None
    ex.add(host, evidence.route_get(ns, dst, src, scene.stop_iface if scene.stop_dir == "in" else None))
    known = routes.get(ns)
    kr = known if known is not None and known.dst == dst else evidence.kernel_route(ns, dst)
    if not kr.usable or kr.local or _is_noarp(scene.plan, ns, kr.dev):
        return
    nb = evidence.neighbour_state(ns, kr.gateway or dst, kr.dev)
    ex.add(host, nb.line())
    if not nb.unresolved:
        return
    if kr.gateway is None and not _owned(scene.plan, dst):
        ex.causes.append(Cause(PROOF["unowned"], host, f"no host has this address ({dst}); {host} ARPed for it "
                               f"on {kr.dev} and nobody answered ({nb.line()})", "neighbour"))
    else:
        who = kr.gateway or dst
        ex.causes.append(Cause(80, host, f"{host} cannot resolve {who} on {kr.dev}: nobody answers its ARP "
                               f"({nb.line()})", "neighbour"))


# ---- never seen leaving: the pod's gateway and the node side of its link ----------------------

def _node_side(plan: Plan, ns: str, dev: str | None) -> tuple[str, str] | None:
    me = interfaces(plan).get((ns, dev or ""))
    return me.peer if me is not None else None


def _node_settings(plan: Plan, peer: tuple[str, str]) -> list[tuple[str, str | None, str | None]]:
    """(key, kernel value, planned value) of the settings that let a node answer and forward for
    the pod behind ``peer``: proxy ARP, forwarding, rp_filter on that interface."""
    from ..plan import Sysctl
    pns, pdev = peer
    planned = {s.path.removeprefix("/proc/sys/"): s.value for s in plan.of(Sysctl) if s.ns == pns}
    out = []
    for key in (f"net/ipv4/conf/{pdev}/proxy_arp", f"net/ipv4/conf/{pdev}/forwarding",
                f"net/ipv4/conf/{pdev}/rp_filter"):
        out.append((key, evidence.sysctl(pns, key), planned.get(key)))
    return out


def _never_left(scene: Scene, ex: Explanation) -> None:
    """The probe never left the source: its route's neighbour (a pod's gateway that nobody
    answers ARP for) and the node-side settings that should answer it (proxy ARP on cali*)."""
    ns, host = scene.stop_ns, scene.host(scene.stop_ns)
    kr = evidence.kernel_route(ns, scene.dst)
    ex.add(host, evidence.route_get(ns, scene.dst))
    if not kr.usable or kr.local:
        return
    nb = evidence.neighbour_state(ns, kr.gateway or scene.dst, kr.dev)
    ex.add(host, nb.line())
    peer = _node_side(scene.plan, ns, kr.dev)
    wrong = []
    if peer is not None:
        for key, have, want in _node_settings(scene.plan, peer):
            line = f"{key.replace('/', '.')} = {have}" + (f" (the plan sets {want})" if want is not None else "")
            ex.add(scene.host(peer[0]), f"{peer[1]} (the other end of {host}:{kr.dev}): {line}")
            if want is not None and have != want:
                wrong.append(f"{scene.host(peer[0])} has {line}")
    if nb.unresolved or nb.state is None:
        why = f"; {', '.join(wrong)}: nobody answers the pod's ARP" if wrong else ""
        ex.causes.append(Cause(PROOF["gateway"] if wrong else 80, scene.host(peer[0]) if wrong and peer else host,
                               f"{host}'s gateway {kr.gateway or scene.dst} on {kr.dev} never answered ARP "
                               f"({nb.line()}){why}", "neighbour"))


# ---- counters ----------------------------------------------------------------------------------

def _planned_rules(plan: Plan, ns: str) -> set[str]:
    out: set[str] = set()
    for rs in plan.of(Ruleset):
        if rs.ns == ns:
            out.update(f"{r.table} -A {r.chain} {r.spec}" for r in rs.rules)
            out.update(f"{t} {c} policy {p}" for t, c, p in rs.policies)
    return out


def _rule_cause(scene: Scene, ns: str, m: Moved) -> Cause:
    host = scene.host(ns)
    planned = m.name in _planned_rules(scene.plan, ns)
    policy = " policy " in m.name
    key = ("policy" if policy else "rule") if planned else ("unplanned_policy" if policy else "unplanned_rule")
    what = "the chain policy" if policy else "the rule"
    note = "" if planned else " (not in the plan)"
    return Cause(PROOF[key], host, f"iptables in {host}: {what} '{m.name}'{note} dropped the probe "
                 f"(+{m.net} packets)", "counter")


def _rp_cause(scene: Scene, ns: str, m: Moved) -> Cause:
    """rp_filter drops: the interface the packet came in on, the effective mode, and where the
    kernel would send a reply to the packet's source (strict mode wants the same interface)."""
    host = scene.host(ns)
    rx = [i for i, d, _ in scene.seen.get(ns, []) if d == "in"]
    dev = rx[-1] if rx else "?"
    mode, values = evidence.rp_filter(ns, dev) if rx else (0, "")
    back = evidence.kernel_route(ns, scene.src).text if scene.src else "?"
    return Cause(PROOF["rp_filter"], host, f"{host} dropped it by reverse-path filtering (TcpExt.IPReversePathFilter "
                 f"+{m.net}; rp_filter mode {mode}: {values}): the route back to {scene.src} is {back}, "
                 f"not by {dev}", "counter")


def _counter_causes(scene: Scene, ex: Explanation) -> set[str]:
    """Counters the probe moved in every namespace of the path; returns the namespaces where an
    iptables policy dropped it (a missing ACCEPT rule there is the likely reason)."""
    policy_drops: set[str] = set()
    for n in scene.path:
        host = n.host
        for m in scene.window.moved(n.name) if scene.window else []:
            ex.add(host, f"counter: {m.line()}")
            if m.kind == "iptables":
                ex.causes.append(_rule_cause(scene, n.name, m))
                if " policy " in m.name:
                    policy_drops.add(n.name)
            elif m.name == "TcpExt.IPReversePathFilter":
                ex.causes.append(_rp_cause(scene, n.name, m))
            else:
                ex.causes.append(_counter_cause(scene, n.name, m))
    return policy_drops


def _counter_cause(scene: Scene, ns: str, m: Moved) -> Cause:
    host = scene.host(ns)
    if m.kind == "dev":
        used = {i for i, _, _ in scene.seen.get(ns, [])} | (
            {scene.expected.iface} if scene.expected and scene.expected.ns == ns else set())
        score = 58 if m.dev in used else 30
    else:
        score = COUNTER_SCORE.get(m.name, OTHER)
    return Cause(score + (3 if ns == scene.stop_ns else 0), host, f"{host} counted {m.line()}", "counter")


# ---- the plan diff -----------------------------------------------------------------------------

def _tokens(scene: Scene, ns: str, routes: dict[str, KernelRoute]) -> tuple[set[str], set[str]]:
    """(addresses, interfaces) the probe used in ``ns``, or that the kernel or the plan would
    route it by there: a plan difference naming one of them concerns the probe."""
    addrs = {a for a in (scene.src, scene.dst) if a}
    ifaces = set()
    for iface, _d, dst in scene.seen.get(ns, []):
        ifaces.add(iface)
        if dst:
            addrs.add(dst)
    if scene.expected is not None and scene.expected.ns == ns and scene.expected.iface:
        ifaces.add(scene.expected.iface)
    kr = routes.get(ns)
    if kr is not None and kr.dev:
        ifaces.add(kr.dev)
    planned = lookup(scene.plan, ns, scene.dst)
    if planned is not None:
        ifaces.update(x for x in (planned.dev,) if x)
        addrs.update(x for x in (planned.via,) if x)
    return addrs, ifaces


def _word(token: str, text: str) -> bool:
    return re.search(rf"(?<![\w.:/-]){re.escape(token)}(?![\w:/-]|\.\d)", text) is not None


def _relevance(text: str, addrs: set[str], ifaces: set[str], dst: str, src: str | None) -> int:
    """How much a plan difference's text concerns the probe: its addresses, a subnet holding one
    of them (a /24 or longer counts more than a pool), a device it used or was routed to."""
    score = 0
    if any(_word(a, text) for a in addrs):
        score += 20
    for cidr in re.findall(r"\b\d+\.\d+\.\d+\.\d+/\d+\b", text):
        net = IPv4Network(cidr, strict=False)
        if net.prefixlen and any(a and IPv4Address(a) in net for a in (dst, src)):
            score += 20 if net.prefixlen >= 24 else 8
            break
    if any(_word(i, text) for i in ifaces):
        score += 15
    return min(score, 35)


def _finding_line(f) -> str:
    return f"{f.what.splitlines()[0]}: {f.detail}" if f.detail else f.what.splitlines()[0]


def _report(scene: Scene, ex: Explanation):
    """``netlab status``'s comparison of the lab with the plan (None if it could not be made)."""
    from ..kernel.verify import verify

    try:
        return verify(scene.plan, scene.state)  # type: ignore[arg-type]
    except Exception as e:  # the diff is best effort here: the trace's own evidence still stands
        ex.evidence.append(f"(could not compare with the plan: {e})")
        return None


def _plan_causes(scene: Scene, ex: Explanation, rep, routes: dict[str, KernelRoute], policy_drops: set[str],
                 deviated: set[str]) -> None:
    """``netlab status``'s findings in the namespaces of the path, each scored by how much it
    concerns the probe (and the daemons there that are not running)."""
    if rep is None:
        return
    names = {n.name for n in scene.path}
    differs: set[str] = set()
    for f in rep.problems:
        if f.ns not in names and not (f.ns == "" and f.what):
            continue
        ns = f.ns or scene.stop_ns
        line = _finding_line(f)
        differs.add(ns)
        ex.add(scene.host(ns), f"kernel differs from the plan: {line}")
        addrs, ifaces = _tokens(scene, ns, routes)
        score = PLAN_BASE + _relevance(line, addrs, ifaces, scene.dst, scene.src)
        score += 8 if ns == scene.stop_ns else 4 if scene.crossed(ns) else 0
        score += 15 if ns in deviated and score > PLAN_BASE + 4 else 0
        score += 25 if ns in policy_drops and "-j ACCEPT" in line else 0
        kind = getattr(f, "kind", None)
        label = f"status ({kind})" if kind else "status"
        ex.causes.append(Cause(min(score, 98), scene.host(ns), f"{label}: {line}", "plan"))
    _daemon_causes(scene, ex, rep.daemons, names)
    for n in scene.path:
        if n.name not in differs and n.name in scene.seen:
            ex.add(n.host, f"kernel matches the plan in {n.host}")


def _daemon_causes(scene: Scene, ex: Explanation, daemons: list[dict], names: set[str]) -> None:
    for d in daemons:
        if d["ns"] in names and not d["alive"]:
            host = scene.host(d["ns"])
            line = f"daemon {d['name']} (pid {d['pid']}) is not running ({d.get('state', 'dead')})"
            ex.add(host, line)
            ex.causes.append(Cause(PROOF["daemon"], host, f"{host}: {line}", "daemon"))


# ---- all of it ---------------------------------------------------------------------------------

def rank(causes: list[Cause]) -> list[Cause]:
    """Most likely first; the same text once (the highest score it got)."""
    best: dict[str, Cause] = {}
    for c in causes:
        if c.text not in best or best[c.text].score < c.score:
            best[c.text] = c
    return sorted(best.values(), key=lambda c: -c.score)


def explain(scene: Scene) -> Explanation:
    """Evidence lines (each prefixed with its host) and ranked causes for a stopped probe.

    The reading that needs no counters comes first (routes, neighbours, the plan diff): it runs
    while the idle window of :class:`.evidence.Window` elapses, so the idle snapshot costs little
    extra time; the counters are judged once it is taken."""
    ex = Explanation()
    routes = _route_causes(scene, ex)
    deviated = {c_ns for c_ns in routes if any(c.source == "route" and c.host == scene.host(c_ns)
                                                and c.score >= PROOF["deviation"] for c in ex.causes)}
    if scene.never_left:
        _never_left(scene, ex)
    else:
        _stop_route(scene, ex, routes)
    rep = _report(scene, ex)
    if scene.window is not None:
        scene.window.settle([n.name for n in scene.path])
    policy_drops = _counter_causes(scene, ex)
    _plan_causes(scene, ex, rep, routes, policy_drops, deviated)
    ex.causes.extend(scene.extra)
    ex.causes = rank(ex.causes)
    return ex
