"""Bytes -> scapy packet -> a plain list of :class:`Layer` (name, fields, one line of text).

Which first layer: a device's hardware type says whether the bytes start with an Ethernet header
(veth, bridge, VXLAN device: ARPHRD_ETHER) or with a bare IP header (a TUN device such as
flannel0, ARPHRD_NONE; an IPIP device such as tunl0). The TUN's "missing" Ethernet header is the
point of flannel's UDP backend, so it is decoded, not papered over.

What scapy does not bind by itself, decided here per packet and without touching scapy's global
bindings (other code in the same process keeps scapy's defaults). The ports come from the plan's
:class:`~netlab.encap.Encap` (``plan.encap``), the one place a datapath declares them:

- VXLAN on a port a plan configures that scapy does not know (it binds 4789, 4790, 6633, 8472 and
  48879 on either port, so flannel's 8472 and Calico's 4789 already decode);
- IP carried bare in UDP, as flannel's UDP backend does (on 8285 unless ``-o port=`` says
  otherwise; flanneld's proxy sends the inner packet as the whole payload, with no header of its
  own). Recognised by the plan's port, where an IPv4 version nibble is enough (a capture cut
  short or a bad inner checksum still decodes), or on any port by a payload that is a
  well-formed IPv4 header whose length and checksum match;
- a 10-byte ``virtio_net_hdr`` before that IP packet: netlab's opt-in ``flannel-udp -o
  mode=vnet-hdr`` (explicitly *not* flannel's format) forwards the TUN's GSO metadata that way.
  Shown as its own ``VirtioNetHdr`` layer so nobody mistakes it for flannel's wire format.

Trailing payload bytes (the probe's padding, a TCP segment's data) are not a layer: they are
summed up as ``payload``. Everything here is pure and unit-tested on synthetic packets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from scapy.layers.inet import ICMP, IP, TCP, UDP, ICMPerror, IPerror, TCPerror, UDPerror
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vxlan import VXLAN
from scapy.fields import ByteField, LEShortField
from scapy.packet import NoPayload, Packet, Padding, Raw

from ..encap import ETHERNET, Encap

#: What scapy itself binds VXLAN to (scapy/layers/vxlan.py), on either port.
SCAPY_VXLAN_PORTS = frozenset({4789, 4790, 6633, 8472, 48879})

VNET_HDR_LEN = 10
VIRTIO_GSO = {0: "none", 1: "tcpv4", 3: "udp", 4: "tcpv6", 5: "udp_l4"}


class VirtioNetHdr(Packet):
    """``struct virtio_net_hdr`` (TUN with IFF_VNET_HDR, native little-endian). Local class with
    no bindings: only :func:`_fixup` ever builds one."""

    name = "VirtioNetHdr"
    fields_desc = [ByteField("flags", 0), ByteField("gso_type", 0), LEShortField("hdr_len", 0),
                   LEShortField("gso_size", 0), LEShortField("csum_start", 0), LEShortField("csum_offset", 0)]

    def guess_payload_class(self, payload: bytes):
        return IP


ICMP_TYPES = {0: "echo-reply", 3: "dest-unreach", 4: "source-quench", 5: "redirect", 8: "echo-request",
              11: "time-exceeded", 12: "parameter-problem"}
UNREACH_CODES = {0: "net-unreachable", 1: "host-unreachable", 2: "protocol-unreachable", 3: "port-unreachable",
                 4: "fragmentation-needed", 9: "net-prohibited", 10: "host-prohibited", 13: "admin-prohibited"}
ICMP_ERRORS = frozenset({3, 4, 5, 11, 12})


@dataclass
class Layer:
    """One header of a decoded packet. ``quoted`` marks headers inside an ICMP error."""

    name: str
    fields: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    quoted: bool = False

    def as_dict(self) -> dict:
        d: dict[str, Any] = {"name": self.name, "fields": self.fields, "text": self.text}
        if self.quoted:
            d["quoted"] = True
        return d


@dataclass
class Decoded:
    layers: list[Layer]
    payload: int = 0  # bytes after the last header
    pkt: Packet | None = None

    @property
    def names(self) -> list[str]:
        """The layer stack as names, outermost first: ``["Ether", "IP", "UDP", "VXLAN", …]``."""
        return [("quoted " if ly.quoted else "") + ly.name for ly in self.layers]

    @property
    def text(self) -> str:
        return " / ".join(ly.text for ly in self.layers)

    def innermost(self, name: str) -> tuple[int, Layer] | None:
        """Index and layer of the innermost (non-quoted) header called ``name``."""
        for i in range(len(self.layers) - 1, -1, -1):
            if self.layers[i].name == name and not self.layers[i].quoted:
                return i, self.layers[i]
        return None


def _ipv4_checksum_ok(b: bytes) -> bool:
    ihl = (b[0] & 0x0F) * 4
    if ihl < 20 or len(b) < ihl:
        return False
    s = sum(struct.unpack(f"!{ihl // 2}H", b[:ihl]))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s == 0xFFFF


def looks_like_ipv4(b: bytes) -> bool:
    """A well-formed IPv4 header that spans exactly the bytes given (allowing trailing padding)."""
    if len(b) < 20 or b[0] >> 4 != 4 or (b[0] & 0x0F) < 5:
        return False
    total = int.from_bytes(b[2:4], "big")
    return (b[0] & 0x0F) * 4 <= total <= len(b) and _ipv4_checksum_ok(b)


def _fixup(pkt: Packet, vxlan_ports: frozenset[int], ip_ports: frozenset[int]) -> None:
    """Re-dissect UDP payloads scapy left as Raw: VXLAN on plan ports, bare IP (flannel UDP)."""
    layer = pkt
    while not isinstance(layer, NoPayload):
        if isinstance(layer, UDP) and not isinstance(layer, UDPerror) and isinstance(layer.payload, Raw):
            data = bytes(layer.payload)
            ports = {layer.sport, layer.dport}
            new: Packet | None = None
            if ports & vxlan_ports and len(data) >= 8 + 14:
                new = VXLAN(data)
            elif (ports & ip_ports and len(data) >= 20 and data[0] >> 4 == 4) or looks_like_ipv4(data):
                new = IP(data)
            elif (len(data) > VNET_HDR_LEN + 20 and data[0] <= 3 and data[1] & 0x7F in VIRTIO_GSO
                  and looks_like_ipv4(data[VNET_HDR_LEN:])):
                new = VirtioNetHdr(data)
            if new is not None:
                layer.remove_payload()
                layer.add_payload(new)
        layer = layer.payload


def udp_ports(encap: Encap | None) -> tuple[frozenset[int], frozenset[int]]:
    """(VXLAN ports scapy does not bind itself, ports whose payload is a bare IP packet) for a
    plan's encapsulation: a UDP encapsulation carrying Ethernet is VXLAN, one carrying IP is
    flannel's UDP backend. IPIP, or no encapsulation, has no port to know."""
    if encap is None or encap.udp_port is None:
        return frozenset(), frozenset()
    port = frozenset({encap.udp_port})
    if encap.carries == ETHERNET:
        return port - SCAPY_VXLAN_PORTS, frozenset()
    return frozenset(), port


