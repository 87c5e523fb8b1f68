"""The scenario JSON Schema (``cssim schema``): shipped scenarios name it and validate against it, and a partial
file that extends another validates with only the fields it changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cssim.cli import main
from cssim.model.loader import _read_yaml
from cssim.model.schema import SCHEMA_FILE, SCHEMA_LINE, scenario_schema

jsonschema = pytest.importorskip("jsonschema")

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
SHIPPED = sorted(SCENARIOS.glob("*.yaml"))


@pytest.fixture(scope="module")
def validator():
    schema = scenario_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _problems(validator, data) -> list[str]:
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data))


def test_the_shipped_schema_file_is_what_cssim_schema_prints(capsys):
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((SCENARIOS / SCHEMA_FILE).read_text()), "regenerate: cssim schema > scenarios/" + SCHEMA_FILE


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_scenario_names_the_schema_and_validates(path, validator):
    assert path.read_text().splitlines()[0] == SCHEMA_LINE
    assert _problems(validator, _read_yaml(path, str(path))) == []


def test_a_partial_file_needs_only_what_it_changes(validator):
    assert any(SHIPPED) and _problems(validator, {"extends": "baseline.yaml", "team": {"pods": {"smb": {"headcount": 9}}}}) == []
    # The partial schema still checks what is there: a wrong type, an unknown field.
    assert _problems(validator, {"extends": "baseline.yaml", "seed": "seven"})
    wrong = _problems(validator, {"extends": "baseline.yaml", "segments": {"smb": {"intial_customers": 3}}})
    assert any("intial_customers" in p for p in wrong)
    # Without extends, the required fields are required.
    missing = _problems(validator, {"name": "alone"})
    assert any("'segments' is a required property" in p for p in missing)


def test_the_schema_accepts_the_shorthands_the_loader_accepts(validator):
    base = _read_yaml(SCENARIOS / "baseline.yaml", "baseline")
    ranges = {"extends": "baseline.yaml", "sensitivity": {"fields": {"team.pods.smb.headcount": [2, 5]}}}
    assert _problems(validator, ranges) == []
    assert _problems(validator, {**base, "sensitivity": {"fields": {"team.pods.smb.headcount": [2, 5, 7]}}})
