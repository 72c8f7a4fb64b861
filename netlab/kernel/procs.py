"""Processes in namespaces: commands (``exec``), daemons, and proving a PID is ours."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Sequence

from . import netns


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot): with the PID, a unique process id."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'
    rest = stat[stat.rindex(")") + 2:].split()
    return int(rest[19])


def proc_state(pid: int, started: int) -> str | None:
    """The scheduler state letter of process ``pid`` (``R``, ``S``, ``D``, ``T`` stopped, ``t``
    traced, ``Z`` zombie, …), or None if that PID is gone or is now another process."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = stat[stat.rindex(")") + 2:].split()
    if int(rest[19]) != started:
        return None
    return rest[0]


def alive(pid: int, started: int) -> bool:
    st = start_time(pid)
    if st is None or st != started:
        return False
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def cmdline(pid: int) -> list[str] | None:
    """The argv of process ``pid`` as the kernel holds it (/proc/PID/cmdline), or None."""
    try:
        raw = open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return None
    return [a.decode(errors="surrogateescape") for a in raw.split(b"\0")[:-1]] if raw else []


def naming(path: str, grace: float = 3.0) -> list[int]:
    """The processes (other than this one) whose command line contains ``path``, after up to
    ``grace`` seconds for them to exit. A lab's daemons all name its state directory (their
    configs, sockets and ready files live there), so with a lab's state directory this finds what
    a teardown left running, whichever namespace it runs in."""
    needle = path.encode()
    deadline = time.monotonic() + grace
    while True:
        pids = []
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if needle in f.read() and int(entry) != os.getpid():
                        pids.append(int(entry))
            except OSError:
                continue
        if not pids or time.monotonic() >= deadline:
            return pids
        time.sleep(0.1)


def netns_inode(pid: int) -> int | None:
    """The inode of the network namespace process ``pid`` lives in (``/proc/PID/ns/net``)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def provably_ours(pid: int, started: int, argv: Sequence[str], ns_inode: int | None) -> str | None:
    """None if process ``pid`` is provably the daemon netlab recorded, else why not.

    A PID and a start time alone are not proof: a hand-edited state file could name any process
    on the host. The process must also live in ``ns_inode`` (the inode of a namespace the caller
    has proven carries the lab's marker) and run exactly the recorded argv. Only then may netlab
    signal it."""
    if start_time(pid) != started:
        return "not running (or the PID now belongs to another process)"
    if ns_inode is None or netns_inode(pid) != ns_inode:
        return "not in one of the lab's namespaces"
    if cmdline(pid) != list(argv):
        return "runs another command than the recorded one"
    return None


def stop(pid: int, started: int, timeout: float = 3.0) -> bool:
    """SIGTERM, then SIGKILL, the process ``pid`` — only if it is still the one we started."""
    if not alive(pid, started):
        _reap(pid)
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not alive(pid, started):
            return True
        time.sleep(0.02)
    if alive(pid, started):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for _ in range(100):
            _reap(pid)
            if not alive(pid, started):
                break
            time.sleep(0.01)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def popen(ns: str, argv: Sequence[str], **kw) -> subprocess.Popen:
    """Start ``argv`` inside namespace ``ns`` (setns in the child between fork and exec)."""
    return subprocess.Popen(list(argv), preexec_fn=netns.setns_preexec(ns), **kw)


def run(ns: str, argv: Sequence[str], check: bool = False, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(list(argv), preexec_fn=netns.setns_preexec(ns), check=check, **kw)
