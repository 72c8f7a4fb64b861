"""The Calico labs on the real kernel (issue 4): traffic, every DATAPATHS.md §3 fact read back with
``ip -j``/``bridge -j``/``iptables-save``/``sysctl``, BGP routes installed by BIRD (``proto bird``),
a killed BIRD seen by ``status`` and aged out on its peers, calico-ipip refused cleanly where the
kernel has no ipip, and nothing left behind (BIRD included) with the root namespace unchanged."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.vxlan import VXLAN

from netlab.kernel import probe
from tests.helpers import (ROOT, Capture, bridgej, ipj, iptables_save, netns_list, ping, residue,
                           root_snapshot, sysctl, unique_name, wait_until)

pytestmark = pytest.mark.kernel
NETLAB = [sys.executable, "-m", "netlab"]
POOL_MASQ = "-A cali-nat-outgoing -s 192.168.0.0/16 ! -d 192.168.0.0/16 -j MASQUERADE --random-fully"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(NETLAB + list(args), capture_output=True, text=True, cwd=ROOT)


def cali(pod: str) -> str:
    return "cali" + hashlib.sha1(f"default.{pod}".encode()).hexdigest()[:11]


def blocks_of(lab, host: str) -> dict[str, dict]:
    """The node's routes to /26 blocks, by prefix, as ``ip -j route`` shows them."""
    return {r["dst"]: r for r in ipj(lab.ns(host), "route", "show") if r["dst"].endswith("/26")}


def wait_converged(lab, nodes: int, timeout: float = 30.0) -> float:
    """Seconds until every node holds a ``proto bird`` route to every other node's block."""
    t0 = time.monotonic()
    want = {f"192.168.{i}.0/26" for i in range(1, nodes + 1)}
    wait_until(lambda: all({d for d, r in blocks_of(lab, f"node{i}").items() if r.get("protocol") == "bird"} >= want
                           for i in range(1, nodes + 1)), timeout=timeout, interval=0.2, what="BGP converging",
               detail=lambda: [sorted(blocks_of(lab, f"node{i}")) for i in range(1, nodes + 1)])
    return time.monotonic() - t0


def netns_inode(ns: str) -> int:
    return os.stat(f"/run/netns/{ns}").st_ino


def assert_calico_pod_and_host_facts(lab) -> None:
    """DATAPATHS.md §3, read independently in node1 and its pod1."""
    n1, pod = lab.ns("node1"), lab.ns("node1-pod1")
    # pod: a /32 and the two routes through 169.254.1.1, no static ARP
    eth0 = ipj(pod, "addr", "show", "eth0")[0]
    assert [(a["local"], a["prefixlen"]) for a in eth0["addr_info"] if a["family"] == "inet"] == [("192.168.1.1", 32)]
    routes = ipj(pod, "route", "show")
    assert {"dst": "169.254.1.1", "dev": "eth0", "scope": "link", "flags": []}.items() <= \
        next(r for r in routes if r["dst"] == "169.254.1.1").items()
    default = next(r for r in routes if r["dst"] == "default")
    assert default["gateway"] == "169.254.1.1" and default["dev"] == "eth0" and "onlink" not in default["flags"]
    assert not [n for n in ipj(pod, "neigh", "show") if "PERMANENT" in n.get("state", [])]
    # host side: cali + 11 hex of sha1("default.node1-pod1"), ee:ee:…, no address, sysctls, /32 route
    name = cali("node1-pod1")
    link = ipj(n1, "-d", "addr", "show", name)[0]
    assert link["address"] == "ee:ee:ee:ee:ee:ee" and link["linkinfo"]["info_kind"] == "veth"
    assert not [a for a in link["addr_info"] if a["family"] == "inet"]
    assert sysctl(n1, f"net.ipv4.conf.{name}.proxy_arp") == "1"
    assert sysctl(n1, f"net.ipv4.neigh.{name}.proxy_delay") == "0"
    assert sysctl(n1, f"net.ipv4.conf.{name}.forwarding") == "1"
    assert sysctl(n1, f"net.ipv4.conf.{name}.route_localnet") == "1"
    assert sysctl(n1, "net.ipv4.ip_forward") == "1"
    r = next(r for r in ipj(n1, "route", "show") if r["dst"] == "192.168.1.1")
    assert r["dev"] == name and r["scope"] == "link"
    default = next(r for r in ipj(n1, "route", "show") if r["dst"] == "default")
    assert default["gateway"] == "10.0.0.1" and default["dev"] == "eth0", "the default route stays in the lab"
    assert not [l for l in ipj(n1, "-d", "link", "show") if l.get("linkinfo", {}).get("info_kind") == "bridge"]
    # proxy ARP answered the pod's ARP for the dummy gateway with ee:ee:ee:ee:ee:ee
    gw = [n for n in ipj(pod, "neigh", "show") if n["dst"] == "169.254.1.1"]
    assert gw and gw[0]["lladdr"] == "ee:ee:ee:ee:ee:ee"
    rules = iptables_save(n1)
    assert POOL_MASQ in rules
    assert "-A POSTROUTING -j cali-POSTROUTING" in rules and "-A cali-POSTROUTING -j cali-nat-outgoing" in rules
    assert "-A cali-FORWARD -i cali+ -j ACCEPT" in rules and "-A cali-FORWARD -o cali+ -j ACCEPT" in rules


