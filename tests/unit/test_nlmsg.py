"""netlab's bulk netlink encoder, checked against pyroute2's decoder (no root needed)."""

from __future__ import annotations

import errno
import socket
import struct

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from netlab.kernel import encode
from netlab.kernel.nl import Batch, acked, chunks, read_acks
from netlab.kernel.nlmsg import NLM_F_ACK, NLMSG_ERROR
from netlab.plan import Bridge, Veth, VethEnd, Vxlan


class FakeLink:
    """Stands in for NsLink: fixed ifindexes, no socket (only encoding is tested here)."""

    ns = "test"

    def index(self, name: str) -> int:
        return {"eth0": 2, "cni0": 3, "flannel.1": 4}[name]


class FakeContext:
    """Stands in for the applier: one batch, FakeLink's ifindexes (a link plan is encoded from
    its kind's declaration, so these tests go through the same path apply does)."""

    def __init__(self) -> None:
        self.b = Batch(FakeLink())

    def batch(self, ns: str) -> Batch:
        return self.b

    def index(self, ns: str, name: str, obj) -> int:
        return FakeLink().index(name)

    def lookup(self, ns: str, name: str) -> int | None:
        return FakeLink().index(name)

    def fail(self, obj, err):
        return RuntimeError(err)


def created(obj) -> bytes:
    ctx = FakeContext()
    encode.create(ctx, obj)
    (msg,) = ctx.b.messages()
    return msg


def decode(cls, data: bytes):
    m = cls(data)
    m.decode()
    return m


def one(build) -> bytes:
    b = Batch(FakeLink())
    build(b)
    (msg,) = b.messages()
    return msg


def test_route_onlink_via_gateway():
    m = decode(rtmsg, one(lambda b: b.route(None, "10.244.2.0/24", "10.244.2.0", "flannel.1", True, None,
                                               "unicast", "boot", None)))
    assert m["header"]["type"] == 24 and m["header"]["flags"] & 0x400  # RTM_NEWROUTE, NLM_F_CREATE
    assert (m["dst_len"], m["table"], m["proto"], m["scope"], m["type"], m["flags"]) == (24, 254, 3, 0, 1, 4)
    assert m.get_attr("RTA_DST") == "10.244.2.0" and m.get_attr("RTA_GATEWAY") == "10.244.2.0"
    assert m.get_attr("RTA_OIF") == 4


def test_route_scope_link_and_blackhole():
    m = decode(rtmsg, one(lambda b: b.route(None, "169.254.1.1/32", None, "eth0", False, None, "unicast", "boot", None)))
    assert m["scope"] == 253 and m.get_attr("RTA_GATEWAY") is None
    m = decode(rtmsg, one(lambda b: b.route(None, "192.168.1.0/26", None, None, False, None, "blackhole", "bird", None)))
    assert (m["type"], m["proto"], m["scope"]) == (6, 12, 0) and m.get_attr("RTA_OIF") is None
    m = decode(rtmsg, one(lambda b: b.route(None, "default", "10.0.0.1", "eth0", False, None, "unicast", "boot", None)))
    assert m["dst_len"] == 0 and m.get_attr("RTA_DST") is None


def test_permanent_neighbour_and_fdb():
    m = decode(ndmsg, one(lambda b: b.neigh(None, "flannel.1", "10.244.2.0", "be:f1:e9:12:f0:b0")))
    assert (m["family"], m["ifindex"], m["state"]) == (socket.AF_INET, 4, 0x80)
    assert m.get_attr("NDA_DST") == "10.244.2.0" and m.get_attr("NDA_LLADDR") == "be:f1:e9:12:f0:b0"
    assert m["header"]["flags"] & 0x100  # NLM_F_REPLACE: "ip neigh replace"
    m = decode(ndmsg, one(lambda b: b.fdb(None, "flannel.1", "be:f1:e9:12:f0:b0", "192.168.100.12")))
    assert (m["family"], m["state"], m["flags"]) == (7, 0xC0, 0x02)  # AF_BRIDGE, permanent|noarp, self
    assert m.get_attr("NDA_DST") == "192.168.100.12" and m["header"]["flags"] & 0x800  # NLM_F_APPEND


def test_address_with_broadcast():
    m = decode(ifaddrmsg, one(lambda b: b.addr(None, "cni0", "10.244.1.1/24")))
    assert (m["prefixlen"], m["index"]) == (24, 3)
    assert m.get_attr("IFA_LOCAL") == "10.244.1.1" and m.get_attr("IFA_BROADCAST") == "10.244.1.255"
    m = decode(ifaddrmsg, one(lambda b: b.addr(None, "flannel.1", "10.244.1.0/32")))
    assert m["prefixlen"] == 32 and m.get_attr("IFA_BROADCAST") is None


