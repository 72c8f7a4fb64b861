"""``netlab trace``: send one probe, catch it on every interface of the path, explain every hop.

The steps, all driven by the plan (no per-lab code):

1. resolve source and destination (:mod:`.path`), pick the namespaces the packet and its reply
   may cross, and ask the source namespace's kernel which source address it would use;
2. read the drop/error counters of those namespaces (:mod:`.evidence`), so that a stop can be
   explained by what moved;
3. open one packet socket per namespace with the probe's BPF program (:mod:`.sniff`, :mod:`.bpf`):
   the kernel hands over only the probe, its answer and ICMP errors about it;
4. send the probe from the source namespace (:mod:`.probe`) and read until the answer is back
   in the source namespace (plus a few milliseconds for stragglers) or the timeout expires;
5. decode every sighting (:mod:`.decode`), split them into legs (the request, each answer), put
   each leg in kernel order, drop flood copies that go nowhere, and diff consecutive hops
   (:mod:`.diff`);
6. if the packet did not make it, name the last hop, what the plan expected next
   (:func:`.path.expected_next`) and the kernel's evidence there.

Offloads (the issue asks to choose): **they are left alone, and the output says so.** A probe is
one packet built by netlab, never larger than the source device's MTU (DF is set, as with
``ping -M do``), so no veth or bridge hands the capture a 64 KB GSO super-frame for it; a sighting
longer than its device's MTU (possible in ``netlab capture`` of a TCP stream) is marked as a GSO
super-frame that is segmented later. Nothing is changed in any namespace, so there is nothing to
restore.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from ..errors import NetlabError
from ..plan import Netns, Plan
from . import bpf, evidence
from .decode import Decoded, decode
from .diff import Change, diff
from .path import (Endpoint, Expectation, expected_next, interfaces, is_bridge_port, path_namespaces, resolve,
                   vxlan_ports)
from .path import local_addresses as path_local
from .probe import Probe, send, source_address
from .sniff import PACKET_OTHERHOST, Frame, Sniffer, kernel_order

OFFLOAD_NOTE = ("offloads untouched: the probe is one packet of at most the source MTU (DF set), so no hop "
                "sees a GSO super-frame; a frame longer than its device MTU would be marked 'GSO, segmented later'")


@dataclass
class Hop:
    n: int
    leg: str  # request, reply, error
    frame: Frame
    decoded: Decoded
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    side: bool = False  # a flood copy that goes nowhere, not part of the path
    rel_us: float = 0.0

    @property
    def where(self) -> str:
        return self.frame.where

    def as_dict(self) -> dict:
        f = self.frame
        return {
            "n": self.n, "leg": self.leg, "ns": f.ns, "host": f.host, "iface": f.iface, "direction": f.direction,
            "pkttype": f.pkttype, "time_us": round(self.rel_us, 1), "length": f.wirelen, "mtu": f.mtu,
            "link": "ethernet" if f.ethernet else "raw-ip",
            "stack": self.decoded.names, "summary": self.decoded.text, "payload": self.decoded.payload,
            "layers": [ly.as_dict() for ly in self.decoded.layers],
            "changes": [c.as_dict() for c in self.changes], "notes": self.notes,
        }


@dataclass
class Stop:
    leg: str
    reason: str
    last: Hop | None
    expected: Expectation | None
    evidence: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "leg": self.leg, "reason": self.reason,
            "last_seen": None if self.last is None else {"n": self.last.n, "ns": self.last.frame.ns,
                                                         "host": self.last.frame.host, "iface": self.last.frame.iface,
                                                         "direction": self.last.frame.direction},
            "expected_next": None if self.expected is None else {
                "text": self.expected.text, "ns": self.expected.ns, "iface": self.expected.iface,
                "direction": self.expected.direction, "kind": self.expected.kind},
            "evidence": self.evidence,
        }


@dataclass
class TraceResult:
    lab: str
    src: Endpoint
    dst: Endpoint
    probe: Probe | None
    captured: list[str]  # the namespaces (host names) captured in
    hops: list[Hop] = field(default_factory=list)
    side: list[Hop] = field(default_factory=list)
    legs: list[str] = field(default_factory=list)
    complete: bool = False
    stop: Stop | None = None
    elapsed: float = 0.0
    offloads: str = OFFLOAD_NOTE
    notes: list[str] = field(default_factory=list)

    def leg_hops(self, leg: str) -> list[Hop]:
        return [h for h in self.hops if h.leg == leg]

    def as_dict(self) -> dict:
        return {
            "lab": self.lab,
            "src": {"spec": self.src.spec, "addr": self.probe.src if self.probe else None,
                    "host": self.src.ns.host if self.src.ns else None},
            "dst": {"spec": self.dst.spec, "addr": self.dst.addr, "host": self.dst.ns.host if self.dst.ns else None},
            "probe": self.probe.as_dict() if self.probe else None,
            "captured": self.captured,
            "complete": self.complete,
            "legs": self.legs,
            "hops": [h.as_dict() for h in self.hops],
            "flood_copies": [h.as_dict() for h in self.side],
            "stop": self.stop.as_dict() if self.stop else None,
            "notes": self.notes,
            "offloads": self.offloads,
            "elapsed_s": round(self.elapsed, 3),
        }


# ---- ordering and shaping (pure) ---------------------------------------------------------------

def mark_side(plan: Plan, hops: list[Hop], captured_ns: set[str]) -> None:
    """Flood copies: a bridge that has not learnt a MAC yet sends the frame out of every port.

    A copy received by a host interface that is not a bridge port, as PACKET_OTHERHOST (not its
    MAC), with nothing following it in that namespace, went nowhere; so did the transmit on the
    veth whose other end received it, and a transmit into a namespace that is not captured when
    the packet was seen again afterwards elsewhere.
    """
    ifs = interfaces(plan)
    for i, h in enumerate(hops):
        f = h.frame
        if f.direction == "in" and f.pkttype == PACKET_OTHERHOST and not is_bridge_port(ifs, f.ns, f.iface):
            if not any(o.frame.ns == f.ns for o in hops[i + 1:]):
                h.side = True
    main = [h for h in hops if not h.side]
    for h in hops:
        f = h.frame
        if h.side or f.direction != "out":
            continue
        me = ifs.get((f.ns, f.iface))
        if me is None or me.peer is None:
            continue
        pns, pname = me.peer
        peer_rx = [o for o in hops if o.frame.ns == pns and o.frame.iface == pname and o.frame.direction == "in"]
        if peer_rx and all(o.side for o in peer_rx):
            h.side = True
        elif not peer_rx and pns not in captured_ns and main and h is not main[-1]:
            h.side = True


def shape_leg(plan: Plan, leg: str, frames: list[Frame], decoded: dict[int, Decoded], captured_ns: set[str],
              t0: int) -> tuple[list[Hop], list[Hop]]:
    ordered = kernel_order(frames)
    hops = [Hop(0, leg, f, decoded[id(f)], rel_us=(f.ts_ns - t0) / 1000) for f in ordered]
    mark_side(plan, hops, captured_ns)
    main = [h for h in hops if not h.side]
    side = [h for h in hops if h.side]
    prev: Hop | None = None
    for h in main:
        f = h.frame
        if f.mtu and f.wirelen > f.mtu + (14 if f.ethernet else 0):
            h.notes.append(f"GSO super-frame: {f.wirelen} bytes on a {f.mtu}-byte MTU, segmented later")
        if prev is not None:
            h.changes = diff(prev.decoded, h.decoded, reply=(leg != "request"))
        prev = h
    return main, side


# ---- the trace ---------------------------------------------------------------------------------

def _leg_key(kind: str, d: Decoded) -> tuple:
    hit = d.innermost("IP")
    return (kind, hit[1].fields.get("id") if hit else None)


def _outer(d: Decoded) -> dict:
    """The outermost addresses of a sighting (what the device at that hop acts on)."""
    out: dict = {}
    for ly in d.layers:
        if ly.name == "Ether" and "dst_mac" not in out:
            out["dst_mac"] = ly.fields["dst"]
        if ly.name == "IP" and "dst" not in out:
            out["src"], out["dst"] = ly.fields["src"], ly.fields["dst"]
        if ly.name in ("UDP", "TCP") and "dport" not in out and "dst" in out:
            out["dport"] = ly.fields["dport"]
            out["l4"] = (ly.name.lower(), ly.fields["dport"])
    return out


def run(plan: Plan, src_spec: str, dst_spec: str, proto: str = "icmp", port: int | None = None,
        size: int | None = None, timeout: float = 1.0, linger: float = 0.03, state=None) -> TraceResult:
    """Trace one probe through the lab ``plan`` describes. ``state`` (the lab's
    :class:`~netlab.state.State`) adds daemon liveness to the evidence when the packet stops."""
    t_start = time.monotonic()
    src = resolve(plan, src_spec, "source")
    dst = resolve(plan, dst_spec, "destination")
    if src.ns is None:
        raise NetlabError(f"the source {src_spec} is not in lab '{plan.lab}'", "trace from a pod or node of the lab")
    if proto in ("tcp", "udp") and port is None:
        raise NetlabError(f"a {proto} probe needs a destination port", "add --port N (e.g. --port 80)")
    if size is None:
        size = 0 if proto == "tcp" else 56
    nss = path_namespaces(plan, src, dst)
    host_of = {n.name: n.host for n in plan.namespaces}
    result = TraceResult(plan.lab, src, dst, None, [n.host for n in nss])

    addr, err = source_address(src.ns.name, dst.addr)
    if addr is None:
        result.stop = Stop("request", f"the source has no route to {dst.addr} ({err})", None,
                           Expectation(f"a route to {dst.addr} in {src.ns.host}", src.ns.name, None, "out", "route"),
                           [evidence.route_get(src.ns.name, dst.addr)])
        result.elapsed = time.monotonic() - t_start
        return result
    probe = Probe(proto, addr, dst.addr, port, size)
    result.probe = probe
    program = bpf.for_expr(probe.bpf())
    pending = evidence.Pending(plan, [n.name for n in nss])
    vports = vxlan_ports(plan)
    frames: list[Frame] = []
    decoded: dict[int, Decoded] = {}
    kinds: dict[int, str] = {}
    cache: dict[tuple[bytes, bool], Decoded] = {}  # the same bytes are seen at both ends of a veth
    with Sniffer({n.name: (n.host, None) for n in nss}, program=program) as sniffer:
        before = pending.result()
        refused = send(src.ns.name, probe)
        if refused is None:
            deadline = time.monotonic() + timeout
            done_at: float | None = None
            while True:
                now = time.monotonic()
                end = deadline if done_at is None else min(deadline, done_at)
                if now >= end:
                    break
                for f in sniffer.poll_once(end - now):
                    d = cache.get((f.data, f.ethernet))
                    if d is None:
                        d = cache[(f.data, f.ethernet)] = decode(f.data, f.ethernet, vports)
                    kind = probe.classify(d)
                    if kind is None:
                        continue
                    frames.append(f)
                    decoded[id(f)] = d
                    kinds[id(f)] = kind
                    if kind != "request" and f.ns == src.ns.name and f.direction == "in" and done_at is None:
                        done_at = time.monotonic() + linger
    if refused is not None:
        route = evidence.route_get(src.ns.name, dst.addr)
        ev = [route]
        if "EMSGSIZE" in refused:
            m = re.search(r" dev (\S+)", route)
            dev = m.group(1) if m else None
            mtu = evidence.link_mtu(src.ns.name, dev) if dev else None
            ev.append(f"the probe is {probe.length} bytes with DF set"
                      + (f"; {src.ns.host}:{dev} has MTU {mtu}: use --size {mtu - (probe.length - probe.size)} or less"
                         if mtu else ": larger than the MTU of the route's device"))
        result.stop = Stop("request", f"the kernel in {src.ns.host} refused to send the {probe.length}-byte probe ({refused})",
                           None, Expectation(f"leave {src.ns.host}", src.ns.name, None, "out", "route"), ev)
        result.elapsed = time.monotonic() - t_start
        return result

    # legs: the request, then each distinct answer, in order of first sighting
    t0 = min((f.ts_ns for f in frames), default=0)
    groups: dict[tuple, list[Frame]] = {}
    for f in sorted(frames, key=lambda f: f.ts_ns):
        groups.setdefault(_leg_key(kinds[id(f)], decoded[id(f)]), []).append(f)
    order = sorted(groups, key=lambda k: (k[0] != "request", min(f.ts_ns for f in groups[k])))
    captured_ns = {n.name for n in nss}
    n = 0
    for key in order:
        kind = key[0]
        main, side = shape_leg(plan, kind, groups[key], decoded, captured_ns, t0)
        for h in main:
            n += 1
            h.n = n
        result.hops.extend(main)
        result.side.extend(side)
        result.legs.append(kind)

    result.complete, result.stop = _verdict(plan, result, src, nss, host_of, before, state)
    if probe.dst in path_local(plan, src.ns.name):
        result.notes.append(f"{probe.dst} is {src.ns.host}'s own address: the kernel delivers it over lo and it never "
                            f"leaves {src.ns.host}")
    for h in result.hops:
        icmp = next((ly for ly in h.decoded.layers if ly.name == "ICMP" and not ly.quoted), None)
        if h.leg == "error" and icmp is not None and icmp.fields.get("type") == 3 and icmp.fields.get("code") == 3:
            result.notes.append(f"the destination answered {icmp.text.split(' ', 2)[-1]}: the path works, "
                                f"nothing listens on {proto} {port}")
            break
        tcp = next((ly for ly in h.decoded.layers if ly.name == "TCP" and not ly.quoted), None)
        if h.leg == "reply" and tcp is not None and "R" in tcp.fields["flags"]:
            result.notes.append(f"the destination answered with a reset: the path works, nothing listens on tcp {port}")
            break
    result.elapsed = time.monotonic() - t_start
    return result


def _verdict(plan: Plan, result: TraceResult, src: Endpoint, nss: list[Netns], host_of: dict[str, str],
             before: dict[str, evidence.Counters], state=None) -> tuple[bool, Stop | None]:
    if src.ns is None:  # run() refuses a source outside the lab before sending anything
        raise ValueError(f"the trace's source {src.spec} is not in the lab")
    req = result.leg_hops("request")
    answers = [h for h in result.hops if h.leg != "request"]
    back = [h for h in answers if h.frame.ns == src.ns.name and h.frame.direction == "in"]
    by_name = {n.name: n for n in plan.namespaces}
    if answers and back:
        err = next((h for h in answers if h.leg == "error"), None)
        if err is None:
            return True, None
        first = [h for h in answers if h.leg == "error"][0]
        icmp = next((ly for ly in first.decoded.layers if ly.name == "ICMP" and not ly.quoted), None)
        origin = _outer(first.decoded).get("src")
        dst_reached = origin == result.dst.addr or (result.probe and origin == result.probe.dst)
        reason = f"{icmp.text if icmp else 'an ICMP error'} from {origin} (first seen on {first.where})"
        if dst_reached and icmp and icmp.fields.get("code") == 3:
            return True, None  # the destination answered "port closed": the path works
        ns = by_name.get(first.frame.ns)
        exp = None
        if req:
            lf, o = req[-1].frame, _outer(req[-1].decoded)
            exp = expected_next(plan, host_of, lf.ns, lf.iface, lf.direction, o.get("dst"), o.get("dst_mac"),
                                o.get("dport") if o.get("l4", ("",))[0] == "udp" else None, o.get("l4"))
        ev = [f"{ns.host}: {line}" for line in evidence.collect(
            plan, ns, before.get(ns.name), first.frame.iface, first.frame.direction, None,
            result.probe.dst if result.probe else None, state=state)] if ns else []
        return False, Stop("request", reason, req[-1] if req else None, exp, ev)
    if not req:
        ns = src.ns
        return False, Stop("request", f"the probe was never seen leaving {ns.host}", None,
                           Expectation(f"leave {ns.host} by its route to {result.dst.addr}", ns.name, None, "out", "route"),
                           evidence.collect(plan, ns, before.get(ns.name), None, None,
                                            result.probe.src if result.probe else None, result.dst.addr, state=state))
    leg = "request" if not answers else answers[-1].leg
    last = req[-1] if not answers else answers[-1]
    f = last.frame
    o = _outer(last.decoded)
    exp = expected_next(plan, host_of, f.ns, f.iface, f.direction, o.get("dst"), o.get("dst_mac"),
                        o.get("dport") if "l4" in o and o["l4"][0] == "udp" else None, o.get("l4"))
    if exp.kind == "local" and leg == "request":
        reason = f"the probe reached {f.host} but no answer was seen"
    elif leg == "request":
        reason = f"the probe was last seen on {last.where} ({f.direction}) and went no further"
    else:
        reason = f"the answer was last seen on {last.where} ({f.direction}) and never reached {src.ns.host}"
    ev = []
    next_hop = next_dev = None
    if exp.kind == "dnat" and leg == "request":
        reason = f"the probe reached {f.host}, was to be DNATed, and went no further"
    if exp.kind == "route" and exp.iface:
        from .path import lookup
        r = lookup(plan, f.ns, o["dst"]) if o.get("dst") else None
        next_hop, next_dev = (r.via or o.get("dst")) if r else None, exp.iface
        if interfaces(plan).get((f.ns, exp.iface), None) is not None and \
                interfaces(plan)[(f.ns, exp.iface)].kind in ("tun", "ipip"):
            next_hop = None  # NOARP devices have no neighbours to resolve
    ns = by_name.get(f.ns)
    if ns is not None:
        ev += [f"{ns.host}: {line}" for line in evidence.collect(plan, ns, before.get(ns.name), f.iface, f.direction,
                                                                 o.get("src"), o.get("dst"), next_dev, next_hop,
                                                                 state=state)]
    if exp.ns and exp.ns != f.ns and exp.ns in by_name and exp.ns in before:
        other = by_name[exp.ns]
        ev += [f"{other.host}: {line}" for line in evidence.collect(plan, other, before.get(other.name), None, None,
                                                                    None, None, state=state)]
    return False, Stop(leg, reason, last, exp, ev)
