"""``netlab trace <lab> <src> <dst>``: one probe, every hop decoded (see :mod:`netlab.trace`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click

from .. import api
from ..kernel.probe import require_root
from .common import complete_host, complete_instance

# scapy takes half a second to import: only this verb pays for it, inside the command.
PROTOS = ("icmp", "tcp", "udp")


@click.command("trace")
@click.argument("lab", shell_complete=complete_instance)
@click.argument("src", shell_complete=complete_host)
@click.argument("dst", shell_complete=complete_host)
@click.option("--proto", type=click.Choice(PROTOS), default="icmp", show_default=True, help="Probe protocol.")
@click.option("--port", type=click.IntRange(1, 65535), help="Destination port (tcp, udp).")
@click.option("--size", type=click.IntRange(0, 65000), help="Payload bytes after the ICMP/UDP/TCP header (as ping -s; default 56, tcp 0).")
@click.option("--timeout", type=click.FloatRange(0.05, 30), default=1.0, show_default=True,
              help="Seconds to wait for the probe's answer.")
@click.option("--json", "as_json", is_flag=True, help="The hop list as JSON on stdout.")
@click.option("-v", "--verbose", is_flag=True, help="Every hop's full header stack, the changes in full, the offload note.")
@click.option("--svg", "svg_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw the trace as an SVG picture: a column per hop, the headers as boxes.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write an HTML page: the picture and the hops as a table.")
def command(lab: str, src: str, dst: str, proto: str, port: int | None, size: int | None, timeout: float,
            as_json: bool, verbose: bool, svg_file: Path | None, html_file: Path | None) -> None:
    """Send one probe from SRC to DST (a pod, node or address) in LAB and show it at every hop:
    namespace, interface, direction, decoded headers, and what each hop changed. If it stops, say
    where, what the plan expected next, and what the kernel counted.

    Offloads are never changed: the probe is one packet no larger than the source MTU (DF set),
    so no hop shows a GSO super-frame for it (netlab capture marks the ones a TCP stream makes).

    The output fits the terminal (COLUMNS, 100 if unknown): a line per hop, the headers where
    they changed (coloured), "= as hop N" where they did not; -v prints every stack."""
    require_root()
    from ..exercises.run import refuse_if_blind
    from ..trace import engine, render

    refuse_if_blind(lab)

    handle = api.attach(lab)
    result = engine.run(handle.plan, src, dst, proto=proto, port=port, size=size, timeout=timeout,
                        state=handle.state)
    data = result.as_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        _echo(render.TraceView.from_dict(data), verbose)
    if svg_file is not None or html_file is not None:
        _pictures(render.TraceView.from_dict(data), svg_file, html_file)
    if not result.complete:
        raise SystemExit(1)


def _echo(view, verbose: bool) -> None:
    """Print the trace in the terminal's width, coloured when stdout is a terminal (rich decides,
    and honours NO_COLOR and FORCE_COLOR). Lines are already fitted: rich must not re-wrap them."""
    from rich.console import Console

    from ..trace import render

    width = shutil.get_terminal_size((render.DEFAULT_WIDTH, 24)).columns
    console = Console(width=max(width, render.MIN_WIDTH), highlight=False)
    for line in render.lines(view, width, verbose):
        console.print(line, no_wrap=True, overflow="ignore", crop=False)


def _pictures(view, svg_file: Path | None, html_file: Path | None) -> None:
    """Write the picture files; say where on stderr, so stdout stays the trace (or its JSON)."""
    from ..trace import svg

    for path, text in ((svg_file, svg.document), (html_file, svg.page)):
        if path is not None:
            path.write_text(text(view), encoding="utf-8")
            click.echo(f"wrote {path}", err=True)
