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

from ..encap import Encap
from ..errors import NetlabError
from ..plan import Netns, Plan
from . import bpf, evidence, reasons
from .decode import Decoded, decode
from .diff import Change, diff
from .path import Endpoint, Expectation, Iface, dnat_for, expected_next, interfaces, is_bridge_port, path_namespaces, resolve
from .path import local_addresses as path_local
from .probe import Probe, send, source_address
from .reasons import Cause
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
    causes: list[Cause] = field(default_factory=list)  # most likely first

    @property
    def ns(self) -> str | None:
        """The namespace the probe stopped in (its last sighting's; the expected one if never seen)."""
        return self.last.frame.ns if self.last is not None else self.expected.ns if self.expected else None

    def as_dict(self) -> dict:
        return {
            "leg": self.leg, "reason": self.reason,
            "cause": self.causes[0].as_dict() if self.causes else None,
            "causes": [c.as_dict() for c in self.causes],
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

def _received_flood_copies(hops: list[Hop], ifs: dict[tuple[str, str], Iface]) -> None:
    """Mark the copies a host received only because a bridge flooded them: PACKET_OTHERHOST (not
    its MAC) on an interface that is not itself a bridge port, with nothing following in that
    namespace (the host's stack dropped it)."""
    for i, h in enumerate(hops):
        f = h.frame
        if f.direction == "in" and f.pkttype == PACKET_OTHERHOST and not is_bridge_port(ifs, f.ns, f.iface):
            if not any(o.frame.ns == f.ns for o in hops[i + 1:]):
                h.side = True


def _transmit_went_nowhere(h: Hop, hops: list[Hop], main: list[Hop], ifs: dict[tuple[str, str], Iface],
                           captured_ns: set[str]) -> bool:
    """A veth transmit is a flood copy if every receive on its peer is one, or if its peer is in a
    namespace that is not captured while the packet went on elsewhere (it is not the last hop),
    or the bridge flooded it out of several ports."""
    me = ifs.get((h.frame.ns, h.frame.iface))
    if me is None or me.peer is None:
        return False
    pns, pname = me.peer
    peer_rx = [o for o in hops if o.frame.ns == pns and o.frame.iface == pname and o.frame.direction == "in"]
    if peer_rx:
        return all(o.side for o in peer_rx)
    if pns in captured_ns:
        return False
    return (bool(main) and h is not main[-1]) or _flooded(h, hops, ifs)


def _flooded(h: Hop, hops: list[Hop], ifs: dict[tuple[str, str], Iface]) -> bool:
    """The bridge sent this frame out of more than one port: a flood (the destination MAC is
    unknown to its FDB), so a copy into a namespace nobody captures is never where the packet
    stopped, even when it happens to be the last sighting."""
    me = ifs.get((h.frame.ns, h.frame.iface))
    if me is None or me.master is None:
        return False
    return any(o is not h and o.frame.ns == h.frame.ns and o.frame.direction == "out"
               and (i := ifs.get((o.frame.ns, o.frame.iface))) is not None and i.master == me.master for o in hops)


def mark_side(plan: Plan, hops: list[Hop], captured_ns: set[str]) -> None:
    """Flood copies: a bridge that has not learnt a MAC yet sends the frame out of every port.

    A copy received by a host interface that is not a bridge port, as PACKET_OTHERHOST (not its
    MAC), with nothing following it in that namespace, went nowhere; so did the transmit on the
    veth whose other end received it, and a transmit into a namespace that is not captured when
    the packet was seen again afterwards elsewhere.
    """
    ifs = interfaces(plan)
    _received_flood_copies(hops, ifs)
    main = [h for h in hops if not h.side]
    for h in hops:
        if not h.side and h.frame.direction == "out" and _transmit_went_nowhere(h, hops, main, ifs, captured_ns):
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


def _check_request(plan: Plan, src: Endpoint, src_spec: str, proto: str, port: int | None) -> Netns:
    """Refuse what cannot be traced before anything is sent: a source outside the lab (there is no
    namespace to send from), a TCP or UDP probe without a destination port. Returns the source's
    namespace."""
    if src.ns is None:
        raise NetlabError(f"the source {src_spec} is not in lab '{plan.lab}'", "trace from a pod or node of the lab")
    if proto in ("tcp", "udp") and port is None:
        raise NetlabError(f"a {proto} probe needs a destination port", "add --port N (e.g. --port 80)")
    return src.ns


def _no_route(src: Netns, dst: Endpoint, err: str | None) -> Stop:
    """The source's kernel has no source address towards the destination: no route, so the stop is
    at the source, before any packet exists."""
    return Stop("request", f"the source has no route to {dst.addr} ({err})", None,
                Expectation(f"a route to {dst.addr} in {src.host}", src.name, None, "out", "route"),
                [evidence.route_get(src.name, dst.addr)])


def _refused(src: Netns, dst: Endpoint, probe: Probe, refused: str) -> Stop:
    """The source's kernel refused to send the probe. For EMSGSIZE (DF set and larger than the
    route's device MTU) the evidence names the device, its MTU and the largest --size that fits."""
    route = evidence.route_get(src.name, dst.addr)
    ev = [route]
    if "EMSGSIZE" in refused:
        m = re.search(r" dev (\S+)", route)
        dev = m.group(1) if m else None
        mtu = evidence.link_mtu(src.name, dev) if dev else None
        ev.append(f"the probe is {probe.length} bytes with DF set"
                  + (f"; {src.host}:{dev} has MTU {mtu}: use --size {mtu - (probe.length - probe.size)} or less"
                     if mtu else ": larger than the MTU of the route's device"))
    return Stop("request", f"the kernel in {src.host} refused to send the {probe.length}-byte probe ({refused})",
                None, Expectation(f"leave {src.host}", src.name, None, "out", "route"), ev)


@dataclass
class _Sightings:
    """What the sockets caught that is about the probe: the frames, each one's decode and its leg
    kind (request, reply, error), keyed by ``id(frame)``."""

    frames: list[Frame] = field(default_factory=list)
    decoded: dict[int, Decoded] = field(default_factory=dict)
    kinds: dict[int, str] = field(default_factory=dict)


def _catch(sniffer: Sniffer, probe: Probe, src_ns: str, timeout: float, linger: float,
           encap: Encap | None) -> _Sightings:
    """Read the sockets until the timeout, or until ``linger`` seconds after the first answer
    arrives back in the source namespace (stragglers on other hops are still caught). Frames are
    decoded once per distinct bytes (both ends of a veth see the same), with the plan's ``encap``
    saying which UDP ports carry what, and kept if they concern the probe."""
    seen = _Sightings()
    cache: dict[tuple[bytes, bool], Decoded] = {}
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
                d = cache[(f.data, f.ethernet)] = decode(f.data, f.ethernet, encap)
            kind = probe.classify(d)
            if kind is None:
                continue
            seen.frames.append(f)
            seen.decoded[id(f)] = d
            seen.kinds[id(f)] = kind
            if kind != "request" and f.ns == src_ns and f.direction == "in" and done_at is None:
                done_at = time.monotonic() + linger
    return seen


def _add_legs(plan: Plan, result: TraceResult, seen: _Sightings, captured_ns: set[str]) -> None:
    """Split the sightings into legs (the request, then each distinct answer by its IP id, in order
    of first sighting), shape each leg into hops and number the hops across legs."""
    t0 = min((f.ts_ns for f in seen.frames), default=0)
    groups: dict[tuple, list[Frame]] = {}
    for f in sorted(seen.frames, key=lambda f: f.ts_ns):
        groups.setdefault(_leg_key(seen.kinds[id(f)], seen.decoded[id(f)]), []).append(f)
    order = sorted(groups, key=lambda k: (k[0] != "request", min(f.ts_ns for f in groups[k])))
    n = 0
    for key in order:
        kind = key[0]
        main, side = shape_leg(plan, kind, groups[key], seen.decoded, captured_ns, t0)
        for h in main:
            n += 1
            h.n = n
        result.hops.extend(main)
        result.side.extend(side)
        result.legs.append(kind)


def _late_stamps_note(seen: _Sightings) -> list[str]:
    """Hops are ordered across namespaces by the kernel's receive stamps. The Sniffer waits for
    them to be live before the probe goes out; a frame stamped only as it was read still says so,
    rather than leaving a wrong order unexplained."""
    late = sum(f.stamped_late for f in seen.frames)
    if not late:
        return []
    return [f"{late} of {len(seen.frames)} sightings had no kernel timestamp as they passed (the kernel was still "
            "switching receive timestamps on): the order of hops between namespaces may be wrong; trace again"]


def _closed_port_note(result: TraceResult, proto: str, port: int | None) -> str | None:
    """An answer that proves the path and only says nothing listens: ICMP port unreachable (UDP)
    or a TCP reset from the destination."""
    for h in result.hops:
        icmp = next((ly for ly in h.decoded.layers if ly.name == "ICMP" and not ly.quoted), None)
        if h.leg == "error" and icmp is not None and icmp.fields.get("type") == 3 and icmp.fields.get("code") == 3:
            return (f"the destination answered {icmp.text.split(' ', 2)[-1]}: the path works, "
                    f"nothing listens on {proto} {port}")
        tcp = next((ly for ly in h.decoded.layers if ly.name == "TCP" and not ly.quoted), None)
        if h.leg == "reply" and tcp is not None and "R" in tcp.fields["flags"]:
            return f"the destination answered with a reset: the path works, nothing listens on tcp {port}"
    return None


def _answer_kind(result: TraceResult) -> str | None:
    """How the destination answered: ``reset`` (TCP RST), ``closed`` (ICMP port unreachable),
    ``answer`` (anything else that came back), None (nothing came back)."""
    for h in result.hops:
        if h.leg == "request":
            continue
        icmp = next((ly for ly in h.decoded.layers if ly.name == "ICMP" and not ly.quoted), None)
        if h.leg == "error" and icmp is not None and icmp.fields.get("type") == 3 and icmp.fields.get("code") == 3:
            return "closed"
        tcp = next((ly for ly in h.decoded.layers if ly.name == "TCP" and not ly.quoted), None)
        if tcp is not None and "R" in tcp.fields["flags"]:
            return "reset"
    return "answer" if any(h.leg == "reply" for h in result.hops) else None


def _listener_names(ns: str, proto: str, port: int, state) -> str:
    """Who listens on ``port`` in ``ns``, by the lab's daemon names where the PID is one of them
    (netlab's docker-proxy relays are named ``docker-proxy-<port>``)."""
    names = {d.pid: d.name for d in getattr(state, "daemons", [])}
    found = evidence.listeners(ns, proto, port)
    return ", ".join(f"{names.get(pid, name)} (pid {pid})" for name, pid in found)


def _dnat_skipped(plan: Plan, result: TraceResult, proto: str, port: int | None,
                  state=None) -> tuple[Cause, str] | None:
    """The node that owns the destination answered itself for a port the plan DNATs.

    Docker publishes a port with a nat-table DNAT rule: the packet's destination is rewritten in
    PREROUTING and the container answers, through conntrack's reverse translation. If no hop of
    the request shows that DNAT, the answer came from the node's own stack: a reset or a port
    unreachable means nothing listens there, so the DNAT did not happen; any other answer comes
    from a local listener, the userland proxy (docker-proxy) for a published port, which hides a
    missing DNAT completely, since the connection still works by another path."""
    dst_ns = result.dst.ns
    if dst_ns is None or proto not in ("tcp", "udp") or port is None:
        return None
    planned = dnat_for(plan, dst_ns.name, proto, port)
    kind = _answer_kind(result)
    if planned is None or kind is None or any(c.kind == "dnat" for h in result.leg_hops("request") for c in h.changes):
        return None
    rule, to = planned
    host = dst_ns.host
    if kind in ("reset", "closed"):
        how = "a reset" if kind == "reset" else "ICMP port unreachable"
        text = (f"{host} answered {proto} {port} itself with {how}, but the plan DNATs it to {to} by '{rule}': "
                f"the DNAT did not happen")
        return Cause(95, host, text, "protocol"), f"the probe reached {host} and was answered by {host} itself, not DNATed"
    who = _listener_names(dst_ns.name, proto, port, state) or "a local listener"
    text = (f"{who} answered on {host}:{port} (the userland proxy), but the plan DNATs it to {to} by '{rule}': "
            f"the DNAT did not happen, so the probe never took the planned path to {to}")
    return Cause(95, host, text, "protocol"), f"the probe reached {host} and was answered by {who}, not DNATed to {to}"


def _send_and_catch(plan: Plan, nss: list[Netns], src_ns: Netns, probe: Probe, timeout: float,
                    linger: float) -> tuple[str | None, _Sightings, evidence.Window]:
    """Open the sockets, take the counters, send, read until the answer is back or the timeout."""
    program = bpf.for_expr(probe.bpf())
    pending = evidence.Pending([n.name for n in nss])
    seen = _Sightings()
    with Sniffer({n.name: (n.host, None) for n in nss}, program=program) as sniffer:
        window = evidence.Window(pending.result(), pending.at)
        refused = send(src_ns.name, probe)
        if refused is None:
            seen = _catch(sniffer, probe, src_ns.name, timeout, linger, plan.encap)
    return refused, seen, window


def run(plan: Plan, src_spec: str, dst_spec: str, proto: str = "icmp", port: int | None = None,
        size: int | None = None, timeout: float = 1.0, linger: float = 0.03, state=None) -> TraceResult:
    """Trace one probe through the lab ``plan`` describes. ``state`` (the lab's
    :class:`~netlab.state.State`) adds daemon liveness and BGP to the evidence when it stops."""
    t_start = time.monotonic()
    src = resolve(plan, src_spec, "source")
    dst = resolve(plan, dst_spec, "destination")
    src_ns = _check_request(plan, src, src_spec, proto, port)
    if size is None:
        size = 0 if proto == "tcp" else 56
    nss = path_namespaces(plan, src, dst)
    host_of = {n.name: n.host for n in plan.namespaces}
    result = TraceResult(plan.lab, src, dst, None, [n.host for n in nss])

    addr, err = source_address(src_ns.name, dst.addr)
    if addr is None:
        result.stop = _no_route(src_ns, dst, err)
        result.elapsed = time.monotonic() - t_start
        return result
    probe = Probe(proto, addr, dst.addr, port, size)
    result.probe = probe
    refused, seen, window = _send_and_catch(plan, nss, src_ns, probe, timeout, linger)
    if refused is not None:
        result.stop = _refused(src_ns, dst, probe, refused)
        result.elapsed = time.monotonic() - t_start
        return result
    _add_legs(plan, result, seen, {n.name for n in nss})
    result.notes += _late_stamps_note(seen)
    result.complete, result.stop = _verdict(plan, result, src, host_of)
    skipped = _dnat_skipped(plan, result, proto, port, state)
    if skipped is not None:
        result.complete, result.stop = False, _dnat_stop(plan, result, host_of, skipped[1])
    if result.stop is not None:
        window.close([n.name for n in nss])
        _explain(plan, result, result.stop, nss, window, state, [skipped[0]] if skipped else [])
    if probe.dst in path_local(plan, src_ns.name):
        result.notes.append(f"{probe.dst} is {src_ns.host}'s own address: the kernel delivers it over lo and it never "
                            f"leaves {src_ns.host}")
    note = _closed_port_note(result, proto, port) if skipped is None else None
    if note is not None:
        result.notes.append(note)
    result.elapsed = time.monotonic() - t_start
    return result


def _dnat_stop(plan: Plan, result: TraceResult, host_of: dict[str, str], reason: str) -> Stop:
    """The request's last hop (on the node that should have DNATed it) is where the planned path ended."""
    req = result.leg_hops("request")
    last = req[-1] if req else None
    return Stop("request", reason, last, _expect_after(plan, host_of, last) if last else None)


def _scene(plan: Plan, result: TraceResult, stop: Stop, nss: list[Netns], window: evidence.Window | None,
           state, extra: list[Cause]) -> reasons.Scene:
    """What :mod:`.reasons` needs: every sighting by namespace (interface, direction, outer
    destination), where the stop is and what came in there."""
    seen: dict[str, list[tuple[str, str, str | None]]] = {}
    for h in result.hops:
        seen.setdefault(h.frame.ns, []).append((h.frame.iface, h.frame.direction, _outer(h.decoded).get("dst")))
    last = stop.last
    src_ns = result.src.ns.name if result.src.ns else nss[0].name
    o = _outer(last.decoded) if last is not None else {}
    return reasons.Scene(plan, state, result.probe.src if result.probe else None, result.dst.addr, nss, seen,
                         last.frame.ns if last is not None else src_ns,
                         last.frame.iface if last is not None else None,
                         last.frame.direction if last is not None else None, o.get("dst"), stop.expected, window,
                         never_left=last is None, extra=extra)


def _explain(plan: Plan, result: TraceResult, stop: Stop, nss: list[Netns], window: evidence.Window, state,
             extra: list[Cause]) -> None:
    """Fill the stop's evidence and ranked causes from every namespace of the path."""
    ex = reasons.explain(_scene(plan, result, stop, nss, window, state, extra))
    stop.evidence = ex.evidence
    stop.causes = ex.causes


def _expect_after(plan: Plan, host_of: dict[str, str], hop: Hop) -> Expectation:
    """What the plan expects after ``hop``, asked with the sighting's outermost addresses (the ones
    the device there acts on; the UDP port only for UDP, where it may name a tunnel)."""
    f, o = hop.frame, _outer(hop.decoded)
    udp_dport = o.get("dport") if o.get("l4", ("",))[0] == "udp" else None
    return expected_next(plan, host_of, f.ns, f.iface, f.direction, o.get("dst"), o.get("dst_mac"), udp_dport,
                         o.get("l4"))


def _icmp_error_verdict(plan: Plan, result: TraceResult, host_of: dict[str, str], req: list[Hop],
                        errors: list[Hop]) -> tuple[bool, Stop | None]:
    """An ICMP error came back. "Port unreachable" from the destination itself proves the path
    works; any other error stops the request where the router that sent it saw it: the stop names
    the request's last hop (the evidence then covers the whole path)."""
    first = errors[0]
    icmp = next((ly for ly in first.decoded.layers if ly.name == "ICMP" and not ly.quoted), None)
    origin = _outer(first.decoded).get("src")
    dst_reached = origin == result.dst.addr or (result.probe and origin == result.probe.dst)
    reason = f"{icmp.text if icmp else 'an ICMP error'} from {origin} (first seen on {first.where})"
    if dst_reached and icmp and icmp.fields.get("code") == 3:
        return True, None  # the destination answered "port closed": the path works
    exp = _expect_after(plan, host_of, req[-1]) if req else None
    return False, Stop("request", reason, req[-1] if req else None, exp)


def _never_left(result: TraceResult, ns: Netns) -> Stop:
    """The probe was sent but not seen on any interface: the source's own routing, filtering or
    neighbour resolution kept it."""
    return Stop("request", f"the probe was never seen leaving {ns.host}", None,
                Expectation(f"leave {ns.host} by its route to {result.dst.addr}", ns.name, None, "out", "route"))


def _stop_reason(exp: Expectation, leg: str, last: Hop, src_host: str) -> str:
    """The stop in words: a request that was delivered (or was to be DNATed) but not answered,
    a request that went no further, or an answer that did not make it back."""
    f = last.frame
    if leg != "request":
        return f"the answer was last seen on {last.where} ({f.direction}) and never reached {src_host}"
    if exp.kind == "dnat":
        return f"the probe reached {f.host}, was to be DNATed, and went no further"
    if exp.kind == "local":
        return f"the probe reached {f.host} but no answer was seen"
    return f"the probe was last seen on {last.where} ({f.direction}) and went no further"


def _lost_verdict(plan: Plan, src: Netns, host_of: dict[str, str], last: Hop, leg: str) -> Stop:
    """The packet vanished after ``last``: what the plan expected next there."""
    exp = _expect_after(plan, host_of, last)
    return Stop(leg, _stop_reason(exp, leg, last, src.host), last, exp)


def _verdict(plan: Plan, result: TraceResult, src: Endpoint, host_of: dict[str, str]) -> tuple[bool, Stop | None]:
    """Did the probe make it (an answer back in the source namespace), and if not, where it stopped."""
    if src.ns is None:  # run() refuses a source outside the lab before sending anything
        raise ValueError(f"the trace's source {src.spec} is not in the lab")
    req = result.leg_hops("request")
    answers = [h for h in result.hops if h.leg != "request"]
    back = [h for h in answers if h.frame.ns == src.ns.name and h.frame.direction == "in"]
    if answers and back:
        errors = [h for h in answers if h.leg == "error"]
        if not errors:
            return True, None
        return _icmp_error_verdict(plan, result, host_of, req, errors)
    if not req:
        return False, _never_left(result, src.ns)
    if answers:
        return False, _lost_verdict(plan, src.ns, host_of, answers[-1], answers[-1].leg)
    return False, _lost_verdict(plan, src.ns, host_of, req[-1], "request")
