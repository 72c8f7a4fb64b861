"""``netlab trace`` as people read it, on every lab (issue 14): the terminal output fits 100
columns and names every hop, and ``--svg``/``--html`` draw every hop of ``--json`` in order.

Each lab is traced on the pair its lesson is about: a cross-node pod pair
(:func:`netlab.plan.cross_node_pair`); for docker-nat an executor to the other node's published
port over TCP (the port read from the plan's DNAT rule); for bridge container1 to container2; for
baseline node1 to node2. calico-ipip needs a kernel module the host may lack and has its own tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from netlab import model
from netlab.plan import Ruleset, cross_node_pair
from tests.helpers import ROOT

pytestmark = pytest.mark.kernel

LABS = [p.stem for p in model.available() if p.stem != "calico-ipip"]
#: small but enough: one pod per node (two containers for the single-host bridge)
OVERRIDES: dict[str, dict] = {"bridge": {"pods": 2}, "baseline": {}, "calico": {"nodes": 2, "pods": 1},
                              "calico-vxlan": {"nodes": 2, "pods": 1}}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
NS = "{http://www.w3.org/2000/svg}"
HOP_LINE = re.compile(r"^\s*(\d+)  (\S+:\S+)\s+(tx|rx)\s")


def published_port(plan, node: str) -> int:
    """The first port ``node`` publishes: a nat-table DNAT rule with a ``--dport`` in its namespace."""
    ns = next(n.name for n in plan.namespaces if n.host == node)
    for rs in plan.of(Ruleset):
        for r in rs.rules if rs.ns == ns else ():
            m = re.search(r"--dport (\d+)", r.spec)
            if r.table == "nat" and "-j DNAT" in r.spec and m:
                return int(m.group(1))
    raise AssertionError(f"the plan publishes no port on {node}")


def endpoints(lab_name: str, plan) -> list[str]:
    """SRC DST [options] of the trace this lab is about."""
    if lab_name == "bridge":
        return ["container1", "container2"]
    if lab_name == "baseline":
        return ["node1", "node2"]
    if lab_name == "docker-nat":
        src = next(n.host for n in plan.namespaces if n.role == "pod" and n.node == "node1")
        return [src, "node2", "--proto", "tcp", "--port", str(published_port(plan, "node2"))]
    pair = cross_node_pair(plan)
    assert pair is not None, f"{lab_name} has no cross-node pod pair"
    return [pair.src.host, pair.dst.host]


def netlab(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netlab", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def hop_texts(root: ET.Element) -> list[list[str]]:
    """The texts of each hop's group in the picture, in document order."""
    return [["".join(t.itertext()) for t in g.iter(f"{NS}text")]
            for g in root.iter(f"{NS}g") if g.get("class") == "hop"]


@pytest.mark.parametrize("lab", LABS)
def test_trace_fits_100_columns_and_the_picture_has_every_hop(lab, lab_factory, tmp_path):
    h = lab_factory(lab, **OVERRIDES.get(lab, {"pods": 1}))
    args = ["trace", h.name, *endpoints(lab, h.plan)]
    netlab(*args, "--json")  # ARP and bridge learning done, as on any live cluster: the same path twice

    svg_file, html_file = tmp_path / "t.svg", tmp_path / "t.html"
    js = netlab(*args, "--json", "--svg", str(svg_file), "--html", str(html_file))
    assert js.returncode == 0, js.stdout[-2000:] + js.stderr
    data = json.loads(js.stdout)
    assert data["complete"] and data["hops"], data["stop"]
    hops = [(x["host"], x["iface"]) for x in data["hops"]]

    # the terminal, coloured as on a terminal, at 100 columns: a trace of its own, whose hops are
    # held against the picture of the same run and against the --json run's, in order (CI once saw
    # a reply leg in the request's order: frames stamped as read, before the kernel's timestamps
    # were live; the Sniffer now waits for them, tests/kernel/test_stamps.py)
    term_svg = tmp_path / "term.svg"
    out = netlab(*args, "--svg", str(term_svg), COLUMNS="100", FORCE_COLOR="1")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr
    plain = ANSI.sub("", out.stdout)
    assert plain != out.stdout  # it was coloured
    lines = plain.splitlines()
    too_long = [(len(ln), ln) for ln in lines if len(ln) > 100]
    assert too_long == []
    shown = [(int(m.group(1)), m.group(2)) for ln in lines if (m := HOP_LINE.match(ln))]
    assert [n for n, _ in shown] == list(range(1, len(shown) + 1))
    assert [hop for _, hop in shown] == [f"{host}:{iface}" for host, iface in hops]
    term_drawn = hop_texts(ET.fromstring(term_svg.read_bytes()))
    assert len(term_drawn) == len(shown)
    for texts, (_, hop) in zip(term_drawn, shown, strict=True):
        host, iface = hop.split(":", 1)
        assert host in texts and iface in texts, (hop, texts)

    # the picture: well-formed, one column per hop of --json, in order
    root = ET.fromstring(svg_file.read_bytes())
    drawn = hop_texts(root)
    assert len(drawn) == len(hops)
    for texts, (host, iface) in zip(drawn, hops, strict=True):
        assert host in texts and iface in texts, (host, iface, texts)

    # the page holds the same picture, and the hops as text
    page = html_file.read_text()
    picture = ET.fromstring(page[page.index("<svg"):page.index("</svg>") + len("</svg>")].encode())
    assert hop_texts(picture) == drawn
    for host, iface in hops:
        assert f"<td>{host}:{iface}</td>" in page
