"""The trace's terminal output and picture, on recorded ``netlab trace --json`` documents (a vxlan
trace that went through, the same trace stopped by a missing FDB entry, docker-nat's SNAT/DNAT)
and on hops built by hand. No kernel: both renderers read the JSON document only."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.text import Text

from netlab.trace import render, svg
from netlab.trace.render import HopView, LayerView, TraceView

DATA = Path(__file__).parent / "data"
SAMPLES = ["trace-vxlan", "trace-vxlan-stopped", "trace-docker-nat"]
NS = "{http://www.w3.org/2000/svg}"


def view(name: str) -> TraceView:
    return TraceView.from_dict(json.loads((DATA / f"{name}.json").read_text()))


def flat(s: str) -> str:
    """Whitespace collapsed: a fact wrapped over lines reads as one again."""
    return " ".join(s.split())


def ether(src: str, dst: str) -> LayerView:
    return LayerView("Ether", {"src": src, "dst": dst, "type": 2048}, f"Ether {src} > {dst}")


def ip(src: str, dst: str, ttl: int) -> LayerView:
    return LayerView("IP", {"src": src, "dst": dst, "ttl": ttl, "flags": "DF"}, f"IP {src} > {dst} ttl {ttl} DF")


ICMP = LayerView("ICMP", {"type": 8, "code": 0, "id": 7, "seq": 1}, "ICMP echo-request id 7 seq 1")
UDP = LayerView("UDP", {"sport": 40000, "dport": 8472, "len": 120}, "UDP 40000 > 8472")
VXLAN = LayerView("VXLAN", {"vni": 1, "flags": 8}, "VXLAN vni 1")


# ---- the terminal -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SAMPLES)
@pytest.mark.parametrize("width", [40, 60, 80, 100, 132])
@pytest.mark.parametrize("verbose", [False, True])
def test_no_line_passes_the_width(name, width, verbose):
    out = render.text(view(name), width, verbose)
    too_long = [ln for ln in out.splitlines() if len(ln) > width]
    assert too_long == []


@pytest.mark.parametrize("name", SAMPLES)
def test_every_hop_has_one_line_in_order(name):
    v = view(name)
    lines = render.text(v).splitlines()
    found = []
    for h in v.hops:
        hit = [i for i, ln in enumerate(lines) if re.match(rf"\s*{h.n}  {re.escape(h.where)}\s+{h.verb}\s", ln)]
        assert len(hit) == 1, (h.n, h.where)
        assert f"{h.length} B" in lines[hit[0]]
        found.append(hit[0])
    assert found == sorted(found)


def test_unchanged_stacks_are_not_repeated():
    v = view("trace-vxlan")
    out = render.text(v)
    # the pod's veth and the bridge see the frame the pod sent; the underlay carries the VTEP's datagram
    for n, first in [(2, 1), (3, 1), (6, 5), (7, 5), (8, 5), (11, 10), (12, 10)]:
        line = next(ln for ln in out.splitlines() if re.match(rf"\s*{n}  ", ln))
        assert line.endswith(f"= as hop {first}"), line
    # a full stack is printed only where it changed: 4 per leg (pod, router, VTEP out, VTEP in, router)
    assert out.count("ICMP echo-request") == 5 and out.count("ICMP echo-reply") == 5
    assert len(out.splitlines()) < 80  # it was 106 lines of a 100-column terminal


def test_changes_show_old_and_new_and_encapsulation():
    out = render.text(view("trace-vxlan"))
    assert "TTL 64 → 63 (-1)" in out
    assert "MAC rewrite src a6:69:dc:f9:c5:4d → be:7d:8e:ca:8f:e2" in out
    assert "encapsulated: + Ether/IP/UDP/VXLAN" in out and "decapsulated: - Ether/IP/UDP/VXLAN" in out
    nat = render.text(view("trace-docker-nat"))
    assert re.search(r"SNAT src 172\.17\.0\.2:(\d+) → 192\.168\.100\.11:\1", nat)
    assert flat("DNAT dst 192.168.100.12:12347 → 172.17.0.2:7070") in flat(nat)


def test_changes_are_coloured():
    v = view("trace-vxlan")
    lines = render.lines(v, 100)

    def styles_of(fragment: str) -> set[str]:
        out = set()
        for t in lines:
            at = t.plain.find(fragment)
            if at >= 0:
                out |= {str(s.style) for s in t.spans if s.start <= at < s.end}
        return out

    assert render.OLD in styles_of("a6:69:dc:f9:c5:4d →")  # the old MAC, in a change line
    # the new MAC: green in the change line, yellow where the stack shows it
    assert {render.NEW, render.CHANGED} <= styles_of("be:7d:8e:ca:8f:e2")
    assert render.ADDED in styles_of("Ether ea:1e:84:7d:0d:fd")  # the VTEP's outer header, added
    assert render.CHANGED in styles_of("ttl 63")  # the routed hop's TTL, in its stack


def test_stacks_break_between_headers():
    out = render.text(view("trace-vxlan"), 100)
    vx = [ln for ln in out.splitlines() if "VXLAN vni 1" in ln]
    assert vx and all(ln.startswith("     ") for ln in vx)
    for ln in out.splitlines():
        # a continued stack starts with the separator, and no address is ever split
        assert not re.search(r"[0-9a-f]{2}:$|\d+\.$", ln), ln


def test_verbose_is_the_full_trace():
    v = view("trace-vxlan")
    out = render.text(v, 100, verbose=True)
    assert "= as hop" not in out
    assert out.count("ICMP echo-request") == 12
    assert flat("added Ether ea:1e:84:7d:0d:fd > 06:79:66:7a:16:8c / IP 192.168.100.11 > 192.168.100.12") in flat(out)
    assert flat(v.offloads) in flat(out)
    assert flat(v.offloads) not in flat(render.text(v))


def test_a_stop_keeps_every_fact_cause_first():
    v = view("trace-vxlan-stopped")
    s = v.stop
    out = render.text(v, 100)
    assert "result: STOPPED — the probe was last seen on node1:flannel.1 (out) and went no further" in out
    assert "  last seen: hop 4, node1:flannel.1 tx" in out
    f = flat(out)
    facts = [f"most likely cause (in {s.causes[0].host}): {s.causes[0].text}",
             f"plan expected next: {s.expected['text']}",
             *(f"[{c.score}] (in {c.host}) {c.text}" for c in s.causes[1:]), "kernel evidence:", *s.evidence]
    at = [f.find(flat(x)) for x in facts]
    assert -1 not in at, [x for x, i in zip(facts, at) if i < 0]
    assert at == sorted(at)  # the cause first, the evidence after
    assert f.find("last seen") < at[0]


def test_a_word_longer_than_the_line_is_cut_not_overflowing():
    v = view("trace-vxlan-stopped")
    assert v.stop is not None
    v.stop.evidence.append("node1: " + "x" * 300)
    out = render.text(v, 80)
    assert max(len(ln) for ln in out.splitlines()) <= 80
    assert "x" * 300 in "".join(out.split())


def test_pack_breaks_only_between_atoms():
    items = render.atoms([Text("aaaa"), Text("bbbb"), Text("cccc")], " / ", 20, "/")
    lines = [t.plain for t in render.pack(items, 14, "  ", 2)]
    assert lines == ["  aaaa / bbbb", "  / cccc"]


def test_raw_ip_hop_is_marked():
    hops = [HopView(1, "request", "node1", "cni0", "in", layers=[ether("a", "b"), ip("10.0.0.1", "10.0.1.1", 64), ICMP]),
            HopView(2, "request", "node1", "flannel0", "out", link="raw-ip",
                    layers=[ip("10.0.0.1", "10.0.1.1", 63), ICMP])]
    out = render.text(TraceView("lab", "a", "b", None, hops=hops), 100)
    line = next(ln for ln in out.splitlines() if "node1:flannel0" in ln)
    assert line.endswith("raw IP, no Ethernet header")
    assert "IP 10.0.0.1 > 10.0.1.1 ttl 63 DF / ICMP" in out  # its stack changed: printed


# ---- what a hop rewrote -------------------------------------------------------------------------

def test_rewrites_align_from_the_inside():
    plain = HopView(1, "request", "node1", "flannel.1", "out",
                    layers=[ether("m1", "m2"), ip("10.0.0.1", "10.0.1.1", 63), ICMP])
    wrapped = HopView(2, "request", "node1", "eth0", "out",
                      layers=[ether("u1", "u2"), ip("192.168.0.1", "192.168.0.2", 64), UDP, VXLAN,
                              ether("m1", "m2"), ip("10.0.0.1", "10.0.1.1", 63), ICMP])
    rw = render.rewrites(plain, wrapped)
    assert rw.added == {0, 1, 2, 3} and rw.removed == [] and rw.fields == {}
    back = render.rewrites(wrapped, plain)
    assert [ly.name for ly in back.removed] == ["Ether", "IP", "UDP", "VXLAN"] and back.added == set()
    routed = HopView(3, "request", "node2", "cni0", "out", layers=[ether("m3", "m4"), ip("10.0.0.1", "10.0.1.1", 62),
                                                                   ICMP])
    rw = render.rewrites(plain, routed)
    assert rw.fields == {0: {"src": "m1", "dst": "m2"}, 1: {"ttl": 63}}
    assert render.rewrites(None, plain).fields == {}
    other_leg = HopView(4, "reply", "node2", "cni0", "in", layers=routed.layers)
    assert render.rewrites(routed, other_leg) == render.Rewrite()


# ---- the picture --------------------------------------------------------------------------------

def texts(el: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in el.iter(f"{NS}text")]


@pytest.mark.parametrize("name", SAMPLES)
def test_svg_is_well_formed_with_every_hop_in_order(name):
    v = view(name)
    root = ET.fromstring(svg.document(v).encode())
    assert root.tag == f"{NS}svg"
    groups = [g for g in root.iter(f"{NS}g") if g.get("class") == "hop"]
    assert [g.get("id") for g in groups] == [f"hop-{h.n}" for h in v.hops]
    for g, h in zip(groups, v.hops, strict=True):
        assert h.host in texts(g) and h.iface in texts(g)
    xs = [float(next(g.iter(f"{NS}text")).get("x")) for g in groups]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)  # one column each, left to right


@pytest.mark.parametrize("name", SAMPLES)
def test_svg_text_fits_its_box(name):
    root = ET.fromstring(svg.document(view(name)).encode())
    width = float(root.get("width"))
    for t in root.iter(f"{NS}text"):
        s = "".join(t.itertext())
        x = float(t.get("x"))
        if x > svg.MARGIN + 1:  # inside a column (the title and footer are wrapped to the picture)
            assert len(s) <= svg.BOX_CHARS, s
        assert x + len(s) * svg.CHAR_W <= width, s


def test_svg_shows_encapsulation_and_rewrites():
    doc = svg.document(view("trace-vxlan"))
    root = ET.fromstring(doc.encode())
    all_text = texts(root)
    assert all_text.count("+ Ether/IP/UDP/VXLAN") == 2 and all_text.count("− Ether/IP/UDP/VXLAN") == 2
    assert "ttl 64 → 63" in all_text and "→ be:7d:8e:ca:8f:e2" in all_text and "src a6:69:dc:f9:c5:4d" in all_text
    thick = [r for r in root.iter(f"{NS}rect") if r.get("stroke-width") == "2.5"]
    assert len(thick) == 8  # the four headers each VTEP adds, on the request and on the reply
    nat = texts(ET.fromstring(svg.document(view("trace-docker-nat")).encode()))
    assert "dport 12347 → 7070" in nat and "→ 172.17.0.2" in nat and "SNAT" in nat and "DNAT" in nat


def test_svg_of_a_stop_names_where_and_the_top_cause():
    v = view("trace-vxlan-stopped")
    root = ET.fromstring(svg.document(v).encode())
    t = texts(root)
    assert "✕ last seen here" in t and "✕ not seen" in t
    assert flat(v.stop.causes[0].text) in flat(" ".join(t))
    assert any(s.startswith("STOPPED") for s in t)


def test_html_holds_the_svg_and_the_hop_table():
    v = view("trace-docker-nat")
    page = svg.page(v)
    assert page.startswith("<!DOCTYPE html>")
    picture = page[page.index("<svg"):page.index("</svg>") + len("</svg>")]
    ET.fromstring(picture.encode())
    body = page[page.index("<body>"):page.index("</body>") + len("</body>")]
    ET.fromstring(body.encode())  # the rest is well-formed too (XHTML-compatible)
    assert body.count("<tr>") == len(v.hops) + 1
    for h in v.hops:
        assert f"<td>{h.where}</td>" in body
