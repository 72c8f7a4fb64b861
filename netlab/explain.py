"""The plan as the shell commands that build it: ``ip``, ``bridge``, ``sysctl``, ``iptables-restore``.

``netlab explain <lab>`` prints this script; run as root on a machine without the lab, it builds
the same lab (every command addresses a namespace with ``ip -n`` / ``ip netns exec``, so it too
leaves the root namespace alone). :func:`describe` is also how ``status`` and error messages name
an object, so a learner sees one vocabulary everywhere.
"""

from __future__ import annotations

import shlex
from typing import Any, Callable

from .plan import (Addr, Bridge, Daemon, Fdb, File, Ipip, Neigh, Netns, Plan, Route, Ruleset, Sysctl, Tun, Veth,
                   VethEnd, Vxlan)


def _opt(flag: str, value) -> str:
    return f" {flag} {value}" if value is not None else ""


def _end_settings(end: VethEnd) -> list[str]:
    out = []
    if end.master:
        out.append(f"ip -n {end.ns} link set {end.name} master {end.master}")
        if end.hairpin:
            out.append(f"bridge -n {end.ns} link set dev {end.name} hairpin on")
    out.append(f"ip -n {end.ns} link set {end.name} up")
    return out


def _quote_run(arg: str) -> str:
    """Shell-quote one argument but leave ``{run}`` outside the quotes, as ``"{run}"``, so that
    once :func:`script` turns it into ``"$run"`` the shell expands it (``'$run/x'`` would not)."""
    return '"{run}"'.join(shlex.quote(part) if part else "" for part in arg.split("{run}"))


def describe(o) -> str:
    """One command line (the first, for multi-line objects) that creates ``o``."""
    return commands(o)[0]


def _netns(o: Netns) -> list[str]:
    """A namespace, with its loopback up (the kernel creates lo down in a new namespace)."""
    return [f"ip netns add {o.name}", f"ip -n {o.name} link set lo up"]


def _bridge(o: Bridge) -> list[str]:
    """A bridge, created with its MAC, MTU and queue length, then set up."""
    return [(f"ip -n {o.ns} link add {o.name}{_opt('address', o.mac)}{_opt('mtu', o.mtu)}"
             f"{_opt('txqueuelen', o.txqueuelen)} type bridge"),
            f"ip -n {o.ns} link set {o.name} up"]


def _veth(o: Veth) -> list[str]:
    """A veth pair born with each end in its own namespace (never in the root one), then each
    end's bridge membership, hairpin and up."""
    a, b = o.a, o.b
    first = (f"ip -n {a.ns} link add {a.name}{_opt('address', a.mac)}{_opt('mtu', a.mtu)}"
             f"{_opt('txqueuelen', a.txqueuelen)} type veth "
             f"peer name {b.name}{_opt('address', b.mac)}{_opt('mtu', b.mtu)}"
             f"{_opt('txqueuelen', b.txqueuelen)} netns {b.ns}")
    return [first, *_end_settings(a), *_end_settings(b)]


def _vxlan(o: Vxlan) -> list[str]:
    """A VTEP: VNI, local underlay address and device, UDP port, and whether it learns remote
    MACs (Flannel and Calico program the FDB themselves: nolearning)."""
    learn = "learning" if o.learning else "nolearning"
    return [f"ip -n {o.ns} link add {o.name}{_opt('address', o.mac)}{_opt('mtu', o.mtu)} type vxlan id {o.vni} "
            f"local {o.local} dev {o.dev} dstport {o.port} {learn}",
            f"ip -n {o.ns} link set {o.name} up"]


def _mtu_and_up(ns: str, name: str, mtu: int | None) -> list[str]:
    """A tunnel device's MTU (when the plan sets one), then up."""
    return [*([f"ip -n {ns} link set {name} mtu {mtu}"] if mtu else []), f"ip -n {ns} link set {name} up"]


def _tun(o: Tun) -> list[str]:
    """A TUN device, for the daemon that will hold it (flannel's UDP forwarder)."""
    return [f"ip -n {o.ns} tuntap add dev {o.name} mode tun", *_mtu_and_up(o.ns, o.name, o.mtu)]


def _ipip(o: Ipip) -> list[str]:
    """An IPIP tunnel; ``tunl0`` is the kernel's fallback device, which loading ipip may already
    have created in the namespace, so it is added only where it is missing."""
    if o.name == "tunl0":
        first = f"ip -n {o.ns} link show tunl0 >/dev/null 2>&1 || ip -n {o.ns} tunnel add tunl0 mode ipip"
    else:
        first = f"ip -n {o.ns} link add {o.name} type ipip{_opt('local', o.local)}{_opt('remote', o.remote)}"
    return [first, *_mtu_and_up(o.ns, o.name, o.mtu)]


def _file(o: File) -> list[str]:
    """A daemon's config file, as a quoted here-document (nothing in it is expanded)."""
    body = o.content if o.content.endswith("\n") else o.content + "\n"
    return [f"cat > \"{o.path}\" <<'NETLAB_EOF'\n{body}NETLAB_EOF"]


def _addr(o: Addr) -> list[str]:
    return [f"ip -n {o.ns} addr add {o.cidr} dev {o.dev}"]


