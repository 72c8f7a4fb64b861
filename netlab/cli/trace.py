"""``netlab trace <lab> <src> <dst>``: one probe, every hop decoded (see :mod:`netlab.trace`)."""

from __future__ import annotations

import json

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
def command(lab: str, src: str, dst: str, proto: str, port: int | None, size: int | None, timeout: float,
            as_json: bool) -> None:
    """Send one probe from SRC to DST (a pod, node or address) in LAB and show it at every hop:
    namespace, interface, direction, decoded headers, and what each hop changed. If it stops, say
    where, what the plan expected next, and what the kernel counted.

    Offloads are never changed: the probe is one packet no larger than the source MTU (DF set),
    so no hop shows a GSO super-frame for it (netlab capture marks the ones a TCP stream makes)."""
    require_root()
    from ..exercises.run import refuse_if_blind
    from ..trace import engine, render

    refuse_if_blind(lab)

    handle = api.attach(lab)
    result = engine.run(handle.plan, src, dst, proto=proto, port=port, size=size, timeout=timeout,
                        state=handle.state)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        click.echo(render.text(result))
    if not result.complete:
        raise SystemExit(1)
