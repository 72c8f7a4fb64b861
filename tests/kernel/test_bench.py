"""netlab bench on the real kernel: a short bench (one lab and the baselines, 1 s, 1 repeat) gives
a complete JSON document with positive receiver-side rates and leaves nothing behind; the
explain-built twin is measured and removed; Ctrl-C and SIGKILL leave no iperf3 running.

No speed is asserted: the test machines are shared and noisy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from netlab.naming import LAB_NAME_RE
from tests.helpers import ROOT, residue, root_snapshot, sh, unique_name, wait_until

pytestmark = pytest.mark.kernel
NETLAB = [sys.executable, "-m", "netlab"]
TESTS = {"tcp", "tcp-P", "udp-pps"}


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(NETLAB + ["bench", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def prefix() -> str:
    return unique_name("bn") + "-"


def comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def iperf_children(ppid: int) -> list[int]:
    """iperf3 processes whose parent is ``ppid`` (the bench we started)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[1]) == ppid and comm(int(pid)) == "iperf3":
                found.append(int(pid))
    return found


def assert_gone(pids: list[int]) -> None:
    alive = [p for p in pids if comm(p) == "iperf3"]
    assert alive == [], f"iperf3 processes of the bench still running: {alive}"


def test_short_bench_json_schema_positive_rates_nothing_left_behind():
    before = root_snapshot()
    p = prefix()
    r = bench("vxlan", "--duration", "1", "--repeat", "1", "--prefix", p, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    assert doc["schema"] == "netlab-bench/1"
    for key in ("started", "finished", "seconds", "host", "settings", "tests", "targets", "skipped", "runs",
                "results", "against_explain", "offload_state", "pids"):
        assert key in doc, key
    assert doc["settings"]["duration_s"] == 1 and doc["settings"]["repeat"] == 1
    assert {t["id"] for t in doc["tests"]} == TESTS
    targets = {t["id"]: t for t in doc["targets"]}
    assert set(targets) == {"underlay", "veth", "vxlan"}
    vx = targets["vxlan"]
    assert vx["kind"] == "lab" and vx["claim"] == "vxlan" and vx["brought_up"] and vx["mtu"] == 1450
    assert vx["src"]["host"] == "node1-pod1" and vx["dst"]["host"] == "node2-pod1"
    # every (target, test) ran once, with both raw iperf3 documents and a positive receiver-side rate
    assert len(doc["runs"]) == 3 * 3
    for run in doc["runs"]:
        assert run["error"] is None, run["error"]
        assert run["value"] > 0 and run["unit"] in ("bit/s", "pkt/s")
        assert run["client"]["start"] and run["client"]["end"]
        assert run["server"]["end"]["sum_received"]
        assert run["client_pid"] and run["server_pid"]
    results = {(x["target"], x["test"]): x for x in doc["results"]}
    assert len(results) == 9
    for (tid, test), x in results.items():
        assert x["summary"]["n"] == 1 and x["summary"]["median"] > 0
        assert x["ratio"]["value"] > 0
        if tid == "vxlan":
            assert x["verdict"]["status"] in ("holds", "does not hold") and x["claim"]["key"] == "vxlan"
    assert results[("vxlan", "tcp")]["mss"] and results[("underlay", "tcp")]["mss"]
    # the table went to stderr and says which labs were skipped (here: none, vxlan was named)
    assert "netlab bench" in r.stderr
    # nothing left behind: namespaces, state, daemons, iperf3, root namespace untouched
    for inst in (f"{p}vxlan", f"{p}bench-base"):
        assert LAB_NAME_RE.match(inst)
        assert residue(inst) == [], residue(inst)
    assert_gone(doc["pids"])
    assert root_snapshot() == before


def test_a_saved_document_is_analysed_again_without_measuring(tmp_path):
    p = prefix()
    r = bench("vxlan", "--duration", "1", "--repeat", "1", "--prefix", p, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    saved = tmp_path / "bench.json"
    saved.write_text(r.stdout)
    again = bench("--from-json", str(saved), "--plot", str(tmp_path / "bench.png"))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "offload on" in again.stdout and "vxlan" in again.stdout and "VXLAN costs 20–30 %" in again.stdout
    assert (tmp_path / "bench.png").stat().st_size > 10_000
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "something else"}')
    r = bench("--from-json", str(bad))
    assert r.returncode != 0 and "not a netlab bench document" in r.stderr and "Traceback" not in r.stderr


def test_against_explain_measures_the_script_built_twin_and_removes_it():
    p = prefix()
    r = bench("vxlan", "--duration", "1", "--repeat", "1", "--prefix", p, "--json", "--against-explain")
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    twin = next(t for t in doc["targets"] if t["kind"] == "explain")
    assert twin["id"] == "vxlan@explain" and twin["instance"] == f"{p}vxlan-x"
    assert any("no differences from the plan" in n for n in twin["notes"])
    rows = doc["against_explain"]
    assert {x["test"] for x in rows} == TESTS
    assert all(x["ratio"]["value"] > 0 for x in rows)  # no speed asserted: ≥ 0.95 is for a quiet machine
    for inst in (f"{p}vxlan", f"{p}vxlan-x", f"{p}bench-base"):
        assert residue(inst) == [], residue(inst)
    assert_gone(doc["pids"])


def connected(pid: int) -> bool:
    """An ESTABLISHED TCP socket in ``pid``'s network namespace (``/proc/PID/net/tcp``, state 01)."""
    try:
        rows = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(r.split()[3] == "01" for r in rows)


def _start_and_wait_for_iperf(p: str) -> tuple[subprocess.Popen, list[int]]:
    """The bench, once it is measuring: an iperf3 server and client of its own, and a connection
    between them. (Two processes alone is not yet a measurement: the client has only just been
    forked, and a signal in that instant is another test's business.)"""
    proc = subprocess.Popen(NETLAB + ["bench", "vxlan", "--duration", "10", "--repeat", "1", "--prefix", p],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)

    def measuring() -> list[int] | None:
        kids = iperf_children(proc.pid)
        return kids if len(kids) >= 2 and any(connected(k) for k in kids) else None
    kids = wait_until(measuring, timeout=60, what="the bench measuring with an iperf3 server and client")
    return proc, kids


def test_ctrl_c_stops_iperf3_and_tears_everything_down():
    p = prefix()
    proc, kids = _start_and_wait_for_iperf(p)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert_gone(kids)
    for inst in (f"{p}vxlan", f"{p}bench-base"):
        assert residue(inst) == [], residue(inst)


def test_sigkill_of_the_bench_still_kills_its_iperf3():
    p = prefix()
    proc, kids = _start_and_wait_for_iperf(p)
    proc.kill()  # no finally block runs: PR_SET_PDEATHSIG is what must stop the children
    proc.communicate(timeout=30)
    try:
        wait_until(lambda: not any(comm(k) == "iperf3" for k in kids), timeout=5,
                   what="PR_SET_PDEATHSIG ending the bench's iperf3")
        assert_gone(kids)
    finally:
        for inst in (f"{p}vxlan", f"{p}bench-base"):
            if Path(f"/run/netlab/{inst}").exists():
                sh(*NETLAB, "down", inst, check=False)
            assert residue(inst) == [], residue(inst)
