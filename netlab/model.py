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
import datetime
import os
import re
import reprlib
import stat
import typing
import unicodedata
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any

import yaml

from . import naming
from .encap import UNDERLAY_MTU_MAX
from .errors import LabFileError, NetlabError

LAB_FIELDS = ("description", "datapath", "nodes", "pods", "underlay", "pod_cidr", "options")
UNDERLAY_FIELDS = ("cidr", "mtu", "racks")
MAX_NODES = 65_536  # a sanity bound; the real limits are the CIDRs, the neighbour table and memory
MAX_PODS = 1000  # the largest any datapath takes (docker-bridge); each datapath has its own max_pods
MAX_RACKS = 4

# Bounds on what a lab file may be, so that a hostile or broken one is refused in bounded time and
# memory before anything is built. A real lab file is a few hundred bytes, about 30 YAML nodes,
# two levels deep, without anchors or tags; these limits are far above that and far below harm.
MAX_FILE_BYTES = 1 << 20  # 1 MiB
MAX_YAML_NODES = 2000
MAX_DEPTH = 10
MAX_SCALAR = 4096  # characters in one YAML value
MAX_DESCRIPTION = 300
SHOWN = 40  # characters of a user value that a message may echo
SHOWN_PATH = 100  # a path is echoed by its tail, which names the file

#: Networks no underlay or pod CIDR may touch: the kernel gives them meanings of their own
#: (loopback, link-local, multicast) or refuses them as unicast interface addresses.
RESERVED = (
    (IPv4Network("0.0.0.0/8"), "'this network' 0.0.0.0/8"),
    (IPv4Network("127.0.0.0/8"), "loopback 127.0.0.0/8"),
    (IPv4Network("169.254.0.0/16"), "link-local 169.254.0.0/16"),
    (IPv4Network("224.0.0.0/4"), "multicast 224.0.0.0/4"),
    (IPv4Network("240.0.0.0/4"), "reserved 240.0.0.0/4"),
)


