"""The baselines: the bare underlay every lab sits on, and one veth pair.

No container networking at all. ``node1`` and ``node2`` are the labs' own nodes on the labs' own
switch (:mod:`.underlay`), and ``veth-a``/``veth-b`` are two namespaces joined by a single veth
pair, the shortest path this kernel has between two namespaces. ``netlab bench`` measures every
datapath against these two, so they are a lab like any other: ``status``, ``explain`` and
teardown work for them through the same plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network

from .. import naming
from ..model import Lab
from ..plan import Addr, Netns, Plan, Veth, VethEnd
from ..topology import resolve
from . import Datapath, underlay

VETH_NET = IPv4Network("10.255.255.0/30")


@dataclass(frozen=True)
class Options:
    pass


def plan(lab: Lab) -> Plan:
    p = Plan(lab.name)
    underlay.build(lab, resolve(lab), p)
    a, b = naming.ns(lab.name, "veth-a"), naming.ns(lab.name, "veth-b")
    p.add_ns(Netns(a, "host", "veth-a"))
    p.add_ns(Netns(b, "host", "veth-b"))
    hosts = list(VETH_NET.hosts())
    p.add(Veth(VethEnd(a, "eth0"), VethEnd(b, "eth0")),
          Addr(a, "eth0", str(IPv4Interface((hosts[0], VETH_NET.prefixlen)))),
          Addr(b, "eth0", str(IPv4Interface((hosts[1], VETH_NET.prefixlen)))))
    return p


def next_steps(lab: Lab, p: Plan) -> str:
    return "\n".join([
        f"node to node:   netlab exec {lab.name} node1 -- ping -c 3 {resolve(lab).nodes[-1].addr}",
        f"veth pair:      netlab exec {lab.name} veth-a -- ping -c 3 {list(VETH_NET.hosts())[1]}",
        "measure:        netlab bench (compares every datapath with these two)",
    ])


DATAPATH = Datapath(
    name="baseline",
    summary="The baselines: the bare underlay (node to node) and a single veth pair, no container networking",
    plan=plan,
    Options=Options,
    min_nodes=2,
    max_nodes=2,
    requires=("bridge", "veth"),
    tools=(),
    next_steps=next_steps,
)
