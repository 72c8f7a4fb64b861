"""Every verb that reports something writes one JSON document with --json, with the keys
docs/JSON.md lists, and its plain output fits a 100-column terminal (COLUMNS=100)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.kernel
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netlab", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)


def keys(doc, *want: str) -> None:
    missing = [k for k in want if k not in doc]
    assert not missing, (missing, sorted(doc))


def test_json_documents_and_100_columns(tmp_path):
    env = dict(os.environ, NETLAB_STATE_DIR=str(tmp_path / "state"), COLUMNS="100")
    name = "js" + os.urandom(3).hex()
    up = run("up", "vxlan", "--name", name, "--pods", "1", "--json", env=env)
    try:
        assert up.returncode == 0, up.stderr
        keys(json.loads(up.stdout), "lab", "datapath", "seconds", "hosts")
        keys(json.loads(run("list", "--json", env=env).stdout), "labs", "stateless_dirs")
        keys(json.loads(run("show", "vxlan", "--json", env=env).stdout), "lab", "file", "datapath", "fields", "options")
        st = json.loads(run("status", name, "--json", env=env).stdout)
        keys(st, "lab", "datapath", "complete", "labfile", "overrides", "hosts", "interfaces", "links", "ok", "checked",
             "problems", "unplanned", "missing_namespaces", "daemons", "bgp", "neighbour_table")
        tr = json.loads(run("trace", name, "node1-pod1", "node2-pod1", "--json", env=env).stdout)
        keys(tr, "lab", "src", "dst", "complete", "hops")
        keys(json.loads(run("exercise", "list", "--json", env=env).stdout)[0], "id", "title", "lab", "difficulty",
             "minutes", "runs_here", "why_not")
        for verb in (["list"], ["show", "vxlan"], ["status", name], ["trace", name, "node1-pod1", "node2-pod1"],
                     ["exercise", "list"], ["up", "vxlan", "--name", name + "b", "--pods", "1"]):
            r = run(*verb, env=env)
            assert r.returncode == 0, (verb, r.stderr)
            long = [line for line in ANSI.sub("", r.stdout).splitlines() if len(line) > 100]
            assert not long, (verb, long[:3])
    finally:
        down = run("down", name, name + "b", "--json", env=env)
    docs = json.loads(down.stdout)
    assert [d["lab"] for d in docs] == [name, name + "b"] and all(d["ok"] for d in docs), down.stderr
