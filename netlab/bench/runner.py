"""The bench run: build the targets, measure them in interleaved rounds, tear down what it built.

Order matters on a shared 2-core machine. Measuring lab A three times and then lab B three times
turns any slow drift of the machine (another developer's test suite starting) into a fake
difference between A and B. So every round measures *every* target once per test, and each round
starts the rotation one target later: drift then spreads over all targets alike, and shows up in
the baseline's own round-to-round change (reported as ``drift``).

Interrupts: SIGTERM and SIGHUP are turned into KeyboardInterrupt for the duration of the run, so
Ctrl-C, ``kill`` and a closed terminal all go through the same ``finally``: every iperf3 process
still running is stopped by PID, offloads are restored, and every lab the bench brought up is torn
down. The bench never leaves a process or a namespace behind.
"""

from __future__ import annotations

import os
import platform
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from ..errors import NetlabError
from ..kernel import netns, probe
from . import iperf, offload
from .iperf import RunResult, Test, Tracker
from .targets import Candidate, Skipped, Target, baseline_targets, explain_target, instance_name, lab_target, select

SCHEMA = "netlab-bench/1"
OVERHEAD_S = 0.6  # per run: server start, connect, result exchange (used for the time estimate)


@dataclass
class Settings:
    labs: list[str] = field(default_factory=list)
    duration: int = 3
    repeat: int = 3
    parallel: int = 4
    udp_size: int = 64
    offload: str = "on"  # on | off | both
    against_explain: bool = False
    prefix: str = ""

    @property
    def offloads(self) -> list[str]:
        return ["on", "off"] if self.offload == "both" else [self.offload]

    def as_dict(self) -> dict:
        return {"labs": self.labs, "duration_s": self.duration, "repeat": self.repeat, "parallel": self.parallel,
                "udp_size": self.udp_size, "offload": self.offloads, "against_explain": self.against_explain,
                "prefix": self.prefix}


@dataclass(frozen=True)
class Slot:
    """One run in the schedule."""

    offload: str
    round: int  # 1-based
    test: str
    target: str


def schedule(targets: list[str], tests: list[str], repeat: int, offloads: list[str]) -> list[Slot]:
    """Every target once per test per round; each round rotates the target order by one, so no
    target is always measured first (or right after the same neighbour)."""
    out: list[Slot] = []
    n = len(targets)
    for off in offloads:
        for r in range(repeat):
            k = r % n if n else 0
            order = targets[k:] + targets[:k]
            for test in tests:
                out.extend(Slot(off, r + 1, test, t) for t in order)
    return out


@dataclass
class Sample:
    slot: Slot
    result: RunResult

    def as_dict(self) -> dict:
        r = self.result
        return {"target": self.slot.target, "test": self.slot.test, "offload": self.slot.offload,
                "round": self.slot.round, "value": r.value, "unit": r.unit, "error": r.error, "mss": r.mss,
                "started": r.started, "seconds": round(r.seconds, 3), "client_pid": r.client_pid,
                "server_pid": r.server_pid, "client": r.client, "server": r.server}


@dataclass
class Outcome:
    """Everything a run produced; :mod:`.report` turns it into tables, JSON and a plot."""

    settings: Settings
    tests: list[Test]
    targets: list[Target]
    skipped: list[Skipped]
    samples: list[Sample]
    offload_state: dict[str, dict] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    seconds: float = 0.0
    interrupted: bool = False
    pids: list[int] = field(default_factory=list)


class Reporter:
    """Progress callbacks; the CLI draws them with rich, tests leave them silent."""

    def begin(self, total: int, seconds: float) -> None: ...

    def step(self, what: str) -> None: ...

    def advance(self, seconds: float) -> None: ...

    def log(self, msg: str) -> None: ...


def estimate(n_slots: int, duration: int) -> float:
    return n_slots * (duration + OVERHEAD_S)


@contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def preflight(settings: Settings) -> None:
    probe.require_root()
    iperf.require()
    if "off" in settings.offloads:
        probe.require_tools(("ethtool",))


def _add_lab(c: Candidate, settings: Settings, out: Outcome, tracker: Tracker, rep: Reporter) -> None:
    """One candidate lab as a target (brought up, or attached if it already runs), and with
    --against-explain its twin built by the lab's own explain script; a lab that cannot be built
    is skipped with the reason, so the others are still measured."""
    rep.step(f"{c.name}: {'attaching' if c.attach else 'bringing up'} {c.lab.name}")
    try:
        out.targets.append(lab_target(c))
    except NetlabError as e:
        out.skipped.append(Skipped(c.name, f"could not be brought up: {e}"))
        return
    if settings.against_explain:
        rep.step(f"{c.name}: building the same lab with its explain script")
        try:
            out.targets.append(explain_target(c, settings.prefix, tracker))
        except NetlabError as e:
            out.skipped.append(Skipped(f"{c.name}@explain", f"explain build failed: {e}"))


