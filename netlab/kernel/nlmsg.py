"""A small rtnetlink encoder for the messages netlab sends in bulk.

pyroute2 encodes a message in 100-500 µs of Python; a 100-node flannel lab needs ~30,000
neighbour, FDB and route entries, so the encoding alone would cost several seconds while the
kernel needs about one. The handful of fixed-layout messages netlab sends in bulk (link
add/set, address, neighbour, FDB, route) are therefore packed here with :mod:`struct`, in
the kernel's own layouts (``include/uapi/linux/rtnetlink.h``, ``if_link.h``, ``neighbour.h``).
pyroute2 stays in charge of everything it is good at (reading state back, probing, decoding),
and the unit tests decode every message built here with pyroute2's parsers to prove the two agree.

A netlink message is a 16-byte ``nlmsghdr`` (length, type, flags, sequence, port id), a
family-specific fixed header, then attributes: each a 4-byte ``rtattr`` (length, type) followed
by its payload, padded to 4 bytes. Nested attributes are attributes whose payload is attributes.
"""

from __future__ import annotations

import functools
import socket
import struct
from typing import Any

# message types
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
RTM_NEWNEIGH = 28
# flags
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE, NLM_F_APPEND = 0x100, 0x200, 0x400, 0x800
NLMSG_ERROR, NLMSG_DONE = 2, 3
# link attributes
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_TXQLEN = 1, 3, 4, 10, 13
IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD = 18, 20, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA = 1, 2, 4, 5
VETH_INFO_PEER = 1
IFF_UP = 0x1
# address, neighbour, route attributes
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
NDA_DST, NDA_LLADDR = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 7, 15
AF_BRIDGE = 7


#: The pure encoders of the bulk entries are memoized: a 1,000-node VXLAN lab sends three
#: million neighbours, FDB entries and routes that repeat a few thousand distinct addresses,
#: MACs and headers, and packing each anew was a third of the entries phase.
memo = functools.lru_cache(maxsize=1 << 16)


def attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def nest(kind: int, *attrs: bytes) -> bytes:
    return attr(kind, b"".join(attrs))


def u8(kind: int, v: int) -> bytes:
    return attr(kind, struct.pack("=B", v))


@memo
def u32(kind: int, v: int) -> bytes:
    return attr(kind, struct.pack("=I", v))


def be16(kind: int, v: int) -> bytes:
    return attr(kind, struct.pack("!H", v))


def string(kind: int, s: str) -> bytes:
    return attr(kind, s.encode() + b"\0")


@memo
def ipv4(kind: int, ip: str) -> bytes:
    return attr(kind, socket.inet_aton(ip))


@memo
def lladdr(kind: int, mac: str) -> bytes:
    return attr(kind, bytes.fromhex(mac.replace(":", "")))


NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, seq, pid


def header(mtype: int, flags: int, seq: int, body: bytes) -> bytes:
    return NLMSGHDR.pack(16 + len(body), mtype, flags, seq, 0) + body


def ifinfomsg(index: int = 0, flags: int = 0, change: int = 0, family: int = socket.AF_UNSPEC) -> bytes:
    return struct.pack("=BxHiII", family, 0, index, flags, change)


@memo
def ifaddrmsg(prefixlen: int, index: int, scope: int = 0) -> bytes:
    return struct.pack("=BBBBI", socket.AF_INET, prefixlen, 0, scope, index)


@memo
def ndmsg(family: int, ifindex: int, state: int, flags: int = 0) -> bytes:
    return struct.pack("=BxxxiHBB", family, ifindex, state, flags, 0)


@memo
def rtmsg(dst_len: int, table: int, proto: int, scope: int, rtype: int, flags: int) -> bytes:
    return struct.pack("=BBBBBBBBI", socket.AF_INET, dst_len, 0, 0, table, proto, scope, rtype, flags)


def link_attrs(name: str | None = None, mtu: int | None = None, mac: str | None = None,
               master: int | None = None, txqlen: int | None = None) -> bytes:
    """IFLA_IFNAME, IFLA_MTU, IFLA_ADDRESS, IFLA_MASTER and IFLA_TXQLEN, each only when given.

    ``txqlen`` is tested against None, not for truth: 0 is the value Docker and the CNI plugins
    ask for (the Go netlink library sends IFLA_TXQLEN whenever ``TxQLen >= 0``), and the kernel
    applies it at creation (``rtnl_create_link``) instead of its default of 1000."""
    out = b""
    if name:
        out += string(IFLA_IFNAME, name)
    if mtu:
        out += u32(IFLA_MTU, mtu)
    if mac:
        out += lladdr(IFLA_ADDRESS, mac)
    if master:
        out += u32(IFLA_MASTER, master)
    if txqlen is not None:
        out += u32(IFLA_TXQLEN, txqlen)
    return out


def parse_attrs(data: bytes, off: int = 0) -> dict[int, bytes]:
    """Top-level attributes of a message body (first occurrence of each type wins)."""
    out: dict[int, bytes] = {}
    while off + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, off)
        if length < 4:
            break
        out.setdefault(kind & 0x3FFF, data[off + 4: off + length])
        off += (length + 3) & ~3
    return out


