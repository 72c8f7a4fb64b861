"""The host-limit estimate and comparison (issue 9, part 4), and BGP expectations derived from the
plan (part 5), without root: plans in, numbers out. The kernel reads are replaced by a
:class:`~netlab.kernel.limits.Host` built here; nothing reads or writes /proc/sys."""

from __future__ import annotations

import resource

import pytest

from netlab import api, bgp, model
from netlab.kernel import limits
from netlab.kernel.limits import Host, HostLimitError


def plan(lab: str, **overrides):
    return api.build_plan(model.load(lab, overrides=overrides))


def roomy(**kw) -> Host:
    """A host with every limit far away (the defaults of a 24 GB machine), overridable."""
    base = dict(gc_thresh2=512, gc_thresh3=1024, neigh_entries=10, table_fulls=0, conntrack_max=262144,
                net_namespaces=20, max_net_namespaces=96363, nofile_soft=20000, nofile_hard=20000, fds_open=8,
                files_allocated=300, file_max=2_000_000, tasks=100, pid_max=32768, threads_max=190000,
                mounts=40, mount_max=100000)
    base.update(kw)
    return Host(**base)


def test_calico_50_nodes_needs_more_than_the_default_gc_thresh3():
    n = limits.estimate(plan("calico", nodes=50))
    # 50 x 49 BGP session ends, 100 pods x 2 (pod -> 169.254.1.1, node -> pod), 50 nodes <-> router
    assert n.sessions == 2450
    assert n.everyone_talks == 2450 + 200 + 100
    assert n.neighbours == 2450 + limits.WORKING_SET  # held by BIRD, plus the working set
    assert n.neighbours > 1024


def test_vxlan_2_nodes_is_small():
    n = limits.estimate(plan("vxlan", nodes=2))
    # 4 pods x 2 (pod -> cni0, cni0 -> pod) and 2 nodes <-> router; the VTEP neighbours are permanent
    assert n.neighbours == 12
    assert n.sessions == 0 and n.daemons == 0


def test_vxlan_permanent_neighbours_and_data_plane_peers_are_not_counted():
    """100 flannel nodes hold 9900 permanent VTEP neighbours, exempt from the GC count, and reach
    each other's underlay address only while user traffic flows: the estimate stays linear."""
    n = limits.estimate(plan("vxlan", nodes=100))
    assert n.everyone_talks == 100 * 2 * 2 + 100 * 2
    # nothing is held by the lab itself: up needs room for the working set, not for every pod at once
    assert n.neighbours == limits.WORKING_SET


def test_a_1000_node_lab_fits_the_default_table_and_says_what_does_not():
    # flannel-udp: the same first-ping entries as vxlan (pods -> cni0, nodes -> router), without
    # vxlan's 3 million per-peer plan objects, which would make this a slow test
    n = limits.estimate(plan("flannel-udp", nodes=1000, pod_cidr="10.0.0.0/12", cidr="172.16.0.0/20"))
    assert n.neighbours == limits.WORKING_SET and n.everyone_talks == 6000
    assert limits.compare(n, roomy(), 10) == []
    note = limits.advice(n, roomy(), 10)
    assert note and "6000" in note and "1024" in note


def test_route_reflector_grows_linearly():
    mesh = limits.estimate(plan("calico", nodes=50))
    rr = limits.estimate(plan("calico-rr", nodes=50))
    assert rr.sessions == 100  # 50 on the nodes, 50 on the reflector
    assert rr.everyone_talks == 100 + 200 + 100 < 1024 < mesh.neighbours
    rr200 = limits.estimate(plan("calico-rr", nodes=200))
    assert rr200.neighbours == 400 + limits.WORKING_SET < 1024  # 200 nodes' sessions fit a default host


def test_calico_pod_entries_name_the_proxy_arp_gateway_and_the_node_side():
    keys = limits.neighbour_keys(plan("calico", nodes=2, pods=1))
    p = "calico"
    assert (f"{p}-node1-pod1", "eth0", "169.254.1.1") in keys  # answered by proxy ARP on cali*
    node1_cali = next(k for k in keys if k[0] == f"{p}-node1" and k[1].startswith("cali"))
    assert node1_cali[2] == "192.168.1.1"
    assert (f"{p}-node1", "eth0", "10.0.0.12") in keys and (f"{p}-node2", "eth0", "10.0.0.11") in keys
    assert (f"{p}-router", "eth0", "10.0.0.11") in keys


def test_docker_nat_hosts_with_the_same_subnet_are_separate_segments():
    """Both Docker hosts own 172.17.0.1; each container's gateway is on its own host's docker0."""
    keys = limits.neighbour_keys(plan("docker-nat"))
    gateways = {k for k in keys if k[2] == "172.17.0.1"}
    assert len({k[0] for k in gateways}) == len(gateways)  # one entry per container namespace


