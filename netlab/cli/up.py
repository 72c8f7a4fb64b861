"""``netlab up <lab>``: build a lab, then say what is where and what to try."""

from __future__ import annotations

import time

import click
from rich.console import Console

from .. import api
from ..plan import Addr
from .common import override_options


@click.command("up")
@click.argument("lab")
@override_options
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
def command(lab: str, name: str | None, overrides: dict, quiet: bool) -> None:
    """Build LAB (a name from 'netlab list' or a path to a lab file)."""
    err = Console(stderr=True)
    t0 = time.monotonic()
    progress = None if quiet else (lambda msg: err.print(f"[dim]  {msg}[/dim]"))
    handle = api.up(lab, name=name, progress=progress, **overrides)
    elapsed = time.monotonic() - t0
    if quiet:
        return
    out = Console()
    dp = handle.datapath
    out.print(f"[bold green]lab {handle.name} is up[/bold green] ({dp.name}, {elapsed:.2f}s): {handle.lab.description}")
    for n in handle.plan.namespaces:
        if n.role in ("node", "router") or (n.role == "pod" and len(handle.plan.namespaces) <= 40):
            addrs = [a.cidr for a in handle.plan.of(Addr) if a.ns == n.name and a.dev in ("eth0", "eth1")]
            indent = "    " if n.role == "pod" else "  "
            out.print(f"{indent}{n.host:<14} {n.name:<28} {' '.join(addrs)}")
    steps = dp.next_steps(handle.lab, handle.plan)
    if steps:
        out.print("\n[bold]try next[/bold]")
        out.print(steps, highlight=False)
    out.print(f"\nstatus: netlab status {handle.name}    tear down: netlab down {handle.name}", highlight=False)