def dissect(data: bytes, ethernet: bool, encap: Encap | None = None) -> Packet:
    pkt = Ether(data) if ethernet else IP(data)
    _fixup(pkt, *udp_ports(encap))
    return pkt


def _icmp_text(t: int, c: int, layer: Packet) -> str:
    name = ICMP_TYPES.get(t, f"type {t}")
    if t in (0, 8):
        return f"ICMP {name} id {layer.id} seq {layer.seq}"
    if t == 3:
        return f"ICMP {name} {UNREACH_CODES.get(c, f'code {c}')}" + (f" mtu {layer.nexthopmtu}" if c == 4 else "")
    return f"ICMP {name} code {c}"


def layer_of(p: Packet, quoted: bool) -> Layer | None:
    q = "quoted " if quoted else ""
    if isinstance(p, Ether):
        return Layer("Ether", {"src": p.src, "dst": p.dst, "type": p.type}, f"Ether {p.src} > {p.dst}", quoted)
    if isinstance(p, (IP, IPerror)):
        flags = str(p.flags)
        f = {"src": p.src, "dst": p.dst, "ttl": p.ttl, "proto": p.proto, "id": p.id, "len": p.len,
             "flags": flags, "frag": p.frag}
        extra = f" ttl {p.ttl}" + (" DF" if "DF" in flags else "") + (f" frag {p.frag * 8}" if p.frag or "MF" in flags else "")
        return Layer("IP", f, f"{q}IP {p.src} > {p.dst}{extra}", quoted)
    if isinstance(p, (UDP, UDPerror)):
        return Layer("UDP", {"sport": p.sport, "dport": p.dport, "len": p.len}, f"{q}UDP {p.sport} > {p.dport}", quoted)
    if isinstance(p, (TCP, TCPerror)):
        flags = str(p.flags)
        return Layer("TCP", {"sport": p.sport, "dport": p.dport, "flags": flags, "seq": p.seq, "ack": p.ack},
                     f"{q}TCP {p.sport} > {p.dport} [{flags}]", quoted)
    if isinstance(p, (ICMP, ICMPerror)):
        f = {"type": p.type, "code": p.code}
        if p.type in (0, 8):
            f.update(id=p.id, seq=p.seq)
        if p.type == 3 and p.code == 4:
            f["mtu"] = p.nexthopmtu
        return Layer("ICMP", f, q + _icmp_text(p.type, p.code, p), quoted)
    if isinstance(p, VXLAN):
        return Layer("VXLAN", {"vni": p.vni, "flags": int(p.flags)}, f"VXLAN vni {p.vni}", quoted)
    if isinstance(p, VirtioNetHdr):
        gso = VIRTIO_GSO.get(p.gso_type & 0x7F, str(p.gso_type))
        return Layer("VirtioNetHdr", {"gso_type": gso, "gso_size": p.gso_size, "flags": p.flags},
                     f"VirtioNetHdr gso {gso}" + (f" size {p.gso_size}" if p.gso_size else ""), quoted)
    if isinstance(p, ARP):
        op = {1: "who-has", 2: "is-at"}.get(p.op, str(p.op))
        return Layer("ARP", {"op": p.op, "psrc": p.psrc, "pdst": p.pdst, "hwsrc": p.hwsrc},
                     f"ARP {op} {p.pdst} tell {p.psrc}" if p.op == 1 else f"ARP {p.psrc} is-at {p.hwsrc}", quoted)
    return None