def test_every_shipped_lab_at_its_default_size_fits_the_default_host():
    for p in model.available():
        lab = model.load(str(p))
        needs = limits.estimate(api.build_plan(lab))
        assert limits.compare(needs, roomy(), 10) == [], p.stem


def test_largest_default_calico_mesh_that_fits_1024():
    """n nodes with 2 pods need n(n-1) + 4n + 2n entries: 29 fit, 30 do not."""
    assert limits.estimate(plan("calico", nodes=29)).neighbours == 29 * 28 + 6 * 29 == 986
    assert limits.compare(limits.estimate(plan("calico", nodes=29)), roomy(), 10) == []
    assert limits.compare(limits.estimate(plan("calico", nodes=30)), roomy(), 10)


def test_refusal_is_one_line_with_the_numbers_and_the_sysctl():
    needs = limits.estimate(plan("calico", nodes=50))
    with pytest.raises(HostLimitError) as e:
        limits.check(plan("calico", nodes=50), host=roomy(neigh_entries=12), in_use=lambda total: 12)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and len(msg) < 300
    assert f"about {needs.neighbours}" in msg and "uses 12" in msg and "= 1024" in msg
    assert "sysctl -w net.ipv4.neigh.default.gc_thresh3=8192" in msg and "gc_thresh2=4096" in msg
    assert "calico-rr" in msg
    assert e.value.exit_code == 5


def test_a_lab_too_large_for_memory_is_refused_before_its_plan_is_built():
    lab = model.load("vxlan", overrides={"nodes": 5000, "pod_cidr": "10.0.0.0/8", "cidr": "172.16.0.0/16"})
    with pytest.raises(HostLimitError) as e:
        limits.check_size(lab, 3, available=24 << 30)
    msg = str(e.value)
    assert "74985000 route/neighbour/FDB entries" in msg and "24.0 GiB are available" in msg
    assert "fewer nodes (about" in msg and len(msg.splitlines()) == 1
    small = model.load("vxlan", overrides={"nodes": 1000, "pod_cidr": "10.0.0.0/12", "cidr": "172.16.0.0/20"})
    limits.check_size(small, 3, available=24 << 30)  # 3 million entries and 3002 namespaces fit


def test_exact_usage_is_computed_only_when_the_upper_bound_does_not_fit():
    calls = []

    def in_use(total: int) -> int:
        calls.append(total)
        return 5

    limits.check(plan("vxlan", nodes=2), host=roomy(neigh_entries=100, nofile_soft=resource.RLIM_INFINITY),
                 in_use=in_use)
    assert calls == []
    # 1020 entries in the table, most of them permanent: the refined count lets the lab in
    limits.check(plan("vxlan", nodes=2), host=roomy(neigh_entries=1020, nofile_soft=resource.RLIM_INFINITY),
                 in_use=in_use)
    assert calls == [1020]


def test_a_low_gc_thresh3_refuses_even_a_small_lab():
    with pytest.raises(HostLimitError, match=r"gc_thresh3 = 16"):
        limits.check(plan("vxlan", nodes=2), host=roomy(gc_thresh3=16, neigh_entries=8), in_use=lambda t: t)


@pytest.mark.parametrize("field,value,word", [
    ("conntrack_max", 10, "nf_conntrack_max"),
    ("max_net_namespaces", 25, "user.max_net_namespaces"),
    ("nofile_hard", 100, "ulimit -Hn"),
    ("file_max", 350, "fs.file-max"),
    ("pid_max", 110, "kernel.pid_max"),
    ("mount_max", 60, "fs.mount-max"),
])
def test_other_shared_limits(field, value, word):
    needs = limits.estimate(plan("calico", nodes=10))
    short = limits.compare(needs, roomy(**{field: value}), 10)
    assert len(short) == 1 and word in short[0].what + short[0].fix, short
    assert str(value) in short[0].what


def test_nofile_soft_limit_is_raised_up_to_the_hard_limit(monkeypatch):
    calls = []
    monkeypatch.setattr(resource, "setrlimit", lambda which, lim: calls.append((which, lim)))
    needs = limits.check(plan("vxlan", nodes=100), host=roomy(nofile_soft=64, nofile_hard=4096))
    assert calls == [(resource.RLIMIT_NOFILE, (8 + needs.open_files, 4096))]


