"""Every hint ``netlab up`` prints, for every lab, does what its datapath declares it does.

The lab is brought up through the CLI, as a user would; what is printed under "try next" must be
exactly the commands the datapath's ``next_steps`` declares for the lab's plan, and each is then
run as printed (``netlab`` is this checkout's, nothing else is substituted) and checked against
its own declaration: ``ok`` exits 0, ``runs`` is still running after a moment (a capture),
``fails:<message>`` exits non-zero saying the message (the lesson), ``stdin:<text>`` is fed the
text and exits 0. Then the lab, and any lab a hint brought up, is torn down and leaves nothing.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from netlab import api, model
from netlab.datapaths.hints import FAILS, OK, RUNS, STDIN, Hint
from tests.helpers import residue, unique_name
from tests.vm import features

pytestmark = pytest.mark.kernel
NETLAB = [sys.executable, "-m", "netlab"]
RUNS_FOR = 2.0  # seconds a "runs" hint must stay up (or exit 0 within)
TIMEOUT = 120  # any other hint: the BGP and bench ones are the slow ones
STATE_ROOT = Path("/run/netlab")


def params() -> list:
    """Every lab file, marked with the kernel features its datapath needs (calico-ipip:
    needs_ipip), so the host pass leaves those to the VM pass."""
    out = []
    for f in model.available():
        marks = [getattr(pytest.mark, features.marker(k)) for k in features.lab_features(f.stem)]
        out.append(pytest.param(f.stem, marks=marks, id=f.stem))
    return out


def netlab(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*NETLAB, *args], capture_output=True, text=True, timeout=TIMEOUT, **kw)


def printed_commands(stdout: str) -> list[str]:
    """The commands of the "try next" section as a user reads them: on each line that holds one,
    from ``netlab `` or ``ip netns exec `` up to a double space and a parenthesised remark."""
    lines = stdout.split("try next\n", 1)[1].split("\n\n", 1)[0].splitlines()
    out = []
    for line in lines:
        starts = [i for i in (line.find("netlab "), line.find("ip netns exec ")) if i >= 0]
        if starts:
            out.append(line[min(starts):].split("  (", 1)[0].rstrip())
    return out


def argv_of(command: str) -> list[str]:
    argv = shlex.split(command)
    return [*NETLAB, *argv[1:]] if argv[0] == "netlab" else argv


def brought_up(hint: Hint) -> str | None:
    """The instance a ``netlab up --name X`` hint names, to tear down whatever it did."""
    argv = shlex.split(hint.command)
    if argv[:2] == ["netlab", "up"] and "--name" in argv:
        return argv[argv.index("--name") + 1]
    return None


def stop(proc: subprocess.Popen) -> None:
    """Ctrl-C to the hint's own process group (what a user does to a capture or a bench, which
    then tears down what it built), and SIGKILL to that group only if it does not end."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


def check_runs(argv: list[str]) -> None:
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        code = proc.wait(timeout=RUNS_FOR)
    except subprocess.TimeoutExpired:
        return  # still running: what it was declared to do
    finally:
        if proc.poll() is None:
            stop(proc)
        out = proc.stdout.read() if proc.stdout else ""
        if proc.stdout:
            proc.stdout.close()
    assert code == 0, f"{shlex.join(argv)} ended with {code} within {RUNS_FOR}s: {out}"


def check(hint: Hint) -> None:
    argv = argv_of(hint.command)
    if hint.kind == RUNS:
        check_runs(argv)
        return
    feed = hint.arg if hint.kind == STDIN else ""
    r = subprocess.run(argv, input=feed, capture_output=True, text=True, timeout=TIMEOUT)
    said = r.stdout + r.stderr
    if hint.kind == FAILS:
        assert r.returncode != 0, f"{hint.command} was declared to fail and exited 0: {said}"
        assert hint.arg in said, f"{hint.command} failed without saying {hint.arg!r}: {said}"
    else:
        assert hint.kind in (OK, STDIN), hint
        assert r.returncode == 0, f"{hint.command} exited {r.returncode}: {said}"


def leftovers(names: list[str]) -> list[str]:
    """Residue of the lab, of labs its hints brought up, and of instances under its name as a
    prefix (the bench hint's ``--prefix <name>-``)."""
    prefixed = [d.name for n in names for d in STATE_ROOT.glob(f"{n}-*")] if STATE_ROOT.is_dir() else []
    return [r for n in [*names, *prefixed] for r in residue(n)]


@pytest.mark.parametrize("lab", params())
def test_every_hint_up_prints_does_what_it_declares(lab):
    name = unique_name("h")
    extra: list[str] = []
    try:
        r = netlab("up", lab, "--name", name)
        assert r.returncode == 0, r.stdout + r.stderr
        handle = api.attach(name)
        steps = handle.datapath.next_steps(handle.lab, handle.plan)
        hints = steps.hints
        assert hints, f"{lab}: up printed no hint"
        assert printed_commands(r.stdout) == [h.command for h in hints]
        extra = [n for n in map(brought_up, hints) if n]
        failed = []
        for h in hints:
            try:
                check(h)
            except (AssertionError, subprocess.TimeoutExpired) as e:
                failed.append(f"{h.render().strip()}\n    {e}")
        assert not failed, f"{lab}: hints that did not do what they declare:\n" + "\n".join(failed)
    finally:
        for n in [name, *extra]:
            if (STATE_ROOT / n).exists():
                netlab("down", n)
    assert leftovers([name, *extra]) == []
