#!/usr/bin/env python3
"""BGP at scale: full mesh against a route reflector, for n = 5, 10, 20, 30 nodes, in one run.

    sudo .venv/bin/python benchmarks/bgp_scale.py [--sizes 5,10,20,30] [--json]

For each n it brings up ``calico`` (full mesh) and ``calico-rr`` (one reflector) with one pod per
node, measures the time from the start of ``up`` until every node's kernel holds a ``proto
bird`` route to every other node's block, then asks every BIRD (``birdc``, as ``netlab bgp``
does) how many sessions are established and how many routes it received, counts the BGP routes in
each node's kernel, and tears the lab down. host-gw's route count per node, for comparison, is
read from the host-gw lab's plan (it programs one route per other node; no daemon, no sessions).

The point is the curve: a mesh has n(n-1)/2 sessions and n-1 per node, a reflector n in total and
one per node, while every node ends up with the same n-1 remote blocks either way.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from ipaddress import IPv4Network
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netlab import api, model  # noqa: E402
from netlab.kernel.limits import HostLimitError  # noqa: E402
from netlab.cli.bgp import collect  # noqa: E402
from netlab.bgp import kernel_routes  # noqa: E402
from netlab.kernel.nl import NsLink  # noqa: E402
from netlab.plan import Addr, Route  # noqa: E402

LABS = (("mesh", "calico"), ("rr", "calico-rr"))


@dataclass
class Row:
    n: int
    kind: str  # mesh | rr
    up_s: float  # api.up() returned (namespaces, links, routes, rules, BIRDs started)
    converged_s: float  # every node has every remote block in its kernel, from the start of up
    sessions_total: int  # distinct established BGP sessions
    sessions_per_node_max: int
    sessions_on_rr: int  # 0 in a mesh
    bgp_routes_per_node: int  # received over BGP (max over nodes)
    kernel_bird_routes_per_node: int  # proto bird routes in the node's kernel (remote blocks + own blackhole)
    hostgw_routes_per_node: int
    refused: str = ""  # the host limit that refused this size (netlab's one line), else ""


def remote_blocks(pool: IPv4Network, n: int, i: int) -> set[str]:
    return {str(IPv4Network((int(pool.network_address) + j * 256, 26))) for j in range(1, n + 1) if j != i}


def hostgw_routes(n: int) -> int:
    """host-gw's routes per node, from its plan: one ``<subnet> via <node>`` per other node."""
    lab = model.load("host-gw", name="hg", overrides={"nodes": n, "pods": 1})
    p = api.build_plan(lab)
    node1 = p.host("node1").name
    nodes = {x.name for x in p.namespaces if x.role == "node"} - {node1}
    others = {a.cidr.split("/")[0] for a in p.of(Addr) if a.dev == "eth0" and a.ns in nodes}
    return sum(1 for r in p.of(Route) if r.ns == node1 and r.via in others)


def bird_routes(link: NsLink) -> set[str]:
    """The ``proto bird`` routes of a node's main table, read as ``up``'s readiness wait reads
    them (one dump, parsed with struct). pyroute2's decoding of 200 nodes × 200 routes took
    seconds per pass and was most of what this benchmark reported as convergence."""
    return {dst for dst, proto in kernel_routes(link) if proto == "bird"}


def measure(kind: str, lab_file: str, n: int, timeout: float = 120.0) -> Row:
    name = f"cab-{kind}{n}"
    t0 = time.monotonic()
    try:
        h = api.up(lab_file, name=name, nodes=n, pods=1, wait=None)  # this benchmark times convergence itself
    except HostLimitError as e:  # a size this host cannot hold is a row of the table, with the reason
        return Row(n, kind, 0, 0, 0, 0, 0, 0, 0, hostgw_routes(n), refused=e.what)
    up_s = time.monotonic() - t0
    try:
        nodes = [(i, h.ns(f"node{i}")) for i in range(1, n + 1)]
        sockets = {i: NsLink(ns) for i, ns in nodes}
        pool = h.lab.pod_cidr
        want = {i: remote_blocks(pool, n, i) for i, _ in nodes}
        pending = set(sockets)
        while pending:
            pending = {i for i in pending if not want[i] <= bird_routes(sockets[i])}
            if not pending:
                break
            if time.monotonic() - t0 > timeout:
                raise SystemExit(f"{name}: not converged after {timeout}s ({len(pending)} nodes missing blocks)")
            time.sleep(0.05)
        converged_s = time.monotonic() - t0
        kernel = max(len(bird_routes(s)) for s in sockets.values())
        for s in sockets.values():
            s.close()
        speakers = collect(h)
        node_sp = [s for s in speakers if s.host.startswith("node")]
        rr_sp = [s for s in speakers if s.host == "rr"]
        ends = sum(s.established for s in speakers)
        return Row(n, kind, round(up_s, 2), round(converged_s, 2), ends // 2,
                   max(s.established for s in node_sp), sum(s.established for s in rr_sp),
                   max(len(s.received) for s in node_sp), kernel, hostgw_routes(n))
    finally:
        h.down()


def _cell(r: Row, text) -> str:
    return "refused" if r.refused else text(r)


def table(rows: list[Row]) -> str:
    by = {(r.n, r.kind): r for r in rows}
    head = ("n", "mesh sessions", "per node", "rr sessions", "per node", "BGP routes/node (mesh / rr)",
            "kernel proto-bird routes/node (mesh / rr)", "host-gw routes/node", "converged s (mesh / rr)", "up s (mesh / rr)")
    lines = [head]
    for n in sorted({r.n for r in rows}):
        m, r = by[(n, "mesh")], by[(n, "rr")]
        lines.append((str(n), _cell(m, lambda x: f"{x.sessions_total} (n(n-1)/2={x.n * (x.n - 1) // 2})"),
                      _cell(m, lambda x: str(x.sessions_per_node_max)),
                      _cell(r, lambda x: f"{x.sessions_total} (RR {x.sessions_on_rr})"),
                      _cell(r, lambda x: str(x.sessions_per_node_max)),
                      f"{_cell(m, lambda x: str(x.bgp_routes_per_node))} / {_cell(r, lambda x: str(x.bgp_routes_per_node))}",
                      f"{_cell(m, lambda x: str(x.kernel_bird_routes_per_node))} / "
                      f"{_cell(r, lambda x: str(x.kernel_bird_routes_per_node))}",
                      str(m.hostgw_routes_per_node),
                      f"{_cell(m, lambda x: f'{x.converged_s:.2f}')} / {_cell(r, lambda x: f'{x.converged_s:.2f}')}",
                      f"{_cell(m, lambda x: f'{x.up_s:.2f}')} / {_cell(r, lambda x: f'{x.up_s:.2f}')}"))
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    out = []
    for k, row in enumerate(lines):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if k == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5,10,20,30", help="comma-separated node counts")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    rows = []
    for n in sizes:
        for kind, lab in LABS:
            print(f"  {lab} --nodes {n} …", file=sys.stderr, flush=True)
            rows.append(measure(kind, lab, n))
    print(table(rows))
    print("\nsessions: distinct established BGP sessions (birdc on every BIRD; each session has two ends)."
          "\nkernel proto-bird routes/node: n-1 remote blocks + the node's own blackhole."
          "\nconverged: from the start of `up` until every node's kernel has every remote block."
          "\nhost-gw routes/node: counted in the host-gw lab's plan (routes via another node), not brought up.")
    for r in rows:
        if r.refused:
            print(f"refused: {r.kind} at n={r.n}: {r.refused}")
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1))


if __name__ == "__main__":
    main()
