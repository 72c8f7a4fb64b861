"""Flannel's host-gw backend (DATAPATHS.md §2c): no tunnel at all, the nodes are the routers.

Each node X has ``cni0`` 10.244.X.1/24 with its pods (as in the VXLAN backend, MTU 1500: there
is no encapsulation overhead), and for every other node Y the plain route

    10.244.Y.0/24 via <node Y IP> dev eth0

(a netlink route with a gateway and an output interface, no ``onlink``). A packet from a pod on
node 1 to a pod on node 2 leaves node 1 addressed, at layer 2, to node 2's MAC: the underlay must
carry it as is, so every node must be on the same L2 segment as every other.

That is the catch, and the lab shows it: across two racks joined by a router (``--racks 2``)
node Y's IP is not on-link, and the kernel refuses the route (``Nexthop has invalid gateway``,
ENETUNREACH), exactly as it does for flanneld. ``netlab up host-gw --racks 2`` stops there and
explains why; ``netlab up vxlan --racks 2`` works, because a VTEP only needs IP reachability.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from .. import encap
from ..model import Lab
from ..plan import Plan, PodPair, Route
from ..topology import resolve
from . import Datapath, cni, flannel, underlay
from .hints import RUNS, Line, Steps, col, pod_pair_steps


@dataclass(frozen=True)
class Options:
    pass


def plan(lab: Lab) -> Plan:
    topo = resolve(lab)
    p = Plan(lab.name)  # encap None: the pod's own packet is what crosses the underlay
    underlay.build(lab, topo, p)
    mtu = encap.mtu_of(lab, None)
    leases = {n.index: str(flannel.lease(lab.pod_cidr, n)) for n in topo.nodes}  # made once, not n-1 times
    for node in topo.nodes:
        subnet = flannel.lease(lab.pod_cidr, node)
        cni.attach(p, topo, node, subnet, lab.pod_cidr, mtu)
        for other in topo.others(node):
            p.add(Route(node.ns, leases[other.index], via=other.addr, dev="eth0"))
        p.add(flannel.masq_rules(node.ns, lab.pod_cidr, subnet))
    return p


def validate(lab: Lab) -> None:
    flannel.check_leases(lab)


def explain_refusal(lab: Lab, obj, err: int | None) -> tuple[str, str] | None:
    if isinstance(obj, Route) and obj.via and err == errno.ENETUNREACH:
        return (f"(\"Nexthop has invalid gateway\"). This is host-gw's limit: the gateway {obj.via} is another "
                f"node's underlay address and is not on-link from {obj.ns}, because the nodes sit in "
                f"{lab.underlay.racks} racks behind a router; host-gw needs every node on the same L2 segment",
                f"keep all nodes in one rack (--racks 1), or use a tunnel, which only needs IP reachability: "
                f"netlab up vxlan --racks {lab.underlay.racks}")
    return None


def other_name(lab: Lab) -> str:
    """The instance the limit hint brings up: named after this one, so two labs' hints (or two
    test runs) never race for one name; ``hg2`` where the longer name would not fit."""
    name = f"{lab.name}-r2"
    return name if len(name) <= 24 else "hg2"


def next_steps(lab: Lab, p: Plan) -> Steps:
    def lines(pair: PodPair, sw: str) -> list[Line]:
        return [
            col(21, "ping across nodes:", f"netlab exec {lab.name} {pair.src.host} -- ping -c 3 {pair.dst_ip}"),
            col(21, "no tunnel, just L2:", f"ip netns exec {sw} tcpdump -eni br0 icmp", expect=RUNS),
            col(21, "the routes:", f"netlab exec {lab.name} node1 -- ip route"),
            # the refusal is the lesson: explain_refusal's words for the kernel's ENETUNREACH
            col(21, "the limit:", f"netlab up host-gw --name {other_name(lab)} --racks 2", "(refused: not on-link)",
                expect="fails:host-gw's limit"),
        ]
    return pod_pair_steps(lab.name, p, lines)


DATAPATH = Datapath(
    name="flannel-host-gw",
    summary="Flannel host-gw: plain routes via each node's IP, no tunnel; needs one L2 segment",
    plan=plan,
    Options=Options,
    requires=("bridge", "veth"),
    validate=validate,
    next_steps=next_steps,
    explain_refusal=explain_refusal,
)
