"""Running an exercise: start (up, then the seed's fault), hint, check, solution, reset, stop.

The check is honest in three ways, each of which a shortcut would fail:

1. **behaviour**: every flow of the ticket works again, and every control flow still works,
   probed for real in the lab (ping, a TCP connect);
2. **state**: the kernel equals the plan again, both ways (:func:`netlab.kernel.verify.verify`
   reports missing, different and unplanned objects), so a workaround that makes the traffic
   flow (a static route instead of the FDB entry, a blanket ACCEPT) does not pass;
3. **integrity**: it is the lab ``start`` built: every namespace still has the inode and the
   ownership marker it had, so ``down`` then ``up`` does not count, and every planned daemon runs.

What the student did is recorded in ``exercise.json`` in the lab's state directory (hints asked,
checks tried, the result), and appended to ``exercises.jsonl`` under the state root when the
exercise ends, which is what ``netlab exercise report`` reads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shlex
import signal as signals
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import api, naming, plan as planmod, state as statemod
from ..errors import NetlabError
from ..explain import describe, undo
from ..kernel import netns, procs
from ..kernel.teardown import read_marker
from ..kernel.verify import verify
from .spec import Exercise, Flow, Variant, load

RECORD = "exercise.json"
LOG = "exercises.jsonl"


class Fill(dict):
    """Placeholders for str.format_map: an unknown one is an error in the exercise file."""

    def __missing__(self, key: str) -> str:
        raise NetlabError(f"exercise placeholder {{{key}}} is not defined",
                          f"define it under vars:, or use one of: {', '.join(sorted(self))}")


def fill(text: str, ctx: dict) -> str:
    return text.format_map(Fill(ctx))


def choose(ex: Exercise, seed: int, variant: int | None = None) -> tuple[Variant, dict[str, str]]:
    """The seed decides the variant and every var, so ``--seed`` reproduces a student's run."""
    rng = random.Random(seed)
    v = ex.variants[variant] if variant is not None else rng.choice(ex.variants)
    return v, dict(rng.choice(ex.vars))


def context(h: api.LabHandle, values: dict[str, str]) -> dict[str, str]:
    """The placeholders of a run: the vars, each host-valued var's namespace and address (and
    its pods': ``{other_pod1_ip}``), every host's (``{node1_ns}``, ``{node2_pod1_ip}``), and the
    instance name."""
    ctx = {"lab": h.name, "run": str(h.state.dir), **values}
    hosts = {n.host: n for n in h.plan.namespaces}
    # a var naming a node also names that node's pods (the plan's Netns.node): {other} = node2
    # gives {other_pod1_ip} for the pod node2-pod1
    pods = [(f"{k}-{n.host.removeprefix(v + '-')}", n.host) for k, v in values.items()
            for n in h.plan.namespaces if n.role == "pod" and n.node == v]
    for key, host in [(k, v) for k, v in values.items() if v in hosts] + pods + [(n, n) for n in hosts]:
        k = key.replace("-", "_")
        ctx[f"{k}_ns"] = hosts[host].name
        ip = h.plan.address_of(hosts[host].name)
        if ip:
            ctx[f"{k}_ip"] = ip
    return ctx


# -- fault actions ------------------------------------------------------------------------------
def _select(h: api.LabHandle, spec: dict, ctx: dict, rng: random.Random) -> object:
    """One planned object of ``kind`` in ``host``'s namespace whose fields match ``where``."""
    kind = getattr(planmod, str(spec.get("kind")), None)
    ns = h.ns(fill(str(spec.get("host", "")), ctx))
    where = {k: fill(str(v), ctx) for k, v in (spec.get("where") or {}).items()}
    if kind is None:
        raise NetlabError(f"exercise: delete: no plan kind {spec.get('kind')!r}", "use Fdb, Neigh, Route, Addr, Veth …")
    found = [o for o in h.plan.of(kind) if getattr(o, "ns", None) == ns
             and all(str(getattr(o, k, None)) == v for k, v in where.items())]
    if not found:
        raise NetlabError(f"exercise: delete: no {kind.__name__} in {ns} with {where}", "fix the exercise's selector")
    return rng.choice(found)


