"""Kernel evidence for "why did the packet stop here": counters, route lookups, neighbours, settings.

This module *gathers*; :mod:`.reasons` turns what is gathered into ranked candidate causes.

Counters only mean something as a difference, and only the difference *the probe* made. A lab
is never quite idle: a VXLAN device without an FDB entry for IPv6 multicast counts
``tx_dropped`` for every MLD report or router solicitation the kernel sends after a link comes
up, with no traffic at all. So counters are read three times (:class:`Window`): before the
probe is sent, after the probe window, and once more after an *idle* window of the same length.
What moved during the probe window beyond what moved while idle is the probe's doing. The idle
window is taken after the probe (not before) so that a trace that succeeds pays nothing for it:
only a stopped probe needs evidence, and nothing the probe causes is still in flight once its
window has closed (the probe is one packet; the kernel neither retransmits nor queues it longer
than the window).

What is read, in every namespace of the path (never the root namespace):

- ``/proc/net/snmp`` (``Ip.InAddrErrors``, ``Ip.OutNoRoutes``, ``Ip.FragFails``,
  ``Udp.NoPorts`` …) and ``/proc/net/netstat`` (``IpExt.InNoRoutes``, and
  ``TcpExt.IPReversePathFilter``: rp_filter drops are counted there and nowhere else), and
  ``/proc/net/dev`` (per-device ``rx/tx dropped`` and ``errors``). These files show the
  namespace of the *reading thread*, so they are read inside :func:`netlab.kernel.netns.entered`
  through ``/proc/thread-self/net``;
- ``iptables-save -c`` in every namespace, planned rules or not: an inserted ``-j DROP`` or a
  changed chain policy is exactly the kind of fault the plan does not describe.

Then the kernel's own routing answer (``ip -j route get``) and that route's neighbour entry, the
sysctls that decide forwarding and reverse-path filtering, and the plan-versus-kernel diff
(:func:`netlab.kernel.verify.verify`).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from ..kernel import netns, procs

SNMP_KEYS = {
    "Ip": ("InHdrErrors", "InAddrErrors", "InUnknownProtos", "InDiscards", "OutDiscards", "OutNoRoutes",
           "FragFails", "ForwDatagrams", "InDelivers"),
    "Icmp": ("InDestUnreachs", "OutDestUnreachs", "InEchos", "OutEchoReps", "OutTimeExcds", "InErrors", "OutErrors"),
    "Udp": ("NoPorts", "InErrors", "RcvbufErrors"),
    "Tcp": ("InErrs", "OutRsts", "AttemptFails"),
    # /proc/net/netstat: the extended MIBs
    "IpExt": ("InNoRoutes", "InTruncatedPkts", "InCsumErrors"),
    "TcpExt": ("IPReversePathFilter", "ListenDrops", "ListenOverflows", "TCPBacklogDrop"),
}
DEV_FIELDS = ("rx_bytes", "rx_packets", "rx_errs", "rx_drop", "rx_fifo", "rx_frame", "rx_compressed", "rx_multicast",
              "tx_bytes", "tx_packets", "tx_errs", "tx_drop", "tx_fifo", "tx_colls", "tx_carrier", "tx_compressed")
QUIET = {"ForwDatagrams", "InDelivers", "rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_multicast",
         "InEchos", "OutEchoReps"}
#: The longest idle window measured after a probe window (a long --timeout need not be doubled).
IDLE_MAX = 1.0


@dataclass
class Counters:
    snmp: dict[str, int] = field(default_factory=dict)  # snmp and netstat, "Proto.Name"
    dev: dict[str, dict[str, int]] = field(default_factory=dict)
    iptables: dict[str, int] | None = None  # rule text -> packets


def _read_snmp(text: str) -> dict[str, int]:
    """``/proc/net/snmp`` or ``/proc/net/netstat``: pairs of lines, names then values."""
    out: dict[str, int] = {}
    lines = text.splitlines()
    for head, vals in zip(lines[::2], lines[1::2], strict=False):
        proto, names = head.split(":", 1)
        _, values = vals.split(":", 1)
        for k, v in zip(names.split(), values.split(), strict=False):
            if k in SNMP_KEYS.get(proto, ()):
                try:
                    out[f"{proto}.{k}"] = int(v)
                except ValueError:
                    pass
    return out


def _read_dev(text: str) -> dict[str, dict[str, int]]:
    out = {}
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        vals = rest.split()
        if len(vals) >= 16:
            out[name.strip()] = dict(zip(DEV_FIELDS, map(int, vals[:16]), strict=False))
    return out


def _iptables_counters(text: str) -> dict[str, int]:
    """``iptables-save -c`` -> {"filter FORWARD policy DROP": n, "filter -A FORWARD … -j DROP": n}."""
    out: dict[str, int] = {}
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            m = re.match(r":(\S+) (\S+) \[(\d+):(\d+)\]", line)
            if m and m.group(2) != "-":
                out[f"{table} {m.group(1)} policy {m.group(2)}"] = int(m.group(3))
        elif line.startswith("["):
            m = re.match(r"\[(\d+):(\d+)\] (.*)", line)
            if m:
                out[f"{table} {m.group(3)}"] = int(m.group(1))
    return out


def _read_proc(ns: str) -> tuple[str, str, str]:
    with netns.entered(ns):
        with open("/proc/thread-self/net/snmp") as f:
            snmp = f.read()
        try:
            with open("/proc/thread-self/net/netstat") as f:
                netstat = f.read()
        except OSError:
            netstat = ""
        with open("/proc/thread-self/net/dev") as f:
            dev = f.read()
    return snmp, netstat, dev


class Pending:
    """A counter snapshot being taken: ``iptables-save`` runs in the background (in every
    namespace: an inserted rule may sit anywhere) while the caller opens its sockets;
    :meth:`result` waits for it."""

    def __init__(self, namespaces: list[str]) -> None:
        # nsenter rather than a preexec_fn: without one, subprocess can vfork, which from a large
        # Python process is several times cheaper than fork.
        self.running = {ns: subprocess.Popen(["nsenter", f"--net={netns.path(ns)}", "iptables-save", "-c"],
                                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                        for ns in namespaces}
        self.namespaces = namespaces
        self.at = time.monotonic()

    def result(self) -> dict[str, Counters]:
        out: dict[str, Counters] = {}
        for ns in self.namespaces:
            snmp, netstat, dev = _read_proc(ns)
            out[ns] = Counters({**_read_snmp(snmp), **_read_snmp(netstat)}, _read_dev(dev))
        for ns, p in self.running.items():
            text, _ = p.communicate(timeout=10)
            out[ns].iptables = _iptables_counters(text)
        return out


def snapshot(namespaces: list[str]) -> dict[str, Counters]:
    """Counters in each namespace, all ``iptables-save`` runs started at once."""
    return Pending(namespaces).result()


@dataclass
class Moved:
    """One counter the probe moved: ``delta`` in the probe window, ``idle`` in the idle window."""

    kind: str  # snmp, dev, iptables
    name: str  # "Ip.OutNoRoutes", "tx_drop", or the iptables rule text
    delta: int
    idle: int = 0
    dev: str | None = None

    @property
    def net(self) -> int:
        return self.delta - max(self.idle, 0)

    def line(self) -> str:
        idle = f" (idle window +{self.idle})" if self.idle else ""
        if self.kind == "iptables":
            return f"iptables {self.name}: +{self.net} packets{idle}"
        if self.kind == "dev":
            return f"{self.dev} {self.name} +{self.net}{idle}"
        return f"{self.name} +{self.net}{idle}"


def _diff(before: Counters, after: Counters) -> dict[tuple[str, str, str | None], int]:
    """Every counter that moved from ``before`` to ``after`` that can mean a drop or an error
    (traffic counters such as forwarded datagrams say nothing about a stop)."""
    out: dict[tuple[str, str, str | None], int] = {}
    for k, v in after.snmp.items():
        d = v - before.snmp.get(k, 0)
        if d and k.split(".", 1)[1] not in QUIET:
            out[("snmp", k, None)] = d
    for dev, vals in after.dev.items():
        for k, v in vals.items():
            d = v - before.dev.get(dev, {}).get(k, 0)
            if d and k not in QUIET:
                out[("dev", k, dev)] = d
    for rule, v in (after.iptables or {}).items():
        d = v - (before.iptables or {}).get(rule, 0)
        if d and re.search(r"(-j (DROP|REJECT))|policy DROP", rule):
            out[("iptables", rule, None)] = d
    return out


def moved(before: Counters, after: Counters, idle: tuple[Counters, Counters] | None = None) -> list[Moved]:
    """The counters the probe moved: those that rose more in the probe window than in the idle
    window of the same length (``idle``: its two snapshots)."""
    quiet = _diff(*idle) if idle is not None else {}
    out = []
    for (kind, name, dev), d in _diff(before, after).items():
        m = Moved(kind, name, d, quiet.get((kind, name, dev), 0), dev)
        if m.net > 0:
            out.append(m)
    return out


def counter_deltas(before: Counters, after: Counters, idle: tuple[Counters, Counters] | None = None) -> list[str]:
    """Human lines for every counter the probe moved."""
    return [m.line() for m in moved(before, after, idle)]


@dataclass
class Window:
    """The three counter snapshots of a trace: before the probe, after its window, and after an
    idle window as long as the probe's (capped at :data:`IDLE_MAX`)."""

    before: dict[str, Counters]
    t0: float
    after: dict[str, Counters] = field(default_factory=dict)
    t1: float = 0.0
    idle: dict[str, Counters] = field(default_factory=dict)

    def close(self, namespaces: list[str]) -> None:
        self.after = snapshot(namespaces)
        self.t1 = time.monotonic()

    def settle(self, namespaces: list[str]) -> None:
        """Take the idle snapshot once an idle window as long as the probe's has passed (the
        caller does its other reading meanwhile, so the wait is mostly spent already)."""
        left = self.t1 + min(self.t1 - self.t0, IDLE_MAX) - time.monotonic()
        if left > 0:
            time.sleep(left)
        self.idle = snapshot(namespaces)

    def moved(self, ns: str) -> list[Moved]:
        if ns not in self.before or ns not in self.after:
            return []
        idle = (self.after[ns], self.idle[ns]) if ns in self.idle else None
        return moved(self.before[ns], self.after[ns], idle)


