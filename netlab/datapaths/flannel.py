"""What every flannel backend shares: the /24 lease per node and flanneld's iptables rules.

Leases: flannel splits the network (kube-flannel default 10.244.0.0/16) into /24s (``SubnetLen``
is 24 when the network is /22 or larger); node X holds ``10.244.X.0/24`` here.

iptables (``--ip-masq``, current flannel ``pkg/trafficmngr/iptables``): a nat chain
``FLANNEL-POSTRTG`` that leaves pod-to-pod traffic alone and masquerades pod traffic leaving the
cluster network, and a filter chain ``FLANNEL-FWD`` that accepts forwarding to and from the pod
network (so a FORWARD policy of DROP, as Docker sets, does not break pods). The first rule skips
packets kube-proxy marked (0x4000) to avoid a double NAT.
"""

from __future__ import annotations

from ipaddress import IPv4Network

from ..encap import Encap, check_mtu
from ..errors import LabFileError
from ..plan import Rule, Ruleset
from ..topology import Node

KUBE_PROXY_MARK = "0x4000/0x4000"


def lease(cluster: IPv4Network, node: Node) -> IPv4Network:
    """Node X's /24: the X-th /24 of the cluster network (the 0th is left unused, as in the
    seed's pictures where node 1 has 10.244.1.0/24)."""
    return IPv4Network((int(cluster.network_address) + node.index * 256, 24))


def check_leases(lab) -> None:
    if lab.pod_cidr.prefixlen > 22:
        raise LabFileError(f"{lab.src}: pod_cidr: {lab.pod_cidr} is too small for flannel",
                           "flannel hands each node a /24: use a /22 or larger network (default 10.244.0.0/16)")
    room = 2 ** (24 - lab.pod_cidr.prefixlen) - 1
    if lab.nodes > room:
        raise LabFileError(f"{lab.src}: pod_cidr: {lab.pod_cidr} holds {room} node /24s, not {lab.nodes}",
                           f"use a larger pod_cidr (a /{24 - (lab.nodes + 1).bit_length()} holds {lab.nodes} nodes: "
                           f"--pod-cidr or pod_cidr) or fewer nodes")


def masq_rules(ns: str, cluster: IPv4Network, subnet: IPv4Network) -> Ruleset:
    c, s = str(cluster), str(subnet)
    masq = '-m comment --comment "flanneld masq"'
    fwd = '-m comment --comment "flanneld forward"'
    return Ruleset(
        ns,
        chains=(("nat", "FLANNEL-POSTRTG"), ("filter", "FLANNEL-FWD")),
        rules=(
            Rule("nat", "POSTROUTING", f"{masq} -j FLANNEL-POSTRTG"),
            Rule("nat", "FLANNEL-POSTRTG", f"-m mark --mark {KUBE_PROXY_MARK} {masq} -j RETURN"),
            Rule("nat", "FLANNEL-POSTRTG", f"-s {s} -d {c} {masq} -j RETURN"),
            Rule("nat", "FLANNEL-POSTRTG", f"-s {c} -d {s} {masq} -j RETURN"),
            Rule("nat", "FLANNEL-POSTRTG", f"! -s {c} -d {s} {masq} -j RETURN"),
            Rule("nat", "FLANNEL-POSTRTG", f"-s {c} ! -d 224.0.0.0/4 {masq} -j MASQUERADE --random-fully"),
            Rule("nat", "FLANNEL-POSTRTG", f"! -s {c} -d {c} {masq} -j MASQUERADE --random-fully"),
            Rule("filter", "FORWARD", f"{fwd} -j FLANNEL-FWD"),
            Rule("filter", "FLANNEL-FWD", f"-s {c} {fwd} -j ACCEPT"),
            Rule("filter", "FLANNEL-FWD", f"-d {c} {fwd} -j ACCEPT"),
        ),
    )


def validate(lab, encap: Encap | None = None) -> None:
    """Leases fit, and the pod MTU plus the backend's encapsulation (if any) fits the underlay."""
    check_leases(lab)
    check_mtu(lab, encap)
