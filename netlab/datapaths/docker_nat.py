"""Docker's NAT problem (DATAPATHS.md §1, the seed's Spark example): two Docker hosts, one address pool.

Every Docker host owns a ``docker0`` on the *same* 172.17.0.0/16 and numbers its containers from
.2, so executor1 on node1 and executor3 on node2 are both ``172.17.0.2``. No route can tell them
apart: from executor1, 172.17.0.2 is executor1 itself. Containers on different hosts cannot reach
each other by address at all; the only way across is a *published port* (``docker run -p``).

Executors are numbered across the lab (``--pods`` per host, default 2): node1 runs executor1 and
executor2, node2 executor3 and executor4. Each listens on TCP 7070 (a small netlab program,
:mod:`netlab.daemons.whoami`, that replies with its own name and the peer address it saw), and
executor k is published as ``<its host>:<12344 + k>``: executor1 as node1:12345, executor3 as
node2:12347, with Docker 20.10's rules for ``-p 12347:7070`` (see :func:`.docker.ruleset`).

executor1 reaching executor3 therefore connects to ``192.168.100.12:12347``, and three rewrites
happen on the way:

1. **SNAT on node1** (nat POSTROUTING): ``-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE`` turns the
   source 172.17.0.2:p into 192.168.100.11:p' as the SYN leaves through eth0;
2. **DNAT on node2** (nat PREROUTING -> DOCKER): ``! -i docker0 -p tcp --dport 12347 -j DNAT
   --to-destination 172.17.0.2:7070``; the filter DOCKER chain's per-port ACCEPT lets the new
   connection through FORWARD (policy DROP). executor3 sees the peer 192.168.100.11:p';
3. **the reply's reverse translation**, by conntrack and without any rule: node2 rewrites the
   source 172.17.0.2:7070 back to 192.168.100.12:12347, node1 the destination 192.168.100.11:p'
   back to 172.17.0.2:p. ``/proc/net/nf_conntrack`` on each node holds both tuples.

The application pays for it: executor3 only ever learns "192.168.100.11", which is why Spark
needs ``spark.driver.host`` / ``bindAddress`` and explicit port settings behind Docker NAT.

**docker-proxy.** With Docker's default ``--userland-proxy=true`` every published port also has a
``docker-proxy`` process listening on the host. netlab runs a stand-in for it, a TCP relay
(:mod:`netlab.daemons.docker_proxy`, with docker-proxy's own arguments) in the node namespace, one
per published port and address family (``0.0.0.0`` and ``::``, as Docker 20.10.24 runs two), so
the two paths the DNAT rules deliberately skip work as on a real host, and ``[::1]:12345`` answers too:
``127.0.0.1:12345`` on node1 (``OUTPUT ! -d 127.0.0.0/8``), and a container reaching its *own*
host's published port (``DOCKER -i docker0 -j RETURN``); in both cases the container sees the
peer 172.17.0.1, the relay's address, not the client's. With ``-o userland_proxy=false`` the lab
switches to Docker's other mode instead: no relays, DNAT without ``! -i docker0``, hairpin on
every docker0 port, ``route_localnet=1`` and the extra ``--src-type LOCAL -o docker0`` MASQUERADE.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import LabFileError
from ..model import Lab
from ..plan import Daemon, Plan
from ..topology import resolve
from . import Datapath, docker, underlay

PREFIX = "executor"


@dataclass(frozen=True)
class Options:
    mtu: int = field(default=docker.DEFAULT_MTU, metadata={"min": 576, "max": 9000})  # dockerd --mtu
    port: int = field(default=7070, metadata={"min": 1, "max": 65535})  # what each executor listens on
    host_port_base: int = field(default=12344, metadata={"min": 1, "max": 65534})  # executor k: base + k
    userland_proxy: bool = True  # dockerd --userland-proxy


def containers(lab: Lab) -> list[docker.Container]:
    return docker.containers(lab, resolve(lab), PREFIX, lab.options.port, lab.options.host_port_base)


def published(c: docker.Container) -> docker.Publish:
    """An executor's published port: in this lab every container has one (``containers`` is
    called with a port and a host port base)."""
    if c.publish is None:
        raise ValueError(f"{c.name} publishes no port")
    return c.publish


def app(c: docker.Container) -> Daemon:
    """The executor's listener, in the container's namespace."""
    ready = f"{{run}}/{c.ns}.{c.name}.ready"
    return Daemon(c.ns, c.name, docker.daemon_argv("whoami", "--name", c.name, "--port", str(published(c).container_port),
                                                    "--ready", ready), ready=ready)


def plan(lab: Lab) -> Plan:
    topo = resolve(lab)
    p = Plan(lab.name)
    underlay.build(lab, topo, p)
    cs = containers(lab)
    for node in topo.nodes:
        docker.build_host(p, lab, node, docker.on(node, cs), lab.options.mtu, lab.options.userland_proxy)
    for c in cs:
        p.add(app(c))
    if lab.options.userland_proxy:
        for c in cs:
            p.add(*docker.proxies(c.node, published(c)))
    return p


def validate(lab: Lab) -> None:
    last = lab.options.host_port_base + lab.nodes * lab.pods
    if last > 65535:
        raise LabFileError(f"{lab.src}: options.host_port_base: {lab.options.host_port_base} + "
                           f"{lab.nodes * lab.pods} executors runs past port 65535",
                           f"use options.host_port_base <= {65535 - lab.nodes * lab.pods} or fewer nodes/pods")
    if lab.pods < 1:
        raise LabFileError(f"{lab.src}: pods: docker-nat needs at least one executor per node (got {lab.pods})",
                           "use --pods 1 or more")


def next_steps(lab: Lab, p: Plan) -> str:
    topo = resolve(lab)
    cs = containers(lab)
    n1, n2 = topo.nodes[0], topo.nodes[1]
    src, dst = docker.on(n1, cs)[0], docker.on(n2, cs)[0]
    hp, cp = published(dst).host_port, published(dst).container_port
    L = lab.name
    sw = n1.rack.ns
    return "\n".join([
        f"{src.name} ({n1.name}) and {dst.name} ({n2.name}) are both {src.ip.ip}: the addresses overlap,",
        f"so pod-to-pod routing is impossible ({src.name} -> {dst.ip.ip} reaches itself).",
        f"The only way across is {dst.name}'s published port {n2.addr}:{hp} -> {dst.ip.ip}:{cp}:",
        f"  netlab exec {L} {src.name} -- socat - TCP:{n2.addr}:{hp}",
        f"  answer: '{dst.name} at {dst.ip.ip}:{cp} saw peer {n1.addr}:…' ({src.ip.ip} never arrives)",
        "Three rewrites on the way:",
        f"  1. SNAT on {n1.name}: POSTROUTING -s {lab.pod_cidr} ! -o docker0 -j MASQUERADE",
        f"     source {src.ip.ip}:p -> {n1.addr}:p' as the SYN leaves eth0",
        f"  2. DNAT on {n2.name}: PREROUTING -> DOCKER ! -i docker0 --dport {hp} -j DNAT",
        f"     destination {n2.addr}:{hp} -> {dst.ip.ip}:{cp} (FORWARD: the DOCKER chain's per-port ACCEPT)",
        "  3. the reply: conntrack reverses both, no rule needed",
        f"     {n2.name}: source {dst.ip.ip}:{cp} -> {n2.addr}:{hp}; {n1.name}: destination {n1.addr}:p' -> {src.ip.ip}:p",
        *([f"docker-proxy: {src.name} -> its own host {n1.addr}:{published(src).host_port} skips the DNAT "
           "(-i docker0 -j RETURN);",
           f"  the relay answers and reconnects from {docker.gateway(lab.pod_cidr).ip}: netlab exec {L} {src.name} -- "
           f"socat - TCP:{n1.addr}:{published(src).host_port}"] if lab.options.userland_proxy else []),
        "Where to look:",
        f"  on the wire:  ip netns exec {sw} tcpdump -ni br0 tcp port {hp}",
        f"  in {dst.name}: netlab exec {L} {dst.name} -- tcpdump -ni eth0 tcp port {cp}",
        f"  conntrack:    netlab exec {L} {n2.name} -- cat /proc/net/nf_conntrack   (both tuples)",
        f"  counters:     netlab exec {L} {n2.name} -- iptables -t nat -L DOCKER -nv",
        f"  the recipe:   netlab explain {L}",
    ])


PICTURE = r"""
  node1 192.168.100.11                              node2 192.168.100.12
  +-------------------------------+                 +-------------------------------+
  | executor1 172.17.0.2 :7070    |                 | executor3 172.17.0.2 :7070    |
  | executor2 172.17.0.3 :7070    |                 | executor4 172.17.0.3 :7070    |
  |   docker0 172.17.0.1/16       |                 |   docker0 172.17.0.1/16       |
  | (1) SNAT: MASQUERADE          |                 | (2) DNAT :12347 -> .0.2:7070  |
  |   172.17.0.2 -> .100.11       |                 |   published: 12347, 12348     |
  | published: 12345, 12346       |                 | (3) replies: conntrack        |
  | eth0 ------------------------ switch br0 ------------------------------- eth0 |
  +-------------------------------+                 +-------------------------------+
"""

DATAPATH = Datapath(
    name="docker-nat",
    summary="Two Docker hosts on the same 172.17.0.0/16: only published ports (SNAT + DNAT + conntrack) connect them",
    plan=plan,
    Options=Options,
    default_pod_cidr=docker.DEFAULT_POOL,
    min_nodes=2,
    requires=("bridge", "veth"),
    validate=validate,
    next_steps=next_steps,
    picture=PICTURE,
)
