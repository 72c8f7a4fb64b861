"""Text output of a trace, fitted to the terminal.

Why this shape: every fact a trace finds is right, but printed as it is decoded a VXLAN hop is a
300-character line, and a 24-hop trace repeats the same headers at hop after hop. What a reader
wants from a hop is *where* it is and *what changed* there. So by default each hop is one line
(namespace:interface, direction, time, size); the header stack is printed only where it differs
from the hop before (``= as hop 3`` otherwise), with what changed coloured: new values, headers an
encapsulation added, rewrites as old -> new. Lines break between headers (never inside an
address) and never pass the terminal width. ``verbose`` prints every hop's full stack, the change
texts as the engine words them and the offload note, as the trace always did.

Both this module and the picture (:mod:`.svg`) read a :class:`TraceView`, built from the
``--json`` document (``TraceResult.as_dict()``): a recorded ``--json`` renders exactly like a live
trace, which is what the unit tests rely on, and neither renderer needs scapy or the kernel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.text import Text

if TYPE_CHECKING:
    from .engine import TraceResult

LEG_TITLE = {"request": "request", "reply": "reply", "error": "ICMP error"}
DEFAULT_WIDTH = 100
MIN_WIDTH = 40

#: Styles (rich). Colour is only ever emphasis: every fact is also in the plain text.
OLD, NEW, ADDED, REMOVED, CHANGED = "red", "bold green", "green", "red", "yellow"
STOPPED, CAUSE, DIM, LEG, NOTE = "bold red", "yellow", "dim", "bold cyan", "magenta"

#: The fields whose rewriting is a hop's work (what a router, NAT or VTEP does); lengths,
#: checksums and outer IP ids change with every encapsulation and say nothing.
WATCHED: dict[str, tuple[str, ...]] = {
    "Ether": ("src", "dst"), "IP": ("src", "dst", "ttl"), "TCP": ("sport", "dport"),
    "UDP": ("sport", "dport"), "ICMP": ("id",), "VXLAN": ("vni",),
}


# ---- the view: what both renderers read ----------------------------------------------------------

@dataclass
class LayerView:
    """One decoded header, as ``--json`` lists it."""

    name: str
    fields: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    quoted: bool = False

    @property
    def key(self) -> str:
        """The name stacks are aligned by: a quoted header (inside an ICMP error) is not the same
        header as the packet's own."""
        return ("q:" if self.quoted else "") + self.name


@dataclass
class ChangeView:
    kind: str
    text: str
    old: dict[str, Any] = field(default_factory=dict)
    new: dict[str, Any] = field(default_factory=dict)


@dataclass
class HopView:
    n: int
    leg: str
    host: str
    iface: str
    direction: str
    time_us: float = 0.0
    length: int = 0
    link: str = "ethernet"
    layers: list[LayerView] = field(default_factory=list)
    payload: int = 0
    changes: list[ChangeView] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ns: str = ""

    @property
    def where(self) -> str:
        return f"{self.host}:{self.iface}"

    @property
    def verb(self) -> str:
        return "tx" if self.direction == "out" else "rx"

    def same_headers(self, other: HopView) -> bool:
        """The same headers with the same values (what ``= as hop N`` claims)."""
        return [ly.text for ly in self.layers] == [ly.text for ly in other.layers] and self.payload == other.payload

    @classmethod
    def from_dict(cls, d: dict) -> HopView:
        return cls(d["n"], d["leg"], d["host"], d["iface"], d["direction"], d.get("time_us", 0.0),
                   d.get("length", 0), d.get("link", "ethernet"),
                   [LayerView(ly["name"], ly.get("fields", {}), ly.get("text", ly["name"]), ly.get("quoted", False))
                    for ly in d.get("layers", [])],
                   d.get("payload", 0),
                   [ChangeView(c["kind"], c["text"], c.get("old", {}), c.get("new", {})) for c in d.get("changes", [])],
                   list(d.get("notes", [])), d.get("ns", ""))