# -- attributes by name: the numbers and wire types of pyroute2's nla_map ----------------------------
# A plan kind names each netlink attribute the way pyroute2 does (``IFLA_VXLAN_PORT``). pyroute2's
# tables already hold every attribute's number (its position) and wire type, so netlab does not
# keep a second copy of them: it looks them up once and packs the value with struct as above.

def u16(kind: int, v: int) -> bytes:
    return attr(kind, struct.pack("=H", v))


_WIRE = {"uint8": u8, "uint16": u16, "uint32": u32, "be16": be16, "ip4addr": ipv4, "l2addr": lladdr,
         "asciiz": string}
_NLA: dict[tuple[str, str, str | None], tuple[int, Any]] = {}


def _nla_owner(where: str, kind: str | None) -> Any:
    """The pyroute2 class whose ``nla_map`` declares the attributes of ``where``."""
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    if where == "link":
        return ifinfmsg
    return ifinfmsg.ifinfo.data_map["bridge_slave" if where == "brport" else kind]


def _scalar(owner: Any, wire: str) -> Any:
    """An encoder for one of pyroute2's own one-value attribute classes (a macvlan's ``mode``:
    a u32 with a ``value_map`` from numbers to names), so a plan may say ``mode="bridge"``."""
    cls = getattr(owner, wire, None)
    fields = getattr(cls, "fields", None)
    if not fields or len(fields) != 1 or fields[0][0] != "value":
        return None
    fmt = "=" + fields[0][1]
    by_name = {name: num for num, name in (getattr(cls, "value_map", None) or {}).items()}
    return lambda kind, v: attr(kind, struct.pack(fmt, by_name.get(v, v)))


def _lookup(name: str | None, where: str, kind: str | None) -> tuple[int, Any, str]:
    """(number, the pyroute2 class that declares it, wire type) of attribute ``name``: a top-level
    IFLA_* (``where="link"``), one inside link ``kind``'s IFLA_INFO_DATA (``"data"``) or a bridge
    port's (``"brport"``)."""
    if name is None:
        raise TypeError("this field declares no netlink attribute")
    owner = _nla_owner(where, kind)
    for i, entry in enumerate(owner.nla_map):
        num, nla_name, wire = (entry if len(entry) == 3 else (i, *entry))
        if nla_name == name:
            return num, owner, wire
    raise KeyError(f"pyroute2 knows no netlink attribute {name} ({where} of {kind})")


def nla(name: str | None, where: str = "link", kind: str | None = None) -> tuple[int, Any]:
    """(number, encoder) of attribute ``name`` (see :func:`_lookup`)."""
    key = (name or "", where, kind)
    if key not in _NLA:
        num, owner, wire = _lookup(name, where, kind)
        enc = _WIRE.get(wire) or _scalar(owner, wire)
        if enc is None:
            raise TypeError(f"{name}: netlab has no encoder for pyroute2's wire type {wire!r}")
        _NLA[key] = (num, enc)
    return _NLA[key]


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


_READ = {"uint8": lambda b: b[0], "uint16": lambda b: struct.unpack("=H", b[:2])[0],
         "uint32": lambda b: struct.unpack("=I", b[:4])[0], "be16": lambda b: struct.unpack("!H", b[:2])[0],
         "ip4addr": socket.inet_ntoa, "l2addr": _mac, "asciiz": lambda b: b.rstrip(b"\0").decode()}
_DEC: dict[tuple[str, str, str | None], tuple[int, Any]] = {}


def _scalar_reader(owner: Any, wire: str) -> Any:
    cls = getattr(owner, wire, None)
    fields = getattr(cls, "fields", None)
    if not fields or len(fields) != 1 or fields[0][0] != "value":
        return None
    fmt = "=" + fields[0][1]
    names = getattr(cls, "value_map", None) or {}
    return lambda b: (lambda v: names.get(v, v))(struct.unpack(fmt, b[:struct.calcsize(fmt)])[0])


def decoder(name: str | None, where: str = "link", kind: str | None = None) -> tuple[int, Any]:
    """(number, decoder) of attribute ``name``, the reading twin of :func:`nla`: verify reads back
    with the same declaration apply encodes with."""
    key = (name or "", where, kind)
    if key not in _DEC:
        num, owner, wire = _lookup(name, where, kind)
        dec = _READ.get(wire) or _scalar_reader(owner, wire)
        if dec is None:
            raise TypeError(f"{name}: netlab has no decoder for pyroute2's wire type {wire!r}")
        _DEC[key] = (num, dec)
    return _DEC[key]


def encode(name: str | None, value: Any, where: str = "link", kind: str | None = None) -> bytes:
    """One attribute, by name; a bool is sent as 0 or 1."""
    num, enc = nla(name, where, kind)
    return enc(num, int(value) if isinstance(value, bool) else value)
