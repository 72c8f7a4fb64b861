"""The other half of verify: what the lab's namespaces hold that the plan does not have.

A lab can hold every planned object and still be broken by one more: an inserted ``-j DROP``, a
chain policy flipped to DROP, a hand-added blackhole route, a policy rule, a permanent neighbour
entry pointing at the wrong MAC, rp_filter switched on. None of these is a planned object, so
checking the plan's objects alone says "healthy". Here every namespace is read back as a whole
and each object that the plan does not account for is a finding of kind ``unplanned``, named by
the command that restores the plan (``ip -n … route del …``).

What the kernel makes by itself is not reported: ``lo`` and the fallback tunnel devices a
module creates in every namespace (``tunl0`` …), the connected routes of planned addresses and
the local table's own routes, the three default policy rules, dynamic neighbour entries, and
the routes BIRD installs where the plan runs BIRD (those are checked against the BGP
expectations instead, :mod:`netlab.bgp`). Sysctls the plan does not set must keep the value a
fresh namespace starts with on this kernel, read once from a throwaway namespace
(``unshare --net``) so the comparison is this machine's own default, not an assumption.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass, field
from ipaddress import IPv4Interface
from pathlib import Path
from typing import Any

from ..plan import Addr, Daemon, Fdb, File, Neigh, Plan, Route, Ruleset, Sysctl
from ..spec import ends_of
from ..state import State
from . import netns
from .readback import RT_TABLE_LOCAL, RT_TABLE_MAIN, Snapshot, sysctl_from_netconf

#: Devices a kernel module creates in every new namespace once it is loaded (name -> kind).
FALLBACK_DEVICES = {"tunl0": "ipip", "gre0": "gre", "gretap0": "gretap", "erspan0": "erspan", "ip_vti0": "vti",
                    "sit0": "sit", "ip6tnl0": "ip6tnl", "ip6_vti0": "vti6", "ip6gre0": "ip6gre"}
#: The policy rules every namespace starts with: (priority, table) for local, main and default.
DEFAULT_RULES = {(0, RT_TABLE_LOCAL), (32766, RT_TABLE_MAIN), (32767, 253)}
#: Sysctls that decide forwarding and reverse-path filtering, checked even when not planned.
GLOBAL_SYSCTLS = ("net/ipv4/ip_forward", "net/ipv4/conf/all/rp_filter", "net/ipv4/conf/default/rp_filter",
                  "net/bridge/bridge-nf-call-iptables")
IFACE_SYSCTLS = ("rp_filter", "proxy_arp", "forwarding")
BUILTIN_CHAINS = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}


def findings(plan: Plan, snaps: dict[str, Snapshot], saves: Any, state: State | None) -> list:
    """One ``unplanned`` finding per object in a lab namespace that the plan does not account
    for, and one ``different`` finding per watched sysctl or chain policy the plan does not set
    that has left its default."""
    from .verify import Finding

    out: list[Finding] = []
    planned = _by_namespace(plan)
    defaults = default_qdiscs()
    for ns, snap in snaps.items():
        mine = planned[ns]
        for what, detail in (_links(snap, mine) + _addresses(snap, mine) + _routes(ns, snap, mine)
                             + _rules(ns, snap) + _neighbours(ns, snap, mine) + _fdb(ns, snap, mine)
                             + _iptables(ns, saves[ns], mine) + _qdiscs(snap, defaults)):
            out.append(Finding(ns, what.replace("{ns}", ns), False, detail, "unplanned"))
        for what, detail in _sysctls(ns, snap, mine):
            out.append(Finding(ns, what, False, detail, "different"))
    return out


@dataclass
class _Planned:
    """What the plan puts in one namespace, as sets the kernel's rows are looked up in."""

    links: set[str] = field(default_factory=set)
    addrs: set[tuple[str, str]] = field(default_factory=set)
    nets: set[tuple[str, str]] = field(default_factory=set)
    routes: set[str] = field(default_factory=set)
    neighs: set[tuple[str, str]] = field(default_factory=set)
    fdb: set[tuple[str, str, str]] = field(default_factory=set)
    sysctls: dict[str, str] = field(default_factory=dict)
    rulesets: list[Ruleset] = field(default_factory=list)
    bird: bool = False


