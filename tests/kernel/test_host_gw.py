"""host-gw on one L2 segment, its refusal across racks, and VXLAN across racks (issue 3)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether

from tests.helpers import ROOT, Capture, bridgej, ipj, iptables_save, ping, residue, root_snapshot, unique_name

pytestmark = pytest.mark.kernel


def test_host_gw_routes_and_plain_l2_forwarding(lab_factory, tmp_path):
    lab = lab_factory("host-gw")
    n1 = lab.ns("node1")
    routes = {r["dst"]: r for r in ipj(n1, "route")}
    r = routes["10.244.2.0/24"]
    assert r["gateway"] == "192.168.100.12" and r["dev"] == "eth0" and "onlink" not in r.get("flags", [])
    assert not [l for l in ipj(n1, "-d", "link") if l.get("linkinfo", {}).get("info_kind") in ("vxlan", "tun")]
    assert ipj(n1, "link", "show", "cni0")[0]["mtu"] == 1500
    assert "FLANNEL-POSTRTG" in iptables_save(n1)
    # on the wire: the pod's own packet, addressed at L2 to node2's eth0: no encapsulation at all
    node2_mac = ipj(lab.ns("node2"), "link", "show", "eth0")[0]["address"]
    cap = Capture(lab.ns("switch"), "br0", "icmp", tmp_path / "hg.pcap", count=2)
    assert ping(lab.ns("node1-pod1"), "10.244.2.2")
    pkts = cap.packets()
    assert pkts and pkts[0][IP].src == "10.244.1.2" and pkts[0][IP].dst == "10.244.2.2"
    assert pkts[0][Ether].dst == node2_mac and UDP not in pkts[0] and pkts[0][ICMP].type == 8
    assert ping(lab.ns("node1-pod1"), "10.244.1.3")  # same node
    assert ping(lab.ns("node2-pod2"), "192.168.100.1")  # to the router (masqueraded)


def test_host_gw_four_nodes_three_pods(lab_factory):
    lab = lab_factory("host-gw", nodes=4, pods=3)
    assert ping(lab.ns("node4-pod3"), "10.244.1.2") and ping(lab.ns("node1-pod1"), "10.244.3.4")
    assert len([r for r in ipj(lab.ns("node2"), "route") if r.get("gateway", "").startswith("192.168.100.")]) == 4


def test_host_gw_across_racks_is_refused_like_flannel():
    before = root_snapshot()
    name = unique_name()
    r = subprocess.run([sys.executable, "-m", "netlab", "up", "host-gw", "--name", name, "--racks", "2"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 4
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("netlab: the kernel refused") and "Network is unreachable" in err
    assert "Nexthop has invalid gateway" in err and "same L2 segment" in err and "vxlan --racks 2" in err
    assert residue(name) == [] and root_snapshot() == before


def test_vxlan_across_racks_routes_through_the_router(lab_factory, tmp_path):
    lab = lab_factory("vxlan", racks=2)
    assert ipj(lab.ns("node2"), "addr", "show", "eth0")[0]["addr_info"][0]["local"] == "192.168.101.11"
    fdb = [f for f in bridgej(lab.ns("node1"), "fdb", "show", "dev", "flannel.1") if f.get("dst")]
    assert [f["dst"] for f in fdb] == ["192.168.101.11"]
    cap = Capture(lab.ns("router"), "eth1", "udp port 8472", tmp_path / "r.pcap", count=2)
    assert ping(lab.ns("node1-pod1"), "10.244.2.2")
    pkts = cap.packets()
    assert pkts and pkts[0][IP].src == "192.168.100.11" and pkts[0][IP].dst == "192.168.101.11"
    assert pkts[0][IP].ttl == 63  # routed once by the underlay router