@dataclass
class CauseView:
    score: int
    host: str
    text: str
    source: str = ""


@dataclass
class StopView:
    leg: str
    reason: str
    last: dict | None = None  # n, host, iface, direction of the last sighting
    expected: dict | None = None  # text, ns, iface, direction, kind
    causes: list[CauseView] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)

    @property
    def last_where(self) -> str | None:
        if self.last is None:
            return None
        verb = "tx" if self.last["direction"] == "out" else "rx"
        return f"hop {self.last['n']}, {self.last['host']}:{self.last['iface']} {verb}"

    @classmethod
    def from_dict(cls, d: dict) -> StopView:
        causes = [CauseView(c["score"], c["host"], c["text"], c.get("source", "")) for c in d.get("causes", [])]
        return cls(d.get("leg", "request"), d["reason"], d.get("last_seen"), d.get("expected_next"), causes,
                   list(d.get("evidence", [])))


@dataclass
class TraceView:
    lab: str
    src: str
    dst: str
    probe: dict | None
    captured: list[str] = field(default_factory=list)
    complete: bool = False
    legs: list[str] = field(default_factory=list)
    hops: list[HopView] = field(default_factory=list)
    flood: list[HopView] = field(default_factory=list)
    stop: StopView | None = None
    notes: list[str] = field(default_factory=list)
    offloads: str = ""
    elapsed_s: float = 0.0

    @property
    def title(self) -> str:
        """``trace LAB: SRC -> DST  (proto a -> b:port, N bytes, ip id I)``, as the trace always began."""
        p = self.probe
        head = f"trace {self.lab}: {self.src} -> {self.dst}"
        if not p:
            return head
        port = f":{p['dport']}" if p.get("dport") else ""
        return f"{head}  ({p['proto']} {p['src']} -> {p['dst']}{port}, {p['length']} bytes, ip id {p['ip_id']})"

    @property
    def result(self) -> str:
        if self.complete:
            legs = " + ".join(LEG_TITLE.get(leg, leg) for leg in self.legs)
            return f"delivered and answered ({legs}, {len(self.hops)} hops)"
        if self.stop is not None:
            return f"STOPPED — {self.stop.reason}"
        return "not answered"

    @classmethod
    def from_dict(cls, d: dict) -> TraceView:
        return cls(d["lab"], d["src"]["spec"], d["dst"]["spec"], d.get("probe"), list(d.get("captured", [])),
                   bool(d.get("complete")), list(d.get("legs", [])), [HopView.from_dict(h) for h in d.get("hops", [])],
                   [HopView.from_dict(h) for h in d.get("flood_copies", [])],
                   StopView.from_dict(d["stop"]) if d.get("stop") else None, list(d.get("notes", [])),
                   d.get("offloads", ""), d.get("elapsed_s", 0.0))

    @classmethod
    def from_result(cls, r: TraceResult) -> TraceView:
        return cls.from_dict(r.as_dict())


# ---- what a hop rewrote (shared with the picture) -------------------------------------------------

@dataclass
class Rewrite:
    """What a hop did to the headers of the hop before it in the same leg, per header: which of
    its headers are new (an encapsulation), which of the previous hop's outer headers are gone (a
    decapsulation), and the old value of every watched field that changed, by header index."""

    added: set[int] = field(default_factory=set)
    removed: list[LayerView] = field(default_factory=list)
    fields: dict[int, dict[str, Any]] = field(default_factory=dict)

    def old(self, index: int, name: str) -> Any:
        return self.fields.get(index, {}).get(name)


def _common_tail(a: list[LayerView], b: list[LayerView]) -> int:
    """How many headers two stacks share from the inside: encapsulation only adds or removes
    headers on the outside, so the probe's own headers line up from the innermost."""
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n].key == b[-1 - n].key:
        n += 1
    return n


