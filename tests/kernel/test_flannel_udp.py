"""The flannel-udp lab on the real kernel (issue 3, DATAPATHS.md §2a): kernel state read back with
``ip -j``/``iptables-save``, traffic through the user-space forwarder, the packet format on the
underlay, TTL, ICMP net unreachable, masquerade, supervision, kill -9 and zero residue."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.packet import bind_layers, split_layers
from scapy.utils import checksum

from tests.helpers import (ROOT, Capture, ipj, iptables_save, netns_list, nsexec, ping, residue, root_snapshot,
                           sysctl, unique_name, wait_until)

pytestmark = pytest.mark.kernel


@pytest.fixture(autouse=True)
def flannel_udp_payload_is_ip():
    """flannel's UDP payload is a bare IP packet (DATAPATHS.md §7): bind it for these tests only,
    so scapy's global layer table is left as other tests expect it."""
    bind_layers(UDP, IP, dport=8285)
    bind_layers(UDP, IP, sport=8285)
    yield
    split_layers(UDP, IP, dport=8285)
    split_layers(UDP, IP, sport=8285)


def running(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (an orphan's zombie waits for init to reap it)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def status_json(name: str) -> tuple[int, dict]:
    r = subprocess.run([sys.executable, "-m", "netlab", "status", name, "--json"], capture_output=True, text=True,
                       cwd=ROOT)
    return r.returncode, json.loads(r.stdout)


def status_once_counted(name: str, ns: str, counted, timeout: float = 15.0) -> tuple[int, dict]:
    """``status --json`` once the forwarder in ``ns`` reports counters for which ``counted(stats)``
    holds. It rewrites its stats file every second: a fixed wait of a second is too short when the
    machine is loaded, and longer than needed when it is not."""
    def check() -> tuple[int, dict] | None:
        code, st = status_json(name)
        stats = next(d for d in st["daemons"] if d["ns"] == ns).get("stats")
        return (code, st) if stats and counted(stats) else None
    return wait_until(check, timeout=timeout, interval=0.2, what=f"the forwarder's counters in {ns}")


def test_kernel_state_has_every_flannel_udp_fact(lab_factory):
    lab = lab_factory("flannel-udp")
    n1 = lab.ns("node1")
    link = ipj(n1, "-d", "link", "show", "flannel0")[0]
    assert link["linkinfo"]["info_kind"] == "tun"
    data = link["linkinfo"]["info_data"]
    assert (data["type"], data["pi"], data["vnet_hdr"], data["persist"]) == ("tun", False, False, True)
    assert {"POINTOPOINT", "NOARP", "UP", "LOWER_UP"} <= set(link["flags"])  # LOWER_UP: the daemon is attached
    assert link["link_type"] == "none" and link["mtu"] == 1472
    addrs = ipj(n1, "addr", "show", "flannel0")[0]["addr_info"]
    assert [(a["local"], a["prefixlen"]) for a in addrs if a["family"] == "inet"] == [("10.244.1.0", 32)]
    routes = [r for r in ipj(n1, "route") if r.get("dev") == "flannel0"]
    assert len(routes) == 1 and routes[0]["dst"] == "10.244.0.0/16" and "gateway" not in routes[0]
    assert routes[0].get("scope", "global") == "global"  # scope universe; ip prints no scope for it
    assert not [r for r in ipj(n1, "route") if r["dst"].startswith("10.244.2.")]  # the table is in the daemon
    cni0 = ipj(n1, "-d", "addr", "show", "cni0")[0]
    assert cni0["linkinfo"]["info_kind"] == "bridge" and cni0["mtu"] == 1472
    assert [(a["local"], a["prefixlen"]) for a in cni0["addr_info"] if a["family"] == "inet"] == [("10.244.1.1", 24)]
    ports = [l for l in ipj(n1, "link") if l.get("master") == "cni0"]
    assert len(ports) == 2 and all(p["mtu"] == 1472 for p in ports)
    assert ipj(lab.ns("node1-pod1"), "link", "show", "eth0")[0]["mtu"] == 1472
    assert sysctl(n1, "net.ipv4.ip_forward") == "1"
    assert sysctl(n1, "net.ipv4.conf.flannel0.accept_local") == "1"
    rules = iptables_save(n1)
    assert '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG' in rules
    assert '-A FLANNEL-POSTRTG -s 10.244.1.0/24 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN' in rules
    assert '-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" ' \
           '-j MASQUERADE --random-fully' in rules
    assert '-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT' in rules
    # the forwarder: UDP 8285 on the node's address, one per node
    for node, ip in (("node1", "192.168.100.11"), ("node2", "192.168.100.12")):
        bound = nsexec(lab.ns(node), "ss", "-Hnlu", "sport = :8285").stdout
        assert f"{ip}:8285" in bound
    assert lab.verify().ok


def test_pod_to_pod_crosses_the_underlay_as_ip_udp_8285_ip(lab_factory, tmp_path):
    lab = lab_factory("flannel-udp")
    src = lab.ns("node1-pod1")
    assert ping(src, "10.244.1.3", count=2)  # same node: cni0 only, never the TUN
    cap = Capture(lab.ns("switch"), "br0", "udp port 8285", tmp_path / "u.pcap", count=4)
    dst_cap = Capture(lab.ns("node2-pod1"), "eth0", "icmp[icmptype] == 8", tmp_path / "d.pcap", count=2)
    assert ping(src, "10.244.2.2", count=2)
    pkts = cap.packets()
    arrived = dst_cap.packets()
    assert pkts, "no UDP 8285 packet seen on the underlay switch"
    req = next(p for p in pkts if p[IP].src == "192.168.100.11")
    assert req[IP].dst == "192.168.100.12" and req[UDP].sport == 8285 and req[UDP].dport == 8285
    inner = req[UDP].payload
    assert isinstance(inner, IP), "the UDP payload must be the bare inner IP packet (no extra header)"
    assert len(bytes(req[UDP].payload)) == req[UDP].len - 8 == inner.len
    assert (inner.src, inner.dst, inner[ICMP].type) == ("10.244.1.2", "10.244.2.2", 8)
    # pod sends TTL 64; node1's kernel forwards (63); node1's forwarder lowers it (62) before UDP
    assert inner.ttl == 62
    assert checksum(bytes(inner)[:inner.ihl * 4]) == 0, "the forwarder broke the inner header checksum"
    # ...node2's forwarder (61) and node2's kernel (60): two extra per tunnel crossing
    assert arrived and arrived[0][IP].ttl == 60
    reply = next(p for p in pkts if p[IP].src == "192.168.100.12")
    assert reply[UDP].payload[IP].src == "10.244.2.2" and reply[UDP].payload[ICMP].type == 0


def test_mtu_1472_end_to_end(lab_factory):
    lab = lab_factory("flannel-udp")
    src = lab.ns("node1-pod1")
    assert ping(src, "10.244.2.2", size=1444)  # 1444 + 8 ICMP + 20 IP = 1472; + 28 outer = 1500
    assert not ping(src, "10.244.2.2", size=1445, timeout=1)


def test_unknown_subnet_gets_icmp_net_unreachable_and_pods_reach_the_router_masqueraded(lab_factory, tmp_path):
    lab = lab_factory("flannel-udp")
    src = lab.ns("node1-pod1")
    out = nsexec(src, "ping", "-c", "1", "-W", "2", "10.244.9.5").stdout
    assert re.search(r"From 10\.244\.1\.0 icmp_seq=1 Destination Net Unreachable", out), out
    router = lab.ns("router")
    cap = Capture(router, "eth0", "icmp", tmp_path / "r.pcap", count=2)
    assert ping(src, "192.168.100.1")
    pkts = cap.packets()
    assert pkts and pkts[0][IP].src == "192.168.100.11", "the router must see node1's address, not the pod's"
    code, st = status_once_counted(lab.name, lab.ns("node1"), lambda s: s["no_route"] >= 1 and s["icmp_unreachable"] >= 1)
    d1 = next(d for d in st["daemons"] if d["ns"] == lab.ns("node1"))
    assert d1["stats"]["no_route"] >= 1 and d1["stats"]["icmp_unreachable"] >= 1


def test_status_shows_the_daemons_then_kill_9_and_down_leave_nothing(lab_factory):
    before = root_snapshot()
    lab = lab_factory("flannel-udp", nodes=3, pods=1)  # a size above the default
    assert ping(lab.ns("node1-pod1"), "10.244.3.2", count=2)
    assert ping(lab.ns("node3-pod1"), "10.244.2.2")
    code, st = status_once_counted(lab.name, lab.ns("node1"), lambda s: s["udp_tx"] >= 2 and s["tun_tx"] >= 2)
    assert code == 0 and st["ok"]
    assert len(st["daemons"]) == 3 and all(d["alive"] and d["pid"] for d in st["daemons"])
    d1 = next(d for d in st["daemons"] if d["ns"] == lab.ns("node1"))
    assert d1["stats"]["udp_tx"] >= 2 and d1["stats"]["tun_tx"] >= 2 and d1["stats"]["pid"] == d1["pid"]
    assert os.path.exists(d1["log"]) and "ready" in open(d1["log"]).read()
    text = subprocess.run([sys.executable, "-m", "netlab", "status", lab.name], capture_output=True, text=True,
                          cwd=ROOT).stdout
    assert f"daemon flannel-udp in {lab.ns('node1')}: pid {d1['pid']} alive" in text and "udp_tx=" in text

    pids = [d["pid"] for d in st["daemons"]]
    os.kill(pids[0], signal.SIGKILL)
    # the killed forwarder is gone once the kernel has scheduled its exit: wait for that, however
    # long this machine takes, instead of assuming a delay
    def killed_one_is_dead() -> tuple[int, dict] | None:
        code, st = status_json(lab.name)
        return (code, st) if [d["alive"] for d in st["daemons"]] == [False, True, True] else None
    code, st = wait_until(killed_one_is_dead, timeout=30, interval=0.2, what="status reporting the killed forwarder dead")
    assert code == 1 and [d["alive"] for d in st["daemons"]] == [False, True, True]
    lab.down()
    assert residue(lab.name) == []
    assert not [pid for pid in pids if running(pid)]
    assert root_snapshot() == before


def test_opt_in_vnet_hdr_mode_moves_gso_super_packets(lab_factory):
    """Not flannel's packet format: labelled as such, and it really carries more than one MTU per datagram."""
    lab = lab_factory("flannel-udp", options={"mode": "vnet-hdr"})
    assert "NOT flannel" in lab.datapath.next_steps(lab.lab, lab.plan)
    n1 = lab.ns("node1")
    data = ipj(n1, "-d", "link", "show", "flannel0")[0]["linkinfo"]["info_data"]
    assert data["vnet_hdr"] is True and data["pi"] is False
    assert ping(lab.ns("node1-pod1"), "10.244.2.2")
    server = subprocess.Popen(["ip", "netns", "exec", lab.ns("node2-pod1"), "iperf3", "-s", "-1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: nsexec(lab.ns("node2-pod1"), "ss", "-Hntl", "sport = :5201").stdout.strip(),
                   what="iperf3 listening on 5201")
        r = nsexec(lab.ns("node1-pod1"), "iperf3", "-c", "10.244.2.2", "-n", "20M", "-J")
        assert r.returncode == 0, r.stdout[-500:]
    finally:
        server.kill()
        server.wait()
    # once the forwarder's counters cover the transfer: iperf3's 20 MiB of TCP payload leave node1
    # as GSO super-packets, about 19.6 MB of datagram bytes here, so half of it is a safe mark
    code, st = status_once_counted(lab.name, n1, lambda s: s["udp_tx_bytes"] >= 10_000_000)
    s1 = next(d for d in st["daemons"] if d["ns"] == n1)["stats"]
    assert s1["mode"] == "vnet-hdr" and s1["udp_tx_bytes"] / s1["udp_tx"] > 1472


def test_daemons_outlive_the_netlab_process_and_down_all_finds_them(tmp_path):
    """`netlab up` exits and its daemons carry on; after that process is gone, `down --all` stops
    them by recorded PID and start time. (A private state root keeps --all away from other labs.)"""
    name = unique_name()
    env = dict(os.environ, NETLAB_STATE_DIR=str(tmp_path / "state"))
    r = subprocess.run([sys.executable, "-m", "netlab", "up", "flannel-udp", "--name", name, "--pods", "1", "-q"],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    try:
        assert r.returncode == 0, r.stderr
        st = json.loads((tmp_path / "state" / name / "state.json").read_text())
        pids = [d["pid"] for d in st["daemons"]]
        assert len(pids) == 2 and all(os.path.exists(f"/proc/{pid}") for pid in pids)
        assert ping(f"{name}-node1-pod1", "10.244.2.2")
    finally:
        d = subprocess.run([sys.executable, "-m", "netlab", "down", "--all"], cwd=ROOT, env=env,
                           capture_output=True, text=True)
    assert d.returncode == 0 and f"{name}: removed 6 namespaces, 2 daemons" in d.stdout, d.stdout + d.stderr
    assert not [pid for pid in pids if running(pid)]
    assert not [n for n in netns_list() if n.startswith(name + "-")] and not (tmp_path / "state" / name).exists()
