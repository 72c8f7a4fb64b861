"""Calico with BGP and no encapsulation (DATAPATHS.md §3, §3a): the ``calico`` lab.

On node X (block 192.168.X.0/26, underlay address 10.0.0.1X):

- per pod: ``caliXXXXXXXXXXX`` (ee:ee:ee:ee:ee:ee, no address, proxy ARP) with the route
  ``192.168.X.n dev caliX scope link``; the pod has ``192.168.X.n/32`` and reaches everything
  through ``169.254.1.1``, which the node answers by proxy ARP;
- BIRD 2 peers with every other node (full mesh, AS 64512), originates ``blackhole
  192.168.X.0/26`` and installs what it learns: ``192.168.Y.0/26 via 10.0.0.1Y dev eth0 proto
  bird``. netlab writes no route to a remote pod: if BIRD stops, traffic stops;
- natOutgoing: pods reaching outside the pool leave with the node's address.

The next hop of a BGP route here is the remote node itself, so all nodes must share one L2
segment (one rack). Across racks that takes the fabric peering (the ToR) or an encapsulation.

The datapath at its default addresses::

      node1 (10.0.0.11, AS 64512)                       node2 (10.0.0.12, AS 64512)
      +-------------------------------------+           +-------------------------------------+
      | pod1 eth0 192.168.1.1/32            |           | pod1 eth0 192.168.2.1/32            |
      |   default via 169.254.1.1 (proxy ARP)           |                                     |
      | caliXXXX ee:ee:ee:ee:ee:ee, no IP   |           | caliYYYY ee:ee:ee:ee:ee:ee, no IP   |
      | 192.168.1.1 dev caliXXXX scope link |           | 192.168.2.1 dev caliYYYY scope link |
      | blackhole 192.168.1.0/26 proto bird |           | blackhole 192.168.2.0/26 proto bird |
      | 192.168.2.0/26 via 10.0.0.12 dev eth0 proto bird| 192.168.1.0/26 via 10.0.0.11 ...    |
      | bird <------------- BGP (TCP 179) ----------------------------> bird                  |
      | eth0 10.0.0.11/24                   |           | eth0 10.0.0.12/24                   |
      +------|------------------------------+           +------|------------------------------+
             +-------------------[ switch br0 ]------------------+
                                       |
                             router 10.0.0.1 (natOutgoing: pods leave as their node)
"""

from __future__ import annotations

from ..model import Lab
from ..plan import Plan
from ..topology import resolve
from . import calico
from .hints import Steps, col


def plan(lab: Lab) -> Plan:
    topo = resolve(lab)
    p = Plan(lab.name)
    calico.build(lab, topo, p, encap=None, mesh=True, kernel="bgp")
    for node in topo.nodes:
        p.add(calico.rules(node, lab))
    return p


def validate(lab: Lab) -> None:
    calico.check(lab, None, one_rack=True)


def next_steps(lab: Lab, p: Plan) -> Steps:
    w = calico.HINT_WIDTH
    return calico.pod_next_steps(lab, p, [
        col(w, "BGP sessions:", f"netlab bgp {lab.name}"),
        col(w, "routes from BIRD:", f"netlab exec {lab.name} node1 -- ip route show proto bird"),
    ])



DATAPATH = calico.bgp_datapath("calico-bgp", "Calico, BGP without encapsulation: /32 pods, proxy ARP, BIRD full mesh installs the routes",
                                plan=plan, validate=validate, next_steps=next_steps)