def _sh(cmd: str) -> None:
    """One exercise command (a fault or a solution), with this netlab's ``netlab`` first on PATH."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=30, env=env)
    if r.returncode:
        raise NetlabError(f"exercise: `{cmd}` failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}",
                          "the exercise file's action does not fit this lab")


def _signal(h: api.LabHandle, spec: dict, ctx: dict) -> None:
    ns = h.ns(fill(str(spec["host"]), ctx))
    rec = next((d for d in h.state.daemons if d.ns == ns and d.name == spec["daemon"]), None)
    if rec is None or procs.proc_state(rec.pid, rec.start_time) is None:
        raise NetlabError(f"exercise: no running daemon {spec['daemon']} in {ns}", "fix the exercise's signal action")
    os.kill(rec.pid, getattr(signals, f"SIG{str(spec.get('signal', 'STOP')).upper()}"))


def _spawn(h: api.LabHandle, spec: dict, ctx: dict) -> None:
    """An application process the fault needs, recorded with the lab's daemons (so teardown,
    which stops only what it can prove it started, ends it)."""
    from ..kernel.apply import Applier

    module, *args = [fill(str(a), ctx) for a in spec["argv"]]
    if not module.isidentifier() or not (Path(__file__).parent.parent / "daemons" / f"{module}.py").exists():
        raise NetlabError(f"exercise: spawn: no netlab daemon module {module!r}", "use e.g. argv: [udp_client, …]")
    daemon = planmod.Daemon(h.ns(fill(str(spec["host"]), ctx)), str(spec["name"]),
                            naming.daemon_argv(module, *args))
    Applier(h.plan, h.state).daemons([daemon])


def inject(h: api.LabHandle, variant: Variant, ctx: dict, rng: random.Random) -> list[str]:
    """Apply the variant's fault; returns the commands that recreate what ``delete`` removed (and
    puts the last one in ``{obj}``), which is the solution unless the variant gives its own."""
    recreate: list[str] = []
    for action in variant.actions:
        (verb, spec), = action.items()
        if verb == "delete":
            obj = _select(h, spec, ctx, rng)
            for cmd in undo(obj):
                _sh(cmd)
            recreate.append(describe(obj))
            ctx["obj"] = recreate[-1]
        elif verb == "run":
            for cmd in spec if isinstance(spec, list) else [spec]:
                _sh(fill(str(cmd), ctx))
        elif verb == "signal":
            _signal(h, spec, ctx)
        elif verb == "spawn":
            _spawn(h, spec, ctx)
        elif verb == "restart":  # the daemon again, with another configuration than the plan's
            _restart(h, fill(str(spec["host"]), ctx), str(spec["daemon"]),
                     {fill(str(k), ctx): fill(str(v), ctx) for k, v in (spec.get("replace") or {}).items()})
    return recreate


# -- probes -------------------------------------------------------------------------------------
def _target(ctx: dict, dst: str) -> str:
    key = dst.replace("-", "_") + "_ip"
    return ctx.get(key, dst)


def _probe_argv(f: Flow, ip: str) -> list[str]:
    want = f"grep -qF -- {shlex.quote(f.expect)}" if f.expect else "grep -q ."
    if f.proto == "tcp" and not f.expect:
        return ["timeout", "2", "bash", "-c", f"exec 3<>/dev/tcp/{ip}/{f.port}"]
    if f.proto == "tcp":  # and what answers: the first line the server sends
        return ["bash", "-c", f"timeout 2 socat -T1 - TCP:{ip}:{f.port} </dev/null 2>/dev/null | {want}"]
    if f.proto == "udp":  # one datagram out, and an answer back within a second
        sport = f",sourceport={f.sport},reuseaddr" if f.sport else ""
        return ["bash", "-c", f"echo probe | timeout 2 socat -T1 - UDP:{ip}:{f.port}{sport} 2>/dev/null | {want}"]
    size = ["-s", str(f.size), "-M", "do"] if f.size is not None else []
    return ["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", *size, ip]


def _port(f: Flow, ctx: dict) -> int | None:
    if isinstance(f.port, str):
        value = fill(f.port, ctx)
        if not value.isdigit():
            raise NetlabError(f"exercise flow port {f.port!r} is {value!r}, not a number", "make the var a port number")
        return int(value)
    return f.port


def probe(h: api.LabHandle, flows: list[Flow], ctx: dict) -> dict[Flow, bool]:
    """Every flow at once (each waits at most ~2 s), so a check stays fast when flows fail."""
    running = {}
    for f in flows:
        src, dst = fill(f.src, ctx), fill(f.dst, ctx)
        flow = dataclasses.replace(f, src=src, dst=dst, port=_port(f, ctx))
        running[flow] = procs.popen(h.ns(src), _probe_argv(flow, _target(ctx, dst)),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {f: p.wait(timeout=10) == 0 for f, p in running.items()}


# -- the record ---------------------------------------------------------------------------------
@dataclass
class Record:
    """One exercise run, as ``exercise.json`` holds it (and ``exercises.jsonl`` once it ends)."""

    id: str
    src: str
    seed: int
    variant: str
    mode: str
    values: dict[str, str]
    ctx: dict[str, str]
    solution: list[str]
    inodes: dict[str, int]
    started_at: float = field(default_factory=time.time)
    hints: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    result: str | None = None
    ended_at: float | None = None
    course: str | None = None
    student: str | None = None
    # the ownership marker of the lab start built (its token is random per up): a namespace file's
    # inode number is not enough, the kernel hands a freed namespace's number to the next one
    marker: str | None = None

    def save(self, st: statemod.State) -> None:
        (st.dir / RECORD).write_text(json.dumps(self.__dict__, indent=1))


def record_of(name: str) -> tuple[api.LabHandle, Record]:
    h = api.attach(name)
    path = h.state.dir / RECORD
    if not path.exists():
        raise NetlabError(f"lab '{name}' is not an exercise", "start one: netlab exercise start <id>")
    return h, Record(**json.loads(path.read_text()))


def running() -> list[str]:
    return [s.lab for s in statemod.all_labs() if (s.dir / RECORD).exists()]


def blind(name: str) -> bool:
    """Whether ``name`` is an exercise in blind mode (``status``, ``trace``, ``explain`` refuse)."""
    try:
        path = statemod.state_root() / naming.check_instance(name) / RECORD
        return json.loads(path.read_text()).get("mode") == "blind"
    except (OSError, ValueError, NetlabError):
        return False


def refuse_if_blind(name: str) -> None:
    """In blind mode the student meets the lab as an SRE meets a real node: no netlab diagnosis."""
    if blind(name):
        raise NetlabError(f"lab '{name}' is an exercise in blind mode",
                          "blind mode: use ip, bridge, iptables, tcpdump, ping, and tc, ss, nstat (netlab exec gives a shell)")


def _inodes(h: api.LabHandle) -> dict[str, int]:
    return {n.name: os.stat(netns.path(n.name)).st_ino for n in h.plan.namespaces}


# -- verbs --------------------------------------------------------------------------------------
def _require(ex: Exercise) -> None:
    """The exercise's own kernel needs (its lab's are checked by ``up``), before anything is built."""
    from ..errors import KernelFeatureError
    from ..kernel import probe

    for feature in ex.requires:
        err = probe.feature(feature)
        if err is not None:
            raise KernelFeatureError(f"exercise {ex.id} needs {feature}, which this kernel lacks ({err})",
                                     "run it on the distribution's stock kernel: netlab vm run -- netlab exercise "
                                     f"start {ex.id}")


def start(ref: str, seed: int | None = None, name: str | None = None, mode: str = "guided",
          variant: int | None = None, course: str | None = None,
          student: str | None = None) -> tuple[api.LabHandle, Record, Exercise]:
    """Bring the lab up, check it works, inject the seed's fault, record it all."""
    ex = load(ref)
    _require(ex)
    seed = seed if seed is not None else random.SystemRandom().randrange(1, 10_000)
    h = api.up(ex.lab, name=name or ex.id[:24].rstrip("-"), **ex.overrides)
    try:
        rec = arm(h, ex, seed, mode, variant, course=course, student=student)
    except BaseException:
        h.down()
        raise
    return h, rec, ex


