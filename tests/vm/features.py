"""Which kernel features the tests need, and which this machine's kernel lacks.

A test that needs a feature carries ``@pytest.mark.needs_<feature>`` (``needs_ipip``,
``needs_netem``, ...); a test over every lab (a ``lab`` parameter) gets the markers of the link
kinds its datapath requires, from the datapath itself. Where the running kernel lacks a feature,
the host pass deselects those tests and the VM pass (:mod:`tests.vm.tier`) runs exactly them on
the distribution's stock kernel, which has them all.

Each probe runs in a throw-away network namespace and leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache

# link kinds and qdiscs that stock distribution kernels have and minimal kernels may not
LINK_KINDS = ("ipip", "gre", "dummy")
QDISCS = ("netem",)
FEATURES = LINK_KINDS + QDISCS


def marker(feature: str) -> str:
    return f"needs_{feature}"


def _qdisc_present(kind: str) -> bool:
    """``tc qdisc add`` on lo in a new network namespace (gone when the command exits)."""
    if shutil.which("tc") is None or shutil.which("unshare") is None:
        return False
    args = ["delay", "1ms"] if kind == "netem" else []
    r = subprocess.run(["unshare", "-n", "tc", "qdisc", "add", "dev", "lo", "root", kind, *args],
                       capture_output=True)
    return r.returncode == 0


@lru_cache(maxsize=None)
def present(feature: str) -> bool:
    if feature in QDISCS:
        return _qdisc_present(feature)
    from netlab.kernel import probe
    return probe.link_kind(feature) is None


def missing() -> list[str]:
    """The features this kernel lacks; none can be probed without root (and then the kernel
    tests are skipped anyway)."""
    if os.geteuid() != 0:
        return []
    return [f for f in FEATURES if not present(f)]


def exercise_features(ident: str) -> list[str]:
    """The features (of those tests are marked with) an exercise needs: its lab's datapath's and
    its own ``requires``."""
    from netlab.exercises.spec import load
    ex = load(ident)
    return sorted(set(ex.requires + tuple(lab_features(ex.lab))) & set(FEATURES))


def lab_features(lab: str) -> list[str]:
    """The features a lab file's datapath requires, among those tests are marked with."""
    from netlab import model
    from netlab.datapaths import get
    try:
        requires = get(model.load(lab).datapath).requires
    except Exception:  # a lab file that does not load is the lab tests' business
        return []
    return [k for k in requires if k in FEATURES]
