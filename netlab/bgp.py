"""BGP as netlab sees it: what the plan expects of every BIRD, and what ``birdc`` and the kernel say.

A BGP lab (``calico``, ``calico-rr``, ``calico-ipip``) only works once BGP has *converged*: every
session Established and every node holding a route to every other node's block. Until then the
datapath is built but useless, so:

- :func:`expected` derives, from the plan alone, which BIRD runs where, which sessions it must
  have (its ``protocol bgp`` blocks: name and neighbour) and which blocks each node originates
  (its static ``blackhole`` routes). Nothing is hard-coded per datapath: a route reflector is just
  a speaker with n sessions and no blocks.
- :func:`check` compares that with the running BIRDs (``birdc``, read-only) and the kernel's main
  table: a session that is not Established, a remote block BGP did not deliver, or a remote
  block missing from the kernel (``proto bird``) where the plan does not install it itself.
  ``netlab status`` turns those into problems.
- :func:`converge` is the readiness probe the BGP datapaths hand to ``up`` (``Datapath.ready``):
  it polls until every node routes every remote block and every session is Established.

The ``birdc`` client and its parsers used by ``netlab bgp`` live here too, so the CLI stays thin.
"""

from __future__ import annotations

import re
import socket as _socket
from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from . import naming
from .errors import NetlabError
from .plan import Daemon, File, Plan, Route as PlanRoute

_PROTO = re.compile(r"^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d|\S+)\s*(.*?)\s*$")
_ROUTES = re.compile(r"Routes:\s+(\d+) imported, (?:(\d+) filtered, )?(\d+) exported")
_ROUTE = re.compile(r"^(\S+/\d+)?\s+(unicast|blackhole|unreachable|prohibit)\s+\[(\S+)[^\]]*\]\s*(\*)?")
_VIA = re.compile(r"^\s+via (\S+) on (\S+)")
# the BIRD configuration netlab renders (netlab.datapaths.calico.bird_config)
_CONF_BGP = re.compile(r"^protocol bgp (\S+) from \S+ \{\n(.*?)^\}", re.M | re.S)
_CONF_NEIGHBOR = re.compile(r"^\s*neighbor (\S+) as \d+;", re.M)
_CONF_SOURCE = re.compile(r"^\s*source address (\S+);", re.M)
_CONF_BLOCK = re.compile(r"^\s*route (\S+) blackhole;", re.M)
_CONF_ROUTER_ID = re.compile(r"^router id (\S+);", re.M)

#: How long ``up`` waits for convergence unless told otherwise (``--wait-timeout``).
DEFAULT_WAIT = 60.0


# -- birdc ---------------------------------------------------------------------------------------------

@dataclass
class Session:
    name: str
    neighbor: str
    state: str  # BIRD's protocol state: up, start, down
    bgp_state: str  # Established, Active, Connect, Passive, Idle, …
    since: str
    info: str
    imported: int = 0
    exported: int = 0
    last_error: str = ""

    @property
    def established(self) -> bool:
        return self.bgp_state == "Established"


@dataclass
class Route:
    prefix: str
    kind: str  # unicast, blackhole
    source: str  # the BIRD protocol it came from
    best: bool
    via: str | None = None
    dev: str | None = None


@dataclass
class Speaker:
    """One BIRD, as ``birdc`` sees it."""

    host: str
    ns: str
    socket: str
    running: bool = True
    error: str = ""
    kernel: bool = False  # has a kernel protocol (a node); the route reflector has none
    sessions: list[Session] = field(default_factory=list)
    received: list[Route] = field(default_factory=list)  # over BGP, every path (ADD-PATH keeps several)
    installed: list[Route] = field(default_factory=list)  # exported to the kernel protocol

    @property
    def established(self) -> int:
        return sum(s.established for s in self.sessions)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["established"] = self.established
        d["received_count"] = len(self.received)
        d["installed_count"] = len(self.installed)
        return d


