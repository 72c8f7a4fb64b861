"""``netlab exec LAB HOST`` without a command (and ``netlab shell``) opens a shell in that
namespace whose prompt names the lab and the host."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("verb", [["exec"], ["shell"]])
def test_a_shell_in_the_namespace_with_a_prompt_that_names_it(lab_factory, verb):
    lab = lab_factory("baseline")
    r = subprocess.run([sys.executable, "-m", "netlab", *verb, lab.name, "node1"], cwd=ROOT, input="ip netns identify\nexit\n",
                       capture_output=True, text=True, timeout=30, env={"SHELL": "/bin/bash", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert r.returncode == 0, r.stderr
    assert f"[{lab.name} node1]# " in r.stderr
    assert r.stdout.strip() == lab.ns("node1")