def test_vxlan_link():
    m = decode(ifinfmsg, created(Vxlan("n", "flannel.1", 1, 8472, "192.168.100.11", "eth0", False, 1450,
                                       "62:3a:37:a4:29:bb")))
    assert m.get_attr("IFLA_IFNAME") == "flannel.1" and m.get_attr("IFLA_MTU") == 1450
    assert m.get_attr("IFLA_ADDRESS") == "62:3a:37:a4:29:bb" and m["flags"] & 1
    info = m.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "vxlan"
    data = info.get_attr("IFLA_INFO_DATA")
    assert data.get_attr("IFLA_VXLAN_ID") == 1 and data.get_attr("IFLA_VXLAN_PORT") == 8472
    assert data.get_attr("IFLA_VXLAN_LOCAL") == "192.168.100.11" and data.get_attr("IFLA_VXLAN_LINK") == 2
    assert data.get_attr("IFLA_VXLAN_LEARNING") == 0


def test_link_set_master_up():
    m = decode(ifinfmsg, one(lambda b: b.link_set(None, 7, up=True, mtu=1450, master=3)))
    assert (m["index"], m["flags"] & 1, m["change"] & 1) == (7, 1, 1)
    assert m.get_attr("IFLA_MASTER") == 3 and m.get_attr("IFLA_MTU") == 1450


def test_bridge_and_veth_carry_txqueuelen_zero(monkeypatch):
    """Docker and the CNI plugins create docker0 and both veth ends with txqueuelen 0: IFLA_TXQLEN
    must be sent even though the value is 0 (falsy), for each end of the pair."""
    m = decode(ifinfmsg, created(Bridge("n", "docker0", 1500, "02:42:0a:0b:0c:0d", txqueuelen=0)))
    assert m.get_attr("IFLA_TXQLEN") == 0 and m.get_attr("IFLA_ADDRESS") == "02:42:0a:0b:0c:0d"
    assert m.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND") == "bridge"
    m = decode(ifinfmsg, created(Bridge("n", "br0")))
    assert m.get_attr("IFLA_TXQLEN") is None  # no field: the kernel's default (1000)

    from netlab.kernel import nl
    monkeypatch.setattr(nl.os, "open", lambda *a, **k: 99)
    monkeypatch.setattr(nl.os, "close", lambda fd: None)
    msg = created(Veth(VethEnd("n", "veth1234567", 1500, master="cni0", txqueuelen=0),
                       VethEnd("peer-ns", "eth0", 1500, "02:42:ac:11:00:02", txqueuelen=0)))
    m = decode(ifinfmsg, msg)
    assert m.get_attr("IFLA_TXQLEN") == 0 and m.get_attr("IFLA_MASTER") == 3
    peer = m.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert peer.get_attr("IFLA_IFNAME") == "eth0" and peer.get_attr("IFLA_TXQLEN") == 0
    assert peer.get_attr("IFLA_NET_NS_FD") == 99 and peer.get_attr("IFLA_ADDRESS") == "02:42:ac:11:00:02"


def test_stp_and_hairpin_come_from_the_declaration():
    """Bridge.stp is sent only when it differs from the kernel's default (off), and a veth end's
    hairpin flag goes out as a bridge-port attribute in the round after creation."""
    m = decode(ifinfmsg, created(Bridge("n", "br0", stp=True)))
    assert m.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA").get_attr("IFLA_BR_STP_STATE") == 1
    assert decode(ifinfmsg, created(Bridge("n", "br0"))).get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA") is None
    ctx = FakeContext()
    encode.settle(ctx, Veth(VethEnd("n", "eth0"), VethEnd("n2", "flannel.1", master="cni0", hairpin=True)))
    up, port = (decode(ifinfmsg, x) for x in ctx.b.messages())
    assert up.get_attr("IFLA_MASTER") == 3 and up["flags"] & 1
    slave = port.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_SLAVE_DATA")
    assert slave.get_attr("IFLA_BRPORT_MODE") == 1


def test_datagrams_hold_whole_messages_and_only_the_last_asks_for_an_ack():
    msgs = [bytes(n) for n in (16, 16, 16, 40, 16)]
    assert list(chunks(msgs, 32)) == [(0, 2), (2, 3), (3, 4), (4, 5)]  # one too large goes alone
    msg = one(lambda b: b.neigh(None, "flannel.1", "10.244.2.0", "0e:00:00:00:00:02"))
    flags = int.from_bytes(msg[6:8], "little")
    assert not flags & NLM_F_ACK and int.from_bytes(acked(msg)[6:8], "little") == flags | NLM_F_ACK
    assert acked(msg)[8:] == msg[8:]


def test_read_acks_reports_the_refused_messages_until_the_last_one_is_answered():
    def answer(seq: int, err: int) -> bytes:  # an NLMSG_ERROR: the header, errno, the request's header
        return struct.pack("=IHHIIi", 36, NLMSG_ERROR, 0, seq, 0, -err) + bytes(16)

    here, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with here, kernel:
        kernel.send(answer(2, errno.EEXIST))
        kernel.send(answer(3, 0))
        kernel.send(answer(9, errno.ENOENT))  # 3 is the last: the next datagram is not read
        assert read_acks(here, 3) == [(2, errno.EEXIST)]
        assert here.recv(64) == answer(9, errno.ENOENT)
