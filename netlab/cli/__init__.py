"""The ``netlab`` command: a thin click layer over :mod:`netlab.api`, one module per verb.

Errors never show a traceback: they print ``netlab: <what is wrong> — <what to do>`` on stderr
and exit non-zero. JSON goes to stdout, progress and logs to stderr. An exception that is not a
:class:`~netlab.errors.NetlabError` is a netlab bug and says so in one line (exit 70;
``NETLAB_DEBUG=1`` shows its traceback); see :mod:`netlab.entry`, where the command starts.
"""

from __future__ import annotations

import errno
import importlib
import pkgutil
import sys

import click

from .. import entry
from ..errors import NetlabError

#: click's own exceptions carry usage errors, --help and exit codes: click reports them itself.
_CLICK = (click.ClickException, click.exceptions.Exit, click.exceptions.Abort)
#: what a Ctrl-C inside a command leaves: `up` and the others undo what they built on any exception
ROLLED_BACK = "whatever was being built has been rolled back"


class Group(click.Group):
    def main(self, *args, **kwargs):
        """click's main, without its own Ctrl-C handling: in standalone mode click turns a
        KeyboardInterrupt that lands outside a command (while it finishes up after one) into
        'Aborted!' and exit 1. Here every Ctrl-C ends as netlab's one line and exit 130."""
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Abort:
            entry.interrupted()
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        if isinstance(rv, int) and not isinstance(rv, bool):  # click.exceptions.Exit's code
            sys.exit(rv)
        return rv

    def make_context(self, *args, **kwargs) -> click.Context:
        """Ctrl-C while click parses the arguments: nothing has started yet (click would say
        'Aborted!' and exit 1)."""
        try:
            return super().make_context(*args, **kwargs)
        except KeyboardInterrupt:
            entry.interrupted()

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NetlabError as e:
            click.echo(f"netlab: {entry.one_line(str(e), 1000)}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            entry.interrupted(ROLLED_BACK)
        except _CLICK:
            raise
        except OSError as e:
            if e.errno == errno.EPIPE:  # stdout closed by `| head`: click quiets it
                raise
            entry.bug(e)
        except Exception as e:
            entry.bug(e, ROLLED_BACK)


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
    """The old console-script target (an install made before pyproject pointed at
    :func:`netlab.entry.main`, which also guards the imports above)."""
    entry.main()
