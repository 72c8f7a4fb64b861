"""Each plan kind as netlink requests: links from their ``SPEC``, entries by one encoder each.

A link is created the way ``ip link add NAME … type KIND …`` creates it: one RTM_NEWLINK with
its top-level attributes (name, MAC, MTU, queue length, master) and, nested in IFLA_LINKINFO,
the kind and the kind's own IFLA_INFO_DATA (a VXLAN's VNI, port, local address and underlay
device). Every attribute comes from the kind's declaration (:mod:`netlab.spec`), so a new link
kind the kernel creates from its IFLA_INFO_DATA (geneve, macvlan, wireguard) needs no code here.

Three kinds are created otherwise, and only they have an entry in :data:`CREATE`:

- **veth**: the pair is born with its peer in the other namespace (IFLA_NET_NS_FD), never in
  the root namespace; the peer comes up (and joins its bridge) in the next round;
- **tun**: a persistent TUN device is made by the TUNSETIFF ioctl on /dev/net/tun, not netlink;
- **ipip**: ``tunl0`` appears by itself in every namespace once the ipip module is loaded, so
  like Felix netlab only creates it where it is missing, then sets its MTU and brings it up.
"""

from __future__ import annotations

import errno
from typing import Any, Callable, Protocol

from ..plan import Addr, Fdb, Neigh, Route
from ..spec import Kind, ends_of, spec_of
from . import tun
from .nl import Batch
from .nlmsg import IFLA_IFNAME, encode, string


class Context(Protocol):
    """What an encoder needs from the applier: a namespace's batch, an ifindex, a failure."""

    def batch(self, ns: str) -> Batch: ...

    def index(self, ns: str, name: str, obj: Any) -> int: ...

    def lookup(self, ns: str, name: str) -> int | None: ...

    def fail(self, obj: Any, err: BaseException | int) -> Exception: ...


def _value(ctx: Context, ns: str, obj: Any, f: Any, value: Any) -> Any:
    return ctx.index(ns, value, obj) if f.ref else value


def link_attrs(ctx: Context, spec: Kind, obj: Any, end: Any, refs: bool = True, name: bool = True) -> bytes:
    """The top-level attributes of one end: IFLA_IFNAME, then every declared top-level field that
    is sent (``refs=False`` leaves out those naming another interface, such as the master)."""
    out = string(IFLA_IFNAME, end.name) if name else b""
    for f in spec.fields:
        value = getattr(end, f.name)
        if f.where == "link" and f.sent(value) and (refs or not f.ref):
            out += encode(f.nla, _value(ctx, end.ns, obj, f, value))
    return out


def link_data(ctx: Context, spec: Kind, obj: Any) -> bytes:
    """The kind's IFLA_INFO_DATA: every declared data field that is sent."""
    out = b""
    for f in spec.fields:
        value = getattr(obj, f.name)
        if f.where == "data" and f.sent(value):
            out += encode(f.nla, _value(ctx, obj.ns, obj, f, value), "data", spec.link)
    return out


def _netlink(ctx: Context, o: Any, spec: Kind) -> None:
    assert spec.link is not None
    ctx.batch(o.ns).link_new(o, spec.link, link_attrs(ctx, spec, o, o), link_data(ctx, spec, o))


def _veth(ctx: Context, o: Any, spec: Kind) -> None:
    a, b = ends_of(o)
    ctx.batch(a.ns).veth_new(o, link_attrs(ctx, spec, o, a), link_attrs(ctx, spec, o, b, refs=False), b.ns)


def _tun(ctx: Context, o: Any, spec: Kind) -> None:
    try:
        tun.create_persistent(o.ns, o.name)
    except OSError as e:
        raise ctx.fail(o, e.errno or errno.EIO) from None
    ctx.batch(o.ns).link_set(o, ctx.index(o.ns, o.name, o), up=True, mtu=o.mtu)


def _ipip(ctx: Context, o: Any, spec: Kind) -> None:
    index = ctx.lookup(o.ns, o.name)
    if index is None:  # missing: create it (tunl0 usually exists already)
        _netlink(ctx, o, spec)
    else:
        ctx.batch(o.ns).link_set(o, index, up=True, mtu=o.mtu)


#: Link kinds the kernel does not create from a plain RTM_NEWLINK; every other kind uses it.
CREATE: dict[str, Callable[[Context, Any, Kind], None]] = {"veth": _veth, "tun": _tun, "ipip": _ipip}


def create(ctx: Context, o: Any) -> None:
    """Queue the creation of link ``o`` (its interfaces that can be created in this round)."""
    spec = spec_of(o)
    assert spec.link is not None
    CREATE.get(spec.link, _netlink)(ctx, o, spec)


def settle(ctx: Context, o: Any) -> None:
    """The round after creation: every end but the first comes up and joins its master (a veth
    peer cannot at birth), and every end gets its bridge-port flags (hairpin)."""
    spec = spec_of(o)
    for i, end in enumerate(ends_of(o)):
        master = getattr(end, "master", None)
        if i:
            ctx.batch(end.ns).link_set(o, ctx.index(end.ns, end.name, o), up=True,
                                       master=ctx.index(end.ns, master, o) if master else None)
        port = b"".join(encode(f.nla, getattr(end, f.name), "brport") for f in spec.fields
                        if f.where == "brport" and f.sent(getattr(end, f.name)))
        if port:
            ctx.batch(end.ns).brport(o, ctx.index(end.ns, end.name, o), port)


def _route(b: Batch, o: Route) -> None:
    b.route(o, o.dst, o.via, o.dev, o.onlink, o.scope, o.type, o.proto, o.src)


#: Addresses, neighbours, FDB entries and routes: the bulk of a lab, packed by hand in :mod:`.nl`
#: (30,000 of them for 100 nodes, so each is one struct-packed message, not a generic loop).
ENTRIES: dict[type, Callable[[Batch, Any], None]] = {
    Addr: lambda b, o: b.addr(o, o.dev, o.cidr),
    Neigh: lambda b, o: b.neigh(o, o.dev, o.dst, o.lladdr, o.state),
    Fdb: lambda b, o: b.fdb(o, o.dev, o.lladdr, o.dst),
    Route: _route,
}


def entry(b: Batch, o: Any) -> None:
    ENTRIES[type(o)](b, o)
