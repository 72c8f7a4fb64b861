"""Every plan kind is declared once, completely: each field of each kind has a declaration, and
each netlink attribute a declaration names exists in pyroute2's tables (no root needed)."""

from __future__ import annotations

import dataclasses

import pytest

from netlab import plan
from netlab.kernel.nlmsg import nla
from netlab.spec import KINDS, LINK_KINDS, PHASE, PHASES, Field, Kind, Declared

LINK_AND_ENTRY = [cls for cls, spec in KINDS.items() if PHASE[spec.phase].check in ("link", "entry")]


def _fields_of(cls: type) -> set[str]:
    spec = KINDS[cls]
    if spec.ends:  # a veth: the declaration describes each end
        cls = plan.VethEnd
    return {f.name for f in dataclasses.fields(cls)} - {"ns", "name"}


@pytest.mark.parametrize("cls", LINK_AND_ENTRY, ids=lambda c: c.__name__)
def test_every_field_is_declared(cls):
    """verify, apply and explain loop over the declaration, so a field missing from it would be
    silently neither applied nor checked (as Bridge.stp once was)."""
    assert {f.name for f in KINDS[cls].fields} == _fields_of(cls)


@pytest.mark.parametrize("kind", sorted(LINK_KINDS))
def test_every_netlink_attribute_exists_in_pyroute2(kind):
    for f in LINK_KINDS[kind].fields:
        if f.nla:
            num, enc = nla(f.nla, f.where, kind)
            assert num > 0 and callable(enc)


def test_one_phase_order_and_every_kind_in_it():
    names = [p.name for p in PHASES]
    assert names.index("neighbours") < names.index("fdb") < names.index("routes")
    assert names.index("files") < names.index("daemons")
    assert {spec.phase for spec in KINDS.values()} <= set(names)


def test_a_new_kind_is_registered_by_being_defined():
    @dataclasses.dataclass(frozen=True)
    class Macvlan(Declared):
        SPEC = Kind("links", link="macvlan-test", round=2, fields=(
            Field("mtu", ip="mtu", nla="IFLA_MTU", optional=True),
            Field("mode", ip="mode", nla="IFLA_MACVLAN_MODE", where="data")))
        ns: str
        name: str
        mtu: int | None = None
        mode: int = 4

    try:
        assert KINDS[Macvlan] is Macvlan.SPEC and LINK_KINDS["macvlan-test"] is Macvlan.SPEC
    finally:
        del KINDS[Macvlan], LINK_KINDS["macvlan-test"]


def test_field_words():
    route = KINDS[plan.Route]
    by = {f.name: f for f in route.fields}
    assert by["scope"].words("universe") == "scope global"
    assert by["proto"].words("boot") == "" and by["proto"].words("bird") == "proto bird"
    assert by["onlink"].words(True) == "onlink" and by["onlink"].words(False) == ""
    assert by["via"].words(None) == ""
    learning = next(f for f in KINDS[plan.Vxlan].fields if f.name == "learning")
    assert learning.words(False) == "nolearning" and learning.words(True) == "learning"
