"""The command line: results folders, their safety rules, validate, schema; and ``extends``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cssim
from cssim import load_scenario, scenario_hash
from cssim.cli import main
from cssim.model.loader import deep_merge
from cssim.model.metrics import KPI_NAMES

REPO = Path(__file__).resolve().parents[1]


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _run_args(scenario_file, out, *extra):
    return ["run", str(scenario_file), "--out", str(out), "--replications", "2", "--jobs", "1", "--quiet", *extra]


@pytest.fixture
def results_dir(tmp_path, scenario_file, capsys):
    """A results folder written by ``cssim run`` on the small scenario."""
    out = tmp_path / "results" / "tiny"
    code, stdout, err = run(_run_args(scenario_file, out), capsys)
    assert code == 0, err
    return out


def test_run_writes_a_complete_folder(results_dir, scenario_file, small_scenario):
    names = {p.name for p in results_dir.iterdir()}
    assert {"manifest.json", "kpis.csv", "kpis_by_replication.csv", "monthly.csv", "monthly_pods.csv"} <= names
    assert {"summary.txt", "scenario.yaml"} <= names
    assert not [p for p in results_dir.parent.iterdir() if p.name.startswith(".")], "temporary folder left behind"

    manifest = json.loads((results_dir / "manifest.json").read_text())
    assert manifest["seed"] == small_scenario.seed
    assert manifest["replications"] == 2
    assert manifest["scenario"]["name"] == "tiny"
    assert manifest["scenario"]["segments"].keys() == small_scenario.segments.keys()
    # The hash is of the scenario as run (with the --replications override applied).
    assert manifest["scenario_hash"] == scenario_hash(small_scenario.model_copy(update={"replications": 2}))
    assert manifest["scenario_hash"] != scenario_hash(small_scenario)
    for package in ("cssim", "simpy", "numpy", "pandas", "pydantic", "python"):
        assert manifest["versions"][package]
    assert manifest["versions"]["cssim"] == cssim.__version__


def test_scenario_copy_reproduces_the_hash(results_dir):
    """The resolved scenario written beside the results loads back to the manifest's content hash."""
    manifest = json.loads((results_dir / "manifest.json").read_text())
    again = load_scenario(results_dir / "scenario.yaml")
    assert scenario_hash(again) == manifest["scenario_hash"]


def test_kpis_csv(results_dir):
    kpis = pd.read_csv(results_dir / "kpis.csv")
    assert {"kpi", "scope", "unit", "mean", "lo", "hi", "ci_lo", "ci_hi", "n"} <= set(kpis.columns)
    assert set(KPI_NAMES) == set(kpis.loc[kpis.scope == "all", "kpi"])
    assert {"all", "enterprise", "smb"} <= set(kpis.scope)
    ok = kpis[["mean", "lo", "hi"]].notna().all(axis=1)
    assert ok.sum() > 20
    assert (kpis.loc[ok, "lo"] <= kpis.loc[ok, "mean"] + 1e-9).all()
    assert (kpis.loc[ok, "mean"] <= kpis.loc[ok, "hi"] + 1e-9).all()
    by_rep = pd.read_csv(results_dir / "kpis_by_replication.csv")
    assert set(by_rep.replication) == {0, 1}
    grr = by_rep[(by_rep.kpi == "grr") & (by_rep.scope == "all")]["value"]
    assert kpis.set_index(["kpi", "scope"]).loc[("grr", "all"), "mean"] == pytest.approx(grr.mean())


def test_monthly_csv(results_dir, small_scenario):
    monthly = pd.read_csv(results_dir / "monthly.csv")
    months, segments = small_scenario.horizon_months, len(small_scenario.segments)
    assert len(monthly) == 2 * months * segments
    for col in ("replication", "month", "date", "segment", "active", "arr", "mrr", "new_logos", "churned_arr"):
        assert col in monthly.columns
    assert monthly.month.min() == 1 and monthly.month.max() == months
    assert monthly.date.iloc[0] == "2027-01-31"
    np.testing.assert_allclose(monthly.mrr, monthly.arr / 12)
    pods = pd.read_csv(results_dir / "monthly_pods.csv")
    assert len(pods) == 2 * months * len(small_scenario.team.pods)
    assert (pods.utilisation.dropna() <= 1 + 1e-9).all()


def test_run_prints_summary(tmp_path, scenario_file, capsys):
    code, out, err = run(_run_args(scenario_file, tmp_path / "r"), capsys)
    assert code == 0
    assert "grr" in out and "nrr" in out and "90% interval" in out
    assert str(tmp_path / "r") in out


