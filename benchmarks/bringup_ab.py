#!/usr/bin/env python3
"""netlab up and down of the vxlan lab, this tree against another revision, side by side.

    .venv/bin/python benchmarks/bringup_ab.py --base <git rev> [--nodes 100 --pods 2 --repeat 5]

Both trees are run from the same interpreter and venv: the base revision is unpacked with
``git archive`` into a temporary directory and put first on PYTHONPATH. Each measurement is one
fresh process that imports netlab before its clock starts, so only ``api.up`` and ``down`` are
timed. Runs alternate (base, this, this, base, …) with a pause after each teardown, because the
kernel frees namespaces asynchronously and one run must not pay for the last one's cleanup.
Prints the medians and the ratio this/base (issue 11: up must not get slower, ratio <= 1.05).
Run as root; every lab has a random-suffix name.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ONE_RUN = """
import json, sys, time
from netlab import api
t0 = time.monotonic()
h = api.up("vxlan", name=sys.argv[1], nodes=int(sys.argv[2]), pods=int(sys.argv[3]))
t1 = time.monotonic()
h.down()
t2 = time.monotonic()
print(json.dumps({"up": t1 - t0, "down": t2 - t1}))
"""


def run(tree: Path, nodes: int, pods: int, state_dir: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), NETLAB_STATE_DIR=state_dir)
    name = "ab" + secrets.token_hex(3)
    out = subprocess.run([sys.executable, "-c", ONE_RUN, name, str(nodes), str(pods)], env=env, cwd=tree,
                         capture_output=True, text=True, timeout=600)
    if out.returncode:
        sys.exit(f"bringup_ab: a run in {tree} failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the git revision to compare against")
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--pods", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--settle", type=float, default=5.0, help="seconds to wait after each teardown")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="netlab-ab-") as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", a.base], capture_output=True)
        if archive.returncode:
            sys.exit(f"bringup_ab: git archive {a.base}: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
        state = Path(tmp) / "state"
        trees = {"base": base, "this": ROOT}
        results: dict[str, list[dict]] = {"base": [], "this": []}
        order = ["base", "this", "this", "base"]
        for i in range(2 * a.repeat):
            which = order[i % 4]
            results[which].append(run(trees[which], a.nodes, a.pods, str(state)))
            time.sleep(a.settle)
            print(f"run {i + 1}/{2 * a.repeat} ({which}) done", file=sys.stderr, flush=True)
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("up", "down")} for k, v in results.items()}
    print(f"vxlan lab, {a.nodes} nodes x {a.pods} pods; median of {a.repeat} alternating runs each")
    print(f"{'':6} {'up (s)':>8} {'down (s)':>9}   all up times")
    for k, v in results.items():
        ups = " ".join(f"{r['up']:.2f}" for r in v)
        print(f"{k:6} {med[k]['up']:8.2f} {med[k]['down']:9.2f}   {ups}")
    print(f"this/base up   = {med['this']['up'] / med['base']['up']:.3f}  (goal <= 1.05)")
    print(f"this/base down = {med['this']['down'] / med['base']['down']:.3f}")


if __name__ == "__main__":
    main()
