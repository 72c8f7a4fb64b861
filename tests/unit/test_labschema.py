"""The JSON Schema editors use for lab files is what netlab generates, and every lab netlab ships
is valid by it; a field outside the bounds the model enforces is invalid by it too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from netlab.labschema import json_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schema" / "lab.schema.json"


def test_the_committed_schema_is_current():
    assert json.loads(SCHEMA.read_text()) == json_schema(), (
        "regenerate: python -c 'import json; from netlab.labschema import json_schema; "
        "print(json.dumps(json_schema(), indent=2))' > schema/lab.schema.json")


@pytest.mark.parametrize("lab", sorted((ROOT / "labs").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_lab_is_valid(lab):
    jsonschema.validate(yaml.safe_load(lab.read_text()), json_schema())


@pytest.mark.parametrize("doc", [
    {"datapath": "flannel-vxlan", "nodes": 70000},
    {"datapath": "flannel-vxlan", "options": {"vni": 0}},
    {"datapath": "flannel-vxlan", "options": {"as_number": 1}},  # calico's option, not flannel's
    {"datapath": "flannel-vxlan", "underlay": {"mtu": 100}},
    {"nodes": 2},
])
def test_what_the_model_refuses_the_schema_refuses(doc):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, json_schema())


def test_show_lists_fields_and_options():
    r = subprocess.run([sys.executable, "-m", "netlab", "show", "vxlan"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and "underlay.mtu" in r.stdout and "vni" in r.stdout and "1..16777215" in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 100
