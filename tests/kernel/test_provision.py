"""The Vagrant provisioning, on a machine made fresh for the test.

The checkout is copied the way Vagrant's rsync leaves it, with a host ``.venv`` whose python is a
path only the host has, and vagrant/provision.sh runs on the copy as it runs in a new VM: it
installs into /opt/netlab, links /usr/local/bin/netlab, brings up the vxlan lab as 'provision',
pings across nodes and tears the lab down. It must leave a working netlab, reachable as plain
``netlab`` by root and through sudo, and the copy's ``.venv`` exactly as it was.

The machine is made fresh, and kept unchanged, inside a private mount namespace: /opt,
/usr/local/bin and /etc/sudoers.d get a writable overlay on a tmpfs (what provisioning writes
there is gone with the namespace; what the machine has stays readable: apt's packages, pip's
configured wheel directories), /run/netns is an empty tmpfs (a fresh machine's, and a lab named
'provision' can meet no other), and the state root is private. provision.sh needs nothing of the
distribution's stock kernel that this one lacks (vxlan runs here), so the check runs in the host
pass, where pip is ten times faster than under the VM pass's emulator; the fresh-machine tests
(``fresh``) still run in the VM too.

The pip extras are left out (NETLAB_EXTRAS=''): the install steps are the same."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from netlab.kernel import procs
from tests.helpers import ROOT

pytestmark = pytest.mark.kernel
HOST_PYTHON = "/home/someone/.pyenv/versions/3.11.9/bin/python3.11"  # a host path no machine here has
IGNORE = shutil.ignore_patterns(".venv", ".vagrant", ".git", "__pycache__", "*.egg-info", "*.pcap*", ".pytest_cache")

# In a private mount namespace: overlays where provisioning writes, then provision.sh, then what a
# user would run next, each result on a line of its own for the assertions.
FRESH = r"""
set -u
T=$1; SRC=$2
mount -t tmpfs netlab-fresh "$T"
for d in /opt /usr/local/bin /etc/sudoers.d; do
  [ -d "$d" ] || continue
  k=$(echo "$d" | tr / _); mkdir -p "$T/u$k" "$T/w$k"
  mount -t overlay overlay -o "lowerdir=$d,upperdir=$T/u$k,workdir=$T/w$k" "$d"
done
mkdir -p /run/netns && mount -t tmpfs netlab-fresh-netns /run/netns
echo "fresh: /opt/netlab $( [ -e /opt/netlab ] && echo exists || echo absent)"
bash "$SRC/vagrant/provision.sh" </dev/null; echo "provision rc=$?"
echo "link: $(readlink -f /usr/local/bin/netlab)"
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin NETLAB_STATE_DIR="$NETLAB_STATE_DIR" \
  netlab list >"$T/list" 2>&1; echo "list rc=$? calico-ipip=$(grep -c calico-ipip "$T/list")"
if command -v sudo >/dev/null; then sudo -n netlab --version >/dev/null 2>&1; echo "sudo rc=$?"; else echo "sudo rc=0"; fi
echo "imports: $(cd / && /opt/netlab/bin/python -c 'import netlab; print(netlab.__file__)')"
echo "netns left: $(ls /run/netns | wc -l)"
echo "state left: $(ls "$NETLAB_STATE_DIR" 2>/dev/null | grep -c provision)"
"""


def fake_host_venv(src: Path) -> None:
    """A venv as a host's setup.sh made it, synced into the VM."""
    bin_ = src / ".venv" / "bin"
    bin_.mkdir(parents=True)
    (bin_ / "python").symlink_to(HOST_PYTHON)
    (bin_ / "python3").symlink_to("python")
    (bin_ / "pip").write_text(f"#!{src}/.venv/bin/python\nimport sys\nfrom pip._internal.cli.main import main\nsys.exit(main())\n")
    (bin_ / "pip").chmod(0o755)
    (src / ".venv" / "pyvenv.cfg").write_text(f"home = {os.path.dirname(HOST_PYTHON)}\nversion = 3.11.9\n")


def tree(root: Path) -> dict[str, tuple]:
    """Every entry under root: type, mode, size, mtime and content (or link target)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        what = os.readlink(p) if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        out[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, what)
    return out


def test_provision_installs_a_working_netlab_outside_the_synced_folder(tmp_path):
    src = tmp_path / "vagrant"
    shutil.copytree(ROOT, src, ignore=IGNORE, symlinks=True)
    fake_host_venv(src)
    before = tree(src / ".venv")
    scratch = tmp_path / "fresh"
    scratch.mkdir()
    env = dict(os.environ, NETLAB_EXTRAS="", PIP_NO_COMPILE="1", NETLAB_STATE_DIR=str(tmp_path / "state"))
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", FRESH, "fresh", str(scratch), str(src)],
                       cwd="/", env=env, capture_output=True, text=True, timeout=600)
    out = r.stdout
    assert "fresh: /opt/netlab absent" in out, out + r.stderr  # the machine had no netlab venv yet
    assert "provision rc=0" in out, out[-3000:] + r.stderr[-3000:]
    assert "3 received" in out, out[-2000:]  # the cross-node ping it shows
    assert "link: /opt/netlab/bin/netlab" in out, out  # plain `netlab` is the new venv's
    assert "list rc=0 calico-ipip=1" in out, out  # for root, with a login PATH
    assert "sudo rc=0" in out, out  # and through sudo's secure_path
    assert f"imports: {src}/netlab/__init__.py" in out, out  # the copy's netlab, from the new venv
    assert "netns left: 0" in out and "state left: 0" in out, out  # the lab it pinged with is gone
    assert procs.naming(f"{tmp_path / 'state'}/") == []  # and so are its daemons
    assert "Traceback" not in out + r.stderr
    assert tree(src / ".venv") == before  # the synced .venv was neither used nor repaired
    assert not Path("/opt/netlab").exists()  # and the machine outside the test is as it was
