"""`netlab explain` for every lab: the script, run by bash on fresh namespaces, builds a lab that
netlab's own verify finds identical to the plan (issue 2's promise, for every datapath)."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from netlab import api, model
from netlab.datapaths import get
from netlab.explain import script
from netlab.kernel import probe
from netlab.kernel.verify import verify
from netlab.plan import Daemon
from tests.helpers import netns_list, sh, unique_name

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("lab", [p.stem for p in model.available()])
def test_explain_script_builds_what_the_plan_says(lab, tmp_path):
    dp = get(model.load(lab).datapath)
    missing = [k for k in dp.requires if probe.link_kind(k) is not None]
    if missing:
        pytest.skip(f"this kernel cannot create {', '.join(missing)} links")
    name = unique_name("x")
    plan = api.build_plan(model.load(lab, name=name))
    path = tmp_path / "lab.sh"
    path.write_text(script(plan))
    env = dict(os.environ, NETLAB_RUN=str(tmp_path / "run"))
    try:
        r = subprocess.run(["bash", str(path)], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        report = verify(plan)  # no state: the script's daemons are not netlab's to check
        assert report.ok, [f"{p.what}: {p.detail}" for p in report.problems]
        for d in plan.of(Daemon):  # ... but they must be running where the plan puts them
            assert sh("ip", "netns", "pids", d.ns).stdout.split(), f"{d.name} is not running in {d.ns}"
    finally:
        # the script's daemons live in the lab's namespaces: end exactly those, then the namespaces
        for n in plan.namespaces:
            if n.name in netns_list():
                for pid in sh("ip", "netns", "pids", n.name, check=False).stdout.split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                sh("ip", "netns", "del", n.name, check=False)
    assert not [n for n in netns_list() if n.startswith(name)]
