"""What Docker's default bridge network is made of, shared by the ``docker-bridge`` and ``docker-nat``
datapaths (DATAPATHS.md §1: libnetwork's ``bridge`` driver, Docker 20.10 line).

This is a helper module, not a datapath: it defines no ``DATAPATH``.

Per Docker host (a lab *node*):

- ``docker0``: a Linux bridge holding the first host address of the pool (``172.17.0.1/16``),
  a random ``02:42:xx:xx:xx:xx`` MAC (netlab: ``02:42`` and a hash), the network MTU,
  txqueuelen 0 and ``accept_ra=0``. The connected route
  ``172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1`` comes with the address.
- per container: a veth pair, txqueuelen 0 on both ends (libnetwork's ``TxQLen: 0``, which the
  Go netlink library sends as IFLA_TXQLEN). The host end is ``veth`` + 7 hex characters, a port of docker0;
  the container end is ``eth0`` with ``172.17.0.N/16``, the MAC ``02:42:`` + the four address
  bytes (``genMAC``), and ``default via 172.17.0.1``. Nothing static in the neighbour tables or
  the FDB: ARP and bridge learning do the work, so two containers on one host talk over plain L2.
- Docker's iptables rules (:func:`ruleset`), loaded in one ``iptables-restore --noflush``.

Every Docker host numbers its containers from ``.2`` again in the *same* ``172.17.0.0/16``: the
pool is local to the host. That is why containers on different hosts cannot route to each other
and need published ports (the ``docker-nat`` lab).

Sysctls, and why the lab sets so few of them:

- ``ip_forward=1`` is already set by :mod:`.underlay` on every node. dockerd only writes it when it
  finds 0, and *then* also sets ``iptables -P FORWARD DROP``. A fresh network namespace starts with
  ``ip_forward=0``, so on this "fresh host" Docker would do both: the ruleset carries that DROP.
- ``bridge-nf-call-iptables`` is left alone, as Docker 20.10 leaves it alone with the default
  ``icc=true``. In a fresh namespace it is **1** whenever ``br_netfilter`` is loaded (DATAPATHS.md
  §8), so frames *bridged* between two containers on docker0 also walk the filter FORWARD chain,
  whose policy is DROP. What lets them through is ``-A FORWARD -i docker0 -o docker0 -j ACCEPT``
  (icc=true). Where br_netfilter is not loaded the sysctl does not exist, bridged frames skip
  iptables, and the lab still works; pinning it would make ``up`` fail on such a host.
- ``net.ipv6.conf.docker0.accept_ra=0`` as dockerd's ``setupDefaultSysctl`` writes it.

docker-proxy (:func:`proxies`): with IPv6 in the host namespace, Docker 20.10.24 runs *two* per
published port, one on ``0.0.0.0`` and one on ``::``, so ``[::1]:port`` answers as well as
``127.0.0.1:port``.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from .. import naming
from ..model import Lab
from ..plan import Addr, Bridge, Daemon, Netns, Plan, Route, Rule, Ruleset, Sysctl, Veth, VethEnd
from ..topology import Node, Topology, nth_host

BRIDGE = "docker0"
VETH_PREFIX = "veth"  # libnetwork's vethPrefix
VETH_LEN = 7  # libnetwork's vethLen: random hex characters after the prefix
DEFAULT_POOL = "172.17.0.0/16"  # the first of the local-scope default pools (ipamutils)
DEFAULT_MTU = 1500  # dockerd --mtu default


@dataclass(frozen=True)
class Publish:
    """``docker run -p HOST_PORT:CONTAINER_PORT[/udp]``: one published port of one container."""

    host_port: int
    container_ip: str
    container_port: int
    proto: str = "tcp"


@dataclass(frozen=True)
class Container:
    """One container on one Docker host.

    ``number`` counts containers across the whole lab (executor1, executor2 on node1, executor3 on
    node2, …) while ``index`` counts on its own host and picks the address: ``.1+index``.
    """

    name: str  # "executor3": also what a user types (netlab exec <lab> executor3 -- …)
    number: int
    index: int
    node: Node
    ns: str
    ip: IPv4Interface  # 172.17.0.2/16
    mac: str  # 02:42:ac:11:00:02
    veth: str  # host end, veth + 7 hex
    publish: Publish | None = None


def gateway(network: IPv4Network) -> IPv4Interface:
    """docker0's address: the first host address of the pool (``172.17.0.1/16``)."""
    return IPv4Interface((int(nth_host(network, 1)), network.prefixlen))


def container_mac(ip: IPv4Address) -> str:
    """libnetwork's ``genMAC``: ``02:42`` followed by the four bytes of the IPv4 address.

    ``02`` sets the locally-administered bit, and the MAC is a pure function of the address, so
    a container that gets the same IP again also gets the same MAC (no stale ARP entries).
    """
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)


