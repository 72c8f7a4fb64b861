"""``netlab bgp <lab> [--json]``: every BIRD of a lab, asked through ``birdc`` on its control socket.

Per host (each node, and the route reflector in ``calico-rr``): the BGP sessions with their state
(``Established`` is the only state in which routes flow), what each session imported and
exported, the routes received over BGP, and the routes BIRD's kernel protocol installed — the
ones ``ip route`` shows as ``proto bird``. In a full mesh a node has n-1 sessions, behind a route
reflector one; either way it receives the same n-1 blocks.

The sockets come from the lab's plan (the ``-s`` argument of each ``bird`` daemon), so any lab
that runs BIRD works with no extra code. The client and its parsers are :mod:`netlab.bgp`, which
``status`` and ``up`` use too.
"""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.markup import escape

from .. import api
from ..bgp import (Route, Session, Speaker, birdc, collect, parse_protocols, parse_routes,  # noqa: F401 (re-exported)
                   query, speakers)
from ..kernel.probe import require_root, require_tools
from .common import complete_instance


@click.command("bgp")
@click.argument("lab", shell_complete=complete_instance)
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
