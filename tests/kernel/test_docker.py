"""The bridge and docker-nat labs in the kernel, read back independently (ip -j, bridge -j,
iptables-save, /proc/net/nf_conntrack, tcpdump) and checked against DATAPATHS.md §1 (issue 3)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP

from netlab import api, model
from netlab.explain import script
from netlab.plan import Daemon
from tests.helpers import (Capture, bridgej, ipj, iptables_save, netns_list, nsexec, ping, residue, root_snapshot,
                           sh, sysctl, unique_name, wait_until)
from tests.unit.test_docker_plans import docker_rules

pytestmark = pytest.mark.kernel

# A TCP client run inside a namespace: prints "<local addr> <peer addr> <the server's line>".
CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
local, peer = s.getsockname(), s.getpeername()
s.sendall(b"\n")
data = b""
while chunk := s.recv(4096):
    data += chunk
print(f"{local[0]}:{local[1]} {peer[0]}:{peer[1]} {data.decode().strip()}")
"""
REPLY = re.compile(r"^(?P<local>\S+):(?P<lport>\d+) (?P<peer>\S+):(?P<pport>\d+) "
                   r"(?P<name>\S+) at (?P<at>\S+) saw peer (?P<seen>[\d.]+):(?P<seen_port>\d+)$")


def connect(ns: str, ip: str, port: int) -> re.Match:
    r = nsexec(ns, sys.executable, "-c", CLIENT, ip, str(port), timeout=10)
    assert r.returncode == 0, f"connect {ip}:{port} from {ns} failed: {r.stderr.strip()}"
    m = REPLY.match(r.stdout.strip())
    assert m, r.stdout
    return m


def captured(cap: Capture, timeout: float = 3.0) -> list:
    """The capture's packets once tcpdump has its ``count`` (or after ``timeout``): a loaded machine may
    take a while to schedule tcpdump, so a fixed short wait is not enough."""
    return cap.packets(timeout=timeout)


def save_rules(ns: str) -> dict[str, list[str]]:
    """``iptables-save`` -> {table: [-A lines]}, plus {table+':policy': [':CHAIN POLICY' lines]}."""
    out: dict[str, list[str]] = defaultdict(list)
    table = ""
    for line in iptables_save(ns).splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A "):
            out[table].append(line)
        elif line.startswith(":"):
            out[table + ":chains"].append(" ".join(line.split()[:2]))
    return dict(out)


def counter(ns: str, rule: str) -> int:
    """Packet counter of one rule, from ``iptables-save -c``."""
    for line in nsexec(ns, "iptables-save", "-c", check=True).stdout.splitlines():
        m = re.match(r"^\[(\d+):\d+\] (.*)$", line)
        if m and m.group(2) == rule:
            return int(m.group(1))
    raise AssertionError(f"rule not found: {rule}")


def conntrack(ns: str) -> list[str]:
    return nsexec(ns, "cat", "/proc/net/nf_conntrack", check=True).stdout.splitlines()


