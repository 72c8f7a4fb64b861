"""Link attributes and sysctls that carry no packet differently but that a real node shows
(issue 11 item 8: netlab against the CNI reference plugins 1.1.1 and dockerd 20.10.24).

Everything is read independently of netlab's verify: ``ip -j -d link``, ``sysctl`` and sysfs
inside the lab's namespaces, ``ss -ltn`` and TCP connections.
"""

from __future__ import annotations

import sys

import pytest

from netlab import api
from tests.helpers import ipj, nsexec, sh, sysctl, unique_name

pytestmark = pytest.mark.kernel

NET_ADDR_SET = "3"  # /sys/class/net/<dev>/addr_assign_type: the MAC was set, the bridge keeps it

# connect to [host]:port from inside a namespace, send a line, print the first line of the answer
CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(b"\n")
data = b""
while chunk := s.recv(4096):
    data += chunk
print(data.decode().strip().splitlines()[0])
"""


def link(ns: str, dev: str) -> dict:
    (info,) = ipj(ns, "-d", "link", "show", "dev", dev)
    return info


def txqlen(ns: str, dev: str) -> int:
    """The device's txqueuelen from sysfs (``ip -j`` leaves ``txqlen`` out when it is 0)."""
    return int(nsexec(ns, "cat", f"/sys/class/net/{dev}/tx_queue_len", check=True).stdout)


def ports_of(ns: str, bridge: str) -> list[str]:
    return [e["ifname"] for e in ipj(ns, "link", "show", "master", bridge)]


def test_cni_bridge_plugin_attributes(lab_factory):
    """cni0 keeps its MAC when a port with a lower MAC joins; accept_ra 0 on cni0 and the host
    veths; accept_dad 0 on the pod's eth0 (hairpin); txqueuelen 0 on both veth ends."""
    h = lab_factory("vxlan", nodes=2, pods=1)
    node, pod = h.ns("node1"), h.ns("node1-pod1")
    br = link(node, "cni0")
    assert nsexec(node, "cat", "/sys/class/net/cni0/addr_assign_type", check=True).stdout.strip() == NET_ADDR_SET
    veths = ports_of(node, "cni0")
    assert veths and all(v.startswith("veth") for v in veths)

    # a port with the lowest possible unicast MAC joins: an unset bridge MAC would follow it
    low, peer = unique_name("fdl"), unique_name("fdp")
    sh("ip", "-n", node, "link", "add", low, "address", "00:00:00:00:00:01", "type", "veth", "peer", "name", peer)
    try:
        sh("ip", "-n", node, "link", "set", low, "master", "cni0", "up")
        assert low in ports_of(node, "cni0")
        assert link(node, "cni0")["address"] == br["address"]
    finally:
        sh("ip", "-n", node, "link", "del", low)
    assert link(node, "cni0")["address"] == br["address"]

    assert sysctl(node, "net.ipv6.conf.cni0.accept_ra") == "0"
    for v in veths:
        assert sysctl(node, f"net.ipv6.conf.{v}.accept_ra") == "0", v
        assert txqlen(node, v) == 0, v
    assert sysctl(pod, "net.ipv6.conf.eth0.accept_dad") == "0"
    assert txqlen(pod, "eth0") == 0
    assert h.verify().ok, h.verify().problems


def test_calico_host_veths_accept_no_router_advertisements(lab_factory):
    h = lab_factory("calico", nodes=2, pods=1)
    node = h.ns("node1")
    calis = [e["ifname"] for e in ipj(node, "link") if e["ifname"].startswith("cali")]
    assert calis
    for c in calis:
        assert sysctl(node, f"net.ipv6.conf.{c}.accept_ra") == "0", c


def test_docker_bridge_mac_txqueuelen_and_ipv6_proxy(lab_factory):
    """docker0: 02:42 MAC, txqueuelen 0 (and on both veth ends); a published port answers on
    [::1] through the second docker-proxy, next to 127.0.0.1."""
    h = lab_factory("docker-nat", nodes=2, pods=1)
    node = h.ns("node1")
    assert link(node, "docker0")["address"].startswith("02:42:") and txqlen(node, "docker0") == 0
    veths = ports_of(node, "docker0")
    assert veths
    for v in veths:
        assert txqlen(node, v) == 0, v
    assert txqlen(h.ns("executor1"), "eth0") == 0

    listening = nsexec(node, "ss", "-Hltn", check=True).stdout.split()
    assert "[::]:12345" in listening and "0.0.0.0:12345" in listening
    for host in ("::1", "127.0.0.1"):
        r = nsexec(node, sys.executable, "-c", CLIENT, host, "12345", timeout=10)
        assert r.returncode == 0, f"[{host}]:12345: {r.stderr.strip()}"
        assert r.stdout.startswith("executor1 at 172.17.0.2:7070"), r.stdout
    assert h.verify().ok, h.verify().problems


def test_bridge_with_no_containers_is_healthy(lab_factory):
    """``up bridge --pods 0``: the state keeps pods=0, so status agrees with what was built."""
    h = lab_factory("bridge", pods=0)
    assert h.lab.overrides.get("pods") == 0
    assert not [n for n in h.plan.namespaces if n.role == "pod"]
    again = api.attach(h.name)  # what `netlab status` does: the plan from the recorded state
    assert again.lab.pods == 0
    report = again.verify()
    assert report.ok, report.problems
    assert txqlen(h.ns("node1"), "docker0") == 0
