"""Text output of a trace: one block per hop, the layer stack on one line, changes beneath it."""

from __future__ import annotations

from .engine import Hop, Stop, TraceResult

ARROW = {"out": "->", "in": "<-"}
LEG_TITLE = {"request": "request", "reply": "reply", "error": "ICMP error"}


def _hop_lines(h: Hop) -> list[str]:
    f = h.frame
    verb = "tx" if f.direction == "out" else "rx"
    link = "" if f.ethernet else "  (no Ethernet header: raw IP device)"
    lines = [f"{h.n:>3}  {f.host}:{f.iface} {verb}  +{h.rel_us:.0f}us  {f.wirelen} B{link}",
             f"     {h.decoded.text}" + (f"  [+{h.decoded.payload} B payload]" if h.decoded.payload else "")]
    for c in h.changes:
        lines.append(f"       * {c.text}")
    for note in h.notes:
        lines.append(f"       ! {note}")
    return lines


def _cause_lines(s: Stop, others: int = 4) -> list[str]:
    """The most likely cause with the namespace it sits in, then the next candidates."""
    if not s.causes:
        return []
    top = s.causes[0]
    lines = [f"  most likely cause (in {top.host}): {top.text}"]
    rest = s.causes[1:1 + others]
    if rest:
        lines.append("  other candidates:")
        lines.extend(f"    [{c.score}] (in {c.host}) {c.text}" for c in rest)
    return lines


def text(r: TraceResult) -> str:
    out: list[str] = []
    p = r.probe
    what = f"{p.proto} {p.src} -> {p.dst}" + (f":{p.port}" if p and p.port else "") if p else f"{r.src.spec} -> {r.dst.spec}"
    size = f", {p.length} bytes, ip id {p.ip_id}" if p else ""
    out.append(f"trace {r.lab}: {r.src.spec} -> {r.dst.spec}  ({what}{size})")
    out.append(f"captured in: {', '.join(r.captured)}")
    current = None
    for h in r.hops:
        if h.leg != current:
            current = h.leg
            out.append("")
            out.append(f"--- {LEG_TITLE.get(h.leg, h.leg)} ---")
        out.extend(_hop_lines(h))
    if r.side:
        out.append("")
        out.append("flood copies (a bridge sent the frame out of ports where it went no further):")
        for h in r.side:
            out.append(f"     {h.frame.host}:{h.frame.iface} {'tx' if h.frame.direction == 'out' else 'rx'}")
    out.append("")
    if r.complete:
        legs = " + ".join(LEG_TITLE.get(ly, ly) for ly in r.legs)
        out.append(f"result: delivered and answered ({legs}, {len(r.hops)} hops)")
    elif r.stop is not None:
        s = r.stop
        out.append(f"result: STOPPED — {s.reason}")
        if s.last is not None:
            out.append(f"  last seen: hop {s.last.n}, {s.last.frame.host}:{s.last.frame.iface} "
                       f"{'tx' if s.last.frame.direction == 'out' else 'rx'}")
        if s.expected is not None:
            out.append(f"  plan expected next: {s.expected.text}")
        out.extend(_cause_lines(s))
        if s.evidence:
            out.append("  kernel evidence:")
            out.extend(f"    {line}" for line in s.evidence)
    for note in r.notes:
        out.append(f"note: {note}")
    out.append(f"note: {r.offloads}")
    out.append(f"took {r.elapsed * 1000:.0f} ms")
    return "\n".join(out)
