"""Test helpers that read the kernel *independently* of netlab: through the iproute2 and
iptables command-line tools, never through netlab's own verify code."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path

from scapy.utils import rdpcap

ROOT = Path(__file__).resolve().parent.parent


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


def residue(lab: str) -> list[str]:
    """Anything of lab ``lab`` still on the machine: namespaces, state, processes."""
    left = [f"netns {n}" for n in netns_list() if n == lab or n.startswith(lab + "-")]
    if Path(f"/run/netlab/{lab}").exists():
        left.append(f"/run/netlab/{lab}")
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if f"/run/netlab/{lab}/" in cmd:
                left.append(f"process {pid}: {cmd.strip()}")
    return left


class Capture:
    """tcpdump in a namespace writing a pcap; packets read back with scapy."""

    def __init__(self, ns: str, iface: str, bpf: str, path: Path, count: int = 10) -> None:
        self.path = path
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

    def packets(self, wait: float = 1.0):
        time.sleep(wait)
        self.proc.terminate()
        self.proc.wait(timeout=5)
        self.proc.stderr.close()
        return list(rdpcap(str(self.path))) if self.path.exists() and self.path.stat().st_size > 24 else []
