"""``netlab down --all`` removes every lab on the host, other users' included, so at a terminal
it names them and asks; --yes (or a stdin that is not a terminal) does not ask."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest

from netlab import api
from tests.helpers import ROOT, residue, unique_name

pytestmark = pytest.mark.kernel


def test_down_all_asks_at_a_terminal_and_yes_skips_it(tmp_path, monkeypatch):
    monkeypatch.setenv("NETLAB_STATE_DIR", str(tmp_path / "state"))
    name = unique_name("da")
    api.up("baseline", name=name)
    try:
        master, slave = pty.openpty()
        p = subprocess.Popen([sys.executable, "-m", "netlab", "down", "--all"], cwd=ROOT, stdin=slave,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.close(slave)
        os.write(master, b"n\n")
        out, err = p.communicate(timeout=30)
        os.close(master)
        assert p.returncode == 1 and name in err and "nothing was removed" in err, err
        assert residue(name) != []  # still up
        r = subprocess.run([sys.executable, "-m", "netlab", "down", "--all", "--yes"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and f"{name}: removed" in r.stdout, r.stderr
    finally:
        if residue(name):
            api.down(name)
    assert residue(name) == []
