#!/usr/bin/env python3
"""How long an exercise takes to start (on top of ``up``) and to check, side by side in one run.

    .venv/bin/python benchmarks/exercise_times.py [--exercise vxlan-fdb-forgotten] [--repeat 5]

Each round times ``api.up`` of the exercise's lab alone (then tears it down), then
``exercise start`` (up + the pre-fault probes + the injection), then ``check`` on the broken lab
and, after the solution, on the repaired one. Prints the medians: start - up (goal < 2 s) and
check (goal < 2 s on a 2-node lab). Run as root; private state directory, random names.
"""

from __future__ import annotations

import argparse
import atexit
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exercise", default="vxlan-fdb-forgotten")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    os.environ["NETLAB_STATE_DIR"] = tempfile.mkdtemp(prefix="netlab-ex-")
    atexit.register(shutil.rmtree, os.environ["NETLAB_STATE_DIR"], True)  # its own scratch state root only
    from netlab import api
    from netlab.exercises import run
    from netlab.exercises.spec import load

    ex = load(a.exercise)
    ups, starts, broken, fixed = [], [], [], []
    for _ in range(a.repeat):
        t = time.monotonic()
        api.up(ex.lab, name="bu" + secrets.token_hex(3), **ex.overrides).down()
        ups.append(time.monotonic() - t)
        name = "bx" + secrets.token_hex(3)
        t = time.monotonic()
        _, rec, _ = run.start(a.exercise, seed=1, name=name)
        starts.append(time.monotonic() - t)
        try:
            broken.append(run.check(name).seconds)
            for cmd in rec.solution:
                subprocess.run(["bash", "-c", cmd], check=True)
            fixed.append(run.check(name).seconds)
        finally:
            run.stop(name)
    med = statistics.median
    print(f"{a.exercise} ({ex.lab}, {ex.overrides}); median of {a.repeat}")
    print(f"up alone              {med(ups):6.2f} s")
    print(f"exercise start        {med(starts):6.2f} s   start - up = {med(starts) - med(ups):.2f} s (goal < 2 s)")
    print(f"check, broken lab     {med(broken):6.2f} s   (goal < 2 s)")
    print(f"check, repaired lab   {med(fixed):6.2f} s   (goal < 2 s)")


if __name__ == "__main__":
    main()
