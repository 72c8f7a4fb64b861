"""``netlab capture``: chosen interfaces of a lab, decoded live or written to pcap/pcapng.

Targets are ``host:iface`` (``node1:eth0``, ``node1-pod1:eth0``, ``switch:br0``), ``host`` (all
of that namespace's interfaces) or, with ``--all-hops``, every interface of every namespace of the
lab. The user's filter is a tcpdump expression; it is compiled for Ethernet and for raw IP and
the kernel picks per device (:mod:`.bpf`), so ``udp port 8285`` works on eth0 and ``icmp`` on
flannel0 in the same capture.

Output:

- no ``-w``: one decoded line per packet (time, host:iface, tx/rx, layer stack);
- ``-w file.pcap`` with one interface: classic pcap with that device's link type (raw IP for a
  TUN device);
- ``-w file.pcapng``, or several interfaces: one pcapng, interfaces named ``host:iface``;
- ``--split``: one classic pcap per interface, named ``<file stem>.<host>.<iface>.pcap``;
- ``-w -``: the same pcap (one interface) or pcapng (several) on standard output, flushed per
  packet, for ``| wireshark -k -i -`` or ``| tshark -r -``; nothing else goes to standard output.
  When the reader goes away the capture ends as if stopped (``stopped_by == "pipe"``).

Bridges being captured are made promiscuous for as long as the capture's sockets are open, or
their taps would miss the frames they forward (:mod:`.sniff` says why bridges only).

Wireshark decodes VXLAN on its IANA port 4789 only and has no port for flannel's bare IP in UDP,
so after a file is written :func:`decode_hints` gives the ``-d`` option for the plan's port
(``udp.port==8472,vxlan``; ``udp.port==8285,ip``).

Stops after ``-c N`` packets, after ``--duration`` seconds, or on Ctrl-C; every file is flushed per
packet and closed, sockets are closed, nothing else is written or changed. Frames longer than
their device's MTU are GSO super-frames (veth and bridges pass 64 KB TCP segments unsplit; they
are segmented later, if ever): live output marks them and pcapng carries a packet comment.
Offload settings are not touched.
"""

from __future__ import annotations

import shlex
import signal
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Callable

from ..encap import ETHERNET, Encap
from ..errors import NetlabError
from ..plan import Plan
from . import bpf
from .decode import decode
from .path import interfaces as plan_interfaces
from .pcap import PcapngWriter, PcapWriter, linktype
from .sniff import Frame, Interface, Sniffer, kernel_order


@dataclass
class Target:
    ns: str
    host: str
    ifaces: list[str] | None  # None: every interface of the namespace


def parse_targets(plan: Plan, specs: list[str], all_hops: bool) -> list[Target]:
    """``host:iface`` / ``host`` / ``--all-hops`` -> namespaces and interface names."""
    by_ns: dict[str, Target] = {}
    if all_hops:
        planned = plan_interfaces(plan)
        for n in plan.namespaces:
            names = sorted({name for (ns, name) in planned if ns == n.name})
            if names:
                by_ns[n.name] = Target(n.name, n.host, names)
    for spec in specs:
        host, _, iface = spec.partition(":")
        try:
            n = plan.host(host)
        except KeyError:
            hosts = ", ".join(x.host for x in plan.namespaces)
            raise NetlabError(f"lab '{plan.lab}' has no host '{host}' (in '{spec}')",
                              f"write <host>:<iface> with a host from: {hosts}") from None
        t = by_ns.setdefault(n.name, Target(n.name, n.host, []))
        if not iface:
            t.ifaces = None
        elif t.ifaces is not None and iface not in t.ifaces:
            t.ifaces.append(iface)
    if not by_ns:
        raise NetlabError("nothing to capture", "name interfaces as <host>:<iface> (e.g. node1:eth0), or use --all-hops")
    return list(by_ns.values())


STDOUT = "-"  # -w -: write to standard output


@dataclass
class CaptureStats:
    packets: int = 0
    files: list[str] = field(default_factory=list)  # files written (not standard output)
    interfaces: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    stopped_by: str = ""


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _gso_note(f: Frame) -> str | None:
    if f.mtu and f.wirelen > f.mtu + (14 if f.ethernet else 0):
        return f"GSO super-frame: {f.wirelen} bytes on a {f.mtu}-byte MTU device, segmented later"
    return None


