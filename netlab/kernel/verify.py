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

import functools
import os
import socket
import subprocess
from dataclasses import dataclass, field

from .. import bgp, gcpause
from ..explain import describe
from ..plan import Daemon, File, Plan, Ruleset
from ..spec import KINDS, PHASE, Kind, ends_of, spec_of
from ..state import State
from . import limits, netns, nftables, procs, unplanned
from .readback import Snapshot, snapshot, sysctl_from_netconf



class Finding:
    """One checked object: ``what`` is the command that creates it (or, for an unplanned one,
    the command that removes it), ``kind`` says how it is wrong: ``missing``, ``different`` or
    ``unplanned`` ('' when it matches). A planned object's ``what`` is worked out only when it is
    read: a 150-node lab checks 70,000 objects and shows only the problems."""

    __slots__ = ("ns", "ok", "detail", "kind", "_what", "_obj")

    def __init__(self, ns: str, what: str | None, ok: bool, detail: str = "", kind: str = "",
                 obj: object = None) -> None:
        self.ns, self.ok, self.detail, self._what, self._obj = ns, ok, detail, what, obj
        self.kind = kind if kind or ok else ("missing" if detail == "missing" else "different")

    @property
    def what(self) -> str:
        if self._what is None:
            self._what = describe(self._obj)
        return self._what

    def as_dict(self) -> dict:
        return {"ns": self.ns, "what": self.what, "ok": self.ok, "detail": self.detail, "kind": self.kind}

    def __repr__(self) -> str:
        return f"Finding({self.ns!r}, {self.what!r}, {self.ok}, {self.detail!r}, {self.kind!r})"


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
            "problems": [f.as_dict() for f in self.problems],
            "unplanned": sum(1 for f in self.problems if f.kind == "unplanned"),
            "missing_namespaces": self.missing_namespaces,
            "daemons": self.daemons,
            "bgp": self.bgp,
            "neighbour_table": self.neighbour_table,
        }


def read_sysctl(ns: str, path: str) -> str | None:
    with netns.entered(ns):
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return None


def _parse_save(out: str) -> dict[str, list[str]]:
    """iptables-save's text as {table: [":CHAIN POLICY [p:b]", "-A CHAIN spec", …]}, in order."""
    tables: dict[str, list[str]] = {}
    cur = None
    for line in out.splitlines():
        if line.startswith("*"):
            cur = line[1:]
            tables[cur] = []
        elif cur and (line.startswith("-A ") or line.startswith(":")):
            tables[cur].append(line)
    return tables


def iptables_save(ns: str) -> dict[str, list[str]]:
    return _parse_save(procs.run(ns, ["iptables-save"]).stdout)


