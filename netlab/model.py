"""Lab files -> a validated, typed model.

A lab file is a small YAML document::

    description: Flannel VXLAN backend: flannel.1, UDP 8472, /24 per node
    datapath: flannel-vxlan      # a module in netlab/datapaths/
    nodes: 2
    pods: 2                      # per node
    underlay: {cidr: 192.168.100.0/24, mtu: 1500, racks: 1}
    pod_cidr: 10.244.0.0/16
    options: {vni: 1, port: 8472}   # the datapath's own knobs, checked by its Options dataclass

Every error names the file, the field, what is allowed and what was given. CLI flags override
fields (``--nodes 3 --pods 2``, ``-o vni=5``) and are checked by the same code, so an override can
never produce a lab that a file could not.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import yaml

from . import naming
from .errors import LabFileError

LAB_FIELDS = ("description", "datapath", "nodes", "pods", "underlay", "pod_cidr", "options")
UNDERLAY_FIELDS = ("cidr", "mtu", "racks")
MAX_NODES = 200
MAX_PODS = 50
MAX_RACKS = 4


@dataclass(frozen=True)
class Underlay:
    """The node network. Rack r (1-based) uses the r-th block of ``cidr``'s size after it."""

    cidr: IPv4Network = IPv4Network("192.168.100.0/24")
    mtu: int = 1500
    racks: int = 1

    def rack_cidr(self, rack: int) -> IPv4Network:
        base = int(self.cidr.network_address) + (rack - 1) * self.cidr.num_addresses
        return IPv4Network((base, self.cidr.prefixlen))


@dataclass(frozen=True)
class Lab:
    """A validated lab: the input of every datapath's ``plan()``."""

    name: str  # the instance name: namespaces and /run/netlab/<name>
    file: Path
    datapath: str
    description: str
    nodes: int
    pods: int
    underlay: Underlay
    pod_cidr: IPv4Network
    options: Any  # the datapath's Options dataclass instance
    overrides: dict = field(default_factory=dict)

    @property
    def lab_file_name(self) -> str:
        return self.file.stem