def arm(h: api.LabHandle, ex: Exercise, seed: int, mode: str = "guided", variant: int | None = None,
        course: str | None = None, student: str | None = None) -> Record:
    """On a lab just brought up (``up`` of the exercise's lab and overrides): prove the flows work,
    inject the seed's fault, and record the run, with the marker and namespace inodes of this lab."""
    v, values = choose(ex, seed, variant)
    ctx = context(h, values)
    before = probe(h, list(ex.broken + ex.control), ctx)
    if not all(before.values()):
        bad = next(f.text for f, ok in before.items() if not ok)
        raise NetlabError(f"exercise {ex.id}: before the fault, {bad} does not work", "the exercise's flows do not fit its lab")
    recreate = inject(h, v, ctx, random.Random(seed + 1))
    solution = [fill(s, ctx) for s in v.solution] or recreate
    rec = Record(ex.id, ex.src, seed, v.name, mode, values, ctx, solution, _inodes(h), course=course,
                 student=student, marker=h.state.marker)
    rec.save(h.state)
    return rec


@dataclass
class Verdict:
    passed: bool
    lines: list[str]
    seconds: float

    def as_dict(self) -> dict:
        return {"passed": self.passed, "lines": self.lines, "seconds": round(self.seconds, 3)}


def _integrity(h: api.LabHandle, rec: Record) -> list[str]:
    out = []
    for ns, inode in rec.inodes.items():
        try:
            same = os.stat(netns.path(ns)).st_ino == inode and read_marker(ns) == (rec.marker or h.state.marker)
        except OSError:
            same = False
        if not same:
            out.append(f"namespace {ns} is not the one the exercise started with: this is not the same lab")
    return out


