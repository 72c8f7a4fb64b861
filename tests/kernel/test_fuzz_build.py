"""The "built, then torn down" half of the lab-file fuzz (issue 9), on the real kernel.

``tests/unit/test_fuzz_labfile.py`` checks that every generated lab file is either accepted
with a plan that builds, or refused in one line. Here the accepted ones are brought up for
real: 4 generated lab files per datapath (40 in all, nodes <= 3, pods <= 2), each up under a
random-suffix name, checked against the kernel, torn down, and nothing of it left. A datapath
this kernel cannot run (calico-ipip without the ipip link kind) is not skipped: up must refuse it
with the one-line KernelFeatureError before creating anything.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings

from netlab import api, datapaths, model
from netlab.errors import ApplyError, KernelFeatureError, NetlabError
from netlab.kernel import probe
from tests.helpers import residue, root_snapshot, unique_name
from tests.unit.test_fuzz_labfile import DATAPATHS, clean_doc, render

pytestmark = pytest.mark.kernel

PER_DATAPATH = 4
TOTAL_SECONDS = 180
_started: list[float] = []
_seen: Counter = Counter()


def missing_kinds(dp: str) -> list[str]:
    return [k for k in datapaths.get(dp).requires if probe.link_kind(k) is not None]


def one_line(e: NetlabError) -> str:
    msg = str(e)
    assert len(msg.splitlines()) == 1 and " — " in msg, msg
    return msg


def refusal(path: Path, e: ApplyError) -> str:
    """A kernel refusal is acceptable only as a lesson the datapath explains (host-gw across
    racks) ; any other is a bug this fuzz found."""
    lab = model.load(str(path), name="fz")
    if datapaths.get(lab.datapath).explain_refusal(lab, e.obj, e.errno) is not None:
        return "kernel-refused"
    raise AssertionError(f"unexpected kernel refusal: {e}")


def bring_up_and_down(path: Path) -> str:
    """'built' (up, verified, down, nothing left), 'kernel-refused' (the kernel said no and up rolled
    back, as host-gw across racks must) or 'unsupported' (a link kind
    this kernel lacks)."""
    name = unique_name("fz")
    try:
        handle = api.up(str(path), name=name)
    except KernelFeatureError as e:
        one_line(e)
        assert residue(name) == [], residue(name)
        return "unsupported"
    except ApplyError as e:
        one_line(e)
        assert residue(name) == [], residue(name)
        return refusal(path, e)
    try:
        report = handle.verify()
        assert report.ok, report
    finally:
        handle.down()
    assert residue(name) == [], residue(name)
    return "built"


@pytest.fixture(scope="module")
def root_before():
    before = root_snapshot()
    _started.append(time.monotonic())
    yield before
    assert root_snapshot() == before
    # the whole module stays bounded on a shared 2-core machine
    assert time.monotonic() - _started[0] < TOTAL_SECONDS, f"{time.monotonic() - _started[0]:.0f}s, {_seen}"


@pytest.mark.parametrize("dp", DATAPATHS)
def test_generated_lab_files_build_and_leave_nothing(tmp_path, dp, root_before):
    path = tmp_path / "lab.yaml"
    unsupported = missing_kinds(dp)
    outcomes: Counter = Counter()

    @settings(max_examples=PER_DATAPATH, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(doc=clean_doc(dp, max_nodes=3, max_pods=2))
    def case(doc: dict) -> None:
        path.write_text(render(doc))
        try:
            model.load(str(path), name="fz")
        except NetlabError as e:  # refused in one line: the unit fuzz's half, not this test's
            one_line(e)
            assume(False)
        outcomes[bring_up_and_down(path)] += 1

    case()
    _seen.update({f"{dp}:{k}": v for k, v in outcomes.items()})
    if unsupported:
        assert set(outcomes) == {"unsupported"}, (dp, unsupported, outcomes)
    else:
        assert outcomes["built"] >= 1, (dp, outcomes)
