"""A running lab is what was built, not what its lab file says now: status, explain and the rest
rebuild the plan from the lab file's text and the overrides recorded in the state at up time."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from netlab import api, model
from netlab.explain import script
from tests.helpers import ROOT, residue, unique_name

pytestmark = pytest.mark.kernel


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netlab", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def test_editing_the_lab_file_of_a_running_lab_changes_nothing_it_reports(tmp_path):
    f = tmp_path / "mine.yaml"
    shutil.copy(ROOT / "labs" / "vxlan.yaml", f)
    h = api.up(str(f), name=unique_name("bp"), nodes=3, pods=1)
    try:
        built = script(h.plan, title=f"{h.name}: {h.lab.description}")
        # the file changes under the running lab: another VNI, another size, even broken YAML
        f.write_text(f.read_text().replace("vni: 1", "vni: 77") + "\nnodes: 5\n")
        r = cli("status", h.name)
        assert r.returncode == 0 and "healthy" in r.stdout, r.stdout + r.stderr
        r = cli("explain", h.name)
        assert r.returncode == 0, r.stderr
        assert r.stdout == built
        assert f"{h.name}-node3" in r.stdout and f"{h.name}-node4" not in r.stdout and "id 77" not in r.stdout
        f.write_text("datapath: [broken\n")
        assert cli("status", h.name).returncode == 0
        # a fresh build from the file (a flag asks for one) reads the file as it is now
        r = cli("explain", str(f), "--name", "other")
        assert r.returncode != 0 and "YAML" in r.stderr
    finally:
        h.down()
    assert residue(h.name) == []


def test_explain_of_an_instance_is_the_script_of_its_overrides():
    h = api.up("vxlan", name=unique_name("bp"), nodes=3, pods=1, options={"vni": "9"})
    try:
        r = cli("explain", h.name)
        assert r.returncode == 0, r.stderr
        want = script(api.build_plan(model.load("vxlan", name=h.name, overrides=h.lab.overrides)),
                      title=f"{h.name}: {h.lab.description}")
        assert r.stdout == want
        assert "id 9 " in r.stdout and f"{h.name}-node3-pod1" in r.stdout
    finally:
        h.down()
    assert residue(h.name) == []
