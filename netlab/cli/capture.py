"""``netlab capture <lab> <host>:<iface> …``: live decode, or pcap/pcapng (see :mod:`netlab.trace.capture`)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .. import api
from ..errors import NetlabError
from ..kernel.probe import require_root
from ..model import shown_path


def check_destination(write: str) -> None:
    """Refuse a -w FILE that cannot be written before attaching and opening packet sockets, so a
    typo in a directory costs one line, not a traceback after the capture has started."""
    p = Path(write)
    parent = p.parent
    if p.is_dir():
        raise NetlabError(f"capture -w {shown_path(write)}: is a directory", "give a file name, e.g. -w out.pcap")
    if not parent.is_dir():
        raise NetlabError(f"capture -w {shown_path(write)}: the directory {shown_path(parent)} does not exist",
                          "create it first (mkdir -p) or write the file somewhere else")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise NetlabError(f"capture -w {shown_path(write)}: cannot write into {shown_path(parent)}",
                          "choose a directory you may write to")


@click.command("capture")
@click.argument("lab")
@click.argument("targets", nargs=-1)
@click.option("-w", "--write", "write", metavar="FILE",
              help="Write packets to FILE: pcap for one interface, pcapng (interfaces named host:iface) for several or for *.pcapng.")
@click.option("-c", "--count", type=click.IntRange(1), help="Stop after N packets.")
@click.option("--filter", "expr", default="", metavar="BPF", help="tcpdump filter expression, e.g. 'udp port 8472 or icmp'.")
@click.option("--decode", "decode_live", is_flag=True, help="Print decoded packets even while writing a file.")
@click.option("--all-hops", is_flag=True, help="Every planned interface of every namespace of the lab.")
@click.option("--split", is_flag=True, help="With -w: one pcap per interface (<stem>.<host>.<iface>.pcap) instead of one pcapng.")
@click.option("--duration", type=click.FloatRange(0.01), help="Stop after this many seconds.")
def command(lab: str, targets: tuple[str, ...], write: str | None, count: int | None, expr: str, decode_live: bool,
            all_hops: bool, split: bool, duration: float | None) -> None:
    """Capture TARGETS (host:iface, or host for all its interfaces) of LAB until Ctrl-C, -c N or --duration.

    Examples: netlab capture vxlan node1:eth0 --filter 'udp port 8472';
    netlab capture flannel-udp node1:flannel0 -w tun.pcap;  netlab capture vxlan --all-hops -w all.pcapng -c 50
    """
    if split and not write:
        raise click.UsageError("--split needs -w FILE")
    if write:
        check_destination(write)  # bad input first: it is refused the same for every user
    require_root()
    from ..trace import capture

    handle = api.attach(lab)
    tgts = capture.parse_targets(handle.plan, list(targets), all_hops)

    def ready(ifs, missing) -> None:
        names = ", ".join(i.where for i in ifs)
        if missing:
            click.echo(f"netlab: no such interface: {', '.join(missing)} (skipped)", err=True)
        dest = f" -> {write}" if write else ""
        click.echo(f"capturing on {names}{dest} (Ctrl-C to stop)", err=True)

    stats = capture.run(handle.plan, tgts, write=write, count=count, expr=expr, decode_live=decode_live, split=split,
                        duration=duration, out=click.echo, ready=ready)
    files = f", written to {', '.join(stats.files)}" if stats.files else ""
    click.echo(f"{stats.packets} packets{files}", err=True)
