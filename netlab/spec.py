"""Kinds of plan objects, each declared once: its phase, and each field's words in every layer.

Every class in :mod:`netlab.plan` carries a ``SPEC`` (a :class:`Kind`), in the spirit of scapy's
``fields_desc`` and pyroute2's ``nla_map``. For each field it says

- the ``iproute2`` keyword ``explain`` prints it with (``mtu``, ``dstport``, ``via``),
- the netlink attribute that carries it, in pyroute2's spelling (``IFLA_VXLAN_PORT``); the
  kernel layer resolves the number and the wire type from pyroute2's own ``nla_map``, so apply
  encodes it and verify reads it back under the same name,
- whether ``None`` means "the kernel's choice" (not set, not checked) and which value is the
  kernel's default (not sent, not printed, but still checked).

The four layers loop over these declarations instead of knowing kinds one by one:
:mod:`netlab.kernel.apply` (create), :mod:`netlab.kernel.verify` (read back and diff, so every
declared field is checked by construction), :mod:`netlab.explain` (the shell script) and the
trace's list of interfaces. Teardown needs no per-kind code at all: it deletes the lab's
namespaces, and everything in them goes with them.

:data:`PHASES` is the one apply order. Within a phase objects keep plan order, which matters:
flannel installs a remote VTEP's neighbour and FDB entries before the onlink route that uses
them, and Calico's pod needs ``169.254.1.1 dev eth0 scope link`` before ``default via
169.254.1.1``. Links also have a ``round``: a bridge exists before a veth end joins it, and a
veth end (a node's eth0) exists before the VXLAN device that sends through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Phase:
    """One step of bring-up. ``check`` is how verify reads this phase back: ``link`` (one
    interface per end), ``entry`` (an address, neighbour, FDB entry or route, found by its key
    fields and then diffed), or the name of a special reader (``sysctl``, ``iptables``, ``file``,
    ``daemon``)."""

    name: str
    title: str
    check: str


PHASES: tuple[Phase, ...] = (
    Phase("links", "links", "link"),
    Phase("addresses", "addresses", "entry"),
    Phase("sysctls", "sysctls", "sysctl"),
    Phase("neighbours", "permanent neighbours", "entry"),
    Phase("fdb", "fdb entries", "entry"),
    Phase("routes", "routes", "entry"),
    Phase("iptables", "iptables", "iptables"),
    Phase("files", "files", "file"),
    Phase("daemons", "daemons", "daemon"),
)
PHASE = {p.name: p for p in PHASES}


@dataclass(frozen=True)
class Field:
    """One field of a plan object.

    ``ip``: the iproute2 keyword. Empty: printed bare, in field order (a route's destination).
    For a bool, ``"word"`` prints the word when true (``onlink``) and ``"yes|no"`` one of two
    words (``learning|nolearning``). None: ``explain`` does not print it here (a veth end's
    master is set by its own command).

    ``nla``: the netlink attribute, in pyroute2's name; ``where`` says which message part holds
    it: ``link`` (top-level IFLA_*), ``data`` (IFLA_INFO_DATA of the link's kind) or ``brport``
    (bridge port flags, IFLA_PROTINFO).

    ``ref``: the value names an interface in the same namespace, sent and read as its ifindex.
    ``optional``: None means "the kernel's choice": not sent, not printed, not checked.
    ``default``: the kernel's value when the attribute is not sent: apply and explain leave it
    out, verify still checks it. ``key``: an entry is found by its key fields, then diffed on the
    others. ``shown``: how iproute2 spells a value, where it differs (scope ``universe`` is
    ``global`` to ``ip route``).
    """

    name: str
    ip: str | None = ""
    nla: str | None = None
    where: str = "link"
    ref: bool = False
    optional: bool = False
    default: Any = None
    key: bool = False
    shown: tuple[tuple[Any, str], ...] = ()

    def words(self, value: Any) -> str:
        """The field as explain prints it ('' when it is left out)."""
        if self.ip is None or value is None or (self.default is not None and value == self.default):
            return ""
        if isinstance(value, bool):
            yes, _, no = self.ip.partition("|")
            return (yes if value else no) or ""
        text = dict(self.shown).get(value, str(value))
        return f"{self.ip} {text}" if self.ip else text

    def sent(self, value: Any) -> bool:
        """Whether apply sends this value (not a kernel default, not left to the kernel)."""
        return value is not None and not (self.default is not None and value == self.default)


@dataclass(frozen=True)
class Kind:
    """The declaration of one kind of plan object.

    ``phase`` is its step in :data:`PHASES`. Links also name their ``link`` kind (the kernel's
    IFLA_INFO_KIND: ``bridge``, ``veth``, ``vxlan``), their creation ``round`` and, for a kind
    with two ends in two namespaces (veth), the attribute names of its ``ends``: the fields then
    describe each end. ``cmd`` is the shell command ``explain`` starts its line with, the fields'
    words following (``{ns}`` is the namespace); ``tail`` ends it. ``undo`` removes one again
    (a link is removed by ``ip link del``), which is how an exercise injects a missing object."""

    phase: str
    fields: tuple[Field, ...] = ()
    link: str | None = None
    round: int = 0
    ends: tuple[str, ...] = ()
    cmd: str = ""
    tail: str = ""
    undo: str = ""  # the command that removes one: ``{ns}`` and ``{keys}`` (the key fields' words)

    @property
    def keys(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.key)


#: Every declared kind, by class, and the link kinds by the kernel's name for them.
KINDS: dict[type, Kind] = {}
LINK_KINDS: dict[str, Kind] = {}


class Declared:
    """Base of every plan-object class: a subclass that declares ``SPEC`` is registered, so a
    new kind (a dataclass with its ``SPEC``) is known to every layer by being defined."""

    SPEC: ClassVar[Kind]
    # no instance dict of its own: the kinds a large plan holds by the million (Route, Neigh,
    # Fdb: n-1 per node each) are slotted dataclasses, 112 bytes each instead of 160, and
    # every other kind still gets its __dict__ by not declaring slots
    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("SPEC")
        if isinstance(spec, Kind):
            if spec.phase not in PHASE:
                raise TypeError(f"{cls.__name__}: unknown phase {spec.phase!r}")
            KINDS[cls] = spec
            if spec.link:
                LINK_KINDS[spec.link] = spec


def spec_of(obj: object) -> Kind:
    return KINDS[type(obj)]


def ends_of(obj: Any) -> tuple[Any, ...]:
    """The interface ends of a link: both ends of a veth, else the object itself."""
    spec = spec_of(obj)
    return tuple(getattr(obj, e) for e in spec.ends) if spec.ends else (obj,)


# -- fields shared by every link kind: what ``ip link add`` sets before ``type`` ------------------
MAC = Field("mac", ip="address", nla="IFLA_ADDRESS", optional=True)
MTU = Field("mtu", ip="mtu", nla="IFLA_MTU", optional=True)
TXQLEN = Field("txqueuelen", ip="txqueuelen", nla="IFLA_TXQLEN", optional=True)
MASTER = Field("master", ip=None, nla="IFLA_MASTER", ref=True, optional=True)
LINK_FIELDS = (MAC, MTU, TXQLEN)
