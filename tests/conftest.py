from __future__ import annotations

import os

import pytest

from netlab import api
from tests.helpers import residue, unique_name
from tests.vm import features


IN_VM = os.environ.get("NETLAB_IN_VM") == "1"  # set by `netlab vm run` inside the stock-kernel VM
# tests/vm/tier.py, collecting on the host what the VM pass will run: place every test as the
# stock-kernel VM would (it has every feature, and in_vm tests run there)
VM_SELECTION = os.environ.get("NETLAB_VM_SELECTION") == "1"


def _mark_lab_features(items) -> None:
    """A kernel test over every lab (a ``lab`` parameter) needs what that lab's datapath needs."""
    for item in items:
        if not item.get_closest_marker("kernel"):
            continue
        lab = getattr(getattr(item, "callspec", None), "params", {}).get("lab")
        if isinstance(lab, str):
            for f in features.lab_features(lab):
                item.add_marker(features.marker(f))


def _placement(item, missing: list[str]) -> str | None:
    """Why this test does not run here, or None. Tests needing a feature this kernel lacks run in
    the VM pass instead (tests/vm/tier.py, which .ci/run runs); ``in_vm`` tests run only there;
    ``vm`` tests boot VMs themselves and run on the host only."""
    # markers, not keywords: a test's keywords also hold its directories' names (tests/vm -> "vm")
    lacking = [f for f in missing if item.get_closest_marker(features.marker(f))]
    if lacking:
        return f"needs {', '.join(lacking)}"
    if item.get_closest_marker("in_vm") and not (IN_VM or VM_SELECTION):
        return "runs only inside the stock-kernel VM"
    if item.get_closest_marker("vm") and (IN_VM or VM_SELECTION):
        return "boots a VM (not nested)"
    return None


@pytest.hookimpl(tryfirst=True)  # before -m sees the markers added here
def pytest_collection_modifyitems(config, items):
    _mark_lab_features(items)
    missing = [] if VM_SELECTION else features.missing()
    kept, deselected, why = [], [], {}
    for item in items:
        reason = _placement(item, missing)
        if reason is None:
            kept.append(item)
        else:
            deselected.append(item)
            why[reason] = why.get(reason, 0) + 1
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
    config.stash[_WHY] = why
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="kernel test: needs root")
    for item in items:
        if "kernel" in item.keywords:
            item.add_marker(skip)


_WHY = pytest.StashKey[dict]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for reason, n in sorted(config.stash.get(_WHY, {}).items()):
        where = "the VM pass runs them: python -m tests.vm.tier" if reason.startswith("needs") else ""
        terminalreporter.write_line(f"netlab: deselected {n} test(s) here ({reason}){'; ' + where if where else ''}")


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
