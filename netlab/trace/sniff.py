"""Capture in many namespaces at once, from one thread, with kernel filtering and timestamps.

``setns(2)`` moves only the calling thread, and a socket stays in the namespace it was created in
(DATAPATHS.md §7). So each namespace gets one ``AF_PACKET`` socket, created while this thread is
briefly inside the namespace (:func:`netlab.kernel.netns.entered`), and from then on all sockets
are read from the original namespace with one ``poll``. No helper process, no thread, and nothing
to clean up but file descriptors; the root namespace is only ever read from.

Why one socket per namespace rather than per interface: the kernel delivers a packet to the
namespace's packet sockets in the order it processes it (port rx, then the bridge's rx, then the
route's tx …), so one socket per namespace gives the exact order of hops inside a namespace, and
the kernel timestamps (``SO_TIMESTAMPNS``) order the hops between namespaces: crossing a veth
into another namespace always re-stamps the packet, later. Per-interface selection is done in the
kernel by the BPF program (:func:`netlab.trace.bpf.only_ifindexes`).

Each packet comes with the interface index, the direction (``PACKET_OUTGOING`` for transmit) and
the device's hardware type, which says whether the bytes start with an Ethernet header or with a
bare IP header (TUN).

Promiscuous mode, on bridges only (``promisc=True``, which ``netlab capture`` asks for): a Linux
bridge hands a frame it *forwards* from port to port to the bridge device's own receive path, and
so to packet sockets bound to br0, only when br0 is promiscuous (``br_handle_frame_finish``:
``local_rcv`` is set by ``IFF_PROMISC``); otherwise br0's taps see only what is addressed to the
bridge itself, and ``capture switch:br0`` misses all forwarded unicast. tcpdump turns promiscuous
mode on for every device it opens, because a real NIC drops frames for other MACs in hardware. In
a lab there is no such filter: a veth, VXLAN, TUN or IPIP device hands every frame to its taps
whatever the flag, so the flag would change nothing there but the device's flags, a kernel log
line and, for stacked devices such as VLAN or macvlan, the promiscuity of the *lower* device,
which may live in another namespace (even the root one). A bridge's promiscuity stays in its
namespace (it only re-evaluates its own ports'), so bridges are where it is asked for.

It is asked as a packet-socket membership (``PACKET_ADD_MEMBERSHIP``/``PACKET_MR_PROMISC``), not
by setting ``IFF_PROMISC`` on the link: the kernel counts it against the socket and drops it when
the socket is closed, even when the process is killed, so a capture leaves the device's
promiscuity count where it was. ``netlab trace`` does not ask for it: the frames a bridge forwards
are already seen on its ports, and br0's promiscuous copies would be extra sightings of a device
the packet never crossed.
"""

from __future__ import annotations

import array
import errno
import fcntl
import heapq
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

from ..errors import NetlabError
from ..kernel import netns
from . import bpf

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35  # SO_TIMESTAMPNS_OLD; the control message carries a struct timespec
SO_RCVBUF = socket.SO_RCVBUF
SO_RCVBUFFORCE = 33
SIOCGIFMTU = 0x8921
SIOCGIFHWADDR = 0x8927
PACKET_OUTGOING = 4
PACKET_OTHERHOST = 3
PKTTYPES = {0: "host", 1: "broadcast", 2: "multicast", 3: "otherhost", 4: "outgoing"}
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
SIOCETHTOOL = 0x8946
ETHTOOL_GDRVINFO = 0x00000003
DRVINFO_SIZE = 196  # struct ethtool_drvinfo: cmd, driver[32], version[32], … up to regdump_len


#: IEEE 802's local experimental ethertype: no protocol handler takes it, so a frame of it sent on
#: a lab namespace's lo reaches the packet sockets there and is then dropped, touching nothing else.
ETH_P_LOCAL_EXP1 = 0x88B5


