"""The large path keeps working (issue 15): a 300-node VXLAN lab (902 namespaces, 269,100
permanent neighbour, FDB and route entries) comes up, a pod on the first node pings a pod on the
last, and down leaves nothing. No speed is asserted: the machines are shared; the figures come
from benchmarks/scale.py."""

from __future__ import annotations

import pytest

from netlab import api
from netlab.plan import Fdb, Neigh, Route
from tests.helpers import bridgej, ipj, ping, residue, unique_name

pytestmark = pytest.mark.kernel

NODES = 300


def test_a_300_node_vxlan_lab(tmp_path, monkeypatch):
    monkeypatch.setenv("NETLAB_STATE_DIR", str(tmp_path / "state"))
    name = unique_name("big")
    h = api.up("vxlan", name=name, nodes=NODES, pods=2, cidr="172.16.0.0/20", pod_cidr="10.0.0.0/14")
    try:
        assert len(h.plan.namespaces) == NODES * 3 + 2
        assert sum(1 for o in h.plan.objects if isinstance(o, (Neigh, Fdb))) == 2 * NODES * (NODES - 1)
        assert sum(1 for o in h.plan.of(Route) if o.dev == "flannel.1") == NODES * (NODES - 1)
        # and the kernel holds them, read back with iproute2 on the first and the last node
        for node in ("node1", f"node{NODES}"):
            ns = h.ns(node)
            assert sum(1 for n in ipj(ns, "-4", "neigh") if "PERMANENT" in n.get("state", [])) == NODES - 1
            assert sum(1 for e in bridgej(ns, "fdb", "show", "dev", "flannel.1") if e.get("dst")) == NODES - 1
            assert sum(1 for r in ipj(ns, "route") if r.get("dev") == "flannel.1") == NODES - 1
        last = h.plan.address_of(h.ns(f"node{NODES}-pod2"))
        assert ping(h.ns("node1-pod1"), last, count=1, timeout=5)
    finally:
        h.down()
    assert residue(name) == []
