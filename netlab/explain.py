"""The plan as the shell commands that build it: ``ip``, ``bridge``, ``sysctl``, ``iptables-restore``.

``netlab explain <lab>`` prints this script; run as root on a machine without the lab, it builds
the same lab (every command addresses a namespace with ``ip -n`` / ``ip netns exec``, so it too
leaves the root namespace alone). :func:`describe` is also how ``status`` and error messages name
an object, so a learner sees one vocabulary everywhere.
"""

from __future__ import annotations

import shlex

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


def commands(o) -> list[str]:
    if isinstance(o, Netns):
        return [f"ip netns add {o.name}", f"ip -n {o.name} link set lo up"]
    if isinstance(o, Bridge):
        return [(f"ip -n {o.ns} link add {o.name}{_opt('address', o.mac)}{_opt('mtu', o.mtu)}"
                 f"{_opt('txqueuelen', o.txqueuelen)} type bridge"),
                f"ip -n {o.ns} link set {o.name} up"]
    if isinstance(o, Veth):
        a, b = o.a, o.b
        first = (f"ip -n {a.ns} link add {a.name}{_opt('address', a.mac)}{_opt('mtu', a.mtu)}"
                 f"{_opt('txqueuelen', a.txqueuelen)} type veth "
                 f"peer name {b.name}{_opt('address', b.mac)}{_opt('mtu', b.mtu)}"
                 f"{_opt('txqueuelen', b.txqueuelen)} netns {b.ns}")
        return [first, *_end_settings(a), *_end_settings(b)]
    if isinstance(o, Vxlan):
        learn = "learning" if o.learning else "nolearning"
        return [f"ip -n {o.ns} link add {o.name}{_opt('address', o.mac)}{_opt('mtu', o.mtu)} type vxlan id {o.vni} "
                f"local {o.local} dev {o.dev} dstport {o.port} {learn}",
                f"ip -n {o.ns} link set {o.name} up"]
    if isinstance(o, Tun):
        return [f"ip -n {o.ns} tuntap add dev {o.name} mode tun", *([f"ip -n {o.ns} link set {o.name} mtu {o.mtu}"] if o.mtu else []),
                f"ip -n {o.ns} link set {o.name} up"]
    if isinstance(o, Ipip):
        if o.name == "tunl0":  # the fallback device: create it only where the kernel did not
            first = f"ip -n {o.ns} link show tunl0 >/dev/null 2>&1 || ip -n {o.ns} tunnel add tunl0 mode ipip"
        else:
            first = f"ip -n {o.ns} link add {o.name} type ipip{_opt('local', o.local)}{_opt('remote', o.remote)}"
        return [first, *([f"ip -n {o.ns} link set {o.name} mtu {o.mtu}"] if o.mtu else []),
                f"ip -n {o.ns} link set {o.name} up"]
    if isinstance(o, File):
        body = o.content if o.content.endswith("\n") else o.content + "\n"
        return [f"cat > \"{o.path}\" <<'NETLAB_EOF'\n{body}NETLAB_EOF"]
    if isinstance(o, Addr):
        return [f"ip -n {o.ns} addr add {o.cidr} dev {o.dev}"]
    if isinstance(o, Neigh):
        return [f"ip -n {o.ns} neigh replace {o.dst} lladdr {o.lladdr} dev {o.dev} nud {o.state}"]
    if isinstance(o, Fdb):
        return [f"bridge -n {o.ns} fdb append {o.lladdr} dev {o.dev} dst {o.dst} self permanent"]
    if isinstance(o, Route):
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
    if isinstance(o, Sysctl):
        line = f"ip netns exec {o.ns} sysctl -qw {o.key}={o.value}"
        return [line if o.required else f"{line} 2>/dev/null || true  # absent on this host: moot"]
    if isinstance(o, Ruleset):
        return [f"ip netns exec {o.ns} iptables-restore --noflush <<'EOF'\n{o.restore_text()}EOF"]
    if isinstance(o, Daemon):
        argv = " ".join(_quote_run(a) for a in o.argv)
        return [f"ip netns exec {o.ns} {argv} >{_quote_run(f'{{run}}/{o.ns}.{o.name}.log')} 2>&1 &"]
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
