#!/usr/bin/env python3
"""Wall time of a no-op ``netlab vm run -- true``: boot the stock kernel, run nothing, stop.

    .venv/bin/python benchmarks/vm_boot.py [--runs 5] [--json]

Each run is the whole command as a user types it (Python start-up, the cached kernel and
initramfs, QEMU, the guest's boot to PID 1 and its reboot), timed from outside. The first run
is also the one that builds a missing initramfs and fills the host's page cache, so it is
reported but left out of the statistics when there are more than two. It prints every run, the
median, min and max, and which accelerator was used (KVM where it can run a stock kernel, TCG
elsewhere). A benchmark, not a test: the machines it runs on are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def one_boot() -> float:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "netlab", "vm", "run", "--timeout", "300", "--", "true"],
                       cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit(f"vm_boot.py: netlab vm run -- true failed (exit {r.returncode}): {r.stderr.strip()[-500:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = ap.parse_args()
    from netlab.vm import accel, kernel
    k = kernel.ensure_prepared()
    acc = accel.detect()
    walls = [one_boot() for _ in range(args.runs)]
    measured = walls[1:] if len(walls) > 2 else walls
    doc = {"kernel": k.version, "accel": acc.name, "accel_reason": acc.reason, "runs_s": [round(w, 2) for w in walls],
           "median_s": round(statistics.median(measured), 2), "min_s": round(min(measured), 2),
           "max_s": round(max(measured), 2), "first_run_excluded": len(walls) > 2}
    if args.json:
        print(json.dumps(doc, indent=1))
        return
    print(f"netlab vm run -- true on {k.version}, {acc.name} ({acc.reason})")
    print("runs (s): " + " ".join(f"{w:.2f}" for w in walls) + ("  (first left out)" if doc["first_run_excluded"] else ""))
    print(f"median {doc['median_s']:.2f} s, min {doc['min_s']:.2f} s, max {doc['max_s']:.2f} s")


if __name__ == "__main__":
    main()
