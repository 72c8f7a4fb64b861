"""netlab speaks BIRD's control protocol itself (bgp.birdc): what it returns is what the real
``birdc -r`` prints for the same command, line for line (timers and times of day left out: BIRD
keeps times on its monotonic clock and converts them to the time of day at each command, so the
same route's "since" can read a millisecond apart in two calls). A stopped BIRD times out, a missing socket says it cannot connect."""

from __future__ import annotations

import os
import re
import signal

import pytest

from netlab import bgp
from tests.helpers import nsexec, wait_until

pytestmark = pytest.mark.kernel


TIME_OF_DAY = re.compile(r"\b\d\d:\d\d:\d\d(\.\d+)?\b")


def _steady(text: str) -> list[str]:
    return [TIME_OF_DAY.sub("<time>", line) for line in text.splitlines() if "timer" not in line.lower()]


def test_the_control_protocol_prints_what_birdc_prints(lab_factory):
    lab = lab_factory("calico", nodes=2, pods=1)
    sock = f"{lab.state.dir}/bird-node1.ctl"
    ns = lab.ns("node1")
    for cmd in (["show", "protocols", "all"], ["show", "route", "all"], ["show", "route", "export", "kernel1"]):
        real = nsexec(ns, "birdc", "-r", "-s", sock, *cmd, check=True).stdout
        assert _steady(bgp.birdc(ns, sock, *cmd)) == _steady(real), cmd
    assert bgp.birdc(ns, sock, "show", "status").startswith("BIRD ")
    with pytest.raises(OSError, match="Unable to connect"):
        bgp.birdc(ns, sock + ".missing", "show", "status")
    (bird,) = [d for d in lab.state.daemons if d.ns == ns and d.name == "bird"]
    os.kill(bird.pid, signal.SIGSTOP)
    try:
        with pytest.raises(OSError, match="timed out"):
            bgp.birdc(ns, sock, "show", "status", timeout=0.5)
    finally:
        os.kill(bird.pid, signal.SIGCONT)
    wait_until(lambda: "Established" in bgp.birdc(ns, sock, "show", "protocols"), timeout=20)