def birdc(ns: str, socket: str, *cmd: str, timeout: float = 10) -> str:
    """One ``birdc -r -s SOCKET CMD`` (restricted mode: read-only), spoken on BIRD's control socket
    directly and printed as birdc prints it: a reply line ``CODE-text`` or ``CODE text`` as its
    text (code 0, the end of a reply, not at all), a continuation `` text`` without its space.

    A Unix socket is a file, not a network-namespace object, so ``ns`` is not entered. Starting
    birdc cost ~40 ms a call, and a 200-node lab's readiness asks every BIRD twice per poll."""
    del ns  # the socket path names the BIRD; kept for the callers' symmetry with the other tools
    try:
        with _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            try:
                s.connect(socket)
            except OSError as e:
                raise OSError(f"Unable to connect to server control socket ({socket}): {e.strerror or e}") from None
            f = s.makefile("rwb")
            out = _bird_reply(f)  # the greeting: "BIRD 2.0.12 ready."
            f.write(b"restrict\n")
            f.flush()
            out += _bird_reply(f)  # "Access restricted"
            f.write(" ".join(cmd).encode() + b"\n")
            f.flush()
            return out + _bird_reply(f)
    except TimeoutError:
        raise OSError(f"birdc timed out on {socket}") from None


def _bird_reply(f) -> str:
    """One reply of BIRD's control protocol, up to its last line (a code followed by a space)."""
    out = []
    while True:
        raw = f.readline()
        if not raw:
            raise OSError("BIRD closed its control socket")
        line = raw.decode(errors="replace").rstrip("\n")
        if line.startswith(" "):
            out.append(line[1:])
            continue
        code, sep = line[:4], line[4:5]
        if code.isdigit() and sep in (" ", "-"):
            if int(code):
                out.append(line[5:])
            if sep == " ":
                return "".join(x + "\n" for x in out)
        else:
            out.append(f"??? <{line}>")


def parse_protocols(text: str) -> tuple[list[Session], list[str]]:
    """``show protocols all`` -> the BGP sessions, and the names of the kernel protocols."""
    sessions: list[Session] = []
    kernels: list[str] = []
    cur: Session | None = None
    for line in text.splitlines():
        if not line.strip() or line.startswith(("BIRD ", "Name ")):
            continue
        if not line[0].isspace():
            cur = _protocol_line(line, sessions, kernels)
            continue
        if cur is not None:
            _session_detail(cur, line.strip())
    return sessions, kernels


def _protocol_line(line: str, sessions: list[Session], kernels: list[str]) -> Session | None:
    m = _PROTO.match(line)
    if not m:
        return None
    name, proto, _table, state, since, info = m.groups()
    if proto == "Kernel":
        kernels.append(name)
    elif proto == "BGP":
        sessions.append(Session(name, "", state, info.split()[0] if info else "", since, info))
        return sessions[-1]
    return None


def _session_detail(cur: Session, s: str) -> None:
    if s.startswith("BGP state:"):
        cur.bgp_state = s.split(":", 1)[1].strip()
    elif s.startswith("Neighbor address:"):
        cur.neighbor = s.split(":", 1)[1].strip()
    elif s.startswith("Last error:"):
        cur.last_error = s.split(":", 1)[1].strip()
    elif (m := _ROUTES.search(s)):
        cur.imported, cur.exported = int(m.group(1)), int(m.group(3))


def parse_routes(text: str) -> list[Route]:
    """``show route …`` -> routes; a line without a prefix is another path of the previous one."""
    routes: list[Route] = []
    prefix: str | None = None
    for line in text.splitlines():
        m = _ROUTE.match(line)
        if m:
            prefix = m.group(1) or prefix
            if prefix is None:  # another path of no route: nothing to attach it to
                continue
            routes.append(Route(prefix, m.group(2), m.group(3), bool(m.group(4))))
            continue
        v = _VIA.match(line)
        if v and routes:
            routes[-1].via, routes[-1].dev = v.group(1), v.group(2)
    return routes


