"""Ordering sightings into hops and telling flood copies apart (no root, synthetic frames)."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from netlab import api, model
from netlab.trace.decode import decode
from netlab.trace.engine import Hop, kernel_order, mark_side, shape_leg
from netlab.trace.sniff import Frame

PKT = bytes(Ether() / IP(src="10.244.1.2", dst="10.244.2.2") / ICMP())


def fr(ns, iface, direction, ts, seq, pkttype=None) -> Frame:
    if pkttype is None:
        pkttype = 4 if direction == "out" else 0
    return Frame(ns=ns, host=ns.split("-", 1)[1], iface=iface, ifindex=0, direction=direction, pkttype=pkttype,
                 hatype=1, ts_ns=ts, data=PKT, wirelen=len(PKT), mtu=1500, seq=seq)


def test_order_inside_a_namespace_wins_over_equal_or_older_stamps():
    # a bridge's receive inherits the port's stamp; a forwarded packet may even keep an older one
    a = fr("p-node1", "vethX", "in", 100, 1)
    b = fr("p-node1", "cni0", "in", 100, 2)
    c = fr("p-node1", "flannel.1", "out", 90, 3)  # stamp older than b: order by arrival anyway
    d = fr("p-switch", "node1", "in", 150, 1)
    e = fr("p-node1-pod1", "eth0", "out", 50, 1)
    assert kernel_order([d, c, b, a, e]) == [e, a, b, c, d]


def test_flood_copy_to_the_router_is_not_a_hop():
    p = api.build_plan(model.load("vxlan", name="p"))
    frames = [
        fr("p-node1", "eth0", "out", 10, 1),
        fr("p-switch", "node1", "in", 20, 1, pkttype=3),  # a bridge port: OTHERHOST is normal
        fr("p-switch", "router", "out", 30, 2),
        fr("p-switch", "node2", "out", 31, 3),
        fr("p-router", "eth0", "in", 40, 1, pkttype=3),  # not a bridge port, nothing follows
        fr("p-node2", "eth0", "in", 41, 1),
    ]
    d = {id(f): decode(f.data, True) for f in frames}
    main, side = shape_leg(p, "request", frames, d, {"p-node1", "p-switch", "p-router", "p-node2"}, 0)
    assert [h.where for h in side] == ["switch:router", "router:eth0"]
    assert [h.where for h in main] == ["node1:eth0", "switch:node1", "switch:node2", "node2:eth0"]


def test_flood_into_a_namespace_not_captured_is_a_side_branch_unless_last():
    p = api.build_plan(model.load("vxlan", name="p", overrides={"nodes": 3}))
    frames = [
        fr("p-switch", "node1", "in", 20, 1),
        fr("p-switch", "node3", "out", 30, 2),  # node3 is not on the path, and the packet goes on
        fr("p-switch", "node2", "out", 31, 3),
        fr("p-node2", "eth0", "in", 41, 1),
    ]
    hops = [Hop(0, "request", f, decode(f.data, True)) for f in kernel_order(frames)]
    mark_side(p, hops, {"p-switch", "p-node2"})
    assert [h.frame.iface for h in hops if h.side] == ["node3"]
    # but a transmit into an uncaptured namespace that is the last sighting stays a hop
    hops = [Hop(0, "request", f, decode(f.data, True)) for f in kernel_order(frames[:2])]
    mark_side(p, hops, {"p-switch"})
    assert not any(h.side for h in hops)


def test_gso_super_frames_are_marked():
    p = api.build_plan(model.load("vxlan", name="p"))
    big = fr("p-node1", "cni0", "in", 1, 1)
    big.wirelen, big.mtu = 65000, 1450
    main, _ = shape_leg(p, "request", [big], {id(big): decode(big.data, True)}, {"p-node1"}, 0)
    assert main[0].notes and "segmented later" in main[0].notes[0]


def test_frames_stamped_as_they_were_read_are_owned_up_to():
    """A frame the kernel had not stamped as it passed orders by when it was read: the trace says
    so in a note instead of presenting that order as the path's."""
    from netlab.trace.engine import _late_stamps_note, _Sightings

    good = [fr("l-a", "eth0", "out", 10, 1), fr("l-b", "eth0", "in", 20, 1)]
    assert _late_stamps_note(_Sightings(frames=good)) == []
    late = fr("l-c", "eth0", "in", 30, 1)
    late.stamped_late = True
    (note,) = _late_stamps_note(_Sightings(frames=[*good, late]))
    assert note.startswith("1 of 3 sightings had no kernel timestamp") and "trace again" in note
