"""pcap/pcapng files as Wireshark expects them: link types, interface names, direction (no root)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from netlab.trace.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapngWriter, PcapWriter, linktype

ETH = bytes(Ether() / IP(src="192.168.100.11", dst="192.168.100.12") / UDP(sport=8285, dport=8285)
            / IP(src="10.244.1.2", dst="10.244.2.2") / ICMP())
RAW = bytes(IP(src="10.244.1.2", dst="10.244.2.2") / ICMP())
T = 1_700_000_000_123_456_789


def test_link_types():
    assert linktype(1) == LINKTYPE_ETHERNET and linktype(772) == LINKTYPE_ETHERNET
    assert linktype(65534) == LINKTYPE_RAW and linktype(768) == LINKTYPE_RAW  # TUN, IPIP


def test_classic_pcap_raw_ip_reads_back(tmp_path):
    f = tmp_path / "tun.pcap"
    with open(f, "wb") as fh:
        w = PcapWriter(fh, LINKTYPE_RAW)
        w.write(T, RAW)
    pkts = rdpcap(str(f))
    assert len(pkts) == 1 and pkts[0].haslayer(ICMP) and pkts[0][IP].src == "10.244.1.2"
    assert int(pkts[0].time) == T // 1_000_000_000


def test_pcapng_two_interfaces_reads_back(tmp_path):
    f = tmp_path / "all.pcapng"
    with open(f, "wb") as fh:
        w = PcapngWriter(fh)
        w.add_interface("a", "node1:eth0", LINKTYPE_ETHERNET, "netns p-node1")
        w.add_interface("b", "node1:flannel0", LINKTYPE_RAW, "netns p-node1")
        w.write("a", T, ETH, direction="out")
        w.write("b", T + 1000, RAW, direction="in", comment="hello")
    pkts = rdpcap(str(f))
    assert len(pkts) == 2
    assert pkts[0].haslayer(Ether) and not pkts[1].haslayer(Ether) and pkts[1].haslayer(ICMP)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (setup.sh installs it)")
def test_tshark_reads_names_links_and_direction(tmp_path):
    f = tmp_path / "all.pcapng"
    with open(f, "wb") as fh:
        w = PcapngWriter(fh)
        w.add_interface("a", "node1:eth0", LINKTYPE_ETHERNET, "netns p-node1")
        w.add_interface("b", "node1:flannel0", LINKTYPE_RAW, "netns p-node1")
        w.write("a", T, ETH, direction="out")
        w.write("b", T + 1000, RAW, direction="in")
    out = subprocess.run(["tshark", "-r", str(f), "-T", "fields", "-e", "frame.interface_name", "-e", "frame.protocols",
                          "-e", "frame.p2p_dir"], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].split("\t")[0] == "node1:eth0"
    assert out[0].split("\t")[1].startswith("eth:ethertype:ip:udp")
    assert out[1].split("\t")[0] == "node1:flannel0"
    assert out[1].split("\t")[1].startswith("raw:ip:icmp")
