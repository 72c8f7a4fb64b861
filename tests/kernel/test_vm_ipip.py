"""calico-ipip in Always mode on a kernel with ipip (DATAPATHS.md §3b). test_calico.py covers
CrossSubnet; together they are both modes. Where the host lacks ipip, the VM pass
(tests/vm/tier.py) runs them on the distribution's stock kernel, so calico-ipip is never skipped:
it runs on the host or in the VM."""

from __future__ import annotations

import subprocess
import sys

import pytest
from scapy.layers.inet import IP

from netlab.trace import engine
from tests.helpers import ROOT, Capture, ipj, ping, root_snapshot

pytestmark = [pytest.mark.kernel, pytest.mark.needs_ipip]


def test_calico_ipip_always_every_remote_block_through_tunl0(lab_factory, tmp_path):
    before = root_snapshot()
    lab = lab_factory("calico-ipip", pods=1)  # 3 nodes, one rack, mode Always (the lab file's default)
    for i in (1, 2, 3):
        n = lab.ns(f"node{i}")
        tunl0 = ipj(n, "-d", "link", "show", "tunl0")[0]
        assert tunl0["linkinfo"]["info_kind"] == "ipip" and tunl0["mtu"] == 1480 and "UP" in tunl0["flags"]
        assert [a["local"] for a in ipj(n, "addr", "show", "tunl0")[0]["addr_info"] if a["family"] == "inet"] == \
            [f"192.168.{i}.0"]
        blocks = {r["dst"]: r for r in ipj(n, "route", "show") if r["dst"].endswith("/26")}
        for j in {1, 2, 3} - {i}:  # Always: even a same-subnet peer is reached through the tunnel
            r = blocks[f"192.168.{j}.0/26"]
            assert (r["gateway"], r["dev"]) == (f"10.0.0.{10 + j}", "tunl0") and "onlink" in r["flags"], r
    # on the wire: IP protocol 4, node IP outside, pod IP inside
    cap = Capture(lab.ns("switch"), "br0", "ip proto 4", tmp_path / "ipip.pcap", count=2)
    assert ping(lab.ns("node1-pod1"), "192.168.2.1", count=2)
    pkts = cap.packets()
    assert pkts, "no IPIP packet on the underlay switch"
    outer = pkts[0][IP]
    assert (outer.src, outer.dst, outer.proto) == ("10.0.0.11", "10.0.0.12", 4)
    assert (outer.payload.src, outer.payload.dst) == ("192.168.1.1", "192.168.2.1")
    # trace: complete, and the underlay hops carry IP in IP
    r = engine.run(lab.plan, "node1-pod1", "node2-pod1")
    assert r.complete, r.as_dict().get("stop")
    assert any("/".join(h.decoded.names) == "Ether/IP/IP/ICMP" for h in r.hops if h.frame.host == "switch")
    # status: healthy, as netlab's CLI reports it
    st = subprocess.run([sys.executable, "-m", "netlab", "status", lab.name], capture_output=True, text=True, cwd=ROOT)
    assert st.returncode == 0, st.stdout + st.stderr
    assert lab.verify().ok
    lab.down()  # and down is clean (lab_factory checks the residue again)
    assert root_snapshot() == before
