"""Test helpers that read the kernel *independently* of netlab: through the iproute2 and
iptables command-line tools, never through netlab's own verify code."""

from __future__ import annotations

import json
import os
import secrets
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from scapy.utils import rdpcap

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


# ---- waiting for conditions ---------------------------------------------------------------------
# A test never sleeps for a fixed time and hopes: it polls the condition it needs, up to a deadline
# generous enough for a loaded or emulated machine, and returns as soon as the condition holds.
# (The idea of the kernel selftests' lib.sh slowwait / busywait_for_counter.)

def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05,
               what: str = "the condition", retry_on: tuple[type[BaseException], ...] = (),
               detail: Callable[[], object] | None = None) -> T:
    """Call ``predicate`` until it returns something truthy and return that value.

    Raises AssertionError after ``timeout`` seconds naming ``what`` and the last value seen, so a
    timeout reads as a test failure that says what never happened. Exceptions of the types in
    ``retry_on`` (a file not written yet, a half-written JSON document) count as "not yet"; any
    other exception propagates at once, because it is a bug, not a timing. ``detail``, called once
    at a timeout, adds the state the condition was waiting on to the message (a predicate's last
    value is only ever falsy)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except retry_on as e:
            value = e
        else:
            if value:
                return value
        left = deadline - time.monotonic()
        if left <= 0:
            more = f"; {detail()}" if detail is not None else ""
            raise AssertionError(f"{what} did not happen within {timeout:g}s (last seen: {value!r}){more}")
        time.sleep(min(interval, left))


def wait_for_counter(read: Callable[[], int], delta: int | Callable[[int], bool] = 1, *, base: int | None = None,
                     timeout: float = 10.0, interval: float = 0.05, what: str = "the counter") -> int:
    """Read a counter until it has moved by at least ``delta`` from ``base`` and return its value.

    ``base`` defaults to the counter's value now; read it yourself *before* sending traffic when the
    traffic is sent synchronously, or the packets are counted before the base is taken. ``delta``
    may instead be a predicate on the value read (``lambda v: v >= 2``)."""
    start = read() if base is None else base
    done = delta if callable(delta) else (lambda v: v - start >= delta)
    goal = f"{what} (moving by {delta} from {start})" if not callable(delta) else what
    last: list[int] = [start]

    def reached() -> tuple[int] | None:
        last[0] = read()
        return (last[0],) if done(last[0]) else None  # a tuple: a final value of 0 is still "done"

    try:
        return wait_until(reached, timeout, interval, what=goal)[0]
    except AssertionError:
        raise AssertionError(f"{goal} did not happen within {timeout:g}s (last read: {last[0]})") from None


def wait_for_quiet(read: Callable[[], int], seconds: float, timeout: float = 20.0) -> None:
    """Poll a counter until it has not moved for ``seconds`` (at most ``timeout``): the
    background a later counter difference must not include has died down."""
    state = {"value": read(), "since": time.monotonic()}

    def quiet() -> bool:
        value = read()
        if value != state["value"]:
            state.update(value=value, since=time.monotonic())
        return time.monotonic() - state["since"] >= seconds

    wait_until(quiet, timeout=timeout, interval=0.1, what=f"the counter quiet for {seconds} s")


def link_stats(entries: list[dict], direction: str = "rx", key: str = "packets") -> int:
    """One counter from ``ip -j -s link show dev X`` output (``stats64``, or ``stats`` on old iproute2)."""
    stats = entries[0].get("stats64") or entries[0]["stats"]
    return int(stats[direction][key])


def link_counter(ns: str | None, dev: str, direction: str = "rx", key: str = "packets") -> Callable[[], int]:
    """A reader of an interface counter, for :func:`wait_for_counter`: ``link_counter(ns, "eth0")``."""
    return lambda: link_stats(ipj(ns, "-s", "link", "show", "dev", dev), direction, key)


def parse_snmp(text: str) -> dict[str, dict[str, int]]:
    """``/proc/net/snmp`` (or ``netstat``) -> {"Ip": {"Forwarding": 1, ...}, "Icmp": {...}, ...}: each
    protocol is a line of names followed by a line of values."""
    table: dict[str, dict[str, int]] = {}
    lines = [l.split() for l in text.splitlines() if l.strip()]
    for names, values in zip(lines[::2], lines[1::2]):
        proto = names[0].rstrip(":")
        table[proto] = {n: int(v) for n, v in zip(names[1:], values[1:])}
    return table


def snmp_counter(ns: str, proto: str, name: str) -> Callable[[], int]:
    """A reader of a ``/proc/net/snmp`` counter in namespace ``ns``: ``snmp_counter(ns, "Icmp", "OutMsgs")``."""
    return lambda: parse_snmp(nsexec(ns, "cat", "/proc/net/snmp", check=True).stdout)[proto][name]


def unique_name(prefix: str = "t") -> str:
    """A random-suffix lab name (as the kernel selftests do), so tests can run side by side."""
    return f"{prefix}{secrets.token_hex(3)}"


def sh(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(list(argv), check=check, **kw)


def ipj(ns: str | None, *args: str) -> list[dict]:
    """``ip -j [-n ns] ARGS`` parsed."""
    argv = ["ip", "-j"] + (["-n", ns] if ns else []) + list(args)
    out = sh(*argv).stdout
    return json.loads(out) if out.strip() else []


def bridgej(ns: str, *args: str) -> list[dict]:
    out = sh("bridge", "-j", "-n", ns, *args).stdout
    return json.loads(out) if out.strip() else []


def nsexec(ns: str, *argv: str, check: bool = False, **kw) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", ns, *argv, check=check, **kw)


def ping(ns: str, dst: str, count: int = 1, timeout: int = 2, size: int | None = None) -> bool:
    args = ["ping", "-c", str(count), "-W", str(timeout), "-i", "0.2"]
    if size is not None:
        args += ["-s", str(size), "-M", "do"]
    return nsexec(ns, *args, dst).returncode == 0


def sysctl(ns: str, key: str) -> str:
    return nsexec(ns, "sysctl", "-n", key, check=True).stdout.strip()


def iptables_save(ns: str | None) -> str:
    if ns is None:
        return sh("iptables-save").stdout
    return nsexec(ns, "iptables-save", check=True).stdout


def netns_list() -> set[str]:
    return {e["name"] for e in ipj(None, "netns", "list")}


def root_snapshot() -> dict:
    """The root namespace's state, for before/after comparisons."""
    def strip(entries: list[dict]) -> list[dict]:
        volatile = ("stats", "stats64", "operstate", "linkinfo")
        return [{k: v for k, v in e.items() if k not in volatile} for e in entries]
    rules = [l for l in iptables_save(None).splitlines() if not l.startswith("#")]
    sysctls = {k: Path("/proc/sys/" + k.replace(".", "/")).read_text().strip()
               for k in ("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding", "net.ipv4.conf.all.rp_filter",
                         "net.bridge.bridge-nf-call-iptables", "net.ipv4.conf.all.proxy_arp")
               if Path("/proc/sys/" + k.replace(".", "/")).exists()}
    return {
        "link": strip(ipj(None, "link")),
        "addr": [(a["ifname"], [x.get("local") for x in a.get("addr_info", [])]) for a in ipj(None, "addr")],
        "route": ipj(None, "route", "show", "table", "all"),
        "rule": ipj(None, "rule"),
        "iptables": rules,
        "sysctl": sysctls,
    }


