"""verify checks every declared field by construction: change one attribute of one object in the
kernel, behind netlab's back, and status names exactly that object and that field."""

from __future__ import annotations

import pytest

from netlab.explain import describe
from netlab.plan import Bridge, Neigh, Route, Veth, Vxlan
from tests.helpers import sh

pytestmark = pytest.mark.kernel


def _problems(lab) -> dict[str, str]:
    return {p.what: p.detail for p in lab.verify().problems}


def test_each_changed_field_is_named(lab_factory):
    lab = lab_factory("vxlan", pods=1)
    assert lab.verify().ok
    plan = lab.plan
    n1 = lab.ns("node1")

    cni0 = next(o for o in plan.of(Bridge) if o.ns == n1)
    vtep = next(o for o in plan.of(Vxlan) if o.ns == n1)
    veth, port = next((o, e) for o in plan.of(Veth) for e in (o.a, o.b) if e.ns == n1 and e.hairpin)
    pod_end = veth.b if port is veth.a else veth.a
    neigh = next(o for o in plan.of(Neigh) if o.ns == n1)
    default = next(o for o in plan.of(Route) if o.ns == n1 and o.dst == "default")
    node_ip = "192.168.100.11"

    sh("ip", "-n", n1, "link", "set", cni0.name, "type", "bridge", "stp_state", "1")  # Bridge.stp
    sh("bridge", "-n", n1, "link", "set", "dev", port.name, "hairpin", "off")  # VethEnd.hairpin
    sh("ip", "-n", pod_end.ns, "link", "set", pod_end.name, "txqueuelen", "1000")  # VethEnd.txqueuelen
    sh("ip", "-n", n1, "link", "set", vtep.name, "mtu", "1400")  # Vxlan.mtu
    sh("ip", "-n", n1, "neigh", "replace", neigh.dst, "lladdr", neigh.lladdr, "dev", neigh.dev,
       "nud", "reachable")  # Neigh.state
    sh("ip", "-n", n1, "route", "replace", "default", "via", default.via, "dev", default.dev,
       "src", node_ip)  # Route.src
    got = _problems(lab)
    want = {
        describe(cni0): "stp on (want off)",
        describe(veth): "hairpin off (want on)",
        describe(vtep): "mtu 1400 (want 1450)",
        describe(neigh): "nud reachable (want permanent)",
        describe(default): f"src {node_ip} (want None)",
    }
    for what, detail in want.items():
        assert what in got and detail in got[what], (what, got.get(what))
    assert "txqueuelen 1000 (want 0)" in got[describe(veth)]
    assert set(got) == set(want), sorted(set(got) - set(want))
