"""Property-based fuzz of lab files (issue 9): lab files generated from the schema, then mutated.

The schema is netlab's own: the top-level fields (``model.LAB_FIELDS``), the underlay's
(``model.UNDERLAY_FIELDS``) and each datapath's Options dataclass with the min/max/choices in its
field metadata, so a new datapath or option is fuzzed without editing this file. Mutations: wrong
types, out-of-range numbers, CIDRs of every prefix length and both families, unknown and duplicate
keys, anchors and aliases, deep nesting, binary junk, huge strings, CLI-style overrides.

Every case must end one of two ways: ``model.load`` returns a Lab whose plan builds, or it raises a
NetlabError whose message is one short printable line. Anything else (a traceback, a hang, a
message that echoes a megabyte) is a bug this test found. The run is reproducible (derandomized,
no example database) and bounded in time; ``tests/kernel/test_fuzz_build.py`` builds the
accepted half on the kernel.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import time
import typing
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from netlab import api, datapaths, model
from netlab.errors import NetlabError

EXAMPLES = int(os.environ.get("NETLAB_FUZZ_EXAMPLES", "500"))  # CI runs 500; raise it for a deeper local run
TOTAL_SECONDS = 120 * max(1, EXAMPLES // 500)  # the whole run; about 5 s on an idle 2-core machine
CASE_SECONDS = 3.0  # one case, loaded machine included
MAX_MESSAGE = 300
MAX_NODES = 4  # keeps plans small: the fuzz is about input, not scale
MAX_PODS = 3

DATAPATHS = datapaths.names()


# -- the schema --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class OptionField:
    name: str
    base: type
    optional: bool
    meta: dict


def option_fields(dp_name: str) -> list[OptionField]:
    """A datapath's options, read from its Options dataclass as model.parse_options reads them."""
    cls = datapaths.get(dp_name).Options
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        args = typing.get_args(hints[f.name])
        base = next((a for a in args if a is not type(None)), hints[f.name])
        out.append(OptionField(f.name, base, type(None) in args, dict(f.metadata)))
    return out


# -- values ------------------------------------------------------------------------------------------

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(-5, 5), max_size=2), st.dates(),
    st.sampled_from(["", "yes", "off", "0x10", "1_000", "0o17", "1:30", "~", "null", ".inf", "-.nan", "1e3"]),
)


@st.composite
def ipv4_cidr(draw, prefixes: st.SearchStrategy[int] = st.integers(0, 32), strict: bool = True) -> str:
    prefix = draw(prefixes)
    addr = draw(st.integers(0, 2**32 - 1))
    if strict:
        addr &= (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return f"{ipaddress.IPv4Address(addr)}/{prefix}"


@st.composite
def ipv6_cidr(draw) -> str:
    prefix = draw(st.integers(0, 128))
    addr = draw(st.integers(0, 2**128 - 1)) & (((1 << 128) - 1) << (128 - prefix)) & ((1 << 128) - 1)
    return f"{ipaddress.IPv6Address(addr)}/{prefix}"


UNDERLAY_BASES = ("10.0.0.0", "192.168.100.0", "172.31.0.0", "10.9.0.0", "192.168.0.0")
POD_BASES = ("10.244.0.0", "172.17.0.0", "192.168.0.0", "100.64.0.0", "10.0.0.0")


@st.composite
def private_cidr(draw, lo: int, hi: int, bases: tuple[str, ...]) -> str:
    """A plausible network in private space. The underlay's and the pods' bases mostly differ
    (so most clean labs are valid and the build half runs) but can collide, as in real files."""
    base = draw(st.sampled_from(bases))
    prefix = draw(st.integers(lo, hi))
    return str(ipaddress.IPv4Network(f"{base}/{prefix}", strict=False))


def cidr(lo: int, hi: int, clean: bool = False, bases: tuple[str, ...] = POD_BASES) -> st.SearchStrategy[Any]:
    """Mostly plausible; also every size of both families, host bits set, reserved space, junk."""
    plausible = private_cidr(lo, hi, bases)
    if clean:
        return plausible
    return st.one_of(
        plausible, plausible, plausible,
        ipv4_cidr(), ipv4_cidr(strict=False), ipv6_cidr(),
        st.sampled_from(["127.0.0.0/8", "169.254.0.0/16", "0.0.0.0/0", "224.0.0.0/4", "240.0.0.0/4",
                         "255.255.255.255/32", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/8/8", "10.0.0", "::",
                         "fe80::/10", "10.0.0.0 /24", "010.000.000.000/24"]),
        JUNK,
    )


def int_value(lo: int, hi: int, small_hi: int | None = None, clean: bool = False) -> st.SearchStrategy[Any]:
    inside = st.integers(lo, min(hi, small_hi) if small_hi is not None else hi)
    if clean:
        return st.one_of(inside, inside.map(str))
    return st.one_of(inside, inside, inside, inside.map(str), st.integers(hi + 1, hi + 2**40),
                     st.integers(-2**40, lo - 1), JUNK)


def option_value(f: OptionField, clean: bool = False) -> st.SearchStrategy[Any]:
    if "choices" in f.meta:
        good = st.sampled_from(list(f.meta["choices"]))
        return good if clean else st.one_of(good, good, good, st.text(max_size=12), JUNK)
    if f.base is bool:
        good = st.one_of(st.booleans(), st.sampled_from(["yes", "no", "on", "off", "True"]))
        return good if clean else st.one_of(good, st.just("maybe"), JUNK)
    if f.base is int:
        lo, hi = f.meta.get("min", 0), f.meta.get("max", 2**31)
        values = int_value(lo, hi, clean=clean)
        return st.one_of(values, st.none()) if f.optional else values
    return st.text(max_size=20) if clean else st.one_of(st.text(max_size=20), JUNK)


def description(clean: bool = False) -> st.SearchStrategy[Any]:
    words = st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=60)
    if clean:
        return words
    return st.one_of(words, st.text(max_size=60), st.integers(0, 10**6).map(lambda n: "x" * n), JUNK)


