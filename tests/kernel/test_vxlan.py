"""The vxlan lab on the real kernel: traffic, independent read-back of every flannel fact,
explain, and clean teardown (issue 2)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

from netlab import api, model
from netlab.explain import script
from tests.helpers import (ROOT, Capture, bridgej, ipj, iptables_save, ping, sh,
                           sysctl, unique_name)

pytestmark = pytest.mark.kernel


def test_cross_node_ping_crosses_the_underlay_as_vxlan(vxlan_lab, tmp_path):
    lab = vxlan_lab
    sw = lab.ns("switch")
    cap = Capture(sw, "br0", "udp port 8472", tmp_path / "u.pcap", count=4)
    assert ping(lab.ns("node1-pod1"), "10.244.2.2", count=2)
    pkts = cap.packets()
    assert pkts, "no VXLAN packet seen on the underlay switch"
    p = pkts[0]
    assert p[IP].src == "192.168.100.11" and p[IP].dst == "192.168.100.12"
    assert p[UDP].dport == 8472
    assert p[VXLAN].flags == 0x08 and p[VXLAN].vni == 1
    inner = p[VXLAN].payload
    assert isinstance(inner, Ether)
    assert inner[IP].src == "10.244.1.2" and inner[IP].dst == "10.244.2.2"
    assert inner[ICMP].type == 8
    # inner Ethernet: from node1's VTEP MAC to node2's, as programmed in the neigh table
    vtep1 = ipj(lab.ns("node1"), "link", "show", "flannel.1")[0]["address"]
    vtep2 = ipj(lab.ns("node2"), "link", "show", "flannel.1")[0]["address"]
    assert (inner[Ether].src, inner[Ether].dst) == (vtep1, vtep2)


def test_same_node_ping(vxlan_lab):
    assert ping(vxlan_lab.ns("node1-pod1"), "10.244.1.3")


def test_mtu_1450_end_to_end(vxlan_lab):
    src = vxlan_lab.ns("node1-pod1")
    assert ping(src, "10.244.2.2", size=1422)  # 1422 + 8 ICMP + 20 IP = 1450
    assert not ping(src, "10.244.2.2", size=1423, timeout=1)


def test_kernel_state_has_every_flannel_fact(vxlan_lab):
    n1 = vxlan_lab.ns("node1")
    link = ipj(n1, "-d", "link", "show", "flannel.1")[0]
    info = link["linkinfo"]
    assert info["info_kind"] == "vxlan"
    data = info["info_data"]
    assert data["id"] == 1 and data["port"] == 8472 and data["local"] == "192.168.100.11"
    assert data["link"] == "eth0" and data.get("learning") is False
    assert link["mtu"] == 1450 and "UP" in link["flags"]
    addrs = ipj(n1, "addr", "show", "flannel.1")[0]["addr_info"]
    assert [(a["local"], a["prefixlen"]) for a in addrs if a["family"] == "inet"] == [("10.244.1.0", 32)]
    cni0 = ipj(n1, "-d", "link", "show", "cni0")[0]
    assert cni0["linkinfo"]["info_kind"] == "bridge" and cni0["mtu"] == 1450
    vtep2 = ipj(vxlan_lab.ns("node2"), "link", "show", "flannel.1")[0]["address"]
    neigh = [n for n in ipj(n1, "neigh", "show", "dev", "flannel.1") if n["dst"] == "10.244.2.0"]
    assert neigh and neigh[0]["lladdr"] == vtep2 and "PERMANENT" in neigh[0]["state"]
    fdb = [f for f in bridgej(n1, "fdb", "show", "dev", "flannel.1") if f["mac"] == vtep2]
    assert fdb and fdb[0]["dst"] == "192.168.100.12" and "self" in fdb[0]["flags"] and fdb[0]["state"] == "permanent"
    route = [r for r in ipj(n1, "route", "show", "10.244.2.0/24")]
    assert route and route[0]["gateway"] == "10.244.2.0" and route[0]["dev"] == "flannel.1"
    assert "onlink" in route[0]["flags"]
    assert sysctl(n1, "net.ipv4.ip_forward") == "1"
    # pods: eth0 MTU 1450, /24, routes via the cni0 gateway, host end on cni0 with hairpin
    pod = vxlan_lab.ns("node1-pod1")
    eth0 = ipj(pod, "addr", "show", "eth0")[0]
    assert eth0["mtu"] == 1450
    assert [(a["local"], a["prefixlen"]) for a in eth0["addr_info"] if a["family"] == "inet"] == [("10.244.1.2", 24)]
    routes = {r["dst"]: r.get("gateway") for r in ipj(pod, "route")}
    assert routes["default"] == "10.244.1.1" and routes["10.244.0.0/16"] == "10.244.1.1"
    ports = [p for p in bridgej(n1, "-d", "link", "show") if p.get("master") == "cni0"]
    assert len(ports) == 2 and all(p["ifname"].startswith("veth") and p["hairpin"] for p in ports)


def test_masquerade_rules_and_pod_to_outside_is_masqueraded(vxlan_lab, tmp_path):
    rules = iptables_save(vxlan_lab.ns("node1"))
    assert '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG' in rules
    assert '-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" ' \
           '-j MASQUERADE --random-fully' in rules
    assert '-A FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT' in rules
    router = vxlan_lab.ns("router")
    cap = Capture(router, "eth0", "icmp", tmp_path / "r.pcap", count=2)
    assert ping(vxlan_lab.ns("node1-pod1"), "192.168.100.1")
    pkts = cap.packets()
    assert pkts and pkts[0][IP].src == "192.168.100.11", "the router must see node1's address, not the pod's"


def test_status_is_healthy_then_sees_a_deleted_fdb_entry(lab_factory):
    lab = lab_factory("vxlan")
    assert lab.verify().ok
    n1 = lab.ns("node1")
    vtep2 = ipj(lab.ns("node2"), "link", "show", "flannel.1")[0]["address"]
    sh("bridge", "-n", n1, "fdb", "del", vtep2, "dev", "flannel.1", "dst", "192.168.100.12", "self")
    rep = lab.verify()
    assert not rep.ok
    assert [p.what for p in rep.problems] == [f"bridge -n {n1} fdb append {vtep2} dev flannel.1 dst 192.168.100.12 self permanent"]
    out = subprocess.run([sys.executable, "-m", "netlab", "status", lab.name, "--json"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1 and '"ok": false' in out.stdout


def test_explain_script_builds_a_working_lab(tmp_path):
    name = unique_name("x")
    lab = model.load("vxlan", name=name)
    plan = api.build_plan(lab)
    path = tmp_path / "lab.sh"
    path.write_text(script(plan))
    try:
        r = sh("bash", str(path), check=False)
        assert r.returncode == 0, r.stderr
        assert ping(f"{name}-node1-pod1", "10.244.2.2", count=2)
        neigh = ipj(f"{name}-node1", "neigh", "show", "dev", "flannel.1")
        assert neigh and "PERMANENT" in neigh[0]["state"]
    finally:
        for n in plan.namespaces:
            sh("ip", "netns", "del", n.name, check=False)


def test_scale_override_four_nodes_three_pods(lab_factory):
    lab = lab_factory("vxlan", nodes=4, pods=3)
    assert len(lab.plan.namespaces) == 2 + 4 + 12
    assert ping(lab.ns("node4-pod3"), "10.244.1.2")
    assert ping(lab.ns("node2-pod2"), "10.244.3.4")
    assert len([r for r in ipj(lab.ns("node1"), "route") if r.get("dev") == "flannel.1"]) == 3
