"""Shell completion (bash and zsh, through click): lab names, instance names and host names, read
without root and without the kernel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from netlab.state import State

ROOT = Path(__file__).resolve().parents[2]


def complete(words: str, env: dict | None = None, shell: str = "bash") -> list[str]:
    e = dict(os.environ, _NETLAB_COMPLETE=f"{shell}_complete", COMP_WORDS=words,
             COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1)), **(env or {}))
    r = subprocess.run([sys.executable, "-m", "netlab"], cwd=ROOT, env=e, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return [line.split(",", 1)[1] for line in r.stdout.splitlines() if "," in line]


def test_lab_names():
    assert "vxlan" in complete("netlab up vx") and "calico-rr" in complete("netlab up calico")


def test_instances_and_hosts_from_the_state(tmp_path, monkeypatch):
    env = {"NETLAB_STATE_DIR": str(tmp_path)}
    monkeypatch.setenv("NETLAB_STATE_DIR", str(tmp_path))
    State(lab="demo", labfile=str(ROOT / "labs/vxlan.yaml"),
          namespaces=["demo-node1", "demo-node1-pod1", "demo-switch"]).claim()
    assert complete("netlab status de", env) == ["demo"]
    assert complete("netlab exec demo node", env) == ["node1", "node1-pod1"]
    assert complete("netlab trace demo node1 ", env) == ["node1", "node1-pod1", "switch"]


def test_the_bash_script_is_printed():
    r = subprocess.run([sys.executable, "-m", "netlab"], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, _NETLAB_COMPLETE="bash_source"), timeout=30)
    assert "_netlab_completion()" in r.stdout and "complete " in r.stdout
