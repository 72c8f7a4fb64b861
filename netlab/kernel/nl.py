"""Netlink, one socket per namespace.

:class:`NsLink` holds a raw rtnetlink socket opened *inside* its namespace (this thread enters
the namespace with ``setns``, opens the socket, and leaves; the socket stays bound to the
namespace). No helper process is forked, unlike pyroute2's ``IPRoute(netns=…)``.

:class:`Batch` collects requests for one namespace (encoded by :mod:`.nlmsg`) and sends them in
as few datagrams as possible. The kernel processes them in order and answers each with an ACK
carrying an errno; the sequence number maps a refusal back to the plan object that caused it.

For reading state back (``status``), :attr:`NsLink.ipr` opens a pyroute2 ``IPRoute`` in the same
namespace on first use.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Interface
from typing import Any, Iterator

from ..spec import ends_of
from . import netns, nldump
from .nlmsg import (AF_BRIDGE, IFA_ADDRESS, IFA_BROADCAST, IFA_LOCAL, IFF_UP, IFLA_IFALIAS, IFLA_IFNAME,
                    IFLA_INFO_DATA, IFLA_INFO_KIND, IFLA_INFO_SLAVE_DATA, IFLA_INFO_SLAVE_KIND, IFLA_LINKINFO,
                    IFLA_NET_NS_FD, NDA_DST, NDA_LLADDR, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL,
                    NLM_F_REPLACE, NLM_F_REQUEST, NLMSG_ERROR, RTA_DST, RTA_GATEWAY, RTA_OIF,
                    RTA_PREFSRC, RTA_TABLE, RTM_GETLINK, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWNEIGH, RTM_NEWROUTE,
                    NLMSGHDR, VETH_INFO_PEER, attr, header, ifaddrmsg, ifinfomsg, ipv4, link_attrs, lladdr, ndmsg,
                    memo, nest, parse_attrs, rtmsg, string, u32)

NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NUD = {"incomplete": 0x01, "reachable": 0x02, "stale": 0x04, "delay": 0x08, "probe": 0x10, "failed": 0x20,
       "noarp": NUD_NOARP, "permanent": NUD_PERMANENT}
NTF_SELF = 0x02
RTNH_F_ONLINK = 4
SCOPES = {"universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
PROTOS = {"unspec": 0, "redirect": 1, "kernel": 2, "boot": 3, "static": 4, "bird": 12}
RTYPES = {"unicast": 1, "local": 2, "broadcast": 3, "blackhole": 6, "unreachable": 7, "prohibit": 8}
RT_TABLE_MAIN = 254


class NsLink:
    """A raw rtnetlink socket bound to one namespace, a name -> ifindex cache, and a lazily
    opened pyroute2 ``IPRoute`` for reading."""

    def __init__(self, ns: str, enter: bool = True) -> None:
        """Open the socket inside ``ns``; with ``enter=False`` the calling thread is already there."""
        self.ns = ns
        if enter:
            with netns.entered(ns):
                self.raw = self._socket()
        else:
            self.raw = self._socket()
        self._index: dict[str, int] = {}
        self._ipr = None

    @staticmethod
    def _socket() -> socket.socket:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind((0, 0))
        return s

    @property
    def ipr(self):
        if self._ipr is None:
            from pyroute2 import IPRoute

            with netns.entered(self.ns):
                self._ipr = IPRoute()
        return self._ipr

    def index(self, ifname: str) -> int:
        """The ifindex of ``ifname`` in this namespace. A name not seen yet refreshes the cache
        with one RTM_GETLINK dump on this socket: every link of the namespace in one answer,
        without entering the namespace (``if_nametoindex`` needs a socket opened inside it). It
        can run on the encoding thread of :func:`netlab.kernel.apply.pipelined`, which only
        uses a namespace's socket before that namespace's batch is handed over."""
        if ifname not in self._index:
            for hdr, attrs in nldump.dump(self.raw, nldump.RTM_GETLINK, attrs=nldump.ifname_first):
                name = attrs.get(IFLA_IFNAME)
                if name:
                    self._index[name.rstrip(b"\0").decode()] = hdr[2]
            if ifname not in self._index:
                raise LookupError(f"no interface {ifname} in namespace {self.ns}")
        return self._index[ifname]

    def ifalias(self, index: int = 1) -> str | None:
        """IFLA_IFALIAS of link ``index`` (netlab's ownership marker lives on lo)."""
        self.raw.send(header(RTM_GETLINK, NLM_F_REQUEST, 1, ifinfomsg(index=index)))
        data = self.raw.recv(65536)
        length, mtype = struct.unpack_from("=IH", data, 0)
        if mtype != RTM_NEWLINK:
            return None
        alias = parse_attrs(data[:length], 32).get(IFLA_IFALIAS)
        return alias.rstrip(b"\0").decode() if alias else None

    def close(self) -> None:
        try:
            if self._ipr is not None:
                self._ipr.close()
        finally:
            self.raw.close()

    def __enter__(self) -> "NsLink":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class Batch:
    """Netlink requests for one namespace, sent together, each acknowledged separately."""

    link: NsLink
    _msgs: list = field(default_factory=list)
    _objs: list = field(default_factory=list)
    _fds: list = field(default_factory=list)

    def _push(self, obj: Any, mtype: int, flags: int, body: bytes) -> None:
        # No NLM_F_ACK: the kernel reports failures anyway, and success needs no answer. Only the
        # last message of each datagram asks for an ACK, which tells us the kernel is done with
        # all the messages before it (it processes them in order).
        self._msgs.append(header(mtype, NLM_F_REQUEST | flags, len(self._objs) + 1, body))
        self._objs.append(obj)

    # -- links ------------------------------------------------------------------------------------
    def set_lo(self, obj: Any, alias: str) -> None:
        """``ip link set lo up alias <marker>``."""
        self._push(obj, RTM_NEWLINK, 0, ifinfomsg(index=1, flags=IFF_UP, change=IFF_UP) + string(IFLA_IFALIAS, alias))

    def link_new(self, obj: Any, kind: str, attrs: bytes, data: bytes = b"", up: bool = True) -> None:
        """``ip link add … type KIND …``: ``attrs`` are the top-level IFLA_* (IFLA_IFNAME first),
        ``data`` the kind's own IFLA_INFO_DATA. A MAC given here is set at creation
        (addr_assign_type NET_ADDR_SET), so a bridge keeps it instead of taking the lowest MAC
        of its ports as they join."""
        info = string(IFLA_INFO_KIND, kind) + (nest(IFLA_INFO_DATA, data) if data else b"")
        body = ifinfomsg(index=self.new_index(obj.ns, obj.name), flags=IFF_UP if up else 0,
                         change=IFF_UP) + attrs + nest(IFLA_LINKINFO, info)
        self._push(obj, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def veth_new(self, obj: Any, attrs: bytes, peer_attrs: bytes, peer_ns: str) -> None:
        """A veth pair born with its peer in ``peer_ns`` (IFLA_NET_NS_FD in the peer's ifinfomsg).

        This end comes up at once; the peer cannot (the kernel configures it before the two ends
        know each other, and ``veth_open`` then fails with ENOTCONN), so it is raised afterwards."""
        a, b = ends_of(obj)
        # the peer's namespace fd is the message's last four bytes (see peer_fd)
        peer = ifinfomsg(index=self.new_index(b.ns, b.name)) + peer_attrs + u32(IFLA_NET_NS_FD, self.peer_fd(peer_ns))
        body = ifinfomsg(index=self.new_index(a.ns, a.name), flags=IFF_UP, change=IFF_UP) + attrs + nest(
            IFLA_LINKINFO, string(IFLA_INFO_KIND, "veth"), nest(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer)))
        self._push(obj, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def new_index(self, ns: str, name: str) -> int:
        """The ifindex a new link asks for: 0, the kernel's choice. (The bring-up floor of
        benchmarks/floor.py chooses them itself, so that it never has to look one up.)"""
        return 0

    def peer_fd(self, peer_ns: str) -> int:
        """An fd of the namespace a veth's peer is born in, open until the batch is sent."""
        fd = os.open(netns.path(peer_ns), os.O_RDONLY | os.O_CLOEXEC)
        self._fds.append(fd)
        return fd

    def link_set(self, obj: Any, index: int, up: bool = True, mtu: int | None = None, master: int | None = None) -> None:
        body = ifinfomsg(index=index, flags=IFF_UP if up else 0, change=IFF_UP) + link_attrs(None, mtu, None, master)
        self._push(obj, RTM_NEWLINK, 0, body)

    def brport(self, obj: Any, index: int, data: bytes) -> None:
        """Bridge-port flags (``bridge link set dev X hairpin on``): IFLA_INFO_SLAVE_DATA."""
        body = ifinfomsg(index=index) + nest(IFLA_LINKINFO, string(IFLA_INFO_SLAVE_KIND, "bridge"),
                                             nest(IFLA_INFO_SLAVE_DATA, data))
        self._push(obj, RTM_NEWLINK, 0, body)

    # -- addresses, neighbours, routes --------------------------------------------------------------
    def addr(self, obj: Any, dev: str, cidr: str) -> None:
        iface = IPv4Interface(cidr)
        body = ifaddrmsg(iface.network.prefixlen, self.link.index(dev)) + ipv4(IFA_LOCAL, str(iface.ip)) + ipv4(
            IFA_ADDRESS, str(iface.ip))
        if iface.network.prefixlen < 31:
            body += ipv4(IFA_BROADCAST, str(iface.network.broadcast_address))
        self._push(obj, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)

    def neigh(self, obj: Any, dev: str, dst: str, mac: str, state: str = "permanent") -> None:
        """``ip neigh replace DST lladdr MAC dev DEV nud STATE`` (netlab plans permanent ones)."""
        self._push(obj, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, _neigh_body(self.link.index(dev), dst, mac, state))

    def fdb(self, obj: Any, dev: str, mac: str, dst: str) -> None:
        """``bridge fdb append MAC dev DEV dst IP self permanent`` (VXLAN keeps a list per MAC)."""
        self._push(obj, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_APPEND, _fdb_body(self.link.index(dev), mac, dst))

    def route(self, obj: Any, dst: str, via: str | None, dev: str | None, onlink: bool,
              scope: str | None, rtype: str, proto: str, src: str | None) -> None:
        oif = self.link.index(dev) if dev else 0
        self._push(obj, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, _route_body(dst, via, oif, onlink, scope, rtype, proto, src))

    # -- sending --------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._objs)

    def messages(self) -> list[bytes]:
        return list(self._msgs)

    def send(self, chunk_bytes: int = 128 << 10) -> list[tuple[Any, int]]:
        """Send everything; return ``(obj, errno)`` for each request the kernel refused.

        Messages go out in datagrams of up to ``chunk_bytes`` (a netlink message never spans two
        datagrams), and the ACKs of one datagram are read before the next is sent, so the
        socket's receive buffer never overflows however large the batch is.
        """
        failures: list[tuple[Any, int]] = []
        try:
            for i, j in chunks(self._msgs, chunk_bytes):
                self.link.raw.send(b"".join(self._msgs[i:j - 1]) + acked(self._msgs[j - 1]))
                failures += [(self._objs[seq - 1], err) for seq, err in read_acks(self.link.raw, j)
                             if 0 < seq <= len(self._objs)]
        finally:
            for fd in self._fds:
                os.close(fd)
            self._msgs, self._objs, self._fds = [], [], []
        return failures


# Message bodies, memoized: every node of a lab holds the same entries for a given remote node
# (its VTEP's neighbour and FDB entry, the route to its subnet) on a device with the same ifindex
# in each namespace, so a 100-node VXLAN lab's 29,700 entries have about 300 distinct bodies.
# Encoding them took 74 ms before and 45 ms after (encode.entry over that plan, best of 5).

@memo
def _neigh_body(index: int, dst: str, mac: str, state: str) -> bytes:
    return ndmsg(socket.AF_INET, index, NUD[state]) + ipv4(NDA_DST, dst) + lladdr(NDA_LLADDR, mac)


@memo
def _fdb_body(index: int, mac: str, dst: str) -> bytes:
    return ndmsg(AF_BRIDGE, index, NUD_PERMANENT | NUD_NOARP, NTF_SELF) + lladdr(NDA_LLADDR, mac) + ipv4(NDA_DST, dst)


@memo
def _route_body(dst: str, via: str | None, oif: int, onlink: bool, scope: str | None, rtype: str, proto: str,
                src: str | None) -> bytes:
    addr, _, plen = ("0.0.0.0/0" if dst == "default" else dst).partition("/")
    prefixlen = int(plen or 32)
    if scope is None:  # what `ip route add` picks: link scope for a gatewayless unicast route
        scope = "link" if (via is None and rtype == "unicast") else "universe"
    body = rtmsg(prefixlen, RT_TABLE_MAIN, PROTOS[proto], SCOPES[scope], RTYPES[rtype],
                 RTNH_F_ONLINK if onlink else 0) + u32(RTA_TABLE, RT_TABLE_MAIN)
    if prefixlen:
        body += ipv4(RTA_DST, addr)
    if via:
        body += ipv4(RTA_GATEWAY, via)
    if oif:
        body += u32(RTA_OIF, oif)
    if src:
        body += ipv4(RTA_PREFSRC, src)
    return body


def chunks(msgs: list[bytes], chunk_bytes: int) -> Iterator[tuple[int, int]]:
    """Cut a list of netlink messages into datagrams of at most ``chunk_bytes`` (a message never
    spans two, and one larger than ``chunk_bytes`` goes alone): (start, end) index pairs."""
    i, n = 0, len(msgs)
    while i < n:
        j, size = i, 0
        while j < n and (j == i or size + len(msgs[j]) <= chunk_bytes):
            size += len(msgs[j])
            j += 1
        yield i, j
        i = j


def acked(msg: bytes) -> bytes:
    """The message with NLM_F_ACK set: the last of each datagram asks for the answer that says
    the kernel is done with the whole datagram (it processes the messages in order)."""
    last = bytearray(msg)
    struct.pack_into("=H", last, 6, struct.unpack_from("=H", last, 6)[0] | NLM_F_ACK)
    return bytes(last)


def read_acks(sock: socket.socket, last_seq: int) -> list[tuple[int, int]]:
    """Read answers until the one to message ``last_seq`` arrives; returns (seq, errno) for
    each message the kernel refused."""
    failures: list[tuple[int, int]] = []
    while True:
        chunk = sock.recv(1 << 20)
        off = 0
        done = False
        while off + 16 <= len(chunk):
            length, mtype, _flags, seq, _pid = NLMSGHDR.unpack_from(chunk, off)
            if mtype == NLMSG_ERROR:
                err = -struct.unpack_from("=i", chunk, off + 16)[0]
                if err:
                    failures.append((seq, err))
                done = done or seq == last_seq
            off += max((length + 3) & ~3, 16)
        if done:
            return failures