# ---- the kernel's answers ----------------------------------------------------------------------

def route_get(ns: str, dst: str, src: str | None = None, iif: str | None = None) -> str:
    """The kernel's route lookup in ``ns``, as ``ip route get`` prints it (or its error)."""
    argv = ["ip", "route", "get", dst]
    if iif and src:
        argv += ["from", src, "iif", iif]
    r = procs.run(ns, argv)
    if r.returncode != 0:
        # `iif` lookups also fail for sources the namespace would not accept (rp_filter, martians),
        # which is itself evidence; the plain lookup still says where the packet would go.
        # a blackhole or prohibit route makes `ip route get` fail with EINVAL; the table says which
        match = procs.run(ns, ["ip", "route", "show", "match", dst])
        matched = "; ".join(ln.strip() for ln in match.stdout.splitlines() if ln.strip()) or "no route"
        head = f"{' '.join(argv)}: {_one_line(r.stderr)}"
        if iif:
            plain = procs.run(ns, ["ip", "route", "get", dst])
            head += f"; ip route get {dst}: {_one_line(plain.stdout or plain.stderr)}"
        return f"{head}; ip route show match {dst}: {matched}"
    return f"{' '.join(argv)}: {_one_line(r.stdout or r.stderr)}"


@dataclass
class KernelRoute:
    """The route the kernel in one namespace chose for a destination (``ip -j route get``), or
    the reason it has none; ``matched`` is the most specific route of the table that covers the
    destination (``ip route show match``), which names a blackhole the lookup only fails on."""

    ns: str
    dst: str
    dev: str | None = None
    gateway: str | None = None
    type: str = "unicast"
    error: str | None = None
    matched: str = ""
    proto: str | None = None
    local: bool = False

    @property
    def usable(self) -> bool:
        return self.error is None and self.type in ("unicast", "local")

    @property
    def text(self) -> str:
        if self.error is not None:
            return f"no usable route to {self.dst} ({self.error}; the table has: {self.matched or 'no route'})"
        if self.local:
            return f"{self.dst} is local"
        return f"{self.dst}" + (f" via {self.gateway}" if self.gateway else "") + f" dev {self.dev}" + (
            f" (route '{self.matched}')" if self.matched else "")


