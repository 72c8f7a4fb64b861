#!/usr/bin/env python3
"""``netlab status`` against ``netlab up`` of the same vxlan lab, both as the commands a user
types (whole processes, imports included), side by side in one run.

    .venv/bin/python benchmarks/status_vs_up.py [--nodes 150 --pods 2 --repeat 3]

Each round brings the lab up with ``netlab up``, times ``netlab status`` on it, and takes it
down. Prints the medians and the ratio status/up (issue 12: status of a large lab takes at most
as long as its up). 200 nodes need the host's neighbour table (gc_thresh3) above 1024; netlab
refuses rather than raise a host-wide limit, so the default here is the largest lab that fits a
default host. Run as root; the lab has a random-suffix name and a private state directory.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NETLAB = [sys.executable, "-m", "netlab"]


def timed(argv: list[str], env: dict) -> float:
    t = time.monotonic()
    r = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"status_vs_up: {' '.join(argv[2:])}: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return time.monotonic() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=150)
    ap.add_argument("--pods", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds after each teardown: the kernel frees namespaces asynchronously, under the rtnl "
                         "lock, and the next up must not pay for the last one's cleanup")
    a = ap.parse_args()
    ups, statuses = [], []
    with tempfile.TemporaryDirectory(prefix="netlab-status-") as tmp:
        env = dict(os.environ, NETLAB_STATE_DIR=tmp)
        for i in range(a.repeat):
            name = "su" + secrets.token_hex(3)
            ups.append(timed(NETLAB + ["up", "vxlan", "--name", name, "--nodes", str(a.nodes), "--pods", str(a.pods)],
                             env))
            try:
                statuses.append(timed(NETLAB + ["status", name], env))
            finally:
                subprocess.run(NETLAB + ["down", name], cwd=ROOT, env=env, capture_output=True)
                time.sleep(a.settle)
            print(f"round {i + 1}/{a.repeat}: up {ups[-1]:.2f}s, status {statuses[-1]:.2f}s", file=sys.stderr)
    u, s = statistics.median(ups), statistics.median(statuses)
    print(f"vxlan lab, {a.nodes} nodes x {a.pods} pods; median of {a.repeat} rounds")
    print(f"netlab up      {u:6.2f} s   ({' '.join(f'{x:.2f}' for x in ups)})")
    print(f"netlab status  {s:6.2f} s   ({' '.join(f'{x:.2f}' for x in statuses)})")
    print(f"status / up    = {s / u:.2f}  (goal <= 1.0)")


if __name__ == "__main__":
    main()