def host_veth(lab: str, node: str, container: str, taken: set[str]) -> str:
    """The host end's name: ``veth`` + 7 hex characters.

    libnetwork draws the characters at random and retries on a clash; netlab hashes the
    container's identity (so the plan is a pure function of the lab file and ``status`` can name
    the interface), and re-hashes with a salt on the rare clash within one host.
    """
    salt = 0
    while True:
        parts = (lab, node, container) if salt == 0 else (lab, node, container, str(salt))
        name = VETH_PREFIX + naming.digest(*parts).hex()[:VETH_LEN]
        if name not in taken:
            taken.add(name)
            return name
        salt += 1


def containers(lab: Lab, topo: Topology, prefix: str, port: int | None = None,
               host_port_base: int | None = None, proto: str = "tcp") -> list[Container]:
    """Name and address every container of the lab: ``<prefix><number>``, numbered across hosts.

    With ``port`` and ``host_port_base``, container number k publishes ``port`` as
    ``<its host>:<host_port_base + k>`` (executor1 -> node1:12345, executor3 -> node2:12347).
    """
    out: list[Container] = []
    number = 0
    for node in topo.nodes:
        taken: set[str] = set()
        for index in range(1, lab.pods + 1):
            number += 1
            name = f"{prefix}{number}"
            ip = IPv4Interface((int(nth_host(lab.pod_cidr, index + 1)), lab.pod_cidr.prefixlen))
            pub = None
            if port is not None and host_port_base is not None:
                pub = Publish(host_port_base + number, str(ip.ip), port, proto)
            out.append(Container(name, number, index, node, naming.ns(lab.name, node.name, name), ip,
                                 container_mac(ip.ip), host_veth(lab.name, node.name, name, taken), pub))
    return out


def on(node: Node, cs: list[Container]) -> list[Container]:
    return [c for c in cs if c.node == node]


def dockerd_ipv6(mtu: int) -> bool:
    """Whether docker0 keeps its IPv6 settings: the kernel removes IPv6 (and its
    /proc/sys/net/ipv6/conf/<dev>/ directory) from a device whose MTU is below 1280."""
    return mtu >= 1280


def build_host(plan: Plan, lab: Lab, node: Node, cs: list[Container], mtu: int,
               userland_proxy: bool = True) -> None:
    """docker0, the containers and the iptables rules of one Docker host."""
    gw = gateway(lab.pod_cidr)
    plan.add(
        Bridge(node.ns, BRIDGE, mtu=mtu, mac=naming.docker_mac(lab.name, node.name, BRIDGE), txqueuelen=0),
        Addr(node.ns, BRIDGE, str(gw)),
        # dockerd skips this write when the file is missing (IPv6 off, or an MTU below IPv6's
        # minimum of 1280, which makes the kernel drop IPv6 from the device): so does netlab
        Sysctl(node.ns, f"net/ipv6/conf/{BRIDGE}/accept_ra", "0", required=dockerd_ipv6(mtu)),
    )
    if not userland_proxy:
        # --userland-proxy=false: 127.0.0.1:port must reach a container through DNAT, so the
        # kernel has to accept a 127/8 source on docker0.
        plan.add(Sysctl(node.ns, f"net/ipv4/conf/{BRIDGE}/route_localnet", "1"))
    for c in cs:
        plan.add_ns(Netns(c.ns, "pod", c.name, node=node.name))
        plan.add(
            # Without the userland proxy Docker turns hairpin on, so a container can reach its
            # own published port through the host (the frame goes back out of the port it came in).
            Veth(VethEnd(node.ns, c.veth, mtu=mtu, master=BRIDGE, hairpin=not userland_proxy, txqueuelen=0),
                 VethEnd(c.ns, "eth0", mtu=mtu, mac=c.mac, txqueuelen=0)),
            Addr(c.ns, "eth0", str(c.ip)),
            Route(c.ns, "default", via=str(gw.ip), dev="eth0"),
        )
    plan.add(ruleset(node.ns, lab.pod_cidr, [c.publish for c in cs if c.publish], userland_proxy))