def _by_namespace(plan: Plan) -> dict[str, _Planned]:
    """One pass over the plan (a 150-node lab has 70,000 objects), each object into the sets of
    the namespace(s) it lives in."""
    out: dict[str, _Planned] = {n.name: _Planned() for n in plan.namespaces}
    for o in plan.objects:
        if isinstance(o, File):
            continue
        if o.SPEC.phase == "links":
            for e in ends_of(o):
                out[e.ns].links.add(e.name)
            continue
        m = out[o.ns]
        if isinstance(o, Addr):
            m.addrs.add((o.dev, o.cidr))
            m.nets.add((o.dev, str(IPv4Interface(o.cidr).network)))
        elif isinstance(o, Route):
            m.routes.add(o.dst)
        elif isinstance(o, Neigh):
            m.neighs.add((o.dev, o.dst))
        elif isinstance(o, Fdb):
            m.fdb.add((o.dev, o.lladdr, o.dst))
        elif isinstance(o, Sysctl):
            m.sysctls[o.key] = o.value
        elif isinstance(o, Ruleset):
            m.rulesets.append(o)
        elif isinstance(o, Daemon):
            m.bird = m.bird or o.name == "bird"
    return out


def _links(snap: Snapshot, mine: _Planned) -> list[tuple[str, str]]:
    out = []
    for name, info in snap.links.items():
        if name == "lo" or name in mine.links or FALLBACK_DEVICES.get(name) == info["kind"]:
            continue
        out.append((f"ip -n {{ns}} link del {name}", f"unplanned: a {info['kind'] or 'link'} the plan does not have"))
    return out


def _addresses(snap: Snapshot, mine: _Planned) -> list[tuple[str, str]]:
    return [(f"ip -n {{ns}} addr del {r['cidr']} dev {r['dev']}", "unplanned address")
            for r in snap.entries.get("addresses", [])
            if (r["dev"], r["cidr"]) not in mine.addrs and not (r["dev"] == "lo" and r["cidr"] == "127.0.0.1/8")]


def _route_accounted(r: dict, mine: _Planned) -> bool:
    """A route the plan accounts for: planned (its destination; a planned route that differs is
    reported by the planned check), the kernel's own (connected routes of addresses, the local
    table), or, where the plan runs BIRD, one BIRD installed (checked against BGP instead)."""
    if r["table"] == RT_TABLE_LOCAL:
        return r["proto"] == "kernel"
    if r["table"] != RT_TABLE_MAIN:
        return False
    if r["dst"] in mine.routes:
        return True
    if r["proto"] == "kernel" and (r["dev"], r["dst"]) in mine.nets:
        return True  # the connected route of a planned address
    return mine.bird and r["proto"] == "bird"


def _route_cmd(r: dict) -> str:
    parts = ["ip -n {ns} route del", r["dst"] if r["type"] == "unicast" else f"{r['type']} {r['dst']}"]
    if r["via"]:
        parts.append(f"via {r['via']}")
    if r["dev"]:
        parts.append(f"dev {r['dev']}")
    if r["table"] != RT_TABLE_MAIN:
        parts.append(f"table {'local' if r['table'] == RT_TABLE_LOCAL else r['table']}")
    return " ".join(parts)


def _routes(ns: str, snap: Snapshot, mine: _Planned) -> list[tuple[str, str]]:
    return [(_route_cmd(r), f"unplanned route (proto {r['proto']})") for r in snap.all_routes
            if not _route_accounted(r, mine)]


def _rules(ns: str, snap: Snapshot) -> list[tuple[str, str]]:
    return [(f"ip -n {{ns}} rule del priority {r['priority']}", f"unplanned policy rule (lookup table {r['table']})")
            for r in snap.rules if (r["priority"], r["table"]) not in DEFAULT_RULES]


def _neighbours(ns: str, snap: Snapshot, mine: _Planned) -> list[tuple[str, str]]:
    """Permanent entries only: dynamic ones come and go with traffic, as ARP makes them."""
    return [(f"ip -n {{ns}} neigh del {r['dst']} dev {r['dev']}", f"unplanned permanent neighbour ({r['lladdr']})")
            for r in snap.entries.get("neighbours", [])
            if r["state"] == "permanent" and (r["dev"], r["dst"]) not in mine.neighs]


def _fdb(ns: str, snap: Snapshot, mine: _Planned) -> list[tuple[str, str]]:
    out = [(f"bridge -n {{ns}} fdb del {r['lladdr']} dev {r['dev']} dst {r['dst']} self",
            "unplanned permanent FDB entry") for r in snap.entries.get("fdb", [])
           if (r["dev"], r["lladdr"], r["dst"]) not in mine.fdb]
    return out + [(f"bridge -n {{ns}} fdb del {r['lladdr']} dev {r['dev']} master", "unplanned static FDB entry")
                  for r in snap.static_fdb]


def default_qdiscs() -> set[str]:
    """The root qdiscs a device gets by itself, as the kernel picks them: ``noqueue`` on a device
    without a transmit queue (veth, bridge, vxlan), ``mq`` on a multiqueue one, and otherwise
    net.core.default_qdisc (a TUN device: pfifo_fast unless the host set fq_codel, say), a
    sysctl of the root namespace only, read, never written. No plan sets a qdisc, so any other
    root (netem delaying or dropping, tbf or htb shaping, even a pfifo put in netem's place) or
    an ingress hook for tc filters was put there behind netlab's back."""
    try:
        default = Path("/proc/sys/net/core/default_qdisc").read_text().strip()
    except OSError:
        default = "pfifo_fast"  # the kernel's own default
    return {"noqueue", "mq", default}


