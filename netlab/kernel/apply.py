"""Apply a plan: the only code that writes to the kernel.

Order (see :data:`netlab.plan.PHASES`):

1. namespaces, each marked with the lab's ownership marker as it is born;
2. links: bridges, veth pairs (born with each end in its own namespace), VXLAN, TUN;
3. link settings: bridge membership, hairpin, up;
4. addresses, sysctls, permanent neighbours, FDB entries, routes: batched per namespace;
5. iptables rulesets, one ``iptables-restore --noflush`` per namespace;
6. daemons.

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
from ..plan import Addr, Bridge, Daemon, Fdb, Neigh, Plan, Route, Ruleset, Sysctl, Tun, Veth, VethEnd, Vxlan
from ..state import DaemonRecord, State
from . import netns, procs, tun
from .nl import Batch, NsLink

Progress = Callable[[str], None]


def _fail(obj, err: BaseException | int) -> ApplyError:
    text = os.strerror(err) if isinstance(err, int) else str(getattr(err, "args", [err])[-1] if getattr(err, "args", None) else err)
    return ApplyError(f"the kernel refused `{describe(obj)}`: {text}",
                      "the lab was rolled back; check the lab file, or report this as a netlab bug")


class Applier:
    def __init__(self, plan: Plan, state: State, progress: Progress | None = None) -> None:
        self.plan = plan
        self.state = state
        self.progress = progress or (lambda msg: None)
        self.links: dict[str, NsLink] = {}

    # -- namespaces ---------------------------------------------------------------------------
    def namespaces(self) -> None:
        marker = self.state.marker
        for n in self.plan.namespaces:
            holder: dict[str, NsLink] = {}

            def init(name: str = n.name) -> None:
                link = NsLink(name, enter=False)
                holder["link"] = link
                # lo up, and the ownership marker as lo's ifalias
                link.ipr.link("set", index=1, state="up", ifalias=marker)

            try:
                netns.create(n.name, init=init)
            except FileExistsError:
                raise NetlabError(f"namespace {n.name} already exists and is not this lab's",
                                  "remove it, or choose another instance name with --name") from None
            self.links[n.name] = holder["link"]

    # -- links -------------------------------------------------------------------------------
    def link(self, obj) -> None:
        try:
            if isinstance(obj, Bridge):
                self._add(obj.ns, ifname=obj.name, kind="bridge", mtu=obj.mtu, address=obj.mac,
                          br_stp_state=1 if obj.stp else 0)
            elif isinstance(obj, Veth):
                peer = {"ifname": obj.b.name, "net_ns_fd": netns.path(obj.b.ns)}
                if obj.b.mtu:
                    peer["mtu"] = obj.b.mtu
                if obj.b.mac:
                    peer["address"] = obj.b.mac
                self._add(obj.a.ns, ifname=obj.a.name, kind="veth", mtu=obj.a.mtu, address=obj.a.mac, peer=peer)
            elif isinstance(obj, Vxlan):
                link = self.links[obj.ns]
                self._add(obj.ns, ifname=obj.name, kind="vxlan", vxlan_id=obj.vni, vxlan_port=obj.port,
                          vxlan_local=obj.local, vxlan_link=link.index(obj.dev),
                          vxlan_learning=1 if obj.learning else 0, mtu=obj.mtu, address=obj.mac)
            elif isinstance(obj, Tun):
                tun.create_persistent(obj.ns, obj.name)
                if obj.mtu:
                    link = self.links[obj.ns]
                    link.ipr.link("set", index=link.index(obj.name), mtu=obj.mtu)
        except (ApplyError, NetlabError):
            raise
        except Exception as e:
            raise _fail(obj, e) from None

    def _add(self, ns: str, **kw) -> None:
        kw = {k: v for k, v in kw.items() if v is not None}
        self.links[ns].ipr.link("add", **kw)

    def link_settings(self) -> None:
        """Enslave ports, set hairpin, bring everything up: per end, in the end's namespace."""
        for obj in self.plan.links():
            ends = [obj.a, obj.b] if isinstance(obj, Veth) else [obj]
            for end in ends:
                link = self.links[end.ns]
                try:
                    idx = link.index(end.name)
                    master = getattr(end, "master", None)
                    if master:
                        link.ipr.link("set", index=idx, master=link.index(master))
                        if getattr(end, "hairpin", False):
                            link.ipr.link("set", index=idx, kind="bridge_slave", mode=1)
                    link.ipr.link("set", index=idx, state="up")
                except Exception as e:
                    raise _fail(obj, e) from None

    # -- batched objects -----------------------------------------------------------------------
    def batched(self, objs: list) -> None:
        batches: dict[str, Batch] = {}
        for o in objs:
            b = batches.get(o.ns) or batches.setdefault(o.ns, Batch(self.links[o.ns]))
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
        for b in batches.values():
            failures = b.send()
            if failures:
                obj, err = failures[0]
                raise _fail(obj, err)

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
                    except OSError as e:
                        raise _fail(s, e.errno or errno.EIO) from None

    def rulesets(self, objs: list[Ruleset], parallel: int = 8) -> None:
        """``iptables-restore --noflush`` per namespace, a few at a time (each is a fork+exec)."""
        pending = list(objs)
        running: list[tuple[Ruleset, subprocess.Popen]] = []
        while pending or running:
            while pending and len(running) < parallel:
                rs = pending.pop(0)
                p = procs.popen(rs.ns, ["iptables-restore", "--noflush"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                p.stdin.write(rs.restore_text())
                p.stdin.close()
                running.append((rs, p))
            rs, p = running.pop(0)
            p.wait()
            err = p.stderr.read().strip()
            p.stdout.close()
            p.stderr.close()
            if p.returncode != 0:
                raise ApplyError(f"iptables-restore failed in {rs.ns}: {err.splitlines()[-1] if err else p.returncode}",
                                 "the lab was rolled back; is this kernel missing an iptables match or target?")

    def daemons(self, objs: list[Daemon]) -> None:
        for d in objs:
            log = self.state.dir / f"{d.ns}.{d.name}.log"
            argv = [a.replace("{run}", str(self.state.dir)) for a in d.argv]
            with open(log, "ab") as out:
                p = procs.popen(d.ns, argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
            started = procs.start_time(p.pid)
            self.state.daemons.append(DaemonRecord(d.ns, d.name, p.pid, started or 0, argv, str(log)))
            self.state.save()
            if d.ready:
                ready = d.ready.replace("{run}", str(self.state.dir))
                deadline = time.monotonic() + 10
                while not os.path.exists(ready):
                    if p.poll() is not None or time.monotonic() > deadline:
                        tail = log.read_text()[-400:].strip().splitlines()
                        raise ApplyError(f"daemon {d.name} in {d.ns} did not start: {tail[-1] if tail else 'no output'}",
                                         f"the lab was rolled back; see the log above")
                    time.sleep(0.02)

    def close(self) -> None:
        for link in self.links.values():
            link.close()
        self.links.clear()

    # -- all of it -----------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.progress(f"namespaces: {len(self.plan.namespaces)}")
            self.namespaces()
            links = self.plan.links()
            self.progress(f"links: {len(links)}")
            for kind in (Bridge, Veth, Vxlan, Tun):
                for obj in links:
                    if isinstance(obj, kind):
                        self.link(obj)
            self.link_settings()
            self.batched(self.plan.of(Addr))
            self.sysctls(self.plan.of(Sysctl))
            entries = self.plan.of(Neigh) + self.plan.of(Fdb) + self.plan.of(Route)
            self.progress(f"neighbours, fdb entries and routes: {len(entries)}")
            for kind in (Neigh, Fdb, Route):
                self.batched(self.plan.of(kind))
            rulesets = self.plan.of(Ruleset)
            if rulesets:
                self.progress(f"iptables rulesets: {len(rulesets)}")
                self.rulesets(rulesets)
            daemons = self.plan.of(Daemon)
            if daemons:
                self.progress(f"daemons: {len(daemons)}")
                self.daemons(daemons)
        finally:
            self.close()


def apply(plan: Plan, state: State, progress: Progress | None = None) -> None:
    Applier(plan, state, progress).run()
