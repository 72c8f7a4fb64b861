#!/usr/bin/env python3
"""Soak: many up/down cycles of the same labs in one process, to show that nothing leaks and
nothing slows down.

    .venv/bin/python benchmarks/soak.py                       # 200 x vxlan, 30 x calico, 30 x flannel-udp
    .venv/bin/python benchmarks/soak.py --cycles vxlan=20,calico=5

Each cycle brings a lab up through the Python API under one random-suffix name, checks that a
pod on node 1 reaches a pod on node 2, tears it down, and then counts what is left of
it: namespaces, mounts under /run/netns, processes, state directories (a private
``NETLAB_STATE_DIR``), and in this process file descriptors and threads. It prints, per lab, the
leftovers after every cycle summed (must be 0), the median cycle time of the first and of the
last tenth of the cycles (after a warm-up cycle) and their ratio (should stay near 1: growth means something
accumulates), and this process's memory at the start and the end. Not a timed test: the figures
are ratios taken in one run on a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT = "vxlan=200,calico=30,flannel-udp=30"


def leftovers(name: str, state_root: Path) -> list[str]:
    """Everything of instance ``name`` still on the machine, read from the kernel's own views."""
    left = [f"netns {n}" for n in os.listdir("/run/netns") if n.startswith(name + "-")] \
        if os.path.isdir("/run/netns") else []
    with open("/proc/self/mountinfo") as f:
        left += [f"mount {line.split()[4]}" for line in f if f"/run/netns/{name}-" in line]
    if (state_root / name).exists():
        left.append(f"state {state_root / name}")
    from netlab.kernel import procs
    return left + [f"process {pid}" for pid in procs.naming(f"{state_root}/{name}/")]


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mib() -> float:
    """This process's resident memory now (VmRSS), in MiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def soak(lab: str, cycles: int, state_root: Path) -> dict:
    from netlab import api
    from netlab.plan import cross_node_pair_or_reason

    times, left_total, failures = [], 0, 0
    fd0, threads0, rss0 = fds(), threading.active_count(), 0.0
    name = "sk" + secrets.token_hex(3)
    for i in range(cycles):
        t = time.perf_counter()
        h = api.up(lab, name=name)
        try:
            pair = cross_node_pair_or_reason(h.plan)  # the pair the lab's own hints ping
            assert not isinstance(pair, str), pair
            if h.exec(pair.src.host, ["ping", "-c", "1", "-W", "2", pair.dst_ip]).returncode != 0:
                failures += 1
        finally:
            h.down()
        times.append(time.perf_counter() - t)
        if i == 0:  # after the first cycle: imports and caches are warm
            fd0, threads0, rss0 = fds(), threading.active_count(), rss_mib()
        left = leftovers(name, state_root)
        left_total += len(left)
        if left:
            print(f"  {lab} cycle {i + 1}: left {left[:3]}", file=sys.stderr)
    warm = times[1:] or times  # the first cycle pays for imports and cold caches
    tenth = max(1, len(warm) // 10)
    first, last = statistics.median(warm[:tenth]), statistics.median(warm[-tenth:])
    return {"lab": lab, "cycles": cycles, "left": left_total, "ping_failures": failures,
            "first_s": first, "last_s": last, "ratio": last / first,
            "fd_growth": fds() - fd0, "thread_growth": threading.active_count() - threads0,
            "rss_first": rss0, "rss_last": rss_mib()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", default=DEFAULT, help=f"LAB=N,… (default {DEFAULT})")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("soak.py: needs root (it builds namespaces) — run: sudo .venv/bin/python benchmarks/soak.py",
              file=sys.stderr)
        return 1
    plan = [(k, int(v)) for k, v in (item.split("=") for item in args.cycles.split(","))]
    state_root = Path(tempfile.mkdtemp(prefix="netlab-soak-"))
    os.environ["NETLAB_STATE_DIR"] = str(state_root)
    rows = []
    for lab, n in plan:
        print(f"soak: {lab} x {n} …", file=sys.stderr)
        rows.append(soak(lab, n, state_root))
    print(f"{'lab':<12} {'cycles':>6} {'left':>5} {'ping fail':>9} {'first s':>8} {'last s':>8} {'last/first':>10}"
          f" {'fd +':>5} {'threads +':>9} {'RSS MiB':>13}")
    for r in rows:
        print(f"{r['lab']:<12} {r['cycles']:>6} {r['left']:>5} {r['ping_failures']:>9} {r['first_s']:>8.3f}"
              f" {r['last_s']:>8.3f} {r['ratio']:>10.2f} {r['fd_growth']:>5} {r['thread_growth']:>9}"
              f" {r['rss_first']:>6.1f}->{r['rss_last']:<6.1f}")
    print("left: objects of the lab found after each down, summed; fd +, threads +, RSS: this process, "
          "after the first cycle -> after the last")
    os.rmdir(state_root)
    return 0 if all(r["left"] == 0 and r["ping_failures"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
