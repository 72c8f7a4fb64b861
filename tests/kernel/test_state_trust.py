"""The state file is write-ahead bookkeeping, not proof: crashes in the claim window, tampered
state files and hostile instance names must never make netlab touch what is not the lab's.

Every test that could see another lab's state uses a private ``NETLAB_STATE_DIR``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netlab import api
from netlab.kernel.procs import alive
from tests.helpers import ROOT, netns_list, residue, unique_name, wait_until

pytestmark = pytest.mark.kernel
NETLAB = [sys.executable, "-m", "netlab"]


def cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(NETLAB + list(args), capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


def _token(d: Path) -> str | None:
    """Which claim holds ``d``: the token of its state file. (A directory's inode and ctime are
    no identity: inodes are reused at once, and removing a file inside changes the ctime.)"""
    try:
        return json.loads((d / "state.json").read_text())["token"]
    except (OSError, ValueError, KeyError):
        return None


def _signal_when_claimed(name: str, root: Path, env: dict, sig: int) -> None:
    """Start ``netlab up`` and send ``sig`` the moment its state directory appears (a new claim:
    one left by the previous round does not count). The up must get that far: a name left stuck
    by the previous round would make it exit first, and that fails the test."""
    d = root / name
    before = _token(d)
    p = subprocess.Popen(NETLAB + ["up", "vxlan", "--name", name, "--pods", "1", "-q"], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        token = _token(d)
        if token is not None and token != before:
            p.send_signal(sig)
            break
        if p.poll() is not None:
            raise AssertionError(f"up exited ({p.returncode}) before it claimed the name: {p.stderr.read()[-300:]}")
    p.wait(timeout=30)
    p.stderr.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_a_signal_the_moment_the_name_is_claimed_never_leaves_it_stuck(sig, tmp_path):
    """20 rounds: each ``up`` is signalled as its state directory appears; the next round's ``up``
    must be able to claim the name again (recovering what the last one left), and at the end a
    full up/down leaves nothing."""
    name = unique_name("cl")
    root = tmp_path / "state"
    env = dict(os.environ, NETLAB_STATE_DIR=str(root))
    try:
        for _ in range(20):
            _signal_when_claimed(name, root, env, sig)
        r = cli("up", "vxlan", "--name", name, "--pods", "1", "-q", env=env)
        assert r.returncode == 0, r.stderr
    finally:
        r = cli("down", name, env=env)
    assert r.returncode == 0, r.stderr
    assert residue(name) == [] and not any(root.iterdir()), list(root.iterdir())


def test_every_verb_recognises_a_state_directory_with_no_state(tmp_path):
    """What an older netlab's crash left: the directory and nothing in it. status and down name
    it; down removes it; up recovers the name by itself."""
    root = tmp_path / "state"
    env = dict(os.environ, NETLAB_STATE_DIR=str(root))
    name = unique_name("cl")
    (root / name).mkdir(parents=True)
    r = cli("status", name, env=env)
    assert r.returncode != 0 and "no state" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = cli("down", name, env=env)
    assert r.returncode == 0 and not (root / name).exists(), r.stdout + r.stderr
    (root / name).mkdir()
    (root / name / "bird.conf").write_text("left over\n")
    r = cli("up", "vxlan", "--name", name, "--pods", "1", "-q", env=env)
    assert r.returncode == 0, r.stderr
    assert cli("down", name, env=env).returncode == 0
    assert residue(name) == []


def _sleeper(ns: str | None = None) -> subprocess.Popen:
    argv = ["sleep", "300"] if ns is None else ["ip", "netns", "exec", ns, "sleep", "300"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _record(state_path: Path, pid: int, argv: list[str], ns: str) -> None:
    from netlab.kernel.procs import start_time

    raw = json.loads(state_path.read_text())
    raw["daemons"].append({"ns": ns, "name": "forged", "pid": pid, "start_time": start_time(pid),
                           "argv": argv, "log": "/dev/null"})
    state_path.write_text(json.dumps(raw))


def test_down_never_signals_a_process_outside_the_labs_namespaces(tmp_path):
    """A state file edited to list an unrelated process (right PID, right start time, right argv)
    in the root namespace, and a process inside a lab namespace whose argv is not the recorded
    one: down signals neither, says so, and still stops the lab's real daemons."""
    h = api.up("flannel-udp", name=unique_name("tr"), pods=1)
    outside = _sleeper()
    inside = _sleeper(f"{h.name}-node1")
    try:
        _record(h.state.path, outside.pid, ["sleep", "300"], f"{h.name}-node1")
        wait_until(lambda: not Path(f"/proc/{inside.pid}/cmdline").read_bytes().startswith(b"ip"), timeout=5,
                   interval=0.01, what="ip netns exec to exec sleep")
        _record(h.state.path, inside.pid, ["sleep", "301"], f"{h.name}-node1")
        real = [(d.pid, d.start_time) for d in h.state.daemons]
        r = cli("down", h.name)
        assert r.returncode == 0, r.stderr
        assert f"pid {outside.pid}" in r.stdout and f"pid {inside.pid}" in r.stdout, r.stdout
        assert outside.poll() is None and inside.poll() is None, "a process that is not the lab's was signalled"
        assert real and not any(alive(pid, st) for pid, st in real), "the lab's own daemons must still be stopped"
    finally:
        for p in (outside, inside):
            p.kill()
            p.wait()
    assert residue(h.name) == []


