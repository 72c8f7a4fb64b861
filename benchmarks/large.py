#!/usr/bin/env python3
"""A large lab end to end, as a user runs it: up, a ping across the lab, status, down, and what
each costs, with the floor of status's reading measured beside it in the same run.

    sudo .venv/bin/python benchmarks/large.py [--lab vxlan|host-gw] [--nodes 1000] [--pods 2]

It runs the CLI (whole processes, imports included) with a random-suffix lab name and a
private state directory, a /20 underlay and a /14 pod CIDR above 200 nodes, and prints:

- ``netlab up``: seconds, the host's MemAvailable before and after (per namespace: what the
  kernel spends on each), and the up process's peak RSS (per namespace: what netlab spends);
- a ping from the first node's first pod to the last node's first pod, across the underlay;
- ``netlab status``: seconds and its verdict, and the read floor (:func:`floor.read_floor`:
  the dumps status cannot do without, pre-encoded and not decoded, two processes at once),
  so status / floor is netlab's share and floor / up says whether "status within the time of
  up" is possible on this kernel at all;
- ``netlab down``: seconds, and the lab's namespaces still there afterwards (0 expected).
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import floor  # noqa: E402

from netlab import api, model  # noqa: E402
from netlab.kernel import limits, netns  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NETLAB = [sys.executable, "-m", "netlab"]


def cli_flags(overrides: dict) -> list[str]:
    """The overrides as ``netlab up`` flags, spelled as the CLI's own options declare them."""
    import click

    from netlab.cli.up import command

    flag = {p.name: max(p.opts, key=len) for p in command.params if isinstance(p, click.Option)}
    return [x for key, value in overrides.items() for x in (flag[key], str(value))]


def mem_available() -> int:
    """The host's MemAvailable, in bytes, as netlab's memory check reads it."""
    avail = limits.mem_available()
    if avail is None:
        raise SystemExit("large: /proc/meminfo has no MemAvailable")
    return avail


def run(argv: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    r = subprocess.run(NETLAB + argv, cwd=ROOT, env=env, capture_output=True, text=True)
    return time.perf_counter() - t, r


def must(what: str, r: subprocess.CompletedProcess) -> None:
    if r.returncode:
        sys.exit(f"large: netlab {what}: {(r.stderr.strip().splitlines() or ['?'])[-1]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", default="vxlan", choices=("vxlan", "host-gw"))
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=2)
    a = ap.parse_args()
    name = "lg" + secrets.token_hex(3)
    overrides = floor.overrides_for(a.nodes, a.pods)
    plan = api.build_plan(model.load(a.lab, name=name, overrides=overrides))  # pure: names and addresses
    names = [n.name for n in plan.namespaces]
    flags = cli_flags(overrides)
    with tempfile.TemporaryDirectory(prefix="netlab-large-") as tmp:
        env = dict(os.environ, NETLAB_STATE_DIR=tmp)
        before = mem_available()
        up_s, r = run(["up", a.lab, "--name", name, "-q", *flags], env)
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        try:
            must("up", r)
            spent = before - mem_available()
            dst = plan.address_of(plan.host(f"node{a.nodes}-pod1").name)
            ping_s, p = run(["exec", name, "node1-pod1", "--", "ping", "-c", "1", "-W", "5", dst], env)
            status_s, st = run(["status", name], env)
            floor_s, got = floor.read_floor(names)
        finally:
            down_s, d = run(["down", name], env)
        must("down", d)
    left = sum(1 for n in names if netns.exists(n))
    count = len(names)
    print(f"{a.lab} lab, {a.nodes} nodes x {a.pods} pods = {count} namespaces, {len(plan.objects):,} planned objects")
    print(f"netlab up          {up_s:8.1f} s")
    print(f"  host memory      {spent / 2**20:8.0f} MB MemAvailable spent = {spent / count / 2**10:.0f} kB per namespace")
    print(f"  netlab peak RSS  {rss / 2**20:8.0f} MB = {rss / count / 2**10:.0f} kB per namespace")
    print(f"ping node1-pod1 -> node{a.nodes}-pod1 ({dst}): {'ok' if p.returncode == 0 else 'FAILED'}, {ping_s:.1f} s")
    verdict = "ok" if st.returncode == 0 else f"rc={st.returncode}: {(st.stdout.strip().splitlines() or ['?'])[-1]}"
    print(f"netlab status      {status_s:8.1f} s   ({verdict})")
    print(f"  read floor       {floor_s:8.1f} s   ({got / 2**20:.0f} MB of dumps, undecoded)")
    print(f"  status / floor   {status_s / floor_s:8.2f}x")
    print(f"  floor / up       {floor_s / up_s:8.2f}x  (above 1: status within the time of up is below this kernel's floor)")
    print(f"  status / up      {status_s / up_s:8.2f}x")
    print(f"netlab down        {down_s:8.1f} s   ({left} of the lab's namespaces left)")


if __name__ == "__main__":
    main()