class Saves(dict):
    """``iptables-save`` of many namespaces, run by one shell loop on the other core while this
    process reads netlink (one process, not one per namespace: 150 spawns cost this process
    0.4 s), and parsed on first use. A namespace without tables reads as empty, at no cost."""

    MARK = "### netlab-ns "

    def __init__(self, pending: list[str]) -> None:
        super().__init__()
        self._pending = set(pending)
        self._proc: subprocess.Popen | None = None
        if pending:
            loop = 'for p in "$@"; do echo "' + self.MARK + '${p##*/}"; nsenter --net="$p" iptables-save; done'
            self._proc = subprocess.Popen(["sh", "-c", loop, "sh", *(netns.path(ns) for ns in pending)],
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def __missing__(self, ns: str) -> dict[str, list[str]]:
        if ns in self._pending and self._proc is not None:
            self.collect()
            if ns in self:
                return self[ns]
        if ns in self._pending:  # the loop did not report it: ask on its own
            self[ns] = iptables_save(ns)
            return self[ns]
        return {}

    def collect(self) -> None:
        if self._proc is None:
            return
        out, _ = self._proc.communicate()
        self._proc = None
        current: str | None = None
        lines: list[str] = []
        for line in out.splitlines() + [self.MARK]:
            if line.startswith(self.MARK):
                if current is not None:
                    self[current] = _parse_save("\n".join(lines))
                current, lines = line[len(self.MARK):] or None, []
            else:
                lines.append(line)


def iptables_saves(namespaces: list[str]) -> Saves:
    """Start reading iptables in every namespace that has tables at all (most pods have none:
    nothing ever created one, so there is nothing to read)."""
    return Saves([ns for ns in namespaces if _has_tables(ns)])


def _has_tables(ns: str) -> bool:
    """Whether the namespace has any nftables table (iptables-nft keeps its tables there) or a
    legacy x_tables table (listed in /proc/net/ip_tables_names, per namespace)."""
    with netns.entered(ns):
        try:
            with open("/proc/net/ip_tables_names") as f:
                if f.read().strip():
                    return True
        except OSError:
            pass
        return nftables.has_tables()


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


@functools.lru_cache(maxsize=None)
def _compiled(spec: Kind) -> tuple[tuple[str, ...], tuple[tuple[str, bool], ...]]:
    """An entry kind's key field names and its compared fields (name, optional), worked out once:
    status compares 70,000 entries of a 150-node lab against these."""
    return (tuple(f.name for f in spec.keys),
            tuple((f.name, f.optional) for f in spec.fields if f.where == "link" and not f.key))


def _matches(o, row: dict, compared: tuple[tuple[str, bool], ...]) -> bool:
    for name, optional in compared:
        want = getattr(o, name)
        if want is None and optional:
            continue
        have = row.get(name)
        if (bool(have) if isinstance(want, bool) else have) != want:
            return False
    return True


def _diff_entry(o, snap: Snapshot, index: dict) -> str:
    """Find the kernel's rows with ``o``'s key fields, then diff the other fields: '' if one
    matches, else what the first differs in (or ``missing`` when no row has the key)."""
    spec = type(o).SPEC
    keys, compared = _compiled(spec)
    rows = index.get((spec.phase, tuple(getattr(o, k) for k in keys)), [])
    if not rows:
        return "missing"
    if any(_matches(o, r, compared) for r in rows):
        return ""
    return ", ".join(_field_diffs(spec, o, rows[0], ("link",)))


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


#: Below this many namespaces one process reads them all faster than two can start.
PARALLEL_FROM = 96


def _read_part(names: list[str]) -> dict[str, Snapshot]:
    return {ns: snapshot(ns) for ns in names}


def snapshots(names: list[str]) -> dict[str, Snapshot]:
    """Every namespace read back; a large lab is read by two forked processes at once (the
    parsing is Python, so one process is one core), each returning its half's snapshots."""
    if len(names) < PARALLEL_FROM or (os.cpu_count() or 1) < 2:
        return _read_part(names)
    import multiprocessing

    half = len(names) // 2
    try:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            parts = pool.map(_read_part, [names[:half], names[half:]])
    except (OSError, multiprocessing.ProcessError):
        return _read_part(names)
    return {**parts[0], **parts[1]}


def verify(plan: Plan, state: State | None = None) -> Report:
    with gcpause.paused():
        return _verify(plan, state)


def _verify(plan: Plan, state: State | None) -> Report:
    report = Report()
    arp = limits.arp_cache()
    fulls_before = arp[1] if arp else None
    present = [n.name for n in plan.namespaces if netns.exists(n.name)]
    report.missing_namespaces = [n.name for n in plan.namespaces if n.name not in present]
    saves = iptables_saves(present)  # started first: they run on another core while netlink is read
    snaps = snapshots(present)
    checker = Checker(snaps, state, saves)
    for o in plan.objects:
        finding = checker.check(o)
        if finding is not None:
            report.findings.append(finding)
    report.findings += unplanned.findings(plan, snaps, checker.saves, state)
    checker.saves.collect()
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

    def __init__(self, snaps: dict[str, Snapshot], state: State | None, saves: "Saves") -> None:
        self.snaps = snaps
        self.state = state
        self.saves = saves
        self.indexes = {ns: _entry_index(snap) for ns, snap in snaps.items()}

    def check(self, o) -> Finding | None:
        spec = type(o).SPEC
        how = PHASE[spec.phase].check
        if how == "daemon":
            return None  # from the state: daemon_state
        if how == "file":  # where {run} is, only the state knows
            return _file_finding(o, self.state) if self.state is not None else None
        if how == "entry":  # the bulk (70,000 in a 150-node lab): one namespace, looked up directly
            snap = self.snaps.get(o.ns)
            if snap is None:
                return Finding(o.ns, None, False, "namespace missing", "missing", obj=o)
            detail = _diff_entry(o, snap, self.indexes[o.ns])
            return Finding(o.ns, None, not detail, detail, obj=o)
        if any(e.ns not in self.snaps for e in ends_of(o)):
            return Finding(o.ns, None, False, "namespace missing", "missing", obj=o)
        detail = self.diff(how, o)
        return Finding(o.ns, None, not detail, detail, obj=o)

    def diff(self, how: str, o) -> str:
        """How plan object ``o`` differs from what its namespace holds ('' when it matches)."""
        if how == "link":
            return _diff_links(o, self.snaps)
        if how == "entry":
            return _diff_entry(o, self.snaps[o.ns], self.indexes[o.ns])
        if how == "sysctl":
            value = sysctl_from_netconf(self.snaps[o.ns], o.key)
            if value is None:
                value = read_sysctl(o.ns, o.path)
            return "" if value == o.value or (value is None and not o.required) else f"is {value} (want {o.value})"
        if how == "iptables":
            return _diff_ruleset(o, self.saves[o.ns])
        raise TypeError(f"no way to verify phase check {how!r}")


def _diff_ruleset(o: Ruleset, tables: dict[str, list[str]]) -> str:
    """Every planned rule and user chain present, and every planned built-in chain policy in force
    (Docker's ``FORWARD DROP`` is what isolates containers: a policy back at ACCEPT is a fault even
    when every rule is there). iptables-save prints a policy as ``:CHAIN POLICY [packets:bytes]``."""
    missing = [f"-A {r.chain} {r.spec}" for r in o.rules if f"-A {r.chain} {r.spec}" not in tables.get(r.table, [])]
    missing += [f":{c}" for t, c in o.chains if not any(line.startswith(f":{c} ") for line in tables.get(t, []))]
    diffs = [f"policy {t} {c} is {got} (want {want})" for t, c, want in o.policies
             if (got := _policy(tables.get(t, []), c)) != want]
    return "; ".join(([("missing: " + " | ".join(missing))] if missing else []) + diffs + _out_of_order(o, tables))


def _out_of_order(o: Ruleset, tables: dict[str, list[str]]) -> list[str]:
    """iptables evaluates a chain top to bottom, so the planned rules must stand in the planned
    order (a MASQUERADE exception after the MASQUERADE it exempts from is a different datapath)."""
    out = []
    chains: dict[tuple[str, str], list[str]] = {}
    for r in o.rules:
        chains.setdefault((r.table, r.chain), []).append(f"-A {r.chain} {r.spec}")
    for (table, chain), planned in chains.items():
        where = {line: i for i, line in enumerate(tables.get(table, [])) if line.startswith(f"-A {chain} ")}
        seen = [where[line] for line in planned if line in where]
        for a, b in zip(seen, seen[1:], strict=False):
            if b < a:
                out.append(f"rules of {table} {chain} out of the planned order")
                break
    return out


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
    """Each daemon is healthy when it runs (not stopped, not dead), in the namespace it belongs
    to, and, where the plan declares a control socket (BIRD's), answers on it."""
    controls = {(d.ns, d.name): state.expand(d.control) for d in plan.of(Daemon) if d.control}
    argvs = {(d.ns, d.name): [state.expand(a) for a in d.argv] for d in plan.of(Daemon)}
    for d in state.daemons:
        st = daemon_state(d.pid, d.start_time)
        if st == "running" and procs.netns_inode(d.pid) != _inode(d.ns):
            st = "in another namespace"
        if st == "running" and (d.ns, d.name) in argvs and list(d.argv) != argvs[(d.ns, d.name)]:
            st = "running another configuration than the plan's"
        if st == "running" and (d.ns, d.name) in controls and not _answers(controls[(d.ns, d.name)]):
            st = "not answering on its control socket"
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


def _inode(ns: str) -> int | None:
    try:
        return os.stat(netns.path(ns)).st_ino
    except OSError:
        return None


def _answers(path: str, timeout: float = 3.0) -> bool:
    """A daemon that serves a control socket greets whoever connects (BIRD: ``0001 BIRD … ready.``).
    A stopped or wedged one still has the socket, and the kernel still accepts the connection
    into its backlog, but nothing is ever said: that silence is the finding."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            return bool(s.recv(64))
    except OSError:
        return False
