#!/usr/bin/env python3
"""The seed's growth curves, measured: per datapath and per n, what one node holds and what it costs.

    sudo .venv/bin/python benchmarks/scale.py [--nodes 2,5,10,20,50,100,200]
        [--labs host-gw,vxlan,flannel-udp,calico,calico-rr,calico-vxlan] [--plot scale.png] [--json]

For every lab and n it brings the lab up with one pod per node (random-suffix name), and reads
back from node1's kernel, independently of netlab's plan: routes in the main table (``ip -j
route``), neighbour entries (``ip -j neigh``), FDB entries with a remote destination (``bridge -j
fdb``), iptables rules (``iptables-save``); and, for the BIRD labs, the BGP sessions in the lab
(what the plan expects, checked Established through BIRD's control socket) and the time from the
end of ``up`` until every node routes every remote block. Then it tears the lab down.

What the seed argues with, and what the curves show:

- host-gw: one route per other node (n-1 per node), nothing else;
- flannel VXLAN: a route, a neighbour and an FDB entry per other node (3(n-1) per node);
- flannel UDP: one route for the whole cluster, the per-node map lives in the daemon;
- Calico full mesh: n(n-1)/2 BGP sessions (n-1 per node); a route reflector: n;

A size the host refuses (the neighbour table: a full mesh keeps every peer's ARP entry alive) is
in the table as ``refused`` with netlab's one-line reason, not silently skipped. ``--plot`` draws
entries per node and BGP sessions on log-log axes, with n and n(n-1)/2 as reference lines.
Timings are single runs on a shared machine: the counts are exact, the seconds are indicative.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LABS = ("host-gw", "vxlan", "flannel-udp", "calico", "calico-rr", "calico-vxlan")
SIZES = (2, 5, 10, 20, 50, 100, 200)
BIG = {"cidr": "172.16.0.0/20", "pod_cidr": "10.0.0.0/14"}  # room for any n the flannel labs take


@dataclass
class Row:
    lab: str
    n: int
    up_s: float | None = None
    converge_s: float | None = None
    routes: int | None = None
    neigh: int | None = None
    fdb: int | None = None
    rules: int | None = None
    sessions: int | None = None
    established: int | None = None
    refused: str | None = None
    extra: dict = field(default_factory=dict)


def _json(ns: str, *argv: str) -> list:
    r = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=60)
    return json.loads(r.stdout or "[]")


def readback(ns: str) -> dict[str, int]:
    """node1's tables, read with iproute2 and iptables-save (not from netlab's plan)."""
    routes = _json(ns, "ip", "-j", "route", "show", "table", "main")
    neigh = _json(ns, "ip", "-j", "-4", "neigh", "show")
    fdb = [e for e in _json(ns, "bridge", "-j", "fdb", "show") if e.get("dst")]
    save = subprocess.run(["ip", "netns", "exec", ns, "iptables-save"], capture_output=True, text=True, timeout=60)
    rules = sum(1 for line in save.stdout.splitlines() if line.startswith("-A "))
    return {"routes": len(routes), "neigh": len(neigh), "fdb": len(fdb), "rules": rules}


def bgp_figures(h, t_up_end: float) -> tuple[float | None, int, int]:
    """(seconds from the end of up until converged, sessions planned, session ends Established)."""
    from netlab import bgp

    exp = bgp.expected(h.plan)
    if not exp:
        return None, 0, 0
    done = None
    for r in bgp.converge(h):
        if r.done:
            done = time.monotonic() - t_up_end
            break
        if time.monotonic() - t_up_end > 120:
            break
    res = bgp.check(h.plan, h.state.dir, {})
    ends = sum(len(sp.sessions) for sp in exp)
    return done, ends // 2, sum(s["established"] for s in res.speakers)


def measure(lab: str, n: int) -> Row:
    from netlab import api
    from netlab.errors import NetlabError

    row = Row(lab, n)
    over = dict(BIG) if lab in ("host-gw", "vxlan", "flannel-udp") else {"cidr": BIG["cidr"]}
    name = f"sc{secrets.token_hex(3)}"
    t0 = time.monotonic()
    try:
        h = api.up(lab, name=name, nodes=n, pods=1, wait=None, **over)
    except NetlabError as e:
        row.refused = str(e).splitlines()[0]
        return row
    t1 = time.monotonic()
    row.up_s = round(t1 - t0, 2)
    try:
        row.converge_s, row.sessions, row.established = bgp_figures(h, t1)
        for k, v in readback(h.ns("node1")).items():
            setattr(row, k, v)
    finally:
        h.down()
    return row


def table(rows: list[Row]) -> str:
    head = f"{'lab':13} {'n':>4} {'up s':>6} {'conv s':>6} {'routes':>6} {'neigh':>6} {'fdb':>5} {'rules':>5} " \
           f"{'BGP sessions':>12}"
    out = [head, "-" * len(head)]
    for r in rows:
        if r.refused:
            out.append(f"{r.lab:13} {r.n:>4} refused: {r.refused[:70]}")
            continue
        conv = f"{r.converge_s:.2f}" if r.converge_s is not None else "-"
        sess = f"{r.established // 2 if r.established else 0}/{r.sessions}" if r.sessions else "-"
        out.append(f"{r.lab:13} {r.n:>4} {r.up_s:>6.2f} {conv:>6} {r.routes:>6} {r.neigh:>6} {r.fdb:>5} "
                   f"{r.rules:>5} {sess:>12}")
    out.append("per node (node1): main-table routes, IPv4 neighbours, FDB entries with a remote dst,")
    out.append("iptables rules; BGP: sessions Established/planned in the whole lab; conv: after up")
    return "\n".join(out)


def plot(rows: list[Row], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 5))
    ns = sorted({r.n for r in rows})
    for lab in dict.fromkeys(r.lab for r in rows):
        ok = [r for r in rows if r.lab == lab and not r.refused]
        if ok:
            a.plot([r.n for r in ok], [max(1, (r.routes or 0) + (r.neigh or 0) + (r.fdb or 0)) for r in ok],
                   marker="o", label=lab)
        bgp = [r for r in ok if r.sessions]
        if bgp:
            b.plot([r.n for r in bgp], [r.sessions for r in bgp], marker="o", label=lab)
    for ax in (a, b):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("nodes (n)")
        ax.plot(ns, ns, "k:", linewidth=1, label="n")
        ax.plot(ns, [max(1, n * (n - 1) / 2) for n in ns], "k--", linewidth=1, label="n(n-1)/2")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    a.set_title("kernel entries on one node (routes + neighbours + FDB)")
    b.set_title("BGP sessions in the lab")
    refused: dict[str, list[str]] = {}
    for r in rows:
        if r.refused:
            refused.setdefault(r.lab, []).append(str(r.n))
    said = "; ".join(f"{lab} n={','.join(v)}" for lab, v in refused.items()) or "none"
    fig.text(0.01, 0.01, f"{os.uname().nodename}, kernel {os.uname().release}, {time.strftime('%Y-%m-%d')}, one pod "
             f"per node, one run each. Refused by this host's limits (neighbour table): {said}", fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", default=",".join(map(str, SIZES)), help="sizes, comma-separated")
    ap.add_argument("--labs", default=",".join(LABS), help="labs, comma-separated")
    ap.add_argument("--plot", metavar="PNG", help="draw the curves to this file (needs matplotlib)")
    ap.add_argument("--json", action="store_true", help="the rows as JSON on stdout")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("scale.py: needs root (it builds labs): sudo .venv/bin/python benchmarks/scale.py", file=sys.stderr)
        return 2
    if "NETLAB_STATE_DIR" not in os.environ:
        os.environ["NETLAB_STATE_DIR"] = tempfile.mkdtemp(prefix="netlab-scale-")
        atexit.register(shutil.rmtree, os.environ["NETLAB_STATE_DIR"], True)  # its own scratch state root only
    rows = []
    for lab in args.labs.split(","):
        for n in [int(x) for x in args.nodes.split(",")]:
            rows.append(measure(lab, n))
            print(f"  {lab} n={n}: {'refused' if rows[-1].refused else f'up {rows[-1].up_s}s'}", file=sys.stderr)
    print(json.dumps([asdict(r) for r in rows], indent=1) if args.json else table(rows))
    if args.plot:
        plot(rows, args.plot)
        print(f"plot: {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
