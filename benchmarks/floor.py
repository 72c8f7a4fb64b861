#!/usr/bin/env python3
"""The floor of the same work: a lab's plan built the cheapest way this process knows, for
benchmarks/bringup.py to hold netlab against, phase by phase. On its own, it builds the floor
once and prints its phases:

    .venv/bin/python benchmarks/floor.py [--lab vxlan|host-gw] --nodes 100 --pods 2

Everything that can be done before the clock starts is: every netlink message of every
namespace (lo up, links, addresses, permanent neighbours, FDB entries, routes) is encoded from
the plan, with each interface's ifindex chosen in advance (``ifi_index`` in RTM_NEWLINK, which
the kernel honours for a new device and for a veth's peer), so no message waits for a
name-to-index lookup. The messages are joined into datagrams as large as the socket's send
buffer allows (the kernel processes a datagram's messages in order and answers only errors and
the last message's ACK). Only what the kernel must do is timed:

- namespaces: :func:`netlab.kernel.netns.create` (``unshare(CLONE_NEWNET)`` and the bind
  mount that keeps the namespace), a netlink socket opened inside and lo up, and nothing else
  (no ownership marker);
- links, in the plan's creation rounds (a veth's peer comes up and joins its bridge in the
  round after its birth, as it must), then addresses, then the sysctls (``/proc/sys`` written
  from inside each namespace: the kernel has no netlink call for most of them), then
  neighbours, FDB entries and routes, each phase's datagrams sent back to back;
- iptables: one ``iptables-restore --noflush`` per ruleset, six at a time on worker threads,
  each queued as soon as its namespace exists (as netlab queues them, so the processes cost
  the same phases in both); the phase is the wait after the netlink work.

The floor builds the plan's own namespaces, so netlab's ``verify`` can check afterwards (off
the clock) that it built exactly what netlab would; only link kinds made by one RTM_NEWLINK
(veth, bridge, vxlan, and the like) are supported, which covers vxlan and host-gw.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netlab.kernel import encode, netns, nldump  # noqa: E402
from netlab.kernel.nl import Batch, acked, chunks, read_acks  # noqa: E402
from netlab.kernel.nlmsg import NLMSG_DONE, NLMSG_ERROR  # noqa: E402
from netlab.plan import Plan, Ruleset, Sysctl  # noqa: E402
from netlab.spec import spec_of  # noqa: E402

#: The send buffer the floor asks for (SO_SNDBUFFORCE, as root): a datagram can be this large.
SNDBUF = 32 << 20
CHUNK = SNDBUF - (1 << 20)
PHASES = ("namespaces", "links", "addresses", "sysctls", "entries", "iptables")


class _Indexes:
    """Stands in for an NsLink while encoding: ifindexes come from the floor's own choice."""

    def __init__(self, ns: str, table: dict[tuple[str, str], int]) -> None:
        self.ns, self.table = ns, table

    def index(self, name: str) -> int:
        return self.table[(self.ns, name)]


class _FloorBatch(Batch):
    """netlab's encoders, with every new link given its ifindex by the floor, and a veth's peer
    namespace fd left as a placeholder (the message's last four bytes) filled in at send time:
    the peer's namespace does not exist yet when everything is encoded."""

    floor: "_Encoder"

    def new_index(self, ns: str, name: str) -> int:
        return self.floor.assign(ns, name)

    def peer_fd(self, peer_ns: str) -> int:
        self.floor.pending_peer = peer_ns
        return 0

    def _push(self, obj: Any, mtype: int, flags: int, body: bytes) -> None:
        super()._push(obj, mtype, flags, body)
        if self.floor.pending_peer is not None:
            self.floor.peers[id(self._msgs[-1])] = self.floor.pending_peer
            self.floor.pending_peer = None


@dataclass
class Datagram:
    data: bytearray
    last_seq: int
    patches: list[tuple[int, str]]  # (offset of a veth's IFLA_NET_NS_FD value, the peer's namespace)


@dataclass
class _Encoder:
    """Encodes a plan's netlink work per phase and namespace, choosing ifindexes as it goes
    (lo is 1 in a new namespace; each namespace counts on from 2 in creation order)."""

    table: dict[tuple[str, str], int] = field(default_factory=dict)
    next_index: dict[str, int] = field(default_factory=dict)
    peers: dict[int, str] = field(default_factory=dict)  # id of a veth's message -> its peer's namespace
    pending_peer: str | None = None
    batches: dict[str, _FloorBatch] = field(default_factory=dict)

    def assign(self, ns: str, name: str) -> int:
        index = self.next_index.get(ns, 2)
        self.next_index[ns] = index + 1
        self.table[(ns, name)] = index
        return index

    # the encode.Context protocol
    def batch(self, ns: str) -> _FloorBatch:
        b = self.batches.get(ns)
        if b is None:
            b = self.batches[ns] = _FloorBatch(_Indexes(ns, self.table))  # type: ignore[arg-type]
            b.floor = self
        return b

    def index(self, ns: str, name: str, obj: Any) -> int:
        return self.table[(ns, name)]

    def lookup(self, ns: str, name: str) -> int | None:
        return self.table.get((ns, name))

    def fail(self, obj: Any, err: BaseException | int) -> Exception:
        return RuntimeError(f"floor: {obj}: {err}")

    def take(self) -> dict[str, list[Datagram]]:
        """The batches built so far, as datagrams per namespace; the batches start over."""
        out = {ns: self._datagrams(b._msgs) for ns, b in self.batches.items() if b._msgs}
        self.batches, self.peers = {}, {}
        return out

    def _datagrams(self, msgs: list[bytes]) -> list[Datagram]:
        out: list[Datagram] = []
        for start, end in chunks(msgs, CHUNK):
            data, patches = bytearray(), []
            for k in range(start, end):
                m = msgs[k]
                data += acked(m) if k == end - 1 else m
                if id(m) in self.peers:
                    patches.append((len(data) - 4, self.peers[id(m)]))
            out.append(Datagram(data, struct.unpack_from("=I", msgs[end - 1], 8)[0], patches))
        return out


