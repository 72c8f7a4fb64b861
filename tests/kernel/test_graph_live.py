"""netlab graph of an instance that is up draws its BGP sessions with their live state."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.kernel


def test_live_bgp_state_is_drawn(lab_factory):
    lab = lab_factory("calico", nodes=2, pods=1)
    r = subprocess.run([sys.executable, "-m", "netlab", "graph", lab.name], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count('label="BGP Established"') == 1, r.stdout[-600:]
    assert lab.ns("node1") in r.stdout.replace("_", "-")
