"""iperf3 in lab namespaces: a server waited for until it listens, a client, receiver-side rates.

Every process is started through a :class:`Tracker`, which remembers its PID *and* start time
(so a recycled PID is never signalled) and stops whatever is still running when the bench ends,
normally, by exception, or on Ctrl-C. Children also get ``PR_SET_PDEATHSIG = SIGKILL``: should
the bench itself be killed with SIGKILL, the kernel kills its iperf3 processes too. Nothing is
ever found or killed by name.

Rates are the *receiver's*: the server's ``end.sum_received`` (the client's copy of it when the
server's JSON is missing). A sender can always push more than arrives; only what arrives counts.
For UDP the figure is packets per second actually received (``packets - lost_packets``).
"""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Sequence

from ..errors import NetlabError
from ..kernel import netns, procs

PORT = 5201
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Endpoint:
    """One end of a measurement: a namespace, the host name a user types, and its address."""

    ns: str
    host: str
    ip: str


@dataclass(frozen=True)
class Test:
    """One iperf3 test: its id in tables and JSON, the extra client arguments, and its unit."""

    __test__ = False  # not a pytest test class, despite the name

    id: str
    label: str
    args: tuple[str, ...]
    unit: str  # "bit/s" or "pkt/s"


def tests_for(parallel: int, udp_size: int) -> list[Test]:
    """TCP one stream, TCP with ``parallel`` streams, and UDP with small datagrams at full speed
    (``-b 0``), whose figure is packets per second: the per-packet cost that offloads cannot hide."""
    return [
        Test("tcp", "TCP ×1", (), "bit/s"),
        Test("tcp-P", f"TCP ×{parallel}", ("-P", str(parallel)), "bit/s"),
        Test("udp-pps", f"UDP {udp_size} B", ("-u", "-b", "0", "-l", str(udp_size)), "pkt/s"),
    ]


@dataclass
class RunResult:
    """One iperf3 run: the receiver-side figure (None when it failed) and both raw JSON documents."""

    value: float | None
    unit: str
    client: dict | None = None
    server: dict | None = None
    error: str | None = None
    mss: int | None = None
    client_pid: int | None = None
    server_pid: int | None = None
    started: float = field(default_factory=time.time)
    seconds: float = 0.0


class Tracker:
    """The processes this bench started, by (PID, start time); :meth:`stop_all` ends the survivors."""

    def __init__(self) -> None:
        self._live: dict[int, tuple[int, subprocess.Popen]] = {}
        self.started: list[int] = []

    def popen(self, ns: str | None, argv: Sequence[str], **kw) -> subprocess.Popen:
        """Start ``argv`` in namespace ``ns`` (None: where the bench runs, for the explain script,
        which itself only ever addresses lab namespaces)."""
        enter = netns.setns_preexec(ns) if ns else (lambda: None)

        def preexec() -> None:
            signal.pthread_sigmask(signal.SIG_SETMASK, set())  # the parent blocks SIGINT around the fork
            enter()
            # die with the bench, even if it is SIGKILLed and no finally block runs
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

        # Ctrl-C is held back between the fork and the bookkeeping: a KeyboardInterrupt in that
        # window would leave a child that stop_all() does not know. The child inherits the
        # blocked mask across fork and exec, so preexec unblocks it before iperf3 starts.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            p = subprocess.Popen(list(argv), preexec_fn=preexec, start_new_session=True, **kw)
            self._live[p.pid] = (procs.start_time(p.pid) or 0, p)
            self.started.append(p.pid)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return p

    def stop(self, p: subprocess.Popen) -> None:
        entry = self._live.pop(p.pid, None)
        if entry and p.poll() is None:
            procs.stop(p.pid, entry[0])
        try:
            p.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        for stream in (p.stdin, p.stdout, p.stderr):
            if stream:
                try:
                    stream.close()
                except OSError:
                    pass

    def stop_all(self) -> None:
        for pid in list(self._live):
            self.stop(self._live[pid][1])

    def alive(self) -> list[int]:
        return [pid for pid, (st, _) in self._live.items() if procs.alive(pid, st)]


