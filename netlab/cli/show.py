"""``netlab show <lab>``: a lab file's fields and its datapath's options, with defaults, ranges and choices."""

from __future__ import annotations

import json
import textwrap

import click

from .. import datapaths, model
from ..labschema import lab_fields, option_fields
from .common import complete_lab


def _value(lab: model.Lab, name: str) -> object:
    head, _, tail = name.partition(".")
    v = getattr(lab, head)
    return getattr(v, tail) if tail else v


@click.command("show")
@click.argument("lab", shell_complete=complete_lab)
@click.option("--json", "as_json", is_flag=True, help="The same as JSON on stdout.")
def command(lab: str, as_json: bool) -> None:
    """Show LAB's fields (its values, the defaults and what is allowed) and its datapath's options."""
    m = model.load(lab)
    dp = datapaths.get(m.datapath)
    rows = [(f, _value(m, f.name)) for f in lab_fields(dp)]
    opts = [(f, getattr(m.options, f.name)) for f in option_fields(dp)]
    if as_json:
        def doc(f, v):
            return {"field": f.name, "value": str(v) if v is not None else None, "default": f.default,
                    "allowed": f.bounds or f.kind, "what": f.what}
        click.echo(json.dumps({"lab": m.name, "file": str(m.file), "datapath": dp.name,
                               "fields": [doc(f, v) for f, v in rows],
                               "options": [doc(f, v) for f, v in opts]}, indent=2))
        return
    click.echo(f"{m.name} ({model.shown_path(m.file)})")
    click.echo(textwrap.fill(m.description, 100, initial_indent="  ", subsequent_indent="  "))
    click.echo(f"\n{'field':16} {'value':22} {'default':18} allowed")
    for f, v in rows:
        click.echo(f"{f.name:16} {str(v)[:22]:22} {str(f.default)[:18]:18} {f.bounds or f.kind}"[:100])
    click.echo(f"\noptions of {dp.name} (options: {{key: value}} in the file, -o key=value on the command line)")
    if not opts:
        click.echo("  (none)")
    for f, v in opts:
        click.echo(f"  {f.name:14} {str(v):22} {str(f.default):18} {f.bounds or f.kind}"[:100])
