"""Apply a plan: the only code that writes to the kernel.

Order: the namespaces, each marked with the lab's ownership marker as it is born, then the
phases of :data:`netlab.spec.PHASES`:

1. links, in creation rounds (bridges, veth pairs born with each end in its own namespace,
   then VXLAN, TUN and IPIP devices), each round also settling the one before (a veth peer up
   and in its bridge, hairpin); the encoders are in :mod:`.encode`;
2. addresses, sysctls, permanent neighbours, FDB entries, routes: batched per namespace;
3. iptables rulesets, one ``iptables-restore --noflush`` per namespace: each starts as soon as
   its namespace exists (rules name interfaces by string) and all have finished before step 4;
4. files under the lab's state directory (daemon configs);
5. daemons.

Any failure raises :class:`~netlab.errors.ApplyError` naming the object and the kernel's answer;
the caller (:func:`netlab.api.up`) then tears down everything recorded so far.
"""

from __future__ import annotations

import errno
import os
import queue
import subprocess
import sys
import threading
import time
from collections import defaultdict
from typing import Any, Callable, Iterator

from .. import gcpause
from ..errors import ApplyError, NetlabError
from ..explain import describe
from ..plan import Daemon, File, Netns, Plan, Ruleset, Sysctl
from ..spec import Phase, spec_of
from ..state import DaemonRecord, State
from . import encode, netns, procs
from .nl import Batch, NsLink

Progress = Callable[[str], None]


def _fail(obj, err: BaseException | int) -> ApplyError:
    text = os.strerror(err) if isinstance(err, int) else str(getattr(err, "args", [err])[-1] if getattr(err, "args", None) else err)
    code = err if isinstance(err, int) else getattr(err, "errno", None)
    return ApplyError(f"the kernel refused `{describe(obj)}`: {text}",
                      "the lab was rolled back; check the lab file, or report this as a netlab bug", obj=obj, errno=code)


#: Entries from which encoding runs on its own thread beside the sending (:func:`pipelined`).
PIPELINE_FROM = 20_000


