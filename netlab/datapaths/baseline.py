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
from . import Datapath, hints, underlay
from .hints import Steps

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


def bench_command(lab: Lab) -> str:
    """``netlab bench`` under a prefix of this instance's name, so the instances it brings up are
    this lab's (``<name>-vxlan``, …) and never a default-named lab someone else has up; plain
    where the longest such name would not fit the 24-character limit."""
    prefix = f"{lab.name}-"
    return f"netlab bench --prefix {prefix}" if len(prefix) + len("calico-vxlan") <= 24 else "netlab bench"


def next_steps(lab: Lab, p: Plan) -> Steps:
    first, last = hints.nodes(p)[0], hints.nodes(p)[-1]
    return Steps([
        hints.col(16, "node to node:", f"netlab exec {lab.name} {first.host} -- ping -c 3 {hints.ip_of(p, last.name)}"),
        hints.col(16, "veth pair:", f"netlab exec {lab.name} veth-a -- ping -c 3 "
                                    f"{hints.ip_of(p, p.host('veth-b').name)}"),
        # a whole bench takes minutes: the hint is checked to start, not to finish
        hints.col(16, "measure:", bench_command(lab), "(compares every datapath with these two)", expect=hints.RUNS),
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
