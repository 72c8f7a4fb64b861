"""The one cross-node pod pair, for every lab file, and the hints built on it (no root).

The pair comes from the plan alone, so these checks hold for any datapath added later; the
expected pairs below are what each lab's plan addresses today."""

from __future__ import annotations

import pytest

from netlab import api, model
from netlab.datapaths import get
from netlab.datapaths.hints import KINDS, Hint, Steps
from netlab.plan import PodPair, cross_node_pair, cross_node_pair_or_reason

LABS = [f.stem for f in model.available()]

# lab -> (source host, destination host, destination IP), or the words of the reason there is none
EXPECTED: dict[str, tuple[str, str, str] | str] = {
    "baseline": "no pod on each",
    "bridge": "one node only",
    "docker-nat": "overlap",
    "flannel-udp": ("node1-pod1", "node2-pod1", "10.244.2.2"),
    "vxlan": ("node1-pod1", "node2-pod1", "10.244.2.2"),
    "host-gw": ("node1-pod1", "node2-pod1", "10.244.2.2"),
    "calico": ("node1-pod1", "node2-pod1", "192.168.2.1"),
    "calico-rr": ("node1-pod1", "node2-pod1", "192.168.2.1"),
    "calico-vxlan": ("node1-pod1", "node2-pod1", "192.168.2.1"),
    "calico-ipip": ("node1-pod1", "node2-pod1", "192.168.2.1"),
}


def plan(lab: str, **over):
    return api.build_plan(model.load(lab, name="cp", overrides=over))


def test_every_lab_file_has_an_expectation():
    assert sorted(EXPECTED) == sorted(LABS)


@pytest.mark.parametrize("lab", LABS)
def test_the_pair_of_every_lab(lab):
    p = plan(lab)
    want = EXPECTED[lab]
    found = cross_node_pair_or_reason(p)
    if isinstance(want, str):
        assert isinstance(found, str) and want in found, found
        assert cross_node_pair(p) is None
        return
    assert isinstance(found, PodPair) and cross_node_pair(p) == found
    assert (found.src.host, found.dst.host, found.dst_ip) == want
    assert found.src.role == found.dst.role == "pod" and found.src.node != found.dst.node
    assert found.src_ip in {a.split("/")[0] for a in p.addresses(found.src.name)}


def test_docker_nat_pair_exists_when_overlap_is_the_lesson():
    pair = cross_node_pair_or_reason(plan("docker-nat"), routable=False)
    assert isinstance(pair, PodPair)
    assert (pair.src.host, pair.dst.host, pair.src_ip, pair.dst_ip) == ("executor1", "executor3", "172.17.0.2",
                                                                        "172.17.0.2")


def test_pair_follows_the_plan_not_the_defaults():
    p = plan("vxlan", nodes=3, pods=1)
    pair = cross_node_pair(p)
    assert pair is not None and (pair.src.host, pair.dst.host, pair.dst_ip) == ("node1-pod1", "node2-pod1", "10.244.2.2")
    assert cross_node_pair(plan("vxlan", nodes=1)) is None
    assert "no pod" in str(cross_node_pair_or_reason(plan("vxlan", pods=0)))
    assert cross_node_pair(plan("bridge", nodes=2)) is None  # every Docker host numbers 172.17.0.0/16 alike


@pytest.mark.parametrize("lab", LABS)
def test_hints_render_to_the_text_and_declare_a_known_expectation(lab):
    m = model.load(lab, name="cp")
    steps = get(m.datapath).next_steps(m, api.build_plan(m))
    assert isinstance(steps, Steps) and steps.hints
    assert steps == "\n".join(i.render() if isinstance(i, Hint) else i for i in steps.items)
    for h in steps.hints:
        assert h.kind in KINDS and h.command.startswith(("netlab ", "ip netns exec "))
        assert "  " not in h.command, h  # a double space ends a command where its remark starts


@pytest.mark.parametrize("lab", [lab for lab, want in EXPECTED.items() if not isinstance(want, str)])
def test_the_ping_hint_uses_the_pair(lab):
    m = model.load(lab, name="cp")
    p = api.build_plan(m)
    pair = cross_node_pair(p)
    assert pair is not None
    ping = get(m.datapath).next_steps(m, p).hints[0]
    assert ping.command == f"netlab exec cp {pair.src.host} -- ping -c 3 {pair.dst_ip}" and ping.kind == "ok"


def test_a_hint_that_fails_must_say_with_what():
    with pytest.raises(ValueError, match="fails"):
        Hint("x: ", "netlab status x", expect="fails")
    with pytest.raises(ValueError, match="not one of"):
        Hint("x: ", "netlab status x", expect="maybe")