def evaluate(h: api.LabHandle, rec: Record, ex: Exercise) -> Verdict:
    """Behaviour, state and integrity, each said in terms of the symptom, never the answer."""
    t0 = time.monotonic()
    results = probe(h, list(ex.broken + ex.control), rec.ctx)
    control = {dataclasses.replace(f, src=fill(f.src, rec.ctx), dst=fill(f.dst, rec.ctx), port=_port(f, rec.ctx))
               for f in ex.control}
    lines = [f"{'control flow broken' if f in control else 'still broken'}: {f.text}"
             for f, ok in results.items() if not ok]
    rep = verify(h.plan, h.state)
    problems = rep.problems
    dead = [d for d in rep.daemons if not d["alive"]]
    if problems or dead or rep.missing_namespaces:
        unplanned = sum(1 for p in problems if p.kind == "unplanned")
        lead = "the traffic works, but" if not lines else "and"
        lines.append(f"{lead} the kernel still differs from the intended datapath in {len(problems) + len(dead)} "
                     f"place(s){f', {unplanned} of them not in the plan' if unplanned else ''}")
    lines += _integrity(h, rec)
    return Verdict(not lines, lines or ["every flow works, the kernel is the plan again, and it is the same lab"],
                   time.monotonic() - t0)


def check(name: str) -> Verdict:
    h, rec = record_of(name)
    ex = load(rec.src)
    verdict = evaluate(h, rec, ex)
    rec.checks.append({"at": time.time(), "passed": verdict.passed})
    if verdict.passed and rec.result is None:
        rec.result, rec.ended_at = "solved", time.time()
    rec.save(h.state)
    return verdict


def hint(name: str) -> tuple[int, str]:
    """The next hint level (1: where to look, 2: the layer and node, 3: the object), recorded."""
    h, rec = record_of(name)
    ex = load(rec.src)
    variant = next(v for v in ex.variants if v.name == rec.variant)
    hints = variant.hints or ex.hints
    level = min(len(rec.hints) + 1, len(hints))
    if not hints:
        raise NetlabError(f"exercise {ex.id} has no hints", "ask the instructor, or: netlab exercise solution")
    rec.hints.append({"level": level, "at": time.time()})
    rec.save(h.state)
    return level, fill(hints[level - 1], rec.ctx)


def solution(name: str) -> tuple[list[str], Exercise, Record]:
    h, rec = record_of(name)
    if rec.result is None:
        rec.result, rec.ended_at = "given up", time.time()
        rec.save(h.state)
    return rec.solution, load(rec.src), rec


