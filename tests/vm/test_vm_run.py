"""``netlab vm run`` for real: a whole lab (up, cross-node ping, down) in one VM run on the stock
kernel, its output and exit code carried out of the VM, and the interactive shell. Marked ``vm``: these boot VMs from
the host and never run nested inside the VM pass."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = [pytest.mark.kernel, pytest.mark.vm,
              pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                 reason="qemu-system-x86_64 is not installed (./setup.sh installs it)")]
NETLAB = [sys.executable, "-m", "netlab"]


def vm_run(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*NETLAB, "vm", "run", "--timeout", str(int(timeout)), "--", *argv],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout + 60)


def test_a_whole_lab_in_one_vm_run_with_its_output_and_exit_code():
    """One boot (each costs seconds under the emulator): stdout and stderr come back apart, the
    kernel is the stock one, a vxlan lab goes up, pings across nodes and goes down leaving no
    namespace, and the command's exit code is the VM run's."""
    script = ("set -e; echo to-stdout; echo to-stderr >&2; uname -r; "
              "netlab up vxlan -q; netlab exec vxlan node1-pod1 -- ping -c 3 -W 5 10.244.2.2; "
              "netlab down vxlan; echo left=$(ls /run/netns | wc -l); exit 7")
    r = vm_run("sh", "-c", script, timeout=600)
    assert r.returncode == 7, r.stdout[-2000:] + r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert lines[0] == "to-stdout" and "to-stderr" not in r.stdout and "to-stderr" in r.stderr
    assert lines[1] != subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()  # another kernel
    assert "3 received" in r.stdout, r.stdout
    assert lines[-1].strip() == "left=0"  # nothing left inside the VM either


@pytest.mark.skipif(shutil.which("script") is None, reason="script(1) (util-linux) gives the shell its terminal")
def test_shell_is_interactive_and_returns_the_shells_exit_code():
    # a terminal (script) in front of `netlab vm shell`, typing `exit 4` every few seconds until the
    # shell is there to read it (input typed before the console is set up is lost, as on a real one)
    typing = "while :; do echo 'exit 4'; sleep 3; done"
    r = subprocess.run(["bash", "-c", f"{typing} | script -qec '{sys.executable} -m netlab vm shell' /dev/null"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert "root shell on the stock kernel" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    assert r.returncode == 4, r.stdout[-2000:]
