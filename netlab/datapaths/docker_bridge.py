"""Docker's default bridge network on one host (DATAPATHS.md §1): ``docker0`` and its containers.

One node (a Docker host) holds ``docker0`` 172.17.0.1/16 and the containers ``container1 …``,
each a veth pair: host end ``veth<7 hex>`` on docker0, container end ``eth0`` 172.17.0.N/16 with
MAC ``02:42:ac:11:00:0N`` and ``default via 172.17.0.1``. The objects are built by
:mod:`.docker`, shared with the ``docker-nat`` lab.

Two paths to look at:

- **container to container, same host**: plain L2 through docker0. The sender ARPs for the peer's
  address on its /16, the bridge learns both MACs and forwards. Nothing is routed and nothing is
  NATed; but with ``bridge-nf-call-iptables=1`` (the fresh-namespace default when br_netfilter is
  loaded) each bridged frame also crosses the filter FORWARD chain, policy DROP, and passes only
  through ``-A FORWARD -i docker0 -o docker0 -j ACCEPT``.
- **container to the outside**: the container's default route sends the packet to docker0's
  address, the host routes it out of eth0 towards the underlay router (the lab's "internet"), and
  ``-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE`` rewrites the source to the host's
  address. The router has no route to 172.17.0.0/16 at all: only the NAT makes the reply come back
  (conntrack reverses the rewrite on the way in).

``--nodes N`` gives N independent Docker hosts, each with its own docker0 on the same /16 (see the
``docker-nat`` lab for what that means); ``--pods N`` is the number of containers per host.

The datapath at its default addresses::

      node1 (Docker host, 192.168.100.11)
      +--------------------------------------------------------------+
      | container1 eth0     container2 eth0     container3 eth0      |
      | 172.17.0.2/16       172.17.0.3/16       172.17.0.4/16        |
      | 02:42:ac:11:00:02   02:42:ac:11:00:03   02:42:ac:11:00:04    |
      |     | vethXXXXXXX       | vethXXXXXXX       | vethXXXXXXX      |
      | ====+===================+===================+==== docker0     |
      |                172.17.0.1/16                                 |
      |   nat POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE |
      | eth0 192.168.100.11/24                                       |
      +------|-------------------------------------------------------+
             |  switch (br0)
      router 192.168.100.1 ("the internet": no route to 172.17.0.0/16)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model import Lab
from ..plan import Plan
from ..topology import resolve
from . import Datapath, docker, hints, underlay
from .hints import Hint, Steps

PREFIX = "container"


@dataclass(frozen=True)
class Options:
    mtu: int = field(default=docker.DEFAULT_MTU, metadata={"min": 576, "max": 9000})  # dockerd --mtu


def plan(lab: Lab) -> Plan:
    topo = resolve(lab)
    p = Plan(lab.name)
    underlay.build(lab, topo, p)
    cs = docker.containers(lab, topo, PREFIX)
    for node in topo.nodes:
        docker.build_host(p, lab, node, docker.on(node, cs), lab.options.mtu)
    return p


def next_steps(lab: Lab, p: Plan) -> Steps:
    """Both paths from the first host's containers, as the plan numbers them (one host is enough:
    the lessons here never cross nodes)."""
    node = hints.nodes(p)[0]
    router = hints.gateway_of(p, node.name)
    mine = hints.pods_on(p, node)
    L, host = lab.name, node.host
    lines: list[hints.Line] = []
    if len(mine) >= 2:
        a, b = mine[0], mine[1]
        lines += ["container to container, plain L2 on docker0:",
                  Hint("  ", f"netlab exec {L} {a.host} -- ping -c 3 {hints.ip_of(p, b.name)}"),
                  Hint("  learned MACs: ", f"netlab exec {L} {host} -- bridge fdb show br docker0 dynamic"),
                  "  bridged frames cross FORWARD (bridge-nf-call-iptables=1), policy DROP; watch the",
                  Hint("  '-i docker0 -o docker0 -j ACCEPT' counter: ", f"netlab exec {L} {host} -- iptables -nvL FORWARD")]
    if mine:
        a = mine[0]
        lines += ["out to the router through MASQUERADE:",
                  Hint("  ", f"netlab exec {L} {a.host} -- ping -c 3 {router}"),
                  Hint(f"  the router sees {hints.ip_of(p, node.name)}, never {hints.ip_of(p, a.name)}: ",
                       f"ip netns exec {hints.router_of(p)} tcpdump -ni eth0 icmp", expect=hints.RUNS),
                  Hint("  the NAT counters: ", f"netlab exec {L} {host} -- iptables -t nat -nvL POSTROUTING")]
    lines += [Hint("Docker's rules: ", f"netlab exec {L} {host} -- iptables -S"),
              Hint("the recipe:     ", f"netlab explain {L}")]
    return Steps(lines)



def validate(lab) -> None:
    if lab.pods > lab.pod_cidr.num_addresses - 3:  # network, docker0 (.1), broadcast
        from ..errors import LabFileError

        raise LabFileError(f"{lab.src}: pods: {lab.pod_cidr} holds {lab.pod_cidr.num_addresses - 3} containers, "
                           f"not {lab.pods}", "use a larger pod_cidr or fewer pods")


DATAPATH = Datapath(
    name="docker-bridge",
    summary="Docker's default bridge: docker0 172.17.0.1/16, veth per container, MASQUERADE, FORWARD DROP",
    plan=plan,
    Options=Options,
    default_pod_cidr=docker.DEFAULT_POOL,
    requires=("bridge", "veth"),
    next_steps=next_steps,
    max_pods=1000,  # docker0's /16 holds 65,533 containers; 1000 is one switch with mininet's N hosts and more
    validate=validate,
)