def _qdiscs(snap: Snapshot, defaults: set[str]) -> list[tuple[str, str]]:
    out = []
    for q in snap.qdiscs:
        if q["parent"] == "root" and q["kind"] in defaults:
            continue
        if q["parent"] not in ("root", "ingress"):
            continue  # a child of an unplanned root (or of mq): deleting the root removes it too
        cmd = f"tc -n {{ns}} qdisc del dev {q['dev']} {'ingress' if q['parent'] == 'ingress' else 'root'}"
        out.append((cmd, f"unplanned {q['kind']} qdisc on {q['dev']} ({q['parent']})"))
    return out


def _iptables(ns: str, tables: dict[str, list[str]], mine: _Planned) -> list[tuple[str, str]]:
    """Rules, user chains and built-in chain policies that no planned ruleset has."""
    rules = {(r.table, f"-A {r.chain} {r.spec}") for rs in mine.rulesets for r in rs.rules}
    chains = {(t, c) for rs in mine.rulesets for t, c in rs.chains}
    policies = {(t, c) for rs in mine.rulesets for t, c, _ in rs.policies}
    out = []
    for table, lines in tables.items():
        for line in lines:
            if line.startswith("-A ") and (table, line) not in rules:
                chain, _, spec = line[3:].partition(" ")
                out.append((f"ip netns exec {{ns}} iptables -t {table} -D {chain} {spec}", "unplanned iptables rule"))
            elif line.startswith(":"):
                chain, policy = line[1:].split()[:2]
                if chain in BUILTIN_CHAINS and policy != "ACCEPT" and (table, chain) not in policies:
                    out.append((f"ip netns exec {{ns}} iptables -t {table} -P {chain} ACCEPT",
                                f"unplanned policy {policy} on {table} {chain}"))
                elif chain not in BUILTIN_CHAINS and (table, chain) not in chains:
                    out.append((f"ip netns exec {{ns}} iptables -t {table} -X {chain}", "unplanned iptables chain"))
    return out


@functools.lru_cache(maxsize=1)
def fresh_defaults() -> dict[str, str]:
    """The watched sysctls as a brand-new namespace has them on this kernel: read in a throwaway
    namespace (``unshare --net``), which no one else can see and which is gone when ``cat`` ends."""
    keys = GLOBAL_SYSCTLS + tuple(f"net/ipv4/conf/default/{k}" for k in IFACE_SYSCTLS if k != "forwarding")
    keys = tuple(dict.fromkeys(keys))
    script = "; ".join(f"echo {k}=$(cat /proc/sys/{k} 2>/dev/null)" for k in keys)
    out = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, timeout=10)
    values = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    return {k: v for k, v in values.items() if v} if out.returncode == 0 else {}


def _expected(key: str, mine: _Planned, fresh: dict[str, str]) -> str | None:
    """What an unplanned sysctl should be: the plan's value, else a fresh namespace's (an
    interface takes conf/default's value when it is created; the plan's links come first)."""
    if key in mine.sysctls:
        return None  # planned: the planned check covers it
    if key.startswith("net/ipv4/conf/") and key.split("/")[3] not in ("all", "default"):
        if key.endswith("/forwarding"):
            # writing ip_forward sets every interface's forwarding too (inet_forward_change), so an
            # interface forwards exactly when its namespace does
            return mine.sysctls.get("net/ipv4/ip_forward") or fresh.get("net/ipv4/ip_forward")
        return fresh.get(f"net/ipv4/conf/default/{key.rsplit('/', 1)[1]}")
    return fresh.get(key)


def _sysctls(ns: str, snap: Snapshot, mine: _Planned) -> list[tuple[str, str]]:
    fresh = fresh_defaults()
    keys = list(GLOBAL_SYSCTLS) + [f"net/ipv4/conf/{dev}/{k}" for dev in sorted(mine.links) for k in IFACE_SYSCTLS]
    want = {k: v for k in keys if (v := _expected(k, mine, fresh)) is not None}
    have = {k: sysctl_from_netconf(snap, k) for k in want}
    slow = [k for k, v in have.items() if v is None]
    if slow:
        have.update(_read_all(ns, slow))
    return [(f"ip netns exec {ns} sysctl -qw {k}={v}", f"is {have[k]} (want {v}: not in the plan, a fresh namespace's value)")
            for k, v in want.items() if have.get(k) is not None and have[k] != v]


def _read_all(ns: str, keys: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    with netns.entered(ns):
        for k in keys:
            try:
                with open(f"/proc/sys/{k}") as f:
                    out[k] = f.read().strip()
            except OSError:
                out[k] = None
    return out
