#!/usr/bin/env python3
"""Bring-up and teardown time of the vxlan lab at N nodes x M pods, side by side with
(1) the same lab built by its own `netlab explain` script, and
(2) the raw floor: creating as many namespaces, each with a veth and an address, in-process.

    .venv/bin/python benchmarks/bringup.py --nodes 100 --pods 2 [--repeat 3]

Prints the figures and the ratios. Goals (issue 2): netlab <= 1.5x the raw floor, and at least
2x faster than the explain script. Run as root; every namespace is a random-suffix lab namespace.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netlab import api, model  # noqa: E402
from netlab.explain import script  # noqa: E402
from netlab.kernel import netns  # noqa: E402
from netlab.kernel.nl import Batch, NsLink  # noqa: E402
from netlab.kernel.nlmsg import IFLA_IFNAME, string  # noqa: E402


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def netlab_run(nodes: int, pods: int) -> tuple[float, float]:
    name = "bu" + secrets.token_hex(3)
    holder = {}
    t_up = timed(lambda: holder.setdefault("h", api.up("vxlan", name=name, nodes=nodes, pods=pods)))
    t_down = timed(lambda: holder["h"].down())
    return t_up, t_down


def explain_run(nodes: int, pods: int) -> tuple[float, float]:
    name = "be" + secrets.token_hex(3)
    plan = api.build_plan(model.load("vxlan", name=name, overrides={"nodes": nodes, "pods": pods}))
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(script(plan))
    try:
        t_up = timed(lambda: subprocess.run(["bash", f.name], check=True, stdout=subprocess.DEVNULL))
        down = "\n".join(f"ip netns del {n.name}" for n in plan.namespaces)
        t_down = timed(lambda: subprocess.run(["bash", "-c", down], check=True))
    finally:
        os.unlink(f.name)
        for n in plan.namespaces:
            if netns.exists(n.name):
                subprocess.run(["ip", "netns", "del", n.name], check=False)
    return t_up, t_down


def raw_floor(count: int) -> tuple[float, float]:
    """count namespaces, each with a veth (peer in the previous one) and one address, in-process."""
    prefix = "br" + secrets.token_hex(3)
    names = [f"{prefix}-{i}" for i in range(count)]

    def up() -> None:
        # the same encoder and socket handling netlab uses, with nothing else around them
        links = {}
        netns.ensure_run_dir()
        for i, n in enumerate(names):
            netns.create(n, init=lambda n=n: links.__setitem__(n, NsLink(n, enter=False)), prepare=False)
            if i:
                b = Batch(links[n])
                b.veth_new(None, string(IFLA_IFNAME, "eth0"), string(IFLA_IFNAME, f"p{i}"), names[i - 1])
                assert not b.send()
                b.addr(None, "eth0", f"10.{i >> 8}.{i & 255}.1/24")
                assert not b.send()
        for link in links.values():
            link.close()

    def down() -> None:
        for n in names:
            netns.delete(n)

    try:
        t_up = timed(up)
    finally:
        t_down = timed(down)
    return t_up, t_down


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--pods", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds to wait after each teardown: the kernel frees namespaces asynchronously, "
                         "under the rtnl lock, and the next measurement must not pay for the last one's cleanup")
    a = ap.parse_args()
    count = a.nodes * (1 + a.pods) + 2  # nodes, pods, the switch and the router
    results: dict[str, list[tuple[float, float]]] = {"netlab": [], "explain script": [], "raw floor": []}
    runs = [("raw floor", lambda: raw_floor(count)), ("netlab", lambda: netlab_run(a.nodes, a.pods)),
            ("explain script", lambda: explain_run(a.nodes, a.pods))]
    for r in range(a.repeat):  # interleaved, rotated, so drift hits all three alike
        for name, run in runs[r % 3:] + runs[:r % 3]:
            results[name].append(run())
            time.sleep(a.settle)
        print(f"round {r + 1}/{a.repeat} done", file=sys.stderr, flush=True)
    med = {k: (statistics.median(u for u, _ in v), statistics.median(d for _, d in v)) for k, v in results.items()}
    print(f"vxlan lab, {a.nodes} nodes x {a.pods} pods = {count} namespaces; median of {a.repeat} interleaved runs")
    print(f"{'':16} {'up (s)':>9} {'down (s)':>9}   all up times")
    for k, (u, d) in med.items():
        print(f"{k:16} {u:9.2f} {d:9.2f}   {' '.join(f'{x:.2f}' for x, _ in results[k])}")
    print(f"netlab up / raw floor up       = {med['netlab'][0] / med['raw floor'][0]:.2f}x  (goal <= 1.5x)")
    print(f"explain up / netlab up         = {med['explain script'][0] / med['netlab'][0]:.2f}x  (goal >= 2x)")
    print(f"explain down / netlab down     = {med['explain script'][1] / med['netlab'][1]:.2f}x")


if __name__ == "__main__":
    main()
