"""Pods attached the way the CNI ``bridge`` plugin attaches them (what flannel delegates to).

For each pod: a veth whose host end ``veth<8 hex>`` is a port of the node's bridge (``cni0``)
with hairpin on (kube-flannel's ``hairpinMode: true``), whose pod end is ``eth0`` with
``10.244.X.n/24`` (host-local IPAM: the gateway .1 is skipped, so pods start at .2), and the
routes ``default via .1`` (``isDefaultGateway``) and ``<cluster CIDR> via .1`` (the IPAM route,
whose missing gateway falls back to the bridge's). ``arp_notify=1`` on the pod's eth0 is the
plugin's too: the pod announces its MAC when the link comes up.

The bridge gets the gateway address ``.1/24`` and the datapath MTU; ``isGateway`` is what turns on
ip_forward on the node (the underlay module sets it for every node already).
"""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv4Network

from .. import naming
from ..plan import Addr, Bridge, Netns, Plan, Route, Sysctl, Veth, VethEnd
from ..topology import Node, Pod, Topology, nth_host

BRIDGE = "cni0"


def pod_ip(subnet: IPv4Network, pod: Pod) -> IPv4Interface:
    return IPv4Interface((int(nth_host(subnet, pod.index + 1)), subnet.prefixlen))


def attach(plan: Plan, topo: Topology, node: Node, subnet: IPv4Network, cluster: IPv4Network, mtu: int) -> None:
    gw = IPv4Interface((int(nth_host(subnet, 1)), subnet.prefixlen))
    plan.add(Bridge(node.ns, BRIDGE, mtu=mtu), Addr(node.ns, BRIDGE, str(gw)))
    for pod in topo.pods_of(node):
        plan.add_ns(Netns(pod.ns, "pod", pod.host, node=node.name))
        host_if = naming.host_veth(topo.lab, pod.host)
        plan.add(
            Veth(VethEnd(node.ns, host_if, mtu=mtu, master=BRIDGE, hairpin=True), VethEnd(pod.ns, "eth0", mtu=mtu)),
            Addr(pod.ns, "eth0", str(pod_ip(subnet, pod))),
            Route(pod.ns, "default", via=str(gw.ip), dev="eth0"),
            Route(pod.ns, str(cluster), via=str(gw.ip), dev="eth0"),
            Sysctl(pod.ns, "net/ipv4/conf/eth0/arp_notify", "1"),
        )
