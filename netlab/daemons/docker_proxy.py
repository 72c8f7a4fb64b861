"""A stand-in for ``docker-proxy``, Docker's userland proxy: a plain TCP relay on the host.

::

    python -m netlab.daemons.docker_proxy -proto tcp -host-ip 0.0.0.0 -host-port 12345 \\
        -container-ip 172.17.0.2 -container-port 7070 [--ready FILE]

(the same arguments dockerd gives docker-proxy, ``portmapper/proxy_linux.go``).

Why it exists at all: with the default ``--userland-proxy=true`` the DNAT rule of a published
port deliberately skips two kinds of connections (DATAPATHS.md §1):

- connections to ``127.0.0.1:<host port>`` from the host itself (``OUTPUT ! -d 127.0.0.0/8``):
  DNAT to a container would need a 127/8 source to leave through docker0, which the kernel refuses
  unless ``route_localnet=1``;
- a container connecting to its own host's ``<host IP>:<host port>`` (``DOCKER -i docker0 -j
  RETURN``): DNAT would send the packet back out of the port it came from, which a bridge only does
  with hairpin mode on.

Both connections are therefore delivered *locally*, to this process's listening socket, which
opens a second connection to the container and copies bytes both ways. The container sees the
proxy's source address (docker0's 172.17.0.1), not the client's: one more way NAT-like plumbing
hides who is calling.

``-proto udp`` relays datagrams as docker-proxy's UDP proxy does: one socket towards the container
per client address, replies sent back from the published port, and a client forgotten after 90 s
without traffic (``UDPConnTrackTimeout``).

``-host-ip ::`` is the IPv6 twin dockerd 20.10 starts next to the IPv4 one: an AF_INET6 socket
with IPV6_V6ONLY set (docker-proxy listens with Go's ``tcp6``), so it takes ``[::]:port`` while the
other process holds ``0.0.0.0:port``, and ``[::1]:port`` reaches the container's IPv4 address
through it; no ip6tables rule is involved. On a kernel without IPv6 at all (``ipv6.disable=1``),
where dockerd would not start it, it says so, reports ready and only waits for SIGTERM.
"""

from __future__ import annotations

import argparse
import errno
import signal
import socket
import sys
import threading
from pathlib import Path

CHUNK = 65536


def pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy src -> dst until EOF, then pass the EOF on (half-close), as docker-proxy does."""
    try:
        while True:
            data = src.recv(CHUNK)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def relay(client: socket.socket, backend: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(backend, timeout=5)
    except OSError as e:
        print(f"docker-proxy: cannot reach {backend[0]}:{backend[1]}: {e}", flush=True)
        client.close()
        return
    upstream.settimeout(None)
    t = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    t.start()
    pump(client, upstream)
    t.join()
    client.close()
    upstream.close()


UDP_IDLE = 90.0  # docker-proxy's UDPConnTrackTimeout
UDP_MAX = 65507


def udp_relay(lsock: socket.socket, backend: tuple[str, int]) -> None:
    """Datagrams from each client to the container over a socket of that client's own, and the
    container's answers back to the client from the published port."""
    upstreams: dict[tuple, socket.socket] = {}
    lock = threading.Lock()

    def answers(client: tuple, up: socket.socket) -> None:
        up.settimeout(UDP_IDLE)
        try:
            while True:
                lsock.sendto(up.recv(UDP_MAX), client)
        except OSError:  # idle for UDP_IDLE (socket.timeout), or closed
            pass
        with lock:
            upstreams.pop(client, None)
        up.close()

    while True:
        data, client = lsock.recvfrom(UDP_MAX)
        with lock:
            up = upstreams.get(client)
            if up is None:
                up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                up.connect(backend)
                upstreams[client] = up
                threading.Thread(target=answers, args=(client, up), daemon=True).start()
        try:
            up.send(data)
        except OSError:
            pass


def listener(host_ip: str, port: int, proto: str = "tcp") -> socket.socket:
    """The listening socket: AF_INET for an IPv4 address, AF_INET6 *v6only* for an IPv6 one, so
    the IPv4 and IPv6 proxies of one published port never collide on the port."""
    v6 = ":" in host_ip
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    lsock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, kind)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if v6:
        lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    lsock.bind((host_ip, port))
    if proto == "tcp":
        lsock.listen(128)
    return lsock


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="docker-proxy", description=__doc__.splitlines()[0])
    ap.add_argument("-proto", default="tcp", choices=("tcp", "udp"))
    ap.add_argument("-host-ip", dest="host_ip", default="0.0.0.0")
    ap.add_argument("-host-port", dest="host_port", type=int, required=True)
    ap.add_argument("-container-ip", dest="container_ip", required=True)
    ap.add_argument("-container-port", dest="container_port", type=int, required=True)
    ap.add_argument("--ready", help="file to create once listening")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        lsock = listener(args.host_ip, args.host_port, args.proto)
    except OSError as e:
        if e.errno != errno.EAFNOSUPPORT:
            raise
        print(f"docker-proxy: no IPv6 in this namespace, not listening on {args.host_ip}", flush=True)
        if args.ready:
            Path(args.ready).touch()
        while True:
            signal.pause()
    backend = (args.container_ip, args.container_port)
    shown = f"[{args.host_ip}]" if ":" in args.host_ip else args.host_ip
    print(f"docker-proxy: {args.proto} {shown}:{args.host_port} -> {backend[0]}:{backend[1]}", flush=True)
    if args.ready:
        Path(args.ready).touch()
    if args.proto == "udp":
        udp_relay(lsock, backend)
    while True:
        client, _ = lsock.accept()
        threading.Thread(target=relay, args=(client, backend), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
