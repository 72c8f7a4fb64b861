"""``netlab status [<lab>] [--json]``: topology, addresses, and the plan-vs-kernel diff.

Healthy means usable, not merely built: besides every planned kernel object, each daemon must be
running (a stopped one, SIGSTOP, is a problem), a BGP lab must have every session Established and
every remote block routed, and the kernel's shared neighbour table must not have overflowed since
the lab came up. Any problem makes the exit code 1; ``--json`` carries all of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import api, state
from ..errors import NetlabError
from ..exercises.run import blind, refuse_if_blind
from ..kernel.probe import require_root
from ..plan import Addr, Daemon
from ..spec import ends_of, spec_of
from .common import complete_instance


#: Above this many hosts the table would scroll past the verdict: print the counts instead.
MAX_HOST_ROWS = 40


@click.command("status")
@click.argument("lab", required=False, shell_complete=complete_instance)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
def command(lab: str | None, as_json: bool) -> None:
    """Show LAB's topology and health (every planned object checked in the kernel), or list the labs that are up."""
    require_root()
    names = [lab] if lab is not None else [s.lab for s in state.all_labs()]
    results: list[dict[str, Any]] = []
    for name in names:
        if lab is not None:
            refuse_if_blind(name)
        elif blind(name):
            results.append({"lab": name, "datapath": "?", "ok": True, "blind": True, "checked": 0, "problems": [],
                            "missing_namespaces": [], "daemons": [], "hosts": [], "bgp": [], "neighbour_table": None,
                            "error": "an exercise in blind mode: not checked"})
            continue
        try:
            h = api.attach(name)
        except NetlabError as e:
            if lab is not None:
                raise
            # one lab whose plan cannot be rebuilt (its lab file changed or vanished) must not
            # hide the others: report it and go on
            results.append({"lab": name, "datapath": "?", "ok": False, "error": str(e), "checked": 0,
                            "problems": [], "missing_namespaces": [], "daemons": [], "hosts": [], "bgp": [],
                            "neighbour_table": None})
            continue
        rep = h.verify()
        addrs: dict[str, list[str]] = {}
        for a in h.plan.of(Addr):  # one pass: a 150-node lab has 450 hosts and 900 addresses
            addrs.setdefault(a.ns, []).append(a.cidr)
        hosts = [{"host": n.host, "ns": n.name, "role": n.role, "addresses": addrs.get(n.name, [])}
                 for n in h.plan.namespaces]
        results.append({"lab": name, "datapath": h.lab.datapath, "complete": h.state.complete,
                        "labfile": h.state.labfile, "overrides": h.state.overrides,
                        "hosts": hosts, **_topology(h), **rep.as_dict()})
        _add_stats(h, results[-1]["daemons"])
    if as_json:
        click.echo(json.dumps(results if lab is None else results[0], indent=2))
        if any(not r["ok"] for r in results):
            raise SystemExit(1)
        return
    out = Console()
    if not results:
        out.print("no labs are up")
    for r in results:
        _print(out, r, detailed=lab is not None)
    if any(not r["ok"] for r in results):
        raise SystemExit(1)


