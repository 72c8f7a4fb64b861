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

import pytest

from netlab.exercises.spec import ids
from tests.helpers import selected_params, validate_exercises
from tests.vm import features

pytestmark = pytest.mark.kernel

PARALLEL = 4  # most of a validation is waiting (BGP, probes that must time out); labs are independent


VM_IDS = [i for i in ids() if features.exercise_features(i)]


@pytest.fixture(scope="module")
def validations(request, tmp_path_factory):
    """The selected exercises of this module validated, PARALLEL seeds at a time, under a private
    state directory (validate gives every lab a random name), the root namespace unchanged."""
    return validate_exercises(selected_params(request, "ident"), PARALLEL,
                              tmp_path_factory.mktemp("exercises-vm") / "state")


@pytest.mark.parametrize("ident", [pytest.param(i, marks=[getattr(pytest.mark, features.marker(f))
                                                          for f in features.exercise_features(i)]) for i in VM_IDS])
def test_exercise_validates(ident, validations):
    assert validations[ident] == []

