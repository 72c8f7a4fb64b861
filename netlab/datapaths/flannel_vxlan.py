"""Flannel's VXLAN backend (DATAPATHS.md §2, §2b): ``flannel.1``, UDP 8472, a /24 per node.

On each node X (lease 10.244.X.0/24):

- ``cni0`` 10.244.X.1/24 with the pods behind it (the CNI bridge plugin, :mod:`.cni`);
- ``flannel.1``: ``vxlan id 1 local <node IP> dev eth0 dstport 8472 nolearning``, address
  ``10.244.X.0/32`` (a /32 so that no broadcast or subnet route is created; it is the source of
  host-to-pod traffic), MTU = underlay MTU - 50 (outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14);
- for every remote node Y, in this order (flanneld's own order, and it matters):

  1. ``neigh 10.244.Y.0 lladdr <VTEP MAC of Y> dev flannel.1 nud permanent`` — so the kernel never
     ARPs for the gateway: with ``nolearning`` and no miss handler nobody would answer;
  2. ``fdb <VTEP MAC of Y> dev flannel.1 dst <node Y IP> self permanent`` — which underlay IP to
     send frames for that MAC to;
  3. ``route 10.244.Y.0/24 via 10.244.Y.0 dev flannel.1 onlink`` — ``onlink`` because 10.244.Y.0
     is not on any subnet of flannel.1 (it holds only a /32).

There are no per-pod entries anywhere: one route, one neighbour and one FDB entry per remote node.

With the backend's ``DirectRouting: true`` (option ``direct_routing``), flanneld first asks the
kernel how it reaches node Y's public IP (``ip.DirectRouting``: a route without a gateway, i.e.
the same L2 subnet). If it is directly connected, Y gets host-gw's route instead of the three
entries above: ``10.244.Y.0/24 via <node Y IP> dev eth0``, no neighbour, no FDB entry, no
encapsulation. Only nodes in other subnets (another rack, ``--racks 2``) go through flannel.1.
That is flannel's own answer to "host-gw across racks": plain routes where L2 allows them, the
tunnel where it does not. The pods' MTU stays the VXLAN one (underlay - 50) for every path.

The datapath at its default addresses::

      node1 (192.168.100.11)                          node2 (192.168.100.12)
      +---------------------------------+             +---------------------------------+
      | pod1 eth0 10.244.1.2/24         |             | pod1 eth0 10.244.2.2/24         |
      |   | veth                        |             |   | veth                        |
      | cni0 10.244.1.1/24              |             | cni0 10.244.2.1/24              |
      |   | route 10.244.2.0/24 via     |             |                                 |
      |   |   10.244.2.0 dev flannel.1 onlink         |                                 |
      | flannel.1 10.244.1.0/32 (VTEP)  |             | flannel.1 10.244.2.0/32 (VTEP)  |
      |   vxlan id 1 dstport 8472       |             |   neigh 10.244.1.0 -> MAC1      |
      |   fdb MAC2 dst 192.168.100.12   |             |   fdb MAC1 dst 192.168.100.11   |
      | eth0 192.168.100.11/24          |             | eth0 192.168.100.12/24          |
      +------|--------------------------+             +------|--------------------------+
             |        switch (br0)   Ether/IP/UDP 8472/VXLAN vni 1/Ether/IP      |
             +-------------------------[ br0 ]-----------------------------------+
                                         |
                               router 192.168.100.1 (gateway, "outside")
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import encap, naming
from ..encap import Encap
from ..model import Lab
from ..plan import Addr, Fdb, Neigh, Plan, PodPair, Route, Sysctl, Vxlan
from ..topology import resolve
from . import Datapath, cni, flannel, underlay
from .hints import Line, Steps, col, encap_capture, pod_pair_steps

DEVICE = "flannel.{vni}"


@dataclass(frozen=True)
class Options:
    vni: int = field(default=1, metadata={"min": 1, "max": 16777215})
    port: int = field(default=8472, metadata={"min": 1, "max": 65535})
    mtu: int | None = field(default=None, metadata={"min": 576, "max": encap.VXLAN.max_mtu})
    direct_routing: bool = False  # the backend's DirectRouting: host-gw routes to nodes on the same subnet


def encap_of(lab: Lab) -> Encap:
    """VXLAN on the backend's ``Port`` (flannel's default 8472, the Linux kernel's old default,
    not IANA's 4789)."""
    return encap.VXLAN.on(lab.options.port)


