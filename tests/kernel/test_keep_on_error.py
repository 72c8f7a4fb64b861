"""``up --keep-on-error`` keeps a lab the kernel refused half-way, for a student to look at (the
host-gw across racks lesson); ``down`` removes it as usual. ``up --json`` says what was built."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT, residue, unique_name

pytestmark = pytest.mark.kernel
NETLAB = [sys.executable, "-m", "netlab"]


def test_host_gw_across_racks_is_kept_to_look_at(tmp_path, monkeypatch):
    monkeypatch.setenv("NETLAB_STATE_DIR", str(tmp_path / "state"))
    name = unique_name("ke")
    r = subprocess.run(NETLAB + ["up", "host-gw", "--name", name, "--racks", "2", "--keep-on-error"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    try:
        errors = [line for line in r.stderr.splitlines() if line.startswith("netlab:")]  # the rest is progress
        assert r.returncode != 0 and len(errors) == 1, r.stderr
        assert "Network is unreachable" in errors[0] and "kept" in errors[0] and f"netlab down {name}" in errors[0]
        assert residue(name) != []  # kept
        st = subprocess.run(NETLAB + ["status", name], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert st.returncode == 1 and "missing" in st.stdout  # the refused route and what came after it
    finally:
        d = subprocess.run(NETLAB + ["down", name], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert d.returncode == 0, d.stderr
    assert residue(name) == []


def test_up_json_lists_what_was_built(tmp_path, monkeypatch):
    monkeypatch.setenv("NETLAB_STATE_DIR", str(tmp_path / "state"))
    name = unique_name("kj")
    r = subprocess.run(NETLAB + ["up", "vxlan", "--name", name, "--pods", "1", "--json"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    try:
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["lab"] == name and doc["datapath"] == "flannel-vxlan"
        hosts = {h["host"]: h for h in doc["hosts"]}
        assert hosts["node1-pod1"]["addresses"] == ["10.244.1.2/24"] and hosts["node1-pod1"]["node"] == "node1"
    finally:
        subprocess.run(NETLAB + ["down", name], cwd=ROOT, capture_output=True, timeout=60)
    assert residue(name) == []
