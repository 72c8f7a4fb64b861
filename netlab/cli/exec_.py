"""``netlab exec <lab> <node-or-pod> -- <cmd>``."""

from __future__ import annotations

import os

import click

from .. import api
from ..kernel.probe import require_root


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("lab")
@click.argument("host")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def command(lab: str, host: str, cmd: tuple[str, ...]) -> None:
    """Run CMD in HOST (node1, node1-pod1, switch, router) of LAB."""
    require_root()
    ns = api.attach(lab).ns(host)
    # `ip netns exec` also remounts /sys for the namespace, so every tool sees its own view.
    os.execvp("ip", ["ip", "netns", "exec", ns, *cmd])
