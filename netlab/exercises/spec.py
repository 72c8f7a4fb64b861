"""An exercise file (``exercises/<id>.yaml``) as validated data.

An instructor writes one without reading netlab's code (docs/EXERCISES.md has the format and a
complete example). It names a lab, the fault's *variants* (the seed picks one, and the values of
the exercise's *vars*, so two students get different answers), the *broken* flows the ticket
reports and the *control* flows that must keep working, three hint levels, the solution and the
networking explanation. Every string may use ``{placeholders}``: a var (``{node}``), derived
from a host-valued var its namespace and address (``{node_ns}``, ``{node_ip}``), the instance
(``{lab}``), and, after a ``delete`` action, the deleted object (``{obj}``: the command that
recreates it, which is also the default solution).

Fault actions are plan-level:

- ``delete: {kind: Fdb, host: "{node}", where: {dev: flannel.1}}``: one planned object of that
  kind in that host's namespace whose fields match (the seed picks among several), removed from
  the kernel by the inverse of the command that created it;
- ``run: ["ip -n {node_ns} link set cni0 down"]``: commands, for what plan terms cannot express
  (a custom action: an inserted rule, a changed sysctl, a signal to a daemon);
- ``signal: {host: "{node}", daemon: bird, signal: STOP}``: a planned daemon, by name;
- ``restart: {host: node1, daemon: flannel-udp, replace: {"=192.168.100.12": "=192.168.100.13"}}``:
  a planned daemon started again with strings of its argv swapped (a wrong configuration);
  ``status`` sees a daemon that does not run its planned argv;
- ``spawn: {host: "{src}", name: metrics-client, argv: [udp_client, --to, "{node2_ip}:12347", --sport,
  "5353"]}``: one of netlab's daemon modules (``netlab.daemons.<first word>``) started in that
  host's namespace as the application whose traffic the fault needs (a client that never stops);
  it is recorded with the lab's daemons, so ``down`` and ``stop`` end it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import LabFileError

ROOT = Path(__file__).resolve().parent.parent.parent / "exercises"
PROTOS = ("icmp", "tcp", "udp")
FEATURES = ("netem", "ipip", "vxlan", "tun", "macvlan")  # what ``requires`` may name beyond the lab's own
ACTIONS = ("delete", "run", "signal", "restart", "spawn")


@dataclass(frozen=True)
class Flow:
    """A probe: ``src`` host to ``dst`` (a host, whose address is used, or an address), by ICMP
    echo (of ``size`` payload bytes with Don't Fragment set, to test a path's MTU), a TCP
    connect to ``port``, or a UDP datagram to ``port`` that must be answered. A UDP flow may
    fix its source port (``sport``), as a DNS or statsd client does: then every probe is the same
    5-tuple, the same conntrack entry, which is what makes a stale entry outlive a repaired rule."""

    src: str
    dst: str
    proto: str = "icmp"
    port: int | str | None = None  # a number, or a placeholder filled when the flow runs
    size: int | None = None  # ICMP payload bytes, sent with DF (ping -s N -M do): an MTU's test
    sport: int | None = None  # UDP only: a fixed source port
    expect: str | None = None  # tcp/udp: the answer must contain this (which backend answered)

    @property
    def text(self) -> str:
        if self.proto in ("tcp", "udp"):
            what = f"{self.proto} {self.port}" + (f" from port {self.sport}" if self.sport else "") + \
                (f", answered by {self.expect}" if self.expect else "")
        else:
            what = f"ping -s {self.size}, DF" if self.size else "ping"
        return f"{self.src} -> {self.dst} ({what})"


@dataclass(frozen=True)
class Variant:
    name: str
    actions: tuple[dict, ...]
    solution: tuple[str, ...] = ()  # empty: recreate what a delete action removed ({obj})
    hints: tuple[str, ...] = ()  # overrides the exercise's, level by level
    workaround: tuple[str, ...] = ()  # overrides the exercise's (see Exercise.workaround)


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    lab: str
    difficulty: int
    minutes: int
    ticket: str
    variants: tuple[Variant, ...]
    broken: tuple[Flow, ...]
    control: tuple[Flow, ...] = ()
    hints: tuple[str, ...] = ()
    explanation: str = ""
    see: str = ""
    overrides: dict = field(default_factory=dict)
    vars: tuple[dict[str, str], ...] = ({},)  # the seed picks one combination
    src: str = ""
    # A standard wrong fix: commands that make the broken flows work again without repairing the
    # datapath (a static route instead of the FDB entry, a blanket ACCEPT). validate proves that
    # the check refuses it: the traffic works, but the kernel is not the plan.
    workaround: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()  # kernel features beyond the lab's own (netem), probed by list

    def workaround_of(self, v: Variant) -> tuple[str, ...]:
        return v.workaround or self.workaround


def _err(src: str, where: str, what: str, fix: str) -> LabFileError:
    return LabFileError(f"{src}: {where}: {what}", fix)


def _flow(src: str, where: str, raw: Any) -> Flow:
    if not isinstance(raw, dict) or not {"from", "to"} <= set(raw):
        raise _err(src, where, "a flow needs 'from' and 'to'", "write e.g. {from: node1-pod1, to: node2-pod1}")
    proto = str(raw.get("proto", "icmp"))
    if proto not in PROTOS:
        raise _err(src, where, f"proto '{proto}' is not one of {', '.join(PROTOS)}", "use icmp or tcp")
    port = raw.get("port")
    if proto != "icmp" and not (isinstance(port, int) or (isinstance(port, str) and port.startswith("{"))):
        raise _err(src, where, f"a {proto} flow needs a port", "add port: <number> (or a placeholder such as \"{port}\")")
    sport = raw.get("sport")
    if sport is not None and (proto != "udp" or not isinstance(sport, int) or not 1 <= sport <= 65535):
        raise _err(src, where, f"sport {sport!r}: a UDP flow's fixed source port", "use sport: 5353 with proto udp")
    size = raw.get("size")
    if size is not None and (not isinstance(size, int) or not 0 <= size <= 65000 or proto != "icmp"):
        raise _err(src, where, f"size {size!r}: an ICMP payload of 0-65000 bytes", "use size: 1422 with proto icmp")
    expect = raw.get("expect")
    if expect is not None and (proto == "icmp" or not isinstance(expect, str) or not expect):
        raise _err(src, where, f"expect {expect!r}: text a tcp or udp answer must contain", "use expect: executor3")
    return Flow(str(raw["from"]), str(raw["to"]), proto, port, size, sport, expect)


def _variant(src: str, i: int, raw: Any) -> Variant:
    where = f"variants[{i}]"
    if not isinstance(raw, dict) or "name" not in raw or not isinstance(raw.get("fault"), list) or not raw["fault"]:
        raise _err(src, where, "a variant needs a name and a non-empty fault list", "see docs/EXERCISES.md")
    for j, action in enumerate(raw["fault"]):
        if not isinstance(action, dict) or len(action) != 1 or next(iter(action)) not in ACTIONS:
            raise _err(src, f"{where}.fault[{j}]", f"an action is one of {', '.join(ACTIONS)}",
                       "write e.g. - delete: {kind: Fdb, host: node1}")
    solution = raw.get("solution", [])
    if not solution and not any("delete" in a for a in raw["fault"]):
        raise _err(src, where, "a variant without a delete action needs a solution", "add solution: [commands]")
    return Variant(str(raw["name"]), tuple(raw["fault"]), tuple(str(s) for s in solution),
                   tuple(str(h) for h in raw.get("hints", [])), _commands(src, f"{where}.workaround", raw))


def _commands(src: str, where: str, raw: dict) -> tuple[str, ...]:
    value = raw.get("workaround", [])
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise _err(src, where, "a workaround is a list of commands", "write workaround: [\"ip -n {node1_ns} route …\"]")
    return tuple(value)


def _requires(src: str, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(r in FEATURES for r in raw):
        raise _err(src, "requires", f"{raw!r} is not a list of {', '.join(FEATURES)}", "write e.g. requires: [netem]")
    return tuple(raw)


def _combos(src: str, raw: Any) -> tuple[dict[str, str], ...]:
    """``vars`` as the combinations the seed picks from: a mapping of lists (every combination,
    e.g. ``{node: [node1, node2]}``) or a list of mappings (exactly these, e.g. ``[{src: node1,
    dst: node2}, {src: node2, dst: node1}]``, for values that belong together)."""
    if raw is None:
        return ({},)
    if isinstance(raw, list) and raw and all(isinstance(x, dict) for x in raw):
        return tuple({str(k): str(v) for k, v in x.items()} for x in raw)
    if isinstance(raw, dict):
        keys = sorted(raw)
        lists = [[str(x) for x in (raw[k] if isinstance(raw[k], list) else [raw[k]])] for k in keys]
        return tuple(dict(zip(keys, values, strict=True)) for values in itertools.product(*lists))
    raise _err(src, "vars", "vars is a mapping of lists or a list of mappings", "see docs/EXERCISES.md")


def parse(raw: Any, src: str) -> Exercise:
    """A parsed YAML document as an :class:`Exercise`, or one line naming what is wrong."""
    if not isinstance(raw, dict):
        raise _err(src, "top level", "an exercise file is a mapping", "see docs/EXERCISES.md")
    for key in ("id", "title", "lab", "ticket", "variants", "broken"):
        if key not in raw:
            raise _err(src, key, "missing", "see docs/EXERCISES.md for the fields")
    difficulty = raw.get("difficulty", 1)
    if difficulty not in (1, 2, 3):
        raise _err(src, "difficulty", f"{difficulty!r} is not 1, 2 or 3", "1: one obvious object; 3: two faults")
    variants = tuple(_variant(src, i, v) for i, v in enumerate(raw["variants"] or []))
    if not variants:
        raise _err(src, "variants", "no variant", "add at least one variant with a fault")
    vars_ = _combos(src, raw.get("vars"))
    return Exercise(
        id=str(raw["id"]), title=str(raw["title"]), lab=str(raw["lab"]), difficulty=difficulty,
        minutes=int(raw.get("minutes", 10)), ticket=str(raw["ticket"]).strip(), variants=variants,
        broken=tuple(_flow(src, f"broken[{i}]", f) for i, f in enumerate(raw["broken"] or [])),
        control=tuple(_flow(src, f"control[{i}]", f) for i, f in enumerate(raw.get("control") or [])),
        hints=tuple(str(h) for h in raw.get("hints", [])), explanation=str(raw.get("explanation", "")).strip(),
        see=str(raw.get("see", "")), overrides=dict(raw.get("overrides") or {}), vars=vars_, src=src,
        workaround=_commands(src, "workaround", raw), requires=_requires(src, raw.get("requires")))


def load(ref: str) -> Exercise:
    """An exercise by id (``exercises/<id>.yaml``) or by path."""
    path = Path(ref)
    if not path.suffix:
        path = ROOT / f"{ref}.yaml"
    if not path.is_file():
        raise LabFileError(f"unknown exercise '{ref}'", f"use one of: {', '.join(ids()) or '(none)'}, or a file path")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise LabFileError(f"{path}: not valid YAML: {str(e).splitlines()[0]}", "fix the YAML syntax") from None
    ex = parse(raw, str(path))
    if path.parent == ROOT and ex.id != path.stem:
        raise _err(str(path), "id", f"'{ex.id}' differs from the file name", f"use id: {path.stem}")
    return ex


def ids() -> list[str]:
    return sorted(p.stem for p in ROOT.glob("*.yaml"))
