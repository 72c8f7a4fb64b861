"""Apply a plan: the only code that writes to the kernel.

Order (see :data:`netlab.plan.PHASES`):

1. namespaces, each marked with the lab's ownership marker as it is born;
2. links: bridges, veth pairs (born with each end in its own namespace), VXLAN, TUN;
3. link settings: bridge membership, hairpin, up;
4. addresses, sysctls, permanent neighbours, FDB entries, routes: batched per namespace;
5. iptables rulesets, one ``iptables-restore --noflush`` per namespace: each starts as soon as
   its namespace exists (rules name interfaces by string) and all have finished before step 6;
6. files under the lab's state directory (daemon configs);
7. daemons.

Any failure raises :class:`~netlab.errors.ApplyError` naming the object and the kernel's answer;
the caller (:func:`netlab.api.up`) then tears down everything recorded so far.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections import defaultdict
from typing import Callable

from ..errors import ApplyError, NetlabError
from ..explain import describe
from ..plan import (Addr, Bridge, Daemon, Fdb, File, Ipip, Neigh, Netns, Plan, Route, Ruleset, Sysctl, Tun, Veth,
                    Vxlan)
from ..state import DaemonRecord, State
from . import netns, procs, tun
from .nl import Batch, NsLink

Progress = Callable[[str], None]


def _fail(obj, err: BaseException | int) -> ApplyError:
    text = os.strerror(err) if isinstance(err, int) else str(getattr(err, "args", [err])[-1] if getattr(err, "args", None) else err)
    code = err if isinstance(err, int) else getattr(err, "errno", None)
    return ApplyError(f"the kernel refused `{describe(obj)}`: {text}",
                      "the lab was rolled back; check the lab file, or report this as a netlab bug", obj=obj, errno=code)


class Applier:
    def __init__(self, plan: Plan, state: State, progress: Progress | None = None) -> None:
        self.plan = plan
        self.state = state
        self.progress = progress or (lambda msg: None)
        self.links: dict[str, NsLink] = {}
        self._rules_pending: list[Ruleset] = []
        self._rules_running: list[tuple[Ruleset, subprocess.Popen]] = []
        self._rules_by_ns = {r.ns: r for r in plan.of(Ruleset)}

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

    def _batch(self, batches: dict[str, Batch], ns: str) -> Batch:
        b = batches.get(ns)
        if b is None:
            b = batches[ns] = Batch(self.links[ns])
        return b

    def _index(self, ns: str, name: str, obj) -> int:
        try:
            return self.links[ns].index(name)
        except LookupError as e:
            raise _fail(obj, e) from None

    # -- links -------------------------------------------------------------------------------------
    def links_phase(self) -> None:
        """Three rounds, one batch per namespace each: bridges; veth pairs (each end up, and the
        end in the creating namespace already in its bridge); then VXLAN and TUN devices (which
        need their parent's ifindex) and the remaining bridge memberships and hairpin flags."""
        links = self.plan.links()
        batches: dict[str, Batch] = {}
        for o in links:
            if isinstance(o, Bridge):
                self._batch(batches, o.ns).bridge(o, o.name, o.mtu, o.mac, o.txqueuelen)
        self._send(batches)
        batches = {}
        for o in links:
            if isinstance(o, Veth):
                a, b = o.a, o.b
                master = self._index(a.ns, a.master, o) if a.master else None
                self._batch(batches, a.ns).veth(o, a.name, a.mtu, a.mac, master, b.name, b.ns, b.mtu, b.mac,
                                                txqlen=a.txqueuelen, peer_txqlen=b.txqueuelen)
        self._send(batches)
        batches = {}
        for o in links:
            if isinstance(o, Vxlan):
                self._batch(batches, o.ns).vxlan(o, o.name, o.vni, o.port, o.local, self._index(o.ns, o.dev, o),
                                                 o.learning, o.mtu, o.mac)
            elif isinstance(o, Tun):
                try:
                    tun.create_persistent(o.ns, o.name)
                except OSError as e:
                    raise _fail(o, e.errno or errno.EIO) from None
                self._batch(batches, o.ns).link_set(o, self._index(o.ns, o.name, o), up=True, mtu=o.mtu)
            elif isinstance(o, Ipip):
                self._ipip(o, batches)
            elif isinstance(o, Veth):
                b = o.b
                master = self._index(b.ns, b.master, o) if b.master else None
                self._batch(batches, b.ns).link_set(o, self._index(b.ns, b.name, o), up=True, master=master)
                for end in (o.a, o.b):
                    if end.hairpin:
                        self._batch(batches, end.ns).hairpin(o, self._index(end.ns, end.name, o))
        self._send(batches)

    def _ipip(self, o: Ipip, batches: dict[str, Batch]) -> None:
        """IPIP devices are rare (this kernel may not even have them): created through pyroute2.
        ``tunl0`` appears by itself in every namespace once the ipip module is loaded, so like
        Felix netlab only creates it when it is missing, then sets its MTU and brings it up."""
        link = self.links[o.ns]
        try:
            link.index(o.name)
        except LookupError:
            kw = {"ifname": o.name, "kind": "ipip"}
            if o.local:
                kw["ipip_local"] = o.local
            if o.remote:
                kw["ipip_remote"] = o.remote
            try:
                link.ipr.link("add", **kw)
            except Exception as e:
                raise _fail(o, e) from None
        self._batch(batches, o.ns).link_set(o, self._index(o.ns, o.name, o), up=True, mtu=o.mtu)

    # -- addresses, neighbours, fdb, routes --------------------------------------------------------
    def entries(self, objs: list) -> None:
        batches: dict[str, Batch] = {}
        for o in objs:
            b = self._batch(batches, o.ns)
            try:
                if isinstance(o, Addr):
                    b.addr(o, o.dev, o.cidr)
                elif isinstance(o, Neigh):
                    b.neigh(o, o.dev, o.dst, o.lladdr)
                elif isinstance(o, Fdb):
                    b.fdb(o, o.dev, o.lladdr, o.dst)
                elif isinstance(o, Route):
                    b.route(o, o.dst, o.via, o.dev, o.onlink, o.scope, o.type, o.proto, o.src)
            except LookupError as e:
                raise _fail(o, e) from None
        self._send(batches)

    def sysctls(self, objs: list[Sysctl]) -> None:
        by_ns: dict[str, list[Sysctl]] = defaultdict(list)
        for s in objs:
            by_ns[s.ns].append(s)
        for ns, items in by_ns.items():
            with netns.entered(ns):
                for s in items:
                    try:
                        with open(s.path, "w") as f:
                            f.write(s.value)
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
        for d in objs:
            log = self.state.dir / f"{d.ns}.{d.name}.log"
            argv = [self.state.expand(a) for a in d.argv]
            with open(log, "ab") as out:
                p = procs.popen(d.ns, argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
            started = procs.start_time(p.pid)
            self.state.daemons.append(DaemonRecord(d.ns, d.name, p.pid, started or 0, argv, str(log)))
            self.state.save()
            if d.ready:
                ready = self.state.expand(d.ready)
                deadline = time.monotonic() + 10
                while not os.path.exists(ready):
                    if p.poll() is not None or time.monotonic() > deadline:
                        tail = log.read_text()[-400:].strip().splitlines()
                        raise ApplyError(f"daemon {d.name} in {d.ns} did not start: {tail[-1] if tail else 'no output'}",
                                         "the lab was rolled back; see the daemon's log line above")
                    time.sleep(0.02)

    def close(self) -> None:
        for link in self.links.values():
            link.close()
        self.links.clear()

    # -- all of it -----------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.progress(f"namespaces: {len(self.plan.namespaces)}")
            self.namespaces()
            self.progress(f"links: {len(self.plan.links())}")
            self.links_phase()
            self._pump_rulesets()
            self.entries(self.plan.of(Addr))
            self.sysctls(self.plan.of(Sysctl))
            entries = self.plan.of(Neigh) + self.plan.of(Fdb) + self.plan.of(Route)
            self.progress(f"neighbours, fdb entries and routes: {len(entries)}")
            self.entries(entries)
            if self._rules_by_ns:
                self.progress(f"iptables rulesets: {len(self._rules_by_ns)} (loading since their namespaces appeared)")
            self._pump_rulesets(block=True)
            self.files(self.plan.of(File))
            daemons = self.plan.of(Daemon)
            if daemons:
                self.progress(f"daemons: {len(daemons)}")
                self.daemons(daemons)
        finally:
            self._kill_rulesets()
            self.close()


def apply(plan: Plan, state: State, progress: Progress | None = None) -> None:
    Applier(plan, state, progress).run()
