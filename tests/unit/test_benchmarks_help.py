"""Every ``benchmarks/*.py --help`` works: exit 0 and a usage line, in a few seconds, without root.

The benchmarks are run by hand and rarely, so an import that broke or an argument parser that
root checks come before would otherwise go unnoticed until someone needs the numbers. As root, the
script runs as ``nobody`` (setpriv), which also means --help cannot create anything."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

BENCHMARKS = sorted((ROOT / "benchmarks").glob("*.py"))
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def as_unprivileged(argv: list[str]) -> list[str]:
    """``argv`` as a user without root: itself when we are not root, else under setpriv as nobody."""
    if os.geteuid() != 0:
        return argv
    assert shutil.which("setpriv"), "setpriv (util-linux) is needed to run --help without root"
    return NOBODY + argv


def test_there_are_benchmarks_to_check():
    assert BENCHMARKS, f"no benchmarks/*.py under {ROOT}"


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_help_exits_0_with_a_usage_line(script: Path):
    # nobody cannot write __pycache__ in the checkout, and has no home of its own
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", HOME="/tmp")
    r = subprocess.run(as_unprivileged([sys.executable, str(script), "--help"]), cwd="/", env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith(f"usage: {script.name}"), r.stdout[:500]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
