"""``netlab shell <lab> <host>``: a shell in a node or pod, its prompt naming both (``netlab exec`` without a command)."""

from __future__ import annotations

import click

from .exec_ import run
from .common import complete_host, complete_instance


@click.command("shell")
@click.argument("lab", shell_complete=complete_instance)
@click.argument("host", shell_complete=complete_host)
def command(lab: str, host: str) -> None:
    """Open a shell in HOST of LAB, with the prompt [LAB HOST]#."""
    run(lab, host, ())
