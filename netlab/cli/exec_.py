"""``netlab exec <lab> <node-or-pod> [-- <cmd>]``, and ``netlab shell <lab> <host>``."""

from __future__ import annotations

import os

import click

from .. import api
from ..kernel.probe import require_root
from .common import complete_host, complete_instance


def _shell_argv(lab: str, host: str) -> list[str]:
    """The user's shell, with a prompt that names the lab and the host (``[vxlan node1]#``), as
    containerlab's and mininet's do, so nobody types into the wrong namespace."""
    shell = os.environ.get("SHELL") or "/bin/bash"
    if os.path.basename(shell) in ("bash", "sh", "dash", "zsh"):
        os.environ["PS1"] = f"[{lab} {host}]# "
        os.environ["PROMPT"] = os.environ["PS1"]  # zsh
        if os.path.basename(shell) == "bash":
            return [shell, "--norc", "--noprofile", "-i"]  # an rc file would set its own PS1
    return [shell, "-i"]


def run(lab: str, host: str, cmd: tuple[str, ...]) -> None:
    require_root()
    ns = api.attach(lab).ns(host)
    argv = list(cmd) if cmd else _shell_argv(lab, host)
    # `ip netns exec` also remounts /sys for the namespace, so every tool sees its own view.
    os.execvp("ip", ["ip", "netns", "exec", ns, *argv])


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("lab", shell_complete=complete_instance)
@click.argument("host", shell_complete=complete_host)
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
def command(lab: str, host: str, cmd: tuple[str, ...]) -> None:
    """Run CMD in HOST (node1, node1-pod1, switch, router) of LAB; without CMD, a shell there."""
    run(lab, host, cmd)
