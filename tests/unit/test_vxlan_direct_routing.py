"""flannel's VXLAN DirectRouting (pkg/backend/vxlan/vxlan_network.go): a remote node whose public
IP is directly connected gets host-gw's route and nothing else; only nodes in another subnet get
the neighbour, the FDB entry and the onlink route through flannel.1. Pure, no root."""

from __future__ import annotations

from netlab import api, model
from netlab.plan import Fdb, Neigh, Route


def _plan(**options):
    lab = model.load("vxlan", name="p", overrides={"nodes": 3, "racks": 2, "options": options})
    return api.build_plan(lab)


def test_direct_routing_same_rack_is_host_gw_other_rack_is_vxlan():
    p = _plan(direct_routing=True)
    node1 = "p-node1"  # rack 1, with node3; node2 is in rack 2
    routes = {r.dst: r for r in p.of(Route) if r.ns == node1 and r.dst.startswith("10.244.")}
    assert (routes["10.244.3.0/24"].via, routes["10.244.3.0/24"].dev, routes["10.244.3.0/24"].onlink) == \
        ("192.168.100.12", "eth0", False)
    assert (routes["10.244.2.0/24"].via, routes["10.244.2.0/24"].dev, routes["10.244.2.0/24"].onlink) == \
        ("10.244.2.0", "flannel.1", True)
    assert [n.dst for n in p.of(Neigh) if n.ns == node1] == ["10.244.2.0"]
    assert len([f for f in p.of(Fdb) if f.ns == node1]) == 1


def test_without_direct_routing_every_remote_node_is_vxlan():
    p = _plan()
    assert all(r.dev == "flannel.1" for r in p.of(Route) if r.ns == "p-node1" and r.dst.startswith("10.244.")
               and r.dst != "10.244.1.0/24")
    assert len([n for n in p.of(Neigh) if n.ns == "p-node1"]) == 2
