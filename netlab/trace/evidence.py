"""Kernel evidence for "why did the packet stop here": counters, route lookups, neighbours, plan diffs.

Counters only mean something as a difference, so :func:`snapshot` reads them in every namespace
on the path *before* the probe is sent, and :func:`collect` reads them again in the namespace
where the packet was last seen:

- ``/proc/net/snmp`` (IP ``InNoRoutes``/``OutNoRoutes``/``InAddrErrors``/``InDiscards``, ICMP
  and UDP ``NoPorts`` …) and ``/proc/net/dev`` (per-device ``rx/tx dropped`` and ``errors``: a
  VXLAN device whose FDB has no entry for the destination MAC counts ``tx_dropped``). These files
  show the namespace of the *reading thread*, so they are read inside
  :func:`netlab.kernel.netns.entered` through ``/proc/thread-self/net``;
- ``iptables-save -c`` in namespaces whose plan has iptables rules: a DROP or REJECT rule, or a
  chain policy, whose packet counter moved during the probe is named with its rule text.

Then the kernel's own routing answer (``ip route get <dst> from <src> iif <iface>``), the
neighbour entry of the next hop, and the plan-versus-kernel diff (:func:`netlab.kernel.verify`)
restricted to that namespace: a deleted FDB entry or route shows up there as "missing".
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field

from ..kernel import netns, procs
from ..plan import Netns, Plan, Ruleset, Veth

SNMP_KEYS = {
    "Ip": ("InHdrErrors", "InAddrErrors", "InUnknownProtos", "InDiscards", "OutDiscards", "OutNoRoutes",
           "InNoRoutes", "FragFails", "ForwDatagrams", "InDelivers"),
    "Icmp": ("InDestUnreachs", "OutDestUnreachs", "InEchos", "OutEchoReps", "OutTimeExcds", "InErrors", "OutErrors"),
    "Udp": ("NoPorts", "InErrors", "RcvbufErrors"),
    "Tcp": ("InErrs", "OutRsts", "AttemptFails"),
}
DEV_FIELDS = ("rx_bytes", "rx_packets", "rx_errs", "rx_drop", "rx_fifo", "rx_frame", "rx_compressed", "rx_multicast",
              "tx_bytes", "tx_packets", "tx_errs", "tx_drop", "tx_fifo", "tx_colls", "tx_carrier", "tx_compressed")
QUIET = {"ForwDatagrams", "InDelivers", "rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_multicast"}


@dataclass
class Counters:
    snmp: dict[str, int] = field(default_factory=dict)
    dev: dict[str, dict[str, int]] = field(default_factory=dict)
    iptables: dict[str, int] | None = None  # rule text -> packets


def _read_snmp(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    lines = text.splitlines()
    for head, vals in zip(lines[::2], lines[1::2], strict=False):
        proto, names = head.split(":", 1)
        _, values = vals.split(":", 1)
        for k, v in zip(names.split(), values.split(), strict=False):
            if k in SNMP_KEYS.get(proto, ()):
                try:
                    out[f"{proto}.{k}"] = int(v)
                except ValueError:
                    pass
    return out


def _read_dev(text: str) -> dict[str, dict[str, int]]:
    out = {}
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        vals = rest.split()
        if len(vals) >= 16:
            out[name.strip()] = dict(zip(DEV_FIELDS, map(int, vals[:16]), strict=False))
    return out


def _iptables_counters(text: str) -> dict[str, int]:
    """``iptables-save -c`` -> {"filter FORWARD policy DROP": n, "filter -A FORWARD … -j DROP": n}."""
    out: dict[str, int] = {}
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            m = re.match(r":(\S+) (\S+) \[(\d+):(\d+)\]", line)
            if m and m.group(2) != "-":
                out[f"{table} {m.group(1)} policy {m.group(2)}"] = int(m.group(3))
        elif line.startswith("["):
            m = re.match(r"\[(\d+):(\d+)\] (.*)", line)
            if m:
                out[f"{table} {m.group(3)}"] = int(m.group(1))
    return out


def _read_proc(ns: str) -> tuple[str, str]:
    with netns.entered(ns):
        with open("/proc/thread-self/net/snmp") as f:
            snmp = f.read()
        with open("/proc/thread-self/net/dev") as f:
            dev = f.read()
    return snmp, dev


class Pending:
    """A counter snapshot being taken: ``iptables-save`` runs in the background while the caller
    opens its sockets; :meth:`result` waits for it."""

    def __init__(self, plan: Plan, namespaces: list[str]) -> None:
        with_rules = {r.ns for r in plan.of(Ruleset)}
        # nsenter rather than a preexec_fn: without one, subprocess can vfork, which from a large
        # Python process is several times cheaper than fork.
        self.running = {ns: subprocess.Popen(["nsenter", f"--net={netns.path(ns)}", "iptables-save", "-c"],
                                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                        for ns in namespaces if ns in with_rules}
        self.namespaces = namespaces

    def result(self) -> dict[str, Counters]:
        out: dict[str, Counters] = {}
        for ns in self.namespaces:
            snmp, dev = _read_proc(ns)
            out[ns] = Counters(_read_snmp(snmp), _read_dev(dev))
        for ns, p in self.running.items():
            text, _ = p.communicate(timeout=10)
            out[ns].iptables = _iptables_counters(text)
        return out


def snapshot(plan: Plan, namespaces: list[str]) -> dict[str, Counters]:
    """Counters in each namespace; iptables only where the plan has rules (the others have none
    to count), all ``iptables-save`` runs started at once."""
    return Pending(plan, namespaces).result()


def counter_deltas(before: Counters, after: Counters) -> list[str]:
    """Human lines for every counter that moved (quiet ones, like forwarded datagrams, omitted)."""
    lines = []
    for k, v in after.snmp.items():
        d = v - before.snmp.get(k, 0)
        if d and k.split(".", 1)[1] not in QUIET:
            lines.append(f"{k} +{d}")
    for dev, vals in after.dev.items():
        for k, v in vals.items():
            d = v - before.dev.get(dev, {}).get(k, 0)
            if d and k not in QUIET:
                lines.append(f"{dev} {k} +{d}")
    if after.iptables is not None:
        for rule, v in after.iptables.items():
            d = v - (before.iptables or {}).get(rule, 0)
            if d and re.search(r"(-j (DROP|REJECT))|policy DROP", rule):
                lines.append(f"iptables {rule}: +{d} packets")
    return lines


def route_get(ns: str, dst: str, src: str | None = None, iif: str | None = None) -> str:
    """The kernel's route lookup in ``ns``, as ``ip route get`` prints it (or its error)."""
    argv = ["ip", "route", "get", dst]
    if iif and src:
        argv += ["from", src, "iif", iif]
    r = procs.run(ns, argv)
    if r.returncode != 0:
        # `iif` lookups also fail for sources the namespace would not accept (rp_filter, martians),
        # which is itself evidence; the plain lookup still says where the packet would go.
        # a blackhole or prohibit route makes `ip route get` fail with EINVAL; the table says which
        match = procs.run(ns, ["ip", "route", "show", "match", dst])
        matched = "; ".join(ln.strip() for ln in match.stdout.splitlines() if ln.strip()) or "no route"
        head = f"{' '.join(argv)}: {_one_line(r.stderr)}"
        if iif:
            plain = procs.run(ns, ["ip", "route", "get", dst])
            head += f"; ip route get {dst}: {_one_line(plain.stdout or plain.stderr)}"
        return f"{head}; ip route show match {dst}: {matched}"
    return f"{' '.join(argv)}: {_one_line(r.stdout or r.stderr)}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def link_mtu(ns: str, dev: str) -> int | None:
    r = procs.run(ns, ["ip", "-j", "link", "show", "dev", dev])
    try:
        return json.loads(r.stdout)[0]["mtu"]
    except (json.JSONDecodeError, IndexError, KeyError):
        return None


