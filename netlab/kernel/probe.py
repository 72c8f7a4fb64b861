"""Probe the running kernel for what a datapath needs, without leaving a trace.

Each probe runs in a throw-away *anonymous* network namespace: this thread unshares a new one,
tries to create the link type there, and switches back. No file is ever created under
/run/netns, and the namespace (with whatever the probe made in it) vanishes with its last
reference. A kernel built without CONFIG_NET_IPIP answers "Unknown device type" (EOPNOTSUPP) here.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import struct
import subprocess
from functools import lru_cache

from ..errors import KernelFeatureError, NetlabError
from . import netns

KERNEL_CONFIG = {
    "bridge": "CONFIG_BRIDGE", "veth": "CONFIG_VETH", "vxlan": "CONFIG_VXLAN",
    "ipip": "CONFIG_NET_IPIP", "tun": "CONFIG_TUN", "gre": "CONFIG_NET_IPGRE", "dummy": "CONFIG_DUMMY",
    "macvlan": "CONFIG_MACVLAN",
}
TOOL_PACKAGES = {
    "iptables-restore": "iptables", "iptables-save": "iptables", "iptables": "iptables", "ip": "iproute2",
    "bridge": "iproute2", "bird": "bird2", "birdc": "bird2", "iperf3": "iperf3", "tcpdump": "tcpdump",
    "tshark": "tshark", "socat": "socat", "ethtool": "ethtool", "conntrack": "conntrack",
}

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


@lru_cache(maxsize=None)
def link_kind(kind: str) -> str | None:
    """None if the kernel can create links of this kind, else the kernel's error text."""
    from pyroute2 import IPRoute

    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        netns._check(netns._libc.unshare(netns.CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        try:
            if kind == "tun":
                return _probe_tun()
            with IPRoute() as ipr:
                args: dict = {"ifname": "probe0", "kind": kind}
                if kind == "veth":
                    args["peer"] = "probe1"
                elif kind == "vxlan":
                    args.update(vxlan_id=42, vxlan_port=4789)
                elif kind == "ipip":
                    args.update(ipip_local="127.0.0.1")
                try:
                    ipr.link("add", **args)
                except Exception as e:  # pyroute2 NetlinkError and friends
                    return str(getattr(e, "args", [None, str(e)])[-1])
                return None
        finally:
            netns._check(netns._libc.setns(orig, netns.CLONE_NEWNET), "setns back")
    finally:
        os.close(orig)


QDISC_ARGS = {"netem": ("delay", "1ms")}


@lru_cache(maxsize=None)
def qdisc_kind(kind: str) -> str | None:
    """None if the kernel can attach a qdisc of this kind (netem: CONFIG_NET_SCH_NETEM), else the
    error: ``tc qdisc add`` on lo in a network namespace of its own, gone when tc exits."""
    if shutil.which("tc") is None or shutil.which("unshare") is None:
        return "tc or unshare is not installed"
    r = subprocess.run(["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", kind, *QDISC_ARGS.get(kind, ())],
                       capture_output=True, text=True, timeout=30)
    return None if r.returncode == 0 else (r.stderr.strip().splitlines() or ["?"])[-1]


def feature(name: str) -> str | None:
    """A kernel feature by name, a link kind or a qdisc: None if present, else why not."""
    return qdisc_kind(name) if name in QDISC_ARGS else link_kind(name)


def _probe_tun() -> str | None:
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return f"/dev/net/tun: {e.strerror}"
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", b"probe%d", IFF_TUN | IFF_NO_PI))
    except OSError as e:
        return f"TUNSETIFF: {e.strerror}"
    finally:
        os.close(fd)
    return None


def require_kinds(kinds: tuple[str, ...], lab: str) -> None:
    for kind in kinds:
        err = link_kind(kind)
        if err is not None:
            cfg = KERNEL_CONFIG.get(kind, "the matching CONFIG_ option")
            raise KernelFeatureError(
                f"this kernel cannot create '{kind}' links ({err}), which lab '{lab}' needs",
                f"use a kernel built with {cfg} (or 'modprobe {kind}' where it is a module), or run netlab "
                "on the distribution's stock kernel: 'netlab vm shell' (or 'netlab vm run -- netlab up …'), "
                "or the Vagrant VM ('vagrant up', see the README's 'In a VM'), or pick another lab")


def require_tools(tools: tuple[str, ...]) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pkg = TOOL_PACKAGES.get(tool, tool)
            raise NetlabError(f"'{tool}' is not installed (not found on PATH)",
                              f"install it: apt-get install {pkg} (or run ./setup.sh)")


def require_root() -> None:
    if os.geteuid() != 0:
        raise NetlabError("netlab needs root to create network namespaces",
                          "run it as root (sudo netlab …); 'netlab list' and 'netlab explain' work without")
