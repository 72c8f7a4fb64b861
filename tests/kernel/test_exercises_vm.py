"""The exercises that need a kernel feature minimal kernels lack (issue 13): the calico-ipip ones
(ipip, from the lab's datapath) and the netem ones (``requires: [netem]``). Each is validated end
to end like every other exercise (tests/kernel/test_exercises.py, which leaves these to this
file): the fault breaks the check, the exercise's workaround restores the traffic but not the
check, the solution passes, a rebuilt lab does not, nothing is left.

Where this kernel lacks the feature, the VM pass (``python -m tests.vm.tier``) runs these tests
on the distribution's stock kernel, under QEMU's emulator on machines without KVM, where a lab is
5-10x slower than on the host and the whole pass has a budget (tests/vm/tier.py). So in the VM
each exercise runs one seed, the first of ``run.seeds_of`` that picks its last variant (for the
exercises here the one with more moving parts: a prio qdisc and a u32 filter, the ICMP dropped in
the pod, a next hop replaced rather than a route deleted), not the three or more seeds that
``netlab exercise validate`` runs. Measured under TCG (2 vCPUs, the host otherwise busy): every
seed, 16 of them, took 9 minutes one after the other; in pytest (four at a time, collection
included), one seed per variant (9) took 185 s, one per exercise (5) 134 s, of which 99 s
validating, and 217 s while other work loaded the host.
What is cut is the other variants and var combinations, which ``netlab vm run -- netlab
exercise validate exercises/<id>.yaml`` checks in full. On a kernel that has the features
(outside the VM), every seed runs.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from netlab.exercises import run
from netlab.exercises.spec import Exercise, ids, load
from tests.vm import features

pytestmark = pytest.mark.kernel

IN_VM = os.environ.get("NETLAB_IN_VM") == "1"  # set by `netlab vm run` inside the stock-kernel VM
PARALLEL = 4  # most of a validation is waiting (BGP, probes that must time out); labs are independent


def needs(ex: Exercise) -> list[str]:
    """The features (of those tests are marked with) that an exercise's lab and ``requires`` need."""
    return sorted(set(ex.requires + tuple(features.lab_features(ex.lab))) & set(features.FEATURES))


VM_IDS = [i for i in ids() if needs(load(i))]


def seeds(ex: Exercise) -> list[int] | None:
    """Every seed validate would run (None), or in the VM one: the first that picks the last variant."""
    if not IN_VM:
        return None
    last = ex.variants[-1].name
    return [next(seed for seed in run.seeds_of(ex) if run.choose(ex, seed)[0].name == last)]


@pytest.fixture(scope="module")
def validations(request, tmp_path_factory):
    """The selected exercises of this module validated, PARALLEL at a time, under a private state
    directory (validate gives every lab a random name)."""
    selected = [item.callspec.params["ident"] for item in request.session.items
                if item.module is request.module and hasattr(item, "callspec")]
    old = os.environ.get("NETLAB_STATE_DIR")
    os.environ["NETLAB_STATE_DIR"] = str(tmp_path_factory.mktemp("exercises-vm") / "state")

    def one(ident: str) -> list[str]:
        try:
            return run.validate(ident, log=lambda line: None, seeds=seeds(load(ident)))
        except Exception as e:  # reported by the exercise's own test, not lost in the pool
            return [f"{type(e).__name__}: {e}"]

    try:
        with ThreadPoolExecutor(PARALLEL) as pool:
            yield dict(zip(selected, pool.map(one, selected), strict=True))
    finally:
        if old is None:
            os.environ.pop("NETLAB_STATE_DIR", None)
        else:
            os.environ["NETLAB_STATE_DIR"] = old


@pytest.mark.parametrize("ident", [pytest.param(i, marks=[getattr(pytest.mark, features.marker(f))
                                                          for f in needs(load(i))]) for i in VM_IDS])
def test_exercise_validates(ident, validations):
    assert validations[ident] == []

