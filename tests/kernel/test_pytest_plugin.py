"""netlab's pytest plugin works as a user would use it: examples/test_my_cni.py, run by pytest
with no conftest of netlab's, gets ``netlab_lab`` from the installed ``pytest11`` entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.kernel


def test_the_example_regression_tests_pass_with_the_plugin():
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/test_my_cni.py"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-1000:]
    assert "2 passed" in r.stdout
