"""What `netlab up` prints after a lab comes up fits 100 columns, with every hint's command whole
on one line (so it copies as is), for every lab."""

from __future__ import annotations

from pathlib import Path

import pytest

from netlab import api, datapaths, model
from netlab.cli.up import fit_steps

LABS = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "labs").glob("*.yaml"))


@pytest.mark.parametrize("lab", LABS)
def test_next_steps_fit_and_keep_commands_whole(lab):
    m = model.load(lab)
    steps = datapaths.get(m.datapath).next_steps(m, api.build_plan(m))
    lines = fit_steps(steps, 100)
    assert max(len(line) for line in lines) <= 100
    for h in steps.hints:
        assert any(h.command in line for line in lines), h.command
