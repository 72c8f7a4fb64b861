from __future__ import annotations

import os

import pytest

from netlab import api
from tests.helpers import residue, unique_name


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="kernel test: needs root")
    for item in items:
        if "kernel" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def lab_factory():
    """Bring labs up under random-suffix names; tear them down and check for residue after."""
    handles = []

    def make(lab_file: str, **overrides):
        h = api.up(lab_file, name=unique_name(), **overrides)
        handles.append(h)
        return h

    yield make
    for h in handles:
        h.down()
        assert residue(h.name) == [], f"residue after down: {residue(h.name)}"


@pytest.fixture(scope="module")
def vxlan_lab():
    h = api.up("vxlan", name=unique_name("v"))
    yield h
    h.down()
    assert residue(h.name) == []