def check_docker_host(node: str, containers: dict[str, str], ports: list[tuple[int, str, int]] = (),
                      userland_proxy: bool = True) -> None:
    """One Docker host's kernel state against §1. ``containers``: namespace -> address."""
    links = {l["ifname"]: l for l in ipj(node, "-d", "link")}
    d0 = links["docker0"]
    assert d0["linkinfo"]["info_kind"] == "bridge" and d0["mtu"] == 1500 and "UP" in d0["flags"]
    assert [a["local"] + "/" + str(a["prefixlen"]) for a in ipj(node, "-4", "addr", "show", "docker0")[0]["addr_info"]] \
        == ["172.17.0.1/16"]
    routes = ipj(node, "route", "show", "172.17.0.0/16")
    assert routes == [{"dst": "172.17.0.0/16", "dev": "docker0", "protocol": "kernel", "scope": "link",
                       "prefsrc": "172.17.0.1", "flags": []}]
    ports_ = [p for p in bridgej(node, "link") if p.get("master") == "docker0"]
    assert len(ports_) == len(containers)
    for p in ports_:
        assert re.match(r"^veth[0-9a-f]{7}$", p["ifname"]), p["ifname"]
        assert links[p["ifname"]]["linkinfo"]["info_kind"] == "veth"
    hairpin = {p["ifname"]: p.get("hairpin") for p in bridgej(node, "-d", "link") if p.get("master") == "docker0"}
    assert all(bool(h) == (not userland_proxy) for h in hairpin.values()), hairpin
    assert sysctl(node, "net.ipv4.ip_forward") == "1"
    assert sysctl(node, "net.ipv6.conf.docker0.accept_ra") == "0"
    if Path("/proc/sys/net/bridge").exists():  # br_netfilter: the fresh-namespace default, left alone
        assert sysctl(node, "net.bridge.bridge-nf-call-iptables") == "1"
    rules = save_rules(node)
    want = docker_rules(list(ports), userland_proxy)
    assert rules["nat"] == want["nat"]
    assert rules["filter"] == want["filter"]
    assert ":FORWARD DROP" in rules["filter:chains"]
    assert {":DOCKER -", ":DOCKER-ISOLATION-STAGE-1 -", ":DOCKER-ISOLATION-STAGE-2 -", ":DOCKER-USER -"} <= \
        set(rules["filter:chains"])
    for ns, ip in containers.items():
        (eth0,) = [l for l in ipj(ns, "-d", "link") if l["ifname"] == "eth0"]
        assert eth0["address"] == "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
        assert eth0["linkinfo"]["info_kind"] == "veth" and eth0["mtu"] == 1500
        addrs = [(a["local"], a["prefixlen"]) for a in ipj(ns, "-4", "addr", "show", "eth0")[0]["addr_info"]]
        assert addrs == [(ip, 16)]
        got = {(r["dst"], r.get("gateway"), r["dev"]) for r in ipj(ns, "route")}
        assert got == {("default", "172.17.0.1", "eth0"), ("172.17.0.0/16", None, "eth0")}


def assert_root_unchanged(before: dict) -> None:
    after = root_snapshot()
    assert after == before, {k: (before[k], after.get(k)) for k in before if before[k] != after.get(k)}


# --- bridge ------------------------------------------------------------------------------------

def test_bridge_lab_facts_l2_masquerade_and_clean_down(lab_factory, tmp_path):
    before = root_snapshot()
    lab = lab_factory("bridge")
    node, c1 = lab.ns("node1"), lab.ns("container1")
    ips = {lab.ns(f"container{i}"): f"172.17.0.{i + 1}" for i in (1, 2, 3)}
    check_docker_host(node, ips)
    assert lab.verify().ok

    # container to container: plain L2 through docker0 (ARP answered by the peer itself, MACs learned)
    assert ping(c1, "172.17.0.3", count=2) and ping(c1, "172.17.0.4", count=1)
    neigh = {n["dst"]: n.get("lladdr") for n in ipj(c1, "neigh")}
    assert neigh["172.17.0.3"] == "02:42:ac:11:00:03"
    learned = {f["mac"] for f in bridgej(node, "fdb", "show", "br", "docker0") if "permanent" not in f.get("state", "")}
    assert {"02:42:ac:11:00:02", "02:42:ac:11:00:03"} <= learned
    # ...and, with bridge-nf-call-iptables=1, bridged frames cross FORWARD (policy DROP) through the icc rule
    if Path("/proc/sys/net/bridge").exists():
        assert counter(node, "-A FORWARD -i docker0 -o docker0 -j ACCEPT") > 0

    # container to the router: MASQUERADE makes the router see the node, which is the only reason a reply
    # can come back (the router has no route to 172.17.0.0/16)
    assert not [r for r in ipj(lab.ns("router"), "route") if r["dst"].startswith("172.17")]
    cap = Capture(lab.ns("router"), "eth0", "icmp", tmp_path / "r.pcap", count=4)
    assert ping(c1, "192.168.100.1", count=2)
    pkts = captured(cap)
    req = [p for p in pkts if p.haslayer(ICMP) and p[ICMP].type == 8]
    assert req and {p[IP].src for p in req} == {"192.168.100.11"}
    assert counter(node, "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE") > 0

    lab.down()
    assert residue(lab.name) == []
    assert_root_unchanged(before)