@st.composite
def underlay(draw, clean: bool = False) -> Any:
    if not clean and draw(st.integers(0, 15)) == 15:
        return draw(JUNK)
    ul = {}
    if draw(st.booleans()):
        ul["cidr"] = draw(cidr(20, 28, clean, UNDERLAY_BASES))
    if draw(st.booleans()):
        ul["mtu"] = draw(int_value(1280, 9000, clean=clean))
    if draw(st.booleans()):
        ul["racks"] = draw(int_value(1, model.MAX_RACKS, clean=clean))
    assert set(ul) <= set(model.UNDERLAY_FIELDS)
    return ul


@st.composite
def clean_doc(draw, dp: str | None = None, max_nodes: int = MAX_NODES, max_pods: int = MAX_PODS) -> dict:
    """A lab file as a dict, generated from the schema: each field present or not, every value of
    the right type and in range, so that only a combination can be wrong (overlapping networks,
    an MTU that does not fit the underlay, a port range that runs past 65535). ``dp`` fixes the
    datapath (the kernel fuzz gives each the same share of cases)."""
    dp = dp or draw(st.sampled_from(DATAPATHS))
    dpobj = datapaths.get(dp)
    maybe = lambda: draw(st.booleans())  # noqa: E731
    doc: dict = {"datapath": dp}
    if maybe():
        doc["description"] = draw(description(clean=True))
    # nodes and pods are always given: the defaults are fine, but small ranges keep plans fast
    doc["nodes"] = draw(int_value(dpobj.min_nodes, min(dpobj.max_nodes, max_nodes), clean=True))
    doc["pods"] = draw(int_value(0, max_pods, clean=True))
    if draw(st.integers(0, 3)):  # mostly: the default underlay overlaps Calico's default pool
        doc["underlay"] = draw(underlay(clean=True))
    if maybe():
        doc["pod_cidr"] = draw(cidr(14, 24, clean=True))
    fields = option_fields(dp)
    if fields and maybe():
        doc["options"] = {f.name: draw(option_value(f, clean=True)) for f in fields if maybe()}
    return doc


FIELD_MUTATIONS = ("type", "no-datapath", "datapath", "nodes", "pods", "underlay", "underlay-field", "cidr",
                   "pod_cidr", "options", "option", "unknown", "description")


