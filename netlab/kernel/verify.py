"""Verify: read the kernel back and diff it against the plan (``netlab status``, tests, exercises).

Each namespace is read once: links, addresses, routes, neighbours and FDB over netlink, sysctls
from /proc/sys (inside the namespace), iptables through ``iptables-save``. Every plan object then
becomes a :class:`Finding`, ``ok`` or not with the difference spelled out, named by the same
command line ``explain`` prints for it.

With the lab's state (a lab netlab brought up) three things are checked beyond the plan's
objects, because a lab can hold every planned object and still not work:

- each daemon's scheduler state: a stopped process (SIGSTOP, state ``T``) still has its PID and
  its sockets, but answers nothing; it is reported as ``stopped``, not alive;
- BGP (labs that run BIRD): every session the plan configures is Established and every remote
  block is received and routed (:mod:`netlab.bgp`);
- the kernel's one neighbour table: ``table_fulls`` moving since the lab came up means new
  neighbour entries fail in every namespace (:mod:`netlab.kernel.limits`).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from ipaddress import IPv4Network

from .. import bgp
from ..explain import describe
from ..plan import (Addr, Bridge, Daemon, Fdb, File, Ipip, Neigh, Plan, Route, Ruleset, Sysctl, Tun, Veth,
                    Vxlan)
from ..state import State
from . import limits, netns, procs
from .nl import PROTOS, RTNH_F_ONLINK, RTYPES, SCOPES, NsLink

AF_BRIDGE = 7
IFF_UP = 1
_REV_PROTO = {v: k for k, v in PROTOS.items()}
_REV_TYPE = {v: k for k, v in RTYPES.items()}
_REV_SCOPE = {v: k for k, v in SCOPES.items()}


@dataclass
class Finding:
    ns: str
    what: str
    ok: bool
    detail: str = ""


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    missing_namespaces: list[str] = field(default_factory=list)
    daemons: list[dict] = field(default_factory=list)
    bgp: list[dict] = field(default_factory=list)  # one summary per BIRD (netlab.bgp.check)
    neighbour_table: dict | None = None  # limits.neighbour_table: entries, gc_thresh3, overflows

    @property
    def ok(self) -> bool:
        return not self.missing_namespaces and all(f.ok for f in self.findings) and all(d["alive"] for d in self.daemons)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "checked": len(self.findings),
            "problems": [f.__dict__ for f in self.problems],
            "missing_namespaces": self.missing_namespaces,
            "daemons": self.daemons,
            "bgp": self.bgp,
            "neighbour_table": self.neighbour_table,
        }


@dataclass
class Snapshot:
    """What one namespace holds, in plan vocabulary."""

    links: dict[str, dict] = field(default_factory=dict)
    addrs: set[tuple[str, str]] = field(default_factory=set)
    routes: list[dict] = field(default_factory=list)
    neighs: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)
    fdb: set[tuple[str, str, str]] = field(default_factory=set)


def _attr(msg, *path):
    cur = msg
    for name in path:
        if cur is None:
            return None
        cur = cur.get_attr(name)
    return cur


def snapshot(ns: str) -> Snapshot:
    snap = Snapshot()
    with NsLink(ns) as link:
        ipr = link.ipr
        names: dict[int, str] = {}
        msgs = list(ipr.get_links())
        for m in msgs:
            names[m["index"]] = m.get_attr("IFLA_IFNAME")
        for m in msgs:
            kind = _attr(m, "IFLA_LINKINFO", "IFLA_INFO_KIND")
            info = {
                "kind": kind, "mtu": m.get_attr("IFLA_MTU"), "mac": m.get_attr("IFLA_ADDRESS"),
                "master": names.get(m.get_attr("IFLA_MASTER") or 0), "up": bool(m["flags"] & IFF_UP),
                "txqlen": m.get_attr("IFLA_TXQLEN"),
            }
            if kind == "vxlan":
                data = _attr(m, "IFLA_LINKINFO", "IFLA_INFO_DATA")
                info.update(vni=data.get_attr("IFLA_VXLAN_ID"), port=data.get_attr("IFLA_VXLAN_PORT"),
                            local=data.get_attr("IFLA_VXLAN_LOCAL"), learning=bool(data.get_attr("IFLA_VXLAN_LEARNING")),
                            dev=names.get(data.get_attr("IFLA_VXLAN_LINK") or 0))
            snap.links[names[m["index"]]] = info
        for m in ipr.get_links(family=AF_BRIDGE):
            pinfo = m.get_attr("IFLA_PROTINFO")
            if pinfo is not None and names.get(m["index"]) in snap.links:
                snap.links[names[m["index"]]]["hairpin"] = bool(pinfo.get_attr("IFLA_BRPORT_MODE"))
        for m in ipr.get_addr(family=socket.AF_INET):
            snap.addrs.add((names.get(m["index"], "?"), f"{m.get_attr('IFA_LOCAL') or m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}"))
        for m in ipr.get_routes(family=socket.AF_INET, table=254):
            dst = m.get_attr("RTA_DST")
            snap.routes.append({
                "dst": "default" if not m["dst_len"] else str(IPv4Network(f"{dst}/{m['dst_len']}")),
                "via": m.get_attr("RTA_GATEWAY"), "dev": names.get(m.get_attr("RTA_OIF") or 0),
                "onlink": bool(m["flags"] & RTNH_F_ONLINK), "scope": _REV_SCOPE.get(m["scope"], m["scope"]),
                "type": _REV_TYPE.get(m["type"], m["type"]), "proto": _REV_PROTO.get(m["proto"], m["proto"]),
            })
        for m in ipr.get_neighbours(family=socket.AF_INET):
            snap.neighs[(names.get(m["ifindex"], "?"), m.get_attr("NDA_DST"))] = (
                m.get_attr("NDA_LLADDR"), bool(m["state"] & 0x80))
        for m in ipr.get_neighbours(family=AF_BRIDGE):
            if m.get_attr("NDA_DST") and m["state"] & 0x80:
                snap.fdb.add((names.get(m["ifindex"], "?"), m.get_attr("NDA_LLADDR"), m.get_attr("NDA_DST")))
    return snap


def read_sysctl(ns: str, path: str) -> str | None:
    with netns.entered(ns):
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return None


def iptables_save(ns: str) -> dict[str, list[str]]:
    out = procs.run(ns, ["iptables-save"]).stdout
    tables: dict[str, list[str]] = {}
    cur = None
    for line in out.splitlines():
        if line.startswith("*"):
            cur = line[1:]
            tables[cur] = []
        elif cur and (line.startswith("-A ") or line.startswith(":")):
            tables[cur].append(line)
    return tables


def _diff_link(snap: Snapshot, end, kind: str) -> str:
    got = snap.links.get(end.name)
    if got is None:
        return "missing"
    diffs = []
    if got["kind"] != kind:
        diffs.append(f"type {got['kind']} (want {kind})")
    if end.mtu and got["mtu"] != end.mtu:
        diffs.append(f"mtu {got['mtu']} (want {end.mtu})")
    if getattr(end, "mac", None) and got["mac"] != end.mac:
        diffs.append(f"address {got['mac']} (want {end.mac})")
    if getattr(end, "master", None) and got["master"] != end.master:
        diffs.append(f"master {got['master']} (want {end.master})")
    want_txq = getattr(end, "txqueuelen", None)
    if want_txq is not None and got.get("txqlen") != want_txq:
        diffs.append(f"txqueuelen {got.get('txqlen')} (want {want_txq})")
    if getattr(end, "hairpin", False) and not got.get("hairpin"):
        diffs.append("hairpin off (want on)")
    if not got["up"]:
        diffs.append("down")
    if isinstance(end, Vxlan):
        for k in ("vni", "port", "local", "learning", "dev"):
            if got.get(k) != getattr(end, k):
                diffs.append(f"{k} {got.get(k)} (want {getattr(end, k)})")
    return ", ".join(diffs)


def _route_matches(r: dict, o: Route) -> bool:
    return (r["dst"] == (o.dst if o.dst == "default" else str(IPv4Network(o.dst))) and r["via"] == o.via
            and (o.dev is None or r["dev"] == o.dev) and r["onlink"] == o.onlink and r["type"] == o.type
            and r["proto"] == o.proto and (o.scope is None or r["scope"] == o.scope))


def verify(plan: Plan, state: State | None = None) -> Report:
    report = Report()
    arp = limits.arp_cache()
    fulls_before = arp[1] if arp else None
    present = [n.name for n in plan.namespaces if netns.exists(n.name)]
    report.missing_namespaces = [n.name for n in plan.namespaces if n.name not in present]
    snaps = {ns: snapshot(ns) for ns in present}
    saves: dict[str, dict] = {}
    for o in plan.objects:
        if isinstance(o, Daemon):
            continue
        if isinstance(o, File):
            if state is not None:  # where {run} is, only the state knows
                report.findings.append(_file_finding(o, state))
            continue
        nss = (o.a.ns, o.b.ns) if isinstance(o, Veth) else (o.ns,)
        if any(ns not in snaps for ns in nss):
            report.findings.append(Finding(o.ns, describe(o), False, "namespace missing"))
            continue
        detail = _diff(o, snaps, saves)
        report.findings.append(Finding(o.ns, describe(o), not detail, detail))
    if state is not None:
        _daemons(report, plan, state)
        _bgp(report, plan, state, snaps)
        _neighbour_table(report, state, fulls_before)
    return report


def _file_finding(o: File, state: State) -> Finding:
    path = state.dir / o.path.removeprefix("{run}/")
    try:
        detail = "" if path.read_text() == o.content else "differs from the plan"
    except OSError:
        detail = "missing"
    return Finding("", describe(o).splitlines()[0], not detail, detail)


_LINK_KINDS = {Bridge: "bridge", Vxlan: "vxlan", Tun: "tun", Ipip: "ipip"}


def _diff(o, snaps: dict[str, Snapshot], saves: dict[str, dict]) -> str:
    """How plan object ``o`` differs from what its namespace holds ('' when it matches)."""
    if isinstance(o, Veth):
        return "; ".join(f"{e.ns}/{e.name}: {d}" for e in (o.a, o.b) if (d := _diff_link(snaps[e.ns], e, "veth")))
    if type(o) in _LINK_KINDS:
        return _diff_link(snaps[o.ns], o, _LINK_KINDS[type(o)])
    if isinstance(o, Addr):
        return "" if (o.dev, o.cidr) in snaps[o.ns].addrs else "missing"
    if isinstance(o, Neigh):
        return _diff_neigh(snaps[o.ns], o)
    if isinstance(o, Fdb):
        return "" if (o.dev, o.lladdr, o.dst) in snaps[o.ns].fdb else "missing"
    if isinstance(o, Route):
        return "" if any(_route_matches(r, o) for r in snaps[o.ns].routes) else _route_hint(snaps[o.ns], o)
    if isinstance(o, Sysctl):
        value = read_sysctl(o.ns, o.path)
        return "" if value == o.value or (value is None and not o.required) else f"is {value} (want {o.value})"
    if isinstance(o, Ruleset):
        return _diff_ruleset(o, saves.get(o.ns) or saves.setdefault(o.ns, iptables_save(o.ns)))
    return ""


def _diff_neigh(snap: Snapshot, o: Neigh) -> str:
    got = snap.neighs.get((o.dev, o.dst))
    if got is None:
        return "missing"
    if got[0] != o.lladdr:
        return f"lladdr {got[0]} (want {o.lladdr})"
    return "" if got[1] else "not permanent"


def _diff_ruleset(o: Ruleset, tables: dict[str, list[str]]) -> str:
    """Every planned rule and user chain present, and every planned built-in chain policy in force
    (Docker's ``FORWARD DROP`` is what isolates containers: a policy back at ACCEPT is a fault even
    when every rule is there). iptables-save prints a policy as ``:CHAIN POLICY [packets:bytes]``."""
    missing = [f"-A {r.chain} {r.spec}" for r in o.rules if f"-A {r.chain} {r.spec}" not in tables.get(r.table, [])]
    missing += [f":{c}" for t, c in o.chains if not any(line.startswith(f":{c} ") for line in tables.get(t, []))]
    diffs = [f"policy {t} {c} is {got} (want {want})" for t, c, want in o.policies
             if (got := _policy(tables.get(t, []), c)) != want]
    return "; ".join(([("missing: " + " | ".join(missing))] if missing else []) + diffs)


def _policy(lines: list[str], chain: str) -> str | None:
    for line in lines:
        if line.startswith(f":{chain} "):
            return line.split()[1]
    return None


def daemon_state(pid: int, started: int) -> str:
    """``running``, ``stopped`` (SIGSTOP or a tracer: state T/t, it holds its sockets and answers
    nothing) or ``dead`` (gone, a zombie, or the PID now belongs to another process)."""
    letter = procs.proc_state(pid, started)
    if letter is None or letter in "ZX":
        return "dead"
    return "stopped" if letter in "Tt" else "running"


def _daemons(report: Report, plan: Plan, state: State) -> None:
    for d in state.daemons:
        st = daemon_state(d.pid, d.start_time)
        report.daemons.append({"ns": d.ns, "name": d.name, "pid": d.pid, "alive": st == "running", "state": st,
                               "log": d.log})
    planned = {(d.ns, d.name) for d in plan.of(Daemon)}
    recorded = {(d.ns, d.name) for d in state.daemons}
    for ns, name in sorted(planned - recorded):
        report.daemons.append({"ns": ns, "name": name, "pid": None, "alive": False, "state": "not started",
                               "log": None})


def _bgp(report: Report, plan: Plan, state: State, snaps: dict[str, Snapshot]) -> None:
    """BGP expectations as findings; a BIRD that is not running is not asked (birdc would wait
    on a stopped one), its own daemon entry already says why."""
    if not bgp.expected(plan):
        return
    down = {d["ns"]: f"BIRD is {d['state']}" for d in report.daemons if d["name"] == "bird" and not d["alive"]}
    routes = {ns: [(r["dst"], r["proto"]) for r in snap.routes] for ns, snap in snaps.items()}
    res = bgp.check(plan, state.dir, routes, down)
    report.bgp = res.speakers
    for c in res.checks:
        report.findings.append(Finding(c.ns, c.what, c.ok, c.detail))


def _neighbour_table(report: Report, state: State, fulls_before: int | None) -> None:
    """A problem if the kernel's neighbour table overflowed since the lab came up (its baseline),
    or while this check ran (a lab without a baseline)."""
    base = limits.baseline(state)
    table = limits.neighbour_table(state, since=base if base is not None else fulls_before)
    report.neighbour_table = table
    if table["table_fulls"] is None:
        return
    note = limits.overflow_note(table)
    report.findings.append(Finding("", "the kernel's neighbour table has room (table_fulls unchanged since up)",
                                   not note, note))


def _route_hint(snap: Snapshot, o: Route) -> str:
    same = [r for r in snap.routes if r["dst"] == (o.dst if o.dst == "default" else str(IPv4Network(o.dst)))]
    if not same:
        return "missing"
    r = same[0]
    return f"differs: via {r['via']} dev {r['dev']} onlink={r['onlink']} type {r['type']} proto {r['proto']}"
