"""host-gw and the two-rack underlay, as plans (no root)."""

from __future__ import annotations

from netlab import api, model, naming
from netlab.plan import Addr, Bridge, Fdb, Route, Veth, Vxlan


def plan(lab="host-gw", **over):
    return api.build_plan(model.load(lab, name="p", overrides=over))


def test_host_gw_routes_via_node_ips_no_tunnel():
    p = plan(nodes=3)
    assert not p.of(Vxlan)
    r = [(o.dst, o.via, o.dev, o.onlink) for o in p.of(Route) if o.ns == "p-node1" and o.dev == "eth0" and o.dst != "default"]
    assert r == [("10.244.2.0/24", "192.168.100.12", "eth0", False), ("10.244.3.0/24", "192.168.100.13", "eth0", False)]
    assert Bridge("p-node1", "cni0", mtu=1500, mac=naming.mac("p", "node1", "cni0")) in p.objects
    assert {v.b.mtu for v in p.of(Veth) if v.a.name.startswith("veth")} == {1500}


def test_two_racks_split_nodes_round_robin_behind_one_router():
    p = plan("vxlan", racks=2, nodes=4)
    hosts = {n.host: n.role for n in p.namespaces}
    assert hosts["switch1"] == hosts["switch2"] == "switch" and hosts["router"] == "router"
    assert Addr("p-router", "eth0", "192.168.100.1/24") in p.objects
    assert Addr("p-router", "eth1", "192.168.101.1/24") in p.objects
    roles = {n.name: n.role for n in p.namespaces}
    eth0 = {a.ns: a.cidr for a in p.of(Addr) if a.dev == "eth0" and roles[a.ns] == "node"}
    assert eth0 == {"p-node1": "192.168.100.11/24", "p-node2": "192.168.101.11/24",
                    "p-node3": "192.168.100.12/24", "p-node4": "192.168.101.12/24"}
    defaults = {r.ns: r.via for r in p.of(Route) if r.dst == "default" and r.ns.startswith("p-node") and "pod" not in r.ns}
    assert defaults == {"p-node1": "192.168.100.1", "p-node2": "192.168.101.1",
                        "p-node3": "192.168.100.1", "p-node4": "192.168.101.1"}
    fdb_dsts = {f.dst for f in p.of(Fdb) if f.ns == "p-node1"}
    assert fdb_dsts == {"192.168.101.11", "192.168.100.12", "192.168.101.12"}