@st.composite
def field_mutation(draw, doc: dict) -> None:
    """One field made wrong, in place: so each check of model.load is reached, not only the first."""
    kind = draw(st.sampled_from(FIELD_MUTATIONS))
    dp = doc.get("datapath")
    if kind == "type":
        doc[draw(st.sampled_from(model.LAB_FIELDS))] = draw(JUNK)
    elif kind == "no-datapath":
        doc.pop("datapath", None)
    elif kind == "datapath":
        doc["datapath"] = draw(st.one_of(st.sampled_from(["warp-drive", "Flannel-VXLAN", "cni", "flannel", "../x", "",
                                                          "a" * 41, "underlay"]), JUNK))
    elif kind in ("nodes", "pods"):
        lo, hi = (1, 200) if kind == "nodes" else (0, model.MAX_PODS)
        doc[kind] = draw(st.one_of(st.integers(hi + 1, 2**70), st.integers(-2**70, lo - 1), JUNK))
    elif kind == "underlay":
        doc["underlay"] = draw(st.one_of(underlay(), JUNK))
    elif kind == "underlay-field":
        ul = doc["underlay"] = dict(doc["underlay"]) if isinstance(doc.get("underlay"), dict) else {}
        key = draw(st.sampled_from(model.UNDERLAY_FIELDS))
        ul[key] = draw(st.one_of(JUNK, st.integers(-2**40, 2**40)))
    elif kind in ("cidr", "pod_cidr"):
        value = draw(cidr(0, 32))
        if kind == "cidr":
            doc["underlay"] = {**(doc["underlay"] if isinstance(doc.get("underlay"), dict) else {}), "cidr": value}
        else:
            doc["pod_cidr"] = value
    elif kind == "options":
        doc["options"] = draw(JUNK)
    elif kind == "option" and dp in DATAPATHS and option_fields(dp):
        f = draw(st.sampled_from(option_fields(dp)))
        opts = doc["options"] = dict(doc["options"]) if isinstance(doc.get("options"), dict) else {}
        opts[f.name] = draw(option_value(f))
    elif kind == "unknown":
        where = draw(st.sampled_from(["top", "underlay", "options"]))
        key = draw(st.one_of(st.text(min_size=1, max_size=12), st.integers(), st.sampled_from(["colour", "Nodes"])))
        target = doc if where == "top" else doc.setdefault(where, {})
        if isinstance(target, dict):
            target[key] = draw(JUNK)
    elif kind == "description":
        doc["description"] = draw(description())


@st.composite
def lab_doc(draw) -> dict:
    """A third of the documents are left clean; the others get one or two wrong fields."""
    doc = draw(clean_doc())
    if draw(st.integers(0, 2)):
        for _ in range(draw(st.integers(1, 2))):
            draw(field_mutation(doc))
    return doc


# -- text mutations ------------------------------------------------------------------------------------

def render(doc: dict) -> str:
    return yaml.safe_dump(doc, default_flow_style=False, allow_unicode=True, sort_keys=False, width=1 << 20)


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip().removesuffix("...").strip()


@st.composite
def mutated(draw) -> bytes:
    """Rendered YAML, with zero or more mutations that a dict cannot express."""
    text = render(draw(lab_doc()))
    if draw(st.integers(0, 1)) == 0:  # half are left as the document made them
        return text.encode()
    for _ in range(draw(st.integers(0, 2))):
        text = draw(mutation(text))
    data = text.encode()
    if draw(st.integers(0, 11)) == 11:  # binary junk (hypothesis favours 0: keep it the common path)
        how = draw(st.sampled_from(["insert", "replace", "truncate", "only"]))
        junk = draw(st.binary(min_size=1, max_size=64))
        at = draw(st.integers(0, len(data)))
        data = {"insert": data[:at] + junk + data[at:], "replace": data[:at] + junk + data[at + len(junk):],
                "truncate": data[:at], "only": junk}[how]
    return data


@st.composite
def mutation(draw, text: str) -> str:
    kind = draw(st.sampled_from(["duplicate", "duplicate-nested", "anchor", "alias", "bomb", "deep-flow",
                                 "deep-block", "huge", "tag", "second-document", "char"]))
    if kind == "duplicate":
        key = draw(st.sampled_from(model.LAB_FIELDS))
        return text + f"{key}: {_flow(draw(JUNK))}\n"
    if kind == "duplicate-nested":
        return text + "underlay:\n  cidr: 10.1.0.0/24\n  cidr: 10.2.0.0/24\n"
    if kind == "anchor":
        return f"x-common: &common {_flow(draw(JUNK))}\n" + text
    if kind == "alias":
        return text + f"{draw(st.sampled_from(model.LAB_FIELDS))}: *common\n"
    if kind == "bomb":
        lines = ['l0: &l0 "lol"'] + [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10)]
        return text + "\n".join(lines) + "\ndescription: *l9\n"
    if kind == "deep-flow":
        n = draw(st.integers(2, 5000))
        return text + "options: " + "[" * n + "]" * n + "\n"
    if kind == "deep-block":
        n = draw(st.integers(2, 300))
        return text + "options:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(n))
    if kind == "huge":
        return text + f"description: {'y' * draw(st.integers(1000, 2_000_000))}\n"
    if kind == "tag":
        return text + f"pods: {draw(st.sampled_from(['!!str 2', '!!python/object:os.system x', '!!binary aGk=', '!x 1']))}\n"
    if kind == "second-document":
        return text + "---\n" + text
    at = draw(st.integers(0, len(text)))
    return text[:at] + draw(st.characters()) + text[at + 1:]


