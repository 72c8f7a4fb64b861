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

The datapath at its default addresses::

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

from __future__ import annotations

from dataclasses import dataclass, field

from .. import naming
from ..errors import LabFileError
from ..model import Lab
from ..plan import Daemon, Plan, cross_node_pair_or_reason
from ..topology import resolve
from . import Datapath, docker, hints, underlay
from .hints import RUNS, STDIN, Hint, Steps

PREFIX = "executor"


@dataclass(frozen=True)
class Options:
    mtu: int = field(default=docker.DEFAULT_MTU, metadata={"min": 576, "max": 9000})  # dockerd --mtu
    port: int = field(default=7070, metadata={"min": 1, "max": 65535})  # what each executor listens on
    host_port_base: int = field(default=12344, metadata={"min": 1, "max": 65534})  # executor k: base + k
    userland_proxy: bool = True  # dockerd --userland-proxy
    # docker run -p H:C/udp: the executors answer datagrams, and the DNAT, the DOCKER chain's
    # ACCEPT and docker-proxy are UDP's. UDP's conntrack entries are keyed by a 5-tuple that a
    # client with a fixed source port (DNS, statsd) reuses for ever: the stale-entry lesson.
    proto: str = field(default="tcp", metadata={"choices": ("tcp", "udp")})


def containers(lab: Lab) -> list[docker.Container]:
    return docker.containers(lab, resolve(lab), PREFIX, lab.options.port, lab.options.host_port_base,
                             lab.options.proto)


def published(c: docker.Container) -> docker.Publish:
    """An executor's published port: in this lab every container has one (``containers`` is
    called with a port and a host port base)."""
    if c.publish is None:
        raise ValueError(f"{c.name} publishes no port")
    return c.publish


def app(c: docker.Container) -> Daemon:
    """The executor's listener, in the container's namespace."""
    ready = f"{{run}}/{c.ns}.{c.name}.ready"
    pub = published(c)
    proto = ("--proto", pub.proto) if pub.proto != "tcp" else ()
    return Daemon(c.ns, c.name, naming.daemon_argv("whoami", "--name", c.name, "--port", str(pub.container_port),
                                                    *proto, "--ready", ready), ready=ready)


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


#: What the hints feed ``socat -`` on stdin: a line and end of input; whoami answers anyway.
SOCAT_INPUT = "hello\n"


def next_steps(lab: Lab, p: Plan) -> Steps:
    """The plan's first executors of node1 and node2 (the pair whose addresses overlap, the
    lesson), their published ports and the hosts' addresses."""
    pair = cross_node_pair_or_reason(p, routable=False)
    if isinstance(pair, str):
        return Steps([pair, Hint("", f"netlab status {lab.name}")])
    src, dst = pair.src, pair.dst
    n1, n2 = p.host(str(src.node)), p.host(str(dst.node))
    a1, a2 = hints.ip_of(p, n1.name), hints.ip_of(p, n2.name)
    by_ns = {c.ns: c for c in containers(lab)}
    hp, cp = published(by_ns[dst.name]).host_port, published(by_ns[dst.name]).container_port
    own = published(by_ns[src.name]).host_port
    sip, dip = pair.src_ip, pair.dst_ip
    L = lab.name
    sw = hints.switch_of(p, n1.name)
    sock, l4 = ("UDP", "udp") if lab.options.proto == "udp" else ("TCP", "tcp")
    stdin = f"{STDIN}:{SOCAT_INPUT}"
    relay: list[hints.Line] = [
        f"docker-proxy: {src.host} -> its own host {a1}:{own} skips the DNAT (-i docker0 -j RETURN);",
        Hint(f"  the relay answers and reconnects from {hints.ip_of(p, n1.name, docker.BRIDGE)}: ",
             f"netlab exec {L} {src.host} -- socat - {sock}:{a1}:{own}", expect=stdin),
    ] if lab.options.userland_proxy else []
    return Steps([
        f"{src.host} ({n1.host}) and {dst.host} ({n2.host}) are both {sip}: the addresses overlap,",
        f"so pod-to-pod routing is impossible ({src.host} -> {dip} reaches itself).",
        f"The only way across is {dst.host}'s published port {a2}:{hp} -> {dip}:{cp}:",
        Hint("  ", f"netlab exec {L} {src.host} -- socat - {sock}:{a2}:{hp}", expect=stdin),
        f"  answer: '{dst.host} at {dip}:{cp} saw peer {a1}:…' ({sip} never arrives)",
        "Three rewrites on the way:",
        f"  1. SNAT on {n1.host}: POSTROUTING -s {lab.pod_cidr} ! -o docker0 -j MASQUERADE",
        f"     source {sip}:p -> {a1}:p' as the {'SYN' if l4 == 'tcp' else 'datagram'} leaves eth0",
        f"  2. DNAT on {n2.host}: PREROUTING -> DOCKER ! -i docker0 --dport {hp} -j DNAT",
        f"     destination {a2}:{hp} -> {dip}:{cp} (FORWARD: the DOCKER chain's per-port ACCEPT)",
        "  3. the reply: conntrack reverses both, no rule needed",
        f"     {n2.host}: source {dip}:{cp} -> {a2}:{hp}; {n1.host}: destination {a1}:p' -> {sip}:p",
        *relay,
        "Where to look:",
        Hint("  on the wire:  ", f"ip netns exec {sw} tcpdump -ni br0 {l4} port {hp}", expect=RUNS),
        Hint(f"  in {dst.host}: ", f"netlab exec {L} {dst.host} -- tcpdump -ni eth0 {l4} port {cp}", expect=RUNS),
        Hint("  conntrack:    ", f"netlab exec {L} {n2.host} -- cat /proc/net/nf_conntrack", "(both tuples)"),
        Hint("  counters:     ", f"netlab exec {L} {n2.host} -- iptables -t nat -L DOCKER -nv"),
        Hint("  the recipe:   ", f"netlab explain {L}"),
    ])



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
)
