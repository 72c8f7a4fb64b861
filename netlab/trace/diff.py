"""What changed between two sightings of the same packet: the learner's "what did this hop do".

The two layer stacks are aligned from the inside out, because the probe is the innermost packet
and encapsulation only ever adds or removes headers on the outside:

- ``Ether/IP/ICMP`` -> ``Ether/IP/UDP/VXLAN/Ether/IP/ICMP``: the common tail is ``Ether/IP/ICMP``
  (the inner frame), so ``Ether/IP/UDP/VXLAN`` was *added* (encapsulation by the VTEP);
- ``Ether/IP/ICMP`` -> ``IP/ICMP``: the Ethernet header was *removed* (a TUN device has none);
- headers in the common tail are compared field by field: MAC rewrite (a router or the VTEP
  re-framing the packet), TTL decrement (each IP forwarding step, and flannel's UDP proxy which
  lowers the TTL itself), source and destination address/port rewrites (SNAT, DNAT).

On the reply leg of a NATed connection conntrack reverses both translations: the source rewrite
undoes the DNAT and the destination rewrite undoes the SNAT. :func:`diff` names them that way
when told the packet is a reply.

Checksums, lengths and IP ids of outer headers are not reported: they change with every
encapsulation and say nothing a learner needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from .decode import Decoded, Layer


@dataclass
class Change:
    kind: str  # encap-added, encap-removed, mac-rewrite, ttl, snat, dnat, unsnat, undnat, other
    text: str
    old: dict = field(default_factory=dict)
    new: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "text": self.text, "old": self.old, "new": self.new}


def _names(layers: list[Layer]) -> list[str]:
    return [("q:" if ly.quoted else "") + ly.name for ly in layers]


def _common_tail(a: list[str], b: list[str]) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[len(a) - 1 - n] == b[len(b) - 1 - n]:
        n += 1
    return n


def _endpoint(ip: Layer, l4: Layer | None, side: str) -> str:
    addr = ip.fields[side]
    if l4 is not None and l4.name in ("TCP", "UDP"):
        return f"{addr}:{l4.fields['sport' if side == 'src' else 'dport']}"
    return addr


def _ip_changes(old_ip: Layer, new_ip: Layer, old_l4: Layer | None, new_l4: Layer | None, reply: bool,
                inner: bool) -> list[Change]:
    out: list[Change] = []
    o, n = old_ip.fields, new_ip.fields
    ot, nt = o.get("ttl"), n.get("ttl")
    if ot is not None and nt is not None and ot != nt:
        what = "inner " if inner else ""
        out.append(Change("ttl", f"{what}TTL {ot} -> {nt}" + (f" (-{ot - nt})" if nt < ot else ""), {"ttl": ot}, {"ttl": nt}))
    for side in ("src", "dst"):
        old_port = new_port = None
        if old_l4 is not None and new_l4 is not None and old_l4.name == new_l4.name and old_l4.name in ("TCP", "UDP"):
            key = "sport" if side == "src" else "dport"
            old_port, new_port = old_l4.fields[key], new_l4.fields[key]
        if o[side] == n[side] and old_port == new_port:
            continue
        if reply:
            kind = "undnat" if side == "src" else "unsnat"
            label = ("reverse DNAT (reply source restored)" if side == "src"
                     else "reverse SNAT (reply destination restored)")
        else:
            kind = "snat" if side == "src" else "dnat"
            label = "SNAT" if side == "src" else "DNAT"
        old_ep, new_ep = _endpoint(old_ip, old_l4, side), _endpoint(new_ip, new_l4, side)
        out.append(Change(kind, f"{label} {side} {old_ep} -> {new_ep}",
                          {"addr": o[side], **({"port": old_port} if old_port is not None else {})},
                          {"addr": n[side], **({"port": new_port} if new_port is not None else {})}))
    return out


def _encap_changes(removed: list[Layer], added: list[Layer]) -> list[Change]:
    """Outer headers only one side has: removed ones were decapsulated (a VTEP, a TUN's missing
    Ethernet header), added ones encapsulated; both at once is a re-framing (VXLAN into a TUN)."""
    out: list[Change] = []
    if removed:
        out.append(Change("encap-removed", "removed " + "/".join(ly.name for ly in removed),
                          {"layers": [ly.name for ly in removed]}))
    if added:
        out.append(Change("encap-added", "added " + " / ".join(ly.text for ly in added),
                          new={"layers": [ly.name for ly in added]}))
    return out


class _Aligned(NamedTuple):
    """Where a pair of aligned headers sits: the header after each (the ports an IP rewrite may
    include), whether anything wraps it (an inner header), and the leg's direction."""

    nxt_a: Layer | None
    nxt_b: Layer | None
    inner: bool
    reply: bool


