"""The plan as the shell commands that build it: ``ip``, ``bridge``, ``sysctl``, ``iptables-restore``.

``netlab explain <lab>`` prints this script; run as root on a machine without the lab, it builds
the same lab (every command addresses a namespace with ``ip -n`` / ``ip netns exec``, so it too
leaves the root namespace alone). :func:`describe` is also how ``status`` and error messages name
an object, so a learner sees one vocabulary everywhere.
"""

from __future__ import annotations

import shlex
from typing import Any, Callable

from .plan import Daemon, File, Ipip, Netns, Plan, Ruleset, Sysctl, Tun, Veth
from .spec import KINDS, Kind, ends_of, spec_of


def _words(spec: Kind, obj: Any, where: str) -> str:
    """The declared fields of ``obj`` held in ``where``, as iproute2 words, in declaration order."""
    words = [f.words(getattr(obj, f.name)) for f in spec.fields if f.where == where]
    return "".join(f" {w}" for w in words if w)


def _end_settings(spec: Kind, end: Any) -> list[str]:
    """What follows creation for one end: its master (a veth peer joins after birth), its
    bridge-port flags (hairpin), and up."""
    out = []
    master = getattr(end, "master", None)
    if master:
        out.append(f"ip -n {end.ns} link set {end.name} master {master}")
    port = _words(spec, end, "brport")
    if port:
        out.append(f"bridge -n {end.ns} link set dev {end.name}{port}")
    out.append(f"ip -n {end.ns} link set {end.name} up")
    return out


def _quote_run(arg: str) -> str:
    """Shell-quote one argument but leave ``{run}`` outside the quotes, as ``"{run}"``, so that
    once :func:`script` turns it into ``"$run"`` the shell expands it (``'$run/x'`` would not)."""
    return '"{run}"'.join(shlex.quote(part) if part else "" for part in arg.split("{run}"))


def describe(o) -> str:
    """One command line (the first, for multi-line objects) that creates ``o``. A here-document
    (a ruleset, a daemon's config) is named by its first line and what it holds, so ``status``
    stays one line per problem; ``explain`` prints the whole of it."""
    first = commands(o)[0]
    if "\n" not in first:
        return first
    head, _, body = first.partition("\n")
    return f"{head} … ({len(body.splitlines()) - 1} lines)"


def _netns(o: Netns) -> list[str]:
    """A namespace, with its loopback up (the kernel creates lo down in a new namespace)."""
    return [f"ip netns add {o.name}", f"ip -n {o.name} link set lo up"]


def _link(o: Any) -> list[str]:
    """``ip link add NAME <address, mtu, txqueuelen> type KIND <the kind's own fields>``, then
    each end's settings: the generic form, from the kind's declaration."""
    spec = spec_of(o)
    create = f"ip -n {o.ns} link add {o.name}{_words(spec, o, 'link')} type {spec.link}{_words(spec, o, 'data')}"
    return [create, *_end_settings(spec, o)]


def _veth(o: Veth) -> list[str]:
    """A veth pair born with each end in its own namespace (never in the root one), then each
    end's bridge membership, hairpin and up."""
    spec = spec_of(o)
    a, b = o.a, o.b
    first = (f"ip -n {a.ns} link add {a.name}{_words(spec, a, 'link')} type veth "
             f"peer name {b.name}{_words(spec, b, 'link')} netns {b.ns}")
    return [first, *_end_settings(spec, a), *_end_settings(spec, b)]


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
        first = f"ip -n {o.ns} link add {o.name} type ipip{_words(spec_of(o), o, 'data')}"
    return [first, *_mtu_and_up(o.ns, o.name, o.mtu)]


#: Link kinds whose shell form is not the generic ``ip link add … type KIND …``.
_LINKS: dict[str, Callable[[Any], list[str]]] = {"veth": _veth, "tun": _tun, "ipip": _ipip}


def _entry(o: Any) -> list[str]:
    """An address, neighbour, FDB entry or route: the kind's command, then its fields' words."""
    spec = spec_of(o)
    tail = f" {spec.tail}" if spec.tail else ""
    return [spec.cmd.format(ns=o.ns) + _words(spec, o, "link") + tail]


def _file(o: File) -> list[str]:
    """A daemon's config file, as a quoted here-document (nothing in it is expanded)."""
    body = o.content if o.content.endswith("\n") else o.content + "\n"
    return [f"cat > \"{o.path}\" <<'NETLAB_EOF'\n{body}NETLAB_EOF"]


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


_SPECIAL: dict[type, Callable[[Any], list[str]]] = {
    Netns: _netns, File: _file, Sysctl: _sysctl, Ruleset: _ruleset, Daemon: _daemon,
}


def commands(o: Any) -> list[str]:
    """The shell commands that create ``o``: a link from its kind's declaration (or its special
    form), an entry from its command and fields, anything else by its own builder."""
    if type(o) in _SPECIAL:
        return _SPECIAL[type(o)](o)
    spec = KINDS.get(type(o))
    if spec is None:
        raise TypeError(f"cannot describe {o!r}")
    if spec.link:
        return _LINKS.get(spec.link, _link)(o)
    return _entry(o)


def undo(o: Any) -> list[str]:
    """The commands that remove ``o`` from the kernel again: ``ip link del`` for a link (a veth's
    peer goes with it), the kind's ``undo`` with its key fields for an entry."""
    spec = spec_of(o)
    if spec.link:
        end = ends_of(o)[0]
        return [f"ip -n {end.ns} link del {end.name}"]
    if not spec.undo:
        raise TypeError(f"no way to remove a {type(o).__name__} by itself")
    keys = "".join(f" {w}" for f in spec.fields if f.key and (w := f.words(getattr(o, f.name))))
    return [spec.undo.format(ns=o.ns, keys=keys)]


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
    for phase, objs in plan.phased():
        out.append("")
        out.append(f"# --- {phase.title}")
        if phase.name == "links":
            # creation first, round by round (bridges before their ports), then membership and up
            lines = [commands(o) for o in objs]
            out.extend(cmds[0] for cmds in lines)
            out.extend(line for cmds in lines for line in cmds[1:])
            continue
        for o in objs:
            for line in commands(o):
                out.append(line.replace("{run}", "$run", 1 if isinstance(o, File) else -1)
                           if isinstance(o, (Daemon, File)) else line)
    out.append("")
    out.append("# teardown: " + "; ".join(f"ip netns del {n.name}" for n in plan.namespaces[:3]) +
               ("; …" if len(plan.namespaces) > 3 else ""))
    return "\n".join(out) + "\n"
