"""netlab graph draws the plan: every namespace and every interface of every lab is in the
picture, in Graphviz's language, in the SVG that dot renders from it, and in Mermaid."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from netlab import api, model
from netlab.graph import _id, dot, mermaid
from netlab.spec import ends_of

ROOT = Path(__file__).resolve().parents[2]
LABS = sorted(p.stem for p in (ROOT / "labs").glob("*.yaml"))


def plan_of(lab: str, **over):
    return api.build_plan(model.load(lab, overrides=over))  # the lab's own name, as `netlab graph LAB` uses


@pytest.mark.parametrize("lab", LABS)
def test_every_namespace_and_interface_is_drawn(lab):
    plan = plan_of(lab)
    text = dot(plan)
    for ns in plan.namespaces:
        assert f"cluster_{_id(ns.name)}" in text, ns.name
    for o in plan.links():
        for end in ends_of(o):
            assert _id(end.ns, end.name) in text and end.name in text
    flow = mermaid(plan)
    assert all(_id(ns.name) in flow for ns in plan.namespaces)


@pytest.mark.skipif(shutil.which("dot") is None, reason="setup.sh installs graphviz; dot is missing here")
@pytest.mark.parametrize("lab", LABS)
def test_the_svg_holds_every_namespace(lab, tmp_path):
    out = tmp_path / f"{lab}.svg"
    r = subprocess.run([sys.executable, "-m", "netlab", "graph", lab, "-o", str(out)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    svg = ET.parse(out).getroot()
    titles = {t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")}
    texts = " ".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text"))
    plan = plan_of(lab)
    for ns in plan.namespaces:
        assert f"cluster_{_id(ns.name)}" in titles, ns.name
        assert ns.host in texts


def test_bgp_sessions_are_drawn_for_bird_labs():
    text = dot(plan_of("calico-rr"))
    assert text.count('label="BGP"') == 3  # one session per node, to the reflector
    assert "BGP" not in dot(plan_of("vxlan"))


def test_a_bad_format_is_one_line():
    r = subprocess.run([sys.executable, "-m", "netlab", "graph", "vxlan", "-o", "x.gif"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "unknown format 'gif'" in r.stderr and "Traceback" not in r.stderr
