"""Calico's IPIP mode (DATAPATHS.md §3b): the ``calico-ipip`` lab.

On node X (block 192.168.X.0/26), besides the pods of §3:

- ``tunl0``, the kernel's fallback IPIP device (``remote any local any``, NOARP), which exists in
  every namespace once the ``ipip`` module is loaded; MTU = underlay MTU - 20 (1480), address
  ``192.168.X.0/32`` (the tunnel IP, from the block);
- per remote node Y: ``192.168.Y.0/26 via <node Y> dev tunl0 onlink``. Because tunl0 has
  ``remote any``, the kernel takes the outer destination from the route's gateway: the packet
  leaves as ``IP(node X -> node Y, proto 4) / IP(pod -> pod)``. Calico's BIRD fork installs these
  routes through ``krt_tunnel = "tunl0"``; stock BIRD cannot express that (DATAPATHS.md §8), so
  netlab installs them, and BIRD (mesh, AS 64512) installs only the node's own ``blackhole
  192.168.X.0/26 proto bird``;
- with ``mode: CrossSubnet`` (``--racks 2``), a node in the same rack is reached without
  encapsulation, ``via <node Y> dev eth0``, and only nodes in other racks through tunl0.

Kernels built without CONFIG_NET_IPIP cannot create ``ipip`` links: ``netlab up`` probes for it
and stops before creating anything.

The datapath at its default addresses::

      node1 (10.0.0.11)                                  node2 (10.0.0.12)
      +--------------------------------------+           +--------------------------------------+
      | pod1 192.168.1.1/32 -> caliX (proxy ARP)         | pod1 192.168.2.1/32 -> caliY         |
      | 192.168.2.0/26 via 10.0.0.12         |           | 192.168.1.0/26 via 10.0.0.11         |
      |     dev tunl0 onlink                 |           |     dev tunl0 onlink                 |
      | tunl0 192.168.1.0/32 mtu 1480 (remote any)       | tunl0 192.168.2.0/32                 |
      | eth0 10.0.0.11/24   bird <--- BGP ---------------> bird   eth0 10.0.0.12/24           |
      +------|-------------------------------+           +------|-------------------------------+
             +----------- IP(10.0.0.11 > 10.0.0.12, proto 4)/IP(pod > pod) ----+ [ switch br0 ]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import bgp, encap
from ..model import Lab
from ..plan import Addr, Ipip, Plan, Route
from ..topology import resolve
from . import Datapath, calico
from .hints import Steps, col

DEVICE = "tunl0"


@dataclass(frozen=True)
class Options(calico.Options):
    mtu: int | None = field(default=None, metadata={"min": 576, "max": encap.IPIP.max_mtu})  # IpInIpMtu (0 = auto)
    mode: str = field(default="Always", metadata={"choices": ("Always", "CrossSubnet")})  # ipipMode


def plan(lab: Lab) -> Plan:
    topo = resolve(lab)
    p = Plan(lab.name)
    blocks = calico.build(lab, topo, p, encap=encap.IPIP, mesh=True, kernel="static")
    mtu = encap.mtu_of(lab, p.encap)
    for node in topo.nodes:
        p.add(Ipip(node.ns, DEVICE, mtu=mtu), Addr(node.ns, DEVICE, f"{calico.tunnel_ip(blocks[node.name])}/32"))
        for other in topo.others(node):
            rblk = str(blocks[other.name])
            if lab.options.mode == "CrossSubnet" and other.rack == node.rack:
                p.add(Route(node.ns, rblk, via=other.addr, dev="eth0"))
            else:
                p.add(Route(node.ns, rblk, via=other.addr, dev=DEVICE, onlink=True))
        # protocol 4, by the name iptables-save prints (netbase's /etc/protocols calls it ipencap)
        p.add(calico.rules(node, lab, tunnel=DEVICE, input_match="-p ipencap"))
    return p


def validate(lab: Lab) -> None:
    calico.check(lab, encap.IPIP)


def next_steps(lab: Lab, p: Plan) -> Steps:
    return calico.pod_next_steps(lab, p, [col(calico.HINT_WIDTH, "BGP sessions:", f"netlab bgp {lab.name}")],
                                 see="see the IPIP:")



DATAPATH = Datapath(
    name="calico-ipip",
    summary="Calico IPIP: tunl0 (MTU 1480), routes via the remote node dev tunl0 onlink; needs a kernel with ipip",
    plan=plan,
    Options=Options,
    default_pod_cidr=calico.DEFAULT_POOL,
    requires=("bridge", "veth", "ipip"),
    tools=("iptables-restore", "bird", "birdc"),  # birdc: up waits for BGP through it
    validate=validate,
    next_steps=next_steps,
    ready=bgp.converge,  # up waits until every node routes every remote block
)
