"""`cssim report`: a one-page summary of a results folder, with its figures beside it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import copy
import json

import numpy as np
import pandas as pd
import pytest
from conftest import small_scenario_dict

from cssim import scenario_from_dict, simulate, write_results
from cssim.analysis.compare import compare
from cssim.cli import main
from cssim.core.formatting import fmt_value as _fmt
from cssim.report import read_results, write_report


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    results = simulate(scenario_from_dict(small_scenario_dict()), replications=3)
    out = tmp_path_factory.mktemp("rep") / "run"
    write_results(results, out)
    return out, results


def test_folder_round_trip_matches_results(run_folder):
    folder, results = run_folder
    back = read_results(folder)
    assert back.segments == results.segments and back.pods == results.pods
    for metric in ("arr", "active", "churned_arr"):
        pd.testing.assert_frame_equal(back.series(metric), results.series(metric), check_exact=False)
    pd.testing.assert_frame_equal(
        back.pods_monthly().drop(columns="date"), results.pods_monthly().drop(columns="date"), check_exact=False
    )
    kpis = back.kpis(scope="all").set_index("kpi")
    assert kpis.loc["grr", "mean"] == pytest.approx(results.kpis(scope="all").set_index("kpi").loc["grr", "mean"])


def test_report_markdown_with_figures(run_folder, capsys):
    folder, results = run_folder
    assert main(["report", str(folder)]) == 0
    assert "wrote" in capsys.readouterr().out
    text = (folder / "report.md").read_text()
    assert text.startswith("# cssim report — scenario tiny")
    grr = results.kpis(scope="all").set_index("kpi").loc["grr"]
    assert f"| GRR | {_fmt(grr['mean'], 'ratio')} | {_fmt(grr['lo'], 'ratio')} – {_fmt(grr['hi'], 'ratio')}" in text
    images = [line[line.index("(") + 1 : -1] for line in text.splitlines() if line.startswith("![")]
    assert len(images) == 6
    for name in images:
        png = folder / name
        assert png.is_file() and png.stat().st_size > 15_000
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_html_elsewhere(run_folder, tmp_path):
    folder, _ = run_folder
    out = tmp_path / "pages" / "run.html"
    assert main(["report", str(folder), "--out", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page
    assert "<img src='run-arr.png'" in page and (out.parent / "run-arr.png").is_file()


@pytest.mark.parametrize("setup", ["missing", "empty", "foreign_manifest", "incomplete"])
def test_not_a_results_folder(tmp_path, capsys, run_folder, setup):
    folder = tmp_path / "x"
    if setup != "missing":
        folder.mkdir()
    if setup == "foreign_manifest":
        (folder / "manifest.json").write_text(json.dumps({"name": "mine"}))
    if setup == "incomplete":
        src, _ = run_folder
        (folder / "manifest.json").write_text((src / "manifest.json").read_text())
        (folder / "kpis.csv").write_text((src / "kpis.csv").read_text())
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cssim: error:") and "not a cssim results folder" in err
    assert "\n" not in err
    assert not (folder / "report.md").exists()


def test_report_bad_suffix(run_folder, tmp_path, capsys):
    folder, _ = run_folder
    assert main(["report", str(folder), "--out", str(tmp_path / "r.pdf")]) == 2
    assert ".md or .html" in capsys.readouterr().err


def test_comparison_report(tmp_path):
    a = scenario_from_dict(small_scenario_dict())
    data = copy.deepcopy(small_scenario_dict())
    data["name"] = "churnier"
    data["segments"]["smb"]["lifecycle"]["churn"]["scale"] = 300
    cr = compare([a, scenario_from_dict(data)], replications=3)
    folder = tmp_path / "cmp"
    folder.mkdir()
    cr.table().to_csv(folder / "comparison.csv", index=False)
    cr.differences().to_csv(folder / "differences.csv", index=False)
    (folder / "manifest.json").write_text(json.dumps(cr.manifest, default=str))
    out, figures = write_report(folder)
    text = out.read_text()
    assert "comparison of tiny, churnier" in text
    assert {f.name for f in figures} == {"report-forest.png", "report-forest-money.png"}
    d = cr.differences().set_index("kpi").loc["grr"]
    assert f"{d['diff'] * 100:+.2f} pts" in text
    assert np.isfinite(d["diff"])


def test_plan_report(tmp_path, capsys):
    from conftest import write_yaml

    scenario = write_yaml(tmp_path / "tiny.yaml", small_scenario_dict())
    folder = tmp_path / "plan"
    pod = next(iter(small_scenario_dict()["team"]["pods"]))
    rc = main(["plan", str(scenario), "--target", "grr >= 0.5", "--over", f"team.pods.{pod}.headcount",
               "--max", "4", "-n", "11", "-o", str(folder), "-j", "1", "-q"])
    assert rc in (0, 1)
    capsys.readouterr()
    assert main(["report", str(folder)]) == 0
    text = (folder / "report.md").read_text()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert f"plan for tiny: {manifest['target']}" in text
    if manifest["answer"] is not None:
        assert f"headcount meeting {manifest['target']}: {manifest['answer']}" in text
    assert (folder / "report-frontier.png").stat().st_size > 15_000


def test_sweep_report(tmp_path, capsys):
    from conftest import write_yaml

    data = small_scenario_dict()
    pod = next(iter(data["team"]["pods"]))
    data["sweep"] = {"grid": {f"team.pods.{pod}.headcount": [1, 3]}}
    scenario = write_yaml(tmp_path / "tiny.yaml", data)
    folder = tmp_path / "sweep"
    assert main(["sweep", str(scenario), "-n", "2", "-o", str(folder), "-j", "1", "-q", "--no-cache"]) == 0
    capsys.readouterr()
    out, figures = write_report(folder)
    text = out.read_text()
    sweep = pd.read_csv(folder / "sweep.csv")
    grr = sweep[(sweep.kpi == "grr") & (sweep.scope == "all")].sort_values("point")["mean"].tolist()
    assert "sweep of tiny" in text
    assert "| headcount | GRR |" in text
    for value in grr:
        assert _fmt(value, "ratio") in text
    assert [f.name for f in figures] == ["report-frontier.png"]


def test_folder_whose_scenario_no_longer_validates(run_folder, tmp_path):
    import shutil

    folder, results = run_folder
    copy_ = tmp_path / "old"
    shutil.copytree(folder, copy_)
    manifest = json.loads((copy_ / "manifest.json").read_text())
    manifest["scenario"]["a_field_from_another_version"] = 1
    (copy_ / "manifest.json").write_text(json.dumps(manifest))
    back = read_results(copy_)
    assert type(back.scenario).__name__ == "SimpleNamespace"
    pd.testing.assert_frame_equal(back.series("arr"), results.series("arr"), check_exact=False)
    out, figures = write_report(copy_, tmp_path / "old.html")
    assert "<code>" in out.read_text() and len(figures) == 6


def test_by_segment_comparison_report_shows_segments_and_their_forests(tmp_path, capsys):
    from conftest import write_yaml

    a = small_scenario_dict()
    b = copy.deepcopy(a)
    b["name"] = "churnier"
    b["segments"]["smb"]["lifecycle"]["churn"]["scale"] = 300
    fa, fb = write_yaml(tmp_path / "a.yaml", a), write_yaml(tmp_path / "b.yaml", b)
    folder = tmp_path / "cmp"
    assert main(["compare", str(fa), str(fb), "-n", "4", "-j", "1", "-q", "--by-segment", "-o", str(folder)]) == 0
    capsys.readouterr()
    assert main(["report", str(folder), "--out", str(folder / "report.html")]) == 0
    page = (folder / "report.html").read_text()
    assert "<h3>Segment smb</h3>" in page and "<h3>Segment and pod enterprise</h3>" in page
    assert "report-forest-smb.png" in page and (folder / "report-forest-smb.png").stat().st_size > 10_000
    # The smb churn change shows in smb's own table, with its interval.
    smb = page[page.index("<h3>Segment smb</h3>"):]
    assert "GRR" in smb[: smb.index("<img")] and " pts" in smb[: smb.index("<img")]
    assert "Trade-off churnier vs tiny" in page
    assert "CSM cost (horizon total)" in page
