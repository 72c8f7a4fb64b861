"""``netlab shell <lab> <host>``: a shell in a node or pod, its prompt naming both (``netlab exec`` without a command)."""

from __future__ import annotations

import click

from .exec_ import run


@click.command("shell")
@click.argument("lab")
@click.argument("host")
def command(lab: str, host: str) -> None:
    """Open a shell in HOST of LAB, with the prompt [LAB HOST]#."""
    run(lab, host, ())
