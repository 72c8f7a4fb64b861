"""``netlab capture <lab> <host>:<iface> …``: live decode, or pcap/pcapng (see :mod:`netlab.trace.capture`).

``-w -`` streams the capture to standard output for ``| wireshark -k -i -`` or ``| tshark -r -``;
standard output then carries the pcap bytes and nothing else, so every message (and, with
``--decode``, every decoded line) goes to standard error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .. import api
from ..errors import NetlabError
from ..kernel.probe import require_root
from ..model import shown_path
from .common import complete_instance

STDOUT = "-"


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


def check_stdout(split: bool) -> None:
    """``-w -`` is for a pipe: one pcap stream cannot hold ``--split``'s several files, and pcap
    bytes on a terminal are only noise (and can leave it in a strange state)."""
    if split:
        raise NetlabError("capture -w - --split: one file per interface cannot go to standard output",
                          "give -w a file name, or drop --split (several interfaces on -w - are one pcapng)")
    if sys.stdout.isatty():
        raise NetlabError("capture -w -: standard output is a terminal",
                          "pipe it into a reader, e.g. | tshark -r -  or  | wireshark -k -i -")


def _silence_stdout() -> None:
    """The reader closed the pipe: point fd 1 at /dev/null so that the interpreter's final flush
    of what is still buffered does not fail with a second BrokenPipeError at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


@click.command("capture")
@click.argument("lab", shell_complete=complete_instance)
@click.argument("targets", nargs=-1)
@click.option("-w", "--write", "write", metavar="FILE",
              help="Write packets to FILE: pcap for one interface, pcapng (interfaces named host:iface) for several "
                   "or for *.pcapng; '-' streams them to standard output (for | wireshark -k -i -).")
@click.option("-c", "--count", type=click.IntRange(1), help="Stop after N packets.")
@click.option("--filter", "expr", default="", metavar="BPF", help="tcpdump filter expression, e.g. 'udp port 8472 or icmp'.")
@click.option("--decode", "decode_live", is_flag=True,
              help="Print decoded packets even while writing a file (to standard error with -w -).")
@click.option("--all-hops", is_flag=True, help="Every planned interface of every namespace of the lab.")
@click.option("--split", is_flag=True, help="With -w: one pcap per interface (<stem>.<host>.<iface>.pcap) instead of one pcapng.")
@click.option("--duration", type=click.FloatRange(0.01), help="Stop after this many seconds.")
def command(lab: str, targets: tuple[str, ...], write: str | None, count: int | None, expr: str, decode_live: bool,
            all_hops: bool, split: bool, duration: float | None) -> None:
    """Capture TARGETS (host:iface, or host for all its interfaces) of LAB until Ctrl-C, -c N or --duration.

    Bridges (switch:br0, node1:cni0) are promiscuous while the capture runs, so that forwarded
    frames are seen too; the kernel drops that when the capture ends.

    Examples: netlab capture vxlan node1:eth0 --filter 'udp port 8472';
    netlab capture flannel-udp node1:flannel0 -w tun.pcap;  netlab capture vxlan --all-hops -w all.pcapng -c 50;
    netlab capture vxlan switch:br0 -w - | tshark -r - -d udp.port==8472,vxlan
    """
    if split and not write:
        raise click.UsageError("--split needs -w FILE")
    to_stdout = write == STDOUT
    if to_stdout:
        check_stdout(split)
    elif write:
        check_destination(write)  # bad input first: it is refused the same for every user
    require_root()
    from ..trace import capture

    handle = api.attach(lab)
    tgts = capture.parse_targets(handle.plan, list(targets), all_hops)

    def ready(ifs, missing) -> None:
        names = ", ".join(i.where + (" (promiscuous)" if i.promisc else "") for i in ifs)
        if missing:
            click.echo(f"netlab: no such interface: {', '.join(missing)} (skipped)", err=True)
        dest = " -> standard output" if to_stdout else f" -> {write}" if write else ""
        click.echo(f"capturing on {names}{dest} (Ctrl-C to stop)", err=True)

    def out(text: str) -> None:
        click.echo(text, err=to_stdout)

    stats = capture.run(handle.plan, tgts, write=write, count=count, expr=expr, decode_live=decode_live, split=split,
                        duration=duration, out=out, ready=ready)
    if stats.stopped_by == "pipe":
        _silence_stdout()
    files = ", written to standard output" if to_stdout else f", written to {', '.join(stats.files)}" if stats.files else ""
    why = " (the reader closed the pipe)" if stats.stopped_by == "pipe" else ""
    click.echo(f"{stats.packets} packets{files}{why}", err=True)
    for hint in capture.decode_hints(handle.plan.encap, stats.files):
        click.echo(hint, err=True)
