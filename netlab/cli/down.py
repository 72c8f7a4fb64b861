"""``netlab down <lab>`` / ``netlab down --all``."""

from __future__ import annotations

import click

from .. import api, state
from ..errors import NetlabError
from ..kernel.probe import require_root


@click.command("down")
@click.argument("labs", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every lab with a state file, orphans of a crash included.")
def command(labs: tuple[str, ...], all_: bool) -> None:
    """Tear down LABS: exactly what their state files say they created."""
    if not labs and not all_:
        raise NetlabError("no lab named", "say which: netlab down <lab>, or netlab down --all")
    require_root()
    names = [s.lab for s in state.all_labs()] if all_ else list(labs)
    if all_ and not names:
        click.echo("no labs are up", err=True)
    for name in names:
        report = api.down(name)
        extra = f", {len(report.daemons)} daemons" if report.daemons else ""
        skipped = f"; left alone (not provably this lab's): {', '.join(report.skipped)}" if report.skipped else ""
        click.echo(f"{name}: removed {len(report.namespaces)} namespaces{extra}{skipped}")
