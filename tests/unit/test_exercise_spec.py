"""Exercise files as data (no root): every file in exercises/ parses, its placeholders resolve,
and bad files get one line naming the field and the fix."""

from __future__ import annotations

import pytest

from netlab.errors import LabFileError
from netlab.exercises import run
from netlab.exercises.spec import ids, load, parse

GOOD = {"id": "x", "title": "t", "lab": "vxlan", "ticket": "pods on {src} …",
        "variants": [{"name": "v", "fault": [{"delete": {"kind": "Fdb", "host": "{src}"}}]}],
        "broken": [{"from": "{src}-pod1", "to": "node2-pod1"}], "vars": {"src": ["node1", "node2"]}}


@pytest.mark.parametrize("ident", ids())
def test_every_exercise_file_parses(ident):
    ex = load(ident)
    assert ex.id == ident and ex.variants and ex.broken and 1 <= ex.difficulty <= 3
    assert len(ex.hints) >= 3 or all(len(v.hints) >= 3 for v in ex.variants), "three hint levels"


def test_the_seed_picks_the_variant_and_the_vars_reproducibly():
    ex = parse(dict(GOOD, variants=GOOD["variants"] * 2), "t.yaml")
    picks = {run.choose(ex, seed)[1]["src"] for seed in range(20)}
    assert picks == {"node1", "node2"}
    assert run.choose(ex, 5) == run.choose(ex, 5)


@pytest.mark.parametrize("change, words", [
    ({"difficulty": 4}, "difficulty"),
    ({"variants": []}, "variants"),
    ({"broken": [{"from": "a"}]}, "broken[0]"),
    ({"variants": [{"name": "v", "fault": [{"explode": {}}]}]}, "fault[0]"),
    ({"variants": [{"name": "v", "fault": [{"run": ["true"]}]}]}, "needs a solution"),
])
def test_bad_files_say_where(change, words):
    with pytest.raises(LabFileError) as e:
        parse({**GOOD, **change}, "t.yaml")
    assert words in str(e.value) and len(str(e.value).splitlines()) == 1


def test_an_unknown_placeholder_names_the_known_ones():
    with pytest.raises(Exception) as e:
        run.fill("{nope}", {"lab": "x"})
    assert "{nope}" in str(e.value) and "lab" in str(e.value)
