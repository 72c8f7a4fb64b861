"""Datapaths: one module per datapath, each turning a validated :class:`~netlab.model.Lab` into a
:class:`~netlab.plan.Plan`.

A lab file's ``datapath: flannel-vxlan`` loads ``netlab/datapaths/flannel_vxlan.py``, which must
define ``DATAPATH = Datapath(...)``. Adding a datapath therefore means adding one module and one
lab file; nothing else in netlab changes, and ``status``, ``explain`` and teardown work for it
with no extra code because they only ever see the plan.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ..errors import LabFileError
from .hints import Steps


@dataclass(frozen=True)
class NoOptions:
    """For datapaths without knobs."""


@dataclass(frozen=True)
class Datapath:
    name: str
    summary: str  # one line, for `netlab list`
    plan: Callable[[Any], Any]  # Lab -> Plan
    Options: type = NoOptions
    default_pod_cidr: str = "10.244.0.0/16"
    min_nodes: int = 1
    max_nodes: int = 65_536  # the real limits: addresses, the host's shared tables, memory (kernel.limits)
    max_pods: int = 50  # per node: what the datapath's per-node pod network holds, or a sane bound
    requires: tuple[str, ...] = ()  # kernel link kinds, probed before anything is created
    # kernel entries a daemon adds at run time on every node for every other node, which no plan
    # holds (BIRD's learned block routes); the planned ones are counted on the plan itself
    # (netlab.kernel.limits.per_peer)
    learned_per_peer: int = 0
    tools: tuple[str, ...] = ("iptables-restore",)  # binaries on PATH
    validate: Callable[[Any], None] = lambda lab: None
    # (lab, plan) -> what to try after `up`: text that carries its hints and what each should do
    next_steps: Callable[[Any, Any], Steps] = lambda lab, plan: Steps()
    # (lab, refused plan object, errno) -> (why, fix), when a refusal is the lesson of the lab
    explain_refusal: Callable[[Any, Any, int | None], tuple[str, str] | None] = lambda lab, obj, err: None
    # LabHandle -> readiness polls (netlab.bgp.Readiness), for a lab that is built before it is
    # usable (BGP must converge); `up` iterates it until one says done or --wait-timeout passes
    ready: Callable[[Any], Iterator[Any]] | None = None


_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def get(name: str, src: str = "lab file") -> Datapath:
    if not _NAME.match(name):
        raise LabFileError(f"{src}: datapath: '{name}' is not a datapath name", f"use one of: {', '.join(names())}")
    try:
        mod = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
    except ModuleNotFoundError:
        raise LabFileError(f"{src}: datapath: unknown datapath '{name}'",
                           f"use one of: {', '.join(names())}") from None
    dp = getattr(mod, "DATAPATH", None)
    if not isinstance(dp, Datapath):
        raise LabFileError(f"{src}: datapath: '{name}' is not a datapath module", f"use one of: {', '.join(names())}")
    return dp


def names() -> list[str]:
    import pkgutil

    found = []
    for m in pkgutil.iter_modules(__path__):
        mod = importlib.import_module(f"{__name__}.{m.name}")
        if isinstance(getattr(mod, "DATAPATH", None), Datapath):
            found.append(mod.DATAPATH.name)
    return sorted(found)