def rewrites(prev: HopView | None, hop: HopView) -> Rewrite:
    """The :class:`Rewrite` from ``prev`` (None: the first sighting of a leg, nothing to compare)."""
    if prev is None or prev.leg != hop.leg:
        return Rewrite()
    tail = _common_tail(prev.layers, hop.layers)
    start_new, start_old = len(hop.layers) - tail, len(prev.layers) - tail
    out = Rewrite(set(range(start_new)), prev.layers[:start_old])
    for k in range(tail):
        old, new = prev.layers[start_old + k], hop.layers[start_new + k]
        if new.quoted:
            continue
        moved = {f: old.fields.get(f) for f in WATCHED.get(new.name, ())
                 if f in new.fields and old.fields.get(f) != new.fields.get(f)}
        if moved:
            out.fields[start_new + k] = moved
    return out


def pairs(hops: list[HopView]) -> list[tuple[HopView, Rewrite]]:
    """Every hop with what it rewrote relative to the hop before it in its leg."""
    out: list[tuple[HopView, Rewrite]] = []
    prev: HopView | None = None
    for h in hops:
        out.append((h, rewrites(prev, h)))
        prev = h
    return out


# ---- fitting text into the width ----------------------------------------------------------------

@dataclass
class Atom:
    """A piece that is never broken across lines (a header, a word), with what joins it to the
    piece before when both sit on one line. A line that begins with it repeats the joiner's mark
    (``/`` between headers) so a continued stack reads as one."""

    text: Text
    joiner: str = " "
    mark: str = ""  # what a line that starts with this atom begins with


def _words(t: Text, limit: int) -> list[Text]:
    """``t`` in words of at most ``limit`` cells (a longer word is cut: nothing passes the width)."""
    out: list[Text] = []
    for w in t.split(" "):
        while w.cell_len > limit:
            head, w = w.divide([limit])
            out.append(head)
        out.append(w)
    return out


def atoms(pieces: list[Text], sep: str, limit: int, mark: str = "", first: str = "") -> list[Atom]:
    """Pieces joined by ``sep`` (the first by ``first`` to what comes before it); a piece longer
    than ``limit`` cells becomes words joined by spaces. A line continued at a piece boundary
    starts with ``mark``."""
    out: list[Atom] = []
    for i, p in enumerate(pieces):
        parts = [p] if p.cell_len <= limit else _words(p, limit)
        for j, w in enumerate(parts):
            head = j == 0
            out.append(Atom(w, (sep if i else first) if head else " ", mark if head else ""))
    return out


def pack(items: list[Atom], width: int, lead: Text | str = "", hang: int = 0) -> list[Text]:
    """Lay atoms out on lines of at most ``width`` cells: the first line starts with ``lead``, the
    others with ``hang`` spaces. Breaks happen only between atoms."""
    lines: list[Text] = []
    cur = Text(lead) if isinstance(lead, str) else lead.copy()
    placed = False
    for a in items:
        join = a.joiner if placed else ""
        full = cur.cell_len + len(join) + a.text.cell_len > width
        if full and (placed or cur.plain.strip()):
            lines.append(cur)
            cur = Text(" " * hang + (a.mark + " " if a.mark else ""))
            join = ""
        cur.append(join)
        cur.append_text(a.text)
        placed = True
    lines.append(cur)
    return lines


def wrap(text: str | Text, width: int, lead: str = "", hang: int | None = None, style: str = "") -> list[Text]:
    """Prose (a reason, a cause, evidence) broken at spaces, continued under its first word."""
    hang = len(lead) + 2 if hang is None else hang
    body = Text(text, style=style) if isinstance(text, str) else text
    limit = max(8, width - hang - 1)
    return pack(atoms(_words(body, limit), " ", limit), width, lead, hang)


# ---- one hop ------------------------------------------------------------------------------------