def layers(pkt: Packet) -> Decoded:
    out: list[Layer] = []
    payload = 0
    quoted = False
    cur: Packet = pkt
    while not isinstance(cur, NoPayload):
        if isinstance(cur, (Raw, Padding)):
            payload += len(bytes(cur)) if isinstance(cur, Raw) else 0
            cur = cur.payload
            continue
        if isinstance(cur, IPerror):
            quoted = True
        lay = layer_of(cur, quoted)
        if lay is None:
            lay = Layer(type(cur).__name__, {}, type(cur).__name__, quoted)
        out.append(lay)
        cur = cur.payload
    return Decoded(out, payload, pkt)


def decode(data: bytes, ethernet: bool, encap: Encap | None = None) -> Decoded:
    """Decode one captured packet; never raises (an undecodable packet is one ``Raw`` layer).

    ``encap`` is the plan's (:attr:`netlab.plan.Plan.encap`): which UDP port carries VXLAN or a
    bare IP packet in this lab. Without it only scapy's own bindings and the shape of a payload
    decide."""
    try:
        return layers(dissect(data, ethernet, encap))
    except Exception as e:  # scapy raises assorted errors on truncated/odd input
        return Decoded([Layer("Raw", {"len": len(data), "error": str(e)}, f"Raw {len(data)} B (undecodable)")])