def validate_exercises(idents: list[str], parallel: int, state_dir: Path) -> dict[str, list[str]]:
    """Each exercise validated end to end (netlab.exercises.run.validate_all: every seed,
    ``parallel`` at once) under the private state root ``state_dir``, and the root network
    namespace compared before and after: every fault, fix and wrong fix stays in lab namespaces.
    Returns each exercise's failures."""
    from netlab.exercises import run

    old = os.environ.get("NETLAB_STATE_DIR")
    os.environ["NETLAB_STATE_DIR"] = str(state_dir)
    before = root_snapshot()
    try:
        results = run.validate_all(idents, parallel=parallel, log=lambda line: None)
    finally:
        if old is None:
            os.environ.pop("NETLAB_STATE_DIR", None)
        else:
            os.environ["NETLAB_STATE_DIR"] = old
    if root_snapshot() != before:
        results = {i: r + ["the root network namespace changed"] for i, r in results.items()}
    return results


def selected_params(request, name: str) -> list:
    """The values of parameter ``name`` of this module's tests that the session will run (after
    -k, -m and the VM placement): a module fixture then does only the work they need."""
    return [item.callspec.params[name] for item in request.session.items
            if item.module is request.module and hasattr(item, "callspec") and name in item.callspec.params]


def residue(lab: str) -> list[str]:
    """Anything of lab ``lab`` still on the machine: namespaces, state, processes."""
    from netlab import state
    from netlab.kernel import procs

    left = [f"netns {n}" for n in netns_list() if n == lab or n.startswith(lab + "-")]
    run_dir = state.state_root() / lab
    if run_dir.exists():
        left.append(str(run_dir))
    for pid in procs.naming(f"{run_dir}/"):
        left.append(f"process {pid}: {' '.join(procs.cmdline(pid) or [])}")
    return left


def pcap_count(data: bytes) -> int:
    """Complete packet records in a classic pcap file's bytes (a record tcpdump is still writing is
    not counted)."""
    if len(data) < 24:
        return 0
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    n, off = 0, 24
    while off + 16 <= len(data):
        (caplen,) = struct.unpack_from(order + "I", data, off + 8)
        off += 16 + caplen
        if off > len(data):
            break
        n += 1
    return n


class Capture:
    """tcpdump in a namespace writing a pcap; packets read back with scapy."""

    def __init__(self, ns: str, iface: str, bpf: str, path: Path, count: int = 10) -> None:
        self.path = path
        self.count = count
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "tcpdump", "-Z", "root", "--immediate-mode", "-i", iface, "-U", "-n", "-c", str(count), "-w", str(path), bpf],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # tcpdump says "listening on" once the socket is bound
        deadline = time.monotonic() + 5
        line = ""
        while time.monotonic() < deadline and "listening" not in line:
            line = self.proc.stderr.readline()
        if "listening" not in line:
            raise RuntimeError(f"tcpdump did not start: {line}")

    def captured(self) -> int:
        """Packets tcpdump has written so far (-U writes each one as it is captured)."""
        try:
            return pcap_count(self.path.read_bytes())
        except FileNotFoundError:
            return 0

    def packets(self, count: int | None = None, timeout: float = 5.0) -> list:
        """The packets, once tcpdump holds ``count`` of them (default: the ``count`` it was started
        with, after which it exits by itself) or after ``timeout`` seconds, whichever comes first.

        A timeout is not an error here: the caller's assertions say which packet is missing (and a
        test may expect fewer). The traffic has usually been sent already, so this returns as soon
        as tcpdump has been scheduled to write it, however long that takes on this machine."""
        want = self.count if count is None else count
        try:
            wait_until(lambda: self.proc.poll() is not None or self.captured() >= want, timeout=timeout,
                       what=f"{want} packets in {self.path}")
        except AssertionError:
            pass
        self.proc.terminate()
        self.proc.wait(timeout=5)
        self.proc.stderr.close()
        return list(rdpcap(str(self.path))) if self.path.exists() and self.path.stat().st_size > 24 else []
