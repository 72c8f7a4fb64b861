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
from ..plan import Daemon, File, Plan, Ruleset
from ..spec import KINDS, LINK_KINDS, PHASE, Field, Kind, ends_of, spec_of
from ..state import State
from . import limits, netns, procs
from .nl import NUD, PROTOS, RTNH_F_ONLINK, RTYPES, SCOPES, NsLink

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
    """What one namespace holds, in plan vocabulary: each link as a dict keyed by the declared
    field names (plus ``kind`` and ``up``), and each entry phase as rows keyed the same way."""

    links: dict[str, dict] = field(default_factory=dict)
    entries: dict[str, list[dict]] = field(default_factory=dict)  # phase name -> rows

    @property
    def routes(self) -> list[dict]:
        return self.entries.get("routes", [])


def _attr(msg, *path):
    cur = msg
    for name in path:
        if cur is None:
            return None
        cur = cur.get_attr(name)
    return cur


def _declared(where: str) -> dict[str, Field]:
    """The link fields any kind declares in ``where`` (top level, bridge port): read for every
    link. Computed per snapshot, so a kind declared after import is read back too."""
    return {f.name: f for spec in LINK_KINDS.values() for f in spec.fields if f.where == where}


def _link_info(m, names: dict[int, str], top: dict[str, Field]) -> dict:
    """One RTM_NEWLINK as a dict of the declared fields: top-level ones for every link, and the
    IFLA_INFO_DATA fields its kind declares (a VXLAN's vni, port, local, dev, learning)."""
    kind = _attr(m, "IFLA_LINKINFO", "IFLA_INFO_KIND")
    info: dict = {"kind": kind, "up": bool(m["flags"] & IFF_UP)}
    for f in top.values():
        info[f.name] = _read(f, m.get_attr(f.nla), names)
    spec = LINK_KINDS.get(kind or "")
    data = _attr(m, "IFLA_LINKINFO", "IFLA_INFO_DATA")
    for f in spec.fields if spec and data is not None else ():
        if f.where == "data":
            info[f.name] = _read(f, data.get_attr(f.nla), names)
    return info


def _read(f: Field, value, names: dict[int, str]):
    return names.get(value or 0) if f.ref else value


def _links(ipr, snap: Snapshot) -> dict[int, str]:
    names: dict[int, str] = {}
    msgs = list(ipr.get_links())
    for m in msgs:
        names[m["index"]] = m.get_attr("IFLA_IFNAME")
    top, brport = _declared("link"), _declared("brport")
    for m in msgs:
        snap.links[names[m["index"]]] = _link_info(m, names, top)
    for m in ipr.get_links(family=AF_BRIDGE):
        pinfo = m.get_attr("IFLA_PROTINFO")
        if pinfo is not None and names.get(m["index"]) in snap.links:
            for f in brport.values():
                snap.links[names[m["index"]]][f.name] = pinfo.get_attr(f.nla)
    return names


def _nud(state: int) -> str:
    return next((name for name, bit in sorted(NUD.items(), key=lambda kv: -kv[1]) if state & bit), "none")


def _entries(ipr, names: dict[int, str]) -> dict[str, list[dict]]:
    """Addresses, routes (main table), neighbours and permanent FDB entries with an underlay
    destination, each row keyed by the plan kind's field names."""
    addrs = [{"dev": names.get(m["index"], "?"),
              "cidr": f"{m.get_attr('IFA_LOCAL') or m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}"}
             for m in ipr.get_addr(family=socket.AF_INET)]
    routes = []
    for m in ipr.get_routes(family=socket.AF_INET, table=254):
        dst = m.get_attr("RTA_DST")
        routes.append({
            "dst": "default" if not m["dst_len"] else str(IPv4Network(f"{dst}/{m['dst_len']}")),
            "via": m.get_attr("RTA_GATEWAY"), "dev": names.get(m.get_attr("RTA_OIF") or 0),
            "src": m.get_attr("RTA_PREFSRC"), "onlink": bool(m["flags"] & RTNH_F_ONLINK),
            "scope": _REV_SCOPE.get(m["scope"], m["scope"]), "type": _REV_TYPE.get(m["type"], m["type"]),
            "proto": _REV_PROTO.get(m["proto"], m["proto"]),
        })
    neighs = [{"dev": names.get(m["ifindex"], "?"), "dst": m.get_attr("NDA_DST"), "lladdr": m.get_attr("NDA_LLADDR"),
               "state": _nud(m["state"])} for m in ipr.get_neighbours(family=socket.AF_INET)]
    fdb = [{"dev": names.get(m["ifindex"], "?"), "lladdr": m.get_attr("NDA_LLADDR"), "dst": m.get_attr("NDA_DST")}
           for m in ipr.get_neighbours(family=AF_BRIDGE) if m.get_attr("NDA_DST") and m["state"] & 0x80]
    return {"addresses": addrs, "routes": routes, "neighbours": neighs, "fdb": fdb}


