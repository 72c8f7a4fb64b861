#!/usr/bin/env python3
"""netlab beside mininet, on the topology both build: one Linux bridge with N hosts on veths.

    sudo .venv/bin/python benchmarks/mininet_ab.py [--sizes 10,50,100] [--repeat 3]

netlab: ``netlab up bridge --pods N`` then ``netlab down`` (Docker's bridge: docker0 with N
containers, each a namespace on a veth with an address and a default route, plus Docker's
iptables). mininet 2.3: ``mn --topo single,N --switch lxbr --controller none --test none`` (a
Linux bridge with N hosts, each a namespace on a veth with an address), which builds the network,
tests nothing and tears it down. Both are timed as whole processes, interpreter start included,
alternating, and the median of ``--repeat`` runs is compared: the ratio printed is mininet/netlab.

mininet is not a dependency of netlab. When ``mn`` is missing, this benchmark installs Debian's
``mininet`` and ``bridge-utils`` (apt-get, without the recommended Open vSwitch) and says so.
mininet puts its switch and one end of every link in the namespace it runs in; to keep the host's
root namespace untouched, every mininet run happens inside a fresh network (and mount) namespace
of its own (``unshare --net --mount``), which disappears with it.
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

ROOT = Path(__file__).resolve().parent.parent
NETLAB = [str(Path(sys.executable).parent / "netlab")]


def ensure_mininet() -> None:
    if shutil.which("mn") and shutil.which("brctl"):
        return
    print("mininet_ab: installing Debian's mininet and bridge-utils for this benchmark "
          "(apt-get install --no-install-recommends mininet bridge-utils)", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "mininet", "bridge-utils"],
                   check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def timed(argv: list[str], env: dict | None = None) -> float:
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    took = time.monotonic() - t0
    if r.returncode:
        raise SystemExit(f"mininet_ab: {' '.join(argv[:6])} … failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return took


def netlab_once(n: int, env: dict) -> float:
    name = f"mn{secrets.token_hex(3)}"
    return timed(NETLAB + ["up", "bridge", "--pods", str(n), "--name", name, "-q"], env) + \
        timed(NETLAB + ["down", name], env)


def mininet_once(n: int) -> float:
    mn = ["mn", "--topo", f"single,{n}", "--switch", "lxbr", "--controller", "none", "--test", "none"]
    return timed(["unshare", "--net", "--mount", "--", *mn])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,50,100", help="hosts on the one switch, comma-separated")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("mininet_ab: needs root: sudo .venv/bin/python benchmarks/mininet_ab.py", file=sys.stderr)
        return 2
    ensure_mininet()
    env = dict(os.environ, NETLAB_STATE_DIR=tempfile.mkdtemp(prefix="netlab-mn-"))
    atexit.register(shutil.rmtree, env["NETLAB_STATE_DIR"], True)  # its own scratch state root only
    print(f"{'N':>4} {'netlab s':>9} {'mininet s':>10} {'mininet/netlab':>15}")
    for n in [int(x) for x in args.sizes.split(",")]:
        ours, theirs = [], []
        for i in range(args.repeat):
            pair = [(ours, lambda n=n: netlab_once(n, env)), (theirs, lambda n=n: mininet_once(n))]
            for bucket, run in pair if i % 2 == 0 else pair[::-1]:
                bucket.append(run())
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"{n:>4} {a:>9.2f} {b:>10.2f} {b / a:>14.1f}x")
    print(f"(medians of {args.repeat}, whole processes, up + down; mininet in its own network namespace)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
