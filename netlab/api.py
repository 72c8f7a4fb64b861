"""The Python API the CLI and the tests share.

::

    from netlab import api

    with api.running("vxlan", name="demo", nodes=3) as lab:
        print(lab.exec("node1-pod1", ["ping", "-c1", "10.244.2.2"]).stdout)
        assert lab.verify().ok
    # torn down here, even on an exception

``up`` checks everything it can *before* creating anything (root, tools, kernel features, the
lab file), writes the state file, applies the plan, and on any failure, Ctrl-C included, tears
down whatever it had created before re-raising.
"""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from . import gcpause, model, ready
from .datapaths import Datapath, get
from .errors import ApplyError, NetlabError
from .kernel import limits, probe, procs
from .kernel.apply import apply
from .kernel.teardown import TeardownReport, teardown
from .kernel.verify import Report, verify
from .plan import Plan
from .state import NoState, State, Taken, load as load_state, remove_stateless


def build_plan(lab: model.Lab, check: bool = True) -> Plan:
    """The lab's plan; ``check=False`` skips the internal consistency check, for a plan rebuilt
    from what was built (it was checked before it was applied)."""
    dp = get(lab.datapath)
    limits.check_size(lab, limits.per_peer(lab, dp))  # before the plan exists: building it takes the memory
    with gcpause.paused():
        plan = dp.plan(lab)
        if check:
            plan.check()
    return plan


@dataclass
class LabHandle:
    lab: model.Lab
    plan: Plan
    state: State

    @property
    def name(self) -> str:
        return self.lab.name

    @property
    def datapath(self) -> Datapath:
        return get(self.lab.datapath)

    def ns(self, host: str) -> str:
        try:
            return self.plan.host(host).name
        except KeyError:
            hosts = ", ".join(n.host for n in self.plan.namespaces)
            raise NetlabError(f"lab '{self.name}' has no node or pod '{host}'", f"use one of: {hosts}") from None

    def exec(self, host: str, argv: Sequence[str], check: bool = False, **kw) -> subprocess.CompletedProcess:
        return procs.run(self.ns(host), argv, check=check, **kw)

    def popen(self, host: str, argv: Sequence[str], **kw) -> subprocess.Popen:
        return procs.popen(self.ns(host), argv, **kw)

    def verify(self) -> Report:
        return verify(self.plan, self.state)

    def trace(self, src: str, dst: str, **kw):
        """``netlab trace`` of this lab: one probe from ``src`` to ``dst``, every hop
        (:class:`netlab.trace.engine.TraceResult`; ``proto``, ``port``, ``size``, ``timeout``)."""
        from .trace import engine

        return engine.run(self.plan, src, dst, state=self.state, **kw)

    def down(self) -> TeardownReport:
        return teardown(self.state)


def preflight(dp: Datapath, lab: model.Lab, progress: Callable[[str], None] | None = None) -> Plan:
    """Everything ``up`` refuses before it creates anything; returns the lab's plan."""
    probe.require_root()
    probe.require_tools(dp.tools)
    probe.require_kinds(dp.requires, lab.name)
    plan = build_plan(lab)
    with gcpause.paused():  # its walks over the plan allocate millions of tuples in a large lab
        needs = limits.check(plan)  # the kernel's shared limits (neighbour table, …): refuse before creating
    if needs.note and progress:
        progress(f"note: {needs.note}")
    return plan


def up(lab_file: str, name: str | None = None, progress: Callable[[str], None] | None = None,
       wait: float | None = 60.0, keep_on_error: bool = False, **overrides) -> LabHandle:
    lab = model.load(lab_file, name=name, overrides=overrides)
    dp = get(lab.datapath)
    plan = preflight(dp, lab, progress)
    state = State(lab=lab.name, labfile=str(lab.file), overrides=lab.overrides, labtext=lab.source,
                  namespaces=[n.name for n in plan.namespaces])
    claim(state, progress)  # write-ahead: the state exists before the first namespace does
    try:
        apply(plan, state, progress)
        ready.settle(dp, LabHandle(lab, plan, state), progress, wait)  # usable, not just built (BGP)
        state.complete = True
        state.save()
    except ApplyError as e:
        if not keep_on_error:
            teardown(state)
        kept = (f"the lab was kept as it is, half-built, to look at: netlab status {lab.name}; "
                f"netlab down {lab.name} removes it") if keep_on_error else "the lab was rolled back"
        lesson = dp.explain_refusal(lab, e.obj, e.errno)
        if lesson:
            why, fix = lesson
            raise ApplyError(f"{e.what} {why}", f"{kept}; {fix}", e.obj, e.errno) from None
        if keep_on_error:
            raise ApplyError(e.what, kept, e.obj, e.errno) from None
        raise
    except BaseException:
        teardown(state)
        raise
    return LabHandle(lab, plan, state)


def claim(state: State, progress: Callable[[str], None] | None = None) -> None:
    """Claim the instance name. Remains of a bring-up that a crashed or killed netlab left behind
    (its process is gone, its state says incomplete) are torn down first, marker by marker as
    ``down`` would, so a crash never leaves a name stuck."""
    try:
        state.claim()
    except Taken as t:
        if not t.abandoned:
            raise
        if progress:
            progress(f"recovering: {t.what}")
        if t.existing is not None:
            report = teardown(t.existing)
            if report.failed:
                raise NetlabError(f"lab '{state.lab}': cannot remove what a crashed netlab left: {report.failed[0]}",
                                  "remove it by hand (umount -l, then rm), then try again") from None
        else:
            remove_stateless(state.lab)
        state.claim()


def attach(name: str) -> LabHandle:
    """A handle on a lab that is up, its plan rebuilt from what was built: the lab file's text and
    the overrides recorded in its state, not the file as it may have been edited since."""
    state = load_state(name)
    overrides = dict(state.overrides)
    lab = model.load(state.labfile, name=name, overrides=overrides, text=state.labtext or None)
    return LabHandle(lab, build_plan(lab, check=not state.labtext), state)


def down(name: str) -> TeardownReport:
    """Tear down instance ``name``; a state directory that holds no state is simply removed."""
    try:
        st = load_state(name)
    except NoState:
        remove_stateless(name)
        return TeardownReport()
    return teardown(st)


@contextmanager
def running(lab_file: str, name: str | None = None, **overrides) -> Iterator[LabHandle]:
    handle = up(lab_file, name=name, **overrides)
    try:
        yield handle
    finally:
        handle.down()
