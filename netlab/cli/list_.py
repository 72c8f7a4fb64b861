"""``netlab list``: the labs, one line each."""

from __future__ import annotations

import json
import os

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import datapaths, model, state
from ..errors import NetlabError
from ..kernel import probe


def _kinds_here() -> set[str] | None:
    """The link kinds every lab may require that this kernel can create (probed as root, in a
    throwaway namespace), or None when not root: then nothing is marked."""
    if os.geteuid() != 0:
        return None
    wanted = {k for path in model.available() for k in _requires(path)}
    return {k for k in wanted if probe.link_kind(k) is None}


def _requires(path) -> tuple[str, ...]:
    try:
        return datapaths.get(model.load(str(path)).datapath).requires
    except NetlabError:
        return ()


def _rows(up: dict[str, list[str]], kinds: set[str] | None) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for path in model.available():
        try:
            lab = model.load(str(path))
        except NetlabError as e:
            rows.append({"lab": path.stem, "file": str(path), "error": str(e)})
            continue
        missing = [k for k in datapaths.get(lab.datapath).requires if kinds is not None and k not in kinds]
        rows.append({"lab": path.stem, "file": str(path), "datapath": lab.datapath, "description": lab.description,
                     "up_as": up.get(str(path), []), "runs_here": None if kinds is None else not missing,
                     "missing_kinds": missing})
    return rows


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="The labs as JSON on stdout.")
def command(as_json: bool) -> None:
    """List the labs, one line each (and which are up)."""
    up: dict[str, list[str]] = {}
    for s in state.all_labs():
        up.setdefault(s.labfile, []).append(s.lab)
    if as_json:
        click.echo(json.dumps({"labs": _rows(up, _kinds_here()), "stateless_dirs": state.stateless_dirs()}, indent=2))
        return
    table = Table(box=None, show_header=True, header_style="bold")
    table.add_column("lab")
    table.add_column("datapath")
    table.add_column("up as")
    table.add_column("what it shows")
    kinds = _kinds_here()
    for path in model.available():
        try:
            lab = model.load(str(path))
            missing = [k for k in datapaths.get(lab.datapath).requires if kinds is not None and k not in kinds]
            note = f" [yellow](not on this kernel: no {', '.join(missing)}; see netlab vm)[/yellow]" if missing else ""
            table.add_row(path.stem, lab.datapath, " ".join(up.get(str(path), [])), escape(lab.description) + note)
        except NetlabError as e:
            table.add_row(path.stem, "?", "", f"[red]invalid: {escape(str(e))}[/red]")
    out = Console()
    out.print(table)
    for name in state.stateless_dirs():
        out.print(f"[yellow]{name}[/yellow]: a state directory with no state in it (left by a crash) — "
                  f"'netlab down {name}' removes it", highlight=False)
