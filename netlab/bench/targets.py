"""What the bench measures: labs (as netlab builds them or as their ``explain`` script builds
them) and the two baselines, each reduced to a :class:`Target` with a source and a destination.

Everything comes from the plan, so a datapath added later needs no code here:

- the source is the first pod of the first node, the destination the first pod of the second
  node, and their addresses are the plan's ``Addr`` objects on the pod's ``eth0``;
- a datapath with one node has no node-to-node path (skipped, with that reason), and one whose
  pods share addresses across nodes (Docker's NAT: every host numbers 172.17.0.0/16 from .2)
  cannot be crossed pod-to-pod at all (skipped too: only published ports cross it);
- the sender side, whose offloads ``--offload off`` turns off, is the source pod and its node.

The baselines are one tiny plan applied by the engine like any lab (state file, ownership
markers, teardown): the bare underlay (router, switch, two nodes: node1 -> node2 crosses
veth -> bridge -> veth, exactly the labs' underlay) and a single veth pair between two fresh
namespaces, the raw limit of this kernel and CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import api, model, naming, ready
from ..datapaths import get
from ..errors import NetlabError
from ..explain import script
from ..kernel import netns, probe, procs
from ..kernel.teardown import teardown
from ..kernel.verify import verify
from ..plan import Addr, Daemon, Netns, Plan, cross_node_pair_or_reason
from ..state import DaemonRecord, State, all_labs
from .claims import classify
from .iperf import Endpoint, Tracker



@dataclass
class Target:
    """A path to measure. ``kind`` is ``baseline``, ``lab`` or ``explain``."""

    id: str
    kind: str
    instance: str
    src: Endpoint
    dst: Endpoint
    sender_ns: list[str]
    lab: str | None = None
    datapath: str | None = None
    claim: str | None = None
    brought_up: bool = False
    mtu: int | None = None
    notes: list[str] = field(default_factory=list)
    _down: Callable[[], object] | None = None  # api.LabHandle.down returns its teardown report

    def down(self) -> None:
        """Tear the target down if the bench built it (idempotent)."""
        if self._down is not None:
            fn, self._down = self._down, None
            fn()

    def as_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "lab": self.lab, "instance": self.instance,
                "datapath": self.datapath, "claim": self.claim, "brought_up": self.brought_up,
                "mtu": self.mtu, "src": self.src.__dict__, "dst": self.dst.__dict__,
                "sender_namespaces": self.sender_ns, "notes": self.notes}


@dataclass
class Skipped:
    lab: str
    reason: str

    def as_dict(self) -> dict:
        return {"lab": self.lab, "reason": self.reason}


# -- endpoints from a plan -------------------------------------------------------------------------

def _pod_ip(plan: Plan, ns: str) -> str | None:
    addrs = [a for a in plan.of(Addr) if a.ns == ns]
    addrs.sort(key=lambda a: a.dev != "eth0")
    return str(addrs[0].interface.ip) if addrs else None


def endpoints(plan: Plan) -> tuple[Endpoint, Endpoint, list[str]] | str:
    """(source pod on node 1, destination pod on node 2, sender-side namespaces), or the reason
    this plan has no pod-to-pod path across nodes: the plan's one cross-node pair, which the
    labs' hints ping too."""
    pair = cross_node_pair_or_reason(plan)
    if isinstance(pair, str):
        return pair
    src, dst = pair.src, pair.dst
    return (Endpoint(src.name, src.host, pair.src_ip), Endpoint(dst.name, dst.host, pair.dst_ip),
            [src.name, plan.host(str(src.node)).name])


def path_mtu(src: Endpoint, dst_ip: str) -> int | None:
    """The MTU of the interface the source uses towards ``dst_ip`` (``ip route get``, in its namespace)."""
    try:
        route = json.loads(procs.run(src.ns, ["ip", "-j", "route", "get", dst_ip]).stdout or "[]")
        dev = route[0]["dev"]
        link = json.loads(procs.run(src.ns, ["ip", "-j", "link", "show", "dev", dev]).stdout or "[]")
        return int(link[0]["mtu"])
    except (json.JSONDecodeError, IndexError, KeyError, ValueError, OSError, subprocess.SubprocessError):
        return None