def _matched(ns: str, dst: str) -> tuple[str, str | None]:
    """The most specific route covering ``dst`` in the main table: its text and protocol."""
    r = procs.run(ns, ["ip", "-j", "route", "show", "match", dst])
    try:
        rows = json.loads(r.stdout or "[]")
    except json.JSONDecodeError:
        return "", None
    if not rows:
        return "", None

    def plen(row: dict) -> int:
        d = row.get("dst", "default")
        return 0 if d == "default" else int(d.split("/")[1]) if "/" in d else 32

    best = max(rows, key=plen)
    words = [best.get("type", "")] if best.get("type") not in (None, "unicast") else []
    words.append(best.get("dst", "default"))
    words += [f"via {best['gateway']}"] if best.get("gateway") else []
    words += [f"dev {best['dev']}"] if best.get("dev") else []
    words += [f"proto {best['protocol']}"] if best.get("protocol") else []
    return " ".join(words), best.get("protocol")


def kernel_route(ns: str, dst: str) -> KernelRoute:
    """What the kernel in ``ns`` does with a packet to ``dst`` (the namespace's own lookup, the
    one a forwarded packet gets too unless policy routing says otherwise)."""
    r = procs.run(ns, ["ip", "-j", "route", "get", dst])
    matched, proto = _matched(ns, dst)
    try:
        rows = json.loads(r.stdout or "[]") if r.returncode == 0 else []
    except json.JSONDecodeError:
        rows = []
    if not rows:
        return KernelRoute(ns, dst, error=_one_line(r.stderr) or "no route", matched=matched, proto=proto,
                           type=matched.split()[0] if matched.split()[:1] in (["blackhole"], ["unreachable"],
                                                                              ["prohibit"]) else "unicast")
    row = rows[0]
    return KernelRoute(ns, dst, row.get("dev"), row.get("gateway"), row.get("type", "unicast"),
                       matched=matched, proto=proto, local=row.get("type") == "local" or row.get("dev") == "lo")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def link_mtu(ns: str, dev: str) -> int | None:
    r = procs.run(ns, ["ip", "-j", "link", "show", "dev", dev])
    try:
        return json.loads(r.stdout)[0]["mtu"]
    except (json.JSONDecodeError, IndexError, KeyError):
        return None


