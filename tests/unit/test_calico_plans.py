"""The Calico plans hold DATAPATHS.md §3–3c's facts, and BIRD's configs are what confd would render
(pure, no root; ``bird -p`` parses every rendered config where BIRD is installed)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from ipaddress import IPv4Network

import pytest

from netlab import api, model
from netlab.datapaths import calico, get
from netlab.errors import LabFileError
from netlab.explain import script
from netlab.plan import Addr, Bridge, Daemon, Fdb, File, Ipip, Neigh, Route, Ruleset, Sysctl, Veth, Vxlan
from netlab.topology import resolve


def plan(lab: str = "calico", **over):
    return api.build_plan(model.load(lab, name="p", overrides=over))


def cali(pod: str) -> str:
    """Calico's VethNameForWorkload, computed here independently: cali + sha1("default.<pod>")[:11]."""
    return "cali" + hashlib.sha1(f"default.{pod}".encode()).hexdigest()[:11]


def conf(p, host: str) -> str:
    return next(f.content for f in p.of(File) if f.path == f"{{run}}/bird-{host}.conf")


# -- calico: pods, node, no bridge ----------------------------------------------------------------

def test_lab_files_use_an_underlay_outside_the_pool():
    for lab in ("calico", "calico-rr", "calico-vxlan", "calico-ipip"):
        m = model.load(lab, name="p")
        assert m.pod_cidr == IPv4Network("192.168.0.0/16")
        assert m.underlay.cidr == IPv4Network("10.0.0.0/24")
        assert not m.underlay.cidr.overlaps(m.pod_cidr)


def test_pod_side_is_a_32_behind_169_254_1_1():
    p = plan()
    assert Addr("p-node1-pod1", "eth0", "192.168.1.1/32") in p.objects
    assert Addr("p-node2-pod2", "eth0", "192.168.2.2/32") in p.objects
    routes = [r for r in p.of(Route) if r.ns == "p-node1-pod1"]
    # the scope-link route to the dummy gateway first, then the default through it; no onlink
    assert [(r.dst, r.via, r.dev, r.scope, r.onlink) for r in routes] == [
        ("169.254.1.1/32", None, "eth0", "link", False), ("default", "169.254.1.1", "eth0", None, False)]
    assert not [n for n in p.of(Neigh) if n.ns.endswith("pod1")], "Calico writes no static ARP"


def test_host_side_cali_veth_no_ip_proxy_arp_sysctls_and_32_route():
    p = plan()
    name = cali("node1-pod1")
    pod = next(pd for pd in resolve(model.load("calico", name="p")).pods if pd.host == "node1-pod1")
    assert calico.cali_name(pod) == name
    assert len(name) == 15
    v = next(v for v in p.of(Veth) if v.b.ns == "p-node1-pod1")
    assert (v.a.ns, v.a.name, v.a.mac, v.a.master, v.b.name, v.a.mtu) == \
        ("p-node1", name, "ee:ee:ee:ee:ee:ee", None, "eth0", 1500)
    assert not [a for a in p.of(Addr) if a.dev == name], "the host end has no address"
    for key, value in (("net/ipv4/conf/{}/proxy_arp", "1"), ("net/ipv4/neigh/{}/proxy_delay", "0"),
                       ("net/ipv4/conf/{}/forwarding", "1"), ("net/ipv4/conf/{}/route_localnet", "1")):
        assert Sysctl("p-node1", key.format(name), value) in p.objects
    # Calico's CNI plugin and Felix turn router advertisements off on the host end (DATAPATHS.md §3)
    assert Sysctl("p-node1", f"net/ipv6/conf/{name}/accept_ra", "0", required=False) in p.objects
    # Calico leaves txqueuelen alone (netlink.NewLinkAttrs: TxQLen -1)
    assert (v.a.txqueuelen, v.b.txqueuelen) == (None, None)
    assert Route("p-node1", "192.168.1.1/32", dev=name, scope="link") in p.objects
    assert Sysctl("p-node1", "net/ipv4/ip_forward", "1") in p.objects
    # the default route proxy ARP needs points into the lab, at the underlay router
    assert Route("p-node1", "default", via="10.0.0.1", dev="eth0") in p.objects
    assert not [b for b in p.of(Bridge) if b.ns == "p-node1"], "Calico has no bridge on the node"


