"""Teardown: remove exactly what the state file says this lab created, and prove it first.

1. Stop the lab's daemons, by recorded PID, and only if the PID still has the recorded start time.
2. Delete each recorded namespace that carries this lab's ownership marker. Deleting a namespace
   destroys every link in it; a veth whose peer lives in another namespace goes with it, so no
   link can be left behind in any namespace, root included.
3. Remove /run/netlab/<lab>/.

SIGINT is ignored while this runs: a second Ctrl-C must not leave a half-removed lab.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

from ..state import State
from . import netns, procs
from .nl import NsLink


@dataclass
class TeardownReport:
    namespaces: list[str] = field(default_factory=list)
    daemons: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # existed but not provably ours


def read_marker(ns: str) -> str | None:
    """The ifalias of ``lo`` in ``ns`` (netlab's ownership marker), or None."""
    try:
        with NsLink(ns) as link:
            return link.ifalias(1)
    except OSError:
        return None


def teardown(state: State) -> TeardownReport:
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        report = TeardownReport()
        for d in state.daemons:
            if procs.stop(d.pid, d.start_time):
                report.daemons.append(f"{d.name}@{d.ns} pid {d.pid}")
        # Prove ownership of every namespace first, then delete: the kernel frees a namespace
        # asynchronously (under the rtnl lock), so reading markers between deletions would wait
        # for each cleanup in turn.
        ours = []
        for ns in state.namespaces:
            if not netns.exists(ns):
                continue
            if read_marker(ns) == state.marker or netns.unmounted_stamp(ns) == state.marker:
                ours.append(ns)  # a marked namespace, or the stamped mount point of one never mounted
            else:
                report.skipped.append(ns)
        for ns in ours:
            netns.delete(ns)
            report.namespaces.append(ns)
        state.remove_dir()
        return report
    finally:
        signal.signal(signal.SIGINT, old)
