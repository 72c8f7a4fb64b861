"""Teardown: remove exactly what the state file says this lab created, and prove it first.

1. Prove which recorded namespaces are the lab's: each must carry this lab's ownership marker
   (lo's ifalias, or the stamp in a mount point that was never mounted). The state file alone
   is no proof: it is a file anyone can edit.
2. Stop the lab's daemons, and only those that are provably its own: the recorded PID with the
   recorded start time, living in one of the namespaces proven in step 1, running the recorded
   argv. Anything else is reported and left alone.
3. Delete the proven namespaces. Deleting a namespace destroys every link in it; a veth whose peer
   lives in another namespace goes with it, so no link can be left behind in any namespace, root
   included.
4. Remove /run/netlab/<lab>/.

SIGINT is deferred while this runs: a Ctrl-C must not leave a half-removed lab, and it is not
lost either; it takes effect (KeyboardInterrupt) once the teardown is complete.
"""

from __future__ import annotations

import os
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
    failed: list[str] = field(default_factory=list)  # ours, but the kernel would not let go


def read_marker(ns: str) -> str | None:
    """The ifalias of ``lo`` in ``ns`` (netlab's ownership marker), or None."""
    try:
        with NsLink(ns) as link:
            return link.ifalias(1)
    except OSError:
        return None


def proven_namespaces(state: State) -> tuple[dict[str, int | None], list[str]]:
    """The recorded namespaces that carry this lab's marker (name -> nsfs inode, None for a stamped
    mount point that never got its namespace), and those that exist but do not."""
    ours: dict[str, int | None] = {}
    skipped = []
    prefix = state.lab + "-"
    for ns in state.namespaces:
        if not isinstance(ns, str) or not ns.startswith(prefix) or "/" in ns or not netns.exists(ns):
            continue
        if read_marker(ns) == state.marker:
            try:
                ours[ns] = os.stat(netns.path(ns)).st_ino
            except OSError:
                continue
        elif netns.unmounted_stamp(ns) == state.marker:
            ours[ns] = None
        else:
            skipped.append(ns)
    return ours, skipped


class _DeferredSigint:
    """Hold SIGINT back for the body, then deliver it to the handler that was there before."""

    def __enter__(self) -> "_DeferredSigint":
        self.pending = False
        self.old = None
        try:
            self.old = signal.signal(signal.SIGINT, self._note)
        except ValueError:  # not the main thread: signals go to the main thread anyway
            pass
        return self

    def _note(self, signum: int, frame: object) -> None:
        self.pending = True

    def __exit__(self, *exc: object) -> None:
        if self.old is None:
            return
        signal.signal(signal.SIGINT, self.old)
        if self.pending and callable(self.old):
            self.old(signal.SIGINT, None)  # the default handler raises KeyboardInterrupt here


def teardown(state: State) -> TeardownReport:
    with _DeferredSigint():
        return _teardown(state)


def _teardown(state: State) -> TeardownReport:
    report = TeardownReport()
    # Prove ownership of every namespace first, then delete: the kernel frees a namespace
    # asynchronously (under the rtnl lock), so reading markers between deletions would wait
    # for each cleanup in turn.
    ours, report.skipped = proven_namespaces(state)
    for d in state.daemons:
        why = procs.provably_ours(d.pid, d.start_time, d.argv, ours.get(d.ns))
        if why is None:
            if procs.stop(d.pid, d.start_time):
                report.daemons.append(f"{d.name}@{d.ns} pid {d.pid}")
        elif procs.start_time(d.pid) == d.start_time:  # alive, but not provably ours
            report.skipped.append(f"pid {d.pid} ({d.name}: {why})")
    for ns in ours:
        try:
            netns.delete(ns)
            report.namespaces.append(ns)
        except OSError as e:
            report.failed.append(f"{ns}: {e.strerror or e}")
    if not report.failed:
        state.remove_dir()
    return report
