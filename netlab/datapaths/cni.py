"""Pods attached the way the CNI ``bridge`` plugin attaches them (what flannel delegates to).

For each pod: a veth whose host end ``veth<8 hex>`` is a port of the node's bridge (``cni0``)
with hairpin on (kube-flannel's ``hairpinMode: true``), whose pod end is ``eth0`` with
``10.244.X.n/24`` (host-local IPAM: the gateway .1 is skipped, so pods start at .2), and the
routes ``default via .1`` (``isDefaultGateway``) and ``<cluster CIDR> via .1`` (the IPAM route,
whose missing gateway falls back to the bridge's). ``arp_notify=1`` on the pod's eth0 is the
plugin's too: the pod announces its MAC when the link comes up.

The bridge gets the gateway address ``.1/24`` and the datapath MTU; ``isGateway`` is what turns on
ip_forward on the node (the underlay module sets it for every node already).

Attributes the plugin (1.1.1) sets that change no packet's path but do show in ``ip -d link`` and
``sysctl``, so a lab looks like a real node:

- cni0's MAC is set explicitly (with ``isGateway`` the plugin writes the bridge's address back to
  it). A bridge without a chosen MAC takes the lowest MAC of its ports and changes as pods come
  and go; one that was set (addr_assign_type ``set``) keeps it. netlab sets a hash at creation.
- ``accept_ra=0`` on cni0 and on each host-side veth: the node owns their routes, a router
  advertisement must not add any.
- ``accept_dad=0`` on the pod's eth0, because of hairpin mode: the bridge reflects the pod's own
  neighbour solicitation back to it, which duplicate address detection would take for a clash.
- txqueuelen 0 on both veth ends (the Go netlink library sends ``TxQLen: 0``); cni0 keeps the
  kernel's default (the plugin passes ``TxQLen: -1`` for the bridge).

The IPv6 sysctls are not ``required``: the plugin ignores their errors, and they do not exist
where IPv6 is off or a device's MTU is below IPv6's minimum of 1280.
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
    plan.add(Bridge(node.ns, BRIDGE, mtu=mtu, mac=naming.mac(topo.lab, node.name, BRIDGE)), Addr(node.ns, BRIDGE, str(gw)),
             Sysctl(node.ns, f"net/ipv6/conf/{BRIDGE}/accept_ra", "0", required=False))
    for pod in topo.pods_of(node):
        plan.add_ns(Netns(pod.ns, "pod", pod.host, node=node.name))
        host_if = naming.host_veth(topo.lab, pod.host)
        plan.add(
            Veth(VethEnd(node.ns, host_if, mtu=mtu, master=BRIDGE, hairpin=True, txqueuelen=0),
                 VethEnd(pod.ns, "eth0", mtu=mtu, txqueuelen=0)),
            Addr(pod.ns, "eth0", str(pod_ip(subnet, pod))),
            Route(pod.ns, "default", via=str(gw.ip), dev="eth0"),
            Route(pod.ns, str(cluster), via=str(gw.ip), dev="eth0"),
            Sysctl(pod.ns, "net/ipv4/conf/eth0/arp_notify", "1"),
            Sysctl(node.ns, f"net/ipv6/conf/{host_if}/accept_ra", "0", required=False),
            # hairpin reflects the pod's own DAD probe back to it: the plugin turns DAD off
            Sysctl(pod.ns, "net/ipv6/conf/eth0/accept_dad", "0", required=False),
        )
