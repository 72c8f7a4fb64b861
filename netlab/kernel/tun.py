"""TUN devices. They cannot be made over rtnetlink: open /dev/net/tun, TUNSETIFF, TUNSETPERSIST.

flanneld opens ``flannel0`` with IFF_TUN|IFF_NO_PI: a layer-3 device (no Ethernet header, NOARP,
POINTOPOINT) whose reads and writes are bare IPv4 packets. netlab creates it persistent, so the
plan owns it (``status`` can check it, teardown takes it away with the namespace), and the
forwarder daemon attaches to it by name.
"""

from __future__ import annotations

import fcntl
import os
import struct

from . import netns

TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFF_MULTI_QUEUE = 0x0100


def open_tun(name: str, flags: int = IFF_TUN | IFF_NO_PI) -> int:
    """Attach to (or create) TUN ``name`` in the current namespace; returns the fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
    except OSError:
        os.close(fd)
        raise
    return fd


def create_persistent(ns: str, name: str) -> None:
    with netns.entered(ns):
        fd = open_tun(name)
        try:
            fcntl.ioctl(fd, TUNSETPERSIST, 1)
        finally:
            os.close(fd)
