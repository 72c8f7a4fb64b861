"""The lab as a picture: namespaces grouped by node, their links, addresses and MTUs, from the plan.

``netlab graph`` draws what the plan builds, so the picture is the datapath, not a drawing of it:

- each namespace is a box (a Graphviz cluster) holding its interfaces; a node's pods sit inside
  the node's group, the underlay (switches, router) beside the nodes;
- an interface shows its name, addresses and MTU; a bridge is a box its ports connect to;
- a veth pair is a solid edge between its two ends (each in its own namespace); a VXLAN device
  is tied to the underlay device it sends through (dashed, with VNI and port); a TUN to the
  daemon that holds it;
- BIRD labs get one dashed edge per planned BGP session, coloured by its state when the lab is up
  (green Established, red otherwise).

:func:`dot` writes Graphviz's language (rendered to SVG/PNG by ``dot``, Debian's graphviz
package), :func:`mermaid` a Mermaid flowchart for people's docs. Both are pure: no root needed.
"""

from __future__ import annotations

import re
from collections import defaultdict

from .bgp import expected
from .plan import Addr, Daemon, Netns, Plan, Tun, Vxlan
from .spec import ends_of, spec_of


def _id(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", "_".join(parts))


def _q(text: str) -> str:
    """A quoted Graphviz string; ``\n`` in a label stays Graphviz's line break."""
    return '"' + text.replace('"', '\\"') + '"'


def _interfaces(plan: Plan) -> dict[str, list[tuple[str, str, object]]]:
    """Per namespace: (interface name, link kind, the plan object or veth end)."""
    out: dict[str, list[tuple[str, str, object]]] = defaultdict(list)
    for o in plan.links():
        kind = spec_of(o).link or "link"
        for end in ends_of(o):
            out[end.ns].append((end.name, kind, end))
    return out


def _label(name: str, kind: str, obj: object, addrs: list[str]) -> str:
    mtu = getattr(obj, "mtu", None)
    extra = []
    if isinstance(obj, Vxlan):
        extra.append(f"vxlan id {obj.vni} dstport {obj.port}")
    elif kind not in ("veth",):
        extra.append(kind)
    extra += addrs
    if mtu:
        extra.append(f"mtu {mtu}")
    return "\\n".join([name, *extra])


def _groups(plan: Plan) -> tuple[dict[str, list[Netns]], list[Netns]]:
    """Nodes with their pods, and the underlay namespaces (switches, routers, route reflectors)."""
    nodes: dict[str, list[Netns]] = {n.host: [n] for n in plan.namespaces if n.role == "node"}
    underlay = []
    for n in plan.namespaces:
        if n.role == "node":
            continue
        if n.node in nodes:
            nodes[n.node].append(n)
        else:
            underlay.append(n)
    return nodes, underlay


def _cluster(plan: Plan, ns: Netns, ifs: list[tuple[str, str, object]], addrs: dict[tuple[str, str], list[str]],
             daemons: dict[str, list[str]]) -> list[str]:
    out = [f"    subgraph cluster_{_id(ns.name)} {{", f"      label={_q(f'{ns.host} ({ns.role})')};",
           '      style="rounded"; color="#888888";']
    for name, kind, obj in ifs:
        shape = "box" if kind == "bridge" else "ellipse"
        out.append(f"      {_id(ns.name, name)} [label={_q(_label(name, kind, obj, addrs.get((ns.name, name), [])))}, "
                   f"shape={shape}];")
    for d in daemons.get(ns.name, []):
        out.append(f"      {_id(ns.name, 'daemon', d)} [label={_q(d)}, shape=component];")
    if not ifs and not daemons.get(ns.name):
        out.append(f"      {_id(ns.name, 'ns')} [label={_q(ns.host)}, shape=point];")
    out.append("    }")
    return out


def _edges(plan: Plan, ifs: dict[str, list[tuple[str, str, object]]]) -> list[str]:
    out = []
    for o in plan.links():
        ends = ends_of(o)
        if len(ends) == 2:
            a, b = ends
            out.append(f"  {_id(a.ns, a.name)} -- {_id(b.ns, b.name)} [penwidth=2];")
        for end in ends:
            master = getattr(end, "master", None)
            if master:
                out.append(f"  {_id(end.ns, end.name)} -- {_id(end.ns, master)} [style=dotted];")
        if isinstance(o, Vxlan):
            out.append(f"  {_id(o.ns, o.name)} -- {_id(o.ns, o.dev)} [style=dashed, label={_q('encap')}];")
    for t in plan.of(Tun):
        for d in plan.of(Daemon):
            if d.ns == t.ns:
                out.append(f"  {_id(t.ns, t.name)} -- {_id(d.ns, 'daemon', d.name)} [style=dashed];")
    return out


def _bgp_edges(plan: Plan, states: dict[tuple[str, str], bool] | None) -> list[str]:
    """One edge per planned session (each pair once), to the peer's eth0 where it has one."""
    speakers = expected(plan)
    by_ip = {str(a.interface.ip): a.ns for a in plan.of(Addr)}
    seen, out = set(), []
    for sp in speakers:
        for s in sp.sessions:
            peer = by_ip.get(s.neighbor)
            if peer is None or frozenset((sp.ns, peer)) in seen:
                continue
            seen.add(frozenset((sp.ns, peer)))
            up = None if states is None else states.get((sp.ns, s.name))
            color = "#1f77b4" if up is None else ("#2ca02c" if up else "#d62728")
            label = "BGP" if up is None else ("BGP Established" if up else "BGP down")
            out.append(f"  {_id(sp.ns, 'eth0')} -- {_id(peer, 'eth0')} [style=dashed, color={_q(color)}, "
                       f"fontcolor={_q(color)}, label={_q(label)}, constraint=false];")
    return out


def dot(plan: Plan, title: str = "", bgp_states: dict[tuple[str, str], bool] | None = None) -> str:
    """The lab in Graphviz's language (an undirected graph; render with ``dot -Tsvg``)."""
    ifs = _interfaces(plan)
    addrs: dict[tuple[str, str], list[str]] = defaultdict(list)
    for a in plan.of(Addr):
        addrs[(a.ns, a.dev)].append(a.cidr)
    daemons: dict[str, list[str]] = defaultdict(list)
    for d in plan.of(Daemon):
        daemons[d.ns].append(d.name)
    nodes, underlay = _groups(plan)
    out = ["graph netlab {", f"  label={_q(title or plan.lab)}; labelloc=t; fontname=Helvetica;",
           "  node [fontname=Helvetica, fontsize=10]; edge [fontname=Helvetica, fontsize=9];", "  compound=true;"]
    for host, members in nodes.items():
        out.append(f"  subgraph cluster_group_{_id(host)} {{")
        out.append(f'    label={_q(host)}; style="filled"; fillcolor="#f4f4f4"; color="#cccccc";')
        for ns in members:
            out += _cluster(plan, ns, ifs.get(ns.name, []), addrs, daemons)
        out.append("  }")
    for ns in underlay:
        out += [line[2:] for line in _cluster(plan, ns, ifs.get(ns.name, []), addrs, daemons)]
    out += _edges(plan, ifs)
    out += _bgp_edges(plan, bgp_states)
    out.append("}")
    return "\n".join(out) + "\n"


def mermaid(plan: Plan) -> str:
    """The lab as a Mermaid flowchart: one subgraph per namespace, veth pairs as links."""
    ifs = _interfaces(plan)
    out = ["flowchart LR"]
    for ns in plan.namespaces:
        out.append(f"  subgraph {_id(ns.name)}[\"{ns.host}\"]")
        for name, kind, _obj in ifs.get(ns.name, []):
            out.append(f"    {_id(ns.name, name)}[\"{name} ({kind})\"]")
        if not ifs.get(ns.name):
            out.append(f"    {_id(ns.name, 'ns')}((\"{ns.host}\"))")
        out.append("  end")
    for o in plan.links():
        ends = ends_of(o)
        if len(ends) == 2:
            out.append(f"  {_id(ends[0].ns, ends[0].name)} --- {_id(ends[1].ns, ends[1].name)}")
        for end in ends:
            if getattr(end, "master", None):
                out.append(f"  {_id(end.ns, end.name)} -.- {_id(end.ns, end.master)}")
    return "\n".join(out) + "\n"
