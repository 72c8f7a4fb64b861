"""Every lab in labs/, the same way: up at a size above its default, healthy by `status`, a pod on
the last node reaches a pod on the first, then down leaves nothing and the root namespace is as
it was. Labs whose kernel features are missing here are skipped with the probe's reason."""

from __future__ import annotations

import time

import pytest

from netlab import api, model
from netlab.datapaths import get
from netlab.kernel import probe
from netlab.plan import Addr
from tests.helpers import ping, residue, root_snapshot, unique_name

pytestmark = pytest.mark.kernel
LABS = [p.stem for p in model.available()]


def pod_address(plan, ns: str) -> str:
    return next(a.cidr.split("/")[0] for a in plan.of(Addr) if a.ns == ns and a.dev == "eth0")


@pytest.mark.parametrize("lab", LABS)
def test_lab_above_default_size_is_healthy_reachable_and_leaves_nothing(lab):
    dp = get(model.load(lab).datapath)
    missing = [k for k in dp.requires if probe.link_kind(k) is not None]
    if missing:
        pytest.skip(f"this kernel cannot create {', '.join(missing)} links")
    defaults = model.load(lab)
    bigger = {"pods": defaults.pods + 1} if defaults.pods else {}
    if dp.max_nodes > defaults.nodes:
        bigger["nodes"] = defaults.nodes + 1
    before = root_snapshot()
    h = api.up(lab, name=unique_name(), **bigger)
    try:
        report = h.verify()
        assert report.ok, [p.what + ": " + p.detail for p in report.problems]
        pods = [n for n in h.plan.namespaces if n.role == "pod"]
        addresses = [pod_address(h.plan, p.name) for p in pods]
        first, last = (pods[0], pods[-1]) if pods else (None, None)
        # pod to pod across nodes where the datapath allows it (docker-nat's addresses overlap)
        if pods and first.node != last.node and len(set(addresses)) == len(addresses):
            # routed labs may still be converging (BGP): give them a few seconds
            deadline = time.monotonic() + 15
            while not ping(last.name, pod_address(h.plan, first.name)):
                assert time.monotonic() < deadline, f"{last.host} cannot reach {first.host}"
    finally:
        h.down()
    assert residue(h.name) == []
    assert root_snapshot() == before
