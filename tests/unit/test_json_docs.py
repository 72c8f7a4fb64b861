"""docs/JSON.md documents every verb that has --json (found by walking the CLI's commands)."""

from __future__ import annotations

from pathlib import Path

import click

from netlab.cli import cli

DOC = (Path(__file__).resolve().parents[2] / "docs" / "JSON.md").read_text()


def _verbs(group: click.Group, prefix: str = ""):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _verbs(cmd, f"{prefix}{name} ")
        elif any("--json" in p.opts for p in cmd.params if isinstance(p, click.Option)):
            yield f"{prefix}{name}"


def test_every_json_verb_is_documented():
    verbs = sorted(_verbs(cli))
    assert {"status", "trace", "list", "up", "down", "bgp", "bench", "exercise check"} <= set(verbs), verbs
    missing = [v for v in verbs if f"`{v} " not in DOC and f"`{v}`" not in DOC]
    assert not missing, f"docs/JSON.md does not document: {missing}"
