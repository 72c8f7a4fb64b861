"""What to try after ``netlab up``, as data: each command a :class:`Hint` that declares what it
should do when run, next to the text a user reads.

Hints are lessons, and some are meant to fail (flannel's unleased address answers with an ICMP
error, host-gw across racks is refused) or never to end (``tcpdump``). Declaring that where the
hint is written lets a test run every hint ``up`` prints and check each against its own
declaration, instead of guessing from the text.

This module is a helper, not a datapath (it defines no ``DATAPATH``). The small readers below take
addresses and neighbours from the plan, so a hint shows what the lab was built with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Union

from ..encap import ETHERNET, Encap
from ..plan import Addr, Netns, Plan, PodPair, Route, Veth, cross_node_pair

OK = "ok"  # exits 0
RUNS = "runs"  # runs until stopped (a capture): still running after a moment, or exited 0
FAILS = "fails"  # "fails:<message>": exits non-zero, the message in its output (the lesson)
STDIN = "stdin"  # "stdin:<text>": reads stdin; fed <text>, exits 0
KINDS = (OK, RUNS, FAILS, STDIN)
REMARK_SEP = "   "  # between a command and its parenthesised remark, so a copied command ends there


@dataclass(frozen=True)
class Hint:
    """One command to try. ``label`` is the text in front of it, padding included, so a block of
    hints keeps its columns; ``remark`` follows after :data:`REMARK_SEP`."""

    label: str
    command: str
    remark: str = ""
    expect: str = OK

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"hint {self.command!r}: expect {self.expect!r} is not one of {KINDS}")
        if self.kind in (FAILS, STDIN) and not self.arg:
            raise ValueError(f"hint {self.command!r}: expect {self.kind} needs ':<text>'")

    @property
    def kind(self) -> str:
        return self.expect.partition(":")[0]

    @property
    def arg(self) -> str:
        """The expected message (``fails``) or the text to feed (``stdin``)."""
        return self.expect.partition(":")[2]

    def render(self) -> str:
        return self.label + self.command + (REMARK_SEP + self.remark if self.remark else "")


Line = Union[Hint, str]  # a str is prose between hints


class Steps(str):
    """The rendered next steps, one line per item, still carrying the items they came from.

    A str so that everything that reads next steps as text (``up``, tests looking for a phrase)
    keeps working; :attr:`hints` is what a caller that runs them reads.
    """

    items: tuple[Line, ...]

    def __new__(cls, items: Iterable[Line] = ()) -> Steps:
        kept = tuple(items)
        self = super().__new__(cls, "\n".join(i.render() if isinstance(i, Hint) else i for i in kept))
        self.items = kept
        return self

    @property
    def hints(self) -> list[Hint]:
        return [i for i in self.items if isinstance(i, Hint)]


def col(width: int, label: str, command: str, remark: str = "", expect: str = OK) -> Hint:
    """A hint whose label is padded to ``width`` characters (one column per datapath's block)."""
    return Hint(f"{label:<{width}}", command, remark, expect)


def pod_pair_steps(lab: str, plan: Plan, lines: Callable[[PodPair, str], list[Line]]) -> Steps:
    """The next steps of a lab whose lessons are about pods on different nodes.

    ``lines`` gets the plan's cross-node pod pair and the switch namespace the pair's source node
    is plugged into, which is where the underlay traffic between the nodes can be watched. A plan
    without such a pair (one node, or overlapping pod addresses) only gets ``netlab status``:
    there is no pod-to-pod path across nodes to try.
    """
    pair = cross_node_pair(plan)
    if pair is None:
        return Steps([Hint("", f"netlab status {lab}")])
    return Steps(lines(pair, switch_of(plan, plan.host(str(pair.src.node)).name)))


def encap_capture(width: int, label: str, switch: str, encap: Encap) -> Hint:
    """Watch the encapsulated packets on the underlay switch, with the filter the encapsulation
    implies: its UDP port, or IP protocol 4 for IPIP (which has no port).

    How tcpdump shows them differs by what the tunnel carries: a VXLAN frame is decoded all the
    way in by tcpdump itself, and ``-e`` adds both the outer and the inner MACs; bare IP in UDP
    on a port tcpdump does not know stays an opaque payload, so ``-X`` prints it in hex, where
    the inner IPv4 header (``45 00 …``) can be read; IPIP is decoded natively and needs nothing.
    """
    if encap.udp_port is None:
        return col(width, label, f"ip netns exec {switch} tcpdump -ni br0 ip proto 4", expect=RUNS)
    flag = "-e" if encap.carries == ETHERNET else "-X"
    return col(width, label, f"ip netns exec {switch} tcpdump -ni br0 {flag} udp port {encap.udp_port}", expect=RUNS)


# -- what the hints print, read from the plan --------------------------------------------------------

def nodes(plan: Plan) -> list[Netns]:
    return [n for n in plan.namespaces if n.role == "node"]


def pods_on(plan: Plan, node: Netns) -> list[Netns]:
    return [p for p in plan.namespaces if p.role == "pod" and p.node == node.host]


def ip_of(plan: Plan, ns: str, dev: str = "eth0") -> str:
    """The address the plan gives ``dev`` in ``ns`` (without its prefix length)."""
    return next(str(a.interface.ip) for a in plan.of(Addr) if a.ns == ns and a.dev == dev)


def gateway_of(plan: Plan, ns: str) -> str:
    """The default route's next hop the plan gives ``ns``."""
    return next(str(r.via) for r in plan.of(Route) if r.ns == ns and r.dst == "default" and r.via)


def switch_of(plan: Plan, ns: str) -> str:
    """The switch namespace ``ns``'s eth0 is plugged into (its rack's)."""
    return next(v.b.ns for v in plan.of(Veth) if v.a.ns == ns and v.a.name == "eth0")


def router_of(plan: Plan) -> str:
    return next(n.name for n in plan.namespaces if n.role == "router")
