"""``netlab bgp <lab> [--json]``: every BIRD of a lab, asked through ``birdc`` on its control socket.

Per host (each node, and the route reflector in ``calico-rr``): the BGP sessions with their state
(``Established`` is the only state in which routes flow), what each session imported and
exported, the routes received over BGP, and the routes BIRD's kernel protocol installed — the
ones ``ip route`` shows as ``proto bird``. In a full mesh a node has n-1 sessions, behind a route
reflector one; either way it receives the same n-1 blocks.

The sockets come from the lab's plan (the ``-s`` argument of each ``bird`` daemon), so any lab
that runs BIRD works with no extra code.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import asdict, dataclass, field

import click
from rich.console import Console
from rich.markup import escape

from .. import api
from ..errors import NetlabError
from ..kernel import procs
from ..kernel.probe import require_root, require_tools
from ..plan import Daemon

_PROTO = re.compile(r"^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d|\S+)\s*(.*?)\s*$")
_ROUTES = re.compile(r"Routes:\s+(\d+) imported, (?:(\d+) filtered, )?(\d+) exported")
_ROUTE = re.compile(r"^(\S+/\d+)?\s+(unicast|blackhole|unreachable|prohibit)\s+\[(\S+)[^\]]*\]\s*(\*)?")
_VIA = re.compile(r"^\s+via (\S+) on (\S+)")


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
    """Run one ``birdc`` command (restricted mode: read-only) inside the BIRD's namespace."""
    try:
        r = procs.run(ns, ["birdc", "-r", "-s", socket, *cmd], timeout=timeout)
    except subprocess.TimeoutExpired:
        raise OSError(f"birdc timed out on {socket}") from None
    text = (r.stdout or "") + (r.stderr or "")
    if r.returncode != 0 or "Unable to connect" in text:
        raise OSError(text.strip().splitlines()[-1] if text.strip() else f"birdc exited {r.returncode}")
    return r.stdout


def parse_protocols(text: str) -> tuple[list[Session], list[str]]:
    """``show protocols all`` -> the BGP sessions, and the names of the kernel protocols."""
    sessions: list[Session] = []
    kernels: list[str] = []
    cur: Session | None = None
    for line in text.splitlines():
        if not line.strip() or line.startswith(("BIRD ", "Name ")):
            continue
        if not line[0].isspace():
            m = _PROTO.match(line)
            cur = None
            if not m:
                continue
            name, proto, _table, state, since, info = m.groups()
            if proto == "Kernel":
                kernels.append(name)
            elif proto == "BGP":
                cur = Session(name, "", state, info.split()[0] if info else "", since, info)
                sessions.append(cur)
            continue
        if cur is None:
            continue
        s = line.strip()
        if s.startswith("BGP state:"):
            cur.bgp_state = s.split(":", 1)[1].strip()
        elif s.startswith("Neighbor address:"):
            cur.neighbor = s.split(":", 1)[1].strip()
        elif s.startswith("Last error:"):
            cur.last_error = s.split(":", 1)[1].strip()
        elif (m := _ROUTES.search(s)):
            cur.imported, cur.exported = int(m.group(1)), int(m.group(3))
    return sessions, kernels


def parse_routes(text: str) -> list[Route]:
    """``show route …`` -> routes; a line without a prefix is another path of the previous one."""
    routes: list[Route] = []
    prefix = None
    for line in text.splitlines():
        m = _ROUTE.match(line)
        if m:
            prefix = m.group(1) or prefix
            routes.append(Route(prefix, m.group(2), m.group(3), bool(m.group(4))))
            continue
        v = _VIA.match(line)
        if v and routes:
            routes[-1].via, routes[-1].dev = v.group(1), v.group(2)
    return routes


def speakers(handle: api.LabHandle) -> list[tuple[str, str, str]]:
    """(host, namespace, control socket) of every BIRD in the lab's plan."""
    hosts = {n.name: n.host for n in handle.plan.namespaces}
    out = []
    for d in handle.plan.of(Daemon):
        if d.argv and d.argv[0].endswith("bird") and "-s" in d.argv:
            sock = d.argv[d.argv.index("-s") + 1].replace("{run}", str(handle.state.dir))
            out.append((hosts.get(d.ns, d.ns), d.ns, sock))
    return out


def query(host: str, ns: str, socket: str) -> Speaker:
    sp = Speaker(host, ns, socket)
    try:
        sp.sessions, kernels = parse_protocols(birdc(ns, socket, "show", "protocols", "all"))
        routes = parse_routes(birdc(ns, socket, "show", "route", "all"))
        bgp = {s.name for s in sp.sessions}
        sp.kernel = bool(kernels)
        sp.received = [r for r in routes if r.source in bgp]
        for k in kernels:
            sp.installed += parse_routes(birdc(ns, socket, "show", "route", "export", k))
    except OSError as e:
        sp.running, sp.error = False, str(e)
    return sp


def collect(handle: api.LabHandle) -> list[Speaker]:
    found = speakers(handle)
    if not found:
        raise NetlabError(f"lab '{handle.name}' runs no BIRD ({handle.lab.datapath} does not use BGP)",
                          "try a BGP lab: netlab up calico, or netlab up calico-rr")
    return [query(*s) for s in found]


@click.command("bgp")
@click.argument("lab")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
@click.option("--summary", is_flag=True, help="One line per BIRD, no per-session lines.")
def command(lab: str, as_json: bool, summary: bool) -> None:
    """Show LAB's BGP: per node, the sessions and their state, routes received and installed (from birdc)."""
    require_root()
    require_tools(("birdc",))
    handle = api.attach(lab)
    result = collect(handle)
    if as_json:
        click.echo(json.dumps({"lab": handle.name, "datapath": handle.lab.datapath,
                               "speakers": [s.as_dict() for s in result]}, indent=2))
    else:
        out = Console(highlight=False, soft_wrap=True)
        for sp in result:
            if not sp.running:
                out.print(f"[bold]{sp.host}[/bold] ({sp.ns}): [red]BIRD not answering[/red]: {escape(sp.error)}")
                continue
            ok = sp.established == len(sp.sessions)
            color = "green" if ok else "red"
            installed = f"{len(sp.installed)} installed" if sp.kernel else "none installed (no kernel protocol)"
            out.print(f"[bold]{sp.host}[/bold] ({sp.ns}): [{color}]{sp.established}/{len(sp.sessions)} sessions "
                      f"established[/{color}], {len(sp.received)} routes received, {installed}")
            if summary:
                continue
            for s in sp.sessions:
                c = "green" if s.established else "red"
                err = f"  ({escape(s.last_error)})" if s.last_error and not s.established else ""
                out.print(f"    {s.name:<20} {s.neighbor:<15} [{c}]{s.bgp_state:<12}[/{c}] since {s.since}  "
                          f"{s.imported} in, {s.exported} out{err}")
            for r in sp.installed:
                via = f"via {r.via} dev {r.dev}" if r.via else r.kind
                out.print(f"    installed {r.prefix:<18} {via}  (from {r.source})")
    if any(not sp.running or sp.established < len(sp.sessions) for sp in result):
        raise SystemExit(1)
