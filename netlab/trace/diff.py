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


def diff(old: Decoded, new: Decoded, reply: bool = False) -> list[Change]:
    """Changes from ``old`` to ``new`` (the same packet seen at consecutive hops)."""
    a, b = old.layers, new.layers
    an, bn = _names(a), _names(b)
    tail = _common_tail(an, bn)
    out: list[Change] = []
    added, removed = b[: len(b) - tail], a[: len(a) - tail]
    if removed and added:
        out.append(Change("encap-removed", "removed " + "/".join(ly.name for ly in removed),
                          {"layers": [ly.name for ly in removed]}))
        out.append(Change("encap-added", "added " + " / ".join(ly.text for ly in added),
                          new={"layers": [ly.name for ly in added]}))
    elif added:
        out.append(Change("encap-added", "added " + " / ".join(ly.text for ly in added),
                          new={"layers": [ly.name for ly in added]}))
    elif removed:
        out.append(Change("encap-removed", "removed " + "/".join(ly.name for ly in removed),
                          {"layers": [ly.name for ly in removed]}))
    # Compare the aligned tail. The outermost IP of the tail is "inner" if anything wraps it.
    ta, tb = a[len(a) - tail:], b[len(b) - tail:]
    for i, (la, lb) in enumerate(zip(ta, tb, strict=True)):
        if la.quoted:
            continue
        if la.name == "Ether":
            fa, fb = la.fields, lb.fields
            if fa["src"] != fb["src"] or fa["dst"] != fb["dst"]:
                parts = []
                if fa["src"] != fb["src"]:
                    parts.append(f"src {fa['src']} -> {fb['src']}")
                if fa["dst"] != fb["dst"]:
                    parts.append(f"dst {fa['dst']} -> {fb['dst']}")
                out.append(Change("mac-rewrite", "MAC rewrite " + ", ".join(parts),
                                  {"src": fa["src"], "dst": fa["dst"]}, {"src": fb["src"], "dst": fb["dst"]}))
        elif la.name == "IP":
            nxt_a = ta[i + 1] if i + 1 < len(ta) else None
            nxt_b = tb[i + 1] if i + 1 < len(tb) else None
            inner = (len(b) - tail + i) > 0 and any(ly.name == "IP" for ly in b[: len(b) - tail + i])
            out.extend(_ip_changes(la, lb, nxt_a, nxt_b, reply, inner))
        elif la.name == "ICMP" and la.fields.get("id") != lb.fields.get("id") and "id" in la.fields:
            out.append(Change("snat" if not reply else "unsnat",
                              f"ICMP id {la.fields['id']} -> {lb.fields['id']} (NAT of the query id)",
                              {"id": la.fields["id"]}, {"id": lb.fields["id"]}))
        elif la.name == "VXLAN" and la.fields["vni"] != lb.fields["vni"]:
            out.append(Change("other", f"VNI {la.fields['vni']} -> {lb.fields['vni']}"))
    return out