def test_no_netlab_route_to_a_remote_pod_or_block_bird_installs_them():
    p = plan()
    pool = IPv4Network("192.168.0.0/16")
    node_routes = [r for r in p.of(Route) if r.ns == "p-node1" and r.dst != "default"
                   and IPv4Network(r.dst).subnet_of(pool)]
    assert all(r.dev.startswith("cali") and IPv4Network(r.dst).prefixlen == 32 for r in node_routes)
    assert not [r for r in node_routes if r.type == "blackhole"], "the blackhole is BIRD's (proto bird)"


def test_nat_outgoing_and_forward_rules():
    rs = next(r for r in plan().of(Ruleset) if r.ns == "p-node1")
    text = rs.restore_text()
    assert ":cali-nat-outgoing - [0:0]" in text
    assert "-A POSTROUTING -j cali-POSTROUTING" in text
    assert "-A cali-POSTROUTING -j cali-nat-outgoing" in text
    assert "-A cali-nat-outgoing -s 192.168.0.0/16 ! -d 192.168.0.0/16 -j MASQUERADE --random-fully" in text
    assert "-A FORWARD -j cali-FORWARD" in text
    assert "-A cali-FORWARD -i cali+ -j ACCEPT" in text and "-A cali-FORWARD -o cali+ -j ACCEPT" in text
    off = next(r for r in plan(options={"nat_outgoing": "false"}).of(Ruleset) if r.ns == "p-node1")
    assert "MASQUERADE" not in off.restore_text()


# -- BIRD: config files and daemons ----------------------------------------------------------------

def test_bird_runs_in_every_node_in_the_foreground_with_files_under_run():
    p = plan()
    daemons = {d.ns: d for d in p.of(Daemon)}
    assert set(daemons) == {"p-node1", "p-node2", "p-node3"}
    d = daemons["p-node1"]
    assert d.name == "bird"
    assert d.argv == ("bird", "-f", "-c", "{run}/bird-node1.conf", "-s", "{run}/bird-node1.ctl",
                      "-P", "{run}/bird-node1.pid")
    assert d.ready == "{run}/bird-node1.ctl"
    assert {f.path for f in p.of(File)} == {f"{{run}}/bird-node{i}.conf" for i in (1, 2, 3)}
    # files before daemons, whatever order the datapath added them in
    phases = [ph.name for ph, _ in p.phased()]
    assert phases.index("files") < phases.index("daemons")


def test_bird_config_mesh_as_blocks_and_filters():
    text = conf(plan(), "node1")
    assert "router id 10.0.0.11;" in text
    assert "local as 64512;" in text
    assert "route 192.168.1.0/26 blackhole;" in text
    assert "define POOL = 192.168.0.0/16;" in text
    assert "if ( net = 192.168.1.0/26 ) then { accept; }" in text  # calico_aggr
    assert "export filter calico_export_to_bgp_peers;" in text
    assert "export filter calico_kernel_programming;" in text
    assert "protocol kernel {" in text and "persist;" in text
    assert "hold time 9;" in text and "keepalive time 3;" in text
    assert "graceful restart aware;" in text
    assert text.count("protocol bgp Mesh_") == 2
    assert "protocol bgp Mesh_10_0_0_12 from bgp_template {\n  neighbor 10.0.0.12 as 64512;\n" \
           "  source address 10.0.0.11;\n  direct;\n  passive on;\n}" in text
    # node3 is the greatest IP: it dials everyone
    assert "passive on" not in conf(plan(), "node3")
    assert "route 192.168.2.0/26" not in text, "no static route to a remote block"


