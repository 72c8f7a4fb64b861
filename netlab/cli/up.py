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
    addrs = lambda ns: " ".join(a.cidr for a in handle.plan.of(Addr) if a.ns == ns and a.dev.startswith("eth"))
    spaces = handle.plan.namespaces
    show_pods = len(spaces) <= 40
    for n in spaces:
        if n.role in ("switch", "pod"):
            continue
        out.print(f"  {n.host:<14} {n.name:<28} {addrs(n.name)}", highlight=False)
        pods = [p for p in spaces if p.role == "pod" and p.node == n.host]
        if show_pods:
            for p in pods:
                out.print(f"    {p.host:<12} {p.name:<28} {addrs(p.name)}", highlight=False)
        elif pods:
            out.print(f"    ({len(pods)} pods: netlab status {handle.name} lists them)", highlight=False)
    steps = dp.next_steps(handle.lab, handle.plan)
    if steps:
        out.print("\n[bold]try next[/bold]")
        out.print(steps, highlight=False)
    out.print(f"\nstatus: netlab status {handle.name}    tear down: netlab down {handle.name}", highlight=False)