def _mark_values(t: Text, values: list[str], style: str) -> None:
    """Colour each value (an address, a port, ``ttl 63``) where it stands as a whole token."""
    for v in values:
        for m in re.finditer(rf"(?<![\w.:]){re.escape(v)}(?![\w.:])", t.plain):
            t.stylize(style, m.start(), m.end())


def _layer_text(ly: LayerView, index: int, rw: Rewrite) -> Text:
    """A header's text, green if this hop added it, with the values it rewrote in colour."""
    if index in rw.added:
        return Text(ly.text, style=ADDED)
    t = Text(ly.text)
    moved = rw.fields.get(index, {})
    _mark_values(t, [f"ttl {ly.fields[f]}" if f == "ttl" else str(ly.fields[f]) for f in moved], CHANGED)
    return t


def stack_lines(h: HopView, rw: Rewrite, width: int, indent: int = 5) -> list[Text]:
    """The header stack, broken between headers, the payload last."""
    pieces = [_layer_text(ly, i, rw) for i, ly in enumerate(h.layers)]
    limit = max(8, width - indent - 3)
    items = atoms(pieces, " / ", limit, "/")
    if h.payload:
        items.append(Atom(Text(f"[+{h.payload} B payload]", style=DIM), "  "))
    return pack(items, width, " " * indent, indent)


def _arrowed(text: str) -> Text:
    """A change's text with ``old -> new`` drawn as old → new, old in red and new in green."""
    t = Text()
    pos = 0
    for m in re.finditer(r"(\S+) -> ([^\s,]+)", text):
        t.append(text[pos:m.start()])
        t.append(m.group(1), style=OLD)
        t.append(" → ")
        t.append(m.group(2), style=NEW)
        pos = m.end()
    t.append(text[pos:])
    return t


def change_text(c: ChangeView, verbose: bool) -> Text:
    """One change: an encapsulation by the headers' names (the stack above shows their values, in
    green), a rewrite as old → new. ``verbose`` keeps the engine's words, values and all."""
    if c.kind == "encap-added" and not verbose:
        return Text("encapsulated: + " + "/".join(c.new.get("layers", [])), style=ADDED)
    if c.kind == "encap-removed":
        return Text("decapsulated: - " + "/".join(c.old.get("layers", [])), style=REMOVED)
    return _arrowed(c.text)


def _time(us: float) -> str:
    return f"+{us:.0f}us" if us < 10000 else f"+{us / 1000:.1f}ms"


def hop_line(h: HopView, where_w: int, same_as: int | None, width: int) -> list[Text]:
    """``  4  node1:flannel.1   tx    +45us    98 B`` and, if nothing changed, ``= as hop 3``."""
    where = Text(f"{h.n:>3}  ")
    where.append(h.where, style="bold")
    where.append(" " * (where_w - len(h.where)))
    pieces = [where, Text(f"{h.verb}  {_time(h.time_us):>8}  {h.length:>5} B")]
    if h.link != "ethernet":
        pieces.append(Text("raw IP, no Ethernet header", style=NOTE))
    if same_as is not None:
        pieces.append(Text(f"= as hop {same_as}", style=DIM))
    return pack(atoms(pieces, "  ", width - 6), width, "", 5)


def hop_block(h: HopView, rw: Rewrite, where_w: int, same_as: int | None, width: int, verbose: bool) -> list[Text]:
    """A hop: its line, its stack unless ``same_as`` names an identical earlier one, its changes
    and notes."""
    out = hop_line(h, where_w, same_as, width)
    if same_as is None:
        out += stack_lines(h, rw, width)
    for c in h.changes:
        parts = list(change_text(c, verbose).split(", "))
        out += pack(atoms(parts, ", ", width - 8), width, "     * ", 7)
    for note in h.notes:
        out += wrap(note, width, "     ! ", 7, NOTE)
    return out


def _where_width(hops: list[HopView]) -> int:
    return min(max((len(h.where) for h in hops), default=0), 34)