@dataclass
class Floor:
    """A plan's work, pre-encoded: netlink datagrams per phase and namespace (links per round),
    sysctls as (path, value) per namespace, and the iptables-restore inputs."""

    namespaces: list[str]
    lo: dict[str, list[Datagram]]
    rounds: list[dict[str, list[Datagram]]]
    phases: dict[str, dict[str, list[Datagram]]]
    sysctls: dict[str, list[tuple[str, bytes]]]
    rulesets: list[tuple[str, str]]
    socks: dict[str, socket.socket] = field(default_factory=dict)


def prepare(plan: Plan) -> Floor:
    """Encode everything of ``plan`` the floor will send (off the clock)."""
    enc = _Encoder()
    for n in plan.namespaces:
        enc.batch(n.name).link_set(n, 1, up=True)  # lo up, sent as the namespace is born
    lo = enc.take()
    rounds: dict[int, list] = {}
    phased = dict(plan.phased())
    for o in phased.pop(next(p for p in phased if p.name == "links"), []):
        if spec_of(o).link in encode.CREATE and spec_of(o).link != "veth":
            raise SystemExit(f"floor: link kind {spec_of(o).link} is not created by one RTM_NEWLINK; "
                             "benchmark vxlan or host-gw")
        rounds.setdefault(spec_of(o).round, []).append(o)
    out_rounds, previous = [], []
    for r in sorted(rounds) + [None]:
        for o in previous:
            encode.settle(enc, o)
        for o in rounds.get(r, []) if r is not None else []:
            encode.create(enc, o)
        out_rounds.append(enc.take())
        previous = rounds.get(r, []) if r is not None else []
    phases: dict[str, dict[str, list[Datagram]]] = {}
    for phase, objs in phased.items():
        if phase.check != "entry":
            continue
        for o in objs:
            encode.entry(enc.batch(o.ns), o)
        if phase.name == "addresses":
            phases["addresses"] = enc.take()
    phases["entries"] = enc.take()
    sysctls: dict[str, list[tuple[str, bytes]]] = {}
    for s in plan.of(Sysctl):
        sysctls.setdefault(s.ns, []).append((s.path, s.value.encode()))
    return Floor([n.name for n in plan.namespaces], lo, out_rounds, phases, sysctls,
                 [(r.ns, r.restore_text()) for r in plan.of(Ruleset)])


def _create(floor: Floor, name: str) -> None:
    """netlab's own namespace creation (unshare, bind mount), with the floor's socket opened and
    lo brought up inside before the namespace appears; the stamp is empty."""

    def init() -> None:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        s.setsockopt(socket.SOL_SOCKET, 32, SNDBUF)  # SO_SNDBUFFORCE
        s.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)  # SO_RCVBUFFORCE
        s.bind((0, 0))
        floor.socks[name] = s
        _send(floor, {name: floor.lo[name]})

    netns.create(name, init=init, prepare=False)


def _send(floor: Floor, per_ns: dict[str, list[Datagram]]) -> None:
    for ns, datagrams in per_ns.items():
        s = floor.socks[ns]
        for d in datagrams:
            fds = []
            for off, peer in d.patches:
                fds.append(os.open(netns.path(peer), os.O_RDONLY | os.O_CLOEXEC))
                struct.pack_into("=I", d.data, off, fds[-1])
            s.send(d.data)
            _acks(s, d.last_seq, ns)
            for fd in fds:
                os.close(fd)


def _acks(s: socket.socket, last_seq: int, ns: str) -> None:
    for seq, err in read_acks(s, last_seq):
        raise RuntimeError(f"floor: the kernel refused message {seq} in {ns}: {os.strerror(err)}")


def _sysctls(floor: Floor) -> None:
    for ns, items in floor.sysctls.items():
        with netns.entered(ns):
            for path, value in items:
                try:
                    fd = os.open(path, os.O_WRONLY)
                except FileNotFoundError:
                    continue  # an optional one (bridge-nf-call-iptables without br_netfilter)
                os.write(fd, value)
                os.close(fd)