def query(host: str, ns: str, socket: str, timeout: float = 10, installed: bool = True) -> Speaker:
    """Ask one BIRD for its sessions and routes (and, with ``installed``, what it gave the kernel)."""
    sp = Speaker(host, ns, socket)
    try:
        sp.sessions, kernels = parse_protocols(birdc(ns, socket, "show", "protocols", "all", timeout=timeout))
        routes = parse_routes(birdc(ns, socket, "show", "route", "all", timeout=timeout))
        bgp = {s.name for s in sp.sessions}
        sp.kernel = bool(kernels)
        sp.received = [r for r in routes if r.source in bgp]
        for k in kernels if installed else ():
            sp.installed += parse_routes(birdc(ns, socket, "show", "route", "export", k, timeout=timeout))
    except OSError as e:
        sp.running, sp.error = False, str(e)
    return sp


def speakers(plan: Plan, run_dir: Path | str) -> list[tuple[str, str, str]]:
    """(host, namespace, control socket) of every BIRD in the plan (the ``-s`` of its argv)."""
    return [(sp.host, sp.ns, sp.socket_in(run_dir)) for sp in expected(plan)]


def collect(handle) -> list[Speaker]:
    """Every BIRD of a lab that is up (``handle``: an :class:`netlab.api.LabHandle`), asked once."""
    found = speakers(handle.plan, handle.state.dir)
    if not found:
        raise NetlabError(f"lab '{handle.name}' runs no BIRD ({handle.lab.datapath} does not use BGP)",
                          "try a BGP lab: netlab up calico, or netlab up calico-rr")
    return [query(*s) for s in found]


# -- what the plan expects -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlannedSession:
    name: str  # the BIRD protocol name, Mesh_10_0_0_12
    neighbor: str
    source: str | None  # the local address the session runs from


@dataclass(frozen=True)
class PlannedSpeaker:
    """One BIRD of the plan: where it runs and what it must have once BGP has converged."""

    host: str
    ns: str
    socket: str  # with {run}
    router_id: str | None
    sessions: tuple[PlannedSession, ...]
    blocks: tuple[str, ...]  # originated (static blackholes)
    kernel: bool  # has a kernel protocol: it programs the node's routing table

    def socket_in(self, run_dir: Path | str) -> str:
        return naming.expand_run(self.socket, run_dir)