def test_seed_override_is_recorded(tmp_path, scenario_file, capsys):
    code, _, _ = run(_run_args(scenario_file, tmp_path / "r", "--seed", "99"), capsys)
    assert code == 0
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["seed"] == 99 and manifest["scenario"]["seed"] == 99


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_refuses_to_overwrite_without_force(results_dir, scenario_file, capsys):
    before = _snapshot(results_dir)
    code, out, err = run(_run_args(scenario_file, results_dir, "--seed", "5"), capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and "already exists" in err and "--force" in err
    assert _snapshot(results_dir) == before


def test_force_replaces_a_results_folder(results_dir, scenario_file, capsys):
    listed = json.loads((results_dir / "manifest.json").read_text())["files"]
    assert set(listed) == {p.name for p in results_dir.iterdir()}
    code, _, err = run(_run_args(scenario_file, results_dir, "--seed", "5", "--force"), capsys)
    assert code == 0, err
    assert json.loads((results_dir / "manifest.json").read_text())["seed"] == 5
    assert [p.name for p in results_dir.parent.iterdir()] == [results_dir.name], "old or partial folder left"


def test_force_never_replaces_a_folder_of_the_users(tmp_path, scenario_file, capsys):
    mine = tmp_path / "my_analysis"
    mine.mkdir()
    (mine / "notes.md").write_text("important")
    (mine / "sub").mkdir()
    (mine / "sub" / "data.csv").write_text("a,b\n1,2\n")
    before = _snapshot(mine)
    code, _, err = run(_run_args(scenario_file, mine, "--force"), capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and "not a cssim results folder" in err
    assert _snapshot(mine) == before
    # A manifest.json that cssim did not write does not make it one either.
    (mine / "manifest.json").write_text('{"tool": "something else"}')
    code, _, err = run(_run_args(scenario_file, mine, "--force"), capsys)
    assert code == 2 and (mine / "notes.md").read_text() == "important"


def test_refuses_a_file_as_output(tmp_path, scenario_file, capsys):
    target = tmp_path / "results.txt"
    target.write_text("keep")
    code, _, err = run(_run_args(scenario_file, target, "--force"), capsys)
    assert code == 2 and "not a folder" in err
    assert target.read_text() == "keep"


def test_failure_while_writing_leaves_no_folder(tmp_path, scenario_file, monkeypatch, capsys):
    def boom(self):
        raise OSError("disk full")

    monkeypatch.setattr(cssim.SimulationResults, "pods_monthly", boom)
    out = tmp_path / "out" / "r"
    code, stdout, err = run(_run_args(scenario_file, out), capsys)
    assert code == 2 and stdout == ""
    assert len(err.splitlines()) == 1 and "disk full" in err and str(out) in err
    assert not out.exists()
    assert list((tmp_path / "out").iterdir()) == [], "partial folder left behind"


def test_failure_while_replacing_keeps_the_old_folder(results_dir, scenario_file, monkeypatch, capsys):
    before = _snapshot(results_dir)

    def boom(self, *a, **k):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(cssim.SimulationResults, "summary", boom)
    with pytest.raises(RuntimeError):
        main(_run_args(scenario_file, results_dir, "--seed", "5", "--force"))
    assert _snapshot(results_dir) == before
    assert [p.name for p in results_dir.parent.iterdir()] == [results_dir.name]


def test_validate_ok(scenario_file, capsys):
    code, out, err = run(["validate", str(scenario_file)], capsys)
    assert code == 0 and err == ""
    assert "ok" in out and "'tiny'" in out and "2 segments" in out


@pytest.mark.parametrize("name", ["baseline.yaml", "high_touch.yaml", "low_touch.yaml"])
def test_shipped_scenarios_validate(name, capsys):
    code, out, err = run(["validate", str(REPO / "scenarios" / name)], capsys)
    assert code == 0, err


def test_validate_error(make_scenario_file, scenario_dict, capsys):
    scenario_dict["team"]["pods"]["enterprise"]["hours_per_week"] = -40
    path = make_scenario_file("bad.yaml", scenario_dict)
    code, out, err = run(["validate", str(path)], capsys)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert "bad.yaml" in err and "team.pods.enterprise.hours_per_week" in err and "got -40" in err


def test_schema_is_json_with_segments_and_extends(capsys):
    code, out, err = run(["schema"], capsys)
    assert code == 0
    schema = json.loads(out)
    assert "segments" in schema["properties"] and "extends" in schema["properties"]
    assert schema["properties"]["extends"]["type"] == "string"
    # A whole file needs segments and touch models; a file that extends another needs neither.
    full, partial = schema["$defs"]["Scenario"], schema["$defs"]["PartialScenario"]
    assert schema["else"] == {"$ref": "#/$defs/Scenario"} and schema["then"] == {"$ref": "#/$defs/PartialScenario"}
    assert {"segments", "touch_models"} <= set(full["required"]) and partial["required"] == ["extends"]
    assert full.get("additionalProperties") is False and partial.get("additionalProperties") is False


# --------------------------------------------------------------------------- extends


def test_extends_deep_merges(make_scenario_file, scenario_dict):
    make_scenario_file("base.yaml", scenario_dict)
    child = make_scenario_file(
        "variant.yaml",
        {
            "extends": "base.yaml",
            "name": "variant",
            "team": {"pods": {"enterprise": {"headcount": 5}}},
            "segments": {"smb": {"lifecycle": {"churn": {"family": "weibull", "scale": 800, "shape": 0.8}}}},
        },
    )
    base = load_scenario(child.parent / "base.yaml")
    variant = load_scenario(child)
    assert variant.name == "variant"
    assert variant.team.pods["enterprise"].headcount == 5
    # Everything else in the overridden mapping is inherited ...
    assert variant.team.pods["enterprise"].book_cap == base.team.pods["enterprise"].book_cap == 15
    assert variant.team.pods["enterprise"].hires == base.team.pods["enterprise"].hires
    # ... a nested mapping replaced whole where it is given (a curve is one value) ...
    assert variant.segments["smb"].lifecycle.churn.family == "weibull"
    assert variant.segments["smb"].lifecycle.onboarding == base.segments["smb"].lifecycle.onboarding
    # ... and untouched sections are identical.
    assert variant.segments["enterprise"] == base.segments["enterprise"]
    assert variant.touch_models == base.touch_models
    assert scenario_hash(variant) != scenario_hash(base)


def test_extends_chain_and_relative_paths(tmp_path, make_scenario_file, scenario_dict):
    make_scenario_file("lib/base.yaml", scenario_dict)
    make_scenario_file("lib/mid.yaml", {"extends": "base.yaml", "horizon_months": 12})
    leaf = make_scenario_file("variants/leaf.yaml", {"extends": "../lib/mid.yaml", "seed": 3})
    s = load_scenario(leaf)
    assert (s.horizon_months, s.seed, s.name) == (12, 3, "tiny")


def test_shipped_variant_inherits_from_baseline():
    base = load_scenario(REPO / "scenarios" / "baseline.yaml")
    low = load_scenario(REPO / "scenarios" / "low_touch.yaml")
    assert low.name == "low_touch"
    assert low.segments["mid_market"].touch_model != base.segments["mid_market"].touch_model
    assert low.segments["mid_market"].arr == base.segments["mid_market"].arr
    assert low.segments["enterprise"] == base.segments["enterprise"]
    assert low.team.pods["enterprise"] == base.team.pods["enterprise"]


def test_deep_merge_does_not_mutate_inputs():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    over = {"a": {"b": 2}}
    merged = deep_merge(base, over)
    assert merged == {"a": {"b": 2, "c": [1, 2]}, "d": 1}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1} and over == {"a": {"b": 2}}
    merged["a"]["c"].append(3)
    assert base["a"]["c"] == [1, 2]


def test_version_and_python_dash_m():
    import subprocess
    import sys

    import cssim

    for cmd in ([sys.executable, "-m", "cssim", "--version"], [sys.executable, "-m", "cssim.cli", "--version"]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stdout.strip() == f"cssim {cssim.__version__}", done


# --------------------------------------------------------------------------- --set, --format, start-up


def test_set_overrides_a_field_like_the_file_and_like_python(tmp_path, scenario_file, capsys):
    out = tmp_path / "set"
    code, stdout, err = run(_run_args(scenario_file, out, "--set", "team.pods.enterprise.headcount=5",
                                      "--set", "segments.smb.arr.median=6e3", "--format", "parquet"), capsys)
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["scenario"]["team"]["pods"]["enterprise"]["headcount"] == 5
    assert manifest["scenario"]["segments"]["smb"]["arr"]["median"] == 6000.0
    # The same override from Python gives the same scenario (same hash) and the same numbers.
    same = load_scenario(scenario_file, overrides={"team.pods.enterprise.headcount": 5,
                                                   "segments.smb.arr.median": 6000.0, "replications": 2})
    assert manifest["scenario_hash"] == scenario_hash(same)
    python = cssim.simulate(same).kpis()
    written = pd.read_parquet(out / "kpis.parquet")
    assert manifest["format"] == "parquet" and "kpis.parquet" in manifest["files"] and not (out / "kpis.csv").exists()
    pd.testing.assert_frame_equal(written, python, check_dtype=False)
    assert "kpis.parquet" in stdout
    # The report reads a Parquet folder as it reads a CSV one.
    assert main(["report", str(out)]) == 0 and (out / "report.md").is_file()


@pytest.mark.parametrize("assignment, message", [
    ("headcount", "expected FIELD=VALUE"),
    ("team.pods.nope.headcount=3", "team.pods.nope"),
    ("team.pods.enterprise.headcount=-1", "team.pods.enterprise.headcount"),
    ("seed=[1, ", "not YAML"),
])
def test_a_bad_set_is_one_line_naming_it(tmp_path, scenario_file, capsys, assignment, message):
    code, stdout, err = run(["validate", str(scenario_file), "--set", assignment], capsys)
    assert code == 2 and stdout == ""
    assert len(err.strip().splitlines()) >= 1 and message in err and "Traceback" not in err


def test_help_and_version_import_no_heavy_module():
    """`cssim --help` and `--version` load the command line only: no pandas, SimPy, lifelines or pydantic."""
    import subprocess
    import sys

    code = ("import sys, cssim.cli; cssim.cli.build_parser(); "
            "print(sorted(m for m in ('pandas', 'simpy', 'lifelines', 'pydantic', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done