@dataclass
class NeighbourState:
    addr: str
    dev: str | None
    state: str | None  # None: no entry at all
    lladdr: str | None = None

    @property
    def unresolved(self) -> bool:
        """Nobody answered ARP (yet): INCOMPLETE while the kernel asks, FAILED once it gave up."""
        return self.state is not None and any(s in self.state for s in ("INCOMPLETE", "FAILED"))

    def line(self) -> str:
        if self.state is None:
            return (f"no neighbour entry for {self.addr}" + (f" on {self.dev}" if self.dev else "")
                    + " (the kernel must ARP for it)")
        return f"neighbour {self.addr} dev {self.dev} lladdr {self.lladdr or '-'} state {self.state}"


def neighbour_state(ns: str, addr: str, dev: str | None) -> NeighbourState:
    argv = ["ip", "-j", "neigh", "show", "to", addr] + (["dev", dev] if dev else [])
    r = procs.run(ns, argv)
    try:
        entries = json.loads(r.stdout or "[]")
    except json.JSONDecodeError:
        entries = []
    if not entries:
        return NeighbourState(addr, dev, None)
    e = entries[0]
    return NeighbourState(addr, e.get("dev", dev), ",".join(e.get("state", [])) or "NONE", e.get("lladdr"))


def neighbour(ns: str, addr: str, dev: str | None) -> str | None:
    return neighbour_state(ns, addr, dev).line()


def sysctl(ns: str, key: str) -> str | None:
    """One sysctl of namespace ``ns`` (``net/ipv4/conf/eth0/rp_filter``), read inside it."""
    with netns.entered(ns):
        try:
            with open(f"/proc/sys/{key}") as f:
                return f.read().strip()
        except OSError:
            return None


def rp_filter(ns: str, dev: str) -> tuple[int, str]:
    """The effective reverse-path filter mode of ``dev`` (the kernel uses the larger of
    ``conf/all`` and ``conf/<dev>``) and the two values, for the evidence line."""
    a = sysctl(ns, "net/ipv4/conf/all/rp_filter") or "0"
    d = sysctl(ns, f"net/ipv4/conf/{dev}/rp_filter") or "0"
    return max(int(a), int(d)), f"conf.all.rp_filter={a}, conf.{dev}.rp_filter={d}"


def listeners(ns: str, proto: str, port: int) -> list[tuple[str, int]]:
    """(process name, pid) of what listens on ``proto`` ``port`` in ``ns`` (``ss -lnp``): a
    docker-proxy there answers for a published port whose DNAT did not happen."""
    r = procs.run(ns, ["ss", "-H", "-lnp", "-t" if proto == "tcp" else "-u", f"sport = :{port}"])
    return sorted({(n, int(p)) for n, p in re.findall(r'\("([^"]+)",pid=(\d+)', r.stdout)})


def in_net(addr: str, cidr: str) -> bool:
    try:
        return IPv4Address(addr) in IPv4Network(cidr, strict=False)
    except ValueError:
        return False