def _switch_offload(mode: str, out: Outcome, saved: list[offload.Saved], rep: Reporter) -> None:
    """Enter offload mode ``mode`` for every target at once: put back what the previous mode
    changed, turn TSO/GSO off on every sender namespace for "off" (``saved`` then holds what to
    restore, also for the teardown), and record the resulting state for the JSON."""
    offload.restore(saved)
    saved.clear()
    senders = sorted({ns for t in out.targets for ns in t.sender_ns})
    if mode == "off":
        rep.log("offloads off: TSO/GSO on the sender side of every target")
        saved.extend(offload.disable(senders))
    out.offload_state[mode] = offload.state(senders)


def _require_namespaces(out: Outcome) -> None:
    """Stop measuring once every target's namespaces are gone (someone ran 'netlab down --all'):
    the remaining runs could only fail."""
    if not any(netns.exists(x.src.ns) and netns.exists(x.dst.ns) for x in out.targets):
        raise NetlabError("every namespace of this bench was torn down by someone else during the run "
                          "('netlab down --all'?)", "run the bench again when nobody tears down all labs")


def _measure(settings: Settings, out: Outcome, tracker: Tracker, saved: list[offload.Saved], rep: Reporter) -> None:
    """Run the interleaved schedule: every target once per test per round, offload modes one after
    the other, one iperf3 run per slot recorded as a sample (failures included)."""
    by_id = {t.id: t for t in out.targets}
    slots = schedule([t.id for t in out.targets], [t.id for t in out.tests], settings.repeat, settings.offloads)
    rep.begin(len(slots), estimate(len(slots), settings.duration))
    test_by_id = {t.id: t for t in out.tests}
    current = None
    for slot in slots:
        if slot.offload != current:
            _switch_offload(slot.offload, out, saved, rep)
            current = slot.offload
        t, test = by_id[slot.target], test_by_id[slot.test]
        _require_namespaces(out)
        rep.step(f"round {slot.round}/{settings.repeat} · offload {slot.offload} · {test.label} · {t.id}")
        res = iperf.run(tracker, t.src, t.dst, test, settings.duration)
        out.samples.append(Sample(slot, res))
        if res.error:
            rep.log(f"{t.id} {test.label}: {res.error}")
        rep.advance(res.seconds)


def _clean_up(out: Outcome, tracker: Tracker, saved: list[offload.Saved], rep: Reporter) -> None:
    """Leave nothing behind, whatever happened: stop every iperf3 by PID, restore offloads, tear
    down the targets in reverse order (one failed teardown does not stop the others)."""
    tracker.stop_all()
    offload.restore(saved)
    for t in reversed(out.targets):
        if t.brought_up:
            rep.step(f"tearing down {t.instance}")
        try:
            t.down()
        except Exception as e:  # keep tearing the others down
            rep.log(f"teardown of {t.instance} failed: {e}")
    out.pids = list(tracker.started)


def run(settings: Settings, reporter: Reporter | None = None) -> Outcome:
    """Measure; always tear down what was built and stop what was started, then return."""
    rep = reporter or Reporter()
    preflight(settings)
    candidates, skipped = select(settings.labs, settings.prefix)
    if not candidates:
        why = "; ".join(f"{s.lab}: {s.reason}" for s in skipped) or "no lab files"
        raise NetlabError(f"no lab can be measured here ({why})", "see 'netlab list' and pick a lab with two nodes")
    tests = iperf.tests_for(settings.parallel, settings.udp_size)
    tracker = Tracker()
    out = Outcome(settings, tests, [], skipped, [])
    t0 = time.monotonic()
    saved: list[offload.Saved] = []  # what the "off" mode changed, restored however the run ends
    with _signals_as_interrupt():
        try:
            rep.step("baselines: bare underlay and one veth pair")
            out.targets.extend(baseline_targets(instance_name(settings.prefix, "bench-base")))
            for c in candidates:
                _add_lab(c, settings, out, tracker, rep)
            _measure(settings, out, tracker, saved, rep)
        except KeyboardInterrupt:
            out.interrupted = True
            raise
        finally:
            _clean_up(out, tracker, saved, rep)
            out.seconds = time.monotonic() - t0
    return out


def host_info() -> dict:
    return {"kernel": platform.release(), "cpus": os.cpu_count(), "machine": platform.machine(),
            "iperf3": _iperf_version()}


def _iperf_version() -> str:
    import subprocess

    try:
        return subprocess.run(["iperf3", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    except OSError:
        return "?"
