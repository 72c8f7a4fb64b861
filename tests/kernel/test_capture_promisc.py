"""``netlab capture`` on a bridge, to standard output, and its decode-as hint (issue 12).

A Linux bridge passes the frames it forwards between two ports up to its own device, and so to a
packet socket bound to br0, only while br0 is promiscuous. These tests watch that from the
outside: the VXLAN datagrams of a cross-node ping are forwarded by the switch's br0 (node1's port
to node2's), so they reach ``capture switch:br0`` only if the capture asked for promiscuous mode,
and the kernel's promiscuity count (``ip -d link``) says whether the capture left that behind.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from scapy.layers.inet import IP, UDP
from scapy.utils import rdpcap

from netlab.trace import bpf
from netlab.trace.sniff import Sniffer
from tests.helpers import ROOT, ipj, ping, sh, wait_until

pytestmark = pytest.mark.kernel

NETLAB = [sys.executable, "-m", "netlab"]
VXLAN_PORT = 8472  # flannel's VXLAN port (labs/vxlan's default), not Wireshark's 4789


@pytest.fixture(scope="module")
def tshark() -> str:
    """tshark, installed from apt when it is missing (setup.sh installs it too); a clear failure,
    never a skip, when that is impossible."""
    if shutil.which("tshark") is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        r = sh("apt-get", "install", "-y", "tshark", check=False, env=env)
        if shutil.which("tshark") is None:
            pytest.fail(f"tshark is missing and 'apt-get install -y tshark' did not install it: {r.stderr.strip()[-300:]}"
                        " — install it (./setup.sh does) and rerun")
    return shutil.which("tshark") or "tshark"


def addr(ns: str, dev: str = "eth0") -> str:
    return next(a["local"] for a in ipj(ns, "addr", "show", "dev", dev)[0]["addr_info"] if a["family"] == "inet")


def promiscuity(ns: str) -> dict[str, int]:
    """Every link's promiscuity count in ``ns``, as the kernel reports it (``ip -j -d link``)."""
    return {link["ifname"]: link["promiscuity"] for link in ipj(ns, "-d", "link", "show")}


def switch_port(lab, node: str) -> str:
    """The switch's end of ``node``'s eth0 veth: the switch link whose ifindex is eth0's peer."""
    me = ipj(lab.ns(node), "link", "show", "dev", "eth0")[0]
    return next(link["ifname"] for link in ipj(lab.ns("switch"), "link") if link["ifindex"] == me["link_index"])


