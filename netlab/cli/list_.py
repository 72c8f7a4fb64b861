"""``netlab list``: the labs, one line each."""

from __future__ import annotations

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import model, state
from ..errors import NetlabError


@click.command("list")
def command() -> None:
    """List the labs, one line each (and which are up)."""
    up: dict[str, list[str]] = {}
    for s in state.all_labs():
        up.setdefault(s.labfile, []).append(s.lab)
    table = Table(box=None, show_header=True, header_style="bold")
    table.add_column("lab")
    table.add_column("datapath")
    table.add_column("up as")
    table.add_column("what it shows")
    for path in model.available():
        try:
            lab = model.load(str(path))
            table.add_row(path.stem, lab.datapath, " ".join(up.get(str(path), [])), escape(lab.description))
        except NetlabError as e:
            table.add_row(path.stem, "?", "", f"[red]invalid: {escape(str(e))}[/red]")
    out = Console()
    out.print(table)
    for name in state.stateless_dirs():
        out.print(f"[yellow]{name}[/yellow]: a state directory with no state in it (left by a crash) — "
                  f"'netlab down {name}' removes it", highlight=False)
