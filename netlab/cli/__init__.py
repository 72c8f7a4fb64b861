"""The ``netlab`` command: a thin click layer over :mod:`netlab.api`, one module per verb.

Errors never show a traceback: they print ``netlab: <what is wrong> — <what to do>`` on stderr
and exit non-zero. JSON goes to stdout, progress and logs to stderr.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from ..errors import NetlabError


class Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NetlabError as e:
            click.echo(f"netlab: {e}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("netlab: interrupted — whatever was being built has been rolled back", err=True)
            sys.exit(130)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="netlab-cni", prog_name="netlab")
def cli() -> None:
    """Build the real Linux datapaths of container networking in namespaces, and look inside."""


# One module per verb: every module in this package that defines ``command`` is a verb, so adding
# a verb never means editing this file.
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    _mod = importlib.import_module(f"{__name__}.{_info.name}")
    if isinstance(getattr(_mod, "command", None), click.Command):
        cli.add_command(_mod.command)


def main() -> None:
    cli(prog_name="netlab")