def test_a_state_file_naming_another_lab_is_refused(tmp_path):
    """Teardown derives paths and markers from the state; a file whose ``lab`` names another lab
    must not make ``down`` delete that other lab's directory."""
    root = tmp_path / "state"
    env = dict(os.environ, NETLAB_STATE_DIR=str(root))
    a, b = unique_name("ta"), unique_name("tb")
    for n in (a, b):
        assert cli("up", "vxlan", "--name", n, "--pods", "1", "-q", env=env).returncode == 0
    try:
        path = root / a / "state.json"
        raw = json.loads(path.read_text())
        raw["lab"] = b
        path.write_text(json.dumps(raw))
        r = cli("down", a, env=env)
        assert r.returncode != 0 and "names lab" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert (root / b / "state.json").exists() and any(n.startswith(b + "-") for n in netns_list())
        raw["lab"] = a
        path.write_text(json.dumps(raw))
    finally:
        r = cli("down", a, b, env=env)
    assert r.returncode == 0, r.stderr
    assert residue(a) == [] and residue(b) == []


@pytest.mark.parametrize("verb", [["down"], ["status"], ["exec"], ["bgp"], ["trace"]])
@pytest.mark.parametrize("bad", ["../x", "", "a/b", "X" * 5000, "-rf"])
def test_hostile_instance_names_are_refused_in_one_line_by_every_verb(verb, bad, tmp_path):
    env = dict(os.environ, NETLAB_STATE_DIR=str(tmp_path / "state"))
    args = list(verb) + (["--", bad] if bad.startswith("-") else [bad])
    if verb[0] in ("exec", "trace"):
        args += ["node1", "node2"] if verb[0] == "trace" else ["node1", "--", "true"]
    r = cli(*args, env=env)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netlab: ") and len(lines[0]) < 300, r.stderr
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())


def test_an_empty_instance_name_is_refused_by_up(tmp_path):
    env = dict(os.environ, NETLAB_STATE_DIR=str(tmp_path / "state"))
    r = cli("up", "vxlan", "--name", "", "--pods", "1", env=env)
    if r.returncode == 0:  # it came up under the default name: take it down before failing
        cli("down", "vxlan", env=env)
    assert r.returncode != 0 and "not allowed" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_namespaces_a_state_file_lists_but_cannot_prove_are_left_alone(tmp_path):
    """An unmarked decoy namespace and another lab's namespace, both added to a lab's state file
    (one even named like the lab's own): down removes the lab and neither of them. A garbage state
    file is refused in one line."""
    root = tmp_path / "state"
    env = dict(os.environ, NETLAB_STATE_DIR=str(root))
    a, b = unique_name("ta"), unique_name("tb")
    decoy = f"{a}-decoy"
    for n in (a, b):
        assert cli("up", "vxlan", "--name", n, "--pods", "1", "-q", env=env).returncode == 0
    subprocess.run(["ip", "netns", "add", decoy], check=True)
    try:
        path = root / a / "state.json"
        raw = json.loads(path.read_text())
        raw["namespaces"] += [decoy, f"{b}-node1"]
        path.write_text(json.dumps(raw))
        r = cli("down", a, env=env)
        assert r.returncode == 0 and decoy in r.stdout, r.stdout + r.stderr
        assert decoy in netns_list() and f"{b}-node1" in netns_list()
        good = (root / b / "state.json").read_text()
        (root / b / "state.json").write_text("{not json")
        r = cli("down", b, env=env)
        assert r.returncode != 0 and "damaged" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert f"{b}-node1" in netns_list()
        (root / b / "state.json").write_text(json.dumps({"lab": b, "token": 5}))
        r = cli("down", b, env=env)
        assert r.returncode != 0 and "damaged" in r.stderr, r.stderr
        (root / b / "state.json").write_text(good)
    finally:
        subprocess.run(["ip", "netns", "del", decoy], check=False)
        up = [n for n in (a, b) if (root / n).exists()]
        r = cli("down", *up, env=env) if up else None
    assert r is not None and r.returncode == 0, r and r.stderr
    assert residue(a) == [] and residue(b) == []