def pipelined(make: Callable[[str, list], Batch], work: dict[str, list], ahead: int = 64) -> Iterator[Batch]:
    """``make(ns, items)`` for each namespace on a producer thread, yielded here in order, at
    most ``ahead`` batches in advance. An exception in ``make`` is raised here; if the consumer
    stops early (a refused entry), the producer stops at its next batch.

    The interpreter's switch interval is lowered meanwhile: a thread returning from the kernel
    waits for the GIL until the encoding thread gives it up, by default up to 5 ms, which
    thousands of sends would pay each time."""
    out: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for ns, items in work.items():
                if stop.is_set():
                    return
                out.put(make(ns, items))
            out.put(done)
        except BaseException as e:  # handed to the consumer, raised there
            out.put(e)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    producer = threading.Thread(target=produce, name="netlab-encode", daemon=True)
    producer.start()
    try:
        while (item := out.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while producer.is_alive():  # unblock a producer waiting on a full queue
            try:
                out.get(timeout=0.05)
            except queue.Empty:
                pass
        sys.setswitchinterval(interval)


class Applier:
    def __init__(self, plan: Plan, state: State, progress: Progress | None = None) -> None:
        self.plan = plan
        self.state = state
        self.progress = progress or (lambda msg: None)
        self.links: dict[str, NsLink] = {}
        self._rules_pending: list[Ruleset] = []
        self._rules_running: list[tuple[Ruleset, subprocess.Popen]] = []
        self._rules_by_ns = {r.ns: r for r in plan.of(Ruleset)}
        self._round: dict[str, Batch] = {}  # the batches of the link round being built

    # -- namespaces ---------------------------------------------------------------------------
    def namespaces(self) -> None:
        marker = self.state.marker
        netns.ensure_run_dir()
        for n in self.plan.namespaces:
            holder: dict[str, NsLink] = {}

            # runs inside the new namespace, before its name appears (bound now, called at once)
            def init(n: Netns = n, holder: dict[str, NsLink] = holder) -> None:
                link = NsLink(n.name, enter=False)
                holder["link"] = link
                b = Batch(link)
                b.set_lo(n, marker)  # lo up, and the ownership marker as lo's ifalias
                failures = b.send()
                if failures:
                    raise _fail(n, failures[0][1])

            try:
                netns.create(n.name, init=init, stamp=marker, prepare=False)
            except FileExistsError:
                raise NetlabError(f"namespace {n.name} already exists and is not this lab's",
                                  "remove it, or choose another instance name with --name") from None
            self.links[n.name] = holder["link"]
            if n.name in self._rules_by_ns:
                self._rules_pending.append(self._rules_by_ns[n.name])
                self._pump_rulesets()

    # -- batches -----------------------------------------------------------------------------------
    def _send(self, batches: dict[str, Batch]) -> None:
        for b in batches.values():
            failures = b.send()
            if failures:
                obj, err = failures[0]
                raise _fail(obj, err)

    # -- links -------------------------------------------------------------------------------------
    def batch(self, ns: str) -> Batch:
        b = self._round.get(ns)
        if b is None:
            b = self._round[ns] = Batch(self.links[ns])
        return b

    def index(self, ns: str, name: str, obj: Any) -> int:
        try:
            return self.links[ns].index(name)
        except LookupError as e:
            raise _fail(obj, e) from None

    def lookup(self, ns: str, name: str) -> int | None:
        try:
            return self.links[ns].index(name)
        except LookupError:
            return None

    def fail(self, obj: Any, err: BaseException | int) -> Exception:
        return _fail(obj, err)

    def links_phase(self, links: list) -> None:
        """One batch per namespace per creation round (:attr:`netlab.spec.Kind.round`: bridges,
        then veth pairs, then the devices that need a parent's ifindex), and each round also
        settles the links of the round before it (a veth peer up and in its bridge, hairpin)."""
        rounds: dict[int, list] = {}
        for o in links:
            rounds.setdefault(spec_of(o).round, []).append(o)
        previous: list = []
        for r in sorted(rounds):
            self._round = {}
            for o in previous:
                encode.settle(self, o)
            for o in rounds[r]:
                encode.create(self, o)
            self._send(self._round)
            previous = rounds[r]
        self._round = {}
        for o in previous:
            encode.settle(self, o)
        self._send(self._round)

    # -- addresses, neighbours, fdb, routes --------------------------------------------------------
    def entries(self, objs: list) -> None:
        """Netlink entries, one batch per namespace: the kernel processes a namespace's messages
        in order, so consecutive phases (neighbours, FDB, routes) share one batch and keep it.

        A large lab's batches are encoded on a second thread while this one sends: the kernel
        does its share inside ``send`` with the GIL released, so encoding the next namespace's
        messages (Python) and taking this one's entries (kernel) run on two cores at once. At
        1,000 nodes that is 3 million messages, about 10 s of encoding hidden behind 35 s of
        kernel work."""
        by_ns: dict[str, list] = {}
        for o in objs:
            by_ns.setdefault(o.ns, []).append(o)
        if len(objs) < PIPELINE_FROM:
            self._send({ns: self._encoded(ns, items) for ns, items in by_ns.items()})
            return
        for b in pipelined(self._encoded, by_ns):
            self._send({b.link.ns: b})

    def _encoded(self, ns: str, items: list) -> Batch:
        b = Batch(self.links[ns])
        for o in items:
            try:
                encode.entry(b, o)
            except LookupError as e:
                raise _fail(o, e) from None
        return b

    def sysctls(self, objs: list[Sysctl]) -> None:
        """Each value written to its /proc/sys file from inside the namespace (a namespace's
        ``net`` sysctls are its own). One ``os.write`` per file, as ``sysctl -w`` does: a write
        through Python's buffered text file took 25 µs here, os.open and os.write 6 µs."""
        by_ns: dict[str, list[Sysctl]] = defaultdict(list)
        for s in objs:
            by_ns[s.ns].append(s)
        for ns, items in by_ns.items():
            with netns.entered(ns):
                for s in items:
                    try:
                        fd = os.open(s.path, os.O_WRONLY | os.O_CLOEXEC)
                        try:
                            os.write(fd, s.value.encode())
                        finally:
                            os.close(fd)
                    except FileNotFoundError:
                        if s.required:
                            raise _fail(s, errno.ENOENT) from None
                    except OSError as e:
                        raise _fail(s, e.errno or errno.EIO) from None

    # -- iptables: started early, run beside the netlink work ---------------------------------------
    # ``iptables-restore --noflush`` per namespace, queued as soon as its namespace exists. Rules
    # name interfaces by string, so they can load before the links exist: the processes run on
    # another core while this thread does the netlink work, a few at a time. They are started
    # through ``nsenter`` rather than a preexec setns so that Python can spawn them with vfork.
    def _pump_rulesets(self, parallel: int = 6, block: bool = False) -> None:
        while True:
            still = []
            for rs, p in self._rules_running:
                if p.poll() is None:
                    still.append((rs, p))
                    continue
                assert p.stderr is not None  # Popen(stderr=PIPE)
                err = p.stderr.read().strip()
                p.stderr.close()
                if p.returncode != 0:
                    raise ApplyError(f"iptables-restore failed in {rs.ns}: {err.splitlines()[-1] if err else p.returncode}",
                                     "the lab was rolled back; is this kernel missing an iptables match or target?")
            self._rules_running = still
            while self._rules_pending and len(self._rules_running) < parallel:
                rs = self._rules_pending.pop(0)
                p = subprocess.Popen(["nsenter", f"--net={netns.path(rs.ns)}", "iptables-restore", "--noflush"],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
                assert p.stdin is not None  # Popen(stdin=PIPE)
                p.stdin.write(rs.restore_text())
                p.stdin.close()
                self._rules_running.append((rs, p))
            if not block or not (self._rules_running or self._rules_pending):
                return
            time.sleep(0.002)

    def _kill_rulesets(self) -> None:
        for _, p in self._rules_running:
            if p.poll() is None:
                p.kill()
            p.wait()
            if p.stderr is not None:
                p.stderr.close()
        self._rules_running, self._rules_pending = [], []

    # -- files and daemons ---------------------------------------------------------------------------
    def files(self, objs: list[File]) -> None:
        """Write daemon configs into the lab's state directory (and nowhere else)."""
        for f in objs:
            path = self.state.expand(f.path)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as out:
                out.write(f.content)

    def daemons(self, objs: list[Daemon]) -> None:
        """Start every daemon, then wait for each one's ready file (each gets 10 s from its own
        start). Waiting for each before starting the next made their start-ups run one after
        another: 100 flannel-udp forwarders, each a Python process, took ``up`` 15-19 s; started
        together they start side by side, 11-13 s. Each pid is in the state file before the
        next start, so an interrupted ``up`` still knows every process it has to stop."""
        started = []
        for d in objs:
            log = self.state.dir / f"{d.ns}.{d.name}.log"
            argv = [self.state.expand(a) for a in d.argv]
            with open(log, "ab") as out:
                p = procs.popen(d.ns, argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
            self.state.daemons.append(DaemonRecord(d.ns, d.name, p.pid, procs.start_time(p.pid) or 0, argv, str(log)))
            self.state.save()  # write-ahead: each pid is on record before the next start
            started.append((d, p, log, time.monotonic()))
        for d, p, log, t in started:
            if d.ready:
                ready = self.state.expand(d.ready)
                while not os.path.exists(ready):
                    if p.poll() is not None or time.monotonic() > t + 10:
                        tail = log.read_text()[-400:].strip().splitlines()
                        raise ApplyError(f"daemon {d.name} in {d.ns} did not start: {tail[-1] if tail else 'no output'}",
                                         "the lab was rolled back; see the daemon's log line above")
                    time.sleep(0.02)

    def close(self) -> None:
        for link in self.links.values():
            link.close()
        self.links.clear()

    # -- all of it -----------------------------------------------------------------------------------
    def _step(self, phase: Phase, objs: list) -> None:
        if phase.name == "links":
            self.links_phase(objs)
        elif phase.check == "entry":
            self.entries(objs)
        elif phase.name == "sysctls":
            self.sysctls(objs)
        elif phase.name == "iptables":  # loading since their namespaces appeared: wait for them
            self._pump_rulesets(block=True)
        elif phase.name == "files":
            self.files(objs)
        elif phase.name == "daemons":
            self.daemons(objs)
        else:
            raise TypeError(f"no apply step for phase {phase.name}")

    def run(self) -> None:
        """Namespaces, then every phase of :data:`netlab.spec.PHASES` in order. Consecutive entry
        phases go to the kernel as one batch per namespace (see :meth:`entries`)."""
        try:
            self.progress(f"namespaces: {len(self.plan.namespaces)}")
            self.namespaces()
            pending: list = []
            titles: list[str] = []
            for phase, objs in self.plan.phased():
                self._pump_rulesets()
                if phase.check == "entry":
                    pending += objs
                    titles.append(phase.title)
                    continue
                if pending:
                    self.progress(f"{', '.join(titles)}: {len(pending)}")
                    self.entries(pending)
                    pending, titles = [], []
                self.progress(f"{phase.title}: {len(objs)}")
                self._step(phase, objs)
            if pending:
                self.progress(f"{', '.join(titles)}: {len(pending)}")
                self.entries(pending)
            self._pump_rulesets(block=True)
        finally:
            self._kill_rulesets()
            self.close()


def apply(plan: Plan, state: State, progress: Progress | None = None) -> None:
    with gcpause.paused():
        Applier(plan, state, progress).run()
