"""Adding a link kind is one declaration (docs/DEVELOPING.md): a kind this file defines, and
netlab's apply, verify, explain and teardown handle it with no other change.

The kind is a macvlan (this kernel has it; no lab uses it): ``ip link add mv0 link eth0 type
macvlan mode bridge``, a second MAC address on node1's underlay interface. Its parent is the
top-level IFLA_LINK (an interface reference, sent as an ifindex) and its mode lives in the
kind's IFLA_INFO_DATA, where pyroute2 names the numbers (4 is ``bridge``).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest

from netlab import api, model
from netlab.explain import describe, script
from netlab.kernel.apply import apply
from netlab.kernel.teardown import teardown
from netlab.kernel.verify import verify
from netlab.spec import KINDS, LINK_KINDS, MAC, MTU, Declared, Field, Kind
from netlab.state import State
from tests.helpers import ipj, residue, sh, unique_name

pytestmark = pytest.mark.kernel


def declare_macvlan() -> type:
    """The whole of the new kind: defining the class registers it (:class:`netlab.spec.Declared`)."""

    @dataclasses.dataclass(frozen=True)
    class Macvlan(Declared):
        SPEC: ClassVar[Kind] = Kind("links", link="macvlan", round=2, fields=(
            MAC, MTU, Field("dev", ip="link", nla="IFLA_LINK", ref=True),
            Field("mode", ip="mode", nla="IFLA_MACVLAN_MODE", where="data")))

        ns: str
        name: str
        dev: str
        mode: str = "bridge"
        mtu: int | None = None
        mac: str | None = None

    return Macvlan


@pytest.fixture
def private_state(tmp_path, monkeypatch):
    monkeypatch.setenv("NETLAB_STATE_DIR", str(tmp_path / "state"))
    yield
    for cls in [c for c in KINDS if c.__name__ == "Macvlan"]:
        del KINDS[cls]
    LINK_KINDS.pop("macvlan", None)


def test_a_kind_declared_here_is_applied_verified_explained_and_torn_down(private_state):
    Macvlan = declare_macvlan()
    name = unique_name("mv")
    lab = model.load("baseline", name=name)
    plan = api.build_plan(lab)
    node1 = plan.host("node1").name
    mv = Macvlan(node1, "mv0", "eth0", mtu=1400, mac="02:00:00:00:0a:01")
    plan.add(mv)
    state = State(lab=name, labfile=str(lab.file), namespaces=[n.name for n in plan.namespaces])
    state.claim()
    try:
        apply(plan, state)
        link = ipj(node1, "-d", "link", "show", "mv0")[0]
        assert link["linkinfo"]["info_kind"] == "macvlan" and link["linkinfo"]["info_data"]["mode"] == "bridge"
        assert link["link"] == "eth0" and link["mtu"] == 1400 and link["address"] == "02:00:00:00:0a:01"
        assert verify(plan, state).ok
        assert describe(mv) == f"ip -n {node1} link add mv0 address 02:00:00:00:0a:01 mtu 1400 link eth0 type macvlan mode bridge"
        assert describe(mv) in script(plan)
        sh("ip", "-n", node1, "link", "set", "mv0", "type", "macvlan", "mode", "private")
        problems = {p.what: p.detail for p in verify(plan, state).problems}
        assert problems == {describe(mv): "mode private (want bridge)"}, problems
    finally:
        teardown(state)
    assert residue(name) == []