def stop(name: str) -> None:
    h, rec = record_of(name)
    rec.result = rec.result or "stopped"
    rec.ended_at = rec.ended_at or time.time()
    entry = {**rec.__dict__, "lab": name, "ctx": None}
    with open(statemod.state_root() / LOG, "a") as f:
        f.write(json.dumps(entry) + "\n")
    h.down()


def reset(name: str) -> tuple[api.LabHandle, Record, Exercise]:
    """From scratch: the same exercise, seed and mode, a fresh lab with the fault injected again."""
    _, rec = record_of(name)
    stop(name)
    ex = load(rec.src)
    variant = next(i for i, v in enumerate(ex.variants) if v.name == rec.variant)
    return start(rec.src, rec.seed, name, rec.mode, variant)


def restart_daemon(name: str, host: str, daemon: str) -> int:
    """Start a planned daemon again, as ``up`` started it (its planned argv, in its namespace),
    after a fault stopped, killed or misconfigured it. Returns the new PID."""
    h, _ = record_of(name)
    return _restart(h, host, daemon)


def _restart(h: api.LabHandle, host: str, daemon: str, replace: dict[str, str] | None = None) -> int:
    """Restart ``daemon`` in ``host``: the old process is ended only if it is provably the one
    netlab started; the new one runs the planned argv, or (a fault) that argv with the strings
    of ``replace`` swapped, which the lab's state then records and ``status`` sees."""
    from ..kernel.apply import Applier

    ns = h.ns(host)
    planned = next((d for d in h.plan.of(planmod.Daemon) if d.ns == ns and d.name == daemon), None)
    if planned is None:
        names = sorted({d.name for d in h.plan.of(planmod.Daemon) if d.ns == ns}) or ["(none)"]
        raise NetlabError(f"{host} runs no planned daemon '{daemon}'", f"use one of: {', '.join(names)}")
    proven = os.stat(netns.path(ns)).st_ino if read_marker(ns) == h.state.marker else None
    for rec in [d for d in h.state.daemons if d.ns == ns and d.name == daemon]:
        if procs.provably_ours(rec.pid, rec.start_time, rec.argv, proven) is None:
            os.kill(rec.pid, signals.SIGCONT)
            procs.stop(rec.pid, rec.start_time)
        h.state.daemons.remove(rec)
    if replace:
        argv = tuple(_swap(a, replace) for a in planned.argv)
        if argv == planned.argv:
            raise NetlabError(f"exercise: restart {daemon}: nothing in its argv matches {sorted(replace)}",
                              "fix the exercise's replace: strings")
        planned = dataclasses.replace(planned, argv=argv)
    Applier(h.plan, h.state).daemons([planned])
    return h.state.daemons[-1].pid


def _swap(arg: str, replace: dict[str, str]) -> str:
    for old, new in replace.items():
        arg = arg.replace(old, new)
    return arg


def report() -> list[dict]:
    """Per exercise run: the result, the time to solve, the hints used and the checks tried."""
    rows = []
    log = statemod.state_root() / LOG
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    for name in running():
        try:
            _, rec = record_of(name)
        except NetlabError:
            continue
        entries.append({**rec.__dict__, "lab": name})
    for e in entries:
        took = (e["ended_at"] - e["started_at"]) if e.get("ended_at") else None
        rows.append({"id": e["id"], "lab": e["lab"], "seed": e["seed"], "variant": e["variant"], "mode": e["mode"],
                     "course": e.get("course"), "student": e.get("student"),
                     "result": e.get("result") or "in progress", "seconds": round(took, 1) if took else None,
                     "hints": max((x["level"] for x in e["hints"]), default=0), "checks": len(e["checks"])})
    return rows


