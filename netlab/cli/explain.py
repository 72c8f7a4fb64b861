"""``netlab explain <lab>``: the lab as the ip/bridge/sysctl/iptables script that builds it."""

from __future__ import annotations

import click

from .. import api, model
from ..explain import script
from .common import override_options


@click.command("explain")
@click.argument("lab")
@override_options
def command(lab: str, name: str | None, overrides: dict) -> None:
    """Print the shell script equivalent to 'netlab up LAB' (generated from the same plan)."""
    m = model.load(lab, name=name, overrides=overrides)
    click.echo(script(api.build_plan(m), title=f"{m.name}: {m.description}"), nl=False)
