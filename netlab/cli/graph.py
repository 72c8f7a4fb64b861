"""``netlab graph <instance|lab> [-o FILE] [--format svg|png|dot|mermaid]``: the topology, drawn."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import click

from .. import api, bgp, model, naming, state
from ..errors import NetlabError
from ..graph import dot, mermaid
from .common import complete_lab

FORMATS = ("svg", "png", "dot", "mermaid")


def _plan(lab: str) -> tuple[api.LabHandle | None, model.Lab, object]:
    """A running instance (its plan of what was built, and live BGP states) or a lab file."""
    if naming.LAB_NAME_RE.match(lab) and (state.state_root() / lab / "state.json").exists():
        h = api.attach(lab)
        return h, h.lab, h.plan
    m = model.load(lab)
    return None, m, api.build_plan(m)


def _bgp_states(h: api.LabHandle) -> dict[tuple[str, str], bool] | None:
    """Each planned session's state from birdc, when the lab runs BIRD and we may ask (root)."""
    if os.geteuid() != 0 or not bgp.expected(h.plan):
        return None
    out = {}
    for sp in bgp.collect(h):
        for s in sp.sessions:
            out[(sp.ns, s.name)] = s.established
    return out


@click.command("graph")
@click.argument("lab", shell_complete=complete_lab)
@click.option("-o", "--output", "output", metavar="FILE", help="Write to FILE (the format follows its suffix).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="svg, png (Graphviz), dot or mermaid.")
def command(lab: str, output: str | None, fmt: str | None) -> None:
    """Draw LAB (a lab file, or an instance that is up, with its BGP sessions' state): namespaces
    grouped by node, veths, bridges, VTEPs and tunnels with their addresses and MTUs."""
    fmt = fmt or (Path(output).suffix.lstrip(".") if output else "dot")
    if fmt not in FORMATS:
        raise NetlabError(f"graph: unknown format '{fmt}'", f"use --format {' | '.join(FORMATS)}, or -o FILE.svg")
    h, m, plan = _plan(lab)
    states = _bgp_states(h) if h is not None else None
    text = mermaid(plan) if fmt == "mermaid" else dot(plan, f"{m.name}: {m.description}", states)  # type: ignore[arg-type]
    if fmt in ("dot", "mermaid"):
        if output:
            Path(output).write_text(text)
        else:
            click.echo(text, nl=False)
        return
    if shutil.which("dot") is None:
        raise NetlabError("graph: Graphviz's dot is not installed", "run ./setup.sh (it installs graphviz), or use --format dot")
    target = output or f"{m.name}.{fmt}"
    r = subprocess.run(["dot", f"-T{fmt}", "-o", target], input=text, text=True, capture_output=True)
    if r.returncode:
        raise NetlabError(f"graph: dot failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}", "report this as a netlab bug")
    click.echo(f"wrote {target}", err=True)