def shown(value: object, limit: int = SHOWN) -> str:
    """A user value as a message may echo it: one line, at most ``limit`` characters.

    Messages must stay one line and short whatever the input was (a 1 MB string, a newline in
    a file name, a 5000-digit integer whose ``str()`` Python refuses), so every echo goes here."""
    if isinstance(value, str):
        text = value[: limit * 4]
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        text = f"<a {value.bit_length()}-bit integer>"  # str() of a 5000-digit int raises
    elif isinstance(value, datetime.date):  # YAML 1.1 reads 2024-01-01 as a date
        text = value.isoformat()
    else:
        r = reprlib.Repr()
        r.maxstring = r.maxother = r.maxlong = limit
        try:
            text = r.repr(value)
        except Exception:  # a repr that fails (huge ints inside a list) must not hide the real error
            text = f"<{type(value).__name__}>"
    text = _escaped(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _escaped(text: str) -> str:
    """Control characters and line separators as escapes, so a message stays one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def shown_path(path: object) -> str:
    """A path for a message: its tail if it is long (the file name is what tells files apart)."""
    text = _escaped(str(path)[-SHOWN_PATH * 4:])
    return text if len(text) <= SHOWN_PATH else "..." + text[-(SHOWN_PATH - 3):]


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
    source: str = field(default="", repr=False, compare=False)  # the lab file's text, as read

    @property
    def src(self) -> str:
        """The lab file as error messages name it (its tail, one line)."""
        return shown_path(self.file)

    @property
    def lab_file_name(self) -> str:
        return self.file.stem


def labs_dir() -> Path:
    """netlab's own lab files (``labs/`` of the checkout)."""
    return Path(__file__).resolve().parent.parent / "labs"


def labs_dirs() -> list[Path]:
    """Where lab names are looked up, in order: the directories of ``NETLAB_LABS`` (a search path,
    ``:``-separated, as PATH is), then netlab's own ``labs/``, so a user's labs add to netlab's
    instead of hiding them; a user's lab of the same name comes first."""
    env = os.environ.get("NETLAB_LABS", "")
    return [Path(d) for d in env.split(":") if d] + [labs_dir()]


def available() -> list[Path]:
    """Every lab file by name, the first of each name along :func:`labs_dirs`."""
    found: dict[str, Path] = {}
    for d in labs_dirs():
        try:
            files = sorted(d.glob("*.yaml"))
        except OSError:
            continue
        for p in files:
            found.setdefault(p.stem, p)
    return sorted(found.values(), key=lambda p: p.stem)


def _looks_like_path(lab: str) -> bool:
    """``./x``, ``/tmp/x.yaml``, ``x.yaml``: the user means a file, not a lab name."""
    return "/" in lab or lab.startswith(".") or lab.endswith((".yaml", ".yml"))


def _exists(p: Path) -> bool:
    try:
        os.stat(p)
    except (OSError, ValueError):
        return False
    return True


def find(lab: str) -> Path:
    """A lab by name (``vxlan`` -> labs/vxlan.yaml) or by path to a lab file.

    Something that looks like a path is only ever a path: a missing one is "file not found",
    not a list of lab names that the user did not ask for."""
    names = ", ".join(x.stem for x in available()) or "none"
    if not isinstance(lab, str) or not lab or "\0" in lab:
        raise LabFileError(f"lab {shown(lab)!r} is neither a lab name nor a path",
                           f"choose one of: {names} (or give a path to a .yaml lab file)")
    p = Path(lab)
    if _looks_like_path(lab):
        if _exists(p):
            return p
        raise LabFileError(f"{shown_path(lab)}: file not found",
                           f"check the path, or give a lab name: {names}")
    for d in labs_dirs():
        candidate = d / f"{lab}.yaml"
        if _exists(candidate):
            return candidate
    raise LabFileError(f"unknown lab {shown(lab)!r}", f"choose one of: {names} (or give a path to a .yaml lab file)")


# -- reading the file ---------------------------------------------------------------------------

def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "not a regular file"


def _not_regular(src: str, mode: int) -> LabFileError:
    return LabFileError(f"{src}: is {_file_kind(mode)}, not a lab file",
                        "give the path of a regular .yaml file (or a lab name from 'netlab list')")


def read_text(path: Path, src: str) -> str:
    """The lab file's text, refusing what is not a small regular UTF-8 file.

    The type is checked with stat *before* opening, because opening a FIFO blocks until a
    writer appears and opening some devices acts on them; the open is non-blocking and the
    fstat repeated, in case the path was swapped in between. At most MAX_FILE_BYTES are read."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(src, st.st_mode)
        if st.st_size > MAX_FILE_BYTES:
            raise LabFileError(f"{src}: is {st.st_size} bytes; a lab file is at most {MAX_FILE_BYTES}",
                               "give the path of a lab file (a few hundred bytes of YAML)")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise _not_regular(src, mode)
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise LabFileError(f"{src}: file not found", "check the path") from None
    except OSError as e:
        raise LabFileError(f"{src}: cannot read it ({e.strerror or type(e).__name__})",
                           "check the path and its permissions") from None
    if len(data) > MAX_FILE_BYTES:
        raise LabFileError(f"{src}: is larger than {MAX_FILE_BYTES} bytes", "give the path of a lab file")
    data = data.removeprefix(b"\xef\xbb\xbf")  # a BOM some editors write; offsets below count after it
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise LabFileError(f"{src}: is not UTF-8 text (byte 0x{data[e.start]:02x} on line {line})",
                           "save the lab file as UTF-8 text") from None


# -- YAML, screened ------------------------------------------------------------------------------

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when there is one: fast


class _Refused(Exception):
    """Something the YAML may say but a lab file may not (an alias, a duplicate key, …)."""

    def __init__(self, line: int, what: str, fix: str) -> None:
        super().__init__(what)
        self.line, self.what, self.fix = line, what, fix


def _line(obj: Any) -> int:
    mark = getattr(obj, "start_mark", None) or getattr(obj, "problem_mark", None)
    return mark.line + 1 if mark is not None else 0


class _Loader(_BaseLoader):
    """PyYAML's safe loader, except that a key given twice is an error (PyYAML keeps the last
    one silently, so a typo'd second ``nodes:`` would win without a word)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict:
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused(_line(key_node), "YAML merge keys (<<) are not allowed in a lab file",
                               "write the fields out")
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:
                raise _Refused(_line(key_node), "a key is a list or a mapping",
                               "keys are field names such as 'nodes'") from None
            if first is not None:
                raise _Refused(_line(key_node), f"duplicate key {shown(key)!r} (first on line {first})",
                               "give each field once")
            seen[key] = _line(key_node)
        return super().construct_mapping(node, deep=deep)


def _screen(text: str) -> None:
    """Walk the YAML events (libyaml, lazily) and refuse, before anything is built from them,
    what could make loading unbounded or ambiguous: aliases and anchors (an alias bomb expands
    to gigabytes from a few lines), explicit tags, more than one document, nesting deeper than
    MAX_DEPTH, more than MAX_YAML_NODES values, one value longer than MAX_SCALAR characters."""
    depth = count = docs = 0
    for ev in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(ev, yaml.AliasEvent):
            raise _Refused(_line(ev), f"YAML alias *{shown(ev.anchor)} is not allowed in a lab file",
                           "write the value out instead of referring to an anchor")
        if isinstance(ev, yaml.DocumentStartEvent):
            docs += 1
            if docs > 1:
                raise _Refused(_line(ev), "more than one YAML document", "keep one document (no second '---')")
        if not isinstance(ev, yaml.NodeEvent):
            if isinstance(ev, yaml.CollectionEndEvent):
                depth -= 1
            continue
        _screen_node(ev, depth)
        count += 1
        if count > MAX_YAML_NODES:
            raise _Refused(_line(ev), f"more than {MAX_YAML_NODES} YAML values", "a lab file has a few dozen")
        if isinstance(ev, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _Refused(_line(ev), f"nested deeper than {MAX_DEPTH} levels",
                               "a lab file has two levels (underlay: and options: hold plain values)")


def _screen_node(ev: Any, depth: int) -> None:
    if ev.anchor is not None:
        raise _Refused(_line(ev), f"YAML anchor &{shown(ev.anchor)} is not allowed in a lab file",
                       "remove the anchor and write each value out")
    if getattr(ev, "tag", None) is not None:
        raise _Refused(_line(ev), f"YAML tag {shown(ev.tag)} is not allowed in a lab file", "remove the tag")
    if isinstance(ev, yaml.ScalarEvent) and len(ev.value) > MAX_SCALAR:
        raise _Refused(_line(ev), f"a value of {len(ev.value)} characters (at most {MAX_SCALAR})",
                       "shorten it")


def _yaml_problem(e: yaml.YAMLError, text: str) -> str:
    if isinstance(e, yaml.reader.ReaderError):
        char = e.character if isinstance(e.character, int) else ord(str(e.character)[:1] or "\0")
        line = text.count("\n", 0, max(0, int(e.position))) + 1
        return f"at line {line}: {shown(e.reason, 60)} (U+{char:04X})"
    where = f"line {_line(e)}" if _line(e) else "somewhere"
    return f"at {where}: {shown(getattr(e, 'problem', None) or e, 80)}"


def parse_yaml(text: str, src: str) -> Any:
    """The document, or a LabFileError naming the line. Screened first (see :func:`_screen`),
    so the load itself is bounded; values that YAML 1.1 resolves but Python cannot build (a date
    like 2024-02-30, a 5000-digit integer) are refused rather than raised."""
    try:
        _screen(text)
        return yaml.load(text, Loader=_Loader)
    except _Refused as e:
        raise LabFileError(f"{src}: line {e.line}: {e.what}", e.fix) from None
    except yaml.YAMLError as e:
        raise LabFileError(f"{src}: YAML syntax error {_yaml_problem(e, text)}",
                           "fix the YAML (indentation, colons, quotes)") from None
    except (ValueError, OverflowError, TypeError) as e:
        raise LabFileError(f"{src}: a value cannot be read ({type(e).__name__}: {shown(str(e), 60)})",
                           "quote it if it is text, or fix the number or date") from None


# -- fields -------------------------------------------------------------------------------------

def _err(src: str, fieldname: str, msg: str, fix: str = "edit the lab file or the override") -> LabFileError:
    return LabFileError(f"{src}: {fieldname}: {msg}", fix)


_INT_TEXT = re.compile(r"\s*[+-]?[0-9]{1,18}\s*", re.ASCII)


def _int(src: str, name: str, value: Any, lo: int, hi: int) -> int:
    """An integer in [lo, hi]; a string of ASCII digits counts (``-o vni=5``, ``nodes: "3"``)."""
    if isinstance(value, str) and _INT_TEXT.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _err(src, name, f"must be an integer from {lo} to {hi} (got {shown(value)})")
    if not lo <= value <= hi:
        raise _err(src, name, f"must be from {lo} to {hi} (got {shown(value)})")
    return value


def _net(src: str, name: str, value: Any, max_prefix: int) -> IPv4Network:
    """An IPv4 network written as text; IPv6 gets its own answer, since it is a real network
    that netlab's datapaths (all IPv4 here) cannot build."""
    example = "like 10.244.0.0/16"
    if not isinstance(value, str) or len(value) > 60:
        raise _err(src, name, f"must be an IPv4 network {example} (got {shown(value)})")
    try:
        net = IPv4Network(value.strip(), strict=True)
    except ValueError as e:
        try:
            IPv6Network(value.strip(), strict=False)
        except ValueError:
            raise _err(src, name, f"must be an IPv4 network {example} ({shown(str(e), 80)})") from None
        raise _err(src, name, f"{shown(value)} is IPv6; netlab's datapaths are IPv4 only",
                   f"use an IPv4 network {example}") from None
    if net.prefixlen > max_prefix:
        raise _err(src, name, f"{net} is too small: the prefix must be /{max_prefix} or shorter")
    return net


def _check_reserved(src: str, name: str, first: int, size: int) -> None:
    """The addresses [first, first + size) stay out of every RESERVED network and below 2**32."""
    last = first + size - 1
    for net, what in RESERVED:
        lo, hi = int(net.network_address), int(net.broadcast_address)
        if first <= hi and lo <= last:
            raise _err(src, name, f"reaches into {what}, which the kernel reserves",
                       "use private space such as 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16")
    if last > 0xFFFFFFFF:
        raise _err(src, name, "runs past 255.255.255.255", "use private space such as 10.0.0.0/8")


def _mapping(src: str, name: str, value: Any, allowed: tuple[str, ...]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _err(src, name or "the lab file", f"must be a mapping with keys {', '.join(allowed)} "
                   f"(got {type(value).__name__} {shown(value, 24)})")
    for k in value:
        if k not in allowed:
            where = f"{name}.{shown(k)}" if name else shown(k)
            raise _err(src, where, f"unknown field; allowed: {', '.join(allowed)}")
    return value


def _option_value(src: str, name: str, value: Any, base: type, meta: Any) -> Any:
    if base is int:
        return _int(src, name, value, meta.get("min", 0), meta.get("max", 2**31))
    if base is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            value = value.lower() in ("true", "yes", "on")
        if not isinstance(value, bool):
            raise _err(src, name, f"must be true or false (got {shown(value)})")
        return value
    if not isinstance(value, str) or len(value) > 200:
        raise _err(src, name, f"must be a short text (got {shown(value)})")
    return value


def parse_options(src: str, options_cls: type, raw: dict) -> Any:
    """Check ``options`` against a datapath's Options dataclass (types, ranges, choices)."""
    fields = {f.name: f for f in dataclasses.fields(options_cls)}
    raw = _mapping(src, "options", raw, tuple(fields))
    hints = typing.get_type_hints(options_cls)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        f = fields[key]
        t = hints[key]
        meta = f.metadata
        name = f"options.{key}"
        if value is None and type(None) in typing.get_args(t):
            values[key] = None
            continue
        base = next((a for a in typing.get_args(t) if a is not type(None)), t)
        values[key] = _option_value(src, name, value, base, meta)
        if "choices" in meta and values[key] not in meta["choices"]:
            raise _err(src, name, f"must be one of {', '.join(map(str, meta['choices']))} (got {shown(value)})")
    return options_cls(**values)


_DATAPATH_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}", re.ASCII)


def _datapath(src: str, value: Any) -> Any:
    """The datapath module a lab names; only a plausible module name is ever imported."""
    from .datapaths import get as get_datapath, names

    if value is None:
        raise _err(src, "datapath", "missing", "name a datapath, e.g. 'datapath: flannel-vxlan'")
    if not isinstance(value, str) or not _DATAPATH_NAME.fullmatch(value):
        raise _err(src, "datapath", f"{shown(value)} is not a datapath name", f"use one of: {', '.join(names())}")
    return get_datapath(value, src)


def _description(src: str, value: Any, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise _err(src, "description", f"must be text (got {type(value).__name__} {shown(value, 24)})",
                   "quote it: description: \"...\"")
    text = value.strip()
    if len(text) > MAX_DESCRIPTION:
        raise _err(src, "description", f"is {len(text)} characters long; at most {MAX_DESCRIPTION}", "shorten it")
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text):  # what would break the line
        raise _err(src, "description", "must be one line of text", "remove line breaks and control characters")
    return text


def _instance(name: str | None, path: Path) -> str:
    """The instance name: ``--name`` if given (``''`` is given, and refused), else the file's stem."""
    instance = path.stem if name is None else name
    try:
        return naming.check_instance(instance)
    except NetlabError as e:
        fix = e.fix if name is not None else f"{e.fix}; or give one with --name"
        raise LabFileError(e.what, fix) from None


def _apply_overrides(doc: dict, overrides: dict) -> None:
    for key, value in overrides.items():
        if value is None:
            continue
        if key in UNDERLAY_FIELDS:
            doc["underlay"][key] = value
        elif key in LAB_FIELDS:
            doc[key] = value
        else:
            raise LabFileError(f"override {shown(key)}: unknown field",
                               f"allowed: {', '.join(LAB_FIELDS + UNDERLAY_FIELDS)}")


def _underlay(src: str, ul: dict) -> Underlay:
    underlay = Underlay(
        cidr=_net(src, "underlay.cidr", ul.get("cidr", "192.168.100.0/24"), 28),
        mtu=_int(src, "underlay.mtu", ul.get("mtu", 1500), 1280, UNDERLAY_MTU_MAX),
        racks=_int(src, "underlay.racks", ul.get("racks", 1), 1, MAX_RACKS),
    )
    first = int(underlay.cidr.network_address)
    _check_reserved(src, "underlay.cidr", first, underlay.cidr.num_addresses * underlay.racks)
    return underlay


def load(lab: str, name: str | None = None, overrides: dict | None = None, text: str | None = None) -> Lab:
    """Read and validate a lab file; ``overrides`` are CLI values for top-level fields,
    ``underlay.*`` keys and ``options`` (a dict).

    ``text`` is the file's content as it was when a lab came up (recorded in its state): the
    model, and so the plan, of a running lab is rebuilt from what was built, not from a lab file
    that may have been edited since. ``lab`` then only names the file."""
    path = find(lab) if text is None else Path(lab)
    src = shown_path(path)
    source = read_text(path, src) if text is None else text
    doc = parse_yaml(source, src)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise LabFileError(f"{src}: the lab file must be a YAML mapping (got {type(doc).__name__})",
                           "start from labs/vxlan.yaml")
    _mapping(src, "", doc, LAB_FIELDS)
    overrides = dict(overrides or {})
    opt_over = overrides.pop("options", {}) or {}
    if not isinstance(opt_over, dict):
        raise LabFileError(f"override options: must be a mapping (got {type(opt_over).__name__})", "pass KEY=VALUE pairs")
    doc = dict(doc)
    doc["underlay"] = dict(_mapping(src, "underlay", doc.get("underlay"), UNDERLAY_FIELDS))
    raw_options = doc.get("options")
    options = {} if raw_options is None else dict(_options_mapping(src, raw_options))
    _apply_overrides(doc, overrides)
    dp = _datapath(src, doc.get("datapath"))
    instance = _instance(name, path)
    underlay = _underlay(src, doc["underlay"])
    options.update(opt_over)
    pod_cidr = _net(src, "pod_cidr", doc.get("pod_cidr", dp.default_pod_cidr), 24)
    _check_reserved(src, "pod_cidr", int(pod_cidr.network_address), pod_cidr.num_addresses)
    model = Lab(
        name=instance,
        file=path,
        datapath=dp.name,
        description=_description(src, doc.get("description"), dp.summary),
        nodes=_int(src, "nodes", doc.get("nodes", 2), dp.min_nodes, dp.max_nodes),
        pods=_int(src, "pods", doc.get("pods", 2), 0, dp.max_pods),
        underlay=underlay,
        pod_cidr=pod_cidr,
        options=parse_options(src, dp.Options, options),
        source=source,
        overrides={k: v for k, v in {**overrides, "options": opt_over}.items() if v is not None},
    )
    _check_addressing(src, model)
    dp.validate(model)
    return model


def _options_mapping(src: str, value: Any) -> dict:
    """``options:`` must be a mapping; its keys are checked later against the datapath's Options."""
    if not isinstance(value, dict):
        raise _err(src, "options", f"must be a mapping of the datapath's options "
                   f"(got {type(value).__name__} {shown(value, 24)})", "write it like 'options: {vni: 1}'")
    return value


def _check_addressing(src: str, lab: Lab) -> None:
    """Checks every datapath shares: the underlay holds the nodes, nothing overlaps."""
    per_rack = -(-lab.nodes // lab.underlay.racks)
    usable = lab.underlay.cidr.num_addresses - 12  # .0, .1 gateway, .2-.10 spare, broadcast
    if per_rack > usable:
        raise _err(src, "underlay.cidr",
                   f"{lab.underlay.cidr} is too small for {per_rack} nodes per rack (nodes are .11 and up)",
                   "use a larger underlay (a /24 holds 243 nodes, a /20 4085: --underlay-cidr 172.16.0.0/20 "
                   "or underlay.cidr) or fewer nodes")
    underlay_all = [lab.underlay.rack_cidr(r) for r in range(1, lab.underlay.racks + 1)]
    for u in underlay_all:
        if u.overlaps(lab.pod_cidr):
            raise _err(src, "pod_cidr", f"{lab.pod_cidr} overlaps the underlay {u}",
                       "pick a pod CIDR and an underlay CIDR that do not overlap")