def hop_lines(v: TraceView, width: int, verbose: bool) -> list[Text]:
    """Every hop, under a title per leg; the stack is printed where it differs from the last one
    printed (in verbose mode, always)."""
    out: list[Text] = []
    where_w = _where_width(v.hops)
    leg: str | None = None
    shown: HopView | None = None
    for h, rw in pairs(v.hops):
        if h.leg != leg:
            leg, shown = h.leg, None
            out += [Text(""), Text(f"--- {LEG_TITLE.get(h.leg, h.leg)} ---", style=LEG)]
        same = shown is not None and not verbose and h.same_headers(shown)
        out += hop_block(h, rw, where_w, shown.n if same and shown else None, width, verbose)
        if not same:
            shown = h
    return out


# ---- the verdict --------------------------------------------------------------------------------

def _cause_lines(s: StopView, width: int, others: int = 4) -> list[Text]:
    """The most likely cause with the namespace it sits in, then the plan's expectation, then the
    next candidates (by score)."""
    out: list[Text] = []
    if s.causes:
        top = s.causes[0]
        lead = Text("  most likely cause ", style=CAUSE)
        lead.append(f"(in {top.host}): ")
        out += pack(atoms(_words(Text(top.text, style=CAUSE), width - 7), " ", width - 7), width, lead, 6)
    if s.expected is not None:
        out += wrap(f"plan expected next: {s.expected['text']}", width, "  ", 6)
    rest = s.causes[1:1 + others]
    if rest:
        out.append(Text("  other candidates:"))
        for c in rest:
            out += wrap(f"[{c.score}] (in {c.host}) {c.text}", width, "    ", 8)
    return out


def stop_lines(s: StopView, width: int) -> list[Text]:
    """Where it stopped, the most likely cause first, then the kernel's evidence."""
    head = Text("result: ")
    head.append("STOPPED", style=STOPPED)
    head.append(f" — {s.reason}")
    out = wrap(head, width, "", 8)
    if s.last_where:
        out.append(Text(f"  last seen: {s.last_where}"))
    out += _cause_lines(s, width)
    if s.evidence:
        out.append(Text("  kernel evidence:"))
        for line in s.evidence:
            out += wrap(line, width, "    ", 8, DIM)
    return out


def _flood_lines(v: TraceView, width: int) -> list[Text]:
    if not v.flood:
        return []
    copies = [Text(f"{h.where} {h.verb}") for h in v.flood]
    head = wrap("flood copies (a bridge sent the frame out of ports where it went no further):", width, "", 2)
    return [Text(""), *head, *pack(atoms(copies, ", ", width - 6), width, "     ", 5)]


def lines(v: TraceView, width: int = DEFAULT_WIDTH, verbose: bool = False) -> list[Text]:
    """The whole trace as lines of at most ``width`` cells (rich Text, coloured)."""
    width = max(width, MIN_WIDTH)
    out = wrap(v.title, width, "", 6) + wrap(f"captured in: {', '.join(v.captured)}", width, "", 13)
    out += hop_lines(v, width, verbose) + _flood_lines(v, width) + [Text("")]
    if v.complete:
        out += wrap(Text("result: ").append(v.result, style="bold green"), width, "", 8)
    elif v.stop is not None:
        out += stop_lines(v.stop, width)
    for note in v.notes:
        out += wrap(f"note: {note}", width, "", 6)
    if verbose and v.offloads:
        out += wrap(f"note: {v.offloads}", width, "", 6)
    out.append(Text(f"took {v.elapsed_s * 1000:.0f} ms", style=DIM))
    return out


def text(r: TraceResult | TraceView, width: int = DEFAULT_WIDTH, verbose: bool = False) -> str:
    """The trace as plain text (no colour): what a log or a test reads."""
    v = r if isinstance(r, TraceView) else TraceView.from_result(r)
    return "\n".join(line.plain.rstrip() for line in lines(v, width, verbose))
