"""Lifecycle: nothing left behind after down, after an exception, after SIGINT; the root
namespace untouched; two labs side by side; bad input refused with one line and nothing created."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from netlab import api
from netlab.kernel.apply import Applier
from tests.helpers import ROOT, netns_list, ping, residue, root_snapshot, sh, unique_name, wait_until

pytestmark = pytest.mark.kernel
NETLAB = [sys.executable, "-m", "netlab"]


def run_cli(*args: str, env: dict | None = None, user: str | None = None) -> subprocess.CompletedProcess:
    argv = NETLAB + list(args)
    if user:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + argv
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env)


def test_up_down_leaves_root_namespace_identical_and_nothing_behind():
    before = root_snapshot()
    name = unique_name()
    r = run_cli("up", "vxlan", "--name", name)
    assert r.returncode == 0, r.stderr
    assert f"lab {name} is up" in r.stdout and "try next" in r.stdout
    assert ping(f"{name}-node1-pod1", "10.244.2.2")
    r = run_cli("down", name)
    assert r.returncode == 0, r.stderr
    assert residue(name) == []
    assert root_snapshot() == before


def test_exception_in_the_middle_of_up_rolls_back(monkeypatch):
    name = unique_name()

    def boom(self, *args):
        assert netns_list() >= {f"{name}-node1", f"{name}-node2-pod2"}  # we really are half-way
        raise RuntimeError("injected failure")

    monkeypatch.setattr(Applier, "links_phase", boom)
    with pytest.raises(RuntimeError, match="injected"):
        api.up("vxlan", name=name)
    assert residue(name) == []


def test_sigint_in_the_middle_of_up_rolls_back():
    name = unique_name()
    before = root_snapshot()
    p = subprocess.Popen(NETLAB + ["up", "vxlan", "--name", name, "--nodes", "80", "--pods", "2"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # polled often: an 80-node up must be caught half-way, before it finishes
        wait_until(lambda: len([n for n in netns_list() if n.startswith(name)]) >= 20 or p.poll() is not None,
                   timeout=60, interval=0.005, what="up creating its first 20 namespaces")
        assert p.poll() is None, "up finished before it could be interrupted"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 130, err
        assert "interrupted" in err and "rolled back" in err
        assert residue(name) == []
        assert root_snapshot() == before
    finally:
        # whatever went wrong above, this test must not leave an 80-node lab behind
        if p.poll() is None:
            p.kill()
            p.wait()
        if Path(f"/run/netlab/{name}/state.json").exists():
            run_cli("down", name)


def test_two_labs_side_by_side_do_not_interfere(lab_factory):
    a = lab_factory("vxlan")
    b = lab_factory("vxlan", pods=1)
    assert ping(a.ns("node1-pod1"), "10.244.2.2") and ping(b.ns("node1-pod1"), "10.244.2.2")
    # tearing one down leaves the other intact and healthy
    b.down()
    assert residue(b.name) == []
    assert a.verify().ok and ping(a.ns("node1-pod1"), "10.244.2.3")


def test_same_instance_name_twice_is_refused(lab_factory):
    a = lab_factory("vxlan")
    r = run_cli("up", "vxlan", "--name", a.name)
    assert r.returncode != 0 and "already up" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert a.verify().ok


def test_down_all_finds_a_lab_orphaned_by_a_crash(tmp_path):
    """A netlab killed with SIGKILL in the middle of up: the write-ahead state file and the
    markers are all `down --all` needs. (A private state root keeps `--all` away from labs that
    other tests or people have up on this machine.)"""
    name = unique_name()
    env = dict(os.environ, NETLAB_STATE_DIR=str(tmp_path / "state"))
    p = subprocess.Popen(NETLAB + ["up", "vxlan", "--name", name, "--nodes", "60", "-q"], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # killed half-way through a 60-node up, which is why this polls this often
        wait_until(lambda: len([n for n in netns_list() if n.startswith(name)]) >= 30 or p.poll() is not None,
                   timeout=60, interval=0.005, what="up creating its first 30 namespaces")
    finally:
        p.kill()
    p.wait()
    assert (tmp_path / "state" / name / "state.json").exists()
    assert [n for n in netns_list() if n.startswith(name)], "the crash left nothing to clean up"
    r = run_cli("down", "--all", env=env)
    assert r.returncode == 0 and name in r.stdout, r.stderr
    assert residue(name) == [] and not (tmp_path / "state" / name).exists()


def test_down_never_removes_a_namespace_it_cannot_prove_is_its_own():
    name = unique_name()
    r = run_cli("up", "vxlan", "--name", name, "-q", "--pods", "1")
    assert r.returncode == 0
    # someone replaces a lab namespace with their own of the same name
    victim = f"{name}-node2-pod1"
    sh("ip", "netns", "del", victim)
    sh("ip", "netns", "add", victim)
    try:
        r = run_cli("down", name)
        assert r.returncode == 0 and "left alone" in r.stdout and victim in r.stdout
        assert victim in netns_list()
    finally:
        sh("ip", "netns", "del", victim, check=False)
    assert residue(name) == []


def _one_line_error(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("netlab: ") and " — " in lines[0], lines[0]
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize("yaml_text, words", [
    ("datapath: flannel-vxlan\nnodes: [2\n", ["YAML syntax error"]),
    ("datapath: flannel-vxlan\nwheels: 4\n", ["wheels", "unknown field"]),
    ("datapath: flannel-vxlan\npod_cidr: 192.168.100.0/23\n", ["pod_cidr", "overlaps"]),
    ("datapath: flannel-vxlan\nnodes: 30\nunderlay: {cidr: 192.168.100.0/28}\n", ["underlay.cidr", "too small"]),
    ("datapath: flannel-vxlan\nnodes: 0\n", ["nodes", "from 1"]),
])
def test_bad_lab_files_get_one_line_and_create_nothing(tmp_path, yaml_text, words):
    name = unique_name()
    f = tmp_path / "bad.yaml"
    f.write_text(yaml_text)
    _one_line_error(run_cli("up", str(f), "--name", name), str(f), *words)
    assert residue(name) == []


def test_unknown_lab():
    _one_line_error(run_cli("up", "no-such-lab"), "unknown lab", "vxlan")


def test_bad_cli_override():
    _one_line_error(run_cli("up", "vxlan", "--name", unique_name(), "--nodes", "0"), "nodes")


def test_not_root():
    name = unique_name()
    r = run_cli("up", "vxlan", "--name", name, user="65534")
    _one_line_error(r, "needs root")
    assert residue(name) == []


def test_missing_iptables_binary():
    name = unique_name()
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))  # the venv only: no iptables-restore
    _one_line_error(run_cli("up", "vxlan", "--name", name, env=env), "iptables-restore", "apt-get install iptables")
    assert residue(name) == []


def test_missing_kernel_feature(monkeypatch):
    """This kernel has no ipip (probed for real): a datapath that needs it must stop before
    creating anything. Here the vxlan datapath is made to require it, in-process."""
    import dataclasses

    from click.testing import CliRunner

    from netlab import datapaths
    from netlab.cli import cli
    from netlab.kernel import probe

    if probe.link_kind("ipip") is None:
        pytest.skip("this kernel has ipip")
    real_get = datapaths.get

    def get(name, src="lab file"):
        dp = real_get(name, src)
        return dataclasses.replace(dp, requires=dp.requires + ("ipip",))

    monkeypatch.setattr("netlab.api.get", get)
    name = unique_name()
    res = CliRunner().invoke(cli, ["up", "vxlan", "--name", name])
    assert res.exit_code == 3
    assert "cannot create 'ipip' links" in res.output and "CONFIG_NET_IPIP" in res.output
    assert residue(name) == []