def test_one_active_side_per_pair_by_string_comparison():
    p = plan(nodes=12)  # 10.0.0.11 … 10.0.0.23
    active: dict[frozenset, list[str]] = {}
    for i in range(1, 13):
        text = conf(p, f"node{i}")
        me = f"10.0.0.{10 + i}"
        for block in text.split("protocol bgp ")[1:]:
            peer = block.split("neighbor ")[1].split(" ")[0]
            if "passive on" not in block:
                active.setdefault(frozenset((me, peer)), []).append(me)
    assert len(active) == 12 * 11 // 2
    assert all(len(v) == 1 and v[0] == max(k) for k, v in active.items())
    # confd compares strings, not numbers: "10.0.0.9" > "10.0.0.10"
    assert calico.Peer("x", "10.0.0.9", "10.0.0.10").passive
    assert not calico.Peer("x", "10.0.0.10", "10.0.0.9").passive


def test_hold_time_and_as_number_are_options():
    text = conf(plan(options={"hold_time": "30", "as_number": "65001"}), "node2")
    assert "hold time 30;" in text and "keepalive time 10;" in text and "local as 65001;" in text
    assert "neighbor 10.0.0.11 as 65001;" in text


@pytest.mark.skipif(shutil.which("bird") is None, reason="BIRD 2 (package bird2) is not installed")
@pytest.mark.parametrize("lab, over", [("calico", {}), ("calico-rr", {}), ("calico-ipip", {}),
                                       ("calico-ipip", {"racks": 2, "options": {"mode": "CrossSubnet"}}),
                                       ("calico", {"nodes": 30})])
def test_bird_parses_every_rendered_config(tmp_path, lab, over):
    p = plan(lab, **over)
    files = p.of(File)
    assert files
    for f in files:
        path = tmp_path / f.path.split("/")[-1]
        path.write_text(f.content)
        r = subprocess.run(["bird", "-p", "-c", str(path)], capture_output=True, text=True)
        assert r.returncode == 0, f"{f.path}: {r.stderr}"


def test_explain_writes_the_configs_before_starting_bird():
    text = script(plan())
    assert "cat > \"$run/bird-node1.conf\" <<'NETLAB_EOF'\n# BIRD 2 configuration of node1" in text
    assert "router id 10.0.0.11;" in text
    assert text.index("# --- files") < text.index("# --- daemons")
    assert "ip netns exec p-node1 bird -f -c" in text


# -- calico-rr --------------------------------------------------------------------------------------

def test_route_reflector_namespace_on_the_switch_and_its_clients():
    p = plan("calico-rr", nodes=4)
    rr = p.host("rr")
    assert rr.name == "p-rr"
    v = next(v for v in p.of(Veth) if v.a.ns == "p-rr")
    assert (v.a.name, v.b.ns, v.b.master) == ("eth0", "p-switch", "br0")
    assert Addr("p-rr", "eth0", "10.0.0.2/24") in p.objects
    rr_conf = conf(p, "rr")
    assert rr_conf.count("rr client;") == 4 and rr_conf.count("rr cluster id 244.0.0.1;") == 4
    assert "protocol kernel" not in rr_conf, "the reflector programs no routes"
    assert "router id 10.0.0.2;" in rr_conf
    node = conf(p, "node1")
    assert "Mesh_" not in node and node.count("protocol bgp ") == 1
    assert "neighbor 10.0.0.2 as 64512;" in node and "rr client" not in node
    assert "route 192.168.1.0/26 blackhole;" in node
    assert {d.ns for d in p.of(Daemon)} == {"p-rr"} | {f"p-node{i}" for i in range(1, 5)}