def test_arp_cache_parsing(tmp_path, monkeypatch):
    f = tmp_path / "arp_cache"
    f.write_text("entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast "
                 "rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls\n"
                 "00000400 00000054 0000006b 00000001 00000180 00000022 00000000 00000000 00000000 00000046 "
                 "00000000 00000000 0000000a\n"
                 "00000400 0000005c 00000043 00000001 00000241 00000028 00000000 00000000 00000000 00000000 "
                 "00000000 00000000 00000003\n")
    monkeypatch.setattr(limits, "ARP_CACHE", str(f))
    assert limits.arp_cache() == (1024, 13)  # entries: global, once; table_fulls: per CPU, summed


# -- BGP expectations from the plan -------------------------------------------------------------------

def test_bgp_expectations_of_a_mesh():
    exp = bgp.expected(plan("calico", nodes=3))
    assert [sp.host for sp in exp] == ["node1", "node2", "node3"]
    n1 = exp[0]
    assert n1.kernel and n1.blocks == ("192.168.1.0/26",) and n1.router_id == "10.0.0.11"
    assert [(s.name, s.neighbor) for s in n1.sessions] == [("Mesh_10_0_0_12", "10.0.0.12"),
                                                          ("Mesh_10_0_0_13", "10.0.0.13")]
    assert bgp.remote_blocks(exp, n1) == ["192.168.2.0/26", "192.168.3.0/26"]


def test_bgp_expectations_of_a_route_reflector():
    exp = {sp.host: sp for sp in bgp.expected(plan("calico-rr", nodes=4))}
    assert not exp["rr"].kernel and not exp["rr"].blocks and len(exp["rr"].sessions) == 4
    assert [s.neighbor for s in exp["node2"].sessions] == ["10.0.0.2"]
    assert bgp.remote_blocks(list(exp.values()), exp["rr"]) == [f"192.168.{i}.0/26" for i in range(1, 5)]


def test_kernel_checks_skip_routes_the_plan_installs():
    p = plan("calico-ipip", nodes=2)
    exp = bgp.expected(p)
    assert bgp.kernel_checks(exp, bgp.planned_routes(p), {sp.ns: [] for sp in exp}) == []
    p = plan("calico", nodes=2)
    exp = bgp.expected(p)
    checks = bgp.kernel_checks(exp, bgp.planned_routes(p), {exp[0].ns: [("192.168.2.0/26", "bird")],
                                                             exp[1].ns: [("192.168.1.0/26", "boot")]})
    assert [(c.host, c.ok) for c in checks] == [("node1", True), ("node2", False)]


def test_speaker_checks_name_the_session_and_its_state():
    p = plan("calico", nodes=2)
    sp = bgp.expected(p)[0]
    got = bgp.Speaker("node1", sp.ns, "s", sessions=[bgp.Session("Mesh_10_0_0_12", "10.0.0.12", "start", "Active",
                                                                 "", "", last_error="Hold timer expired")])
    checks = bgp.speaker_checks(sp, ["192.168.2.0/26"], got)
    assert [c.ok for c in checks] == [False, False]
    assert "Active" in checks[0].detail and "Hold timer expired" in checks[0].detail
    dead = bgp.speaker_checks(sp, [], bgp.Speaker("node1", sp.ns, "s", running=False, error="BIRD is stopped"))
    assert len(dead) == 1 and "stopped" in dead[0].detail


def test_labs_without_bird_expect_no_bgp():
    assert bgp.expected(plan("calico-vxlan")) == [] and bgp.expected(plan("vxlan")) == []


@pytest.mark.parametrize("lab", ["vxlan", "host-gw", "flannel-udp", "calico", "calico-rr", "calico-vxlan",
                                 "calico-ipip", "bridge"])
def test_per_peer_entries_come_from_the_plan_and_predict_its_growth(lab):
    """The memory check's entries per (node, other node) pair are counted on the datapath's own
    plan, not declared beside it: on larger plans than those it was counted on, the growth of the
    planned routes, neighbours and FDB entries is what it predicts. Only BIRD's learned routes,
    which no plan holds, are declared."""
    from netlab.datapaths import get
    from netlab.plan import Fdb, Neigh, Route

    loaded = model.load(lab, overrides={"nodes": 2})
    dp = get(loaded.datapath)
    planned = limits.per_peer(loaded, dp) - dp.learned_per_peer

    def entries(n: int) -> int:
        p = plan(lab, nodes=n)
        return sum(len(p.of(k)) for k in (Route, Neigh, Fdb))

    assert entries(9) - 2 * entries(8) + entries(7) == 2 * planned
    assert planned == {"vxlan": 3, "calico-vxlan": 3, "host-gw": 1, "calico-ipip": 1}.get(lab, 0)
    assert dp.learned_per_peer == (1 if lab in ("calico", "calico-rr") else 0)
