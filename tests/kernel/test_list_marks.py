"""`netlab list` marks the labs this kernel cannot run, and says why and where they run.

What the kernel can create is probed here independently of netlab, with `ip link add` in a
throwaway network namespace (`unshare --net`), so the mark is checked against the kernel itself."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from netlab import datapaths, model

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="probing link kinds needs root")


ADD = {"tun": ["ip", "tuntap", "add", "probe0", "mode", "tun"],
       "veth": ["ip", "link", "add", "probe0", "type", "veth", "peer", "name", "probe1"],
       "vxlan": ["ip", "link", "add", "probe0", "type", "vxlan", "id", "42", "dstport", "4789"]}


def _kernel_has(kind: str) -> bool:
    argv = ADD.get(kind, ["ip", "link", "add", "probe0", "type", kind])
    return subprocess.run(["unshare", "--net", *argv], capture_output=True, timeout=30).returncode == 0


def _netlab(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="100")
    return subprocess.run(["netlab", *args], capture_output=True, text=True, timeout=120, env=env)


def test_list_marks_what_this_kernel_lacks() -> None:
    expected: dict[str, list[str]] = {}
    for path in model.available():
        needs = datapaths.get(model.load(str(path)).datapath).requires
        expected[path.stem] = [k for k in needs if not _kernel_has(k)]
    assert any(datapaths.get(model.load(str(p)).datapath).requires for p in model.available())

    rows = {r["lab"]: r for r in json.loads(_netlab("list", "--json").stdout)["labs"]}
    for lab, missing in expected.items():
        assert rows[lab]["missing_kinds"] == missing, lab
        assert rows[lab]["runs_here"] is (not missing), lab

    text = _netlab("list")
    assert text.returncode == 0, text.stderr
    assert all(len(line) <= 100 for line in text.stdout.splitlines())
    words = " ".join(text.stdout.split())
    for lab, missing in expected.items():
        mark = f"(not on this kernel: no {', '.join(missing)}; see netlab vm)"
        assert (mark in words) is bool(missing), lab
    assert words.count("not on this kernel") == sum(1 for m in expected.values() if m)