def receive_stamps_live(ns: str, timeout: float = 2.0) -> bool:
    """Wait until the kernel stamps packets as they are received, and say whether it does.

    Receive timestamps are off in the whole kernel until some socket asks for them (the static
    key ``netstamp_needed_key``). When nobody has asked yet, the first socket that does (our
    ``SO_TIMESTAMPNS``) does not turn them on at once: ``net_enable_timestamp`` defers it to a
    work item, which a busy machine runs milliseconds later. A packet that crosses the lab
    meanwhile carries no stamp, and ``recvmsg`` gives it the time it was *read* ("race occurred
    between timestamp enabling and packet receiving", net/socket.c). Frames read namespace by
    namespace are then ordered by the reading, not by the path: in CI a trace once showed its
    reply leg in the request's order. A machine where another program keeps timestamps on (an
    NTP daemon, tcpdump) never shows it.

    So a frame of a local experimental ethertype is sent on ``ns``'s lo and read a moment
    later, until its stamp is older than the read, or ``timeout`` passes (False: stamps are not
    live, or lo is down and nothing can tell)."""
    try:
        with netns.entered(ns):
            rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_LOCAL_EXP1))
            tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        with rx, tx:
            rx.bind(("lo", ETH_P_LOCAL_EXP1))
            tx.bind(("lo", 0))
            rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            rx.settimeout(0.2)
            frame = bytes(12) + struct.pack("!H", ETH_P_LOCAL_EXP1) + bytes(46)  # to and from lo's MAC, 00:…:00
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                tx.send(frame)
                time.sleep(0.001)
                before = time.time_ns()
                _, anc, _, _ = rx.recvmsg(64, 64)
                stamp = _stamp(anc)
                if stamp is not None and stamp < before:
                    return True
    except OSError:  # lo down (ENETDOWN), or no answer within rx's timeout
        pass
    return False


def _stamp(anc: list[tuple[int, int, bytes]]) -> int | None:
    """The SO_TIMESTAMPNS control message's time, in ns since the epoch."""
    for level, kind, cdata in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(cdata) >= 16:
            sec, nsec = struct.unpack("qq", cdata[:16])
            return sec * 1_000_000_000 + nsec
    return None


@dataclass
class Frame:
    """One packet as one interface saw it."""

    ns: str  # namespace name
    host: str  # what a user types: node1, node1-pod1, switch
    iface: str
    ifindex: int
    direction: str  # "in" or "out"
    pkttype: int
    hatype: int
    ts_ns: int  # kernel timestamp, nanoseconds since the epoch (a float would keep only ~0.2 µs)
    data: bytes
    wirelen: int  # the length on the wire (data may be cut at the snap length)
    mtu: int | None = None
    seq: int = 0  # arrival order on its namespace's socket
    #: the kernel had not stamped it as it passed, so ``ts_ns`` is when it was read and says
    #: nothing of its order against other namespaces' frames (see :func:`receive_stamps_live`)
    stamped_late: bool = False

    @property
    def ts(self) -> float:
        return self.ts_ns / 1e9

    @property
    def ethernet(self) -> bool:
        return self.hatype in bpf.ETHERNET_HATYPES

    @property
    def where(self) -> str:
        return f"{self.host}:{self.iface}"


@dataclass
class _NsSocket:
    ns: str
    host: str
    sock: socket.socket
    names: dict[int, str] = field(default_factory=dict)
    mtus: dict[int, int] = field(default_factory=dict)
    hatypes: dict[int, int] = field(default_factory=dict)
    selected: list[int] = field(default_factory=list)  # the captured ifindexes
    promisc: set[int] = field(default_factory=set)  # the ones made promiscuous for this socket
    seq: int = 0


@dataclass(frozen=True)
class Interface:
    """A captured interface, known before any packet arrives (pcapng declares them up front)."""

    ns: str
    host: str
    ifindex: int
    name: str
    hatype: int
    mtu: int | None
    promisc: bool = False  # promiscuous while this capture's socket is open (a bridge)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.name}"


def _interfaces() -> dict[int, str]:
    """ifindex -> name in the calling thread's namespace (if_nameindex asks netlink there)."""
    return {i: n for i, n in socket.if_nameindex()}


def _hatype(sock: socket.socket, name: str) -> int | None:
    """The device's ARPHRD type (``sa_family`` of its hardware address), asked through the
    socket, hence in the socket's namespace."""
    try:
        res = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, struct.pack("16sH14s8x", name.encode(), 0, b""))
        return struct.unpack("16sH14s8x", res)[1]
    except OSError:
        return None