def course_next(path: str, student: str | None) -> tuple[str, int] | None:
    """The next exercise of a course file for ``student``: the first one not finished yet in this
    course (solved or given up, by the report's log), with its seed (the file's, or one derived from the student's
    name and the exercise, so each student gets their own variant and reruns get the same)."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise NetlabError(f"course file {path}: {e}", "give a YAML file with exercises: [{id: …, seed: …}]") from None
    items = raw.get("exercises") if isinstance(raw, dict) else None
    if not isinstance(items, list) or not items:
        raise NetlabError(f"course file {path}: no exercises list", "write exercises: [{id: vxlan-fdb-forgotten}, …]")
    solved = {r["id"] for r in report() if r["result"] in ("solved", "given up") and r.get("course") == str(path)
              and r.get("student") == student}
    for item in items:
        ident = str(item["id"] if isinstance(item, dict) else item)
        if ident not in solved:
            seed = item.get("seed") if isinstance(item, dict) else None
            if seed is None:
                seed = int(hashlib.sha256(f"{student or ''}/{ident}".encode()).hexdigest()[:8], 16) % 10_000
            return ident, int(seed)
    return None


SEEDS = 3  # validate runs at least this many seeds per exercise, and enough to meet every variant


def seeds_of(ex: Exercise, at_least: int = SEEDS) -> list[int]:
    """Seeds whose own choice (no forced variant) meets every variant, at least ``at_least`` of
    them, each a different variant-and-vars combination while there are new ones: what a student
    typing ``--seed N`` gets, so validate proves real runs."""
    combos = len(ex.variants) * len(ex.vars)
    seeds: list[int] = []
    seen: set[tuple[str, str]] = set()
    for seed in range(1, 10_000):
        v, values = choose(ex, seed)
        combo = (v.name, repr(sorted(values.items())))
        if combo not in seen or len(seen) >= combos and len(seeds) < at_least:
            seeds.append(seed)
            seen.add(combo)
        if {n for n, _ in seen} == {x.name for x in ex.variants} and len(seeds) >= at_least:
            return seeds
    raise NetlabError(f"exercise {ex.id}: no seed picks some variant", "this is a bug in netlab")


def validate(ref: str, log=print, seeds: list[int] | None = None) -> list[str]:
    """An exercise end to end, for every seed of :func:`seeds_of`: start, the check fails; the
    solution makes the check pass; a rebuilt lab (down, then up) does not pass; the fault injected
    into that rebuilt lab (a fresh start: it is a lab just brought up) breaks the check again, and
    the exercise's workaround restores the traffic but the check still fails; stop leaves nothing.
    Two lab builds per seed, not three: the rebuild is also the workaround's fresh start.
    Returns the failures (empty: valid)."""
    ex = load(ref)
    failures: list[str] = []
    for seed in seeds or seeds_of(ex):
        failures += [f"seed {seed}: {f}" for f in _validate_seed(ex, ref, seed, log)]
    return failures


def validate_all(refs: list[str], parallel: int = 1, log=print) -> dict[str, list[str]]:
    """:func:`validate` for many exercises, their seeds ``parallel`` at a time: each seed's lab has
    a random name, so seeds of one exercise overlap as safely as different exercises do, and a
    slow exercise's seeds spread over the workers instead of queueing behind each other. Returns
    each exercise's failures; an exception in one seed is that seed's failure."""
    from concurrent.futures import ThreadPoolExecutor

    tasks = [(ref, seed) for ref in refs for seed in seeds_of(load(ref))]

    def one(task: tuple[str, int]) -> list[str]:
        ref, seed = task
        try:
            return validate(ref, log=log, seeds=[seed])
        except Exception as e:  # netlab's own errors are failures already; anything else is a bug to show
            return [f"seed {seed}: {type(e).__name__}: {e}"]

    out: dict[str, list[str]] = {ref: [] for ref in refs}
    with ThreadPoolExecutor(max(1, parallel)) as pool:
        for (ref, _), failures in zip(tasks, pool.map(one, tasks), strict=True):
            out[ref] += failures
    return out


def _validate_seed(ex: Exercise, ref: str, seed: int, log) -> list[str]:
    name = f"xv{os.urandom(3).hex()}"
    try:
        h, rec, _ = start(ref, seed=seed, name=name)
    except NetlabError as e:
        return [f"start: {e}"]
    v = next(x for x in ex.variants if x.name == rec.variant)
    try:
        failures = _prove(h, rec, ex, v, seed, log)
    finally:
        if name in running():
            stop(name)
    if any(Path(netns.path(n.name)).exists() for n in h.plan.namespaces):
        failures.append(f"[{v.name}] namespaces left behind")
    left = procs.naming(f"{h.state.dir}/")
    if left:
        failures.append(f"[{v.name}] processes left behind: {', '.join(map(str, left))}")
    return failures


def _prove(h: api.LabHandle, rec: Record, ex: Exercise, v: Variant, seed: int, log) -> list[str]:
    """The checks of one seed on a started exercise (see :func:`validate`)."""
    failures: list[str] = []
    try:
        _every_placeholder(ex, rec.ctx)
    except NetlabError as e:
        failures.append(str(e))
    first = evaluate(h, rec, ex)
    if first.passed:
        failures.append(f"[{v.name}] the check passes right after the fault")
    for cmd in rec.solution:
        _sh(cmd)
    after = _settled(h, rec, ex)
    if not after.passed:
        return failures + [f"[{v.name}] after the solution the check still fails: {'; '.join(after.lines)}"
                           f"{_what_differs(h.name)}"]
    h2, refused = _wrong_fix_rebuild(h, ex)
    failures += refused
    if ex.workaround_of(v):
        try:
            rec2 = arm(h2, ex, seed)
        except NetlabError as e:
            return failures + [f"[{v.name}] the fault injected again into the rebuilt lab: {e}"]
        failures += _wrong_fix_workaround(h2, rec2, ex, v)
    log(f"{ex.id} seed {seed} [{v.name}]: fault seen ({first.lines[0]}); solution passes in {after.seconds:.2f}s")
    return failures


def _wrong_fix_workaround(h: api.LabHandle, rec: Record, ex: Exercise, v: Variant) -> list[str]:
    """The exercise's standard wrong fix: the broken flows work again, yet the check fails,
    saying that the traffic works but the datapath is not the intended one."""
    for cmd in ex.workaround_of(v):
        _sh(fill(cmd, rec.ctx))
    deadline = time.monotonic() + 10
    while True:
        verdict = evaluate(h, rec, ex)
        if verdict.lines[0].startswith("the traffic works, but") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if verdict.passed:
        return [f"[{v.name}] the workaround passes the check"]
    if not verdict.lines[0].startswith("the traffic works, but"):
        return [f"[{v.name}] the workaround does not restore the traffic: {'; '.join(verdict.lines)}"]
    return []


def _wrong_fix_rebuild(h: api.LabHandle, ex: Exercise) -> tuple[api.LabHandle, list[str]]:
    """The other standard wrong fix: ``netlab down`` then ``netlab up`` under the same name (every
    object is back, the exercise's record put back too): it is not the same lab, and must not pass.
    Returns the rebuilt lab, and the failure if it was not refused."""
    h, _ = record_of(h.name)  # the state as it is now: the solution may have restarted a daemon
    record = (h.state.dir / RECORD).read_text()
    h.down()
    h2 = api.up(ex.lab, name=h.name, **ex.overrides)
    (h2.state.dir / RECORD).write_text(record)
    verdict = check(h.name)
    if verdict.passed or not any("not the same lab" in line for line in verdict.lines):
        return h2, [f"a rebuilt lab is not refused: {'; '.join(verdict.lines)}"]
    return h2, []


def _what_differs(name: str) -> str:
    """For the exercise's author (validate), not the student: what the kernel still differs in."""
    h, _ = record_of(name)
    rep = verify(h.plan, h.state)
    items = [f"{p.kind} {p.what}: {p.detail}" for p in rep.problems[:3]]
    items += [f"daemon {d['name']} in {d['ns']}: {d['state']}" for d in rep.daemons if not d["alive"]]
    return f" [{'; '.join(items)}]" if items else ""


def _every_placeholder(ex: Exercise, ctx: dict) -> None:
    """Every string a student will see resolves (a hint is only filled when it is asked for)."""
    for v in ex.variants:
        for text in (ex.ticket, ex.explanation, *ex.hints, *v.hints):
            fill(text, ctx)


def _settled(h: api.LabHandle, rec: Record, ex: Exercise, timeout: float = 20.0) -> Verdict:
    """The check after a repair, retried while the lab settles (BGP reconverging after BIRD is
    continued): the first pass, or the last failure after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        h, _ = record_of(h.name)  # the solution may have changed the state (a restarted daemon)
        verdict = evaluate(h, rec, ex)
        if verdict.passed or time.monotonic() > deadline:
            return verdict
        time.sleep(0.5)