def start_capture(lab, *args: str) -> subprocess.Popen:
    """``netlab capture`` as a user runs it, from the repository; returns once its sockets are
    open (it says "capturing on" on stderr only then)."""
    proc = subprocess.Popen([*NETLAB, "capture", lab.name, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stderr is not None
    first = proc.stderr.readline().decode()
    if "capturing on" not in first:
        proc.kill()
        raise AssertionError(first + proc.communicate()[1].decode())
    proc.first_line = first  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen) -> tuple[bytes, str]:
    out, err = proc.communicate(timeout=30)
    text = proc.first_line + err.decode()  # type: ignore[attr-defined]
    assert proc.returncode == 0, text
    return out, text


def cross_node_ping(lab) -> str:
    """node1-pod1 pings node2-pod1; the first ping of a lab also resolves ARP and teaches the
    bridges, so the measured pings afterwards are plain unicast through every bridge."""
    dst = addr(lab.ns("node2-pod1"))
    assert ping(lab.ns("node1-pod1"), dst), f"node1-pod1 cannot ping {dst}"
    return dst


# ---- the kernel behaviour the capture relies on ------------------------------------------------

def br0_copies(lab, dst: str, port: str, promisc: bool) -> int:
    """How many of one ping's VXLAN datagrams a packet socket on the switch's br0 sees.

    br0 and node1's port share one socket: the kernel queues br0's copy of a forwarded frame right
    after the port's sightings of it, so once the port has shown the request and the reply and
    the queue is drained, br0 has shown whatever it was going to."""
    sw = lab.ns("switch")
    with Sniffer({sw: ("switch", ["br0", port])}, program=bpf.for_expr(f"udp port {VXLAN_PORT}"),
                 promisc=promisc) as s:
        assert [i.promisc for i in s.interfaces() if i.name == "br0"] == [promisc]
        assert promiscuity(sw)["br0"] == int(promisc)
        frames: list = []

        def port_saw_both() -> bool:
            frames.extend(s.poll_once(0.2))
            return sum(f.iface == port for f in frames) >= 2

        assert ping(lab.ns("node1-pod1"), dst)
        wait_until(port_saw_both, what=f"the ping's VXLAN request and reply on switch:{port}")
        frames.extend(s.poll_once(0))
    return sum(f.iface == "br0" for f in frames)


def test_a_bridge_tap_sees_forwarded_unicast_only_while_promiscuous(lab_factory):
    lab = lab_factory("vxlan")
    dst = cross_node_ping(lab)
    port = switch_port(lab, "node1")
    assert br0_copies(lab, dst, port, promisc=False) == 0
    assert promiscuity(lab.ns("switch"))["br0"] == 0
    assert br0_copies(lab, dst, port, promisc=True) == 2
    assert promiscuity(lab.ns("switch"))["br0"] == 0  # the membership went with the socket


# ---- netlab capture switch:br0 -----------------------------------------------------------------

def test_capture_on_br0_sees_forwarded_vxlan_and_leaves_promiscuity_as_it_was(lab_factory):
    lab = lab_factory("vxlan")
    dst = cross_node_ping(lab)
    sw = lab.ns("switch")
    before = promiscuity(sw)
    assert before["br0"] == 0
    node1, node2 = addr(lab.ns("node1")), addr(lab.ns("node2"))

    proc = start_capture(lab, "switch:br0", "-c", "2", "--filter", f"udp port {VXLAN_PORT}")
    assert "switch:br0 (promiscuous)" in proc.first_line  # type: ignore[attr-defined]
    assert promiscuity(sw) == {**before, "br0": 1}  # only br0, and only by one
    assert ping(lab.ns("node1-pod1"), dst)
    out, err = finish(proc)

    lines = out.decode().splitlines()
    assert len(lines) == 2, out
    # the VTEPs' unicast datagrams, node1 -> node2 and back, with the pods' ping inside
    assert f"IP {node1} > {node2}" in lines[0] and f"> {VXLAN_PORT} / VXLAN" in lines[0] and "echo-request" in lines[0]
    assert f"IP {node2} > {node1}" in lines[1] and "echo-reply" in lines[1]
    assert all(re.match(r"\S+ switch:br0 rx ", ln) for ln in lines)
    assert "2 packets" in err
    assert promiscuity(sw) == before  # the process has exited: back to 0, the ports as they were


# ---- -w - --------------------------------------------------------------------------------------

def test_write_to_stdout_is_a_pcap_and_nothing_else(lab_factory, tshark):
    lab = lab_factory("vxlan")
    dst = cross_node_ping(lab)
    dash = ROOT / "-"
    assert not dash.exists()

    # one interface: classic pcap, exactly the header and the packet records, flushed as they come
    proc = start_capture(lab, "switch:br0", "-c", "2", "-w", "-", "--decode", "--filter", f"udp port {VXLAN_PORT}")
    assert "-> standard output" in proc.first_line  # type: ignore[attr-defined]
    assert ping(lab.ns("node1-pod1"), dst)
    out, err = finish(proc)
    pkts = rdpcap(io.BytesIO(out))
    assert len(pkts) == 2
    assert len(out) == 24 + sum(16 + len(bytes(p)) for p in pkts)  # nothing else on stdout
    assert [p[UDP].dport for p in pkts] == [VXLAN_PORT, VXLAN_PORT]
    assert (pkts[0][IP].src, pkts[0][IP].dst) == (addr(lab.ns("node1")), addr(lab.ns("node2")))
    assert err.count("switch:br0 rx") == 2  # --decode's lines went to stderr
    assert "written to standard output" in err and "tshark -r" not in err  # no hint for a stream
    assert not dash.exists()

    # several interfaces: one pcapng stream, read by tshark from its standard input
    port = switch_port(lab, "node1")
    proc = start_capture(lab, "switch:br0", f"switch:{port}", "-c", "4", "-w", "-",
                         "--filter", f"udp port {VXLAN_PORT}")
    assert ping(lab.ns("node1-pod1"), dst)
    out, _ = finish(proc)
    assert out[:4] == b"\x0a\x0d\x0d\x0a"  # a pcapng Section Header Block
    r = sh(tshark, "-r", "-", "-d", f"udp.port=={VXLAN_PORT},vxlan", "-T", "fields", "-e", "frame.interface_name",
           "-e", "frame.protocols", input=out.decode("latin-1"), encoding="latin-1")
    got = [tuple(ln.split("\t")) for ln in r.stdout.splitlines()]
    assert sorted(n for n, _ in got) == sorted(["switch:br0"] * 2 + [f"switch:{port}"] * 2)
    assert all(":udp:vxlan:eth:ethertype:ip:icmp" in p for _, p in got), got
    assert not dash.exists()


def test_write_to_stdout_refuses_split_and_a_terminal():
    def one_line(r: subprocess.CompletedProcess, what: str) -> None:
        lines = r.stderr.strip().splitlines()
        assert r.returncode != 0 and len(lines) == 1 and what in lines[0] and " — " in lines[0], r.stderr
        assert "Traceback" not in r.stderr

    r = sh(*NETLAB, "capture", "nosuchlab", "switch:br0", "-w", "-", "--split", cwd=ROOT, check=False)
    one_line(r, "cannot go to standard output")
    assert r.stdout == ""
    master, slave = os.openpty()
    try:
        r = subprocess.run([*NETLAB, "capture", "nosuchlab", "switch:br0", "-w", "-"], cwd=ROOT, stdout=slave,
                           stderr=subprocess.PIPE, text=True, timeout=30)
    finally:
        os.close(slave)
        os.close(master)
    one_line(r, "standard output is a terminal")
    assert not (ROOT / "-").exists()


# ---- the decode-as hint ------------------------------------------------------------------------

def hint_command(err: str) -> list[str]:
    """The tshark command of the hint line on stderr."""
    m = re.search(r"(tshark -r \S+ -d \S+);", err)
    assert m, f"no decode-as hint in: {err}"
    return shlex.split(m.group(1))


def protocols(cmd: list[str]) -> list[str]:
    return sh(*cmd, "-T", "fields", "-e", "frame.protocols").stdout.split()


def test_vxlan_decode_as_hint_makes_tshark_decode_the_inner_frames(lab_factory, tmp_path, tshark):
    lab = lab_factory("vxlan")
    dst = cross_node_ping(lab)
    f = tmp_path / "br0.pcap"
    proc = start_capture(lab, "switch:br0", "-c", "2", "-w", str(f), "--filter", f"udp port {VXLAN_PORT}")
    assert ping(lab.ns("node1-pod1"), dst)
    out, err = finish(proc)
    assert out == b""
    cmd = hint_command(err)
    assert cmd == ["tshark", "-r", str(f), "-d", f"udp.port=={VXLAN_PORT},vxlan"]
    assert protocols(cmd) == ["eth:ethertype:ip:udp:vxlan:eth:ethertype:ip:icmp:data"] * 2
    # without it tshark stops at UDP: 8472 is not a port it knows
    assert all(":vxlan" not in p for p in protocols(["tshark", "-r", str(f)]))
    assert list(tmp_path.iterdir()) == [f]


def test_flannel_udp_decode_as_hint_reads_the_bare_inner_ip(lab_factory, tmp_path, tshark):
    lab = lab_factory("flannel-udp")
    dst = cross_node_ping(lab)
    port = lab.plan.encap.udp_port
    f = tmp_path / "eth0.pcap"
    proc = start_capture(lab, "node1:eth0", "-c", "2", "-w", str(f), "--filter", f"udp port {port}")
    assert ping(lab.ns("node1-pod1"), dst)
    _, err = finish(proc)
    cmd = hint_command(err)
    assert cmd == ["tshark", "-r", str(f), "-d", f"udp.port=={port},ip"]
    assert protocols(cmd) == ["eth:ethertype:ip:udp:ip:icmp:data"] * 2
    assert all(":udp:ip" not in p for p in protocols(["tshark", "-r", str(f)]))


def test_no_hint_without_a_udp_encapsulation(lab_factory, tmp_path):
    lab = lab_factory("host-gw")
    assert lab.plan.encap is None
    dst = cross_node_ping(lab)
    f = tmp_path / "gw.pcap"
    proc = start_capture(lab, "node1:eth0", "-c", "1", "-w", str(f), "--filter", "icmp")
    assert ping(lab.ns("node1-pod1"), dst)
    _, err = finish(proc)
    assert "1 packets, written to" in err and "tshark" not in err
