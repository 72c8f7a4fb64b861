"""``netlab explain <lab|instance>``: the lab as the ip/bridge/sysctl/iptables script that builds it."""

from __future__ import annotations

import click

from .. import api, model, naming, state
from ..exercises.run import refuse_if_blind
from ..explain import script
from .common import complete_lab, override_options


def _instance(lab: str, name: str | None, overrides: dict) -> api.LabHandle | None:
    """The running instance LAB names, if there is one and no flag asks for a new build: then the
    script is that of exactly what was built (the lab file's text and overrides recorded at up)."""
    if name is not None or any(v for v in overrides.values()) or not naming.LAB_NAME_RE.match(lab):
        return None
    if not (state.state_root() / lab / "state.json").exists():
        return None
    return api.attach(lab)


@click.command("explain")
@click.argument("lab", shell_complete=complete_lab)
@override_options
def command(lab: str, name: str | None, overrides: dict) -> None:
    """Print the shell script equivalent to 'netlab up LAB' (generated from the same plan).

    LAB is a lab file (a name from 'netlab list' or a path), or an instance that is up: then the
    script is that of exactly what that instance is."""
    h = _instance(lab, name, overrides)
    if h is not None:
        refuse_if_blind(h.name)
    m = h.lab if h else model.load(lab, name=name, overrides=overrides)
    plan = h.plan if h else api.build_plan(m)
    click.echo(script(plan, title=f"{m.name}: {m.description}"), nl=False)
