"""What a lab file may say, for people and editors: ``netlab show`` and ``schema/lab.schema.json``.

The checks themselves live in :mod:`netlab.model` (every error names the file, the field and the
fix); this module describes the same fields, with the same bounds (read from the model's
constants and each datapath's ``Options`` dataclass and its field metadata), so the description
cannot drift from what is accepted. :func:`json_schema` is a JSON Schema (draft 2020-12) that an
editor (VS Code's YAML extension, for one) uses to complete and check a lab file as it is typed;
``tests/unit/test_labschema.py`` checks the committed file is what this module generates.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from . import datapaths, model
from .encap import UNDERLAY_MTU_MAX


@dataclass(frozen=True)
class FieldDoc:
    name: str
    kind: str  # integer, string, boolean, mapping
    default: Any
    what: str
    lo: int | None = None
    hi: int | None = None
    choices: tuple[Any, ...] = ()

    @property
    def bounds(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if self.lo is not None or self.hi is not None:
            return f"{self.lo if self.lo is not None else ''}..{self.hi if self.hi is not None else ''}"
        return ""


def lab_fields(dp: datapaths.Datapath | None = None) -> list[FieldDoc]:
    """The top-level fields and ``underlay.*``, with this datapath's node bounds when given."""
    return [
        FieldDoc("description", "string", dp.summary if dp else "", "one line, for netlab list",
                 hi=model.MAX_DESCRIPTION),
        FieldDoc("datapath", "string", None, "the datapath module (netlab/datapaths/)", choices=tuple(datapaths.names())),
        FieldDoc("nodes", "integer", 2, "number of nodes", dp.min_nodes if dp else 1, dp.max_nodes if dp else model.MAX_NODES),
        FieldDoc("pods", "integer", 2, "pods (containers) per node", 0, dp.max_pods if dp else model.MAX_PODS),
        FieldDoc("underlay.cidr", "string", "192.168.100.0/24", "the nodes' network (one per rack, consecutive)"),
        FieldDoc("underlay.mtu", "integer", 1500, "the underlay MTU", 1280, UNDERLAY_MTU_MAX),
        FieldDoc("underlay.racks", "integer", 1, "racks: switches behind one router", 1, model.MAX_RACKS),
        FieldDoc("pod_cidr", "string", dp.default_pod_cidr if dp else "10.244.0.0/16", "the pods' network"),
    ]


def option_fields(dp: datapaths.Datapath) -> list[FieldDoc]:
    """The datapath's own knobs (``options:``), from its Options dataclass."""
    hints = typing.get_type_hints(dp.Options)
    out = []
    for f in dataclasses.fields(dp.Options):
        t = hints[f.name]
        base = next((a for a in typing.get_args(t) if a is not type(None)), t)
        kind = {int: "integer", bool: "boolean", str: "string"}.get(base, "string")
        default = f.default if f.default is not dataclasses.MISSING else None
        meta = f.metadata
        out.append(FieldDoc(f.name, kind, default, str(meta.get("doc", "")), meta.get("min"), meta.get("max"),
                            tuple(meta.get("choices", ()))))
    return out


def _prop(f: FieldDoc) -> dict:
    p: dict[str, Any] = {"type": f.kind if f.kind != "mapping" else "object"}
    if f.kind == "integer":
        if f.lo is not None:
            p["minimum"] = f.lo
        if f.hi is not None:
            p["maximum"] = f.hi
    if f.kind == "string" and f.hi is not None:
        p["maxLength"] = f.hi
    if f.choices:
        p["enum"] = list(f.choices)
    if f.default is not None:
        p["default"] = f.default
    if f.what:
        p["description"] = f.what
    return p


def json_schema() -> dict:
    """A JSON Schema for lab files: the common fields, and per datapath (``if datapath is X``)
    the options it accepts, with their types, ranges and choices."""
    fields = {f.name: _prop(f) for f in lab_fields() if "." not in f.name}
    fields["underlay"] = {"type": "object", "additionalProperties": False, "properties": {
        f.name.split(".")[1]: _prop(f) for f in lab_fields() if f.name.startswith("underlay.")}}
    fields["options"] = {"type": "object", "description": "the datapath's own knobs"}
    per_dp = []
    for name in datapaths.names():
        dp = datapaths.get(name)
        opts = {f.name: _prop(f) for f in option_fields(dp)}
        per_dp.append({"if": {"properties": {"datapath": {"const": name}}},
                       "then": {"properties": {"options": {"type": "object", "additionalProperties": False,
                                                           "properties": opts}}}})
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "netlab-lab.schema.json",
            "title": "netlab lab file", "type": "object", "additionalProperties": False,
            "required": ["datapath"], "properties": fields, "allOf": per_dp}
