"""The underlay every multi-node datapath sits on: switches, a router, and each node's eth0.

Per rack, a *switch* namespace holds a plain Linux bridge ``br0``: a dumb L2 switch, so its
``bridge-nf-call-iptables`` is set to 0 (a fresh namespace has 1 while br_netfilter is loaded,
which would push every bridged frame through that namespace's iptables).

A *router* namespace has one leg per rack (``eth0`` in rack 1, ``eth1`` in rack 2, …) holding the
rack's gateway address (.1). It is the nodes' default gateway and stands in for "the outside
world": a pod that pings it must be masqueraded to its node's address, which makes the
datapaths' NAT rules visible. With two racks it also routes between them, which is exactly what
breaks flannel's host-gw and what VXLAN does not care about.

Each node gets ``eth0`` (a veth whose other end is a ``br0`` port named after the node), the
address ``.10+i``, ``default via .1`` and ``ip_forward=1``: nodes are routers for their pods.
"""

from __future__ import annotations

from ..model import Lab
from ..plan import Addr, Bridge, Netns, Plan, Route, Sysctl, Veth, VethEnd
from ..topology import Topology

SWITCH_BRIDGE = "br0"


def build(lab: Lab, topo: Topology, plan: Plan) -> None:
    mtu = lab.underlay.mtu
    plan.add_ns(Netns(topo.router_ns, "router", "router"))
    plan.add(Sysctl(topo.router_ns, "net/ipv4/ip_forward", "1"))
    for rack in topo.racks:
        plan.add_ns(Netns(rack.ns, "switch", rack.host))
        plan.add(
            Bridge(rack.ns, SWITCH_BRIDGE, mtu=mtu),
            Sysctl(rack.ns, "net/bridge/bridge-nf-call-iptables", "0", required=False),
        )
        leg = f"eth{rack.index - 1}"
        plan.add(
            Veth(VethEnd(topo.router_ns, leg, mtu=mtu), VethEnd(rack.ns, "router", mtu=mtu, master=SWITCH_BRIDGE)),
            Addr(topo.router_ns, leg, str(rack.gateway)),
        )
    for node in topo.nodes:
        plan.add_ns(Netns(node.ns, "node", node.name))
        plan.add(
            Veth(VethEnd(node.ns, "eth0", mtu=mtu), VethEnd(node.rack.ns, node.name, mtu=mtu, master=SWITCH_BRIDGE)),
            Addr(node.ns, "eth0", str(node.ip)),
            Route(node.ns, "default", via=str(node.rack.gateway.ip), dev="eth0"),
            Sysctl(node.ns, "net/ipv4/ip_forward", "1"),
        )
