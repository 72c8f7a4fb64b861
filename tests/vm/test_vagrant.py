"""The Vagrantfile is valid for Vagrant itself (``vagrant validate``, on a copy so that no
``.vagrant/`` appears in the checkout). Skipped only where vagrant cannot be installed
(./setup.sh --test installs it where the distribution has it)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.skipif(shutil.which("vagrant") is None,
                                reason="vagrant is not installed (./setup.sh --test installs it where apt has it)")


def test_vagrant_validate(tmp_path):
    shutil.copy(ROOT / "Vagrantfile", tmp_path / "Vagrantfile")
    shutil.copytree(ROOT / "vagrant", tmp_path / "vagrant")
    env = dict(os.environ, VAGRANT_HOME=str(tmp_path / "home"), VAGRANT_CHECKPOINT_DISABLE="1")
    r = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "validated successfully" in r.stdout
