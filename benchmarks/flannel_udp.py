#!/usr/bin/env python3
"""Pod-to-pod TCP throughput through netlab's flannel UDP forwarder, side by side with socat.

    .venv/bin/python benchmarks/flannel_udp.py [--seconds 5] [--repeats 3] [--mode flannel|vnet-hdr]

One run brings the ``flannel-udp`` lab up (2 nodes), starts ``iperf3 -s`` in node2-pod1 and, in
alternating rounds (netlab, socat, socat, netlab, …, so that drift of a shared machine shows up
in both columns), runs ``iperf3 -c <node2-pod1> -J`` from node1-pod1 and records the receiver-side
rate:

- **netlab**: the lab's own forwarder daemons (``netlab.daemons.flannel_udp``), exactly as ``up``
  started them;
- **socat**: the forwarders stopped and, in the same node namespaces, Debian's socat doing the same
  TUN <-> UDP forwarding on the same persistent ``flannel0`` and the same 192.168.100.1x:8285::

      socat TUN,tun-name=flannel0,tun-type=tun,iff-no-pi UDP-DATAGRAM:<peer>:8285,bind=<node>:8285

  Without an address after ``TUN`` socat attaches to the existing device and changes nothing on it;
  ``UDP-DATAGRAM`` (unlike ``UDP:``) never connect()s, so an early ICMP port unreachable cannot make
  it exit. socat carries the same bare IP in UDP 8285->8285 (it does not lower the TTL).

It prints every round, the medians and the ratio netlab/socat. ``--mode vnet-hdr`` benchmarks the
opt-in fast mode, which is NOT flannel's packet format. The lab is torn down at the end, also on
Ctrl-C or an error; socat and iperf3 die with this process (PR_SET_PDEATHSIG) if it is killed.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netlab import api  # noqa: E402
from netlab.datapaths import flannel_udp  # noqa: E402
from netlab.errors import NetlabError  # noqa: E402
from netlab.kernel import netns, procs  # noqa: E402
from netlab.kernel.apply import Applier  # noqa: E402
from netlab.plan import Addr, Daemon  # noqa: E402

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def popen_in(ns: str, argv: list[str], **kw) -> subprocess.Popen:
    """Start ``argv`` in namespace ``ns``; it gets SIGKILL if this benchmark dies first, so no socat
    or iperf3 can outlive it and keep a lab namespace alive."""
    enter = netns.setns_preexec(ns)

    def pre() -> None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        enter()

    return subprocess.Popen(argv, preexec_fn=pre, **kw)


@dataclass
class Sample:
    impl: str
    round: int
    gbps: float
    retransmits: int


class Bench:
    def __init__(self, seconds: int, mode: str, name: str) -> None:
        self.seconds = seconds
        self.h = api.up("flannel-udp", name=name, nodes=2, pods=1, options={"mode": mode})
        self.node1, self.node2 = self.h.ns("node1"), self.h.ns("node2")
        self.src, self.dst_ns = self.h.ns("node1-pod1"), self.h.ns("node2-pod1")
        self.dst = next(a.interface.ip for a in self.h.plan.of(Addr) if a.ns == self.dst_ns and a.dev == "eth0")
        self.socats: list[subprocess.Popen] = []
        self.server: subprocess.Popen | None = None
        self.active = "netlab"

    # -- forwarders ------------------------------------------------------------------------------
    def stop_netlab(self) -> None:
        st = self.h.state
        for d in st.daemons:
            procs.stop(d.pid, d.start_time)
        st.daemons = []
        st.save()
        for d in self.h.plan.of(Daemon):
            Path(d.ready.replace("{run}", str(st.dir))).unlink(missing_ok=True)

    def start_netlab(self) -> None:
        """Start the plan's daemons again through the engine, so the state file records them and
        ``netlab down`` stops them even if this benchmark is killed."""
        applier = Applier(self.h.plan, self.h.state)
        applier.daemons(self.h.plan.of(Daemon))

    def start_socat(self) -> None:
        addrs = {ns: next(a.interface.ip for a in self.h.plan.of(Addr) if a.ns == ns and a.dev == "eth0")
                 for ns in (self.node1, self.node2)}
        port = self.h.lab.options.port
        for me, peer in ((self.node1, self.node2), (self.node2, self.node1)):
            argv = ["socat", "TUN,tun-name=flannel0,tun-type=tun,iff-no-pi",
                    f"UDP-DATAGRAM:{addrs[peer]}:{port},bind={addrs[me]}:{port}"]
            self.socats.append(popen_in(me, argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True))
        deadline = time.monotonic() + 5
        for ns in (self.node1, self.node2):
            while not self._attached(ns, port):
                dead = [p for p in self.socats if p.poll() is not None]
                if dead or time.monotonic() > deadline:
                    err = dead[0].stderr.read().strip() if dead else "timeout"
                    raise NetlabError(f"socat did not start in {ns}: {err}", "is socat installed (apt-get install socat)?")
                time.sleep(0.05)

    def _attached(self, ns: str, port: int) -> bool:
        link = json.loads(procs.run(ns, ["ip", "-j", "link", "show", "flannel0"]).stdout)[0]
        bound = procs.run(ns, ["ss", "-Hnlu", f"sport = :{port}"]).stdout.strip()
        return "LOWER_UP" in link["flags"] and bool(bound)

    def stop_socat(self) -> None:
        for p in self.socats:
            p.terminate()
        for p in self.socats:
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stderr:
                p.stderr.close()
        self.socats = []

    def use(self, impl: str) -> None:
        if impl == self.active:
            return
        if impl == "socat":
            self.stop_netlab()
            self.start_socat()
        else:
            self.stop_socat()
            self.start_netlab()
        self.active = impl

    # -- measurement -----------------------------------------------------------------------------
    def start_server(self) -> None:
        self.server = popen_in(self.dst_ns, ["iperf3", "-s", "-p", "5201"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while not procs.run(self.dst_ns, ["ss", "-Hntl", "sport = :5201"]).stdout.strip():
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise NetlabError("iperf3 server did not start in the destination pod", "is iperf3 installed?")
            time.sleep(0.05)

    def measure(self, impl: str, rnd: int) -> Sample:
        self.use(impl)
        r = procs.run(self.src, ["iperf3", "-c", str(self.dst), "-p", "5201", "-t", str(self.seconds), "-J"],
                      timeout=self.seconds + 30)
        data = json.loads(r.stdout) if r.stdout.strip() else {}
        if "error" in data or "end" not in data:
            raise NetlabError(f"iperf3 through {impl} failed: {data.get('error', r.stderr.strip())}",
                              "check the forwarder logs under /run/netlab/<lab>/")
        end = data["end"]
        return Sample(impl, rnd, end["sum_received"]["bits_per_second"] / 1e9,
                      int(end.get("sum_sent", {}).get("retransmits", 0)))

    def close(self) -> None:
        try:
            self.stop_socat()
            if self.server is not None:
                self.server.kill()
                self.server.wait()
        finally:
            self.h.down()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=5, help="iperf3 duration per round (default 5)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds per forwarder (default 3)")
    ap.add_argument("--mode", choices=flannel_udp.MODES, default="flannel",
                    help="the netlab forwarder's mode; vnet-hdr is NOT flannel's packet format")
    ap.add_argument("--name", default=f"fub{secrets.token_hex(2)}", help="lab instance name")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("flannel_udp benchmark: needs root (it builds network namespaces)", file=sys.stderr)
        return 1
    for tool in ("iperf3", "socat", "ss"):
        if shutil.which(tool) is None:
            print(f"flannel_udp benchmark: '{tool}' is not installed (./setup.sh installs it)", file=sys.stderr)
            return 1

    print(f"flannel-udp benchmark: lab {args.name}, mode {args.mode}"
          f"{' (NOT flannel packet format)' if args.mode != 'flannel' else ''}, "
          f"iperf3 TCP {args.seconds}s x {args.repeats} per forwarder, node1-pod1 -> node2-pod1, "
          f"MTU 1472, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    samples: list[Sample] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # run the finally: below
    b = Bench(args.seconds, args.mode, args.name)
    try:
        b.start_server()
        for rnd in range(args.repeats):
            order = ("netlab", "socat") if rnd % 2 == 0 else ("socat", "netlab")  # ABBA: drift hits both
            for impl in order:
                s = b.measure(impl, rnd + 1)
                samples.append(s)
                print(f"  round {s.round} {s.impl:<6} {s.gbps:6.3f} Gbit/s  retransmits {s.retransmits}", flush=True)
    finally:
        b.close()

    med = {impl: statistics.median(s.gbps for s in samples if s.impl == impl) for impl in ("netlab", "socat")}
    ratio = med["netlab"] / med["socat"] if med["socat"] else float("inf")
    print(f"median netlab forwarder ({args.mode}): {med['netlab']:.3f} Gbit/s")
    print(f"median socat:                {' ' * len(args.mode)}  {med['socat']:.3f} Gbit/s")
    print(f"ratio netlab/socat: {ratio:.2f}x  (load {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
