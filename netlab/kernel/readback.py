"""What one namespace holds, in the plan's vocabulary: the read side of :mod:`netlab.kernel.verify`.

Every link becomes a dict keyed by the field names its kind declares (:mod:`netlab.spec`), with
its attributes decoded by the same declaration apply encoded them with
(:func:`netlab.kernel.nlmsg.decoder`). Addresses, routes (every table), neighbours, FDB entries
and policy rules become rows keyed the same way as the plan's ``Addr``, ``Route``, ``Neigh`` and
``Fdb`` fields, so verify compares a planned object with a row field by field. The dumps are
parsed with struct (:mod:`.nldump`): fast enough to read a 150-node lab in about a second.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from ..spec import LINK_KINDS, Field
from . import nldump
from .nl import NUD, PROTOS, RTNH_F_ONLINK, RTYPES, SCOPES, NsLink
from .nldump import (RTM_GETADDR, RTM_GETLINK, RTM_GETNEIGH, RTM_GETNETCONF, RTM_GETROUTE, RTM_GETRULE, ip4, mac,
                     nested, text, u32)
from .nlmsg import AF_BRIDGE, IFF_UP, decoder

IFLA_IFNAME, IFLA_PROTINFO, IFLA_LINKINFO = 3, 12, 18
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 6, 7, 15
NDA_DST, NDA_LLADDR = 1, 2
FRA_PRIORITY, FRA_TABLE = 6, 15
NETCONFA_IFINDEX, NETCONFA_FORWARDING, NETCONFA_RP_FILTER, NETCONFA_PROXY_NEIGH = 1, 2, 3, 5
NETCONFA_IFINDEX_ALL, NETCONFA_IFINDEX_DEFAULT = -1, -2
RT_TABLE_MAIN, RT_TABLE_LOCAL = 254, 255
RTM_F_CLONED = 0x200
#: Devices that keep forwarding entries netlab plans or that a hand-added entry needs.
L2_KINDS = ("bridge", "vxlan")
_REV_PROTO = {v: k for k, v in PROTOS.items()}
_REV_TYPE = {v: k for k, v in RTYPES.items()}
_REV_SCOPE = {v: k for k, v in SCOPES.items()}


@dataclass
class Snapshot:
    """What one namespace holds: each link as a dict keyed by the declared field names (plus
    ``kind`` and ``up``), each entry phase as rows keyed the same way (``routes``: the main
    table, as the plan's routes are), every route of every table in ``all_routes`` and the
    policy rules in ``rules``."""

    links: dict[str, dict] = field(default_factory=dict)
    entries: dict[str, list[dict]] = field(default_factory=dict)  # phase name -> rows
    all_routes: list[dict] = field(default_factory=list)
    rules: list[dict] = field(default_factory=list)
    netconf: dict[str, dict[str, str]] = field(default_factory=dict)  # "all", "default", ifname -> sysctls
    static_fdb: list[dict] = field(default_factory=list)  # bridge FDB entries added as `static`
    qdiscs: list[dict] = field(default_factory=list)  # {dev, kind, parent}: what tc qdisc show lists

    @property
    def routes(self) -> list[dict]:
        return self.entries.get("routes", [])


def _declared(where: str) -> dict[str, Field]:
    """The link fields any kind declares in ``where`` (top level, bridge port): read for every
    link. Computed per snapshot, so a kind declared after import is read back too."""
    return {f.name: f for spec in LINK_KINDS.values() for f in spec.fields if f.where == where}


def _value(f: Field, attrs: dict[int, bytes], where: str, kind: str | None, names: dict[int, str]):
    num, dec = decoder(f.nla, where, kind)
    raw = attrs.get(num)
    if raw is None:
        return None
    value = dec(raw)
    return names.get(value) if f.ref else value


def _link_info(hdr: tuple, attrs: dict[int, bytes], names: dict[int, str], top: dict[str, Field]) -> dict:
    """One RTM_NEWLINK as a dict of the declared fields: top-level ones for every link, and the
    IFLA_INFO_DATA fields its kind declares (a VXLAN's vni, port, local, dev, learning)."""
    linkinfo = nested(attrs.get(IFLA_LINKINFO))
    kind = text(linkinfo.get(IFLA_INFO_KIND))
    info: dict = {"kind": kind, "up": bool(hdr[3] & IFF_UP)}
    for f in top.values():
        info[f.name] = _value(f, attrs, "link", None, names)
    spec = LINK_KINDS.get(kind or "")
    data = nested(linkinfo.get(IFLA_INFO_DATA))
    for f in spec.fields if spec and data else ():
        if f.where == "data":
            info[f.name] = _value(f, data, "data", kind, names)
    return info


def _links(sock: socket.socket, snap: Snapshot) -> dict[int, str]:
    msgs = list(nldump.dump(sock, RTM_GETLINK))
    names = {hdr[2]: text(attrs.get(IFLA_IFNAME)) or "?" for hdr, attrs in msgs}
    top, brport = _declared("link"), _declared("brport")
    for hdr, attrs in msgs:
        snap.links[names[hdr[2]]] = _link_info(hdr, attrs, names, top)
    # bridge ports exist only where a bridge does: most namespaces of a lab (pods) have none,
    # and the dump they would answer with is empty
    bridged = any(info["kind"] == "bridge" for info in snap.links.values())
    for hdr, attrs in nldump.dump(sock, RTM_GETLINK, AF_BRIDGE) if bridged else ():
        pinfo = nested(attrs.get(IFLA_PROTINFO))
        name = names.get(hdr[2])
        if pinfo and name in snap.links:
            for f in brport.values():
                snap.links[name][f.name] = _value(f, pinfo, "brport", None, names)
    return names


def _nud(state: int) -> str:
    return next((name for name, bit in sorted(NUD.items(), key=lambda kv: -kv[1]) if state & bit), "none")


def _route(hdr: tuple, attrs: dict[int, bytes], names: dict[int, str]) -> dict:
    _family, dst_len, _src_len, _tos, table, proto, scope, rtype, flags = hdr
    dst = ip4(attrs.get(RTA_DST))
    return {
        "dst": "default" if not dst_len else f"{dst}/{dst_len}",  # the kernel keeps dst masked: canonical
        "via": ip4(attrs.get(RTA_GATEWAY)), "dev": names.get(u32(attrs.get(RTA_OIF)) or 0),
        "src": ip4(attrs.get(RTA_PREFSRC)), "onlink": bool(flags & RTNH_F_ONLINK),
        "scope": _REV_SCOPE.get(scope, scope), "type": _REV_TYPE.get(rtype, rtype),
        "proto": _REV_PROTO.get(proto, proto), "table": u32(attrs.get(RTA_TABLE)) or table,
        "metric": u32(attrs.get(RTA_PRIORITY)),
    }


def _entries(sock: socket.socket, names: dict[int, str], snap: Snapshot) -> None:
    """Addresses, routes, neighbours, permanent FDB entries with an underlay destination, and
    policy rules, each row keyed by the plan kind's field names."""
    addrs = [{"dev": names.get(hdr[4], "?"), "cidr": f"{ip4(a.get(IFA_LOCAL) or a.get(IFA_ADDRESS))}/{hdr[1]}"}
             for hdr, a in nldump.dump(sock, RTM_GETADDR, socket.AF_INET)]
    # RTM_F_CLONED rows are route exceptions (a learned path MTU, a redirect: an IPIP tunnel makes
    # one per inner destination), not routes: some kernels include them in a plain dump
    snap.all_routes = [_route(hdr, a, names) for hdr, a in nldump.dump(sock, RTM_GETROUTE, socket.AF_INET)
                       if not hdr[8] & RTM_F_CLONED]
    neighs = [{"dev": names.get(hdr[1], "?"), "dst": ip4(a.get(NDA_DST)), "lladdr": mac(a.get(NDA_LLADDR)),
               "state": _nud(hdr[2])} for hdr, a in nldump.dump(sock, RTM_GETNEIGH, socket.AF_INET)]
    fdb, static = [], []
    l2 = any(info["kind"] in L2_KINDS for info in snap.links.values())  # FDB entries live on these
    for hdr, a in nldump.dump(sock, RTM_GETNEIGH, AF_BRIDGE) if l2 else ():
        row = {"dev": names.get(hdr[1], "?"), "lladdr": mac(a.get(NDA_LLADDR)), "dst": ip4(a.get(NDA_DST))}
        if a.get(NDA_DST) and hdr[2] & NUD["permanent"]:
            fdb.append(row)  # a VTEP's: inner MAC -> underlay address, as flannel programs it
        elif hdr[2] == NUD["noarp"]:
            static.append(row)  # `bridge fdb add … static`: the kernel never makes one itself
    snap.static_fdb = static
    snap.rules = [{"priority": u32(a.get(FRA_PRIORITY)) or 0, "table": u32(a.get(FRA_TABLE)) or hdr[4],
                   "action": hdr[7]} for hdr, a in nldump.dump(sock, RTM_GETRULE, socket.AF_INET)]
    main = [r for r in snap.all_routes if r["table"] == RT_TABLE_MAIN]
    snap.entries = {"addresses": addrs, "routes": main, "neighbours": neighs, "fdb": fdb}


def _netconf(sock: socket.socket, names: dict[int, str]) -> dict[str, dict[str, str]]:
    """The IPv4 devconf the kernel reports over netlink (RTM_GETNETCONF): forwarding, rp_filter
    and proxy_arp of every interface and of ``all`` and ``default``, as their sysctls read, in
    one dump instead of three /proc/sys files per interface."""
    out: dict[str, dict[str, str]] = {}
    for _hdr, a in nldump.dump(sock, RTM_GETNETCONF, socket.AF_INET):
        index = struct.unpack("=i", a[NETCONFA_IFINDEX][:4])[0] if NETCONFA_IFINDEX in a else None
        name = {NETCONFA_IFINDEX_ALL: "all", NETCONFA_IFINDEX_DEFAULT: "default"}.get(index or 0) or names.get(index or 0)
        if name is None:
            continue
        out[name] = {key: str(u32(a[num])) for key, num in (("forwarding", NETCONFA_FORWARDING),
                                                           ("rp_filter", NETCONFA_RP_FILTER),
                                                           ("proxy_arp", NETCONFA_PROXY_NEIGH)) if num in a}
    return out


def snapshot(ns: str) -> Snapshot:
    snap = Snapshot()
    with NsLink(ns) as link:
        names = _links(link.raw, snap)
        _entries(link.raw, names, snap)
        snap.netconf = _netconf(link.raw, names)
        snap.qdiscs = _qdiscs(link.raw, names)
    return snap


TC_H_ROOT, TC_H_INGRESS, TCA_KIND = 0xFFFFFFFF, 0xFFFFFFF1, 1


def _qdiscs(sock, names: dict[int, str]) -> list[dict]:
    """Every qdisc of the namespace: its device, kind (``netem``, ``tbf``, ``noqueue`` …) and
    whether it is the root, the ingress or a child qdisc (``parent`` as tc prints it)."""
    out = []
    for (_f, index, _handle, parent, _info), attrs in nldump.dump(sock, nldump.RTM_GETQDISC):
        where = {TC_H_ROOT: "root", TC_H_INGRESS: "ingress"}.get(parent, f"parent {parent >> 16:x}:{parent & 0xFFFF:x}")
        out.append({"dev": names.get(index, str(index)), "kind": text(attrs.get(TCA_KIND)), "parent": where})
    return out


def sysctl_from_netconf(snap: Snapshot, key: str) -> str | None:
    """A sysctl the netconf dump answers (``net/ipv4/ip_forward``, ``net/ipv4/conf/X/rp_filter``,
    ``…/proxy_arp``, ``…/forwarding``), or None when it does not cover that key."""
    if key == "net/ipv4/ip_forward":
        return snap.netconf.get("all", {}).get("forwarding")
    parts = key.split("/")
    if len(parts) == 5 and parts[:3] == ["net", "ipv4", "conf"]:
        return snap.netconf.get(parts[3], {}).get(parts[4])
    return None