def vtep_mac(lab: Lab, node_name: str) -> str:
    """Current flannel generates the VTEP MAC once and keeps it in the node annotation
    (``flannel.alpha.coreos.com/backend-data: {"VtepMAC": …}``); netlab derives it from a hash."""
    return naming.mac(lab.name, node_name, "vtep")


def plan(lab: Lab) -> Plan:
    topo = resolve(lab)
    p = Plan(lab.name, encap=encap_of(lab))
    underlay.build(lab, topo, p)
    dev = DEVICE.format(vni=lab.options.vni)
    mtu = encap.mtu_of(lab, p.encap)
    # what each node publishes about itself (flannel's lease + backend-data), computed once:
    # every other node's entries are made from it, n-1 times over
    macs = {n.name: vtep_mac(lab, n.name) for n in topo.nodes}
    leases = {n.name: flannel.lease(lab.pod_cidr, n) for n in topo.nodes}
    # each lease as the route destination and the VTEP gateway address, written once
    texts = {name: (str(net), str(net.network_address)) for name, net in leases.items()}
    direct = lab.options.direct_routing
    for node in topo.nodes:
        subnet = leases[node.name]
        cni.attach(p, topo, node, subnet, lab.pod_cidr, mtu)
        p.add(
            Vxlan(node.ns, dev, vni=lab.options.vni, port=lab.options.port, local=node.addr, dev="eth0",
                  learning=False, mtu=mtu, mac=macs[node.name]),
            Addr(node.ns, dev, f"{subnet.network_address}/32"),
            # current flanneld: no router advertisements on the VTEP (absent where IPv6 is off)
            Sysctl(node.ns, f"net/ipv6/conf/{dev}/accept_ra", "0", required=False),
        )
        for other in topo.others(node):
            remote, gw = texts[other.name]
            if direct and other.rack == node.rack:  # same subnet: no tunnel needed
                p.add(Route(node.ns, remote, via=other.addr, dev="eth0"))
                continue
            p.add(
                Neigh(node.ns, dev, gw, macs[other.name]),
                Fdb(node.ns, dev, macs[other.name], other.addr),
                Route(node.ns, remote, via=gw, dev=dev, onlink=True),
            )
        p.add(flannel.masq_rules(node.ns, lab.pod_cidr, subnet))
    return p


def validate(lab: Lab) -> None:
    flannel.validate(lab, encap_of(lab))


def next_steps(lab: Lab, p: Plan) -> Steps:
    def lines(pair: PodPair, sw: str) -> list[Line]:
        return [
            col(21, "ping across nodes:", f"netlab exec {lab.name} {pair.src.host} -- ping -c 3 {pair.dst_ip}"),
            encap_capture(21, "see the VXLAN:", sw, encap_of(lab)),
            col(21, "VTEP state:", f"netlab exec {lab.name} node1 -- bridge fdb show dev {DEVICE.format(vni=lab.options.vni)}"),
            col(21, "the whole recipe:", f"netlab explain {lab.name}"),
        ]
    return pod_pair_steps(lab.name, p, lines)



DATAPATH = Datapath(
    name="flannel-vxlan",
    summary="Flannel VXLAN backend: flannel.1 VTEPs on UDP 8472, a /24 per node, permanent neigh/FDB",
    plan=plan,
    Options=Options,
    requires=("bridge", "veth", "vxlan"),
    validate=validate,
    next_steps=next_steps,
)
