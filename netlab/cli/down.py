"""``netlab down <lab>`` / ``netlab down --all``."""

from __future__ import annotations

import json
import sys

import click

from .. import api, state
from ..errors import NetlabError
from ..kernel.probe import require_root
from .common import complete_instance


@click.command("down")
@click.argument("labs", nargs=-1, shell_complete=complete_instance)
@click.option("--all", "all_", is_flag=True, help="Every lab with a state file, orphans of a crash included.")
@click.option("--yes", "-y", is_flag=True, help="With --all: do not ask (asked only when stdin is a terminal).")
@click.option("--json", "as_json", is_flag=True, help="What was removed, per lab, as JSON on stdout.")
def command(labs: tuple[str, ...], all_: bool, yes: bool, as_json: bool) -> None:
    """Tear down LABS: exactly what their state files say they created.

    Every lab is tried even if one fails; each failure is one line naming what is left and how to
    remove it, and the exit code is then non-zero."""
    if not labs and not all_:
        raise NetlabError("no lab named", "say which: netlab down <lab>, or netlab down --all")
    require_root()
    names = sorted({s.lab for s in state.all_labs()} | set(state.stateless_dirs())) if all_ else list(labs)
    if all_ and not names:
        click.echo("no labs are up", err=True)
    if all_ and names and not yes and sys.stdin.isatty():
        # every lab on this host, other users' included: say which, and ask, as rm -i would
        click.echo(f"netlab down --all removes {len(names)} labs: {', '.join(names)}", err=True)
        if not click.confirm("remove them all?", default=False, err=True):
            click.echo("nothing was removed", err=True)
            raise SystemExit(1)
    failed = 0
    results: list[dict] = []
    for name in names:
        try:
            report = api.down(name)
        except NetlabError as e:
            click.echo(f"netlab: {e}", err=True)
            results.append({"lab": name, "ok": False, "error": str(e)})
            failed += 1
            continue
        except OSError as e:
            click.echo(f"netlab: {name}: teardown stopped: {e.strerror or e} — run 'netlab down {name}' again, "
                       "or remove what is left by hand", err=True)
            failed += 1
            continue
        results.append({"lab": name, "ok": not report.failed, "namespaces": report.namespaces, "daemons": report.daemons,
                        "skipped": report.skipped, "failed": report.failed})
        extra = f", {len(report.daemons)} daemons" if report.daemons else ""
        skipped = f"; left alone (not provably this lab's): {', '.join(report.skipped)}" if report.skipped else ""
        if not as_json:
            click.echo(f"{name}: removed {len(report.namespaces)} namespaces{extra}{skipped}")
        if report.failed:
            failed += 1
            click.echo(f"netlab: {name}: could not remove {', '.join(report.failed)} — "
                       f"unmount it by hand (umount -l /run/netns; then umount -l and rm the file), then "
                       f"'netlab down {name}' removes the rest", err=True)
    if as_json:
        click.echo(json.dumps(results, indent=2))
    if failed:
        raise SystemExit(1)
