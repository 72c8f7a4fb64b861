"""The probe: one packet netlab builds, sends from the source namespace, and recognises everywhere.

Recognising the probe after NAT and inside tunnels is what the kernel filter has to do, so the
probe carries marks that survive both:

- its **IP id** (random): NAT rewrites addresses and ports, never the id, and every encapsulation
  here (VXLAN, flannel's UDP proxy, IPIP) carries the inner header unchanged except for its TTL;
- a random 4-byte **magic** at the start of the ICMP/UDP payload, which an echo reply or an
  echoing server sends back unchanged;
- for TCP, a random **initial sequence number**: the SYN carries it and the SYN-ACK or RST that
  answers acknowledges it + 1.

ICMP errors about the probe (port unreachable, fragmentation needed, time exceeded, flannel's
net-unreachable) quote its IP header, id included, so they match too.

The same test is compiled for the packet as it is (plain), for the packet inside UDP with no
header of its own (flannel UDP: inner IP right after the UDP header), inside VXLAN (UDP, 8-byte
VXLAN header with the I flag, inner Ethernet carrying IPv4) and inside IPIP. The encapsulated
forms are recognised by their shape, not by port numbers, so a datapath on another port needs no
change here. Offsets assume 20-byte inner IP headers, which the probe and every header a
datapath wraps around it have.

The probe is sent through a raw socket (``IPPROTO_RAW``, i.e. ``IP_HDRINCL``) created inside the
source namespace: the kernel routes it with the namespace's own table and does not touch the
header netlab built. DF is set (as ``ping -M do``), so a probe larger than a link's MTU shows
where it stops instead of being fragmented.
"""

from __future__ import annotations

import errno
import random
import socket
from dataclasses import dataclass, field
from typing import Callable, ClassVar

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.packet import Raw

from ..kernel import netns
from .decode import ICMP_ERRORS, Decoded, Layer

PROTOS = ("icmp", "tcp", "udp")
IPPROTO = {"icmp": 1, "tcp": 6, "udp": 17}
HEADER = {"icmp": 8, "tcp": 20, "udp": 8}


