"""Encapsulation: how a datapath wraps a pod's packet to cross the underlay, declared once.

An overlay pays for its tunnel in bytes on every packet. Flannel and Calico size the pod MTU as
the underlay MTU minus that overhead, so a full-size pod packet, once wrapped, still fits the
underlay without fragmentation:

- VXLAN: outer Ethernet 14 + outer IPv4 20 + UDP 8 + VXLAN 8 = 50 bytes; it carries a whole inner
  Ethernet frame (flannel.1 on UDP 8472, Calico's vxlan.calico on 4789);
- flannel's UDP backend: outer IPv4 20 + UDP 8 = 28 bytes; it carries a bare IP packet (8285);
- IPIP: one outer IPv4 header, 20 bytes; it carries a bare IP packet (IP protocol 4, no port).

A datapath puts its :class:`Encap` on the plan (:attr:`netlab.plan.Plan.encap`); the MTU check,
the trace decoder (which UDP ports carry what) and bench's claim classification read it there.

The three module constants :data:`VXLAN`, :data:`UDP` and :data:`IPIP` are the declarations; a
UDP-based one gets its port from the datapath's options with :meth:`Encap.on`, because the port
is a knob (flannel's ``Port``, Calico's ``VXLANPort``) while the header sizes are not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .errors import LabFileError

if TYPE_CHECKING:
    from .model import Lab

#: The largest underlay MTU a lab file may ask for (jumbo frames). A tunnel's largest pod MTU is
#: this minus its overhead, so the bounds of every ``options.mtu`` follow from one number.
UNDERLAY_MTU_MAX = 9000

ETHERNET = "ethernet"  # the payload is a whole Ethernet frame (the inner MACs travel too)
IP = "ip"  # the payload is a bare IP packet (no inner Ethernet header at all)


@dataclass(frozen=True)
class Encap:
    """One encapsulation: ``name`` (vxlan, udp, ipip), the bytes it adds to each packet, what it
    carries (``ethernet``: a whole inner frame; ``ip``: a bare IP packet) and, for encapsulations
    in UDP, the outer destination port."""

    name: str
    overhead: int
    carries: str
    udp_port: int | None = None

    def on(self, port: int) -> Encap:
        """The same encapsulation on UDP ``port`` (the datapath's configured port)."""
        return replace(self, udp_port=port)

    @property
    def max_mtu(self) -> int:
        """The largest pod MTU any lab can have with it: the largest underlay minus the overhead
        (the ``max`` of a datapath's ``options.mtu``)."""
        return UNDERLAY_MTU_MAX - self.overhead

    @property
    def label(self) -> str:
        """How messages name it: VXLAN, UDP, IPIP."""
        return self.name.upper()


#: VXLAN (RFC 7348): outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN header 8, around an inner frame.
VXLAN = Encap("vxlan", 14 + 20 + 8 + 8, ETHERNET)
#: flannel's UDP backend: outer IPv4 20 + UDP 8, the inner IP packet the whole UDP payload
#: (flannel's ``encapOverhead`` for it is 28).
UDP = Encap("udp", 20 + 8, IP)
#: IPIP (RFC 2003, IP protocol 4): one outer IPv4 header, 20 bytes; no port to configure.
IPIP = Encap("ipip", 20, IP)


def overhead(encap: Encap | None) -> int:
    """Bytes added per packet; 0 for a routed or bridged datapath (no encapsulation)."""
    return encap.overhead if encap is not None else 0


def mtu_of(lab: Lab, encap: Encap | None) -> int:
    """Pod and tunnel MTU: the lab's ``options.mtu`` if it sets one, else the underlay MTU minus
    the overhead, which is what flanneld and Felix compute from the underlay interface."""
    return getattr(lab.options, "mtu", None) or lab.underlay.mtu - overhead(encap)


def check_mtu(lab: Lab, encap: Encap | None) -> None:
    """A pod MTU the lab asks for must still fit the underlay once wrapped: otherwise every
    full-size pod packet would be fragmented (or, with DF set, dropped) on the way."""
    mtu = getattr(lab.options, "mtu", None)
    extra = overhead(encap)
    if mtu is None or mtu + extra <= lab.underlay.mtu:
        return
    what = f"{mtu} + {extra} bytes of {encap.label} overhead" if encap is not None else f"{mtu}"
    raise LabFileError(f"{lab.src}: options.mtu: {what} exceeds the underlay MTU {lab.underlay.mtu}",
                       f"use options.mtu <= {lab.underlay.mtu - extra} or leave it unset")