def test_sessions_grow_as_n_with_a_reflector_and_n_squared_in_a_mesh():
    for n in (5, 10, 20):
        mesh = sum(conf(plan(nodes=n), f"node{i}").count("protocol bgp ") for i in range(1, n + 1))
        rr = conf(plan("calico-rr", nodes=n), "rr").count("protocol bgp ")
        assert mesh == n * (n - 1)  # each session configured on both ends
        assert rr == n


def test_without_encapsulation_one_rack_only():
    with pytest.raises(LabFileError, match="racks"):
        model.load("calico", name="p", overrides={"racks": 2})
    with pytest.raises(LabFileError, match="racks"):
        model.load("calico-rr", name="p", overrides={"racks": 2})


def test_pool_must_hold_a_block_per_node(tmp_path):
    lab = tmp_path / "small.yaml"
    lab.write_text("datapath: calico-bgp\nnodes: 20\nunderlay: {cidr: 10.0.0.0/24}\npod_cidr: 192.168.0.0/20\n")
    with pytest.raises(LabFileError, match="pod_cidr"):
        model.load(str(lab), name="p")


# -- calico-vxlan -----------------------------------------------------------------------------------

def test_vxlan_device_entries_and_routes():
    p = plan("calico-vxlan")
    v = next(v for v in p.of(Vxlan) if v.ns == "p-node1")
    assert (v.name, v.vni, v.port, v.local, v.dev, v.learning, v.mtu) == \
        ("vxlan.calico", 4096, 4789, "10.0.0.11", "eth0", False, 1450)
    assert Addr("p-node1", "vxlan.calico", "192.168.1.0/32") in p.objects
    assert Route("p-node1", "192.168.1.0/26", type="blackhole") in p.objects
    mac2 = next(x.mac for x in p.of(Vxlan) if x.ns == "p-node2")
    entries = [o for o in p.objects if isinstance(o, (Neigh, Fdb, Route)) and o.ns == "p-node1"
               and getattr(o, "dev", None) == "vxlan.calico"]
    assert [type(o).__name__ for o in entries] == ["Neigh", "Fdb", "Route"] * 2
    neigh, fdb, route = entries[:3]
    assert (neigh.dst, neigh.lladdr, neigh.state) == ("192.168.2.0", mac2, "permanent")
    assert (fdb.lladdr, fdb.dst) == (mac2, "10.0.0.12")
    assert (route.dst, route.via, route.dev, route.onlink, route.proto) == \
        ("192.168.2.0/26", "192.168.2.0", "vxlan.calico", True, "boot")
    assert not p.of(Daemon), "VXLAN mode: Felix programs everything, no BIRD"
    pod = next(v for v in p.of(Veth) if v.b.ns == "p-node1-pod1")
    assert pod.a.mtu == pod.b.mtu == 1450
    text = next(r for r in p.of(Ruleset) if r.ns == "p-node1").restore_text()
    assert "-A cali-POSTROUTING -o vxlan.calico -m addrtype ! --src-type LOCAL --limit-iface-out " \
           "-m addrtype --src-type LOCAL -j MASQUERADE" in text
    assert "-A cali-INPUT -s 10.0.0.0/24 -p udp -m udp --dport 4789 -m addrtype --dst-type LOCAL -j ACCEPT" in text
    assert "-A cali-INPUT -p udp -m udp --dport 4789 -j DROP" in text


def test_vxlan_cross_subnet():
    p = plan("calico-vxlan", nodes=3, racks=2, options={"mode": "CrossSubnet"})
    # node1 and node3 share rack 1 (10.0.0.0/24); node2 is in rack 2 (10.0.1.0/24)
    r = {x.dst: x for x in p.of(Route) if x.ns == "p-node1" and x.dst in ("192.168.2.0/26", "192.168.3.0/26")}
    assert (r["192.168.3.0/26"].via, r["192.168.3.0/26"].dev, r["192.168.3.0/26"].onlink) == ("10.0.0.12", "eth0", True)
    assert (r["192.168.2.0/26"].via, r["192.168.2.0/26"].dev) == ("192.168.2.0", "vxlan.calico")