@dataclass
class Probe:
    proto: str
    src: str
    dst: str
    port: int | None = None  # destination port (tcp/udp)
    size: int = 56  # payload bytes after the ICMP/UDP/TCP header, as ping -s counts them
    ttl: int = 64
    ip_id: int = field(default_factory=lambda: random.randint(1, 0xFFFF))
    magic: int = field(default_factory=lambda: random.randint(0x10000000, 0xFFFFFFFF))
    sport: int = field(default_factory=lambda: random.randint(33000, 60999))
    icmp_id: int = field(default_factory=lambda: random.randint(1, 0xFFFF))
    isn: int = field(default_factory=lambda: random.randint(1, 0xFFFFFFF0))

    def __post_init__(self) -> None:
        if self.proto not in PROTOS:
            raise ValueError(self.proto)
        if self.proto == "udp" and self.size < 4:
            self.size = 4
        if self.proto == "icmp" and self.size < 4:
            self.size = 4

    @property
    def payload(self) -> bytes:
        if self.proto == "tcp":  # a SYN normally carries nothing; --size adds data to it
            return b"" if self.size <= 0 else (self.magic.to_bytes(4, "big") + b"N" * self.size)[: self.size]
        body = b"netlab-trace-probe-" * (self.size // 19 + 1)
        return self.magic.to_bytes(4, "big") + body[: self.size - 4]

    def packet(self) -> IP:
        ip = IP(src=self.src, dst=self.dst, id=self.ip_id, ttl=self.ttl, flags="DF")
        if self.proto == "icmp":
            return ip / ICMP(type=8, id=self.icmp_id, seq=1) / Raw(self.payload)
        if self.proto == "udp":
            return ip / UDP(sport=self.sport, dport=self.port or 33434) / Raw(self.payload)
        pkt = ip / TCP(sport=self.sport, dport=self.port or 80, flags="S", seq=self.isn, window=64240,
                       options=[("MSS", 1460)])
        if self.size > 0:
            pkt = pkt / Raw(self.payload)
        return pkt

    @property
    def length(self) -> int:
        return len(bytes(self.packet()))

    # ---- the kernel filter ---------------------------------------------------------------------

    def _match(self, acc: str, base: int) -> str:
        """The probe test with the (inner) IPv4 header at ``acc[base]`` (acc: ``ip`` or ``udp``)."""
        l4 = base + 20
        errors = " or ".join(f"{acc}[{l4}] = {t}" for t in sorted(ICMP_ERRORS))
        quoted = f"({acc}[{base + 9}] = 1 and ({errors}) and {acc}[{l4 + 8 + 4}:2] = {self.ip_id})"
        if self.proto == "icmp":
            own = (f"({acc}[{base + 9}] = 1 and ({acc}[{l4}] = 8 or {acc}[{l4}] = 0) "
                   f"and {acc}[{l4 + 8}:4] = {self.magic})")
        elif self.proto == "udp":
            own = f"({acc}[{base + 9}] = 17 and {acc}[{l4 + 8}:4] = {self.magic})"
        else:
            own = (f"({acc}[{base + 9}] = 6 and ({acc}[{l4 + 4}:4] = {self.isn} "
                   f"or {acc}[{l4 + 8}:4] = {(self.isn + 1) & 0xFFFFFFFF}))")
        shape = f"{acc}[{base}] = 0x45 and " if base else ""
        return f"({shape}({own} or {quoted}))"

    def bpf(self) -> str:
        """A tcpdump expression matching the probe, its answers, and ICMP errors about it, whether
        bare, in UDP (flannel; or after a virtio_net_hdr), in VXLAN (any port) or in IPIP."""
        plain = f"(ip[0] = 0x45 and ip[6:2] & 0x1fff = 0 and {self._match('ip', 0)})"
        in_udp = f"(ip[9] = 17 and udp[8] = 0x45 and {self._match('udp', 8)})"
        # netlab's opt-in flannel-udp vnet-hdr mode: a 10-byte virtio_net_hdr before the IP packet
        in_vnet = f"(ip[9] = 17 and udp[18] = 0x45 and {self._match('udp', 18)})"
        in_vxlan = f"(ip[9] = 17 and udp[8] & 0x08 = 0x08 and udp[28:2] = 0x0800 and {self._match('udp', 30)})"
        in_ipip = f"(ip[0] = 0x45 and ip[9] = 4 and {self._match('ip', 20)})"
        return f"ip and ({plain} or {in_udp} or {in_vnet} or {in_vxlan} or {in_ipip})"

    # ---- recognising a decoded sighting --------------------------------------------------------

    def classify(self, d: Decoded) -> str | None:
        """``request`` (the probe itself), ``reply`` (its answer), ``error`` (an ICMP error about
        it), or None if this is not about the probe at all."""
        hit = d.innermost("IP")
        if hit is None:
            return None
        i, ip = hit
        l4 = d.layers[i + 1] if i + 1 < len(d.layers) else None
        if l4 is None:
            return None
        if l4.name == "ICMP" and l4.fields.get("type") in ICMP_ERRORS:
            return "error" if self._quotes_the_probe(d.layers[i + 2:]) else None
        if self._is_request(ip, l4):
            return "request"
        return "reply" if self._REPLY[self.proto](self, ip, l4) else None

    def _quotes_the_probe(self, after: list[Layer]) -> bool:
        """An ICMP error is about the probe if the IP header it quotes carries the probe's IP id."""
        q = next((ly for ly in after if ly.quoted and ly.name == "IP"), None)
        return q is not None and q.fields.get("id") == self.ip_id

    def _is_request(self, ip: Layer, l4: Layer) -> bool:
        """The probe itself: its IP id and protocol; for TCP also its SYN (no ACK) with the ISN,
        since a SYN-ACK may reuse the id."""
        if ip.fields.get("id") != self.ip_id or ip.fields.get("proto") != IPPROTO[self.proto]:
            return False
        if self.proto != "tcp":
            return True
        return (l4.name == "TCP" and l4.fields.get("seq") == self.isn and "S" in l4.fields["flags"]
                and "A" not in l4.fields["flags"])

    def _tcp_reply(self, ip: Layer, l4: Layer) -> bool:
        """A TCP answer (SYN-ACK or RST-ACK) acknowledges the probe's ISN + 1."""
        return l4.name == "TCP" and l4.fields.get("ack") == (self.isn + 1) & 0xFFFFFFFF and "A" in l4.fields["flags"]

    def _icmp_reply(self, ip: Layer, l4: Layer) -> bool:
        """An echo reply (the BPF filter already matched its payload's magic)."""
        return l4.name == "ICMP" and l4.fields.get("type") == 0

    def _udp_reply(self, ip: Layer, l4: Layer) -> bool:
        """A UDP datagram that matched the filter but is not the probe itself (another IP id)."""
        return l4.name == "UDP" and ip.fields.get("id") != self.ip_id

    _REPLY: ClassVar[dict[str, Callable[[Probe, Layer, Layer], bool]]] = {
        "tcp": _tcp_reply, "icmp": _icmp_reply, "udp": _udp_reply}

    def as_dict(self) -> dict:
        d = {"proto": self.proto, "src": self.src, "dst": self.dst, "size": self.size, "length": self.length,
             "ip_id": self.ip_id, "ttl": self.ttl}
        if self.proto in ("tcp", "udp"):
            d.update(sport=self.sport, dport=self.port)
        if self.proto == "tcp":
            d["isn"] = self.isn
        if self.proto == "icmp":
            d["icmp_id"] = self.icmp_id
        return d


def _refusal(e: OSError) -> str:
    """``EMSGSIZE: Message too long``; an OSError without an errno is named by its text."""
    if e.errno is None:
        return str(e)
    return f"{errno.errorcode.get(e.errno, e.errno)}: {e.strerror}"


def source_address(ns: str, dst: str) -> tuple[str | None, str | None]:
    """The address the kernel in ``ns`` would send from towards ``dst`` (no packet is sent:
    ``connect`` on a UDP socket only does the route lookup). Returns (address, error)."""
    with netns.entered(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((dst, 9))
        return s.getsockname()[0], None
    except OSError as e:
        return None, _refusal(e)
    finally:
        s.close()


def send(ns: str, probe: Probe) -> str | None:
    """Send the probe from namespace ``ns``; returns None, or the kernel's refusal (EMSGSIZE …)."""
    with netns.entered(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    try:
        s.sendto(bytes(probe.packet()), (probe.dst, 0))
        return None
    except OSError as e:
        return _refusal(e)
    finally:
        s.close()
