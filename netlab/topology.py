"""The resolved topology: who is where, with which underlay address (pure, no kernel).

This is the second stage of containerlab's two-stage model: the lab file says "2 nodes, 2 pods,
underlay 192.168.100.0/24"; here that becomes concrete racks, nodes and pods with namespace names
and addresses. Pod *addresses* are not here: they are the datapath's IPAM (flannel hands out a
/24 per node, Calico /26 blocks, Docker one /16 per host).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from . import naming
from .model import Lab


@dataclass(frozen=True)
class Rack:
    index: int
    host: str  # "switch" or "switch2"
    ns: str
    cidr: IPv4Network
    gateway: IPv4Interface  # the underlay router's address in this rack (.1)


@dataclass(frozen=True)
class Node:
    index: int
    name: str  # "node1"
    ns: str
    rack: Rack
    ip: IPv4Interface  # 192.168.100.11/24

    @cached_property
    def addr(self) -> str:
        """The node's underlay address as text, made once: a 1000-node plan asks it a million times."""
        return str(self.ip.ip)


@dataclass(frozen=True)
class Pod:
    index: int  # 1-based on its node
    name: str  # "pod1"
    host: str  # "node1-pod1": what a user types
    ns: str
    node: Node


@dataclass(frozen=True)
class Topology:
    lab: str
    racks: tuple[Rack, ...]
    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...]
    router_ns: str

    def pods_of(self, node: Node) -> list[Pod]:
        return list(self._pods_by_node.get(node.index, ()))

    @cached_property
    def _pods_by_node(self) -> dict[int, list[Pod]]:
        """Pods by their node's index, sorted once: asked once per node, a scan of every pod
        each time was a million comparisons at 1,000 nodes."""
        out: dict[int, list[Pod]] = {}
        for p in self.pods:
            out.setdefault(p.node.index, []).append(p)
        return out

    def others(self, node: Node) -> list[Node]:
        return [n for n in self.nodes if n.index != node.index]


def resolve(lab: Lab) -> Topology:
    """Nodes go round-robin over racks (node1 in rack 1, node2 in rack 2, …) so that a
    two-rack lab always has its first two nodes in different racks. Node i is host .10+i."""
    racks = []
    for r in range(1, lab.underlay.racks + 1):
        cidr = lab.underlay.rack_cidr(r)
        host = naming.switch_name(r, lab.underlay.racks)
        racks.append(Rack(r, host, naming.ns(lab.name, host), cidr,
                          IPv4Interface((int(cidr.network_address) + 1, cidr.prefixlen))))
    nodes, pods = [], []
    per_rack: dict[int, int] = {}
    for i in range(1, lab.nodes + 1):
        rack = racks[(i - 1) % len(racks)]
        per_rack[rack.index] = per_rack.get(rack.index, 0) + 1
        host_no = 10 + (i if len(racks) == 1 else per_rack[rack.index])
        ip = IPv4Interface((int(rack.cidr.network_address) + host_no, rack.cidr.prefixlen))
        name = naming.node_name(i)
        node = Node(i, name, naming.ns(lab.name, name), rack, ip)
        nodes.append(node)
        for j in range(1, lab.pods + 1):
            pname = naming.pod_name(j)
            pods.append(Pod(j, pname, f"{name}-{pname}", naming.ns(lab.name, name, pname), node))
    return Topology(lab.name, tuple(racks), tuple(nodes), tuple(pods), naming.ns(lab.name, naming.ROUTER))


def nth_host(net: IPv4Network, n: int) -> IPv4Address:
    return IPv4Address(int(net.network_address) + n)
