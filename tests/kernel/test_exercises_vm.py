"""The exercises that need a kernel feature minimal kernels lack (issue 13): the calico-ipip ones
(ipip, from the lab's datapath) and the netem ones (``requires: [netem]``). Each is validated end
to end like every other exercise (tests/kernel/test_exercises.py, which leaves these to this
file): the fault breaks the check, the exercise's workaround restores the traffic but not the
check, the solution passes, a rebuilt lab does not, nothing is left, and the root network
namespace is as it was.

Where this kernel lacks the feature, the VM pass (``python -m tests.vm.tier``) runs these tests
on the distribution's stock kernel, under QEMU's emulator on machines without KVM, where a lab is
5-10x slower than on the host and the whole pass has a budget (tests/vm/tier.py). Every seed of
``run.seeds_of`` runs there too, as on the host (at least 3 per exercise, every variant met):
validate builds each seed's lab twice (the rebuild is also the workaround's fresh start), and
the labs run PARALLEL at a time, since most of a validation is waiting.
"""

from __future__ import annotations

import os
import pytest

from netlab.exercises import run
from netlab.exercises.spec import Exercise, ids, load
from tests.helpers import root_snapshot
from tests.vm import features

pytestmark = pytest.mark.kernel

PARALLEL = 4  # most of a validation is waiting (BGP, probes that must time out); labs are independent


def needs(ex: Exercise) -> list[str]:
    """The features (of those tests are marked with) that an exercise's lab and ``requires`` need."""
    return sorted(set(ex.requires + tuple(features.lab_features(ex.lab))) & set(features.FEATURES))


VM_IDS = [i for i in ids() if needs(load(i))]


@pytest.fixture(scope="module")
def validations(request, tmp_path_factory):
    """The selected exercises of this module validated, PARALLEL seeds at a time, under a private state
    directory (validate gives every lab a random name)."""
    selected = [item.callspec.params["ident"] for item in request.session.items
                if item.module is request.module and hasattr(item, "callspec")]
    old = os.environ.get("NETLAB_STATE_DIR")
    os.environ["NETLAB_STATE_DIR"] = str(tmp_path_factory.mktemp("exercises-vm") / "state")
    before = root_snapshot()
    try:
        results = run.validate_all(selected, parallel=PARALLEL, log=lambda line: None)
        if root_snapshot() != before:  # the faults, fixes and wrong fixes stay in lab namespaces
            results = {i: r + ["the root network namespace changed"] for i, r in results.items()}
        yield results
    finally:
        if old is None:
            os.environ.pop("NETLAB_STATE_DIR", None)
        else:
            os.environ["NETLAB_STATE_DIR"] = old


@pytest.mark.parametrize("ident", [pytest.param(i, marks=[getattr(pytest.mark, features.marker(f))
                                                          for f in needs(load(i))]) for i in VM_IDS])
def test_exercise_validates(ident, validations):
    assert validations[ident] == []

