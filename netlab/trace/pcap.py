"""pcap and pcapng writers, small enough to read, with the link types Wireshark expects.

The link type is what tells Wireshark/tshark how to start dissecting: ``LINKTYPE_ETHERNET`` (1)
for veth, bridge and VXLAN devices, ``LINKTYPE_RAW`` (101, "the packet begins with an IPv4 or
IPv6 header") for a TUN device such as flannel0 or an IPIP device such as tunl0. Writing a TUN
capture as Ethernet would make Wireshark read the IP header as MAC addresses.

- classic pcap (one interface): nanosecond-resolution magic ``0xa1b23c4d``, so hop-to-hop
  latencies of a few microseconds survive;
- pcapng (any number of interfaces): one Interface Description Block per interface, named
  ``host:iface`` (``if_name``) with the namespace as ``if_description`` and ``if_tsresol`` = 9
  (nanoseconds); each Enhanced Packet Block carries the direction in ``epb_flags`` (inbound or
  outbound), and a comment when the frame is a GSO super-frame.

Both are plain little-endian files written as packets arrive (flushed per packet, so Ctrl-C or a
kill leaves a readable file).
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from . import bpf

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
PCAP_MAGIC_NS = 0xA1B23C4D

SHB, IDB, EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_END, OPT_COMMENT = 0, 1
IF_NAME, IF_DESCRIPTION, IF_TSRESOL = 2, 3, 9
EPB_FLAGS = 2
EPB_INBOUND, EPB_OUTBOUND = 1, 2


def linktype(hatype: int) -> int:
    """The pcap link type for a device's ARPHRD hardware type."""
    return LINKTYPE_ETHERNET if hatype in bpf.ETHERNET_HATYPES else LINKTYPE_RAW


class PcapWriter:
    """Classic pcap: one link type, so one interface."""

    def __init__(self, f: BinaryIO, link: int, snaplen: int = bpf.SNAPLEN) -> None:
        self.f = f
        f.write(struct.pack("<IHHiIII", PCAP_MAGIC_NS, 2, 4, 0, 0, snaplen, link))
        f.flush()

    def write(self, ts_ns: int, data: bytes, wirelen: int | None = None) -> None:
        sec, nsec = divmod(ts_ns, 1_000_000_000)
        self.f.write(struct.pack("<IIII", sec, nsec, len(data), wirelen or len(data)) + data)
        self.f.flush()


def _opt(code: int, value: bytes) -> bytes:
    pad = (-len(value)) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\0" * pad


def _block(btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


class PcapngWriter:
    """pcapng: one section, interfaces added as they are declared, packets tagged by interface."""

    def __init__(self, f: BinaryIO, app: str = "netlab capture") -> None:
        self.f = f
        self.ifaces: dict[object, int] = {}
        body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + _opt(4, app.encode()) + _opt(OPT_END, b"")
        f.write(_block(SHB, body))  # option 4 = shb_userappl
        f.flush()

    def add_interface(self, key: object, name: str, link: int, description: str = "",
                      snaplen: int = bpf.SNAPLEN) -> int:
        if key in self.ifaces:
            return self.ifaces[key]
        opts = _opt(IF_NAME, name.encode()) + (_opt(IF_DESCRIPTION, description.encode()) if description else b"")
        opts += _opt(IF_TSRESOL, bytes([9])) + _opt(OPT_END, b"")
        self.f.write(_block(IDB, struct.pack("<HHI", link, 0, snaplen) + opts))
        self.ifaces[key] = len(self.ifaces)
        return self.ifaces[key]

    def write(self, key: object, ts_ns: int, data: bytes, wirelen: int | None = None, direction: str | None = None,
              comment: str | None = None) -> None:
        idx = self.ifaces[key]
        hi, lo = ts_ns >> 32, ts_ns & 0xFFFFFFFF
        pad = (-len(data)) % 4
        opts = b""
        if direction in ("in", "out"):
            opts += _opt(EPB_FLAGS, struct.pack("<I", EPB_INBOUND if direction == "in" else EPB_OUTBOUND))
        if comment:
            opts += _opt(OPT_COMMENT, comment.encode())
        if opts:
            opts += _opt(OPT_END, b"")
        body = struct.pack("<IIIII", idx, hi, lo, len(data), wirelen or len(data)) + data + b"\0" * pad + opts
        self.f.write(_block(EPB, body))
        self.f.flush()