def _print(out: Console, r: dict, detailed: bool) -> None:
    """One lab's verdict, its hosts (``detailed``), its problems, daemons and BGP."""
    if r.get("error"):
        out.print(f"[bold]{r['lab']}[/bold]: [red]cannot check[/red]: {r['error']}", highlight=False)
        return
    verdict = "[green]healthy[/green]" if r["ok"] else f"[red]{len(r['problems'])} problems[/red]"
    out.print(f"[bold]{r['lab']}[/bold] ({r['datapath']}): {verdict}, {r['checked']} kernel objects checked")
    # the problems first: they are what someone running status is looking for
    for ns in r["missing_namespaces"]:
        out.print(f"  [red]missing namespace[/red] {ns}")
    for p in r["problems"]:
        kind = f"[{p.get('kind') or 'problem'}] " if p.get("kind") else ""
        out.print(f"  [red]{escape(kind)}{escape(p['detail'])}[/red]: {escape(p['what'])}", highlight=False)
    if detailed and len(r["hosts"]) > MAX_HOST_ROWS:
        roles: dict[str, int] = {}
        for hst in r["hosts"]:
            roles[hst["role"]] = roles.get(hst["role"], 0) + 1
        counts = ", ".join(f"{n} {role}{'' if n == 1 else 's'}" for role, n in roles.items())
        out.print(f"  {len(r['hosts'])} hosts ({counts}); every host and address: netlab status {r['lab']} --json",
                  highlight=False)
    elif detailed:
        t = Table(box=None)
        for col in ("host", "namespace", "role", "addresses"):
            t.add_column(col)
        for hst in r["hosts"]:
            t.add_row(hst["host"], hst["ns"], hst["role"], " ".join(hst["addresses"]))
        out.print(t)
    for d in r["daemons"]:
        out.print(f"  daemon {d['name']} in {d['ns']}: pid {d['pid']} {_mark(d)}  (log {d['log']})")
        if d.get("stats"):
            out.print("    " + " ".join(f"{k}={v}" for k, v in d["stats"].items()), highlight=False)
    if r["bgp"]:
        out.print("  " + _bgp_line(r["bgp"]), highlight=False)


def _topology(h: api.LabHandle) -> dict:
    """Enough to draw the lab from ``status --json``: every planned interface (namespace, name,
    kind, MTU, master, addresses) and every link between two namespaces (a veth pair's ends)."""
    addrs: dict[tuple[str, str], list[str]] = {}
    for a in h.plan.of(Addr):
        addrs.setdefault((a.ns, a.dev), []).append(a.cidr)
    interfaces, links = [], []
    for o in h.plan.links():
        spec = spec_of(o)
        ends = ends_of(o)
        for end in ends:
            interfaces.append({"ns": end.ns, "name": end.name, "kind": spec.link, "mtu": getattr(end, "mtu", None),
                               "master": getattr(end, "master", None), "addresses": addrs.get((end.ns, end.name), [])})
        if len(ends) == 2:
            links.append({"kind": spec.link, "a": {"ns": ends[0].ns, "name": ends[0].name},
                          "b": {"ns": ends[1].ns, "name": ends[1].name}})
    return {"interfaces": interfaces, "links": links}


def _mark(d: dict) -> str:
    state = d.get("state") or ("running" if d["alive"] else "dead")
    if state == "running":
        return "[green]alive[/green]"
    return "[red]stopped[/red] (SIGSTOP: it holds its sockets but answers nothing)" if state == "stopped" \
        else f"[red]{state}[/red]"


def _bgp_line(speakers: list[dict]) -> str:
    """One line for the lab's BGP: sessions Established and remote blocks received, over all BIRDs."""
    ends = sum(s["sessions"] for s in speakers)
    up = sum(s["established"] for s in speakers)
    want = sum(s["blocks_expected"] for s in speakers)
    got = sum(s["blocks_received"] for s in speakers)
    ok = up == ends and got == want and all(s["running"] and not s["problems"] for s in speakers)
    color = "green" if ok else "red"
    return (f"BGP: [{color}]{up}/{ends} session ends Established, {got}/{want} remote blocks received[/{color}] "
            f"over {len(speakers)} BIRDs (netlab bgp shows each)")


def _add_stats(h: api.LabHandle, daemons: list[dict]) -> None:
    """Attach each daemon's counters (the flat JSON object at its plan's ``stats`` path, if any)."""
    declared = {(d.ns, d.name): d.stats for d in h.plan.of(Daemon) if d.stats}
    for d in daemons:
        path = declared.get((d["ns"], d["name"]))
        if path:
            try:
                raw = json.loads(Path(h.state.expand(path)).read_text())
            except (OSError, ValueError):
                raw = None
            d["stats"] = {k: v for k, v in raw.items() if isinstance(v, (int, float, str))} if isinstance(raw, dict) else None
