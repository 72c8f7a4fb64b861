"""A large lab's entries are encoded on a second thread while the first sends them
(netlab.kernel.apply.pipelined, from PIPELINE_FROM entries). Here the threshold is lowered to 0,
so small labs take that path: what it builds is the plan (read back with iproute2 and by verify,
and a ping crosses it), and an entry the kernel refuses on it rolls the lab back, leaving nothing."""

from __future__ import annotations

import sys

import pytest

from netlab import api
from netlab.errors import ApplyError
from netlab.kernel import apply
from tests.helpers import bridgej, ipj, ping, residue, unique_name

pytestmark = pytest.mark.kernel


@pytest.fixture
def pipelined_always(tmp_path, monkeypatch):
    monkeypatch.setenv("NETLAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(apply, "PIPELINE_FROM", 0)
    return sys.getswitchinterval()


def test_a_lab_built_through_the_encoding_thread_is_its_plan(pipelined_always):
    name = unique_name("pl")
    h = api.up("vxlan", name=name, nodes=4, pods=1)
    try:
        assert sys.getswitchinterval() == pipelined_always
        for node in ("node1", "node4"):
            ns = h.ns(node)
            assert sum(1 for n in ipj(ns, "-4", "neigh") if "PERMANENT" in n.get("state", [])) == 3
            assert sum(1 for e in bridgej(ns, "fdb", "show", "dev", "flannel.1") if e.get("dst")) == 3
            assert sum(1 for r in ipj(ns, "route") if r.get("dev") == "flannel.1") == 3
        report = h.verify()
        assert report.ok, report.problems[:3]
        assert ping(h.ns("node1-pod1"), h.plan.address_of(h.ns("node4-pod1")), timeout=5)
    finally:
        h.down()
    assert residue(name) == []


def test_an_entry_refused_on_the_encoding_thread_rolls_the_lab_back(pipelined_always):
    name = unique_name("pr")
    with pytest.raises(ApplyError, match="unreachable"):  # host-gw across racks: the gateway is not on-link
        api.up("host-gw", name=name, racks=2)
    assert sys.getswitchinterval() == pipelined_always
    assert residue(name) == []