def wait_reachable(src: Endpoint, dst: Endpoint, timeout: float = 30.0) -> float | None:
    """Ping from ``src`` until ``dst`` answers; seconds it took, or None.

    A lab whose routes come from a routing daemon (Calico's BIRD) is "up" before its BGP sessions
    have converged; measuring then would time the convergence, not the datapath."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if procs.run(src.ns, ["ping", "-c", "1", "-W", "1", "-q", dst.ip]).returncode == 0:
                return time.monotonic() - t0
        except (OSError, subprocess.SubprocessError):
            return None
        time.sleep(0.2)
    return None


def _reachable_note(t: "Target") -> None:
    took = wait_reachable(t.src, t.dst)
    if took is None:
        t.notes.append(f"{t.dst.ip} did not answer ping from {t.src.host} within 30 s: runs will likely fail")
    elif took > 1:
        t.notes.append(f"{t.dst.ip} answered after {took:.1f} s (routes converging)")


# -- which labs, and why not -------------------------------------------------------------------------

@dataclass
class Candidate:
    """A lab that can be measured here: its model and plan, endpoints, claim, instance name."""

    name: str
    lab: model.Lab
    plan: Plan
    src: Endpoint
    dst: Endpoint
    sender_ns: list[str]
    claim: str | None
    attach: bool  # already up under this instance name: use it, leave it up


def instance_name(prefix: str, lab: str, suffix: str = "") -> str:
    name = f"{prefix}{lab}{suffix}"
    if not naming.LAB_NAME_RE.match(name):
        raise NetlabError(f"instance name '{name}' is not valid (lowercase, digits, '-', at most 24 characters)",
                          "use a shorter --prefix")
    return name


def kernel_gap(requires: tuple[str, ...], tools: tuple[str, ...]) -> str | None:
    """Why this kernel/machine cannot build a datapath, or None (probed in throw-away namespaces)."""
    for kind in requires:
        err = probe.link_kind(kind)
        if err is not None:
            cfg = probe.KERNEL_CONFIG.get(kind, "the matching CONFIG_ option")
            return f"needs '{kind}' links, which this kernel cannot create ({err}; {cfg})"
    for tool in tools:
        try:
            probe.require_tools((tool,))
        except NetlabError as e:
            return str(e)
    return None


def select(labs: list[str], prefix: str) -> tuple[list[Candidate], list[Skipped]]:
    """The labs to measure (all of labs/ when ``labs`` is empty) and those skipped, with why."""
    # the baseline lab is what every other lab is compared with, never a contestant
    names = labs or [p.stem for p in model.available() if p.stem != "baseline"]
    up = {s.lab: s for s in all_labs()}
    found, skipped = [], []
    for name in names:
        stem = Path(name).stem
        try:
            inst = instance_name(prefix, stem)
            m = model.load(name, name=inst)
            dp = get(m.datapath)
            gap = kernel_gap(dp.requires, dp.tools)
            if gap:
                skipped.append(Skipped(stem, gap))
                continue
            plan = api.build_plan(m)
        except NetlabError as e:
            skipped.append(Skipped(stem, f"cannot be planned: {e}"))
            continue
        except Exception as e:  # a datapath under construction must not stop the others
            skipped.append(Skipped(stem, f"cannot be planned: {type(e).__name__}: {e}"))
            continue
        ends = endpoints(plan)
        if isinstance(ends, str):
            skipped.append(Skipped(stem, ends))
            continue
        attach = False
        if inst in up:
            st = up[inst]
            if Path(st.labfile).resolve() != Path(m.file).resolve() or st.overrides:
                skipped.append(Skipped(stem, f"instance '{inst}' is up from another lab file or with overrides: "
                                             "use --prefix to bench a fresh copy"))
                continue
            if not st.complete:
                skipped.append(Skipped(stem, f"instance '{inst}' is half built (a crash?): netlab down {inst}"))
                continue
            attach = True
        claim = classify(m.datapath, plan.encap, m.nodes)
        found.append(Candidate(stem, m, plan, *ends, claim, attach))
    return found, skipped


def lab_target(c: Candidate) -> Target:
    """Bring the candidate up (or attach to it) and describe it as a target."""
    if c.attach:
        handle = api.attach(c.lab.name)
        down = None
    else:
        handle = api.up(str(c.lab.file), name=c.lab.name)
        down = handle.down
    t = Target(c.name, "lab", c.lab.name, c.src, c.dst, c.sender_ns, lab=c.name, datapath=c.lab.datapath,
               claim=c.claim, brought_up=not c.attach, _down=down)
    try:
        _reachable_note(t)
        t.mtu = path_mtu(c.src, c.dst.ip)
    except BaseException:
        t.down()
        raise
    return t


# -- the same lab, built by its explain script -------------------------------------------------------

def _mark(ns: str, marker: str) -> None:
    from pyroute2 import IPRoute

    with netns.entered(ns):
        ipr = IPRoute()
    try:
        ipr.link("set", index=1, ifalias=marker)
    finally:
        ipr.close()


def _processes_in(namespaces: list[str]) -> list[tuple[int, str]]:
    """(pid, ns) of every process whose network namespace is one of ``namespaces``."""
    inodes = {}
    for ns in namespaces:
        try:
            inodes[os.stat(netns.path(ns)).st_ino] = ns
        except OSError:
            pass
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            ino = os.stat(f"/proc/{pid}/ns/net").st_ino
        except OSError:
            continue
        if ino in inodes:
            found.append((int(pid), inodes[ino]))
    return found


def explain_target(c: Candidate, prefix: str, tracker: Tracker) -> Target:
    """Build the candidate's lab with ``netlab explain``'s bash script under another instance name.

    The script knows nothing of netlab's ownership markers, so the bench claims a state file
    first (write-ahead, as ``up`` does), checks that none of the namespaces exist, runs the
    script, then marks each namespace and records any process the script started in them as a
    daemon. From then on ``netlab down`` (and the bench's own teardown) removes this copy exactly
    as it removes a lab netlab built.
    """
    inst = instance_name(prefix, c.name, "-x")
    m = model.load(str(c.lab.file), name=inst)
    plan = api.build_plan(m)
    ends = endpoints(plan)
    if isinstance(ends, str):  # the candidate's plan had a path; check this one before building anything
        raise NetlabError(f"'{c.name}' built as {inst} has nothing to measure: {ends}",
                          f"run 'netlab bench {c.name}' without --against-explain")
    src, dst, sender = ends
    api.preflight(get(m.datapath), m)
    taken = [n.name for n in plan.namespaces if netns.exists(n.name)]
    if taken:
        raise NetlabError(f"namespace {taken[0]} already exists", f"netlab down {inst}, or use another --prefix")
    state = State(lab=inst, labfile=str(m.file), overrides=m.overrides, labtext=m.source,
                  namespaces=[n.name for n in plan.namespaces])
    state.claim()
    names = [n.name for n in plan.namespaces]

    def down() -> None:
        for ns in names:
            if netns.exists(ns):
                try:
                    _mark(ns, state.marker)  # ours: created by our script after we checked the name was free
                except OSError:
                    pass
        for pid, ns in _processes_in(names):
            st = procs.start_time(pid)
            if st is not None and not any(d.pid == pid for d in state.daemons):
                state.daemons.append(DaemonRecord(ns, "explain-started", pid, st, procs.cmdline(pid) or [], ""))
        teardown(state)

    try:
        log = state.dir / "explain.log"
        env = dict(os.environ, NETLAB_RUN=str(state.dir))
        with open(log, "w") as out:
            p = tracker.popen(None, ["bash", "-s"], stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                              text=True, env=env)
            try:
                p.communicate(script(plan, title=f"{inst}: built by netlab bench --against-explain"), timeout=120)
                rc = p.returncode
            finally:
                tracker.stop(p)
        if rc != 0:
            tail = log.read_text().strip().splitlines()
            raise NetlabError(f"the explain script of '{c.name}' failed (exit {rc}): {tail[-1] if tail else ''}",
                              f"run 'netlab explain {c.name}' by hand to see where")
        for ns in names:
            _mark(ns, state.marker)
        for pid, ns in _processes_in(names):
            st = procs.start_time(pid)
            if st is not None:
                name, argv = _daemon_of(plan, state, pid, ns)
                state.daemons.append(DaemonRecord(ns, name, pid, st, argv, str(log)))
        _wait_ready(plan, state)
        # usable, not just built: BGP labs converge first, exactly as `netlab up` waits for them
        ready.settle(get(m.datapath), api.LabHandle(m, plan, state), None, 60.0)
        state.complete = True
        state.save()
    except BaseException:
        down()
        raise
    t = Target(f"{c.name}@explain", "explain", inst, src, dst, sender, lab=c.name, datapath=m.datapath,
               claim=None, brought_up=True, _down=down)
    try:
        _reachable_note(t)
        rep = verify(plan, state)
    except BaseException:
        t.down()
        raise
    if rep.ok:
        t.notes.append(f"explain build verified: {rep.as_dict()['checked']} objects, no differences from the plan")
    else:
        dead = [d["name"] for d in rep.daemons if not d["alive"]]
        t.notes.append(f"explain build verified: {len(rep.problems)} of {rep.as_dict()['checked']} objects differ "
                       f"from the plan, {len(rep.missing_namespaces)} namespaces missing, daemons not running: "
                       f"{', '.join(dead) or 'none'}")
    t.mtu = path_mtu(src, dst.ip)
    return t


def _daemon_of(plan: Plan, state: State, pid: int, ns: str) -> tuple[str, list[str]]:
    """Which planned daemon process ``pid`` is: the script runs ``ip netns exec NS ARGV…``, which
    execs ARGV with ``$run`` expanded, so the command line equals the planned argv. Recording it
    under the planned name lets ``netlab status`` (verify) check it like a daemon netlab started."""
    cmdline = procs.cmdline(pid) or []
    for d in plan.of(Daemon):
        argv = [state.expand(a) for a in d.argv]
        if d.ns == ns and argv == cmdline:
            return d.name, argv
    return "explain-started", cmdline


def _wait_ready(plan: Plan, state: State, timeout: float = 10.0) -> None:
    for d in plan.of(Daemon):
        if not d.ready:
            continue
        path = Path(state.expand(d.ready))
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                raise NetlabError(f"daemon {d.name} started by the explain script never became ready ({path})",
                                  "see explain.log in the lab's state directory")
            time.sleep(0.02)


# -- baselines ---------------------------------------------------------------------------------------

def baseline_plan(instance: str) -> Plan:
    """The bare underlay of two nodes (what every lab sits on) plus one veth pair between two
    fresh namespaces: the ``baseline`` lab (netlab/datapaths/baseline.py)."""
    return api.build_plan(model.load("baseline", name=instance))


def baseline_targets(instance: str) -> list[Target]:
    """Bring the ``baseline`` lab up through the engine; two targets that share one teardown."""
    handle = api.up("baseline", name=instance)
    plan = handle.plan
    n1, n2 = plan.host("node1"), plan.host("node2")
    va, vb = plan.host("veth-a"), plan.host("veth-b")

    def ep(n: Netns) -> Endpoint:
        return Endpoint(n.name, n.host, _pod_ip(plan, n.name) or "")

    once = {"done": False}

    def down() -> None:
        if not once["done"]:
            once["done"] = True
            handle.down()

    underlay_t = Target("underlay", "baseline", instance, ep(n1), ep(n2), [n1.name], _down=down, brought_up=True)
    veth_t = Target("veth", "baseline", instance, ep(va), ep(vb), [va.name], _down=down, brought_up=True)
    for t in (underlay_t, veth_t):
        t.mtu = path_mtu(t.src, t.dst.ip)
    underlay_t.notes.append("node1 eth0 -> switch br0 -> node2 eth0: the labs' own underlay, nothing else")
    veth_t.notes.append("one veth pair between two fresh namespaces: the raw limit of this kernel and CPU")
    return [underlay_t, veth_t]