def assert_masqueraded_to_router(lab, tmp_path) -> None:
    cap = Capture(lab.ns("router"), "eth0", "icmp", tmp_path / "r.pcap", count=2)
    assert ping(lab.ns("node1-pod1"), "10.0.0.1")
    pkts = cap.packets()
    assert pkts and pkts[0][IP].src == "10.0.0.11", "the router must see node1's address, not the pod's"


def assert_gone(lab, before: dict) -> None:
    lab.down()
    assert residue(lab.name) == []
    assert not [l for l in subprocess.run(["pgrep", "-af", f"/run/netlab/{lab.name}/"], capture_output=True,
                                          text=True).stdout.splitlines() if "pgrep" not in l]
    assert root_snapshot() == before


def test_calico_mesh_bird_routes_kill_and_age_out(lab_factory, tmp_path):
    before = root_snapshot()
    lab = lab_factory("calico")
    wait_converged(lab, 3)
    # BIRD runs in the node namespaces, nowhere else
    for d in lab.state.daemons:
        assert os.stat(f"/proc/{d.pid}/ns/net").st_ino == netns_inode(d.ns)
        assert d.argv[:2] == ["bird", "-f"]
    # remote blocks come from BIRD; the own block is BIRD's blackhole
    b1 = blocks_of(lab, "node1")
    assert b1["192.168.2.0/26"]["gateway"] == "10.0.0.12" and b1["192.168.2.0/26"]["dev"] == "eth0"
    assert b1["192.168.2.0/26"]["protocol"] == "bird" and b1["192.168.3.0/26"]["protocol"] == "bird"
    assert b1["192.168.1.0/26"]["type"] == "blackhole" and b1["192.168.1.0/26"]["protocol"] == "bird"
    assert ping(lab.ns("node1-pod1"), "192.168.2.1", count=2)
    assert ping(lab.ns("node3-pod2"), "192.168.1.2")
    assert ping(lab.ns("node1-pod1"), "192.168.1.2")  # same node, through the node
    assert_calico_pod_and_host_facts(lab)
    assert_masqueraded_to_router(lab, tmp_path)
    # netlab bgp: a full mesh of 3 is 2 established sessions per node, 2 blocks received
    r = cli("bgp", lab.name, "--json")
    assert r.returncode == 0, r.stderr
    speakers = {s["host"]: s for s in json.loads(r.stdout)["speakers"]}
    assert set(speakers) == {"node1", "node2", "node3"}
    assert all(s["established"] == 2 and s["received_count"] == 2 and s["installed_count"] == 3
               for s in speakers.values())
    assert lab.verify().ok
    # kill node2's BIRD: status says dead, and its block leaves node1 and node3
    bird2 = next(d for d in lab.state.daemons if d.ns == lab.ns("node2"))
    os.kill(bird2.pid, signal.SIGKILL)
    # dead once the kernel has scheduled its exit, which a loaded machine may take a while to do
    status = wait_until(lambda: r if (r := cli("status", lab.name, "--json")).returncode == 1 else None, timeout=30,
                        interval=0.2, what="status reporting node2's BIRD dead")
    daemons = {d["ns"]: d["alive"] for d in json.loads(status.stdout)["daemons"]}
    assert daemons == {lab.ns("node1"): True, lab.ns("node2"): False, lab.ns("node3"): True}
    wait_until(lambda: not any("192.168.2.0/26" in blocks_of(lab, h) for h in ("node1", "node3")), timeout=20,
               interval=0.2, what="node2's block ageing out on its peers")
    assert not ping(lab.ns("node1-pod1"), "192.168.2.1", timeout=1)
    assert ping(lab.ns("node1-pod1"), "192.168.3.1"), "the other routes stay"
    r = cli("bgp", lab.name, "--json")
    assert r.returncode == 1
    speakers = {s["host"]: s for s in json.loads(r.stdout)["speakers"]}
    assert not speakers["node2"]["running"] and speakers["node1"]["established"] == 1
    # a frozen BIRD keeps its TCP session open: only the hold time (9 s) notices it is gone
    bird3 = next(d for d in lab.state.daemons if d.ns == lab.ns("node3"))
    os.kill(bird3.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: "192.168.3.0/26" not in blocks_of(lab, "node1"), timeout=15, interval=0.2,
                   what="a frozen BIRD's block going after the 9 s hold time")
    finally:
        os.kill(bird3.pid, signal.SIGCONT)
    assert_gone(lab, before)


