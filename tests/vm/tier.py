"""The VM pass: the tests this machine's kernel cannot run, run on the distribution's stock kernel.

``python -m tests.vm.tier [PYTEST ARGS]`` (``./setup.sh --test`` and so ``.ci/run`` call it after the
host pass) boots one VM with ``netlab vm run`` and runs pytest in it on this checkout, selecting

- ``needs_<feature>`` for every feature this kernel lacks (:mod:`tests.vm.features`), and only
  those: what the host has ran on the host;
- ``fresh``: the VM is a machine that just booted (``/run`` is empty), so these tests cannot pass
  only because this machine had been set up earlier;
- ``in_vm``: tests that only make sense there (none today: the Vagrant provisioning check runs
  in the host pass, in a private mount namespace made fresh).

The VM gets a writable share for pytest's junit XML, from which the summary below is read (no
network: nothing in the pass needs one). Exit status: pytest's, except that
"no tests collected" (5) is success, a test skipped in the VM is a failure (the pass exists to run
exactly these tests; a skip there would hide what it is for), and a pass longer than TIMEOUT fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.vm import features

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 15 * 60  # the VM pass's budget on a 2-core machine under TCG
MEM_MB = 3072
ALWAYS = ("fresh", "in_vm")
NO_TESTS = 5


def expression(missing: list[str]) -> str:
    return " or ".join([features.marker(f) for f in missing] + list(ALWAYS))


def pytest_argv(python: str, expr: str, junit: str | None, extra: list[str], files: list[str] | None = None) -> list[str]:
    """pytest over ``expr``: with a junit path, the run; with None, only the collection."""
    paths = [a for a in extra if not a.startswith("-")]
    report = ["--junitxml", junit] if junit is not None else ["--collect-only"]
    return [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "-m", expr, *report,
            *extra, *([] if paths else files or ["tests"])]


def files_of(collected: str) -> list[str]:
    """The test files of ``pytest --collect-only -q``'s node ids, in order."""
    out: list[str] = []
    for line in collected.splitlines():
        path = line.split("::", 1)[0] if "::" in line else None
        if path and path not in out:
            out.append(path)
    return out


def selection(expr: str, extra: list[str]) -> list[str] | None:
    """The files holding the tests the VM pass runs, collected here on the host as the VM would
    place them (tests/conftest.py's NETLAB_VM_SELECTION): the VM then imports only those, not the
    whole suite (under the emulator, collecting every module cost over a minute). None: run the
    VM's own collection over everything (the host's failed; the VM's will say why)."""
    r = subprocess.run(pytest_argv(sys.executable, expr, None, extra), cwd=ROOT, env=dict(os.environ, NETLAB_VM_SELECTION="1"), capture_output=True, text=True)
    if r.returncode == NO_TESTS:
        return []
    return files_of(r.stdout) if r.returncode == 0 else None


def summary(junit: Path) -> dict[str, int | float | list[str]]:
    """Counts and the skipped tests' names from pytest's junit XML."""
    if not junit.exists():
        return {}
    root = ET.parse(junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    skipped = [f"{c.get('classname')}::{c.get('name')}" for c in suite.iter("testcase") if c.find("skipped") is not None]
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")} | \
        {"time": float(suite.get("time", 0)), "skipped_names": skipped}


def verdict(rc: int, s: dict) -> int:
    if rc == NO_TESTS:
        return 0
    if rc == 0 and s.get("skipped"):
        return 1
    return rc


def main(extra: list[str]) -> int:
    missing = features.missing()
    expr = expression(missing)
    print(f"tests/vm/tier.py: this kernel lacks {', '.join(missing) or 'nothing tests are marked for'}; "
          f"running '{expr}' in the stock-kernel VM", file=sys.stderr, flush=True)
    files = selection(expr, extra)
    if files == []:
        print("tests/vm/tier.py: no test is selected for the VM pass", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix="netlab-vm-pass-") as out:
        junit = Path(out) / "vm.xml"
        argv = [sys.executable, "-m", "netlab", "vm", "run", "--mem", str(MEM_MB), "--timeout", str(TIMEOUT),
                "--rw", out, "--", *pytest_argv(sys.executable, expr, str(junit), extra, files)]
        t0 = time.monotonic()
        rc = subprocess.run(argv, cwd=ROOT).returncode
        wall = time.monotonic() - t0
        s = summary(junit)
    final = verdict(rc, s)
    counts = ", ".join(f"{s[k]} {k}" for k in ("tests", "failures", "errors", "skipped") if k in s) or "no junit"
    print(f"tests/vm/tier.py: VM pass exit {rc} -> {final} ({counts}) in {wall:.0f} s wall", file=sys.stderr)
    for name in s.get("skipped_names", []):
        print(f"tests/vm/tier.py: skipped in the VM (counts as a failure): {name}", file=sys.stderr)
    return final


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
