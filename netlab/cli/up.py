"""``netlab up <lab>``: build a lab, then say what is where and what to try."""

from __future__ import annotations

import json
import shutil
import textwrap
import time

import click
from rich.console import Console
from rich.markup import escape

from .. import api, bgp
from ..datapaths.hints import Hint, Steps
from ..plan import Addr
from .common import complete_lab, override_options


@click.command("up")
@click.argument("lab", shell_complete=complete_lab)
@override_options
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@click.option("--wait-timeout", type=click.FloatRange(min=0, min_open=True), default=bgp.DEFAULT_WAIT,
              show_default=True, metavar="SECONDS",
              help="How long to wait for the lab to become usable (BGP labs: every node routes every remote block); "
                   "past it the lab is rolled back.")
@click.option("--no-wait", is_flag=True, help="Return as soon as everything is built, even if BGP is still converging.")
@click.option("--keep-on-error", is_flag=True,
              help="If the kernel refuses part of the lab, keep what was built to look at (host-gw across racks); "
                   "'netlab down' removes it.")
@click.option("--json", "as_json", is_flag=True, help="What was built, as JSON on stdout.")
def command(lab: str, name: str | None, overrides: dict, quiet: bool, wait_timeout: float, no_wait: bool,
            keep_on_error: bool, as_json: bool) -> None:
    """Build LAB (a name from 'netlab list' or a path to a lab file).

    A BGP lab is up once it is usable: netlab waits, with a progress line, until every node has a
    route to every other node's block, so the ping it suggests works at once."""
    err = Console(stderr=True)
    t0 = time.monotonic()
    progress = None if quiet else (lambda msg: err.print(f"[dim]  {msg}[/dim]", highlight=False))
    handle = api.up(lab, name=name, progress=progress, wait=None if no_wait else wait_timeout,
                    keep_on_error=keep_on_error, **overrides)
    elapsed = time.monotonic() - t0
    by_ns: dict[str, list[str]] = {}
    for a in handle.plan.of(Addr):  # one pass: a 150-node lab has 900 addresses in 450 namespaces
        if a.dev.startswith("eth"):
            by_ns.setdefault(a.ns, []).append(a.cidr)
    if as_json:
        click.echo(json.dumps({"lab": handle.name, "datapath": handle.datapath.name, "seconds": round(elapsed, 3),
                               "hosts": [{"host": n.host, "ns": n.name, "role": n.role, "node": n.node,
                                          "addresses": by_ns.get(n.name, [])} for n in handle.plan.namespaces]},
                              indent=2))
        return
    if quiet:
        return
    out = Console()
    dp = handle.datapath
    out.print(f"[bold green]lab {handle.name} is up[/bold green] ({dp.name}, {elapsed:.2f}s): {escape(handle.lab.description)}")

    def addrs(ns: str) -> str:
        return " ".join(by_ns.get(ns, []))

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
        for line in fit_steps(steps, shutil.get_terminal_size((100, 24)).columns):
            out.print(line, highlight=False, markup=False, soft_wrap=True)
    out.print(f"\nstatus: netlab status {handle.name}    tear down: netlab down {handle.name}", highlight=False)


def fit_steps(steps: Steps, width: int) -> list[str]:
    """The next steps within ``width`` columns, each command whole on one line so it copies as
    is: a remark that does not fit moves under its command, a label that does not fit goes on
    the line before it, and prose wraps between words (keeping its indent)."""
    out: list[str] = []
    for item in getattr(steps, "items", ()) or [steps]:
        if not isinstance(item, Hint):
            indent = len(item) - len(item.lstrip())
            out += textwrap.wrap(item, width, subsequent_indent=" " * (indent + 2)) or [""]
            continue
        line = item.render()
        if len(line) <= width:
            out.append(line)
            continue
        head = item.label + item.command
        pad = " " * min(len(item.label), 8)
        if len(head) <= width:
            out.append(head)
        else:
            out += [item.label.rstrip(), pad + item.command]
        if item.remark:
            out += textwrap.wrap(item.remark, width, initial_indent=pad + " ", subsequent_indent=pad + "  ")
    return out