def test_calico_rr_one_session_per_node(lab_factory, tmp_path):
    before = root_snapshot()
    lab = lab_factory("calico-rr", nodes=4, pods=1)
    wait_converged(lab, 4)
    b1 = blocks_of(lab, "node1")
    # the reflector passes the next hop through unchanged: traffic goes node to node, not via it
    assert {(d, r.get("gateway"), r["protocol"]) for d, r in b1.items() if d != "192.168.1.0/26"} == {
        ("192.168.2.0/26", "10.0.0.12", "bird"), ("192.168.3.0/26", "10.0.0.13", "bird"),
        ("192.168.4.0/26", "10.0.0.14", "bird")}
    assert ping(lab.ns("node1-pod1"), "192.168.4.1", count=2)
    assert_masqueraded_to_router(lab, tmp_path)
    rr = lab.ns("rr")
    assert [a["local"] for a in ipj(rr, "addr", "show", "eth0")[0]["addr_info"] if a["family"] == "inet"] == ["10.0.0.2"]
    assert not [r for r in ipj(rr, "route", "show") if r.get("protocol") == "bird"], "the RR installs nothing"
    speakers = {s["host"]: s for s in json.loads(cli("bgp", lab.name, "--json").stdout)["speakers"]}
    assert speakers["rr"]["established"] == 4
    for i in range(1, 5):
        s = speakers[f"node{i}"]
        assert s["established"] == 1 and [x["neighbor"] for x in s["sessions"]] == ["10.0.0.2"]
        assert s["received_count"] == 3
    conf = (lab.state.dir / "bird-rr.conf").read_text()
    assert conf.count("rr client;") == 4
    assert lab.verify().ok
    assert_gone(lab, before)


def test_calico_vxlan_facts_and_wire(lab_factory, tmp_path):
    before = root_snapshot()
    lab = lab_factory("calico-vxlan")
    n1 = lab.ns("node1")
    link = ipj(n1, "-d", "link", "show", "vxlan.calico")[0]
    data = link["linkinfo"]["info_data"]
    assert link["linkinfo"]["info_kind"] == "vxlan" and link["mtu"] == 1450 and "UP" in link["flags"]
    assert data["id"] == 4096 and data["port"] == 4789 and data["local"] == "10.0.0.11"
    assert data["link"] == "eth0" and data.get("learning") is False
    addrs = ipj(n1, "addr", "show", "vxlan.calico")[0]["addr_info"]
    assert [(a["local"], a["prefixlen"]) for a in addrs if a["family"] == "inet"] == [("192.168.1.0", 32)]
    mac2 = ipj(lab.ns("node2"), "link", "show", "vxlan.calico")[0]["address"]
    neigh = [n for n in ipj(n1, "neigh", "show", "dev", "vxlan.calico") if n["dst"] == "192.168.2.0"]
    assert neigh and neigh[0]["lladdr"] == mac2 and "PERMANENT" in neigh[0]["state"]
    fdb = [f for f in bridgej(n1, "fdb", "show", "dev", "vxlan.calico") if f["mac"] == mac2]
    assert fdb and fdb[0]["dst"] == "10.0.0.12" and "self" in fdb[0]["flags"] and fdb[0]["state"] == "permanent"
    b1 = blocks_of(lab, "node1")
    r = b1["192.168.2.0/26"]
    assert r["gateway"] == "192.168.2.0" and r["dev"] == "vxlan.calico" and "onlink" in r["flags"]
    assert "protocol" not in r, "Felix's routes are proto boot: ip shows none"
    assert b1["192.168.1.0/26"]["type"] == "blackhole"
    assert ipj(lab.ns("node1-pod1"), "link", "show", "eth0")[0]["mtu"] == 1450
    assert ping(lab.ns("node1-pod1"), "192.168.1.2")  # makes the pod ARP for 169.254.1.1
    assert_calico_pod_and_host_facts(lab)
    rules = iptables_save(n1)
    assert "-A cali-INPUT -s 10.0.0.0/24 -p udp -m udp --dport 4789 -m addrtype --dst-type LOCAL -j ACCEPT" in rules
    assert "-A cali-INPUT -p udp -m udp --dport 4789 -j DROP" in rules
    assert "-A cali-POSTROUTING -o vxlan.calico -m addrtype ! --src-type LOCAL --limit-iface-out " \
           "-m addrtype --src-type LOCAL -j MASQUERADE" in rules
    cap = Capture(lab.ns("switch"), "br0", "udp port 4789", tmp_path / "v.pcap", count=4)
    assert ping(lab.ns("node1-pod1"), "192.168.2.1", count=2)
    pkts = cap.packets()
    assert pkts, "no VXLAN packet on the underlay switch"
    p = pkts[0]
    assert (p[IP].src, p[IP].dst, p[UDP].dport, p[VXLAN].vni) == ("10.0.0.11", "10.0.0.12", 4789, 4096)
    inner = p[VXLAN].payload
    assert inner[IP].src == "192.168.1.1" and inner[IP].dst == "192.168.2.1" and inner[ICMP].type == 8
    src = lab.ns("node1-pod1")
    assert ping(src, "192.168.3.2", size=1422)  # 1422 + 8 + 20 = 1450
    assert not ping(src, "192.168.3.2", size=1423, timeout=1)
    assert_masqueraded_to_router(lab, tmp_path)
    assert lab.verify().ok
    assert_gone(lab, before)


