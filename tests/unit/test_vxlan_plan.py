"""The vxlan plan has every flannel fact of DATAPATHS.md §2/§2b (pure, no root)."""

from __future__ import annotations

from netlab import api, model, naming
from netlab.explain import script
from netlab.plan import Addr, Bridge, Fdb, Neigh, Route, Ruleset, Sysctl, Veth, Vxlan


def plan(**over):
    return api.build_plan(model.load("vxlan", name="p", overrides=over))


def test_flannel_1_device():
    p = plan()
    vteps = {v.ns: v for v in p.of(Vxlan)}
    assert set(vteps) == {"p-node1", "p-node2"}
    v = vteps["p-node1"]
    assert (v.name, v.vni, v.port, v.local, v.dev, v.learning, v.mtu) == \
        ("flannel.1", 1, 8472, "192.168.100.11", "eth0", False, 1450)
    assert Addr("p-node1", "flannel.1", "10.244.1.0/32") in p.objects
    assert Addr("p-node1", "cni0", "10.244.1.1/24") in p.objects
    # the bridge plugin sets cni0's MAC, so it never follows the lowest port MAC (issue 11)
    assert Bridge("p-node1", "cni0", mtu=1450, mac=naming.mac("p", "node1", "cni0")) in p.objects


def test_remote_entries_in_flannel_order():
    p = plan(nodes=3)
    node1 = [o for o in p.objects if o.ns == "p-node1" and isinstance(o, (Neigh, Fdb, Route)) and
             getattr(o, "dev", None) == "flannel.1"]
    kinds = [type(o).__name__ for o in node1]
    assert kinds == ["Neigh", "Fdb", "Route"] * 2  # neigh, fdb, then route, per remote node
    neigh, fdb, route = node1[:3]
    assert neigh.dst == "10.244.2.0" and neigh.state == "permanent"
    assert fdb.lladdr == neigh.lladdr and fdb.dst == "192.168.100.12"
    assert (route.dst, route.via, route.dev, route.onlink) == ("10.244.2.0/24", "10.244.2.0", "flannel.1", True)
    vtep2 = next(v for v in p.of(Vxlan) if v.ns == "p-node2")
    assert neigh.lladdr == vtep2.mac


def test_pods_attached_like_the_bridge_plugin():
    p = plan()
    veths = [v for v in p.of(Veth) if v.b.ns == "p-node1-pod1"]
    assert len(veths) == 1
    v = veths[0]
    assert v.a.name.startswith("veth") and len(v.a.name) == 12 and v.a.master == "cni0" and v.a.hairpin
    assert (v.b.name, v.b.mtu, v.a.mtu) == ("eth0", 1450, 1450)
    assert (v.a.txqueuelen, v.b.txqueuelen) == (0, 0)  # the plugin's veths: TxQLen 0 on both ends
    # accept_ra 0 on cni0 and the host veth, accept_dad 0 in the pod (hairpin reflects DAD probes)
    assert Sysctl("p-node1", "net/ipv6/conf/cni0/accept_ra", "0", required=False) in p.objects
    assert Sysctl("p-node1", f"net/ipv6/conf/{v.a.name}/accept_ra", "0", required=False) in p.objects
    assert Sysctl("p-node1-pod1", "net/ipv6/conf/eth0/accept_dad", "0", required=False) in p.objects
    assert Addr("p-node1-pod1", "eth0", "10.244.1.2/24") in p.objects
    routes = [r for r in p.of(Route) if r.ns == "p-node1-pod1"]
    assert [(r.dst, r.via) for r in routes] == [("default", "10.244.1.1"), ("10.244.0.0/16", "10.244.1.1")]


def test_forwarding_and_masquerade():
    p = plan()
    assert Sysctl("p-node1", "net/ipv4/ip_forward", "1") in p.objects
    rs = next(r for r in p.of(Ruleset) if r.ns == "p-node1")
    text = rs.restore_text()
    assert "-A POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG" in text
    assert "-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment \"flanneld masq\" " \
           "-j MASQUERADE --random-fully" in text
    assert "-A FLANNEL-POSTRTG -s 10.244.1.0/24 -d 10.244.0.0/16" in text
    assert "-A FLANNEL-FWD -s 10.244.0.0/16" in text


def test_mtu_follows_the_underlay():
    p = api.build_plan(model.load("vxlan", name="p", overrides={"mtu": 9000}))
    assert {v.mtu for v in p.of(Vxlan)} == {8950}


def test_plan_is_deterministic_and_scales_linearly_per_node():
    assert plan().objects == plan().objects
    p = plan(nodes=10, pods=1)
    per_node = [o for o in p.objects if o.ns == "p-node1" and isinstance(o, (Neigh, Fdb))]
    assert len(per_node) == 2 * 9  # one neigh and one fdb per remote node, no per-pod entries


def test_explain_script_covers_every_object():
    text = script(plan())
    assert "ip -n p-node1 link add flannel.1 address" in text
    assert "type vxlan id 1 local 192.168.100.11 dev eth0 dstport 8472 nolearning" in text
    assert "bridge -n p-node1 fdb append" in text and "self permanent" in text
    assert "ip -n p-node1 route add 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink" in text
    assert "ip -n p-node1 link add veth" in text and "netns p-node1-pod1" in text
    assert text.index("neigh replace 10.244.2.0") < text.index("route add 10.244.2.0/24")
    assert "iptables-restore --noflush" in text


def test_sysctl_paths_keep_dotted_interface_names():
    from netlab.plan import Sysctl

    assert Sysctl("n", "net/ipv6/conf/flannel.1/accept_ra", "0").path == "/proc/sys/net/ipv6/conf/flannel.1/accept_ra"
    assert Sysctl("n", "net.ipv4.ip_forward", "1").path == "/proc/sys/net/ipv4/ip_forward"
    assert Sysctl("p-node1", "net/ipv6/conf/flannel.1/accept_ra", "0", required=False) in plan().objects
