"""setup.sh's bare `netlab` command: a symlink in /usr/local/bin (on sudo's secure_path) to this
checkout's venv, never over another program's file of that name (ipspace's networklab installs a
`netlab` too). The link step runs alone (`--link-only`) at a scratch path (NETLAB_COMMAND_LINK)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECURE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # Debian's sudoers

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="setup.sh runs as root")


def _link(link: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NETLAB_COMMAND_LINK=str(link))
    return subprocess.run([str(ROOT / "setup.sh"), "--link-only"], env=env, capture_output=True, text=True,
                          timeout=60)


def test_fresh_link_runs_netlab(tmp_path: Path) -> None:
    link = tmp_path / "bin" / "netlab"
    r = _link(link)
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and link.resolve() == (ROOT / ".venv" / "bin" / "netlab").resolve()
    out = subprocess.run([str(link), "list", "--json"], capture_output=True, text=True, timeout=60,
                         env={"PATH": SECURE_PATH})
    assert out.returncode == 0 and '"labs"' in out.stdout, out.stderr


def test_another_programs_file_is_kept(tmp_path: Path) -> None:
    link = tmp_path / "netlab"
    link.write_text("#!/bin/sh\necho networklab\n")
    r = _link(link)
    assert r.returncode == 0
    assert "another program's (not replaced)" in r.stderr and str(link) in r.stderr
    assert not link.is_symlink() and link.read_text() == "#!/bin/sh\necho networklab\n"


def test_another_programs_symlink_is_kept(tmp_path: Path) -> None:
    other = tmp_path / "opt" / "networklab" / "bin"
    other.mkdir(parents=True)
    (other / "netlab").write_text("#!/bin/sh\n")
    (other / "python").symlink_to("/usr/bin/python3")  # a venv without netlab-cni
    link = tmp_path / "netlab"
    link.symlink_to(other / "netlab")
    r = _link(link)
    assert "not replaced" in r.stderr
    assert os.readlink(link) == str(other / "netlab")


def test_dangling_link_of_a_removed_checkout_is_replaced(tmp_path: Path) -> None:
    link = tmp_path / "netlab"
    link.symlink_to(tmp_path / "gone" / ".venv" / "bin" / "netlab")
    r = _link(link)
    assert r.returncode == 0, r.stderr
    assert link.resolve() == (ROOT / ".venv" / "bin" / "netlab").resolve()


def test_installed_command_works_under_sudo_path() -> None:
    """After ./setup.sh (CI ran it on this checkout), the bare `netlab` resolves on sudo's PATH."""
    link = Path("/usr/local/bin/netlab")
    ours = link.is_symlink() and link.resolve() == (ROOT / ".venv" / "bin" / "netlab").resolve()
    if not ours:
        if os.environ.get("CI"):
            pytest.fail(f"{link} is not this checkout's command after ./setup.sh")
        pytest.skip(f"{link} is not this checkout's (run ./setup.sh here)")
    out = subprocess.run(["netlab", "--help"], capture_output=True, text=True, timeout=60,
                         env={"PATH": SECURE_PATH})
    assert out.returncode == 0 and "Usage" in out.stdout, out.stderr
