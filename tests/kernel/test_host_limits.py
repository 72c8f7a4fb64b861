"""Limits the kernel shares between all namespaces (issue 9, part 4), on the real kernel.

``up`` refuses a lab the host's neighbour table cannot hold, with the numbers, before it creates
anything; a low limit is simulated by replacing netlab's reader (the host's sysctls are never
written); and ``status`` reports an overflowing neighbour table as a problem."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from netlab import api, model
from netlab.kernel import limits
from netlab.kernel.limits import HostLimitError
from tests.helpers import ROOT, netns_list, residue, root_snapshot, unique_name

pytestmark = pytest.mark.kernel
NETLAB = [sys.executable, "-m", "netlab"]


def nothing_of(name: str) -> None:
    assert residue(name) == []
    assert not os.path.exists(f"/run/netlab/{name}")
    assert not [n for n in netns_list() if n == name or n.startswith(name + "-")]


def test_calico_50_nodes_is_refused_up_front_with_the_numbers():
    needs = limits.estimate(api.build_plan(model.load("calico", overrides={"nodes": 50})))
    host = limits.read_host()
    used = limits.neighbours_in_use(host.neigh_entries or 0)
    if host.gc_thresh3 is None or needs.neighbours + used <= host.gc_thresh3:
        pytest.skip(f"this host's gc_thresh3 ({host.gc_thresh3}) holds a 50-node mesh")
    before = root_snapshot()
    name = unique_name("hl")
    r = subprocess.run(NETLAB + ["up", "calico", "--nodes", "50", "--name", name], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 5, r.stderr
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"lab '{name}' needs about {needs.neighbours} dynamic neighbour entries" in err
    assert f"net.ipv4.neigh.default.gc_thresh3 = {host.gc_thresh3}" in err and "sysctl -w" in err
    assert r.stdout == ""
    nothing_of(name)
    assert root_snapshot() == before


def test_a_low_simulated_gc_thresh3_refuses_a_small_lab(monkeypatch):
    """The reader is replaced, never the sysctl: a host whose table has room for only 8 entries,
    fewer than the 12 a 2-node vxlan lab needs by itself, whatever else the host holds."""
    real = limits.read_host()
    monkeypatch.setattr(limits, "read_host", lambda: dataclasses.replace(real, gc_thresh3=8))
    name = unique_name("hl")
    try:
        api.up("vxlan", name=name, nodes=2)
    except HostLimitError as e:
        assert "gc_thresh3 = 8" in str(e) and "needs about 12" in str(e)
    else:
        api.down(name)
        pytest.fail("up did not refuse")
    nothing_of(name)
    assert limits.read_host is not real  # the monkeypatch, undone after the test
    assert open("/proc/sys/net/ipv4/neigh/default/gc_thresh3").read().strip() == str(real.gc_thresh3)


def test_status_reports_a_neighbour_table_that_overflowed_since_up(lab_factory, monkeypatch):
    """``table_fulls`` moving after the lab came up is a problem for every lab (the table is
    shared). The counter is simulated: filling the host's real table would break other labs."""
    lab = lab_factory("vxlan", nodes=2, pods=1)
    assert (lab.state.dir / limits.BASELINE).exists(), "up records where table_fulls stood"
    rep = lab.verify()
    assert rep.ok and rep.neighbour_table["overflows"] == 0
    real = limits.arp_cache()
    base = limits.baseline(lab.state)
    monkeypatch.setattr(limits, "arp_cache", lambda: (real[0], base + 7))
    rep = lab.verify()
    assert not rep.ok
    p = [f for f in rep.problems if "neighbour table" in f.what]
    assert p and "full 7 times" in p[0].detail and "gc_thresh3" in p[0].detail
    assert rep.as_dict()["neighbour_table"]["overflows"] == 7