overrides = st.one_of(
    st.just({}), st.just({}), st.just({}), st.just({}),
    st.fixed_dictionaries({}, optional={
        "nodes": st.one_of(st.integers(1, MAX_NODES), st.integers(-5, 0), st.integers(201, 10**6)),
        "pods": st.integers(0, MAX_PODS),
        "racks": st.integers(-1, 6),
        "mtu": st.integers(0, 10_000),
        "options": st.dictionaries(st.sampled_from(["vni", "port", "mtu", "mode", "batch", "hold_time", "as_number",
                                                    "nat_outgoing", "host_port_base", "userland_proxy", "nope", ""]),
                                   st.one_of(st.integers(-10, 70000).map(str), st.text(max_size=8)), max_size=2),
    }),
)


# -- the property ------------------------------------------------------------------------------------

def outcome(path: Path, content: bytes, over: dict) -> str:
    """'built' or 'refused'; anything else raises, which is the bug the fuzz found."""
    path.write_bytes(content)
    t0 = time.monotonic()
    try:
        lab = model.load(str(path), name="fz", overrides=over)
    except NetlabError as e:
        msg = str(e)
        assert len(msg.splitlines()) == 1 and msg.isprintable(), repr(msg[:500])
        # bounded whatever the input: the (fixed, test-chosen) path aside, a message is short
        assert len(msg.replace(str(path), "<lab>")) < MAX_MESSAGE, msg
        assert " — " in msg, msg
        result = "refused"
    else:
        plan = api.build_plan(lab)
        assert plan.namespaces
        result = "built"
    assert time.monotonic() - t0 < CASE_SECONDS, f"{time.monotonic() - t0:.2f}s"
    return result


def test_every_generated_lab_file_is_built_or_refused_in_one_line(tmp_path):
    path = tmp_path / "lab.yaml"
    seen: Counter = Counter()
    built: Counter = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(content=mutated(), over=overrides)
    def case(content: bytes, over: dict) -> None:
        result = outcome(path, content, over)
        seen[result] += 1
        if result == "built":
            built[model.load(str(path), name="fz", overrides=over).datapath] += 1

    t0 = time.monotonic()
    case()
    elapsed = time.monotonic() - t0
    assert elapsed < TOTAL_SECONDS, f"{elapsed:.0f}s for {sum(seen.values())} cases"
    assert sum(seen.values()) >= EXAMPLES, seen
    # the generator is worth something only if it reaches both outcomes often
    assert seen["built"] >= EXAMPLES // 10 and seen["refused"] >= EXAMPLES // 4, seen
    assert len(built) >= len(DATAPATHS) - 2, built  # nearly every datapath (the next test: every one)


@pytest.mark.parametrize("dp", DATAPATHS)
def test_each_datapath_builds_from_clean_generated_files(tmp_path, dp):
    """Clean documents for one datapath: all are built or refused in one line, and some are built
    (a generator that only ever produced refusals would test nothing)."""
    path = tmp_path / "lab.yaml"
    seen: Counter = Counter()

    @settings(max_examples=30, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(doc=clean_doc(dp))
    def case(doc: dict) -> None:
        seen[outcome(path, render(doc).encode(), {})] += 1

    case()
    assert seen["built"] >= 1, seen


def test_the_schema_covers_every_datapath_and_field(tmp_path):
    assert len(DATAPATHS) >= 10
    assert {f.name for f in option_fields("flannel-vxlan")} == {"vni", "port", "mtu", "direct_routing"}
    assert any("choices" in f.meta for f in option_fields("flannel-udp"))
    # every shipped lab file (a copy: labs/ is never written) is one of the accepted cases
    for p in model.available():
        assert outcome(tmp_path / p.name, p.read_bytes(), {}) == "built", p


def test_json_is_yaml_too(tmp_path):
    """A lab file written as JSON (YAML 1.2's subset) is read like any other."""
    p = tmp_path / "j.yaml"
    doc = {"datapath": "flannel-vxlan", "nodes": 3, "underlay": {"cidr": "192.168.7.0/24"}}
    assert outcome(p, json.dumps(doc).encode(), {}) == "built"