def _neigh(o: Neigh) -> list[str]:
    """A neighbour entry (permanent for a VTEP's remote MAC: no ARP across the overlay)."""
    return [f"ip -n {o.ns} neigh replace {o.dst} lladdr {o.lladdr} dev {o.dev} nud {o.state}"]


def _fdb(o: Fdb) -> list[str]:
    """A VTEP's FDB entry: the remote MAC is behind the underlay address ``dst``."""
    return [f"bridge -n {o.ns} fdb append {o.lladdr} dev {o.dev} dst {o.dst} self permanent"]


def _route(o: Route) -> list[str]:
    """A route in iproute2's words: type and destination, gateway, device, preferred source,
    scope, protocol (boot, the default, is left out) and onlink."""
    parts = [f"ip -n {o.ns} route add"]
    parts.append(o.dst if o.type == "unicast" else f"{o.type} {o.dst}")
    if o.via:
        parts.append(f"via {o.via}")
    if o.dev:
        parts.append(f"dev {o.dev}")
    if o.src:
        parts.append(f"src {o.src}")
    if o.scope:
        # iproute2 names RT_SCOPE_UNIVERSE "global"; it rejects "universe"
        parts.append(f"scope {'global' if o.scope == 'universe' else o.scope}")
    if o.proto != "boot":
        parts.append(f"proto {o.proto}")
    if o.onlink:
        parts.append("onlink")
    return [" ".join(parts)]


def _sysctl(o: Sysctl) -> list[str]:
    """A sysctl; an optional one (absent on some kernels) may fail without stopping the script."""
    line = f"ip netns exec {o.ns} sysctl -qw {o.key}={o.value}"
    return [line if o.required else f"{line} 2>/dev/null || true  # absent on this host: moot"]


def _ruleset(o: Ruleset) -> list[str]:
    """The namespace's iptables rules, added to what is there (--noflush)."""
    return [f"ip netns exec {o.ns} iptables-restore --noflush <<'EOF'\n{o.restore_text()}EOF"]


def _daemon(o: Daemon) -> list[str]:
    """A daemon started in its namespace in the background, its output in the run directory."""
    argv = " ".join(_quote_run(a) for a in o.argv)
    return [f"ip netns exec {o.ns} {argv} >{_quote_run(f'{{run}}/{o.ns}.{o.name}.log')} 2>&1 &"]


_COMMANDS: tuple[tuple[type, Callable[[Any], list[str]]], ...] = (
    (Netns, _netns), (Bridge, _bridge), (Veth, _veth), (Vxlan, _vxlan), (Tun, _tun), (Ipip, _ipip),
    (File, _file), (Addr, _addr), (Neigh, _neigh), (Fdb, _fdb), (Route, _route), (Sysctl, _sysctl),
    (Ruleset, _ruleset), (Daemon, _daemon),
)


def commands(o) -> list[str]:
    """The shell commands that create ``o``, one builder per kind of plan object."""
    for kind, build in _COMMANDS:
        if isinstance(o, kind):
            return build(o)
    raise TypeError(f"cannot describe {o!r}")


def script(plan: Plan, title: str = "") -> str:
    """The whole lab as a bash script, in the order :mod:`netlab.kernel.apply` uses."""
    out = ["#!/usr/bin/env bash",
           f"# {title or plan.lab}: generated by 'netlab explain' from the same plan 'netlab up' applies.",
           "# Run as root. Every command targets a lab namespace; nothing touches the root namespace.",
           "set -euo pipefail", ""]
    if any(isinstance(o, (Daemon, File)) for o in plan.objects):
        out.append('run=${NETLAB_RUN:-/run/netlab-explain/' + plan.lab + '}; mkdir -p "$run"')
        out.append("")
    out.append("# --- namespaces")
    for n in plan.namespaces:
        out.extend(commands(n))
    sections = [
        ("links", (Bridge, Veth, Vxlan, Tun, Ipip)), ("addresses", (Addr,)), ("sysctls", (Sysctl,)),
        ("permanent neighbours", (Neigh,)), ("fdb entries", (Fdb,)), ("routes", (Route,)),
        ("iptables", (Ruleset,)), ("files", (File,)), ("daemons", (Daemon,)),
    ]
    for title_, kinds in sections:
        objs = [o for k in kinds for o in plan.objects if isinstance(o, k)] if len(kinds) > 1 else plan.of(kinds[0])
        if not objs:
            continue
        out.append("")
        out.append(f"# --- {title_}")
        if kinds == (Bridge, Veth, Vxlan, Tun, Ipip):
            # creation first (bridges before their ports), then membership and up
            for o in objs:
                out.append(commands(o)[0])
            for o in objs:
                out.extend(commands(o)[1:])
            continue
        for o in objs:
            for line in commands(o):
                out.append(line.replace("{run}", "$run", 1 if isinstance(o, File) else -1)
                           if isinstance(o, (Daemon, File)) else line)
    out.append("")
    out.append("# teardown: " + "; ".join(f"ip netns del {n.name}" for n in plan.namespaces[:3]) +
               ("; …" if len(plan.namespaces) > 3 else ""))
    return "\n".join(out) + "\n"