def line(f: Frame, encap: Encap | None) -> str:
    t = datetime.fromtimestamp(f.ts_ns // 1_000_000_000).strftime("%H:%M:%S") + f".{f.ts_ns % 1_000_000_000 // 1000:06d}"
    d = decode(f.data, f.ethernet, encap)
    gso = _gso_note(f)
    return (f"{t} {f.where} {'tx' if f.direction == 'out' else 'rx'} {f.wirelen} B  {d.text}"
            + (f"  [+{d.payload} B]" if d.payload else "") + (f"  !{gso}" if gso else ""))


def decode_as(encap: Encap | None) -> str | None:
    """The tshark/Wireshark ``-d`` value that makes the lab's UDP encapsulation decode: a UDP
    encapsulation that carries Ethernet is VXLAN (flannel's 8472 is not Wireshark's 4789), one
    that carries IP is flannel's UDP backend, whose payload is the bare inner IP packet. IPIP is IP
    protocol 4 and no encapsulation needs nothing."""
    if encap is None or encap.udp_port is None:
        return None
    return f"udp.port=={encap.udp_port},{'vxlan' if encap.carries == ETHERNET else 'ip'}"


def decode_hints(encap: Encap | None, files: list[str]) -> list[str]:
    """What to tell the user after writing ``files``: how to read the first with tshark so that
    the encapsulated packets are decoded, and that Wireshark takes the same option."""
    d = decode_as(encap) if files else None
    if encap is None or d is None:
        return []
    what = "VXLAN" if encap.carries == ETHERNET else "the bare IP packets"
    others = f" (and the {len(files) - 1} other files)" if len(files) > 1 else ""
    return [f"to decode {what} in UDP {encap.udp_port}: tshark -r {shlex.quote(files[0])} -d {d}{others}; "
            f"Wireshark takes the same -d, or Analyze > Decode As"]


def _open_writers(stack: ExitStack, ifs: list[Interface], write: str, split: bool, stats: CaptureStats,
                  sink: BinaryIO | None = None) -> tuple[dict[tuple[str, int], PcapWriter], PcapngWriter | None]:
    """The files the frames go to, opened on ``stack``: with ``split`` one classic pcap per
    interface (each keeps its own link type); one classic pcap when a single interface is captured
    and pcapng was not asked for; else one pcapng, whose interface blocks let Ethernet and raw-IP
    (TUN) links and every namespace share the file. ``-w -`` writes the same to ``sink`` (standard
    output), which is not closed here. Returns (classic pcaps by key, the pcapng)."""
    classic: dict[tuple[str, int], PcapWriter] = {}
    if write == STDOUT:
        out = sink if sink is not None else sys.stdout.buffer
        if len(ifs) == 1:
            classic[(ifs[0].ns, ifs[0].ifindex)] = PcapWriter(out, linktype(ifs[0].hatype))
            return classic, None
        return classic, _pcapng(out, ifs)
    path = Path(write)
    if split:
        for i in ifs:
            p = path.with_name(f"{path.stem}.{i.host}.{i.name}.pcap")
            classic[(i.ns, i.ifindex)] = PcapWriter(stack.enter_context(open(p, "wb")), linktype(i.hatype))
            stats.files.append(str(p))
        return classic, None
    if len(ifs) == 1 and path.suffix != ".pcapng":
        i = ifs[0]
        classic[(i.ns, i.ifindex)] = PcapWriter(stack.enter_context(open(path, "wb")), linktype(i.hatype))
        stats.files.append(str(path))
        return classic, None
    ng = _pcapng(stack.enter_context(open(path, "wb")), ifs)
    stats.files.append(str(path))
    return classic, ng


def _pcapng(f: BinaryIO, ifs: list[Interface]) -> PcapngWriter:
    ng = PcapngWriter(f)
    for i in ifs:
        ng.add_interface((i.ns, i.ifindex), i.where, linktype(i.hatype), f"netns {i.ns}")
    return ng


def _record(f: Frame, by_key: dict[tuple[str, int], Interface], classic: dict[tuple[str, int], PcapWriter],
            ng: PcapngWriter | None) -> None:
    """Write one sighting to its file: its interface's classic pcap, or the pcapng (where an
    interface that appeared after the start, such as lo of a whole-namespace capture, first gets
    its interface block)."""
    key = (f.ns, f.ifindex)
    if key not in by_key and ng is not None:
        ng.add_interface(key, f.where, linktype(f.hatype), f"netns {f.ns}")
    if key in classic:
        classic[key].write(f.ts_ns, f.data, f.wirelen)
    elif ng is not None:
        ng.write(key, f.ts_ns, f.data, f.wirelen, f.direction, _gso_note(f))


def _loop(sniffer: Sniffer, plan: Plan, stats: CaptureStats, write: bool, by_key: dict[tuple[str, int], Interface],
          writers: tuple[dict[tuple[str, int], PcapWriter], PcapngWriter | None], count: int | None,
          decode_live: bool, deadline: float | None, out: Callable[[str], None]) -> None:
    """Read, record and print until ``count`` packets or the ``deadline``; the caller handles
    Ctrl-C/SIGTERM and a closed pipe."""
    classic, ng = writers
    while count is None or stats.packets < count:
        wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
        if deadline is not None and wait <= 0:
            stats.stopped_by = "duration"
            return
        for f in kernel_order(sniffer.poll_once(wait)):  # one batch, in kernel order
            _record(f, by_key, classic, ng)
            if not write or decode_live:
                out(line(f, plan.encap))
            stats.packets += 1
            if count is not None and stats.packets >= count:
                break
    stats.stopped_by = "count"


def run(plan: Plan, targets: list[Target], write: str | None = None, count: int | None = None,
        expr: str = "", decode_live: bool = False, split: bool = False, duration: float | None = None,
        out: Callable[[str], None] = print, ready: Callable[[list[Interface], list[str]], None] | None = None,
        sink: BinaryIO | None = None, promisc: bool = True) -> CaptureStats:
    """Capture ``targets`` until ``count`` packets, ``duration`` seconds, Ctrl-C or SIGTERM.

    ``write`` is a file name or ``-`` (``sink``, standard output by default); decoded lines go to
    ``out``. With ``promisc`` (the default) captured bridges are promiscuous while the capture
    runs. A reader that closes the pipe ends the capture with ``stopped_by == "pipe"``.
    """
    if write == STDOUT and split:
        raise NetlabError("capture -w - --split: one file per interface cannot go to standard output",
                          "give -w a file name, or drop --split (several interfaces on -w - are one pcapng)")
    stats = CaptureStats()
    program = bpf.for_expr(expr)
    with ExitStack() as stack:
        sniffer = stack.enter_context(Sniffer({t.ns: (t.host, t.ifaces) for t in targets}, program=program,
                                              promisc=promisc))
        ifs = sniffer.interfaces()
        stats.missing = sniffer.missing
        if not ifs:
            raise NetlabError(f"none of the interfaces exist: {', '.join(sniffer.missing)}",
                              "check the names with: netlab exec <lab> <host> -- ip link")
        stats.interfaces = [i.where for i in ifs]
        by_key = {(i.ns, i.ifindex): i for i in ifs}
        deadline = None if duration is None else time.monotonic() + duration
        # SIGTERM ends a capture as cleanly as Ctrl-C does.
        old_term = signal.signal(signal.SIGTERM, _interrupt)
        try:
            writers = _open_writers(stack, ifs, write, split, stats, sink) if write else ({}, None)
            if ready is not None:
                ready(ifs, stats.missing)
            _loop(sniffer, plan, stats, bool(write), by_key, writers, count, decode_live, deadline, out)
        except KeyboardInterrupt:
            stats.stopped_by = "interrupt"
        except BrokenPipeError:
            if write != STDOUT:
                raise
            stats.stopped_by = "pipe"  # wireshark/tshark went away: nobody reads what we would write
        finally:
            signal.signal(signal.SIGTERM, old_term)
    return stats
