"""Sysctls are written from inside each namespace with one write per /proc/sys file: a value
lands where the plan says (read back with ``ip netns exec … sysctl``), a required one that this
kernel lacks rolls the lab back with the kernel's answer, and an optional one is skipped."""

from __future__ import annotations

import pytest

from netlab import api
from netlab.errors import ApplyError
from netlab.plan import Sysctl
from tests.helpers import residue, sysctl, unique_name

pytestmark = pytest.mark.kernel


@pytest.fixture
def extra_sysctls(tmp_path, monkeypatch):
    """``up`` plans as usual, plus the sysctls a test adds on node1."""
    monkeypatch.setenv("NETLAB_STATE_DIR", str(tmp_path / "state"))
    extra: list[tuple[str, str, bool]] = []
    real = api.build_plan

    def build_plan(lab, check=True):
        plan = real(lab, check)
        node1 = plan.host("node1").name
        plan.add(*(Sysctl(node1, key, value, required=required) for key, value, required in extra))
        return plan

    monkeypatch.setattr(api, "build_plan", build_plan)
    return extra


def test_values_land_and_an_optional_missing_one_is_skipped(extra_sysctls):
    extra_sysctls += [("net/ipv4/conf/eth0/arp_announce", "2", True), ("net/ipv4/conf/nosuch0/forwarding", "1", False)]
    name = unique_name("sy")
    h = api.up("vxlan", name=name, nodes=2, pods=1)
    try:
        assert sysctl(h.ns("node1"), "net.ipv4.conf.eth0.arp_announce") == "2"
        assert sysctl(h.ns("node2"), "net.ipv4.conf.eth0.arp_announce") == "0"  # node1's alone
    finally:
        h.down()
    assert residue(name) == []


def test_a_required_sysctl_this_kernel_lacks_rolls_the_lab_back(extra_sysctls):
    extra_sysctls.append(("net/ipv4/conf/nosuch0/forwarding", "1", True))
    name = unique_name("sz")
    with pytest.raises(ApplyError, match="nosuch0.*No such file or directory"):
        api.up("vxlan", name=name, nodes=2, pods=1)
    assert residue(name) == []