def _ether_changes(la: Layer, lb: Layer, at: _Aligned) -> list[Change]:
    """A MAC rewrite: each routing step (a router, a node, the VTEP re-framing) sets new MACs."""
    fa, fb = la.fields, lb.fields
    if fa["src"] == fb["src"] and fa["dst"] == fb["dst"]:
        return []
    parts = []
    if fa["src"] != fb["src"]:
        parts.append(f"src {fa['src']} -> {fb['src']}")
    if fa["dst"] != fb["dst"]:
        parts.append(f"dst {fa['dst']} -> {fb['dst']}")
    return [Change("mac-rewrite", "MAC rewrite " + ", ".join(parts),
                   {"src": fa["src"], "dst": fa["dst"]}, {"src": fb["src"], "dst": fb["dst"]})]


def _ip_header_changes(la: Layer, lb: Layer, at: _Aligned) -> list[Change]:
    """TTL and address/port rewrites of an IP header (with its TCP/UDP ports)."""
    return _ip_changes(la, lb, at.nxt_a, at.nxt_b, at.reply, at.inner)


def _icmp_id_changes(la: Layer, lb: Layer, at: _Aligned) -> list[Change]:
    """A NATed ping: conntrack rewrites the ICMP query id as it would a source port."""
    if "id" not in la.fields or la.fields.get("id") == lb.fields.get("id"):
        return []
    return [Change("snat" if not at.reply else "unsnat",
                   f"ICMP id {la.fields['id']} -> {lb.fields['id']} (NAT of the query id)",
                   {"id": la.fields["id"]}, {"id": lb.fields["id"]})]


def _vni_changes(la: Layer, lb: Layer, at: _Aligned) -> list[Change]:
    """A VXLAN header whose VNI differs between hops (a re-encapsulation into another segment)."""
    if la.fields["vni"] == lb.fields["vni"]:
        return []
    return [Change("other", f"VNI {la.fields['vni']} -> {lb.fields['vni']}")]


_COMPARE: dict[str, Callable[[Layer, Layer, _Aligned], list[Change]]] = {
    "Ether": _ether_changes, "IP": _ip_header_changes, "ICMP": _icmp_id_changes, "VXLAN": _vni_changes,
}


def diff(old: Decoded, new: Decoded, reply: bool = False) -> list[Change]:
    """Changes from ``old`` to ``new`` (the same packet seen at consecutive hops)."""
    a, b = old.layers, new.layers
    tail = _common_tail(_names(a), _names(b))
    out = _encap_changes(a[: len(a) - tail], b[: len(b) - tail])
    # Compare the aligned tail. The outermost IP of the tail is "inner" if anything wraps it.
    ta, tb = a[len(a) - tail:], b[len(b) - tail:]
    for i, (la, lb) in enumerate(zip(ta, tb, strict=True)):
        compare = _COMPARE.get(la.name)
        if la.quoted or compare is None:
            continue
        nxt_a = ta[i + 1] if i + 1 < len(ta) else None
        nxt_b = tb[i + 1] if i + 1 < len(tb) else None
        inner = (len(b) - tail + i) > 0 and any(ly.name == "IP" for ly in b[: len(b) - tail + i])
        out.extend(compare(la, lb, _Aligned(nxt_a, nxt_b, inner, reply)))
    return out