@pytest.mark.skipif(probe.link_kind("ipip") is None, reason="this kernel has ipip; the refusal cannot happen here")
def test_calico_ipip_stops_cleanly_without_ipip():
    before = root_snapshot()
    name = unique_name("ci")
    r = cli("up", "calico-ipip", "--name", name)
    assert r.returncode == 3
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "'ipip'" in err and "CONFIG_NET_IPIP" in err and name in err
    assert not [n for n in netns_list() if n.startswith(name)]
    assert residue(name) == [] and not os.path.exists(f"/run/netlab/{name}")
    assert root_snapshot() == before


@pytest.mark.needs_ipip  # where the host lacks ipip, the VM pass (tests/vm/tier.py) runs it
def test_calico_ipip_on_a_kernel_with_ipip(lab_factory, tmp_path):
    before = root_snapshot()
    lab = lab_factory("calico-ipip", nodes=4, pods=1, racks=2, options={"mode": "CrossSubnet"})
    n1 = lab.ns("node1")
    tunl0 = ipj(n1, "-d", "link", "show", "tunl0")[0]
    assert tunl0["linkinfo"]["info_kind"] == "ipip" and tunl0["mtu"] == 1480 and "UP" in tunl0["flags"]
    assert [a["local"] for a in ipj(n1, "addr", "show", "tunl0")[0]["addr_info"] if a["family"] == "inet"] == \
        ["192.168.1.0"]
    b1 = blocks_of(lab, "node1")
    # node1 and node3 share rack 1; node2 and node4 are in rack 2
    assert (b1["192.168.3.0/26"]["gateway"], b1["192.168.3.0/26"]["dev"]) == ("10.0.0.12", "eth0")
    assert (b1["192.168.2.0/26"]["gateway"], b1["192.168.2.0/26"]["dev"]) == ("10.0.1.11", "tunl0")
    assert "onlink" in b1["192.168.2.0/26"]["flags"]
    cap = Capture(lab.ns("router"), "eth0", "ip proto 4", tmp_path / "i.pcap", count=2)
    assert ping(lab.ns("node1-pod1"), "192.168.2.1", count=2)
    assert ping(lab.ns("node1-pod1"), "192.168.3.1")
    pkts = cap.packets()
    assert pkts and pkts[0][IP].src == "10.0.0.11" and pkts[0][IP].dst == "10.0.1.11" and pkts[0][IP].proto == 4
    wait_until(lambda: blocks_of(lab, "node1").get("192.168.1.0/26", {}).get("protocol") == "bird", timeout=20,
               interval=0.2, what="BIRD installing the node's blackhole")
    assert lab.verify().ok
    assert_gone(lab, before)
