"""Whether a namespace has any nftables table, asked over nfnetlink without a process.

``iptables`` on Debian 12 is iptables-nft: its tables live in nf_tables, and a namespace where
nothing ever added a rule has no table at all. Asking the kernel (one NFT_MSG_GETTABLE dump on a
NETLINK_NETFILTER socket opened inside the namespace) costs microseconds, where running
``iptables-save`` there would cost a process; ``status`` asks in every pod of a large lab.
"""

from __future__ import annotations

import socket
import struct

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETTABLE = 1
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3


def has_tables() -> bool:
    """True if the calling thread's network namespace has at least one nftables table (of any
    family). False also when this kernel has no nf_tables, so the caller falls back to asking
    iptables-legacy's /proc/net/ip_tables_names."""
    try:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
    except OSError:
        return False
    with s:
        body = struct.pack("=BBH", socket.AF_UNSPEC, 0, 0)  # nfgenmsg: family, version, res_id
        mtype = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE
        s.send(struct.pack("=IHHII", 16 + len(body), mtype, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)
        found = False
        while True:
            data = s.recv(65536)
            off = 0
            while off + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, off)
                if kind in (NLMSG_DONE, NLMSG_ERROR):
                    return found
                found = True
                off += (length + 3) & ~3
            if not data:
                return found