# -- calico-ipip ------------------------------------------------------------------------------------

def test_ipip_requires_the_kernel_feature():
    assert "ipip" in get("calico-ipip").requires


def test_ipip_plan_tunl0_and_onlink_routes():
    p = plan("calico-ipip")
    assert Ipip("p-node1", "tunl0", mtu=1480) in p.objects
    assert Addr("p-node1", "tunl0", "192.168.1.0/32") in p.objects
    assert Route("p-node1", "192.168.2.0/26", via="10.0.0.12", dev="tunl0", onlink=True) in p.objects
    assert Route("p-node1", "192.168.3.0/26", via="10.0.0.13", dev="tunl0", onlink=True) in p.objects
    pod = next(v for v in p.of(Veth) if v.b.ns == "p-node1-pod1")
    assert pod.a.mtu == pod.b.mtu == 1480
    text = conf(p, "node1")
    assert "if ( source = RTS_STATIC ) then accept;" in text, "BIRD installs only its blackhole"
    assert text.count("protocol bgp Mesh_") == 2
    rules = next(r for r in p.of(Ruleset) if r.ns == "p-node1").restore_text()
    assert "-A cali-INPUT -s 10.0.0.0/24 -p ipencap -m addrtype --dst-type LOCAL -j ACCEPT" in rules
    assert "-A cali-POSTROUTING -o tunl0 -m addrtype" in rules


def test_ipip_cross_subnet_with_two_racks():
    p = plan("calico-ipip", nodes=4, racks=2, options={"mode": "CrossSubnet"})
    # rack 1: node1 10.0.0.11, node3 10.0.0.12; rack 2: node2 10.0.1.11, node4 10.0.1.12
    routes = {r.dst: r for r in p.of(Route) if r.ns == "p-node1" and r.dst.endswith("/26") and r.type == "unicast"}
    assert (routes["192.168.3.0/26"].via, routes["192.168.3.0/26"].dev, routes["192.168.3.0/26"].onlink) == \
        ("10.0.0.12", "eth0", False)
    assert (routes["192.168.2.0/26"].via, routes["192.168.2.0/26"].dev, routes["192.168.2.0/26"].onlink) == \
        ("10.0.1.11", "tunl0", True)
    assert (routes["192.168.4.0/26"].dev, routes["192.168.4.0/26"].onlink) == ("tunl0", True)
    text = conf(p, "node1")
    assert "neighbor 10.0.0.12 as 64512;\n  source address 10.0.0.11;\n  direct;" in text
    assert "neighbor 10.0.1.11 as 64512;\n  source address 10.0.0.11;\n  multihop;" in text
    always = plan("calico-ipip", nodes=4, racks=2)
    assert all(r.dev == "tunl0" for r in always.of(Route) if r.ns == "p-node1" and r.dst.endswith("/26")
               and r.type == "unicast")


def test_ipip_explain_creates_tunl0_only_where_missing():
    text = script(plan("calico-ipip"))
    assert "ip -n p-node1 link show tunl0 >/dev/null 2>&1 || ip -n p-node1 tunnel add tunl0 mode ipip" in text
    assert "ip -n p-node1 link set tunl0 mtu 1480" in text
    assert "ip -n p-node1 route add 192.168.2.0/26 via 10.0.0.12 dev tunl0 onlink" in text


def test_calico_helper_is_not_a_datapath():
    import netlab.datapaths.calico as helper
    from netlab.datapaths import names

    assert not hasattr(helper, "DATAPATH")
    assert {"calico-bgp", "calico-rr", "calico-vxlan", "calico-ipip"} <= set(names())


def test_plans_are_deterministic():
    for lab in ("calico", "calico-rr", "calico-vxlan", "calico-ipip"):
        assert plan(lab).objects == plan(lab).objects
