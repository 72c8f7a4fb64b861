"""A pytest plugin (registered as the ``pytest11`` entry point ``netlab``): CNI regression tests
in a few lines, on the real datapaths.

    def test_pods_cross_nodes(netlab_lab):
        lab = netlab_lab("vxlan", nodes=2, pods=1)
        assert lab.exec("node1-pod1", ["ping", "-c1", "-W1", "10.244.2.2"]).returncode == 0
        assert lab.trace("node1-pod1", "node2-pod1").complete
        assert lab.verify().ok

``netlab_lab(lab_file, **overrides)`` brings a lab up under a random-suffix name (so tests run
side by side) and returns its :class:`netlab.api.LabHandle` (``exec``, ``popen``, ``trace``,
``verify``, ``ns``); every lab the test brought up is torn down after it, whatever happened. The
tests need root, as netlab does; without it they are skipped with the reason.
"""

from __future__ import annotations

import os
import secrets
from typing import Any, Callable, Iterator

import pytest


@pytest.fixture
def netlab_lab() -> Iterator[Callable[..., object]]:
    """A factory: ``netlab_lab("vxlan", nodes=2)`` -> a lab that is up for this test."""
    if os.geteuid() != 0:
        pytest.skip("netlab builds namespaces: run the tests as root")
    from netlab import api

    handles: list[api.LabHandle] = []

    def make(lab_file: str, **overrides: Any) -> api.LabHandle:
        h = api.up(lab_file, name="pt" + secrets.token_hex(3), **overrides)
        handles.append(h)
        return h

    yield make
    for h in handles:
        h.down()