def labs_dir() -> Path:
    import os

    env = os.environ.get("NETLAB_LABS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "labs"


def available() -> list[Path]:
    return sorted(labs_dir().glob("*.yaml"))


def find(lab: str) -> Path:
    """A lab by name (``vxlan`` -> labs/vxlan.yaml) or by path to a YAML file."""
    p = Path(lab)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    candidate = labs_dir() / f"{lab}.yaml"
    if candidate.exists():
        return candidate
    names = ", ".join(x.stem for x in available()) or "none"
    raise LabFileError(f"unknown lab '{lab}'", f"choose one of: {names} (or give a path to a .yaml lab file)")


def _err(src: str, fieldname: str, msg: str, fix: str = "edit the lab file or the override") -> LabFileError:
    return LabFileError(f"{src}: {fieldname}: {msg}", fix)


def _int(src: str, name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        else:
            raise _err(src, name, f"must be an integer from {lo} to {hi} (got {value!r})")
    if not lo <= value <= hi:
        raise _err(src, name, f"must be from {lo} to {hi} (got {value})")
    return value


def _net(src: str, name: str, value: Any, max_prefix: int) -> IPv4Network:
    try:
        net = IPv4Network(str(value), strict=True)
    except ValueError as e:
        raise _err(src, name, f"must be an IPv4 network like 10.244.0.0/16 ({e})") from None
    if net.prefixlen > max_prefix:
        raise _err(src, name, f"{net} is too small: the prefix must be /{max_prefix} or shorter")
    return net


def _mapping(src: str, name: str, value: Any, allowed: tuple[str, ...]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _err(src, name, f"must be a mapping with keys {', '.join(allowed)}")
    for k in value:
        if k not in allowed:
            raise _err(src, f"{name}.{k}" if name else str(k), f"unknown field; allowed: {', '.join(allowed)}")
    return value


def parse_options(src: str, options_cls: type, raw: dict) -> Any:
    """Check ``options`` against a datapath's Options dataclass (types, ranges, choices)."""
    fields = {f.name: f for f in dataclasses.fields(options_cls)}
    raw = _mapping(src, "options", raw, tuple(fields))
    hints = typing.get_type_hints(options_cls)
    values = {}
    for key, value in raw.items():
        f = fields[key]
        t = hints[key]
        meta = f.metadata
        name = f"options.{key}"
        if value is None and type(None) in typing.get_args(t):
            values[key] = None
            continue
        base = next((a for a in typing.get_args(t) if a is not type(None)), t)
        if base is int:
            values[key] = _int(src, name, value, meta.get("min", 0), meta.get("max", 2**31))
        elif base is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
                value = value.lower() in ("true", "yes", "on")
            if not isinstance(value, bool):
                raise _err(src, name, f"must be true or false (got {value!r})")
            values[key] = value
        else:
            values[key] = str(value)
        if "choices" in meta and values[key] not in meta["choices"]:
            raise _err(src, name, f"must be one of {', '.join(map(str, meta['choices']))} (got {value!r})")
    return options_cls(**values)


def load(lab: str, name: str | None = None, overrides: dict | None = None) -> Lab:
    """Read and validate a lab file; ``overrides`` are CLI values for top-level fields,
    ``underlay.*`` keys and ``options`` (a dict)."""
    from .datapaths import get as get_datapath

    path = find(lab)
    src = str(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "somewhere"
        raise LabFileError(f"{src}: YAML syntax error at {where}: {getattr(e, 'problem', e)}",
                           "fix the YAML (indentation, colons, quotes)") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise LabFileError(f"{src}: the lab file must be a YAML mapping", "start from labs/vxlan.yaml")
    _mapping(src, "", doc, LAB_FIELDS)
    overrides = dict(overrides or {})
    opt_over = overrides.pop("options", {}) or {}
    doc = dict(doc)
    doc["underlay"] = dict(_mapping(src, "underlay", doc.get("underlay"), UNDERLAY_FIELDS))
    for key, value in overrides.items():
        if value is None:
            continue
        if key in UNDERLAY_FIELDS:
            doc["underlay"][key] = value
        elif key in LAB_FIELDS:
            doc[key] = value
        else:
            raise LabFileError(f"override {key}: unknown field", f"allowed: {', '.join(LAB_FIELDS + UNDERLAY_FIELDS)}")
    if "datapath" not in doc:
        raise _err(src, "datapath", "missing", "name a datapath, e.g. 'datapath: flannel-vxlan'")
    dp = get_datapath(str(doc["datapath"]), src)
    instance = name or path.stem
    if not naming.LAB_NAME_RE.match(instance):
        raise LabFileError(f"lab name '{instance}' is not allowed",
                           "use 1-24 characters: lowercase letters, digits and '-', starting with a letter")
    ul = doc["underlay"]
    underlay = Underlay(
        cidr=_net(src, "underlay.cidr", ul.get("cidr", "192.168.100.0/24"), 28),
        mtu=_int(src, "underlay.mtu", ul.get("mtu", 1500), 1280, 9000),
        racks=_int(src, "underlay.racks", ul.get("racks", 1), 1, MAX_RACKS),
    )
    options = dict(doc.get("options") or {})
    options.update(opt_over)
    model = Lab(
        name=instance,
        file=path,
        datapath=dp.name,
        description=str(doc.get("description", dp.summary)),
        nodes=_int(src, "nodes", doc.get("nodes", 2), dp.min_nodes, dp.max_nodes),
        pods=_int(src, "pods", doc.get("pods", 2), 0, MAX_PODS),
        underlay=underlay,
        pod_cidr=_net(src, "pod_cidr", doc.get("pod_cidr", dp.default_pod_cidr), 24),
        options=parse_options(src, dp.Options, options),
        overrides={k: v for k, v in {**overrides, "options": opt_over}.items() if v},
    )
    _check_addressing(src, model)
    dp.validate(model)
    return model


def _check_addressing(src: str, lab: Lab) -> None:
    """Checks every datapath shares: the underlay holds the nodes, nothing overlaps."""
    per_rack = -(-lab.nodes // lab.underlay.racks)
    usable = lab.underlay.cidr.num_addresses - 12  # .0, .1 gateway, .2-.10 spare, broadcast
    if per_rack > usable:
        raise _err(src, "underlay.cidr",
                   f"{lab.underlay.cidr} is too small for {per_rack} nodes per rack (nodes are .11 and up)",
                   "use a larger underlay (e.g. a /24 holds up to 243 nodes) or fewer nodes")
    underlay_all = [lab.underlay.rack_cidr(r) for r in range(1, lab.underlay.racks + 1)]
    for u in underlay_all:
        if u.overlaps(lab.pod_cidr):
            raise _err(src, "pod_cidr", f"{lab.pod_cidr} overlaps the underlay {u}",
                       "pick a pod CIDR and an underlay CIDR that do not overlap")