def _restore(ns: str, text: str) -> None:
    subprocess.run(["nsenter", f"--net={netns.path(ns)}", "iptables-restore", "--noflush"], input=text,
                   text=True, check=True, stdout=subprocess.DEVNULL)


def up(floor: Floor) -> dict[str, float]:
    """Build it; returns seconds per phase (the keys of :data:`PHASES`)."""
    times: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        times[name] = now - t
        t = now

    netns.ensure_run_dir()
    pool = ThreadPoolExecutor(6)
    rulesets = dict(floor.rulesets)
    jobs = []
    for name in floor.namespaces:
        _create(floor, name)
        if name in rulesets:  # as netlab does: loading beside the netlink work from here on
            jobs.append(pool.submit(_restore, name, rulesets[name]))
    lap("namespaces")
    for r in floor.rounds:
        _send(floor, r)
    lap("links")
    _send(floor, floor.phases.get("addresses", {}))
    lap("addresses")
    _sysctls(floor)
    lap("sysctls")
    _send(floor, floor.phases["entries"])
    lap("entries")
    for j in jobs:
        j.result()
    pool.shutdown()
    lap("iptables")
    return times


def down(floor: Floor) -> float:
    """Remove every namespace (sockets closed, mounts detached); returns seconds."""
    t = time.perf_counter()
    for s in floor.socks.values():
        s.close()
    floor.socks.clear()
    for name in floor.namespaces:
        if os.path.exists(netns.path(name)):
            netns.delete(name)
    return time.perf_counter() - t



#: The dumps ``netlab status`` cannot do without in any namespace (:func:`netlab.kernel.readback.snapshot`):
#: links, addresses, routes, neighbours, policy rules and the devconf. It also dumps bridge
#: ports, FDB entries and qdiscs, which the read floor leaves out, so the floor is a lower bound.
READS = ((nldump.RTM_GETLINK, socket.AF_UNSPEC), (nldump.RTM_GETADDR, socket.AF_INET),
         (nldump.RTM_GETROUTE, socket.AF_INET), (nldump.RTM_GETNEIGH, socket.AF_INET),
         (nldump.RTM_GETRULE, socket.AF_INET), (nldump.RTM_GETNETCONF, socket.AF_INET))


def _requests() -> list[bytes]:
    return [nldump.request(mtype, family, seq) for seq, (mtype, family) in enumerate(READS, 1)]


def _drain(sock: socket.socket) -> int:
    """Receive one dump to its NLMSG_DONE without decoding it; returns the bytes received. The
    message headers are walked to find NLMSG_DONE (or an NLMSG_ERROR), the payloads are not read."""
    got = 0
    while True:
        data = sock.recv(1 << 20)
        got += len(data)
        off = 0
        while off + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, off)
            if kind in (NLMSG_DONE, NLMSG_ERROR):
                return got
            off += max((length + 3) & ~3, 16)


def _read_part(names: list[str]) -> int:
    requests, got = _requests(), 0
    for ns in names:
        with netns.entered(ns):
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        with sock:
            sock.settimeout(60)
            for request in requests:
                sock.send(request)
                got += _drain(sock)
    return got


def read_floor(names: list[str]) -> tuple[float, int]:
    """The floor of ``netlab status``'s reading: the :data:`READS` dumps of every namespace,
    requests encoded beforehand and answers received but not decoded, by two forked processes
    at once (status reads with two). Returns (seconds, bytes received).

    It is the kernel's share of status, and in a large VXLAN lab it is the neighbour dump: the
    kernel keeps one ARP table for every namespace, and a dump in one namespace walks all of
    it, skipping the other namespaces' entries, so reading every namespace costs
    namespaces × entries, about n³ for n nodes."""
    import multiprocessing

    half = len(names) // 2
    t = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = sum(pool.map(_read_part, [names[:half], names[half:]]))
    return time.perf_counter() - t, got


def overrides_for(nodes: int, pods: int) -> dict:
    """The CLI overrides of a lab this size: the lab files' /24 underlay and /16 pod CIDR hold
    200 nodes at most, so a larger one gets a /20 underlay and a /14 pod CIDR."""
    out: dict = {"nodes": nodes, "pods": pods}
    if nodes > 200:
        out.update(cidr="172.16.0.0/20", pod_cidr="10.0.0.0/14")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", default="vxlan", choices=("vxlan", "host-gw"))
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--pods", type=int, default=2)
    a = ap.parse_args()
    from netlab import api, model
    from netlab.kernel.verify import verify

    plan = api.build_plan(model.load(a.lab, name="bf" + secrets.token_hex(3), overrides=overrides_for(a.nodes, a.pods)))
    f = prepare(plan)
    try:
        times = up(f)
        ok = verify(plan).ok
    finally:
        gone = down(f)
    for phase in PHASES:
        print(f"{phase:12} {times[phase]:8.2f} s")
    print(f"{'up, total':12} {sum(times.values()):8.2f} s   (verify: {'the plan, exactly' if ok else 'DIFFERS'})")
    print(f"{'down':12} {gone:8.2f} s")


if __name__ == "__main__":
    main()
