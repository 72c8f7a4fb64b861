"""Calico's VXLAN mode (DATAPATHS.md §3c): the ``calico-vxlan`` lab.

On node X (block 192.168.X.0/26), besides the pods of §3:

- ``vxlan.calico``: ``vxlan id 4096 local <node IP> dev eth0 dstport 4789 nolearning``, MTU =
  underlay MTU - 50, address ``192.168.X.0/32`` (the tunnel IP, from the block);
- per remote node Y, as Felix's ``routetable`` programs it, in this order: the permanent
  neighbour ``192.168.Y.0 lladdr <VTEP MAC Y>``, the FDB entry ``<VTEP MAC Y> dst <node Y>``, and
  the route ``192.168.Y.0/26 via 192.168.Y.0 dev vxlan.calico onlink`` (``onlink`` because the
  gateway is on no subnet of the device, which holds a /32). With ``mode: CrossSubnet`` a node in
  the same rack is reached unencapsulated, ``via <node Y> dev eth0 onlink``;
- ``blackhole 192.168.X.0/26``, from Felix (no ``proto``).

Felix programs all of it, not BIRD (Calico's kernel filter rejects VXLAN pools), and a
VXLAN-only cluster runs without BIRD (``calico_backend: vxlan``), as this lab does.
Contrast with flannel: the gateway is the remote VTEP's own /32 and blocks are /26.

The datapath at its default addresses::

      node1 (10.0.0.11)                                  node2 (10.0.0.12)
      +--------------------------------------+           +--------------------------------------+
      | pod1 192.168.1.1/32 -> caliX (proxy ARP)         | pod1 192.168.2.1/32 -> caliY         |
      | 192.168.2.0/26 via 192.168.2.0       |           | 192.168.1.0/26 via 192.168.1.0       |
      |     dev vxlan.calico onlink          |           |     dev vxlan.calico onlink          |
      | vxlan.calico 192.168.1.0/32 vni 4096 |           | vxlan.calico 192.168.2.0/32          |
      |   neigh 192.168.2.0 -> MAC2, fdb MAC2 dst 10.0.0.12                                     |
      | eth0 10.0.0.11/24                    |           | eth0 10.0.0.12/24                    |
      +------|-------------------------------+           +------|-------------------------------+
             +-------- Ether/IP/UDP 4789/VXLAN 4096/Ether/IP ---+   [ switch br0 ] -- router 10.0.0.1
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import encap, naming
from ..encap import Encap
from ..model import Lab
from ..plan import Addr, Fdb, Neigh, Plan, Route, Vxlan
from ..topology import resolve
from . import Datapath, calico
from .hints import Steps, col

DEVICE = "vxlan.calico"


@dataclass(frozen=True)
class Options(calico.Options):
    vni: int = field(default=4096, metadata={"min": 1, "max": 16777215})  # VXLANVNI
    port: int = field(default=4789, metadata={"min": 1, "max": 65535})  # VXLANPort
    mtu: int | None = field(default=None, metadata={"min": 576, "max": encap.VXLAN.max_mtu})  # VXLANMTU (0 = auto)
    mode: str = field(default="Always", metadata={"choices": ("Always", "CrossSubnet")})  # vxlanMode


def encap_of(lab: Lab) -> Encap:
    """VXLAN on Felix's ``VXLANPort`` (default 4789, IANA's)."""
    return encap.VXLAN.on(lab.options.port)


def vtep_mac(lab: Lab, node_name: str) -> str:
    """Felix stores a generated MAC in the node resource (``VXLANTunnelMACAddr``); netlab hashes."""
    return naming.mac(lab.name, node_name, DEVICE)


def plan(lab: Lab) -> Plan:
    topo = resolve(lab)
    p = Plan(lab.name)
    blocks = calico.build(lab, topo, p, encap=encap_of(lab), bird=False)
    mtu = encap.mtu_of(lab, p.encap)
    o = lab.options
    for node in topo.nodes:
        blk = blocks[node.name]
        p.add(
            Vxlan(node.ns, DEVICE, vni=o.vni, port=o.port, local=node.addr, dev="eth0", learning=False, mtu=mtu,
                  mac=vtep_mac(lab, node.name)),
            Addr(node.ns, DEVICE, f"{calico.tunnel_ip(blk)}/32"),
            Route(node.ns, str(blk), type="blackhole"),
        )
        for other in topo.others(node):
            rblk = blocks[other.name]
            gw = str(calico.tunnel_ip(rblk))
            p.add(Neigh(node.ns, DEVICE, gw, vtep_mac(lab, other.name)),
                  Fdb(node.ns, DEVICE, vtep_mac(lab, other.name), other.addr))
            if o.mode == "CrossSubnet" and other.rack == node.rack:
                p.add(Route(node.ns, str(rblk), via=other.addr, dev="eth0", onlink=True))
            else:
                p.add(Route(node.ns, str(rblk), via=gw, dev=DEVICE, onlink=True))
        p.add(calico.rules(node, lab, tunnel=DEVICE, input_match=f"-p udp -m udp --dport {o.port}"))
    return p


def validate(lab: Lab) -> None:
    calico.check(lab, encap_of(lab))


def next_steps(lab: Lab, p: Plan) -> Steps:
    return calico.pod_next_steps(
        lab, p, [col(calico.HINT_WIDTH, "VTEP state:", f"netlab exec {lab.name} node1 -- bridge fdb show dev {DEVICE}")],
        see="see the VXLAN:")



DATAPATH = Datapath(
    name="calico-vxlan",
    summary="Calico VXLAN: vxlan.calico VNI 4096 on UDP 4789, /32 tunnel IP, routes via the remote VTEP's IP onlink",
    plan=plan,
    Options=Options,
    default_pod_cidr=calico.DEFAULT_POOL,
    requires=("bridge", "veth", "vxlan"),
    tools=("iptables-restore",),
    validate=validate,
    next_steps=next_steps,
)