def _driver(sock: socket.socket, name: str) -> str | None:
    """The device's driver name (``ETHTOOL_GDRVINFO``: ``bridge``, ``veth``, ``vxlan``, ``tun``),
    asked through the socket, hence in the socket's namespace. The ioctl's ``ifreq`` carries a
    pointer to the ``ethtool_drvinfo`` the kernel fills in."""
    buf = array.array("B", struct.pack("I", ETHTOOL_GDRVINFO) + bytes(DRVINFO_SIZE - 4))
    ifreq = struct.pack("16sP", name.encode(), buf.buffer_info()[0])
    try:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
    except OSError:
        return None
    return bytes(buf[4:36]).split(b"\0", 1)[0].decode(errors="replace")


def _promiscuous(sock: socket.socket, names: dict[int, str], ifindexes: list[int]) -> set[int]:
    """Make the bridges among ``ifindexes`` promiscuous for as long as ``sock`` is open (see the
    module docstring for why bridges only). ``struct packet_mreq`` is ifindex (int), type (u16),
    address length (u16) and an 8-byte address, unused for ``PACKET_MR_PROMISC``."""
    done: set[int] = set()
    for i in ifindexes:
        if _driver(sock, names[i]) != "bridge":
            continue
        mreq = struct.pack("iHH8s", i, PACKET_MR_PROMISC, 0, b"")
        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        done.add(i)
    return done


def _mtu(sock: socket.socket, name: str) -> int | None:
    try:
        res = fcntl.ioctl(sock.fileno(), SIOCGIFMTU, struct.pack("16si12x", name.encode(), 0))
        return struct.unpack("16si12x", res)[1]
    except OSError:
        return None