def test_bridge_overrides_two_hosts_four_containers(lab_factory, tmp_path):
    lab = lab_factory("bridge", nodes=2, pods=4)
    assert len([n for n in lab.plan.namespaces if n.role == "pod"]) == 8
    node2 = lab.ns("node2")
    check_docker_host(node2, {lab.ns(f"container{i}"): f"172.17.0.{i - 3}" for i in range(5, 9)})
    c5 = lab.ns("container5")  # node2's first container: 172.17.0.2 again
    assert ping(c5, "172.17.0.5")  # container8, same host
    cap = Capture(lab.ns("router"), "eth0", "icmp[icmptype] == 8", tmp_path / "r.pcap", count=1)
    assert ping(c5, "192.168.100.1")
    assert {p[IP].src for p in captured(cap)} == {"192.168.100.12"}


# --- docker-nat --------------------------------------------------------------------------------

def test_docker_nat_facts_published_port_three_rewrites(lab_factory, tmp_path):
    before = root_snapshot()
    lab = lab_factory("docker-nat")
    n1, n2, e1, e3 = (lab.ns(h) for h in ("node1", "node2", "executor1", "executor3"))
    check_docker_host(n1, {e1: "172.17.0.2", lab.ns("executor2"): "172.17.0.3"},
                      [(12345, "172.17.0.2", 7070), (12346, "172.17.0.3", 7070)])
    check_docker_host(n2, {e3: "172.17.0.2", lab.ns("executor4"): "172.17.0.3"},
                      [(12347, "172.17.0.2", 7070), (12348, "172.17.0.3", 7070)])
    rep = lab.verify()
    assert rep.ok and len(rep.daemons) == 12  # 4 executors + an IPv4 and an IPv6 docker-proxy per published port

    wire = Capture(lab.ns("switch"), "br0", "tcp port 12347", tmp_path / "wire.pcap", count=6)
    inside = Capture(e3, "eth0", "tcp port 7070", tmp_path / "e3.pcap", count=6)
    m = connect(e1, "192.168.100.12", 12347)
    # the server is executor3 and never learns executor1's address: it sees node1 (SNAT on node1)
    assert (m["name"], m["at"], m["seen"]) == ("executor3", "172.17.0.2:7070", "192.168.100.11")
    # the client sees its own address and the published port: both replies were translated back
    assert (m["local"], m["peer"], m["pport"]) == ("172.17.0.2", "192.168.100.12", "12347")
    sport, natport = int(m["lport"]), int(m["seen_port"])

    syn = [p for p in captured(wire) if p.haslayer(TCP)]
    first, reply = syn[0], next(p for p in syn if p[IP].src == "192.168.100.12")
    # 1. SNAT on node1: on the wire the source is node1:<natport>, not 172.17.0.2
    assert (first[IP].src, first[TCP].sport, first[IP].dst, first[TCP].dport) == \
        ("192.168.100.11", natport, "192.168.100.12", 12347) and first[TCP].flags == "S"
    # 3. (node2's half) the reply left node2 already rewritten back to the published port
    assert (reply[IP].src, reply[TCP].sport, reply[IP].dst, reply[TCP].dport) == \
        ("192.168.100.12", 12347, "192.168.100.11", natport)
    # 2. DNAT on node2: inside executor3 the SYN is addressed to 172.17.0.2:7070
    s3 = next(p for p in captured(inside) if p.haslayer(TCP) and p[TCP].flags == "S")
    assert (s3[IP].src, s3[TCP].sport, s3[IP].dst, s3[TCP].dport) == ("192.168.100.11", natport, "172.17.0.2", 7070)
    # conntrack holds both tuples of each rewrite: the reverse translation needs no rule
    ct1 = [l for l in conntrack(n1) if f"sport={sport} dport=12347" in l]
    assert ct1 and (f"src=172.17.0.2 dst=192.168.100.12 sport={sport} dport=12347 "
                    f"src=192.168.100.12 dst=192.168.100.11 sport=12347 dport={natport}") in ct1[0]
    ct2 = [l for l in conntrack(n2) if f"sport={natport} dport=12347" in l]
    assert ct2 and (f"src=192.168.100.11 dst=192.168.100.12 sport={natport} dport=12347 "
                    f"src=172.17.0.2 dst=192.168.100.11 sport=7070 dport={natport}") in ct2[0]
    assert counter(n2, "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 12347 -j DNAT "
                       "--to-destination 172.17.0.2:7070") == 1
    assert counter(n2, "-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 7070 -j ACCEPT") == 1

    # the overlap: executor1 cannot address executor3 or executor4; those addresses are its own host's
    assert connect(e1, "172.17.0.2", 7070)["name"] == "executor1"
    assert connect(e1, "172.17.0.3", 7070)["name"] == "executor2"
    assert ipj(n1, "route", "get", "172.17.0.2")[0]["dev"] == "docker0"

    # docker-proxy: a container reaching its own host's published port skips the DNAT (-i docker0 -j RETURN)
    # and is relayed by the proxy, so the server sees docker0's address; likewise 127.0.0.1 on the host
    m = connect(e1, "192.168.100.11", 12345)
    assert (m["name"], m["seen"]) == ("executor1", "172.17.0.1")
    m = connect(n1, "127.0.0.1", 12346)
    assert (m["name"], m["seen"]) == ("executor2", "172.17.0.1")
    # executor4 -> executor1 through node1's published port, the other direction
    m = connect(lab.ns("executor4"), "192.168.100.11", 12345)
    assert (m["name"], m["seen"]) == ("executor1", "192.168.100.12")

    pids = [d["pid"] for d in rep.daemons]
    lab.down()
    assert residue(lab.name) == []
    assert not [p for p in pids if Path(f"/proc/{p}").exists()
                and "netlab.daemons" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")]
    assert_root_unchanged(before)


def test_docker_nat_overrides_three_hosts_three_executors(lab_factory):
    lab = lab_factory("docker-nat", nodes=3, pods=3)
    assert len([n for n in lab.plan.namespaces if n.role == "pod"]) == 9
    assert lab.verify().ok
    # executor9 is node3's third container (172.17.0.4), published as node3:12344+9
    m = connect(lab.ns("executor1"), "192.168.100.13", 12353)
    assert (m["name"], m["at"], m["seen"]) == ("executor9", "172.17.0.4:7070", "192.168.100.11")
    m = connect(lab.ns("executor7"), "192.168.100.12", 12348)
    assert (m["name"], m["at"], m["seen"]) == ("executor4", "172.17.0.2:7070", "192.168.100.13")


def test_docker_nat_without_userland_proxy(lab_factory):
    lab = lab_factory("docker-nat", pods=1, options={"userland_proxy": "false"})
    n1 = lab.ns("node1")
    check_docker_host(n1, {lab.ns("executor1"): "172.17.0.2"}, [(12345, "172.17.0.2", 7070)], userland_proxy=False)
    assert sysctl(n1, "net.ipv4.conf.docker0.route_localnet") == "1"
    assert len(lab.verify().daemons) == 2  # the two executors, no proxies
    m = connect(lab.ns("executor1"), "192.168.100.12", 12346)
    assert (m["name"], m["seen"]) == ("executor2", "192.168.100.11")
    # hairpin: DNAT back out of the port it came in, self-MASQUERADE makes the answer come back via docker0
    m = connect(lab.ns("executor1"), "192.168.100.11", 12345)
    assert (m["name"], m["seen"]) == ("executor1", "172.17.0.1")
    m = connect(n1, "127.0.0.1", 12345)  # route_localnet + the --src-type LOCAL MASQUERADE
    assert (m["name"], m["seen"]) == ("executor1", "172.17.0.1")


# --- explain -----------------------------------------------------------------------------------

def test_explain_script_builds_a_working_docker_nat(tmp_path):
    name = unique_name("x")
    lab = model.load("docker-nat", name=name)
    plan = api.build_plan(lab)
    path = tmp_path / "lab.sh"
    path.write_text(script(plan))
    run = tmp_path / "run"
    try:
        r = sh("bash", str(path), check=False, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NETLAB_RUN": str(run)},
               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, capture_output=False)
        assert r.returncode == 0, r.stderr
        ready = [d.ready.replace("{run}", str(run)) for d in plan.of(Daemon)]
        wait_until(lambda: all(Path(p).exists() for p in ready), timeout=10,
                   what=f"the daemons' ready files {sorted(Path(p).name for p in ready)}")
        check_docker_host(f"{name}-node2", {f"{name}-node2-executor3": "172.17.0.2", f"{name}-node2-executor4": "172.17.0.3"},
                          [(12347, "172.17.0.2", 7070), (12348, "172.17.0.3", 7070)])
        m = connect(f"{name}-node1-executor1", "192.168.100.12", 12347)
        assert (m["name"], m["seen"]) == ("executor3", "192.168.100.11")
    finally:
        # the script's daemons are ours: stop them by the namespaces they run in, then remove those
        for n in plan.namespaces:
            for pid in sh("ip", "netns", "pids", n.name, check=False).stdout.split():
                sh("kill", pid, check=False)
        wait_until(lambda: not any(sh("ip", "netns", "pids", n.name, check=False).stdout.split()
                                   for n in plan.namespaces), timeout=10, what="the script's daemons to exit")
        for n in plan.namespaces:
            sh("ip", "netns", "del", n.name, check=False)
    assert not [n for n in netns_list() if n.startswith(name + "-")]


def test_cli_up_prints_where_the_rewrites_happen():
    name = unique_name("c")
    cli = [sys.executable, "-m", "netlab"]
    try:
        r = sh(*cli, "up", "docker-nat", "--name", name, "--pods", "1", check=False, env={"COLUMNS": "200", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        assert r.returncode == 0, r.stderr
        out = " ".join(r.stdout.split())
        for words in ("SNAT on node1", "DNAT on node2", "conntrack reverses both", "pod-to-pod routing is impossible",
                      f"netlab exec {name} executor1 -- socat - TCP:192.168.100.12:12346"):
            assert words in out, words
        m = connect(f"{name}-node1-executor1", "192.168.100.12", 12346)
        assert (m["name"], m["seen"]) == ("executor2", "192.168.100.11")
    finally:
        sh(*cli, "down", name, check=False)
    assert residue(name) == []


def test_status_sees_a_forward_policy_put_back_to_accept(lab_factory):
    """Docker isolates containers by FORWARD's DROP policy; a policy reset to ACCEPT with every rule
    still in place is a fault, and verify names it."""
    lab = lab_factory("bridge", pods=1)
    assert lab.verify().ok
    nsexec(lab.ns("node1"), "iptables", "-P", "FORWARD", "ACCEPT", check=True)
    assert "-P FORWARD ACCEPT" in iptables_save(lab.ns("node1")) or ":FORWARD ACCEPT" in iptables_save(lab.ns("node1"))
    problems = [p.detail for p in lab.verify().problems]
    assert problems == ["policy filter FORWARD is ACCEPT (want DROP)"], problems


def _udp(ns: str, ip: str, port: int, sport: int | None = None) -> str:
    src = f",sourceport={sport},reuseaddr" if sport else ""
    r = nsexec(ns, "bash", "-c", f"echo hi | timeout 3 socat -T1 - UDP:{ip}:{port}{src}", timeout=10)
    return r.stdout.strip()


def test_docker_nat_udp_published_port_and_proxy(lab_factory):
    """``-p …/udp``: the datagram is SNATed on node1, DNATed on node2, answered by executor3
    from its own address (so conntrack un-NATs the answer), and node2's conntrack entry holds
    both tuples; node1 itself reaches its own 127.0.0.1:12345 through the UDP docker-proxy."""
    lab = lab_factory("docker-nat", pods=2, options={"proto": "udp"})
    n1, n2 = lab.ns("node1"), lab.ns("node2")
    rules = iptables_save(n2)
    assert "-A DOCKER ! -i docker0 -p udp -m udp --dport 12347 -j DNAT --to-destination 172.17.0.2:7070" in rules
    assert _udp(lab.ns("executor1"), "192.168.100.12", 12347, 5353) == \
        "executor3 at 172.17.0.2:7070 saw peer 192.168.100.11:5353"
    table = nsexec(n2, "cat", "/proc/net/nf_conntrack").stdout
    assert re.search(r"udp .* src=192\.168\.100\.11 dst=192\.168\.100\.12 sport=5353 dport=12347 "
                     r"src=172\.17\.0\.2 dst=192\.168\.100\.11 sport=7070 dport=5353", table), table
    assert _udp(n1, "127.0.0.1", 12345).startswith("executor1 at 172.17.0.2:7070 saw peer 172.17.0.1:")
    assert lab.verify().ok
