"""Limits the kernel shares between all namespaces, checked before ``up`` creates anything.

Network namespaces isolate devices, addresses, routes and rules, but a few tables and counters
are one per kernel (or per user, or per mount namespace), and a large lab can exhaust them for
the whole machine — its own namespaces, every other lab's, and the host's:

- **The IPv4 neighbour (ARP) table** is a single ``arp_tbl`` for every namespace. Its hard limit
  ``net.ipv4.neigh.default.gc_thresh3`` exists only in the root namespace (1024 by default). Once
  the entries subject to garbage collection reach it and forced GC frees nothing, every new
  entry fails: ``ping`` says ``No buffer space available`` (ENOBUFS), TCP connects hang, and
  ``/proc/net/stat/arp_cache``'s ``table_fulls`` counts the failures. An entry that is REACHABLE
  holds a timer reference, so forced GC cannot take it: a peer a namespace keeps talking to (a
  BGP session's keepalives every few seconds) occupies a slot for as long as the lab runs. A
  50-node BIRD full mesh keeps 50 x 49 = 2450 of them.
- **conntrack**: ``net.netfilter.nf_conntrack_max`` is set in the root namespace and caps the
  entries of each namespace (the count is per namespace, the limit is the root's; a child
  namespace sees it read-only).
- **user.max_net_namespaces**: how many network namespaces the user may hold at once.
- **open files**: ``apply`` keeps one netlink socket per namespace open while it builds, so this
  process needs about one file descriptor per namespace (its own RLIMIT_NOFILE, which netlab may
  raise up to the hard limit, since it is its own process's), and the daemons' sockets count
  against the host's ``fs.file-max``.
- **tasks**: every daemon is a process: ``kernel.pid_max`` and ``kernel.threads-max``.
- **mounts**: every namespace is a bind mount under /run/netns, counted against ``fs.mount-max``
  of this mount namespace.

Not checked, because nothing netlab runs can hit them: ``fs.inotify.max_user_instances`` (neither
BIRD nor netlab's own daemons use inotify), the IPv6 neighbour table (labs carry no IPv6 unicast;
the multicast entries IPv6 makes are NOARP, which forced GC always frees) and
``net.ipv4.route.max_size`` (ignored for IPv4 since the route cache went away in 3.6).

The estimate functions are pure (a plan in, numbers out) so they are unit-tested without root;
:func:`read_host` does the kernel reads, all of them read-only. netlab never writes a sysctl of
the root namespace: when a limit is too low, ``up`` refuses with the numbers and names the knob.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import socket
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Callable

from .. import bgp
from ..errors import NetlabError
from ..plan import Addr, Bridge, Daemon, Fdb, Neigh, Plan, Route, Veth
from . import netns
from .nl import NUD_PERMANENT

GC_THRESH = "net.ipv4.neigh.default.gc_thresh{}"
ARP_CACHE = "/proc/net/stat/arp_cache"
BASELINE = "host-limits.json"  # in the lab's state directory, written by settle() after apply
#: descriptors this process holds besides the per-namespace sockets: iptables-restore pipes
#: (6 in parallel, 2 each), pyroute2, logs, Python itself
FD_MARGIN = 64
#: First-ping neighbour entries ``up`` requires room for beyond what the lab holds by itself:
#: about 64 namespaces talking at once (a pod's gateway entry, the node's entry for the pod, and
#: the node-to-node pair). A lab smaller than that needs room for all of them.
WORKING_SET = 256
NTF_EXT_LEARNED = 0x10

Key = tuple[str, str, str]  # (namespace, device, IPv4 neighbour)
Iface = tuple[str, str]  # (namespace, device)


class HostLimitError(NetlabError):
    """A limit the kernel shares between all namespaces is too low for the lab: nothing was created."""

    exit_code = 5


class NotReady(NetlabError):
    """The lab was built but did not become usable in time (BGP did not converge); rolled back."""

    exit_code = 6


# -- the estimate (pure) ------------------------------------------------------------------------

@dataclass
class Wiring:
    """The plan's L2 segments: which interfaces hear each other's ARP.

    A veth pair is one wire; a bridge joins every wire plugged into it. The L3 endpoints of a
    segment are its interfaces that are not bridge ports (a port has no address and keeps no
    neighbour entries): node and pod ``eth0``\\s, a bridge itself (``cni0``, ``docker0``), the
    host end of a Calico veth (``cali…``, no address but the node's route to the pod).
    """

    segment: dict[Iface, int] = field(default_factory=dict)
    members: dict[int, list[Iface]] = field(default_factory=dict)
    addrs: dict[Iface, list[IPv4Interface]] = field(default_factory=dict)
    # indexes, so that a 1000-node lab's estimate stays linear: a namespace's addressed devices
    # (sorted by device), and who holds an address on a segment
    by_ns: dict[str, list[tuple[str, list[IPv4Interface]]]] = field(default_factory=dict)
    owner: dict[tuple[int, IPv4Address], Iface] = field(default_factory=dict)


def wiring(plan: Plan) -> Wiring:
    parent: dict[Iface, Iface] = {}

    def find(x: Iface) -> Iface:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: Iface, b: Iface) -> None:
        parent[find(a)] = find(b)

    ports: set[Iface] = set()
    for br in plan.of(Bridge):
        find((br.ns, br.name))
    for v in plan.of(Veth):
        a, b = (v.a.ns, v.a.name), (v.b.ns, v.b.name)
        union(a, b)
        for end, iface in ((v.a, a), (v.b, b)):
            if end.master:
                ports.add(iface)
                union(iface, (end.ns, end.master))
    w = Wiring()
    ids: dict[Iface, int] = {}
    for iface in sorted(parent):
        if iface in ports:
            continue
        seg = ids.setdefault(find(iface), len(ids))
        w.segment[iface] = seg
        w.members.setdefault(seg, []).append(iface)
    for a in plan.of(Addr):
        w.addrs.setdefault((a.ns, a.dev), []).append(a.interface)
    for (ns, dev), nets in sorted(w.addrs.items()):
        w.by_ns.setdefault(ns, []).append((dev, nets))
        if (ns, dev) in w.segment:
            for net in nets:
                w.owner.setdefault((w.segment[(ns, dev)], net.ip), (ns, dev))
    return w


def _connected(w: Wiring, ns: str, ip: IPv4Address) -> str | None:
    """The device of ``ns`` on whose subnet ``ip`` lies (a /32 has no subnet: its own address only)."""
    for dev, nets in w.by_ns.get(ns, []):
        if any(ip in a.network and (a.network.prefixlen < 32 or a.ip == ip) for a in nets):
            return dev
    return None


def resolve(w: Wiring, ns: str, ip: str, routes: dict[str, list[Route]]) -> tuple[str, str] | None:
    """(device, neighbour address) the kernel of ``ns`` resolves to reach ``ip``: the address
    itself on a connected subnet or an on-link route, else the gateway of the longest planned
    route that covers it. None when it leaves through no ARP segment (a tunnel, or nowhere)."""
    addr = IPv4Address(ip)
    dev = _connected(w, ns, addr)
    if dev is not None:
        return dev, ip
    cands = [r for r in routes.get(ns, []) if r.type == "unicast" and addr in r.network]
    if not cands:
        return None
    r = max(cands, key=lambda r: r.network.prefixlen)
    if r.via is None:
        return (r.dev, ip) if r.dev else None
    gw_dev = r.dev or _connected(w, ns, IPv4Address(r.via))
    return (gw_dev, r.via) if gw_dev else None


def _responder(w: Wiring, iface: Iface, ip: str) -> Iface | None:
    """The endpoint of ``iface``'s segment that answers ARP for ``ip``: the one holding the
    address, or on a point-to-point wire the other end (proxy ARP: Calico's 169.254.1.1)."""
    seg = w.segment.get(iface)
    if seg is None:
        return None
    holder = w.owner.get((seg, IPv4Address(ip)))
    if holder is not None and holder != iface:
        return holder
    others = w.members[seg]
    if len(others) == 2:
        return others[0] if others[1] == iface else others[1]
    return None


def _source(w: Wiring, iface: Iface) -> str | None:
    """The address ``iface``'s ARP requests carry: its own, else any of its namespace's."""
    own = w.addrs.get(iface)
    if own:
        return str(own[0].ip)
    for _dev, nets in w.by_ns.get(iface[0], []):
        if nets:
            return str(nets[0].ip)
    return None


def talks(plan: Plan) -> list[tuple[str, str]]:
    """(namespace, address) pairs the lab keeps talking to by itself or at its first ping:
    :func:`first_ping` and :func:`held`."""
    return first_ping(plan) + held(plan)


def first_ping(plan: Plan) -> list[tuple[str, str]]:
    """Every namespace's default gateway (a pod's way to everything, a node's to the router):
    the entry its first packet to anywhere makes. It stays REACHABLE (unreclaimable) for 15-45 s
    after the last confirmation, then turns STALE, which forced GC may take once it is 5 s old.

    Not counted: the data-plane next hops to other nodes (host-gw routes, VXLAN/UDP outer
    destinations). They exist only while user traffic flows to that node and turn reclaimable
    (STALE, then older than 5 s) soon after; they need room, not a permanent slot. VXLAN's
    neighbours are PERMANENT, which the GC count exempts."""
    return [(r.ns, r.via) for r in plan.of(Route) if r.dst == "default" and r.via and r.type == "unicast"]


def held(plan: Plan) -> list[tuple[str, str]]:
    """Every BGP session of every BIRD in the plan: keepalives every hold/3 s keep the peer's
    entry REACHABLE for as long as the lab runs, so it never becomes reclaimable."""
    return [(sp.ns, s.neighbor) for sp in bgp.expected(plan) for s in sp.sessions]


def neighbour_keys(plan: Plan, pairs: list[tuple[str, str]] | None = None) -> set[Key]:
    """The dynamic neighbour entries the lab will hold at once: for each (namespace, address) of
    ``pairs`` (default :func:`talks`), the entry of the asking side and the one the answering side
    creates for the asker (Linux learns the sender of every ARP request addressed to it, proxy ARP
    included). Entries shadowed by a planned permanent neighbour are exempt from the GC count and
    left out."""
    return neighbour_key_sets(plan, [talks(plan) if pairs is None else pairs])[0]


def neighbour_key_sets(plan: Plan, pair_lists: list[list[tuple[str, str]]]) -> list[set[Key]]:
    """:func:`neighbour_keys` of several pair lists, with the plan's wiring, routes and
    permanent neighbours gathered once for all of them (a 1,000-node VXLAN plan has a million
    of each)."""
    w = wiring(plan)
    routes: dict[str, list[Route]] = {}
    for r in plan.of(Route):
        routes.setdefault(r.ns, []).append(r)
    permanent = {(n.ns, n.dev, n.dst) for n in plan.of(Neigh)}
    return [_keys(w, routes, permanent, pairs) for pairs in pair_lists]


def _keys(w: Wiring, routes: dict[str, list[Route]], permanent: set[Key], pairs: list[tuple[str, str]]) -> set[Key]:
    keys: set[Key] = set()
    for ns, ip in pairs:
        hop = resolve(w, ns, ip, routes)
        if hop is None or (ns, hop[0]) not in w.segment or (ns, *hop) in permanent:
            continue
        dev, nip = hop
        keys.add((ns, dev, nip))
        peer, src = _responder(w, (ns, dev), nip), _source(w, (ns, dev))
        if peer is not None and src is not None and (peer[0], peer[1], src) not in permanent:
            keys.add((peer[0], peer[1], src))
    return keys


@dataclass(frozen=True)
class Needs:
    """What a lab will take from the limits the host shares (see the module docstring).

    ``neighbours`` is what ``up`` requires room for: the entries the lab holds by itself (BGP)
    plus its first-ping entries up to :data:`WORKING_SET`. ``everyone_talks`` is the whole
    first-ping figure: a lab far larger than the working set cannot have every namespace send
    at the same moment on a default-sized table, but it can come up, and that is said, not refused.
    """

    lab: str
    neighbours: int
    namespaces: int
    daemons: int
    sessions: int  # BGP session ends (one TCP socket each)
    conntrack_per_ns: int  # the busiest namespace's tracked connections
    open_files: int  # this process's descriptors during apply, besides those already open
    daemon_files: int  # the daemons' descriptors, host-wide
    tasks: int
    mounts: int
    everyone_talks: int = 0  # dynamic neighbour entries if every namespace sent at once
    held: int = 0  # of them, held by the lab itself for as long as it runs (BGP sessions)
    note: str | None = None  # what fits but is worth saying (check's advice)


def estimate(plan: Plan) -> Needs:
    """The lab's needs, from its plan alone (no kernel access)."""
    speakers = bgp.expected(plan)
    sessions = sum(len(sp.sessions) for sp in speakers)
    per_ns: dict[str, int] = {}
    for sp in speakers:
        per_ns[sp.ns] = per_ns.get(sp.ns, 0) + len(sp.sessions)
    for n in plan.namespaces:
        if n.role == "pod" and n.node:
            node_ns = plan.host(n.node).name
            per_ns[node_ns] = per_ns.get(node_ns, 0) + 2  # a flow each way through the node
    daemons = len(plan.of(Daemon))
    kept, pinged = neighbour_key_sets(plan, [held(plan), first_ping(plan)])
    transient = len(pinged - kept)
    return Needs(
        lab=plan.lab,
        neighbours=len(kept) + min(transient, WORKING_SET),
        everyone_talks=len(kept) + transient,
        held=len(kept),
        namespaces=len(plan.namespaces),
        daemons=daemons,
        sessions=sessions,
        conntrack_per_ns=max(per_ns.values(), default=0),
        open_files=len(plan.namespaces) + FD_MARGIN,
        daemon_files=sessions + 16 * daemons,
        tasks=daemons + 8,
        mounts=len(plan.namespaces),
    )


# -- the host (read-only) -----------------------------------------------------------------------

@dataclass(frozen=True)
class Host:
    """The shared limits and what is already in use, as read from /proc (None: not readable)."""

    gc_thresh2: int | None = None
    gc_thresh3: int | None = None
    neigh_entries: int | None = None  # every namespace's entries, permanent ones included
    table_fulls: int | None = None
    conntrack_max: int | None = None
    net_namespaces: int = 0
    max_net_namespaces: int | None = None
    nofile_soft: int = resource.RLIM_INFINITY
    nofile_hard: int = resource.RLIM_INFINITY
    fds_open: int = 0
    files_allocated: int | None = None
    file_max: int | None = None
    tasks: int | None = None
    pid_max: int | None = None
    threads_max: int | None = None
    mounts: int | None = None
    mount_max: int | None = None


def _int(path: str, field_no: int = 0) -> int | None:
    try:
        return int(Path(path).read_text().split()[field_no])
    except (OSError, ValueError, IndexError):
        return None


def _sysctl(name: str) -> int | None:
    return _int("/proc/sys/" + name.replace(".", "/"))


def arp_cache() -> tuple[int, int] | None:
    """(entries, table_fulls) of the kernel's one ARP table. ``entries`` is the table's global
    count (the same on every per-CPU row); ``table_fulls`` is per CPU and summed. Hex, both."""
    try:
        lines = Path(ARP_CACHE).read_text().split("\n")
    except OSError:
        return None
    head = lines[0].split()
    rows = [line.split() for line in lines[1:] if line.strip()]
    if not rows or "entries" not in head or "table_fulls" not in head:
        return None
    e, f = head.index("entries"), head.index("table_fulls")
    return int(rows[0][e], 16), sum(int(r[f], 16) for r in rows)


def count_net_namespaces() -> int:
    """Distinct network namespaces alive: those mounted under /run/netns and those a process
    lives in (a namespace held only by an open descriptor elsewhere is missed)."""
    seen: set[tuple[int, int]] = set()
    paths = [netns.path(n) for n in netns.names()]
    paths += [f"/proc/{p}/ns/net" for p in os.listdir("/proc") if p.isdigit()]
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        seen.add((st.st_dev, st.st_ino))
    return len(seen)


def read_host() -> Host:
    arp = arp_cache()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = 0
    try:
        mounts = sum(1 for _ in open("/proc/self/mountinfo"))
    except OSError:
        mounts = None
    loadavg = Path("/proc/loadavg").read_text().split() if Path("/proc/loadavg").exists() else []
    return Host(
        gc_thresh2=_sysctl(GC_THRESH.format(2)), gc_thresh3=_sysctl(GC_THRESH.format(3)),
        neigh_entries=arp[0] if arp else None, table_fulls=arp[1] if arp else None,
        conntrack_max=_sysctl("net.netfilter.nf_conntrack_max"),
        net_namespaces=count_net_namespaces(), max_net_namespaces=_sysctl("user.max_net_namespaces"),
        nofile_soft=soft, nofile_hard=hard, fds_open=fds,
        files_allocated=_int("/proc/sys/fs/file-nr", 0), file_max=_sysctl("fs.file-max"),
        tasks=int(loadavg[3].split("/")[1]) if len(loadavg) > 3 else None,
        pid_max=_sysctl("kernel.pid_max"), threads_max=_sysctl("kernel.threads-max"),
        mounts=mounts, mount_max=_sysctl("fs.mount-max"),
    )


def _count_exempt_here() -> int:
    """Neighbour entries of the calling thread's namespace that the GC count exempts: PERMANENT
    ones (flannel-vxlan installs them by the ten thousand) and externally learned ones. One
    RTM_GETNEIGH dump over a raw netlink socket; only each ndmsg's state and flags are read
    (no attribute is decoded)."""
    from . import nldump

    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    count = 0
    try:
        s.bind((0, 0))
        for (_family, _index, state, flags, _type), _ in nldump.dump(s, nldump.RTM_GETNEIGH, socket.AF_INET,
                                                                    attrs=_no_attrs):
            count += bool(state & NUD_PERMANENT or flags & NTF_EXT_LEARNED)
    except OSError:  # the dump was refused midway: what was counted stands (the figure only errs high)
        pass
    finally:
        s.close()
    return count


def _no_attrs(body: bytes, off: int) -> dict[int, bytes]:
    return {}


def neighbours_in_use(total: int) -> int:
    """The host's dynamic neighbour entries, i.e. those that count against gc_thresh3.

    ``total`` is the table's global count (``arp_cache`` entries, every namespace, permanent
    entries included). The GC count is that minus the exempt entries (permanent, externally
    learned, on loopback), which netlink only shows per namespace: so this subtracts the exempt
    entries of this namespace and of every namespace under /run/netns. Entries of namespaces it
    cannot see (held only by a process, e.g. a container's) stay counted whole, so the figure
    can only be too high, never too low — the safe side for a check that refuses.
    """
    exempt = _count_exempt_here()
    for name in netns.names():
        try:
            with netns.entered(name):
                exempt += _count_exempt_here()
        except OSError:
            continue  # gone meanwhile, or a stale file that is no namespace
    return max(0, total - exempt)


# -- comparing (pure) -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shortfall:
    what: str
    fix: str


def _pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def neighbour_shortfall(needs: Needs, host: Host, in_use: int) -> Shortfall | None:
    thresh = host.gc_thresh3
    if thresh is None or needs.neighbours + in_use <= thresh:
        return None
    total = needs.neighbours + in_use
    t3 = _pow2(2 * total)
    return Shortfall(
        f"lab '{needs.lab}' needs about {needs.neighbours} dynamic neighbour entries, the host uses {in_use}: "
        f"{total} > {GC_THRESH.format(3)} = {thresh} (one table, all namespaces)",
        f"raise it: sysctl -w {GC_THRESH.format(3)}={t3} (and gc_thresh2={t3 // 2}), "
        f"or use fewer nodes{' or calico-rr' if needs.sessions > needs.namespaces else ''}")


def advice(needs: Needs, host: Host, in_use: int) -> str | None:
    """What the lab cannot do on this table although it fits: every namespace sending at once.
    Each first packet makes two entries (the sender's for its gateway, the gateway's for it)."""
    thresh = host.gc_thresh3
    if thresh is None or needs.everyone_talks + in_use <= thresh:
        return None
    room = max(0, thresh - in_use - needs.held)
    return (f"every namespace sending at once would need about {needs.everyone_talks} dynamic neighbour entries "
            f"(the host uses {in_use}, {GC_THRESH.format(3)} = {thresh}): about {room // 2} namespaces can start "
            f"talking within the same 30 s; for all of them, sysctl -w "
            f"{GC_THRESH.format(3)}={_pow2(2 * (needs.everyone_talks + in_use))}")


def compare(needs: Needs, host: Host, neigh_in_use: int) -> list[Shortfall]:
    """Every shared limit the lab would exceed, first the neighbour table."""
    out = [s for s in [neighbour_shortfall(needs, host, neigh_in_use)] if s]
    lab = f"lab '{needs.lab}'"
    fewer = "or use fewer nodes or pods"
    if host.conntrack_max and needs.conntrack_per_ns > host.conntrack_max:
        out.append(Shortfall(f"{lab} tracks about {needs.conntrack_per_ns} connections in its busiest namespace: "
                             f"more than net.netfilter.nf_conntrack_max = {host.conntrack_max}",
                             f"raise it (sysctl -w net.netfilter.nf_conntrack_max={_pow2(2 * needs.conntrack_per_ns)}), {fewer}"))
    if host.max_net_namespaces is not None and host.net_namespaces + needs.namespaces > host.max_net_namespaces:
        out.append(Shortfall(f"{lab} needs {needs.namespaces} network namespaces and {host.net_namespaces} exist: "
                             f"more than user.max_net_namespaces = {host.max_net_namespaces}",
                             f"raise it (sysctl -w user.max_net_namespaces=...), remove unused namespaces, {fewer}"))
    need_fds = host.fds_open + needs.open_files
    if host.nofile_hard != resource.RLIM_INFINITY and need_fds > host.nofile_hard:
        out.append(Shortfall(f"{lab} keeps one netlink socket per namespace open while it is built: it needs about "
                             f"{need_fds} open files and this process may open at most {host.nofile_hard} (ulimit -Hn)",
                             f"raise the hard limit (ulimit -Hn {_pow2(need_fds)}, or LimitNOFILE= for a service), {fewer}"))
    if host.file_max and host.files_allocated is not None and \
            host.files_allocated + needs.open_files + needs.daemon_files > host.file_max:
        out.append(Shortfall(f"{lab} needs about {needs.open_files + needs.daemon_files} open files and the host has "
                             f"{host.files_allocated} of fs.file-max = {host.file_max} in use",
                             f"raise fs.file-max, {fewer}"))
    cap = min([c for c in (host.pid_max, host.threads_max) if c], default=None)
    if cap and host.tasks is not None and host.tasks + needs.tasks > cap:
        out.append(Shortfall(f"{lab} starts {needs.daemons} daemons and {host.tasks} tasks exist: more than "
                             f"kernel.pid_max/kernel.threads-max = {cap}", f"raise kernel.pid_max, {fewer}"))
    if host.mount_max and host.mounts is not None and host.mounts + needs.mounts > host.mount_max:
        out.append(Shortfall(f"{lab} mounts {needs.mounts} namespaces under /run/netns and {host.mounts} mounts "
                             f"exist: more than fs.mount-max = {host.mount_max}", f"raise fs.mount-max, {fewer}"))
    return out


# -- memory, before a plan is built -------------------------------------------------------------------

#: Measured on kernel 6.18 (vxlan 100 x 2 and 300 x 2, /proc/meminfo's Slab + Percpu + KernelStack
#: before and after up, and this process's peak RSS): a namespace with its devices, sysctls and
#: rulesets takes 250-480 KiB of kernel memory; a route, neighbour or FDB entry a few hundred bytes
#: in the kernel and as much again as a plan object in netlab. Rounded up: the check is a bound.
NS_BYTES = 512 << 10
ENTRY_BYTES = 1536
MEMORY_SHARE = 0.75  # of MemAvailable a lab may plan to take


def per_peer(lab, dp) -> int:
    """Kernel entries (routes, neighbours, FDB entries) each node holds for each other node: what
    makes a lab grow as n(n-1). The datapath's own plan says how many, counted on the plans of 2,
    3 and 4 nodes of this lab: the entries of n nodes are a + b·n + c·n(n-1), so the second
    difference f(4) - 2·f(3) + f(2) is 2c. Only what a daemon adds at run time, which no plan
    holds (the block route BIRD learns from every other node), is declared by the datapath
    (``learned_per_peer``)."""
    if dp.max_nodes < 4:
        return dp.learned_per_peer
    f = [_entries(dp.plan(_resized(lab, n))) for n in (2, 3, 4)]
    return (f[2] - 2 * f[1] + f[0]) // 2 + dp.learned_per_peer


def _entries(plan: Plan) -> int:
    return sum(len(plan.of(kind)) for kind in (Route, Neigh, Fdb))


def size_of(lab, per_peer: int) -> tuple[int, int, int]:
    """(namespaces, per-peer entries, bytes) of a lab, from its numbers alone: the check must run
    before the plan exists, since building the plan of a too large lab is what would exhaust memory."""
    namespaces = lab.nodes * (1 + lab.pods) + lab.underlay.racks + 2
    entries = lab.nodes * (lab.nodes - 1) * per_peer
    return namespaces, entries, namespaces * NS_BYTES + entries * ENTRY_BYTES


def mem_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_size(lab, per_peer: int, available: int | None = None) -> None:
    """Refuse, with the numbers, a lab whose kernel objects and plan would not fit in memory."""
    avail = mem_available() if available is None else available
    if avail is None:
        return
    ns, entries, need = size_of(lab, per_peer)
    if need <= avail * MEMORY_SHARE:
        return
    fits = lab.nodes
    while fits > 1 and size_of(_resized(lab, fits), per_peer)[2] > avail * MEMORY_SHARE:
        fits = fits * 9 // 10
    gib = 1 << 30
    raise HostLimitError(
        f"lab '{lab.name}' would take about {need / gib:.1f} GiB ({ns} namespaces x {NS_BYTES >> 10} KiB, "
        f"{entries} route/neighbour/FDB entries x {ENTRY_BYTES} B) and {avail / gib:.1f} GiB are available "
        f"(MemAvailable; a lab may plan {MEMORY_SHARE:.0%})",
        f"use fewer nodes (about {fits} fit), or free memory")


def _resized(lab, nodes: int):
    return dataclasses.replace(lab, nodes=nodes)


# -- the check ``up`` runs --------------------------------------------------------------------------

def _raise_nofile(need: int, host: Host) -> None:
    """Raise this process's own soft RLIMIT_NOFILE to ``need`` (at most the hard limit): it is
    netlab's own limit, not the host's. Daemons started later inherit it."""
    if host.nofile_soft == resource.RLIM_INFINITY or need <= host.nofile_soft:
        return
    hard = host.nofile_hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (need if hard == resource.RLIM_INFINITY else min(need, hard), hard))


CLEANUP_WAIT = 10.0  # seconds without progress after which the kernel is not freeing entries
CLEANUP_MAX = 60.0  # seconds to wait at most, however steadily the count falls


def _settled(host: Host, needs: Needs, in_use: Callable[[int], int], used: int) -> tuple[Host, int]:
    """The table's use once the kernel has finished freeing what just went away. A deleted
    namespace is freed asynchronously (cleanup_net), and until then its entries, permanent ones
    included, are in the global count but in no namespace netlab can see, so they count whole: a
    200-node vxlan lab leaves 40,000 such entries for several seconds after its ``down``. When the
    lab alone would fit, wait for them (at most CLEANUP_WAIT) rather than refuse on a figure about
    to vanish; a lab that needs more than the whole table is refused at once.

    The wait lasts as long as the count keeps falling (CLEANUP_WAIT without progress ends it,
    CLEANUP_MAX in all): the kernel frees a 300-node lab's 270,000 entries over more than ten
    seconds on a busy 2-core machine, and a fixed ten-second wait refused the next small lab
    with 2,108 entries still to go."""
    thresh = host.gc_thresh3 or 0
    if needs.neighbours > thresh:
        return host, used
    start = last_fall = time.monotonic()
    while needs.neighbours + used > thresh:
        now = time.monotonic()
        if now - last_fall > CLEANUP_WAIT or now - start > CLEANUP_MAX:
            break
        time.sleep(0.25)
        host = read_host()
        now_used = in_use(host.neigh_entries or 0)
        if now_used < used:
            last_fall = time.monotonic()
        used = now_used
    return host, used


def check(plan: Plan, host: Host | None = None, in_use: Callable[[int], int] = neighbours_in_use) -> Needs:
    """Refuse (:class:`HostLimitError`, one line with the numbers) a lab the host's shared limits
    cannot hold; otherwise make sure this process may open the descriptors apply needs.

    The exact neighbour usage costs a netlink dump per namespace, so it is computed only when the
    upper bound (the table's total, permanent entries included) does not already leave room.
    The check is a snapshot: another lab brought up at the same moment is not in it."""
    needs = estimate(plan)
    live = host is None
    host = host or read_host()
    used = host.neigh_entries or 0
    # the upper bound leaves room even for everyone talking (needs.neighbours <= everyone_talks):
    # no exact count needed, for the refusal nor for the note
    if host.gc_thresh3 is not None and needs.everyone_talks + used > host.gc_thresh3:
        used = in_use(used)
        if live and needs.neighbours + used > host.gc_thresh3:
            host, used = _settled(host, needs, in_use, used)
    short = compare(needs, host, used)
    if short:
        raise HostLimitError(short[0].what, short[0].fix)
    _raise_nofile(host.fds_open + needs.open_files, host)
    return dataclasses.replace(needs, note=advice(needs, host, used))


# -- after apply: the neighbour table's baseline, and readiness --------------------------------------

def record_baseline(state) -> None:
    """Remember where ``table_fulls`` stood when the lab came up (a file in its state directory),
    so that ``status`` can tell an overflow since then from one long before."""
    arp = arp_cache()
    if arp is not None:
        (state.dir / BASELINE).write_text(json.dumps({"table_fulls": arp[1], "at": time.time()}))


def baseline(state) -> int | None:
    try:
        return int(json.loads((state.dir / BASELINE).read_text())["table_fulls"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def neighbour_table(state, since: int | None = None) -> dict:
    """The ARP table's state for ``status``: entries, limits, and how often it was full since the
    lab came up (``overflows``, None without a baseline). ``since`` overrides the baseline."""
    arp = arp_cache()
    base = baseline(state) if since is None else since
    d = {"entries": None, "table_fulls": None, "gc_thresh2": _sysctl(GC_THRESH.format(2)),
         "gc_thresh3": _sysctl(GC_THRESH.format(3)), "baseline": base, "overflows": None}
    if arp is not None:
        d["entries"], d["table_fulls"] = arp
        if base is not None:
            d["overflows"] = max(0, arp[1] - base)
    return d


def overflow_note(table: dict) -> str:
    """One sentence for a neighbour table that overflowed, or ''."""
    if not table.get("overflows"):
        return ""
    return (f"the kernel's neighbour table was full {table['overflows']} times since the lab came up "
            f"({table['entries']} entries; {GC_THRESH.format(3)} = {table['gc_thresh3']}): new neighbours "
            f"fail with ENOBUFS in every namespace")