def _arg(argv: tuple[str, ...], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv[:-1] else None


def parse_config(text: str) -> tuple[str | None, tuple[PlannedSession, ...], tuple[str, ...], bool]:
    """(router id, BGP sessions, originated blocks, has a kernel protocol) of a BIRD config
    rendered by :func:`netlab.datapaths.calico.bird_config`."""
    sessions = []
    for m in _CONF_BGP.finditer(text):
        body = m.group(2)
        nb, src = _CONF_NEIGHBOR.search(body), _CONF_SOURCE.search(body)
        if nb:
            sessions.append(PlannedSession(m.group(1), nb.group(1), src.group(1) if src else None))
    rid = _CONF_ROUTER_ID.search(text)
    blocks = tuple(str(IPv4Network(b)) for b in _CONF_BLOCK.findall(text))
    has_kernel = re.search(r"^protocol kernel\b", text, re.M) is not None
    return (rid.group(1) if rid else None), tuple(sessions), blocks, has_kernel


def expected(plan: Plan) -> list[PlannedSpeaker]:
    """Every BIRD daemon of the plan whose config file the plan also holds, with its expectations."""
    files = {f.path: f.content for f in plan.of(File)}
    hosts = {n.name: n.host for n in plan.namespaces}
    out = []
    for d in plan.of(Daemon):
        if not (d.argv and d.argv[0].endswith("bird")):
            continue
        sock, conf = d.control, _arg(d.argv, "-c")
        if sock is None or conf not in files:
            continue
        rid, sessions, blocks, kernel = parse_config(files[conf])
        out.append(PlannedSpeaker(hosts.get(d.ns, d.ns), d.ns, sock, rid, sessions, blocks, kernel))
    return out


def remote_blocks(speakers_: list[PlannedSpeaker], sp: PlannedSpeaker) -> list[str]:
    """The blocks ``sp`` must learn: every block some other speaker of the lab originates."""
    own = set(sp.blocks)
    return sorted({b for o in speakers_ if o is not sp for b in o.blocks} - own,
                  key=lambda b: IPv4Network(b))


def planned_routes(plan: Plan) -> set[tuple[str, str]]:
    """(namespace, destination) of every route the plan installs itself (calico-ipip's tunl0
    routes): for those BGP delivers the information, but the kernel route is netlab's."""
    return {(r.ns, str(r.network)) for r in plan.of(PlanRoute)}


# -- comparing -----------------------------------------------------------------------------------------

@dataclass
class Check:
    """One expectation about BGP, met or not; ``detail`` says how it differs."""

    host: str
    ns: str
    what: str
    ok: bool
    detail: str = ""

    def line(self) -> str:
        return f"{self.what}: {self.detail}" if self.detail else self.what


def kernel_checks(speakers_: list[PlannedSpeaker], planned: set[tuple[str, str]],
                  routes: Mapping[str, Iterable[tuple[str, str]]]) -> list[Check]:
    """Every node whose BIRD programs the kernel must hold ``<remote block> proto bird`` in its
    main table, unless the plan installs that route itself. ``routes``: per namespace, the
    (destination, protocol) pairs of its main table."""
    out = []
    for sp in speakers_:
        if not sp.kernel or sp.ns not in routes:
            continue
        have = {dst for dst, proto in routes[sp.ns] if proto == "bird"}
        for b in remote_blocks(speakers_, sp):
            if (sp.ns, b) in planned:
                continue
            out.append(Check(sp.host, sp.ns, f"route {b} proto bird in {sp.host} (from BGP)", b in have,
                             "" if b in have else "missing: no route to that node's pods"))
    return out


def speaker_checks(sp: PlannedSpeaker, blocks: list[str], got: Speaker) -> list[Check]:
    """Sessions and received routes of one running BIRD against its plan."""
    if not got.running:
        return [Check(sp.host, sp.ns, f"BIRD in {sp.host} answers on its control socket", False,
                      f"not answering: {got.error}")]
    out = []
    by_name = {s.name: s for s in got.sessions}
    for ps in sp.sessions:
        s = by_name.get(ps.name)
        what = f"BGP session {sp.host} {ps.name} (neighbor {ps.neighbor})"
        if s is None:
            out.append(Check(sp.host, sp.ns, what, False, "not configured in the running BIRD"))
            continue
        detail = "" if s.established else (s.bgp_state or s.state) + (f" ({s.last_error})" if s.last_error else "")
        out.append(Check(sp.host, sp.ns, what, s.established, f"not Established: {detail}" if detail else ""))
    received = {r.prefix for r in got.received}
    for b in blocks:
        out.append(Check(sp.host, sp.ns, f"BGP route {b} received by {sp.host}", b in received,
                         "" if b in received else "not received over BGP"))
    return out


@dataclass
class Result:
    checks: list[Check] = field(default_factory=list)
    speakers: list[dict] = field(default_factory=list)  # one summary per BIRD

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def check(plan: Plan, run_dir: Path | str, routes: Mapping[str, Iterable[tuple[str, str]]],
          not_running: Mapping[str, str] | None = None, timeout: float = 3.0) -> Result:
    """Every BGP expectation of the plan against the running BIRDs and the kernel.

    ``not_running`` maps the namespace of a BIRD whose process is stopped or gone to why: such a
    BIRD is not asked (a stopped one would leave ``birdc`` waiting), and is one problem.
    """
    exp = expected(plan)
    res = Result()
    planned = planned_routes(plan)
    kchecks = kernel_checks(exp, planned, routes)
    for sp in exp:
        blocks = remote_blocks(exp, sp)
        why = (not_running or {}).get(sp.ns)
        got = Speaker(sp.host, sp.ns, sp.socket_in(run_dir), running=False, error=why) if why else \
            query(sp.host, sp.ns, sp.socket_in(run_dir), timeout=timeout, installed=False)
        mine = speaker_checks(sp, blocks, got) + [c for c in kchecks if c.ns == sp.ns]
        res.checks += mine
        res.speakers.append({
            "host": sp.host, "ns": sp.ns, "running": got.running, "error": got.error,
            "sessions": len(sp.sessions), "established": got.established,
            "blocks_expected": len(blocks), "blocks_received": len({r.prefix for r in got.received} & set(blocks)),
            "problems": [c.line() for c in mine if not c.ok],
        })
    return res


# -- readiness ---------------------------------------------------------------------------------------

@dataclass
class Readiness:
    """One poll of a lab's readiness: ``done``, a progress line, and what is still missing."""

    done: bool
    summary: str
    missing: list[str] = field(default_factory=list)


def kernel_routes(link) -> list[tuple[str, str]]:
    """(destination, protocol) of the main table, through an open :class:`NsLink`: one dump
    parsed with struct (:mod:`.kernel.nldump`), since readiness polls every node of a 200-node
    lab over and over and pyroute2's decoding took 100 ms per node and poll."""
    from .kernel import nldump
    from .kernel.nl import PROTOS
    from .kernel.readback import RTA_DST, RTA_TABLE, RTM_F_CLONED

    rev = {v: k for k, v in PROTOS.items()}
    out = []
    for hdr, attrs in nldump.dump(link.raw, nldump.RTM_GETROUTE, _socket.AF_INET):
        _family, dst_len, _src, _tos, table, proto, _scope, _type, flags = hdr
        if (nldump.u32(attrs.get(RTA_TABLE)) or table) != 254 or flags & RTM_F_CLONED:
            continue
        out.append(("default" if not dst_len else f"{nldump.ip4(attrs.get(RTA_DST))}/{dst_len}",
                    rev.get(proto, str(proto))))
    return out


def converge(handle) -> Iterator[Readiness]:
    """The readiness probe of the BGP datapaths: each ``next()`` polls once.

    First only the kernel is read (one netlink dump per node, cheap): are all remote blocks
    routed? Once they are, every BIRD is asked (``birdc``) whether all its sessions are
    Established and all remote blocks were received, which also covers labs whose routes netlab
    installs itself (calico-ipip). The namespaces' netlink sockets stay open between polls and are
    closed when the generator is closed.
    """
    from .kernel.nl import NsLink

    exp = expected(handle.plan)
    nodes = [sp for sp in exp if sp.kernel]
    planned = planned_routes(handle.plan)
    links = {}
    try:
        for sp in nodes:
            links[sp.ns] = NsLink(sp.ns)
        while True:
            routes = {ns: kernel_routes(link) for ns, link in links.items()}
            missing = [c for c in kernel_checks(exp, planned, routes) if not c.ok]
            lacking = {c.host for c in missing}
            routed = f"{len(nodes) - len(lacking)}/{len(nodes)} nodes route every remote block"
            if missing:
                yield Readiness(False, f"BGP: {routed}", [c.what for c in missing])
                continue
            res = check(handle.plan, handle.state.dir, routes)
            ends = sum(s["sessions"] for s in res.speakers)
            up_ends = sum(s["established"] for s in res.speakers)
            yield Readiness(not res.problems, f"BGP: {routed}, {up_ends}/{ends} session ends Established",
                            [c.line() for c in res.problems])
    finally:
        for link in links.values():
            link.close()
