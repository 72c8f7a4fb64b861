"""BGP labs: ``up`` means usable (issue 9, part 5), on the real kernel.

After ``api.up`` returns, the cross-node ping the lab suggests works at once (no retry loop);
``status`` reports a stopped BIRD as stopped, a session forced down and the routes it carried as
problems; a wait that times out rolls the lab back with one line saying what is missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from netlab import api
from netlab.kernel.limits import NotReady
from tests.helpers import ROOT, ipj, nsexec, ping, residue, unique_name, wait_until

pytestmark = pytest.mark.kernel
NETLAB = [sys.executable, "-m", "netlab"]


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(NETLAB + list(args), capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def status(name: str) -> tuple[int, dict]:
    r = cli("status", name, "--json")
    assert r.stdout.strip(), f"status --json printed nothing (exit {r.returncode}): {r.stderr.strip()[-500:]}"
    return r.returncode, json.loads(r.stdout)


def bird(lab, host: str):
    return next(d for d in lab.state.daemons if d.ns == lab.ns(host))


@pytest.mark.parametrize("lab_file", ["calico", "calico-rr"])
def test_pods_reach_each_other_the_moment_up_returns(lab_factory, lab_file):
    lab = lab_factory(lab_file, nodes=3, pods=1)
    # one ping each way, no retry: BGP has converged before up returned
    assert ping(lab.ns("node1-pod1"), "192.168.2.1", count=1, timeout=1)
    assert ping(lab.ns("node3-pod1"), "192.168.1.1", count=1, timeout=1)
    routes = {r["dst"]: r for r in ipj(lab.ns("node2"), "route", "show", "proto", "bird")}
    assert {"192.168.1.0/26", "192.168.3.0/26"} <= set(routes)
    rep = lab.verify()
    assert rep.ok, [f"{p.what}: {p.detail}" for p in rep.problems]
    assert all(s["established"] == s["sessions"] and s["blocks_received"] == s["blocks_expected"]
               for s in rep.bgp)


def test_a_stopped_bird_is_reported_stopped(lab_factory):
    lab = lab_factory("calico", nodes=3, pods=1)
    b2 = bird(lab, "node2")
    os.kill(b2.pid, signal.SIGSTOP)
    try:
        rc, st = status(lab.name)
        assert rc == 1 and not st["ok"]
        states = {d["ns"]: (d["state"], d["alive"]) for d in st["daemons"]}
        assert states[lab.ns("node2")] == ("stopped", False)
        assert states[lab.ns("node1")] == ("running", True)
        assert any("node2" in p["what"] and "stopped" in p["detail"] for p in st["problems"])
        text = cli("status", lab.name)
        assert text.returncode == 1 and "stopped" in text.stdout
    finally:
        os.kill(b2.pid, signal.SIGCONT)


def test_a_session_forced_down_and_its_routes_are_problems(lab_factory):
    lab = lab_factory("calico", nodes=3, pods=1)
    rc, st = status(lab.name)
    assert rc == 0 and st["ok"], st["problems"]
    n3 = lab.ns("node3")
    # inside the lab's node3 namespace only: BGP to and from it is dropped, keepalives stop
    for direction in ("--dport", "--sport"):
        assert nsexec(n3, "iptables", "-I", "INPUT", "-p", "tcp", direction, "179", "-j", "DROP").returncode == 0
    def reported() -> tuple[list[str], list[str], dict] | None:
        rc, st = status(lab.name)
        whats = [p["what"] for p in st["problems"]]
        sessions = [w for w in whats if w.startswith("BGP session") and "Mesh_10_0_0_13" in w]
        routes = [w for w in whats if w.startswith("route 192.168.3.0/26 proto bird")]
        return (whats, sessions, st) if rc == 1 and len(sessions) == 2 and len(routes) == 2 else None
    # hold time 9 s, then the routes are withdrawn
    whats, sessions, st = wait_until(reported, timeout=30, interval=0.5, what="status reporting the dead sessions",
                                     detail=lambda: status(lab.name)[1]["problems"])
    hosts = {w.split()[2] for w in sessions}
    assert hosts == {"node1", "node2"}
    assert any("node3" in w and w.startswith("BGP session") for w in whats), "node3's own side, too"
    assert any(p["detail"].startswith("not Established") for p in st["problems"])
    assert not ping(lab.ns("node1-pod1"), "192.168.3.1", timeout=1)


def test_a_wait_that_times_out_rolls_back_with_what_is_missing():
    """BIRD waits 2 s (connect delay) before its first session: 0.3 s can never be enough."""
    name = unique_name("br")
    with pytest.raises(NotReady) as e:
        api.up("calico", name=name, nodes=2, pods=1, wait=0.3)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and len(msg) < 300, msg
    assert f"lab '{name}' not usable after 0.3s" in msg and "192.168." in msg and "--wait-timeout" in msg
    assert e.value.exit_code == 6
    assert residue(name) == []


def test_no_wait_returns_before_convergence_and_the_lab_still_converges():
    name = unique_name("nw")
    r = cli("up", "calico", "--name", name, "--nodes", "2", "--pods", "1", "--no-wait")
    try:
        assert r.returncode == 0, r.stderr
        assert "ready after" not in r.stderr and f"lab {name} is up" in r.stdout
        wait_until(lambda: status(name)[0] == 0, timeout=30, interval=0.5,
                   what="the lab converging after --no-wait")
        r = cli("up", "calico", "--name", unique_name("wt"), "--wait-timeout", "0")
        assert r.returncode == 2 and "wait-timeout" in r.stderr
    finally:
        assert cli("down", name).returncode == 0
    assert residue(name) == []
