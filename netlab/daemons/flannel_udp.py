"""netlab's flannel UDP forwarder: what flanneld's C proxy does for the UDP backend (DATAPATHS.md §2a).

One process per node, inside the node's namespace::

    python -m netlab.daemons.flannel_udp --tun flannel0 --tun-addr 10.244.1.0 \\
        --listen 192.168.100.11:8285 --route 10.244.2.0/24=192.168.100.12 --ready … --stats …

Outbound (``tun_to_udp``): the kernel routes ``10.244.0.0/16`` into the TUN ``flannel0``; every
``read()`` returns one bare IPv4 packet (IFF_NO_PI: no packet-info header). The forwarder looks the
inner destination up in its (subnet -> node IP) table by longest prefix, lowers the TTL (and
patches the header checksum incrementally, RFC 1624, instead of recomputing it), and sends the
packet *as is* as the payload of a UDP datagram from its socket on <node IP>:8285 to
<peer node IP>:8285. There is no extra header: the outer packet is IP/UDP/IP.

Inbound (``udp_to_tun``): a datagram's payload is an inner packet; the TTL is lowered again and the
packet is ``write()``n into flannel0, where the kernel receives it as if it had arrived on a wire
and routes it to ``cni0`` and the pod. An inner packet therefore loses two TTL per tunnel crossing
on top of the kernel's own forwarding decrements.

No route: flanneld writes an ICMP *net unreachable* (type 3 code 0, TTL 8, from the TUN's address)
back into the TUN, except about ICMP error messages and non-first fragments (RFC 1812 4.3.2.7).

Why it is slow, and what batching buys: each packet costs a ``read()`` plus a ``sendto()`` on one
node and a ``recv()`` plus a ``write()`` on the other, i.e. two user/kernel copies per side. Python
adds a few microseconds per packet on top; the forwarder cuts the per-wakeup cost by draining up to
``--batch`` packets from the TUN and from the socket each time epoll reports them readable, and
gives the socket 8 MiB buffers so a burst from TCP's congestion window is queued instead of
dropped.

``--mode vnet-hdr`` is **not what flannel does**: the TUN is opened with IFF_VNET_HDR and TCP
segmentation offload, so one read returns a GSO super-packet of up to 64 KB behind a 10-byte
``virtio_net_hdr``; that header and the super-packet travel together in one UDP datagram (which the
underlay carries as IP fragments) and are written to the peer's TUN in one go, where the kernel
segments them only if it has to. Per-packet work drops by ~40x.

Counters are written as a flat JSON object to ``--stats`` every second and on SIGUSR1;
``netlab status`` prints them. SIGTERM stops the forwarder cleanly.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import select
import signal
import socket
import struct
import sys
import time
from dataclasses import asdict, dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Sequence

from netlab.kernel.tun import IFF_NO_PI, IFF_TUN, IFF_VNET_HDR, open_tun

log = logging.getLogger("flannel-udp")

TUNSETOFFLOAD = 0x400454D0
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN = 0x01, 0x02, 0x04, 0x08
VNET_HDR_LEN = 10  # struct virtio_net_hdr: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
SOCKET_BUFFER = 8 << 20
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33  # Linux; not exported by Python's socket module
MAX_UDP_PAYLOAD = 65507
ICMP_PROTO = 1
ICMP_DEST_UNREACH = 3
ICMP_NET_UNREACH = 0
ICMP_ERROR_TYPES = frozenset({3, 4, 5, 11, 12})  # dest unreachable, source quench, redirect, time exceeded, param problem
UNREACH_TTL = 8  # what flanneld puts in its ICMP replies
_BE32 = struct.Struct("!I")


# --- pure packet logic (unit-tested without root) ------------------------------------------------

@dataclass(frozen=True)
class RouteEntry:
    """One lease of the forwarding table: packets for ``subnet`` go to ``node``:port over UDP."""

    subnet: IPv4Network
    node: str

    @property
    def net(self) -> int:
        return int(self.subnet.network_address)

    @property
    def mask(self) -> int:
        return int(self.subnet.netmask)


def parse_route(text: str) -> RouteEntry:
    """``10.244.2.0/24=192.168.100.12`` -> RouteEntry."""
    subnet, sep, node = text.partition("=")
    if not sep:
        raise ValueError(f"route {text!r} is not SUBNET=NODE_IP")
    return RouteEntry(IPv4Network(subnet.strip()), str(IPv4Address(node.strip())))


def build_table(entries: Sequence[RouteEntry]) -> tuple[RouteEntry, ...]:
    """The table in lookup order: longest prefix first, so the first match is the best match."""
    return tuple(sorted(entries, key=lambda e: e.subnet.prefixlen, reverse=True))


def lookup(table: Sequence[RouteEntry], dst: int) -> RouteEntry | None:
    """Longest-prefix match of the IPv4 address ``dst`` (an int) over a :func:`build_table` table.

    flanneld does a linear search too; a lab has at most a few hundred leases, and the forwarder
    caches the answer per destination address anyway.
    """
    for e in table:
        if dst & e.mask == e.net:
            return e
    return None


def checksum(data: bytes | bytearray | memoryview) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's complement sum of 16-bit words."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def csum_replace16(hc: int, old: int, new: int) -> int:
    """RFC 1624 eqn. 3: the new checksum after one 16-bit header word changes from ``old`` to ``new``:
    ``HC' = ~(~HC + ~m + m')``, without summing the rest of the header again."""
    s = (~hc & 0xFFFF) + (~old & 0xFFFF) + new
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def decrement_ttl(buf: bytearray, off: int = 0) -> bool:
    """Lower the TTL of the IPv4 header at ``buf[off:]`` by one, fixing the checksum incrementally.

    The TTL shares a 16-bit word with the protocol (``ttl << 8 | proto``), so that word drops by
    0x0100. Returns False, leaving the packet untouched, if the TTL would reach 0: flanneld then
    drops the packet (it sends no ICMP time exceeded).
    """
    ttl = buf[off + 8]
    if ttl <= 1:
        return False
    word = ttl << 8 | buf[off + 9]
    hc = csum_replace16(buf[off + 10] << 8 | buf[off + 11], word, word - 0x0100)
    buf[off + 8] = ttl - 1
    buf[off + 10] = hc >> 8
    buf[off + 11] = hc & 0xFF
    return True


def wants_unreachable(pkt: bytes | bytearray | memoryview) -> bool:
    """Whether an undeliverable packet earns an ICMP error: not if it is a non-first fragment
    (the first one already did) and not if it is itself an ICMP error (no errors about errors)."""
    if len(pkt) < 20 or pkt[0] >> 4 != 4:
        return False
    ihl = (pkt[0] & 0x0F) * 4
    if ihl < 20 or len(pkt) < ihl:
        return False
    if (pkt[6] << 8 | pkt[7]) & 0x1FFF:
        return False
    if pkt[9] == ICMP_PROTO and (len(pkt) <= ihl or pkt[ihl] in ICMP_ERROR_TYPES):
        return False
    return True


def net_unreachable(pkt: bytes | bytearray | memoryview, src: bytes) -> bytes | None:
    """The ICMP net unreachable flanneld writes back into the TUN for a packet it has no route for.

    From ``src`` (the TUN's address) to the offender's source, TTL 8, quoting the offender's IP
    header and first 8 payload bytes (RFC 792). None if no error may be sent (:func:`wants_unreachable`).
    """
    if not wants_unreachable(pkt):
        return None
    ihl = (pkt[0] & 0x0F) * 4
    quote = bytes(pkt[:ihl + 8])
    icmp = bytearray(struct.pack("!BBHI", ICMP_DEST_UNREACH, ICMP_NET_UNREACH, 0, 0) + quote)
    struct.pack_into("!H", icmp, 2, checksum(icmp))
    total = 20 + len(icmp)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, UNREACH_TTL, ICMP_PROTO, 0,
                               src, bytes(pkt[12:16])))
    struct.pack_into("!H", ip, 10, checksum(ip))
    return bytes(ip + icmp)


# --- the daemon -----------------------------------------------------------------------------------

@dataclass
class Counters:
    """What ``netlab status`` shows. Outbound = TUN -> UDP, inbound = UDP -> TUN."""

    tun_rx: int = 0  # packets read from flannel0
    udp_tx: int = 0  # of those, sent to a peer node
    udp_tx_bytes: int = 0
    udp_rx: int = 0  # datagrams received on :8285
    tun_tx: int = 0  # of those, written to flannel0
    tun_tx_bytes: int = 0
    no_route: int = 0  # outbound packets for a subnet no node holds
    icmp_unreachable: int = 0  # ICMP net unreachable written back for them
    ttl_expired: int = 0
    not_ipv4: int = 0  # e.g. the kernel's own IPv6 router solicitations on flannel0: flannel carries IPv4 only
    malformed: int = 0
    send_errors: int = 0
    write_errors: int = 0
    wakeups: int = 0  # epoll returns: packets per wakeup shows how much batching helps


@dataclass
class Config:
    tun: str
    tun_addr: str
    listen: tuple[str, int]
    port: int
    routes: tuple[RouteEntry, ...]
    mtu: int = 1472
    mode: str = "flannel"
    batch: int = 64
    ready: str | None = None
    stats: str | None = None


class Stop(Exception):
    """Raised by the SIGTERM/SIGINT handler to leave the event loop."""


class Forwarder:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.c = Counters()
        self.table = build_table(cfg.routes)
        self.cache: dict[int, tuple[str, int]] = {}
        self.vnet = cfg.mode == "vnet-hdr"
        self.off = VNET_HDR_LEN if self.vnet else 0
        self.src = IPv4Address(cfg.tun_addr).packed
        self.started = time.time()
        self.buf = bytearray(65536 + VNET_HDR_LEN)
        self.mv = memoryview(self.buf)
        self.tunfd = -1
        self.sock: socket.socket | None = None

    # -- setup ---------------------------------------------------------------------------------
    def open(self) -> None:
        cfg = self.cfg
        try:
            socket.if_nametoindex(cfg.tun)
        except OSError:
            # TUNSETIFF would quietly create a new, non-persistent device: refuse instead.
            raise SystemExit(f"{cfg.tun} does not exist in this namespace (netlab creates it persistent before "
                             f"starting the forwarder)") from None
        flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if self.vnet else 0)
        self.tunfd = open_tun(cfg.tun, flags)
        if self.vnet:
            fcntl.ioctl(self.tunfd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN)
        os.set_blocking(self.tunfd, False)
        self.tunio = open(self.tunfd, "rb", buffering=0, closefd=False)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
            try:  # *FORCE ignores net.core.[rw]mem_max (we have CAP_NET_ADMIN); fall back if not
                s.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
            except OSError:
                s.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)
        s.bind(cfg.listen)
        s.setblocking(False)
        self.sock = s
        log.info("attached to %s (%s), listening on %s:%d, mtu %d, batch %d, socket buffers rcv %d snd %d",
                 cfg.tun, "IFF_TUN|IFF_NO_PI|IFF_VNET_HDR + TSO offload" if self.vnet else "IFF_TUN|IFF_NO_PI",
                 cfg.listen[0], cfg.listen[1], cfg.mtu, cfg.batch,
                 s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF), s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
        if self.vnet:
            log.warning("mode vnet-hdr: NOT flannel's packet format (virtio_net_hdr + GSO super-packets in UDP)")
        for e in self.table:
            log.info("route %s -> %s:%d", e.subnet, e.node, cfg.port)

    def opened_sock(self) -> socket.socket:
        """The UDP socket; the event loop runs only after ``open`` made it."""
        if self.sock is None:
            raise RuntimeError("Forwarder.open() has not run: no UDP socket")
        return self.sock

    def close(self) -> None:
        if self.vnet and self.tunfd >= 0:
            try:  # leave the persistent device as apply made it: no offloads for the next reader
                fcntl.ioctl(self.tunfd, TUNSETOFFLOAD, 0)
            except OSError:
                pass
        if self.sock is not None:
            self.sock.close()
        if self.tunfd >= 0:
            self.tunio.close()
            os.close(self.tunfd)
            self.tunfd = -1

    # -- stats ---------------------------------------------------------------------------------
    def stats(self) -> dict:
        return {"pid": os.getpid(), "mode": self.cfg.mode, "routes": len(self.table),
                "uptime_s": round(time.time() - self.started, 1), **asdict(self.c)}

    def write_stats(self) -> None:
        if not self.cfg.stats:
            return
        tmp = self.cfg.stats + ".tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(self.stats(), f)
            os.replace(tmp, self.cfg.stats)
        except OSError as e:  # the state directory is gone: netlab down is removing the lab
            log.debug("cannot write stats: %s", e)

    # -- the two directions --------------------------------------------------------------------
    def resolve(self, dst: int) -> tuple[str, int] | None:
        entry = lookup(self.table, dst)
        if entry is None:
            return None
        if len(self.cache) > 65536:
            self.cache.clear()
        peer = self.cache[dst] = (entry.node, self.cfg.port)
        return peer

    def unreachable(self, pkt: memoryview) -> None:
        """flanneld's ``send_net_unreachable``: the ICMP error goes back into the TUN, and the
        kernel routes it to the sender as if it had come from the wire."""
        c = self.c
        c.no_route += 1
        off = self.off
        reply = net_unreachable(pkt[off:], self.src)
        if c.no_route <= 10 or c.no_route % 1000 == 0:
            dst = IPv4Address(bytes(pkt[off + 16:off + 20])) if len(pkt) >= off + 20 else "?"
            log.info("no route to %s (%d so far)%s", dst, c.no_route, ", sent ICMP net unreachable" if reply else "")
        if reply is None:
            return
        try:
            os.write(self.tunfd, (bytes(VNET_HDR_LEN) if self.vnet else b"") + reply)
            c.icmp_unreachable += 1
        except OSError:
            c.write_errors += 1

    def tun_to_udp(self) -> None:
        """Drain up to ``batch`` packets from the TUN; send each to its node over UDP."""
        buf, mv, off, c = self.buf, self.mv, self.off, self.c
        readinto, sendto, cache, unpack = self.tunio.readinto, self.opened_sock().sendto, self.cache, _BE32.unpack_from
        lower_ttl = decrement_ttl  # the unit-tested function is the one that runs
        got = sent = nbytes = 0
        for _ in range(self.cfg.batch):
            n = readinto(mv)
            if not n:  # None: EAGAIN, the TUN queue is empty
                break
            got += 1
            if n < off + 20 or buf[off] >> 4 != 4:
                if n > off and buf[off] >> 4 != 4:
                    c.not_ipv4 += 1
                else:
                    c.malformed += 1
                continue
            dst = unpack(buf, off + 16)[0]
            peer = cache.get(dst) or self.resolve(dst)
            if peer is None:
                self.unreachable(mv[:n])
                continue
            if not lower_ttl(buf, off):
                c.ttl_expired += 1
                continue
            try:
                sendto(mv[:n], peer)
            except OSError:  # EAGAIN (socket buffer full), EMSGSIZE, no route on the underlay …
                c.send_errors += 1
                continue
            sent += 1
            nbytes += n - off
        c.tun_rx += got
        c.udp_tx += sent
        c.udp_tx_bytes += nbytes

    def udp_to_tun(self) -> None:
        """Drain up to ``batch`` datagrams from the socket; write each payload into the TUN."""
        buf, mv, off, c, tunfd = self.buf, self.mv, self.off, self.c, self.tunfd
        recv_into, write = self.opened_sock().recv_into, os.write
        lower_ttl = decrement_ttl
        got = wrote = nbytes = 0
        for _ in range(self.cfg.batch):
            try:
                n = recv_into(mv)
            except BlockingIOError:
                break
            except OSError:
                c.malformed += 1
                continue
            got += 1
            if n < off + 20 or buf[off] >> 4 != 4:
                c.malformed += 1
                continue
            if not lower_ttl(buf, off):
                c.ttl_expired += 1
                continue
            try:
                write(tunfd, mv[:n])
            except OSError:
                c.write_errors += 1
                continue
            wrote += 1
            nbytes += n - off
        c.udp_rx += got
        c.tun_tx += wrote
        c.tun_tx_bytes += nbytes

    # -- main loop -----------------------------------------------------------------------------
    def run(self) -> None:
        ep = select.epoll()
        tunfd, sockfd = self.tunfd, self.opened_sock().fileno()
        ep.register(tunfd, select.EPOLLIN)
        ep.register(sockfd, select.EPOLLIN)
        c = self.c
        next_stats = time.monotonic()
        try:
            while True:
                events = ep.poll(1.0)
                c.wakeups += 1
                for fd, _ in events:
                    if fd == tunfd:
                        self.tun_to_udp()
                    else:
                        self.udp_to_tun()
                now = time.monotonic()
                if now >= next_stats:
                    self.write_stats()
                    next_stats = now + 1.0
        finally:
            ep.close()


def _write_file(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def parse_args(argv: Sequence[str] | None = None) -> Config:
    ap = argparse.ArgumentParser(prog="python -m netlab.daemons.flannel_udp",
                                 description="flannel UDP backend forwarder: TUN <-> UDP, bare IP packets")
    ap.add_argument("--tun", default="flannel0", help="existing TUN device to attach to")
    ap.add_argument("--tun-addr", required=True, help="the TUN's address: source of ICMP net unreachable")
    ap.add_argument("--listen", required=True, metavar="IP:PORT", help="UDP address to bind (node IP:8285)")
    ap.add_argument("--port", type=int, default=8285, help="peers' UDP port")
    ap.add_argument("--route", action="append", default=[], metavar="SUBNET=NODE_IP", help="forwarding table entry")
    ap.add_argument("--mtu", type=int, default=1472)
    ap.add_argument("--mode", choices=("flannel", "vnet-hdr"), default="flannel")
    ap.add_argument("--batch", type=int, default=64, help="packets drained per wakeup and direction")
    ap.add_argument("--ready", help="file to create once attached and listening")
    ap.add_argument("--stats", help="JSON counters file, rewritten every second and on SIGUSR1")
    a = ap.parse_args(argv)
    host, _, port = a.listen.rpartition(":")
    try:
        routes = tuple(parse_route(r) for r in a.route)
        listen = (str(IPv4Address(host)), int(port))
    except ValueError as e:
        ap.error(str(e))
    return Config(tun=a.tun, tun_addr=a.tun_addr, listen=listen, port=a.port, routes=routes, mtu=a.mtu,
                  mode=a.mode, batch=max(1, a.batch), ready=a.ready, stats=a.stats)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s flannel-udp[%(process)d] %(levelname)s %(message)s")
    cfg = parse_args(argv)
    fwd = Forwarder(cfg)

    def on_term(signum, frame):
        raise Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGUSR1, lambda signum, frame: fwd.write_stats())
    try:
        fwd.open()
    except OSError as e:
        log.error("cannot start: %s", e)
        return 1
    try:
        fwd.write_stats()
        if cfg.ready:
            _write_file(cfg.ready, f"{os.getpid()}\n")
        log.info("ready")
        fwd.run()
    except Stop as e:
        log.info("stopping on %s", e)
    finally:
        fwd.write_stats()
        log.info("counters: %s", json.dumps(asdict(fwd.c)))
        fwd.close()
        if cfg.ready:
            try:
                os.unlink(cfg.ready)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