def listening(pid: int, port: int) -> bool:
    """Whether the process's network namespace has a TCP socket listening on ``port``.

    /proc/PID/net/tcp shows the sockets of *that process's* namespace, so the root namespace is
    never looked at and no tool is forked for the check."""
    want = f":{port:04X}"
    for table in ("tcp", "tcp6"):
        try:
            lines = open(f"/proc/{pid}/net/{table}").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 3 and cols[1].endswith(want) and cols[3] == "0A":
                return True
    return False


def _json(text: str) -> dict | None:
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None
    return doc if isinstance(doc, dict) else None


def receiver_rate(test: Test, server: dict | None, client: dict | None) -> float | None:
    """The receiver-side figure: bit/s for TCP, received datagrams per second for UDP."""
    for doc in (server, client):
        if not doc or doc.get("error"):
            continue
        rx = doc.get("end", {}).get("sum_received")
        if not rx:
            continue
        if test.unit == "pkt/s":
            secs = rx.get("seconds") or 0
            got = (rx.get("packets") or 0) - (rx.get("lost_packets") or 0)
            if secs > 0 and got > 0:
                return got / secs
        elif rx.get("bits_per_second"):
            return float(rx["bits_per_second"])
    return None


def run(tracker: Tracker, src: Endpoint, dst: Endpoint, test: Test, duration: int,
        port: int = PORT) -> RunResult:
    """One iperf3 test from ``src`` to ``dst``; never raises for a failed measurement."""
    t0 = time.monotonic()
    res = RunResult(None, test.unit)
    for ep in (src, dst):
        if not netns.exists(ep.ns):
            # e.g. someone ran 'netlab down --all' while the bench was measuring
            res.error = f"namespace {ep.ns} is gone (torn down by someone else?)"
            return res
    try:
        server = tracker.popen(dst.ns, ["iperf3", "-s", "-1", "-J", "-B", dst.ip, "-p", str(port)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except (OSError, subprocess.SubprocessError) as e:
        res.error = f"could not start iperf3 in {dst.ns}: {e}"
        return res
    res.server_pid = server.pid
    client = None
    try:
        deadline = time.monotonic() + 5
        while not listening(server.pid, port):
            if server.poll() is not None:
                res.server = _json(server.communicate()[0])
                res.error = f"iperf3 server in {dst.host} exited: {(res.server or {}).get('error', 'no output')}"
                return res
            if time.monotonic() > deadline:
                res.error = f"iperf3 server in {dst.host} did not listen on port {port} within 5 s"
                return res
            time.sleep(0.01)
        try:
            client = tracker.popen(src.ns, ["iperf3", "-c", dst.ip, "-p", str(port), "-J", "-t", str(duration),
                                            "--connect-timeout", "3000", *test.args],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        except (OSError, subprocess.SubprocessError) as e:
            res.error = f"could not start iperf3 in {src.ns}: {e}"
            return res
        res.client_pid = client.pid
        try:
            out, err = client.communicate(timeout=duration + 20)
        except subprocess.TimeoutExpired:
            res.error = f"iperf3 client in {src.host} did not finish within {duration + 20} s"
            return res
        res.client = _json(out)
        try:
            sout, _ = server.communicate(timeout=5)
            res.server = _json(sout)
        except subprocess.TimeoutExpired:
            pass
        if client.returncode != 0 or res.client is None or res.client.get("error"):
            res.error = (res.client or {}).get("error") or err.strip() or f"iperf3 exited {client.returncode}"
            return res
        res.mss = res.client.get("start", {}).get("tcp_mss_default")
        res.value = receiver_rate(test, res.server, res.client)
        if res.value is None:
            res.error = "iperf3 reported no received data"
        return res
    finally:
        if client is not None:
            tracker.stop(client)
        tracker.stop(server)
        res.seconds = time.monotonic() - t0


def require() -> None:
    from ..kernel.probe import require_tools

    require_tools(("iperf3",))
    if subprocess.run(["iperf3", "--version"], capture_output=True).returncode not in (0, 1):
        raise NetlabError("iperf3 does not run", "reinstall it: apt-get install iperf3 (or run ./setup.sh)")