def snapshot(ns: str) -> Snapshot:
    snap = Snapshot()
    with NsLink(ns) as link:
        names = _links(link.ipr, snap)
        snap.entries = _entries(link.ipr, names)
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


def _shown(value) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def _field_diffs(spec: Kind, obj, got: dict, where: tuple[str, ...]) -> list[str]:
    """Every declared field of ``obj`` (in ``where``) that the kernel holds otherwise. None in an
    optional field is the kernel's choice and is not compared; a bool compares as on/off."""
    diffs = []
    for f in spec.fields:
        if f.where not in where or f.key:
            continue
        want = getattr(obj, f.name)
        if want is None and f.optional:
            continue
        have = got.get(f.name)
        if isinstance(want, bool):
            have = bool(have)
        if have != want:
            label = f.ip if f.ip and " " not in f.ip and "|" not in f.ip else f.name
            diffs.append(f"{label} {_shown(have)} (want {_shown(want)})")
    return diffs


def _diff_link(snap: Snapshot, spec: Kind, obj, end) -> str:
    got = snap.links.get(end.name)
    if got is None:
        return "missing"
    diffs = [] if got["kind"] == spec.link else [f"type {got['kind']} (want {spec.link})"]
    diffs += _field_diffs(spec, end, got, ("link", "brport") if end is not obj else ("link", "brport", "data"))
    if not got["up"]:
        diffs.append("down")
    return ", ".join(diffs)


def _diff_links(o, snaps: dict[str, Snapshot]) -> str:
    """A link's ends against their namespaces (a veth names each end: ``ns/name: …``)."""
    spec = spec_of(o)
    if spec.ends:
        return "; ".join(f"{e.ns}/{e.name}: {d}" for e in ends_of(o) if (d := _diff_link(snaps[e.ns], spec, o, e)))
    return _diff_link(snaps[o.ns], spec, o, o)


def _diff_entry(o, snap: Snapshot, index: dict) -> str:
    """Find the kernel's rows with ``o``'s key fields, then diff the other fields: '' if one
    matches, else what the first differs in (or ``missing`` when no row has the key)."""
    spec = spec_of(o)
    rows = index.get((spec.phase, tuple(getattr(o, f.name) for f in spec.keys)), [])
    if not rows:
        return "missing"
    diffs = [_field_diffs(spec, o, r, ("link",)) for r in rows]
    return "" if any(not d for d in diffs) else ", ".join(diffs[0])


def _entry_index(snap: Snapshot) -> dict:
    """Rows by (phase, key values), so each planned entry is found in one lookup."""
    index: dict = {}
    for phase, rows in snap.entries.items():
        keys = _KEYS[phase]
        for r in rows:
            index.setdefault((phase, tuple(r.get(k) for k in keys)), []).append(r)
    return index


#: Each entry phase's key field names, from the declarations (every kind of a phase shares them).
_KEYS = {spec.phase: tuple(f.name for f in spec.keys) for spec in KINDS.values() if PHASE[spec.phase].check == "entry"}


def verify(plan: Plan, state: State | None = None) -> Report:
    report = Report()
    arp = limits.arp_cache()
    fulls_before = arp[1] if arp else None
    present = [n.name for n in plan.namespaces if netns.exists(n.name)]
    report.missing_namespaces = [n.name for n in plan.namespaces if n.name not in present]
    snaps = {ns: snapshot(ns) for ns in present}
    checker = Checker(snaps, state)
    for o in plan.objects:
        finding = checker.check(o)
        if finding is not None:
            report.findings.append(finding)
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


class Checker:
    """One finding per plan object, by its phase's way of reading back (:attr:`Phase.check`)."""

    def __init__(self, snaps: dict[str, Snapshot], state: State | None) -> None:
        self.snaps = snaps
        self.state = state
        self.saves: dict[str, dict] = {}
        self.indexes = {ns: _entry_index(snap) for ns, snap in snaps.items()}

    def check(self, o) -> Finding | None:
        how = PHASE[spec_of(o).phase].check
        if how == "daemon":
            return None  # from the state: daemon_state
        if how == "file":  # where {run} is, only the state knows
            return _file_finding(o, self.state) if self.state is not None else None
        missing = [e.ns for e in ends_of(o) if e.ns not in self.snaps]
        if missing:
            return Finding(o.ns, describe(o), False, "namespace missing")
        detail = self.diff(how, o)
        return Finding(o.ns, describe(o), not detail, detail)

    def diff(self, how: str, o) -> str:
        """How plan object ``o`` differs from what its namespace holds ('' when it matches)."""
        if how == "link":
            return _diff_links(o, self.snaps)
        if how == "entry":
            return _diff_entry(o, self.snaps[o.ns], self.indexes[o.ns])
        if how == "sysctl":
            value = read_sysctl(o.ns, o.path)
            return "" if value == o.value or (value is None and not o.required) else f"is {value} (want {o.value})"
        if how == "iptables":
            return _diff_ruleset(o, self.saves.get(o.ns) or self.saves.setdefault(o.ns, iptables_save(o.ns)))
        raise TypeError(f"no way to verify phase check {how!r}")


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
