r"""Calico with a BGP route reflector (DATAPATHS.md §3): the ``calico-rr`` lab.

The same datapath as ``calico`` (§3a), but the node-to-node mesh is off
(``nodeToNodeMeshEnabled: false``). A route reflector runs BIRD in its own namespace on the
underlay switch (where the seed puts the ToR), at ``.2``. Every node has exactly one BGP session,
to it; the reflector has one per node, each marked ``rr client`` with one ``rr cluster id``, and
passes every node's block on to all the others with the next hop unchanged (the originating node).
So sessions grow as n instead of n(n-1)/2, while each node still learns n-1 blocks and installs
``192.168.Y.0/26 via <node Y> dev eth0 proto bird``: the reflector is in the control plane only,
no pod packet ever crosses it.

The datapath at its default addresses::

         node1 (10.0.0.11)        node2 (10.0.0.12)    …    nodeN
            bird ----.               bird ----.               bird
                      \  BGP                   \  BGP          /
                       v                        v             v
                     rr (10.0.0.2): bird, "rr client" for every node, no kernel routes
      data plane: node1 --- switch br0 --- node2  (192.168.2.0/26 via 10.0.0.12 dev eth0 proto bird)
"""

from __future__ import annotations

from .. import naming
from ..model import Lab
from ..plan import Plan
from ..topology import resolve
from . import calico
from .hints import Steps, col


def plan(lab: Lab) -> Plan:
    topo = resolve(lab)
    p = Plan(lab.name)
    calico.build(lab, topo, p, encap=None, mesh=False, reflector=True, kernel="bgp")
    for node in topo.nodes:
        p.add(calico.rules(node, lab))
    return p


def validate(lab: Lab) -> None:
    calico.check(lab, None, one_rack=True)


def next_steps(lab: Lab, p: Plan) -> Steps:
    w = calico.HINT_WIDTH
    sock = naming.expand_run(calico.socket_path(calico.RR_HOST), naming.state_dir(lab.name))
    return calico.pod_next_steps(lab, p, [
        col(w, "BGP sessions:", f"netlab bgp {lab.name}", "(one per node, n on the reflector)"),
        col(w, "the reflector:", f"netlab exec {lab.name} {calico.RR_HOST} -- birdc -s {sock} show protocols"),
    ])



DATAPATH = calico.bgp_datapath("calico-rr", "Calico BGP with a route reflector: mesh off, every node peers only with the RR (n sessions, not n²/2)",
                                plan=plan, validate=validate, next_steps=next_steps)
