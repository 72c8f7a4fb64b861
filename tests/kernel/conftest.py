"""After the whole kernel suite, nothing of it is left on the machine.

Each test checks its own lab's residue; this session-wide check catches what no single test
looks for: a namespace under /run/netns, a mount of one, a /run/netlab entry, or a process living
in a network namespace other than the root one, that was not there when the session started.
(Other tools' namespaces and processes that were there before are left out of the comparison.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import wait_until


def _netns_files() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


def _netns_mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f if line.split()[4].startswith("/run/netns/")}


def _state_entries() -> set[str]:
    try:
        return set(os.listdir("/run/netlab"))
    except FileNotFoundError:
        return set()


def _foreign_net_processes() -> set[str]:
    """Processes whose network namespace is not the root one (pid and start time, so a PID that
    the kernel reuses is a different entry)."""
    root = os.stat("/proc/self/ns/net").st_ino  # the suite runs in the root namespace
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino == root:
                continue
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2:].split()
        if rest[0] != "Z":
            found.add(f"{pid}:{rest[19]}:{stat[stat.index('(') + 1:stat.rindex(')')]}")
    return found


def _snapshot() -> dict[str, set[str]]:
    return {"namespaces": _netns_files(), "mounts": _netns_mounts(), "/run/netlab": _state_entries(),
            "processes": _foreign_net_processes()}


@pytest.fixture(scope="session", autouse=True)
def nothing_left_after_the_suite():
    if os.geteuid() != 0:
        yield
        return
    before = _snapshot()
    yield
    def left() -> dict[str, list[str]]:
        new = {k: sorted(v - before[k]) for k, v in _snapshot().items()}
        return {k: v for k, v in new.items() if v}

    # daemons a last teardown signalled may take a moment to exit
    wait_until(lambda: not left(), timeout=10, interval=0.1, what="nothing of the kernel suite left behind",
               detail=left)
