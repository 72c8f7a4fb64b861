"""/run/netns as a fresh machine has it: a plain directory, not a mount point.

iproute2's ``ip netns add`` makes /run/netns a shared mount, binding the directory onto itself
first when it is not a mount point yet. If netlab mounted its namespaces onto the plain directory,
the next ``ip netns add`` by anyone copied them into the new layer and hid the originals, and
``down`` then failed with EBUSY and left the namespaces for good. These tests recreate that fresh
state themselves, inside a private mount namespace (``unshare -m --propagation private``), so they
mean the same on every machine whatever /run/netns looks like outside; the host's mounts are never
touched. They also run in the stock-kernel VM, where /run really is empty.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from netlab import api
from netlab.cli import cli
from netlab.kernel import netns
from tests.helpers import ROOT, residue, unique_name

pytestmark = [pytest.mark.kernel, pytest.mark.fresh]

# Runs in a private mount namespace: the state of /run/netns is set first, then a lab goes up,
# another tool adds and deletes a namespace, the lab goes down, and what is left is printed.
SCRIPT = r"""
set -u
N="{python} -m netlab"
L={lab}
case {start} in
  plain)  while mountpoint -q /run/netns; do umount -l /run/netns; done; mkdir -p /run/netns ;;
  shared) ip netns add $L-pre && ip netns del $L-pre ;;   # what any earlier `ip netns add` leaves
esac
echo "before: $(findmnt -n -o PROPAGATION /run/netns || echo plain)"
$N up vxlan --name $L -q || {{ echo "up failed"; exit 1; }}
echo "after up: $(findmnt -n -o PROPAGATION /run/netns || echo plain)"
ip netns add $L-other && ip netns del $L-other
$N down $L 2>&1; echo "down rc=$?"
echo "mounts left: $(grep -c "/run/netns/$L-" /proc/self/mountinfo)"
echo "files left: $(ls /run/netns | grep -c "^$L-")"
"""


@pytest.mark.parametrize("start", ["plain", "shared"])
def test_up_then_another_tools_netns_add_then_down_leaves_nothing(start, tmp_path):
    lab = unique_name("fr")
    script = SCRIPT.format(python=sys.executable, lab=lab, start=start)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NETLAB_STATE_DIR": str(tmp_path / "state")}
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", script],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    out = r.stdout
    assert "up failed" not in out, out + r.stderr
    assert f"before: {start}" in out, out  # the starting state really was the one asked for
    assert "after up: shared" in out, out  # netlab set /run/netns up the way iproute2 does
    assert "down rc=0" in out and "Traceback" not in out + r.stderr, out + r.stderr
    assert "mounts left: 0" in out and "files left: 0" in out, out
    assert residue(lab) == [] and not (tmp_path / "state" / lab).exists()


def test_delete_detaches_every_stacked_mount_of_the_file(tmp_path):
    """A namespace file with the same namespace mounted on it three times or more (stacked, and propagated) goes in one
    ``netns.delete``: each mount is detached until the path is no longer a mount point."""
    lab = unique_name("fr")
    script = rf"""
set -eu
ip netns add {lab}-s
for i in 1 2; do mount --bind /run/netns/{lab}-s /run/netns/{lab}-s; done
n=$(grep -c "/run/netns/{lab}-s " /proc/self/mountinfo); [ "$n" -ge 3 ] && echo "stacked: $n"
{sys.executable} -c 'from netlab.kernel import netns; print("deleted:", netns.delete("{lab}-s"))'
echo "left: $(grep -c "/run/netns/{lab}-s " /proc/self/mountinfo || true)"
test ! -e /run/netns/{lab}-s && echo gone
"""
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", script],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "stacked: " in r.stdout and "deleted: True" in r.stdout, r.stdout + r.stderr
    assert "left: 0" in r.stdout and "gone" in r.stdout, r.stdout + r.stderr


def test_down_that_hits_an_oserror_says_one_line_and_keeps_the_state(monkeypatch):
    """The kernel refusing to let go of a namespace is reported in one line with the remedy and a
    non-zero exit, never a traceback; the state stays, so a later ``down`` can finish the job."""
    h = api.up("vxlan", name=unique_name("fr"), pods=1)
    real_delete = netns.delete
    victim = f"{h.name}-node2"

    def failing(name: str) -> bool:
        if name == victim:
            raise OSError(16, f"/run/netns/{name} is still mounted underneath a later bind mount")
        return real_delete(name)

    try:
        monkeypatch.setattr(netns, "delete", failing)
        r = CliRunner().invoke(cli, ["down", h.name])
        assert r.exit_code == 1, r.output
        lines = [l for l in r.output.splitlines() if l.startswith("netlab: ")]
        assert len(lines) == 1 and victim in lines[0] and " — " in lines[0], r.output
        assert "Traceback" not in r.output
        assert h.state.path.exists(), "the state must survive a partial teardown"
    finally:
        monkeypatch.setattr(netns, "delete", real_delete)
        api.down(h.name)
    assert residue(h.name) == []
