"""The Vagrant provisioning, run where it is meant to run: a fresh machine with a stock kernel.

Inside the VM pass (``in_vm``) the checkout is copied the way Vagrant's rsync leaves it, with a
host ``.venv`` whose python is a path only the host has, and vagrant/provision.sh runs on the
copy, installing into /opt/netlab (the VM's tmpfs). It must install a working netlab, reachable
as plain ``netlab`` by root and through sudo, show the cross-node ping, and leave the copy's
``.venv`` exactly as it was.

The pip extras are left out here (NETLAB_EXTRAS=''), and pip does not byte-compile
(PIP_NO_COMPILE=1): under emulation each costs minutes, and the install steps are the same."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT, residue

pytestmark = [pytest.mark.kernel, pytest.mark.in_vm]
HOST_PYTHON = "/home/someone/.pyenv/versions/3.11.9/bin/python3.11"  # a host path the VM does not have
VENV = Path("/opt/netlab")
IGNORE = shutil.ignore_patterns(".venv", ".vagrant", ".git", "__pycache__", "*.egg-info", "*.pcap*", ".pytest_cache")


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
    assert os.environ.get("NETLAB_IN_VM") == "1"  # never on a real host: it writes /opt and /usr/local
    assert not VENV.exists()
    src = tmp_path / "vagrant"
    shutil.copytree(ROOT, src, ignore=IGNORE, symlinks=True)
    fake_host_venv(src)
    before = tree(src / ".venv")
    # pip's own settings, not the install steps: byte-compiling every installed module under
    # emulation costs minutes, and Python compiles what it imports anyway
    env = dict(os.environ, NETLAB_EXTRAS="", PIP_NO_COMPILE="1")
    r = subprocess.run(["bash", str(src / "vagrant" / "provision.sh")], cwd="/", env=env, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "3 received" in r.stdout, r.stdout[-2000:]  # the cross-node ping it shows
    assert tree(src / ".venv") == before  # the synced .venv was neither used nor repaired
    assert os.path.realpath("/usr/local/bin/netlab") == str(VENV / "bin" / "netlab")
    # plain `netlab` for root, with a login PATH, and the lab it used for the ping is gone
    r = subprocess.run(["env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "netlab", "list"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "calico-ipip" in r.stdout, r.stderr
    if shutil.which("sudo"):
        r = subprocess.run(["sudo", "-n", "netlab", "--version"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    assert residue("provision") == []
    # the netlab installed is the copy's, from the new venv
    r = subprocess.run([str(VENV / "bin" / "python"), "-c", "import netlab; print(netlab.__file__)"],
                       capture_output=True, text=True, cwd="/")  # not this checkout's cwd, which -c would import
    assert r.stdout.strip().startswith(str(src / "netlab")), r.stdout + r.stderr
