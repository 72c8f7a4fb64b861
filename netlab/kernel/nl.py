"""Netlink, one socket per namespace, through pyroute2.

Two ways to talk:

- :class:`NsLink` wraps a pyroute2 ``IPRoute`` opened *inside* the namespace (in this thread, by
  ``setns``; no helper process is forked). It creates links, which are few, and reads state back.
- :class:`Batch` encodes many small requests (addresses, neighbours, FDB entries, routes) with
  pyroute2's message classes and sends them in one ``sendmsg``. The kernel answers each with an
  ACK that carries an errno; the sequence number maps it back to the plan object. A flannel node
  in a 100-node lab needs ~300 such entries, so this keeps bring-up linear in what the kernel does.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv4Network
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink import NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST
from pyroute2.netlink.rtnl import RTM_NEWADDR, RTM_NEWNEIGH, RTM_NEWROUTE
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from . import netns

AF_BRIDGE = 7
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
RTNH_F_ONLINK = 4
NLMSG_ERROR = 2
SCOPES = {"universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
PROTOS = {"unspec": 0, "redirect": 1, "kernel": 2, "boot": 3, "static": 4, "bird": 12}
RTYPES = {"unicast": 1, "local": 2, "broadcast": 3, "blackhole": 6, "unreachable": 7, "prohibit": 8}
RT_TABLE_MAIN = 254


class NsLink:
    """A pyroute2 IPRoute bound to one namespace, plus a name -> ifindex cache."""

    def __init__(self, ns: str, enter: bool = True) -> None:
        """Open the sockets inside ``ns``; with ``enter=False`` the calling thread is already there."""
        self.ns = ns
        if enter:
            with netns.entered(ns):
                self._open()
        else:
            self._open()
        self.raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.raw.bind((0, 0))
        self._index: dict[str, int] = {}

    def _open(self) -> None:
        self.ipr = IPRoute()
        self.raw = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)

    def index(self, ifname: str) -> int:
        if ifname not in self._index:
            found = self.ipr.link_lookup(ifname=ifname)
            if not found:
                raise LookupError(f"no interface {ifname} in namespace {self.ns}")
            self._index[ifname] = found[0]
        return self._index[ifname]

    def forget(self, ifname: str) -> None:
        self._index.pop(ifname, None)

    def close(self) -> None:
        try:
            self.ipr.close()
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

    def _push(self, obj: Any, msg: Any, mtype: int, flags: int) -> None:
        seq = len(self._objs) + 1
        msg["header"]["type"] = mtype
        msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | flags
        msg["header"]["sequence_number"] = seq
        msg["header"]["pid"] = 0
        msg.encode()
        self._msgs.append(bytes(msg.data))
        self._objs.append(obj)

    def addr(self, obj: Any, dev: str, cidr: str) -> None:
        iface = IPv4Interface(cidr)
        m = ifaddrmsg()
        m["family"] = socket.AF_INET
        m["prefixlen"] = iface.network.prefixlen
        m["index"] = self.link.index(dev)
        m["attrs"] = [("IFA_LOCAL", str(iface.ip)), ("IFA_ADDRESS", str(iface.ip))]
        if iface.network.prefixlen < 31:
            m["attrs"].append(("IFA_BROADCAST", str(iface.network.broadcast_address)))
        self._push(obj, m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL)

    def neigh(self, obj: Any, dev: str, dst: str, lladdr: str) -> None:
        m = ndmsg()
        m["family"] = socket.AF_INET
        m["ifindex"] = self.link.index(dev)
        m["state"] = NUD_PERMANENT
        m["attrs"] = [("NDA_DST", dst), ("NDA_LLADDR", lladdr)]
        # "ip neigh replace": create it, or overwrite whatever the kernel learned.
        self._push(obj, m, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE)

    def fdb(self, obj: Any, dev: str, lladdr: str, dst: str) -> None:
        m = ndmsg()
        m["family"] = AF_BRIDGE
        m["ifindex"] = self.link.index(dev)
        m["state"] = NUD_PERMANENT | NUD_NOARP
        m["flags"] = NTF_SELF
        m["attrs"] = [("NDA_LLADDR", lladdr), ("NDA_DST", dst)]
        # "bridge fdb append": VXLAN keeps a list of remote destinations per MAC.
        self._push(obj, m, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_APPEND)

    def route(self, obj: Any, dst: str, via: str | None, dev: str | None, onlink: bool,
              scope: str | None, rtype: str, proto: str, src: str | None) -> None:
        net = IPv4Network("0.0.0.0/0" if dst == "default" else dst)
        m = rtmsg()
        m["family"] = socket.AF_INET
        m["dst_len"] = net.prefixlen
        m["table"] = RT_TABLE_MAIN
        m["proto"] = PROTOS[proto]
        m["type"] = RTYPES[rtype]
        if scope is None:
            scope = "link" if (via is None and rtype == "unicast") else "universe"
        m["scope"] = SCOPES[scope]
        m["flags"] = RTNH_F_ONLINK if onlink else 0
        attrs: list = [("RTA_TABLE", RT_TABLE_MAIN)]
        if net.prefixlen:
            attrs.append(("RTA_DST", str(net.network_address)))
        if via:
            attrs.append(("RTA_GATEWAY", via))
        if dev:
            attrs.append(("RTA_OIF", self.link.index(dev)))
        if src:
            attrs.append(("RTA_PREFSRC", src))
        m["attrs"] = attrs
        self._push(obj, m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL)

    def __len__(self) -> int:
        return len(self._objs)

    def send(self, chunk_bytes: int = 128 << 10) -> list[tuple[Any, int]]:
        """Send everything; return ``(obj, errno)`` for each request the kernel refused.

        Messages go out in datagrams of up to ``chunk_bytes`` (a netlink message never spans two
        datagrams), and the ACKs of one datagram are read before the next is sent, so the
        socket's receive buffer never overflows however large the batch is.
        """
        failures: list[tuple[Any, int]] = []
        i = 0
        n = len(self._msgs)
        while i < n:
            j, size = i, 0
            while j < n and (j == i or size + len(self._msgs[j]) <= chunk_bytes):
                size += len(self._msgs[j])
                j += 1
            self.link.raw.send(b"".join(self._msgs[i:j]))
            failures += self._read_acks(j - i)
            i = j
        self._msgs = []
        self._objs = []
        return failures

    def _read_acks(self, count: int) -> list[tuple[Any, int]]:
        acked = 0
        failures: list[tuple[Any, int]] = []
        while acked < count:
            chunk = self.link.raw.recv(1 << 20)
            off = 0
            while off + 16 <= len(chunk):
                length, mtype, _flags, seq, _pid = struct.unpack_from("=IHHII", chunk, off)
                if mtype == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", chunk, off + 16)[0]
                    acked += 1
                    if err and 0 < seq <= len(self._objs):
                        failures.append((self._objs[seq - 1], err))
                off += max((length + 3) & ~3, 16)
        return failures


def strerror(err: int) -> str:
    return os.strerror(err)
