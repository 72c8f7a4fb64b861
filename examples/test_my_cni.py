"""An example of a platform team's own CNI regression test, with netlab's pytest plugin.

    sudo .venv/bin/pytest examples/test_my_cni.py

``netlab_lab`` comes from the plugin netlab installs (no conftest needed); the lab is torn
down after the test."""


def test_pods_cross_nodes_over_vxlan(netlab_lab):
    lab = netlab_lab("vxlan", nodes=2, pods=1)
    assert lab.exec("node1-pod1", ["ping", "-c", "1", "-W", "1", "10.244.2.2"]).returncode == 0
    assert lab.trace("node1-pod1", "node2-pod1").complete
    assert lab.verify().ok


def test_calico_routes_come_from_bgp(netlab_lab):
    lab = netlab_lab("calico", nodes=2, pods=1)
    routes = lab.exec("node1", ["ip", "route", "show", "proto", "bird"], text=True, capture_output=True).stdout
    assert "192.168.2.0/26" in routes
