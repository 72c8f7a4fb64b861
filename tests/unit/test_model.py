"""Lab files -> model: validation errors name the file, the field and what is allowed."""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path

import pytest

from netlab import model
from netlab.errors import LabFileError


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "lab.yaml"
    p.write_text(text)
    return str(p)


BASE = "datapath: flannel-vxlan\n"


def test_default_vxlan_lab():
    lab = model.load("vxlan")
    assert lab.name == "vxlan" and lab.datapath == "flannel-vxlan"
    assert (lab.nodes, lab.pods) == (2, 2)
    assert lab.underlay.cidr == IPv4Network("192.168.100.0/24")
    assert lab.pod_cidr == IPv4Network("10.244.0.0/16")
    assert (lab.options.vni, lab.options.port, lab.options.mtu) == (1, 8472, None)


def test_overrides_and_instance_name():
    lab = model.load("vxlan", name="second", overrides={"nodes": 4, "pods": 3, "options": {"vni": "7"}})
    assert (lab.name, lab.nodes, lab.pods, lab.options.vni) == ("second", 4, 3, 7)


@pytest.mark.parametrize("text, field, words", [
    (BASE + "nodes: 0\n", "nodes", "from 1"),
    (BASE + "nodes: two\n", "nodes", "integer"),
    (BASE + "colour: red\n", "colour", "unknown field"),
    (BASE + "underlay: {cidr: 10.0.0.0/24, speed: 10}\n", "underlay.speed", "unknown field"),
    (BASE + "pod_cidr: 192.168.100.0/22\n", "pod_cidr", "overlaps"),
    (BASE + "nodes: 20\nunderlay: {cidr: 192.168.100.0/28}\n", "underlay.cidr", "too small"),
    (BASE + "underlay: {cidr: 192.168.100.0/29}\n", "underlay.cidr", "too small"),
    (BASE + "pod_cidr: 10.244.0.0/23\n", "pod_cidr", "too small"),
    (BASE + "pod_cidr: 10.244.0.1/16\n", "pod_cidr", "IPv4 network"),
    (BASE + "options: {vni: 0}\n", "options.vni", "from 1"),
    (BASE + "options: {colour: 1}\n", "options.colour", "unknown field"),
    (BASE + "options: {mtu: 1480}\n", "options.mtu", "exceeds the underlay MTU"),
    ("datapath: warp-drive\n", "datapath", "unknown datapath"),
    ("nodes: 2\n", "datapath", "missing"),
])
def test_errors_name_file_field_and_remedy(tmp_path, text, field, words):
    path = write(tmp_path, text)
    with pytest.raises(LabFileError) as e:
        model.load(path)
    msg = str(e.value)
    assert path in msg and field in msg and words in msg, msg
    assert " — " in msg  # the remedy half


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, BASE + "nodes: [2\npods: 2\n")
    with pytest.raises(LabFileError, match=r"YAML syntax error at line \d"):
        model.load(path)


def test_unknown_lab_lists_the_choices():
    with pytest.raises(LabFileError, match="unknown lab 'nope'.*vxlan"):
        model.load("nope")


def test_bad_instance_name():
    with pytest.raises(LabFileError, match="lab name"):
        model.load("vxlan", name="Bad_Name")


def test_bad_override_is_checked_like_the_file():
    with pytest.raises(LabFileError, match="nodes: must be from 1"):
        model.load("vxlan", overrides={"nodes": 0})


def test_an_empty_name_is_refused_not_taken_for_the_default():
    with pytest.raises(LabFileError, match="lab name '' is not allowed"):
        model.load("vxlan", name="")
    assert model.load("vxlan", name=None).name == "vxlan"


def test_a_path_that_does_not_exist_is_file_not_found(tmp_path):
    with pytest.raises(LabFileError, match="file not found"):
        model.load(str(tmp_path / "nope.yaml"))


@pytest.mark.parametrize("text, field, words", [
    (BASE + "underlay: {cidr: 127.0.0.0/24}\n", "underlay.cidr", "loopback"),
    (BASE + "pod_cidr: 169.254.0.0/16\n", "pod_cidr", "link-local"),
    (BASE + "pod_cidr: 'fd00::/48'\n", "pod_cidr", "IPv6"),
    (BASE + "nodes: 2\nnodes: 3\n", "duplicate key 'nodes'", "line 3"),
    (BASE + "options: [vni]\n", "options", "must be a mapping"),
    (BASE + "description: [a]\n", "description", "must be text"),
])
def test_hostile_fields_name_file_field_and_remedy(tmp_path, text, field, words):
    path = write(tmp_path, text)
    with pytest.raises(LabFileError) as e:
        model.load(path)
    msg = str(e.value)
    assert path in msg and field in msg and words in msg and " — " in msg, msg


def test_a_utf8_bom_is_fine_and_a_bad_byte_is_named(tmp_path):
    p = tmp_path / "lab.yaml"
    p.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    assert model.load(str(p)).datapath == "flannel-vxlan"
    p.write_bytes(b"\xef\xbb\xbf" + BASE.encode() + b"description: \xff\n")
    with pytest.raises(LabFileError, match=r"byte 0xff on line 2"):
        model.load(str(p))


def test_shown_cuts_values_short_and_keeps_them_on_one_line():
    assert model.shown("x" * 1000) == "x" * 37 + "..."
    assert model.shown("a\nb") == "a\\nb"
    assert model.shown(10**5000).endswith("-bit integer>")
    assert len(model.shown_path("/d" * 500 + "/lab.yaml")) == model.SHOWN_PATH
    assert model.shown_path("/d" * 500 + "/lab.yaml").endswith("/lab.yaml")


def test_netlab_labs_is_a_search_path_added_to_netlabs_own(tmp_path, monkeypatch):
    """A user's directory adds labs (and may shadow one by name); netlab's own stay visible."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "mylab.yaml").write_text((model.labs_dir() / "vxlan.yaml").read_text())
    monkeypatch.setenv("NETLAB_LABS", f"{mine}:{tmp_path / 'missing'}")
    names = [p.stem for p in model.available()]
    assert "mylab" in names and "vxlan" in names and names == sorted(names)
    assert model.find("mylab") == mine / "mylab.yaml"
    assert model.find("vxlan") == model.labs_dir() / "vxlan.yaml"
