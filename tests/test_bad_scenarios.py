"""Malformed scenario files: one clear line on stderr naming file and field, exit code 2, nothing written.

Each file in ``tests/data/bad_scenarios/`` is wrong in one way (``_base.yaml``
is a valid scenario the others extend). The expected fragments say which
field the message must name and what it must say was wrong.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cssim import ScenarioError, load_scenario
from cssim.cli import main

BAD = Path(__file__).resolve().parent / "data" / "bad_scenarios"

# file -> fragments the one-line message must contain (besides the file name).
CASES = {
    "unknown_field_typo.yaml": ["horizon_month", "unknown field", "did you mean 'horizon_months'"],
    "unknown_nested_field.yaml": ["segments.smb.contract.biling", "unknown field", "did you mean 'billing'"],
    "unknown_field_no_match.yaml": ["team.pods.smb_pod.favourite_colour", "unknown field", "allowed:", "headcount"],
    "curve_field_typo.yaml": ["segments.smb.lifecycle.growth.sclae", "did you mean 'scale'"],
    "wrong_type_headcount.yaml": ["team.pods.smb_pod.headcount", "valid integer", "got 'three'"],
    "wrong_type_segments_list.yaml": ["segments", "valid dictionary", "got a list"],
    "negative_hours.yaml": ["touch_models.tech.tasks.call.hours", "greater than or equal to 0", "got -2"],
    "probability_above_one.yaml": ["segments.smb.renewal.healthy", "less than or equal to 1", "got 1.3"],
    "probability_negative.yaml": ["segments.smb.winback.probability", "greater than or equal to 0", "got -0.1"],
    "missing_extends_target.yaml": ["extends", "'no_such_base.yaml' not found"],
    "circular_a.yaml": ["extends", "circular", "circular_a.yaml -> circular_b.yaml -> circular_a.yaml"],
    "circular_b.yaml": ["extends", "circular", "circular_b.yaml -> circular_a.yaml -> circular_b.yaml"],
    "extends_not_string.yaml": ["extends", "expected a file name", "got ['_base.yaml']"],
    "empty.yaml": ["file is empty", "segments and touch_models"],
    "comments_only.yaml": ["file is empty"],
    "not_yaml.yaml": ["not valid YAML", "line 4"],
    "not_utf8.yaml": ["cannot read file", "utf-8"],
    "duplicate_key.yaml": ["not valid YAML", "line 7", "duplicate key 'headcount'"],
    "top_level_list.yaml": ["expected a mapping", "got list"],
    "unknown_curve_family.yaml": [
        "segments.smb.lifecycle.onboarding.family",
        "unknown family 'gompertz'",
        "allowed:",
        "weibull",
        "piecewise_exponential",
    ],
    "unknown_trigger.yaml": ["touch_models.tech.tasks.call.trigger", "'cadence'", "got 'monthly'"],
    "missing_required_arr.yaml": ["segments.smb.arr", "required field is missing"],
    "missing_segments.yaml": ["segments", "required field is missing"],
    "unknown_touch_model.yaml": ["segments.smb.touch_model", "unknown touch model 'white_glove'", "defined: tech"],
    "pod_unknown_segment.yaml": ["team.pods.smb_pod.segments", "unknown segment 'enterprize'", "defined: smb"],
    "segment_in_two_pods.yaml": ["team.pods.second_pod.segments", "'smb'", "already served by pod 'smb_pod'"],
    "route_unknown_segment.yaml": ["policy.routes.0.segment", "unknown segment 'enterprise'"],
    "cadence_without_every_days.yaml": ["touch_models.tech.tasks.check_in", "cadence task needs every_days"],
    "due_after_deadline.yaml": ["touch_models.tech.tasks.rescue", "due_days (30.0) must not exceed deadline_days (10.0)"],
    "piecewise_rates_length.yaml": ["segments.smb.lifecycle.at_risk", "rates needs 3 values", "got 2"],
    "arr_max_below_min.yaml": ["segments.smb.arr", "max (1000.0) must be at least min (3000.0)"],
    "hire_beyond_horizon.yaml": ["team.pods.smb_pod.hires", "month 14 is outside the horizon (0..11)"],
    "horizon_zero.yaml": ["horizon_months", "greater than or equal to 1", "got 0"],
    "extends_bad_child.yaml": ["replications", "greater than or equal to 1", "got 0"],
    "bad_date.yaml": ["start_date", "valid date", "got '2027-13-01'"],
    "a_directory.yaml": ["is a directory"],
    "does_not_exist.yaml": ["file not found"],
}


def test_every_bad_file_has_a_case():
    files = {p.name for p in BAD.iterdir() if not p.name.startswith("_")}
    assert files | {"does_not_exist.yaml"} == set(CASES)
    assert len(CASES) >= 22
    assert load_scenario(BAD / "_base.yaml").name == "base"  # the shared base itself is valid


def _check_message(err: str, name: str, fragments: list[str]) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr, got:\n{err}"
    line = lines[0]
    assert line.startswith("cssim: error: "), line
    assert name in line, f"message does not name the file: {line}"
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in: {line}"
    assert "Traceback" not in line and "https://" not in line
    return line


@pytest.mark.parametrize("name", sorted(CASES))
def test_validate_reports_one_line(name, capsys):
    code = main(["validate", str(BAD / name)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    _check_message(err, name, CASES[name])


@pytest.mark.parametrize("name", sorted(CASES))
def test_run_writes_nothing(name, tmp_path, monkeypatch, capsys):
    """``cssim run`` on a bad file fails before simulating: no results folder, no partial folder."""
    monkeypatch.chdir(tmp_path)
    parent = tmp_path / "out"
    code = main(["run", str(BAD / name), "--out", str(parent / "results"), "--jobs", "1", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    _check_message(err, name, CASES[name])
    assert not parent.exists() or list(parent.iterdir()) == []
    # The default output location (results/<name>) is not created either.
    assert {p.name for p in tmp_path.iterdir()} <= {"out"}


def test_load_scenario_raises_scenario_error():
    with pytest.raises(ScenarioError, match=r"unknown_field_typo\.yaml: horizon_month: unknown field"):
        load_scenario(BAD / "unknown_field_typo.yaml")


def test_bad_override_names_the_field():
    with pytest.raises(ScenarioError, match=r"team\.pods\.smb_pod\.headcount: .*greater than or equal to 0.*got -1"):
        load_scenario(BAD / "_base.yaml", {"team.pods.smb_pod.headcount": -1})


def test_base_file_error_reported_through_child(tmp_path, make_scenario_file):
    """A child extending a broken parent fails listing every problem, one line each naming the file and field."""
    make_scenario_file("parent.yaml", {"horizon_months": -3, "segments": {}, "touch_models": {}})
    child = make_scenario_file("child.yaml", {"extends": "parent.yaml", "name": "child"})
    with pytest.raises(ScenarioError) as info:
        load_scenario(child)
    lines = info.value.problems
    assert len(lines) == 3
    assert all("child.yaml: " in line for line in lines)
    assert [line.split(": ")[1] for line in lines] == ["horizon_months", "segments", "touch_models"]


def _cli_command() -> list[str]:
    exe = Path(sys.executable).with_name("cssim")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "cssim.cli"]


@pytest.mark.parametrize(
    ("command", "name"),
    [
        (["run"], "unknown_nested_field.yaml"),
        (["validate"], "circular_a.yaml"),
        ("module", "probability_above_one.yaml"),
    ],
)
def test_subprocess_exit_code_and_stderr(command, name, tmp_path):
    """The installed entry point (and ``python -m cssim.cli``) behaves as the in-process CLI."""
    if command == "module":
        argv = [sys.executable, "-m", "cssim.cli", "validate", str(BAD / name)]
    else:
        argv = [*_cli_command(), *command, str(BAD / name)]
        if command == ["run"]:
            argv += ["--out", str(tmp_path / "res"), "--jobs", "1", "--quiet"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    _check_message(proc.stderr, name, CASES[name])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("index", ["3", "x"])
def test_override_into_a_list_with_a_bad_index(index, tmp_path, make_scenario_file):
    path = make_scenario_file(
        "routed.yaml",
        {"extends": str(BAD / "_base.yaml"), "policy": {"routes": [{"segment": "smb", "touch_model": "tech"}]}},
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, {f"policy.routes.{index}.touch_model": "tech"})
    message = str(info.value)
    assert "routed.yaml" in message and f"policy.routes.{index}.touch_model" in message
    assert "list of 1 items" in message