class Sniffer:
    """Packet sockets in several namespaces, read together.

    ``targets`` maps namespace -> (host name, interface names or None for all of them). ``expr``
    is a tcpdump expression (``""`` = everything) or a ready program via ``program``. With
    ``promisc`` the captured bridges are promiscuous while the sockets are open, so that their
    taps see the frames they forward too.
    """

    def __init__(self, targets: dict[str, tuple[str, list[str] | None]], expr: str = "",
                 program: bpf.Program | None = None, rcvbuf: int = 4 << 20, promisc: bool = False) -> None:
        base = program if program is not None else bpf.for_expr(expr)
        self.socks: list[_NsSocket] = []
        self.missing: list[str] = []
        self.promisc = promisc
        try:
            for ns, (host, ifaces) in targets.items():
                self._open(ns, host, ifaces, base, rcvbuf)
            #: whether receive timestamps are live, so that frames are ordered as they passed. The
            #: sockets are open first: they keep the kernel's timestamping on once it is.
            self.stamped = receive_stamps_live(self.socks[0].ns) if self.socks else True
            for s in self.socks:  # a capture of lo saw the frames that found that out
                _discard(s.sock)
        except BaseException:
            self.close()
            raise

    def _open(self, ns: str, host: str, ifaces: list[str] | None, base: bpf.Program, rcvbuf: int) -> None:
        if not netns.exists(ns):
            raise NetlabError(f"namespace {ns} does not exist", "is the lab up? see 'netlab status'")
        with netns.entered(ns):
            names = _interfaces()
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)  # root may exceed rmem_max
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUF, rcvbuf)
            prog = base
            wanted = [i for i, n in names.items() if n != "lo"]
            if ifaces is not None:
                by_name = {n: i for i, n in names.items()}
                wanted = []
                for name in ifaces:
                    if name in by_name:
                        wanted.append(by_name[name])
                    else:
                        self.missing.append(f"{host}:{name}")
                if not wanted:
                    sock.close()
                    return
                prog = bpf.only_ifindexes(wanted, base)
            bpf.attach(sock, prog)
            promisc = _promiscuous(sock, names, wanted) if self.promisc else set()
            sock.setblocking(False)
            # The socket was hooked to every device before the filter was attached: whatever it
            # queued in between is unfiltered and older than anything we want.
            _discard(sock)
        except BaseException:
            sock.close()
            raise
        mtus = {i: m for i, n in names.items() if (m := _mtu(sock, n)) is not None}
        hatypes = {i: h for i, n in names.items() if (h := _hatype(sock, n)) is not None}
        self.socks.append(_NsSocket(ns, host, sock, names, mtus, hatypes, sorted(wanted), promisc))

    def interfaces(self) -> list[Interface]:
        """The interfaces being captured, namespace by namespace."""
        return [Interface(s.ns, s.host, i, s.names[i], s.hatypes.get(i, bpf.ARPHRD_ETHER), s.mtus.get(i),
                          i in s.promisc)
                for s in self.socks for i in s.selected]

    def poll_once(self, timeout: float) -> list[Frame]:
        """Whatever is queued after waiting at most ``timeout`` seconds for the first packet."""
        out: list[Frame] = []
        r, _, _ = select.select([s.sock for s in self.socks], [], [], timeout)
        for s in self.socks:
            if s.sock in r:
                out.extend(self._drain(s))
        return out

    def _drain(self, s: _NsSocket) -> Iterator[Frame]:
        while True:
            before = time.time_ns()
            try:
                data, anc, flags, addr = s.sock.recvmsg(bpf.SNAPLEN, 64)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in (errno.ENETDOWN, errno.ENXIO):  # an interface went away under us
                    continue
                raise
            stamp = _stamp(anc)
            late = stamp is None or stamp >= before  # stamped as it was read, not as it passed
            _ifname, _proto, pkttype, hatype, _hw = addr
            # CPython names the interface with an ioctl on this very socket, so the name is
            # resolved in the socket's namespace, not in the one this thread is in.
            ifindex = _ifindex(s, _ifname)
            wirelen = len(data) + (1 if flags & socket.MSG_TRUNC else 0)
            s.seq += 1
            yield Frame(ns=s.ns, host=s.host, iface=_ifname or f"if{ifindex}", ifindex=ifindex,
                        direction="out" if pkttype == PACKET_OUTGOING else "in", pkttype=pkttype,
                        hatype=hatype, ts_ns=before if stamp is None else stamp, data=data, wirelen=wirelen,
                        mtu=s.mtus.get(ifindex), seq=s.seq, stamped_late=late)

    def close(self) -> None:
        """Close every socket. Releasing a packet socket waits for an RCU grace period
        (``synchronize_net``, ~10 ms); closing them from parallel threads shares one."""
        socks, self.socks = self.socks, []

        def _close(s: _NsSocket) -> None:
            try:
                s.sock.close()
            except OSError:
                pass

        if len(socks) <= 1:
            for s in socks:
                _close(s)
            return
        threads = [threading.Thread(target=_close, args=(s,)) for s in socks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def __enter__(self) -> "Sniffer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _discard(sock: socket.socket) -> None:
    """Empty a non-blocking socket's queue."""
    while True:
        try:
            sock.recv(65536)
        except BlockingIOError:
            return


def _ifindex(s: _NsSocket, name: str) -> int:
    for i, n in s.names.items():
        if n == name:
            return i
    return 0


def kernel_order(frames: list[Frame]) -> list[Frame]:
    """Merge per-namespace sequences (exact order) by kernel timestamp (order between namespaces).

    A packet's timestamp is taken when it enters a namespace's receive path and again when it is
    transmitted; a bridge's or VXLAN device's receive inherits the port's/underlay's stamp, so
    within a namespace ties are common and only the socket's arrival order is reliable. Each
    namespace's stamps are made non-decreasing in arrival order before the merge.
    """
    per_ns: dict[str, list[Frame]] = {}
    for f in sorted(frames, key=lambda f: (f.ns, f.seq)):
        per_ns.setdefault(f.ns, []).append(f)
    streams = []
    for i, fs in enumerate(per_ns.values()):
        cur = 0
        keyed = []
        for f in fs:
            cur = max(cur, f.ts_ns)
            keyed.append(((cur, i, f.seq), f))
        streams.append(keyed)
    return [f for _, f in heapq.merge(*streams, key=lambda kf: kf[0])]
