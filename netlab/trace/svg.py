"""A trace as a picture (``netlab trace … --svg FILE``, ``--html FILE``), drawn the way the seed
explains a datapath: one column per hop, in order, and in each the packet's header stack as boxes.

Why these choices:

- the stacks are aligned at the bottom, on the innermost header (the probe's own ICMP or TCP), the
  way :mod:`.diff` aligns them: an encapsulation then shows as boxes appearing on top of an inner
  packet that stays where it was, and a decapsulation as those boxes disappearing;
- a box shows the fields a hop may rewrite (MACs, addresses, ports, TTL, VNI); a rewritten field
  is highlighted with old → new, a header the hop added has a green border, and above the stack
  a line per change says what the hop did (MAC rewrite, SNAT, + Ether/IP/UDP/VXLAN);
- every column has the same width and every line of text is cut to what fits its box (a
  monospace font, so the width of a line is its length), so the picture never overlaps itself;
- the SVG is written as plain XML text: no drawing library, nothing to install, and a test can
  parse it with ``xml.etree``.

It reads the same :class:`~.render.TraceView` as the terminal output (a live trace or a recorded
``--json``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from .render import LEG_TITLE, HopView, LayerView, Rewrite, StopView, TraceView, pairs

FONT = 11  # px, monospace
CHAR_W = 6.7  # px per character of an 11 px DejaVu Sans Mono (0.602 em), rounded up
LINE_H = 14
COL_W = 184  # one hop's column, box and gap
BOX_W = 170
MARGIN = 16
MIN_WIDTH = 760
BOX_CHARS = int((BOX_W - 10) / CHAR_W)  # what fits on one line of a box

FILL = {"Ether": "#dbeafe", "IP": "#dcfce7", "TCP": "#fef3c7", "UDP": "#fef3c7", "VXLAN": "#ede9fe",
        "ICMP": "#f3f4f6"}
OTHER_FILL = "#fce7f3"

CSS = f"""
text {{ font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: {FONT}px; fill: #111827; }}
.title {{ font-size: 13px; font-weight: bold; }}
.ok {{ fill: #15803d; font-weight: bold; }}
.bad {{ fill: #b91c1c; font-weight: bold; }}
.host {{ font-weight: bold; }}
.dim {{ fill: #6b7280; }}
.box-title {{ font-weight: bold; }}
.new {{ font-weight: bold; fill: #14532d; }}
.old {{ fill: #b91c1c; }}
.added {{ fill: #15803d; font-weight: bold; }}
.removed {{ fill: #b91c1c; font-weight: bold; }}
.rewrite {{ fill: #92400e; font-weight: bold; }}
.leg {{ font-weight: bold; fill: #0e7490; }}
"""


def _fit(s: str, chars: int = BOX_CHARS) -> str:
    """A line cut to ``chars`` characters (an ellipsis says it was cut): text never leaves its box."""
    return s if len(s) <= chars else s[: chars - 1] + "…"


def _wrap(s: str, chars: int) -> list[str]:
    """Words packed into lines of at most ``chars``; a longer word is cut into pieces."""
    out: list[str] = []
    cur = ""
    for word in s.split():
        while len(word) > chars:
            if cur:
                out.append(cur)
                cur = ""
            out.append(word[:chars])
            word = word[chars:]
        if cur and len(cur) + 1 + len(word) > chars:
            out.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    if cur:
        out.append(cur)
    return out


# ---- what goes in a box -------------------------------------------------------------------------

@dataclass
class Line:
    text: str
    kind: str = "field"  # title, field, old, new


def _title_and_rows(ly: LayerView) -> tuple[str, list[tuple[str | None, str]]]:
    """A header's box: its title and its rows, each row tagged with the field it shows (None for
    a row that is only words), so a rewritten field can be found and highlighted."""
    f = ly.fields
    q = "quoted " if ly.quoted else ""
    if ly.name == "Ether":
        return "Ether", [("src", f"src {f.get('src')}"), ("dst", f"dst {f.get('dst')}")]
    if ly.name == "IP":
        df = " DF" if "DF" in str(f.get("flags", "")) else ""
        return f"{q}IP{df}", [("src", f"src {f.get('src')}"), ("dst", f"dst {f.get('dst')}"), ("ttl", f"ttl {f.get('ttl')}")]
    if ly.name in ("TCP", "UDP"):
        flags = f" [{f['flags']}]" if f.get("flags") else ""
        return f"{q}{ly.name}{flags}", [("sport", f"sport {f.get('sport')}"), ("dport", f"dport {f.get('dport')}")]
    if ly.name == "VXLAN":
        return "VXLAN", [("vni", f"vni {f.get('vni')}")]
    words = ly.text.split()
    if ly.quoted and words[:1] == ["quoted"]:
        words = words[1:]
    if ly.name == "ICMP" and "id" in f:
        return f"{q}{' '.join(words[:2])}", [("id", f"id {f['id']}"), (None, f"seq {f.get('seq')}")]
    head = words[:2] if ly.name == "ICMP" else words[:1]
    return q + " ".join(head), [(None, w) for w in _wrap(" ".join(words[len(head):]), BOX_CHARS)]


def box_lines(ly: LayerView, index: int, rw: Rewrite) -> list[Line]:
    """The lines of one header's box; a field this hop rewrote reads ``old → new`` on one line
    if it fits, else the old value struck through above ``→ new``."""
    title, rows = _title_and_rows(ly)
    out = [Line(_fit(title), "title")]
    for name, text in rows:
        old = rw.old(index, name) if name else None
        if old is None:
            out.append(Line(_fit(text)))
            continue
        label, new = text.split(" ", 1)
        one = f"{label} {old} → {new}"
        if len(one) <= BOX_CHARS:
            out.append(Line(one, "new"))
        else:
            out += [Line(_fit(f"{label} {old}"), "old"), Line(_fit(f"→ {new}"), "new")]
    return out


def change_labels(rw: Rewrite, h: HopView) -> list[tuple[str, str]]:
    """What the hop did, one short label each (text, CSS class)."""
    out: list[tuple[str, str]] = []
    if rw.removed:
        out.append((_fit("− " + "/".join(ly.name for ly in rw.removed)), "removed"))
    if rw.added:
        out.append((_fit("+ " + "/".join(h.layers[i].name for i in sorted(rw.added))), "added"))
    names = {"mac-rewrite": "MAC rewrite", "snat": "SNAT", "dnat": "DNAT", "unsnat": "reverse SNAT",
             "undnat": "reverse DNAT"}
    for c in h.changes:
        if c.kind == "ttl":
            out.append((_fit(f"TTL {c.old.get('ttl')} → {c.new.get('ttl')}"), "rewrite"))
        elif c.kind in names:
            label = names[c.kind]
            if (label, "rewrite") not in out:
                out.append((label, "rewrite"))
        elif not c.kind.startswith("encap"):
            out.append((_fit(c.text), "rewrite"))
    return out


# ---- layout -------------------------------------------------------------------------------------

@dataclass
class Column:
    """One column: a hop (with what it rewrote), or the place the plan expected the probe next."""

    hop: HopView | None
    rewrite: Rewrite = field(default_factory=Rewrite)
    boxes: list[list[Line]] = field(default_factory=list)
    labels: list[tuple[str, str]] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)


@dataclass
class Layout:
    columns: list[Column]
    depth: int  # rows of boxes (the deepest stack)
    row_lines: list[int]  # lines of text in each row's tallest box
    label_lines: int
    width: int
    chars: int  # characters across the whole picture (the title and footer)


def _expected_column(s: StopView) -> Column:
    exp = s.expected["text"] if s.expected else "no expectation from the plan"
    return Column(None, expected=_wrap(f"expected next: {exp}", BOX_CHARS)[:14])


def columns(v: TraceView) -> list[Column]:
    """The hops in order; if the probe stopped, the column of what was expected next follows
    the last sighting (or comes first, if the probe never left its source)."""
    out: list[Column] = []
    stop_n = v.stop.last["n"] if v.stop is not None and v.stop.last else None
    if v.stop is not None and stop_n is None:
        out.append(_expected_column(v.stop))
    for h, rw in pairs(v.hops):
        out.append(Column(h, rw, [box_lines(ly, i, rw) for i, ly in enumerate(h.layers)], change_labels(rw, h)))
        if v.stop is not None and h.n == stop_n:
            out.append(_expected_column(v.stop))
    return out


def layout(v: TraceView) -> Layout:
    cols = columns(v)
    depth = max((len(c.boxes) for c in cols), default=0)
    rows = [1] * depth
    for c in cols:
        for i, b in enumerate(c.boxes):
            r = depth - len(c.boxes) + i
            rows[r] = max(rows[r], len(b))
    width = max(MIN_WIDTH, 2 * MARGIN + len(cols) * COL_W)
    return Layout(cols, depth, rows, max([1] + [len(c.labels) for c in cols]), width,
                  int((width - 2 * MARGIN) / CHAR_W))


# ---- drawing ------------------------------------------------------------------------------------

def _t(x: float, y: float, s: str, cls: str = "", anchor: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    a = f' text-anchor="{anchor}"' if anchor else ""
    return f'<text x="{x:.1f}" y="{y:.1f}"{c}{a}>{html.escape(s, quote=False)}</text>'


def _rect(x: float, y: float, w: float, h: float, fill: str, stroke: str = "#9ca3af", extra: str = "") -> str:
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="3" fill="{fill}" '
            f'stroke="{stroke}"{extra}/>')


def _box(x: float, y: float, h: float, lines: list[Line], name: str, added: bool) -> list[str]:
    """One header: a filled box, its lines; rewritten lines on a yellow band, old ones struck."""
    stroke = ' stroke-width="2.5"' if added else ""
    out = [_rect(x, y, BOX_W, h, FILL.get(name, OTHER_FILL), "#16a34a" if added else "#9ca3af", stroke)]
    for k, ln in enumerate(lines):
        ty = y + 4 + (k + 1) * LINE_H - 3
        if ln.kind == "new":
            out.append(_rect(x + 2, ty - LINE_H + 3, BOX_W - 4, LINE_H, "#fde68a", "none"))
        out.append(_t(x + 5, ty, ln.text, {"title": "box-title", "field": ""}.get(ln.kind, ln.kind)))
        if ln.kind == "old":
            y_mid, x_end = ty - 4, x + 5 + len(ln.text) * CHAR_W
            out.append(f'<line x1="{x + 5:.1f}" y1="{y_mid:.1f}" x2="{x_end:.1f}" y2="{y_mid:.1f}" stroke="#b91c1c"/>')
    return out


def _header(c: Column, x: float, y: float) -> list[str]:
    """The hop's number, direction, time and size, its namespace and its interface."""
    h = c.hop
    if h is None:
        return []
    link = "  raw IP" if h.link != "ethernet" else ""
    return [f'<g class="hop" id="hop-{h.n}">', f"<title>hop {h.n}: {html.escape(h.where)} {h.verb}</title>",
            _t(x, y, _fit(f"#{h.n} {h.verb}  +{h.time_us:.0f}us"), "dim"),
            _t(x, y + LINE_H, _fit(h.host), "host"), _t(x, y + 2 * LINE_H, _fit(h.iface)),
            _t(x, y + 3 * LINE_H, _fit(f"{h.length} B{link}"), "dim"), "</g>"]


def _stack(lay: Layout, c: Column, x: float, y: float) -> list[str]:
    """The boxes of a column, bottom-aligned on the innermost header."""
    out: list[str] = []
    tops = [y]
    for n in lay.row_lines:
        tops.append(tops[-1] + n * LINE_H + 12)
    first = lay.depth - len(c.boxes)
    for i, lines in enumerate(c.boxes):
        r = first + i
        h = c.hop
        assert h is not None
        out += _box(x, tops[r], lay.row_lines[r] * LINE_H + 8, lines, h.layers[i].name, i in c.rewrite.added)
    gone = c.rewrite.removed
    for k, ly in enumerate(gone):  # the headers this hop took off, as empty outlines where they were
        r = first - len(gone) + k
        if r >= 0:
            out += [_rect(x, tops[r], BOX_W, lay.row_lines[r] * LINE_H + 8, "none", "#f87171",
                          ' stroke-dasharray="4,3"'), _t(x + 5, tops[r] + LINE_H + 1, _fit(f"− {ly.name}"), "removed")]
    if c.hop is not None and c.hop.payload:
        out.append(_t(x + 5, tops[-1] + LINE_H - 4, f"+ {c.hop.payload} B payload", "dim"))
    return out


def _expected(c: Column, x: float, y: float, h: float) -> list[str]:
    """The place the probe was expected next and never seen: dashed, in red."""
    out = [_rect(x, y, BOX_W, h, "#fef2f2", "#b91c1c", ' stroke-dasharray="5,3"'),
           _t(x + 5, y + LINE_H + 2, "✕ not seen", "bad")]
    out += [_t(x + 5, y + (k + 2) * LINE_H + 4, line) for k, line in enumerate(c.expected)]
    return out


def _column_legs(v: TraceView, cols: list[Column]) -> list[str]:
    """Each column's leg; the expected-next column belongs to the leg that stopped."""
    stopped = v.stop.leg if v.stop is not None else "request"
    return [c.hop.leg if c.hop is not None else stopped for c in cols]


def _legs(v: TraceView, lay: Layout, y: float) -> list[str]:
    """A band over the columns of each leg (request →, reply →) so the turn-around is visible."""
    out: list[str] = []
    legs = _column_legs(v, lay.columns)
    start = 0
    for i in range(1, len(legs) + 1):
        if i < len(legs) and legs[i] == legs[start]:
            continue
        x0, x1 = MARGIN + start * COL_W, MARGIN + i * COL_W - (COL_W - BOX_W)
        out += [_rect(x0, y, x1 - x0, LINE_H + 4, "#ecfeff", "#67e8f9"),
                _t(x0 + 6, y + LINE_H - 1, LEG_TITLE.get(legs[start], legs[start]) + " →", "leg")]
        start = i
    return out


def _footer(v: TraceView, lay: Layout, y: float) -> list[str]:
    """The result, and for a stop where it stopped and its most likely cause."""
    lines: list[tuple[str, str]] = []
    if v.stop is not None:
        s = v.stop
        lines += [(ln, "bad") for ln in _wrap(v.result, lay.chars)]
        if s.last_where:
            lines += [(ln, "") for ln in _wrap(f"last seen: {s.last_where}", lay.chars)]
        if s.causes:
            top = s.causes[0]
            lines += [(ln, "") for ln in _wrap(f"most likely cause (in {top.host}): {top.text}", lay.chars)]
    else:
        lines += [(ln, "ok" if v.complete else "bad") for ln in _wrap(f"result: {v.result}", lay.chars)]
    legend = ("boxes: headers, outermost on top · green border: added by this hop · dashed red: removed by "
              "this hop · yellow: rewritten by this hop (old → new)")
    lines += [(ln, "dim") for ln in _wrap(legend, lay.chars)]
    return [_t(MARGIN, y + (k + 1) * LINE_H, text, cls) for k, (text, cls) in enumerate(lines)]


def _column(lay: Layout, c: Column, x: float, y: dict[str, float], stopped: bool) -> list[str]:
    out = _header(c, x, y["header"])
    out += [_t(x, y["labels"] + k * LINE_H, text, cls) for k, (text, cls) in enumerate(c.labels)]
    if c.hop is None:
        return out + _expected(c, x, y["boxes"], y["bottom"] - y["boxes"])
    out += _stack(lay, c, x, y["boxes"])
    if stopped:
        out += [_rect(x - 4, y["header"] - LINE_H, BOX_W + 8, y["bottom"] - y["header"] + LINE_H + 4, "none",
                      "#b91c1c", ' stroke-width="2"'),
                _t(x, y["bottom"] + LINE_H, "✕ last seen here", "bad")]
    return out


def svg(v: TraceView) -> str:
    """The picture as an SVG document (UTF-8 text)."""
    lay = layout(v)
    title = _wrap(v.title, lay.chars)
    y: dict[str, float] = {"legs": MARGIN + len(title) * 16 + 4}
    y["header"] = y["legs"] + LINE_H + 4 + 20
    y["labels"] = y["header"] + 4 * LINE_H + 6
    y["boxes"] = y["labels"] + lay.label_lines * LINE_H
    y["bottom"] = y["boxes"] + sum(n * LINE_H + 12 for n in lay.row_lines) + LINE_H
    stop_n = v.stop.last["n"] if v.stop is not None and v.stop.last else None
    body: list[str] = [_t(MARGIN, MARGIN + 12 + k * 16, line, "title") for k, line in enumerate(title)]
    body += _legs(v, lay, y["legs"])
    for i, c in enumerate(lay.columns):
        x = MARGIN + i * COL_W
        body += _column(lay, c, x, y, c.hop is not None and c.hop.n == stop_n)
    foot = _footer(v, lay, y["bottom"] + 2 * LINE_H)
    height = int(y["bottom"] + 2 * LINE_H + (len(foot) + 1) * LINE_H)
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{lay.width}" height="{height}" '
            f'viewBox="0 0 {lay.width} {height}">')
    return "\n".join([head, f"<title>{html.escape(v.title)}</title>", f"<style>{CSS}</style>",
                      _rect(0, 0, lay.width, height, "#ffffff", "none"), *body, *foot, "</svg>"]) + "\n"


def document(v: TraceView) -> str:
    """A standalone .svg file."""
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + svg(v)


# ---- the HTML page ------------------------------------------------------------------------------

def _row(h: HopView) -> str:
    cells = [str(h.n), LEG_TITLE.get(h.leg, h.leg), h.where, h.verb, f"+{h.time_us:.0f}us", f"{h.length} B",
             " / ".join(ly.text for ly in h.layers) + (f"  [+{h.payload} B payload]" if h.payload else ""),
             "; ".join(c.text for c in h.changes)]
    return "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"


def _stop_html(s: StopView) -> list[str]:
    out = [f'<p class="bad">STOPPED — {html.escape(s.reason)}</p>', "<ul>"]
    if s.last_where:
        out.append(f"<li>last seen: {html.escape(s.last_where)}</li>")
    if s.causes:
        out.append(f"<li>most likely cause (in {html.escape(s.causes[0].host)}): {html.escape(s.causes[0].text)}</li>")
    if s.expected:
        out.append(f"<li>plan expected next: {html.escape(s.expected['text'])}</li>")
    out += [f"<li>[{c.score}] (in {html.escape(c.host)}) {html.escape(c.text)}</li>" for c in s.causes[1:]]
    out.append("</ul>")
    if s.evidence:
        out += ["<p>kernel evidence:</p>", "<pre>" + html.escape("\n".join(s.evidence)) + "</pre>"]
    return out


def page(v: TraceView) -> str:
    """A minimal HTML page: the picture, then the hops as a table of text (for search, copy and
    screen readers), then the verdict."""
    heads = ["#", "leg", "namespace:interface", "dir", "time", "size", "headers", "changes"]
    table = ["<table>", "<thead><tr>" + "".join(f"<th>{h}</th>" for h in heads) + "</tr></thead>", "<tbody>",
             *(_row(h) for h in v.hops), "</tbody>", "</table>"]
    verdict = _stop_html(v.stop) if v.stop is not None else [f'<p class="ok">{html.escape(v.result)}</p>']
    style = ("body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;font-size:12px}"
             "td,th{border:1px solid #d1d5db;padding:2px 6px;text-align:left;vertical-align:top}"
             "td:nth-child(7){font-family:monospace}.bad{color:#b91c1c;font-weight:bold}"
             ".ok{color:#15803d;font-weight:bold}.picture{overflow-x:auto}")
    return "\n".join(["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8"/>',
                      f"<title>{html.escape(v.title)}</title>", f"<style>{style}</style>", "</head>", "<body>",
                      f"<h1>{html.escape(v.title)}</h1>", *verdict, '<div class="picture">', svg(v), "</div>",
                      *table, *(f"<p>note: {html.escape(n)}</p>" for n in v.notes), "</body>", "</html>"]) + "\n"
