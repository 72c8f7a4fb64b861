"""A UDP client that never stops: one datagram every interval, always from the same source port.

::

    python -m netlab.daemons.udp_client --to 192.168.100.12:12347 --sport 5353 [--every 0.5]

It stands for the applications whose traffic is one endless UDP "connection": a DNS resolver's
queries, a statsd or syslog client, a game or VoIP session. For conntrack every datagram of it
is the same 5-tuple, so its entry is refreshed before it can time out (30 s unreplied, 120 s
once both directions were seen) and lives as long as the client does: a DNAT rule that changed
after the entry was made is never consulted for this flow again. That is the stale conntrack
entry kube-proxy deletes by hand (``conntrack -D``) whenever a UDP Service's endpoints change.

It sends through a raw socket (IPPROTO_UDP: the kernel adds the IP header, this program writes
the UDP header, checksum 0 as IPv4 allows), so it never binds the port: a probe, or ``socat
...,sourceport=5353``, can still bind it and receive the answers to the same 5-tuple.
"""

from __future__ import annotations

import argparse
import signal
import socket
import struct
import sys
import time

PAYLOAD = b"metric:1|c\n"


def datagram(sport: int, dport: int, payload: bytes = PAYLOAD) -> bytes:
    """A UDP header (source port, destination port, length, checksum 0: none) and the payload."""
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="udp_client", description=__doc__.splitlines()[0])
    ap.add_argument("--to", required=True, help="IP:PORT to send to")
    ap.add_argument("--sport", type=int, required=True, help="the fixed source port")
    ap.add_argument("--every", type=float, default=0.5, help="seconds between datagrams")
    args = ap.parse_args(argv)
    host, port = args.to.rsplit(":", 1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    packet = datagram(args.sport, int(port))
    print(f"udp_client: {args.sport} -> {host}:{port} every {args.every}s", flush=True)
    while True:
        try:
            sock.sendto(packet, (host, 0))
        except OSError as e:  # no route yet, or an ICMP error reported on the socket
            print(f"udp_client: {e}", flush=True)
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main())