def ruleset(ns: str, network: IPv4Network, ports: list[Publish], userland_proxy: bool = True) -> Ruleset:
    """Docker 20.10's iptables rules for the default bridge, in ``iptables-save`` syntax.

    The walk of a packet, nat table first:

    - ``PREROUTING``/``OUTPUT`` send packets *addressed to this host* (``--dst-type LOCAL``) to the
      ``DOCKER`` chain; that is where published ports are DNATed to a container. ``! -i docker0``
      on the DNAT (and ``-i docker0 -j RETURN`` ahead of it) keep containers' own connections to
      hostIP:port away from the DNAT: with the userland proxy those are served by docker-proxy's
      listening socket. OUTPUT skips 127/8 for the same reason.
    - ``POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE``: anything a container sends off
      the host leaves with the host's address. The per-port self-MASQUERADE covers a container
      reaching its own published port through the host.

    filter table: ``FORWARD`` policy DROP, then Docker's chains in the order they are jumped to:
    ``DOCKER-USER`` (the admin's hook, empty), ``DOCKER-ISOLATION-STAGE-1/2`` (traffic between two
    different Docker bridges is dropped), replies to containers, ``DOCKER`` (the per-port ACCEPTs:
    new connections *into* a container are only allowed for published ports), containers going
    out, and container-to-container on docker0 (icc=true).
    """
    net = str(network)
    b = BRIDGE
    nat: list[Rule] = [Rule("nat", "PREROUTING", "-m addrtype --dst-type LOCAL -j DOCKER")]
    if userland_proxy:
        nat.append(Rule("nat", "OUTPUT", "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER"))
    else:
        nat.append(Rule("nat", "OUTPUT", "-m addrtype --dst-type LOCAL -j DOCKER"))
    nat.append(Rule("nat", "POSTROUTING", f"-s {net} ! -o {b} -j MASQUERADE"))
    if not userland_proxy:
        nat.append(Rule("nat", "POSTROUTING", f"-o {b} -m addrtype --src-type LOCAL -j MASQUERADE"))
    for p in ports:
        nat.append(Rule("nat", "POSTROUTING", f"-s {p.container_ip}/32 -d {p.container_ip}/32 -p {p.proto} "
                                              f"-m {p.proto} --dport {p.container_port} -j MASQUERADE"))
    if userland_proxy:
        nat.append(Rule("nat", "DOCKER", f"-i {b} -j RETURN"))
    skip = f"! -i {b} " if userland_proxy else ""
    for p in ports:
        nat.append(Rule("nat", "DOCKER", f"{skip}-p {p.proto} -m {p.proto} --dport {p.host_port} "
                                         f"-j DNAT --to-destination {p.container_ip}:{p.container_port}"))
    filt: list[Rule] = [
        Rule("filter", "FORWARD", "-j DOCKER-USER"),
        Rule("filter", "FORWARD", "-j DOCKER-ISOLATION-STAGE-1"),
        Rule("filter", "FORWARD", f"-o {b} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        Rule("filter", "FORWARD", f"-o {b} -j DOCKER"),
        Rule("filter", "FORWARD", f"-i {b} ! -o {b} -j ACCEPT"),
        Rule("filter", "FORWARD", f"-i {b} -o {b} -j ACCEPT"),
    ]
    for p in ports:
        filt.append(Rule("filter", "DOCKER", f"-d {p.container_ip}/32 ! -i {b} -o {b} -p {p.proto} "
                                             f"-m {p.proto} --dport {p.container_port} -j ACCEPT"))
    filt += [
        Rule("filter", "DOCKER-ISOLATION-STAGE-1", f"-i {b} ! -o {b} -j DOCKER-ISOLATION-STAGE-2"),
        Rule("filter", "DOCKER-ISOLATION-STAGE-1", "-j RETURN"),
        Rule("filter", "DOCKER-ISOLATION-STAGE-2", f"-o {b} -j DROP"),
        Rule("filter", "DOCKER-ISOLATION-STAGE-2", "-j RETURN"),
        Rule("filter", "DOCKER-USER", "-j RETURN"),
    ]
    return Ruleset(
        ns,
        rules=tuple(nat + filt),
        chains=(("nat", "DOCKER"), ("filter", "DOCKER"), ("filter", "DOCKER-ISOLATION-STAGE-1"),
                ("filter", "DOCKER-ISOLATION-STAGE-2"), ("filter", "DOCKER-USER")),
        policies=(("filter", "FORWARD", "DROP"),),
    )


def proxy(node: Node, p: Publish, host_ip: str = "0.0.0.0") -> Daemon:
    """The stand-in for ``docker-proxy``, with docker-proxy's own arguments, in the host namespace.

    ``host_ip`` ``::`` is the IPv6 twin (daemon ``docker-proxy-<port>-v6``): it listens on
    ``[::]:port`` only (IPV6_V6ONLY, as docker-proxy's ``tcp6`` listener, so it and the IPv4 one
    can hold the same port) and relays to the container's IPv4 address."""
    name = f"docker-proxy-{p.host_port}" + ("-v6" if ":" in host_ip else "")
    return Daemon(node.ns, name, naming.daemon_argv(
        "docker_proxy", "-proto", p.proto, "-host-ip", host_ip, "-host-port", str(p.host_port),
        "-container-ip", p.container_ip, "-container-port", str(p.container_port),
        "--ready", f"{{run}}/{node.ns}.{name}.ready"), ready=f"{{run}}/{node.ns}.{name}.ready")


def proxies(node: Node, p: Publish) -> list[Daemon]:
    """Both docker-proxies dockerd 20.10 starts for a published port: ``0.0.0.0`` and ``::``.

    Without an ip6tables DNAT, ``[::1]:port`` and ``[<host IPv6>]:port`` are only served by the
    ``::`` proxy's socket, which is why real Docker answers on IPv6 loopback at all."""
    return [proxy(node, p), proxy(node, p, "::")]
