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
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Encap:
    """One encapsulation: ``name`` (vxlan, udp, ipip), the bytes it adds to each packet, what it
    carries (``ethernet``: a whole inner frame; ``ip``: a bare IP packet) and, for encapsulations
    in UDP, the outer destination port."""

    name: str
    overhead: int
    carries: str
    udp_port: int | None = None