def neighbour(ns: str, addr: str, dev: str | None) -> str | None:
    argv = ["ip", "-j", "neigh", "show", "to", addr] + (["dev", dev] if dev else [])
    r = procs.run(ns, argv)
    try:
        entries = json.loads(r.stdout or "[]")
    except json.JSONDecodeError:
        return None
    if not entries:
        return f"no neighbour entry for {addr}" + (f" on {dev}" if dev else "") + " (the kernel must ARP for it)"
    e = entries[0]
    return (f"neighbour {addr} dev {e.get('dev', dev)} lladdr {e.get('lladdr', '-')} "
            f"state {','.join(e.get('state', []))}")


def plan_problems(plan: Plan, ns: str, state=None) -> list[str]:
    """The plan-vs-kernel diff for one namespace's objects (``netlab status``, narrowed), and the
    liveness of the namespace's daemons when the lab's state is known (a dead flannel-udp
    forwarder is why a packet written to flannel0 goes nowhere)."""
    from ..kernel.verify import verify

    objs = [o for o in plan.in_ns(ns)]
    names = {ns}
    for o in objs:
        if isinstance(o, Veth):
            names.update((o.a.ns, o.b.ns))
    sub = Plan(plan.lab, namespaces=[n for n in plan.namespaces if n.name in names], objects=objs)
    rep = verify(sub, state)
    out = [f"{f.what.splitlines()[0]}: {f.detail}" for f in rep.problems]
    out += [f"daemon {d['name']} (pid {d['pid']}) is not running" for d in rep.daemons
            if d["ns"] == ns and not d["alive"]]
    return out


def collect(plan: Plan, ns: Netns, before: Counters | None, iface: str | None, direction: str | None,
            src: str | None, dst: str | None, next_hop_dev: str | None = None, next_hop: str | None = None,
            state=None) -> list[str]:
    """Everything worth showing about namespace ``ns`` where the packet was last seen."""
    lines: list[str] = []
    if before is not None:
        after = snapshot(plan, [ns.name])[ns.name]
        deltas = counter_deltas(before, after)
        lines.extend(f"counter: {d}" for d in deltas)
        if not deltas:
            lines.append("counters: no drop or error counter moved in this namespace")
    if dst:
        lines.append(route_get(ns.name, dst, src, iface if direction == "in" else None))
    if next_hop:
        n = neighbour(ns.name, next_hop, next_hop_dev)
        if n:
            lines.append(n)
    try:
        problems = plan_problems(plan, ns.name, state)
    except Exception as e:  # verification is best effort here
        problems = [f"(could not compare with the plan: {e})"]
    if problems:
        lines.extend(p if p.startswith("daemon ") else f"kernel differs from the plan: {p}" for p in problems)
    else:
        lines.append(f"kernel matches the plan in {ns.host}")
    return lines
