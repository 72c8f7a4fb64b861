"""A tiny TCP (or UDP) server that says who it is and whom it saw: the "application" in a container.

::

    python -m netlab.daemons.whoami --name executor3 --port 7070 [--proto udp] [--ready FILE]

For every connection (with ``--proto udp``: every datagram) it answers one line (and closes)::

    executor3 at 172.17.0.2:7070 saw peer 192.168.100.11:40312

``at`` is the address the connection arrived on *inside* the container (after any DNAT), ``saw
peer`` the source address the kernel handed the socket (after any SNAT). Behind Docker's NAT that
peer is the other *host*, never the other container: the line makes the rewrites visible without a
packet capture. A client that sends an HTTP request line first (``curl``) gets the same line as an
HTTP/1.0 response; a client that sends nothing gets the plain line after a short wait.

Over UDP there is no connection to ask for the local address, so the datagram's own destination
address comes from the kernel with it (``IP_PKTINFO``), and the answer leaves from that address:
a reply from another source would not match the conntrack entry and never be un-NATed.

``--ready`` names a file created once the socket listens, which is how ``netlab up`` knows the
daemon is serving before it returns.
"""

from __future__ import annotations

import argparse
import signal
import socket
import socketserver
import struct
import sys
from pathlib import Path

HTTP_METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"OPTIONS ")
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # <linux/in.h>; Python 3.11's socket lacks the name
WAIT_FOR_REQUEST = 0.2  # seconds to wait for a request line before answering anyway


def reply_line(name: str, local: tuple[str, int], peer: tuple[str, int]) -> str:
    return f"{name} at {local[0]}:{local[1]} saw peer {peer[0]}:{peer[1]}\n"


class Handler(socketserver.BaseRequestHandler):
    server: "Server"

    def handle(self) -> None:
        sock: socket.socket = self.request
        line = reply_line(self.server.name, sock.getsockname()[:2], sock.getpeername()[:2]).encode()
        sock.settimeout(WAIT_FOR_REQUEST)
        try:
            first = sock.recv(4096)
        except (socket.timeout, OSError):
            first = b""
        sock.settimeout(5)
        if first.startswith(HTTP_METHODS):
            head = (f"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(line)}\r\n"
                    "Connection: close\r\n\r\n").encode()
            out = head + (b"" if first.startswith(b"HEAD ") else line)
        else:
            out = line
        try:
            sock.sendall(out)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        super().__init__(("0.0.0.0", port), Handler)


def serve_udp(name: str, port: int, ready: str | None) -> None:
    """Answer every datagram with the line, from the address it was sent to."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    sock.bind(("0.0.0.0", port))
    print(f"whoami {name}: listening on udp 0.0.0.0:{port}", flush=True)
    if ready:
        Path(ready).touch()
    while True:
        _, anc, _, peer = sock.recvmsg(4096, socket.CMSG_SPACE(12))
        info = next((d for lvl, typ, d in anc if lvl == socket.IPPROTO_IP and typ == IP_PKTINFO), None)
        local = socket.inet_ntoa(info[8:12]) if info else "0.0.0.0"  # struct in_pktinfo: ifindex, spec_dst, addr
        line = reply_line(name, (local, port), peer[:2]).encode()
        source = [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("i4s4s", 0, info[8:12], bytes(4)))] if info else []
        try:
            sock.sendmsg([line], source, 0, peer)
        except OSError:
            pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="whoami", description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True, help="who this server is (the container's name)")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--proto", default="tcp", choices=("tcp", "udp"))
    ap.add_argument("--ready", help="file to create once listening")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.proto == "udp":
        serve_udp(args.name, args.port, args.ready)
        return 0
    with Server(args.name, args.port) as srv:
        print(f"whoami {args.name}: listening on 0.0.0.0:{args.port}", flush=True)
        if args.ready:
            Path(args.ready).touch()
        srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
