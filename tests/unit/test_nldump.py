"""The struct parser status reads the kernel with, checked against pyroute2's decoder on the same
bytes (messages built by netlab's own encoder have the layout the kernel's dumps have)."""

from __future__ import annotations

import socket

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from netlab.kernel import nldump, readback
from netlab.plan import Vxlan
from tests.unit.test_nlmsg import created, one

NAMES = {2: "eth0", 3: "cni0", 4: "flannel.1"}


def parsed(data: bytes, layout):
    ((hdr, attrs),) = list(nldump.messages(data, layout))
    return hdr, attrs


def pyroute2(cls, data: bytes):
    m = cls(data)
    m.decode()
    return m


def test_route_row_matches_pyroute2():
    data = one(lambda b: b.route(None, "10.244.2.0/24", "10.244.2.0", "flannel.1", True, None, "unicast", "boot",
                                 "10.244.1.0"))
    row = readback._route(*parsed(data, nldump.RTMSG), NAMES)
    m = pyroute2(rtmsg, data)
    assert row["dst"] == f"{m.get_attr('RTA_DST')}/{m['dst_len']}" == "10.244.2.0/24"
    assert (row["via"], row["dev"], row["src"]) == (m.get_attr("RTA_GATEWAY"), "flannel.1", m.get_attr("RTA_PREFSRC"))
    assert (row["onlink"], row["proto"], row["scope"], row["type"], row["table"]) == (True, "boot", "universe",
                                                                                     "unicast", 254)


def test_neighbour_and_address_headers_match_pyroute2():
    data = one(lambda b: b.neigh(None, "flannel.1", "10.244.2.0", "be:f1:e9:12:f0:b0"))
    hdr, attrs = parsed(data, nldump.NDMSG)
    m = pyroute2(ndmsg, data)
    assert (hdr[0], hdr[1], hdr[2]) == (m["family"], m["ifindex"], m["state"]) == (socket.AF_INET, 4, 0x80)
    assert nldump.ip4(attrs[1]) == m.get_attr("NDA_DST") and nldump.mac(attrs[2]) == m.get_attr("NDA_LLADDR")
    data = one(lambda b: b.addr(None, "cni0", "10.244.1.1/24"))
    hdr, attrs = parsed(data, nldump.IFADDRMSG)
    m = pyroute2(ifaddrmsg, data)
    assert (hdr[1], hdr[4]) == (m["prefixlen"], m["index"]) and nldump.ip4(attrs[2]) == m.get_attr("IFA_LOCAL")


def test_link_info_reads_the_declared_fields_as_pyroute2_does():
    data = created(Vxlan("n", "flannel.1", 1, 8472, "192.168.100.11", "eth0", False, 1450, "62:3a:37:a4:29:bb"))
    hdr, attrs = parsed(data, nldump.IFINFOMSG)
    info = readback._link_info(hdr, attrs, NAMES, readback._declared("link"))
    m = pyroute2(ifinfmsg, data)
    d = m.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
    assert info["kind"] == "vxlan" and info["mtu"] == m.get_attr("IFLA_MTU") == 1450
    assert info["mac"] == m.get_attr("IFLA_ADDRESS")
    assert (info["vni"], info["port"], info["local"]) == (d.get_attr("IFLA_VXLAN_ID"), d.get_attr("IFLA_VXLAN_PORT"),
                                                         d.get_attr("IFLA_VXLAN_LOCAL"))
    assert info["dev"] == "eth0" and info["learning"] == 0 and info["up"]


def test_ifname_first_reads_the_name_alone_and_falls_back_to_every_attribute():
    """NsLink.index reads a link dump's names only. The kernel's own messages put IFLA_IFNAME
    first; a message that does not is decoded whole, so the name is found either way."""
    from netlab.kernel.nlmsg import IFLA_IFNAME, IFLA_MTU, ifinfomsg, string, u32

    first = ifinfomsg(index=7) + string(IFLA_IFNAME, "flannel.1") + u32(IFLA_MTU, 1450)
    later = ifinfomsg(index=7) + u32(IFLA_MTU, 1450) + string(IFLA_IFNAME, "flannel.1")
    size = nldump.IFINFOMSG.size
    assert nldump.ifname_first(first, size) == {IFLA_IFNAME: b"flannel.1\0"}
    assert nldump.ifname_first(later, size)[IFLA_IFNAME] == b"flannel.1\0"
    assert nldump.ifname_first(later, size) == nldump.parse_attrs(later, size)
