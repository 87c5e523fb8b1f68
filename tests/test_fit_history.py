"""Customer-history fitting: validation messages, round trip from known curves, fitted curves in scenarios."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cssim
from cssim.cli import main
from cssim.core.errors import DataError, ScenarioError
from cssim.fitting.covariates import touch_hazard_ratios
from cssim.fitting.curvesfile import fit_history, write_history_fit
from cssim.fitting.history import read_history
from cssim.fitting.univariate import UnivariateFit, durations
from cssim.sim.synth import synthesize_history, write_history

ROOT = Path(__file__).resolve().parents[1]
ROUNDTRIP = ROOT / "tests" / "data" / "roundtrip.yaml"

GOOD = """customer_id,episode,segment,touch_model,arr,signed_date,onboarded_date,first_at_risk_date,recovered_date,churn_date,renewals_due,renewals_renewed
a,0,smb,low,5000,2025-01-10,2025-02-01,,,2025-09-01,0,0
b,0,smb,low,7000,2025-02-10,2025-03-01,2025-06-01,2025-07-01,,1,1
c,0,smb,high,9000,2025-03-10,,,,,0,0
"""


def _write(tmp_path, text, name="history.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _bad(tmp_path, row: int, column: str, value: str) -> Path:
    df = pd.read_csv(pd.io.common.StringIO(GOOD), dtype=str, keep_default_na=False)
    df.loc[row - 1, column] = value
    p = tmp_path / "bad.csv"
    df.to_csv(p, index=False)
    return p


# ------------------------------------------------------------------ validation


def test_good_file_reads_with_types_and_extract_date(tmp_path):
    h = read_history(_write(tmp_path, GOOD))
    assert len(h.frame) == 3 and h.dropped == 0
    assert h.extract_date == pd.Timestamp("2025-09-01")  # latest date in the file
    assert h.frame["arr"].tolist() == [5000.0, 7000.0, 9000.0]
    d = durations(h, "churn", "smb")
    assert d["event"].tolist() == [1, 0, 0]
    assert d["duration"].tolist() == [234.0, 203.0, 175.0]  # censored at the extract date


@pytest.mark.parametrize(
    "row, column, value, expect",
    [
        (2, "churn_date", "2025-01-01", "must be on or after signed_date"),
        (2, "onboarded_date", "2025-01-01", "must be on or after signed_date"),
        (2, "recovered_date", "2025-05-01", "must be on or after first_at_risk_date"),
        (3, "arr", "-5", "negative ARR"),
        (3, "arr", "lots", "is not a number"),
        (2, "signed_date", "2025-13-45", "cannot parse"),
        (2, "renewals_renewed", "3", "must not exceed renewals_due"),
    ],
)
def test_bad_row_names_file_row_column(tmp_path, row, column, value, expect):
    p = _bad(tmp_path, row, column, value)
    with pytest.raises(DataError) as exc:
        read_history(p)
    msg = str(exc.value)
    cid = "abc"[row - 1]
    assert msg.startswith(f"{p}: data row {row} (line {row + 1}, customer_id '{cid}'), column '{column}'")
    assert expect in msg and "1 bad row in all" in msg and "\n" not in msg


def test_duplicate_id_names_second_row(tmp_path):
    p = _write(tmp_path, GOOD + "b,0,smb,low,1000,2025-04-01,,,,,0,0\n")
    with pytest.raises(DataError, match=r"data row 4 \(line 5, customer_id 'b'\), column 'customer_id': duplicate"):
        read_history(p)


def test_unknown_segment(tmp_path):
    with pytest.raises(DataError, match=r"data row 1 .*column 'segment': unknown segment 'smb'; known: ent, mid"):
        read_history(_write(tmp_path, GOOD), segments=["mid", "ent"])


def test_missing_required_column(tmp_path):
    text = GOOD.replace("signed_date", "signed_on")
    with pytest.raises(DataError, match=r"history.csv: missing required column 'signed_date'"):
        read_history(_write(tmp_path, text))


def test_every_bad_row_counted_and_dropped_on_request(tmp_path, capsys):
    text = GOOD + "d,0,smb,low,-1,2025-04-01,,,,,0,0\ne,0,smb,low,1,2025-04-01,,,,2025-03-01,0,0\n"
    p = _write(tmp_path, text)
    with pytest.raises(DataError, match=r"data row 4 .*\(2 bad rows in all; fix them, or pass --drop-bad-rows"):
        read_history(p)
    h = read_history(p, drop_bad_rows=True)
    assert h.dropped == 2 and sorted(h.frame["customer_id"]) == ["a", "b", "c"]
    assert main(["fit", str(p), "--out", str(tmp_path / "out"), "--drop-bad-rows"]) == 2  # too few events to fit
    assert "dropped 2 bad rows (3 kept)" in capsys.readouterr().out


def test_cli_bad_history_is_one_line_exit_2(tmp_path, capsys):
    p = _bad(tmp_path, 1, "arr", "-3")
    assert main(["fit", str(p), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cssim: error: ") and "column 'arr'" in err and "\n" not in err
    assert not (tmp_path / "out").exists()
    assert main(["fit", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == (f"cssim: error: {tmp_path}: is a directory, expected a customer "
                                               "history or a cohort table (CSV or Parquet)")
    for families, message in (("weibull,gompertz", "unknown gompertz; choose from exponential, weibull"),
                              ("spline", "spline cannot be simulated"), (",", "unknown (empty)")):
        assert main(["fit", str(p), "--out", str(tmp_path / "out"), "--families", families]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("cssim: error: --families: ") and message in err and "\n" not in err


def test_parquet_reads_like_csv(tmp_path):
    csv = _write(tmp_path, GOOD)
    pq = tmp_path / "history.parquet"
    pd.read_csv(csv).to_parquet(pq)
    a, b = read_history(csv).frame, read_history(pq).frame
    pd.testing.assert_series_equal(a["churn_date"], b["churn_date"])
    assert b["arr"].tolist() == a["arr"].tolist()


def test_cohort_table_still_goes_to_cohort_fit(tmp_path):
    out = tmp_path / "cohort"
    assert main(["fit", str(ROOT / "examples" / "contractual_cohort_regular.csv"), "--out", str(out),
                 "--until", "7", "--horizon", "12"]) == 0
    proj = pd.read_csv(out / "projection.csv")
    assert {"cohort", "period", "observed", "projected", "lo", "hi"} <= set(proj.columns)
    assert not (out / "curves.json").exists()


# ------------------------------------------------------------------ round trip

TRUTH = {"churn": {"lambda_": 700.0, "rho_": 0.8}, "onboarding": {"mu_": math.log(30.0), "sigma_": 0.6}}
TRUE_HR = 0.6


@pytest.fixture(scope="module")
def roundtrip(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("roundtrip")
    scenario = cssim.load_scenario(ROUNDTRIP)
    path = write_history(synthesize_history(scenario), tmp / "history.csv")
    results = fit_history(path, transitions=("onboarding", "churn"))
    out = write_history_fit(results, tmp / "fit")
    return {"tmp": tmp, "path": path, "results": results, "out": out, "history": results.history}


def test_round_trip_recovers_parameters_within_ci(roundtrip):
    h = roundtrip["history"]
    # Churn: the Weibull of the untreated touch model (the pooled curve mixes in the 0.6 hazard ratio).
    d = durations(h, "churn", "smb")
    assert (d["entry"] > 0).sum() > 500  # the initial book is left-truncated
    churn = UnivariateFit(d[d["touch_model"] == "plain"], "smb", "churn").fit()
    onboarding = roundtrip["results"].fits["smb/onboarding"]
    for fit, fam, transition in ((churn, "weibull", "churn"), (onboarding, "lognormal", "onboarding")):
        params = fit.candidates_.set_index("family").loc[fam, "params"]
        for name, truth in TRUTH[transition].items():
            p = params[name]
            assert p["lower"] <= truth <= p["upper"], (transition, name, p, truth)
            assert p["upper"] - p["lower"] < 0.25 * abs(truth)  # informative, not a vacuous interval
    assert onboarding.best_ == "lognormal"
    # A constant hazard is rejected for a Weibull with shape 0.8.
    cands = churn.candidates_.set_index("family")
    assert cands.loc["exponential", "AIC"] - cands.loc["weibull", "AIC"] > 10


def test_round_trip_touch_hazard_ratio(roundtrip):
    te = touch_hazard_ratios(roundtrip["history"], ["churn"])
    row = te[te["covariate"] == "touch[retain]"].iloc[0]
    assert row["reference"] == "plain"
    assert row["lower"] <= TRUE_HR <= row["upper"] and row["upper"] < 1.0
    arr = te[te["covariate"] == "log_arr"].iloc[0]
    assert arr["lower"] <= 1.0 <= arr["upper"]  # ARR has no effect of its own


def test_curves_file_contents(roundtrip):
    data = cssim.load_curves(roundtrip["out"] / "curves.json")
    prov = data["provenance"]
    assert prov["extract_date"] == "2029-12-31" and len(prov["sha256"]) == 64
    c = data["curves"]["smb/churn"]
    assert c["events"] > 1000 and c["spec"]["family"] == c["chosen"]
    names, cov = c["parameters"]["names"], np.array(c["parameters"]["covariance"])
    assert cov.shape == (len(names), len(names)) and np.all(np.diag(cov) > 0) and np.allclose(cov, cov.T)
    assert {x["family"] for x in c["candidates"]} >= {"exponential", "weibull", "exponential_gamma", "weibull_gamma"}
    assert any(t["covariate"] == "touch[retain]" for t in data["touch_effects"])
    km = pd.read_csv(roundtrip["out"] / "km.csv")
    assert set(km["transition"]) == {"onboarding", "churn"} and (km["lo"] <= km["survival"]).all()
    report = (roundtrip["out"] / "fit_report.md").read_text()
    assert "## smb/churn" in report and "touch[retain]" in report


def _fitted_scenario(tmp: Path, curves: Path, key: str = "smb/churn") -> Path:
    import yaml

    data = yaml.safe_load(ROUNDTRIP.read_text())
    seg = data["segments"]["smb"]
    seg["lifecycle"]["churn"] = {"family": "fitted", "file": str(Path("fit") / curves.name), "key": key}
    seg["lifecycle"]["onboarding"] = {"family": "fitted", "file": "fit/curves.json", "key": "smb/onboarding"}
    seg["initial_customers"] *= 3
    seg["new_logos_per_month"] *= 3
    data["policy"] = {"routes": []}  # the pooled fitted curve already contains the touch mix
    data["touch_models"] = {"plain": {"tasks": {}}}
    data["seed"] = 11
    p = tmp / "fitted.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def test_fitted_scenario_loads_validates_simulates(roundtrip):
    p = _fitted_scenario(roundtrip["tmp"], roundtrip["out"] / "curves.json")
    s = cssim.load_scenario(p)
    churn = s.segments["smb"].lifecycle.churn
    assert churn.family == "fitted"
    # The chosen family, first in an average when the fit has several credible ones, with its edge recorded.
    resolved = churn.resolved
    chosen = resolved["models"][0]["curve"] if resolved["family"] == "averaged" else resolved
    assert {k: v for k, v in chosen.items() if k not in ("uncertainty", "tail")} == \
        roundtrip["results"].curve_spec("smb/churn")
    assert chosen["tail"]["edge"] == roundtrip["results"].fits["smb/churn"].edge_["edge"]
    # simulate() may re-validate a dump: the fitted curve must resolve again from it.
    again = cssim.scenario_from_dict(s.model_dump(mode="json"))
    assert again.segments["smb"].lifecycle.churn.build() == churn.build()
    assert main(["validate", str(p)]) == 0
    res = cssim.simulate(s.model_copy(update={"horizon_months": 6}), replications=1, jobs=1, progress=False)
    k = res.kpis()
    logo = k.loc[(k.iloc[:, 0] == "logo_retention") & (k.get("segment", "all") == "all"), "mean"]
    assert len(logo) >= 1 and 0.5 < float(logo.iloc[0]) < 1.0


def test_fitted_scenario_errors_name_file_and_field(roundtrip, tmp_path):
    import yaml

    good = _fitted_scenario(roundtrip["tmp"], roundtrip["out"] / "curves.json")
    data = yaml.safe_load(good.read_text())
    for field in ("churn", "onboarding"):
        data["segments"]["smb"]["lifecycle"][field]["file"] = str(roundtrip["out"] / "curves.json")
    for change, expect in (
        ({"key": "smb/nope"}, "no curve 'smb/nope'; the file has: smb/churn, smb/onboarding"),
        ({"file": str(tmp_path / "missing.json")}, "curves file not found"),
        ({"file": str(roundtrip["out"] / "km.csv")}, "not a cssim curves file"),
    ):
        bad = copy.deepcopy(data)
        bad["segments"]["smb"]["lifecycle"]["churn"].update(change)
        p = tmp_path / "bad.yaml"
        p.write_text(yaml.safe_dump(bad))
        with pytest.raises(ScenarioError) as exc:
            cssim.load_scenario(p)
        msg = str(exc.value)
        assert msg.startswith(f"{p}: segments.smb.lifecycle.churn: ") and expect in msg, msg


def test_simulation_from_fitted_curves_reproduces_km(roundtrip):
    """The history simulated from the fitted curves stays inside the data's Kaplan–Meier band."""
    from lifelines import KaplanMeierFitter

    p = _fitted_scenario(roundtrip["tmp"], roundtrip["out"] / "curves.json")
    sim = write_history(synthesize_history(cssim.load_scenario(p)), roundtrip["tmp"] / "simulated.csv", force=True)
    observed = roundtrip["results"].fits["smb/churn"].km_table()
    d = durations(read_history(sim), "churn", "smb")
    km = KaplanMeierFitter().fit(d["duration"], d["event"], entry=d["entry"])
    times = [60, 180, 365, 540, 730, 900]
    obs = observed.set_index("time")
    for t in times:
        row = obs.loc[:t].iloc[-1]
        s_sim = float(km.survival_function_at_times(t).iloc[0])
        assert row["lo"] <= s_sim <= row["hi"], (t, s_sim, row.to_dict())
    # The check has teeth: a curve with half the churn scale falls outside the band.
    wrong = cssim.model.scenario.WeibullCurve(family="weibull", scale=350.0, shape=0.8).build()
    assert not all(obs.loc[:t].iloc[-1]["lo"] <= wrong.survival(t) for t in times)


def test_example_history_is_the_synth_output():
    h = read_history(ROOT / "examples" / "history.csv")
    assert h.extract_date == pd.Timestamp("2029-12-31") and set(h.segments) == {"enterprise", "mid_market", "smb"}
    assert (ROOT / "examples" / "history.csv").stat().st_size < 2_000_000


# ------------------------------------------------------------------ more validation

RENEWAL_GOOD = GOOD.replace("renewals_renewed\n", "renewals_renewed,matured_date,renewal_log\n").replace(
    "2025-09-01,0,0\n", "2025-09-01,0,0,,\n").replace(
    "2025-07-01,,1,1\n", "2025-07-01,,1,1,2025-05-01,2025-08-10 renewed at_risk touched\n").replace(
    "c,0,smb,high,9000,2025-03-10,,,,,0,0\n", "c,0,smb,high,9000,2025-03-10,,,,,0,0,,\n")


@pytest.mark.parametrize(
    "row, column, value, expect",
    [
        (2, "renewal_log", "2025-08-10 renewd", "outcome is 'renewd'; use renewed or lost"),
        (2, "renewal_log", "2025-31-08 renewed", "cannot parse '2025-31-08' as a date"),
        (2, "renewal_log", "2025-08-10 renewed healthy", "unknown flag 'healthy'; flags are at_risk, onboarding, touched"),
        (2, "renewal_log", "2024-08-10 renewed", "renewal on 2024-08-10 is outside the episode"),
        (2, "matured_date", "2025-02-20", "must be on or after onboarded_date"),
        (3, "matured_date", "2025-04-01", "given without onboarded_date"),
    ],
)
def test_bad_renewal_log_and_maturity(tmp_path, row, column, value, expect):
    df = pd.read_csv(pd.io.common.StringIO(RENEWAL_GOOD), dtype=str, keep_default_na=False)
    assert read_history(_write(tmp_path, RENEWAL_GOOD, "ok.csv")).renewals["touched"].tolist() == [1]
    df.loc[row - 1, column] = value
    p = tmp_path / "bad.csv"
    df.to_csv(p, index=False)
    with pytest.raises(DataError) as exc:
        read_history(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}: data row {row} (line {row + 1}, customer_id '{'abc'[row - 1]}'), column '{column}'"), msg
    assert expect in msg


def test_cli_scenario_names_the_allowed_segments(tmp_path, capsys):
    p = _bad(tmp_path, 3, "segment", "ent")
    assert main(["fit", str(p), "--out", str(tmp_path / "out"), "--scenario", str(ROUNDTRIP)]) == 2
    err = capsys.readouterr().err
    assert "data row 3 (line 4, customer_id 'c'), column 'segment': unknown segment 'ent'; known: smb" in err


def test_cohort_table_without_cohort_module_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "cssim.fitting.cohorts", None)  # import now raises ImportError
    p = _write(tmp_path, "cohort,period,active\n2020,0,100\n2020,1,80\n", "cohorts.csv")
    assert main(["fit", str(p), "--out", str(tmp_path / "out")]) == 2
    assert "looks like a cohort table (cohort, period, active), but cohort fitting is not available" in capsys.readouterr().err


# ------------------------------------------------------------------ second round trip: renewals, heterogeneity

RENEWAL_SCENARIO = ROOT / "tests" / "data" / "roundtrip_renewal.yaml"
RENEWAL_TRUTH = {  # tests/data/roundtrip_renewal.yaml
    "growth": ("weibull", {"lambda_": 200.0, "rho_": 1.3}),
    "at_risk": ("exponential_gamma", {"shape_": 1.5, "scale_": 500.0}),
}


@pytest.fixture(scope="module")
def renewal_roundtrip(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("renewal")
    path = write_history(synthesize_history(cssim.load_scenario(RENEWAL_SCENARIO)), tmp / "history.csv")
    return fit_history(path, transitions=("growth", "at_risk"))


def test_round_trip_growth_and_heterogeneous_at_risk(renewal_roundtrip):
    for transition, (family, truth) in RENEWAL_TRUTH.items():
        fit = renewal_roundtrip.fits[f"mid/{transition}"]
        assert fit.truncated_ > 300  # the initial book enters part-way through its clocks
        params = fit.candidates_.set_index("family").loc[family, "params"]
        for name, value in truth.items():
            p = params[name]
            # Within 3 standard errors (four parameters checked on one history: 95 % intervals would fail
            # about one seed in five by chance; seeds 5-10 give shape 1.32-1.60 around the true 1.5).
            assert abs(p["estimate"] - value) <= 3 * p["se"], (transition, name, p, value)
            assert p["upper"] - p["lower"] < 0.5 * value
    at_risk = renewal_roundtrip.fits["mid/at_risk"]
    cands = at_risk.candidates_.set_index("family")
    # Customers differ, so the hazard falls with tenure: the gamma mixtures beat a constant hazard by far.
    assert at_risk.best_ in ("exponential_gamma", "weibull_gamma")
    assert cands.loc["exponential", "AIC"] - cands.loc["exponential_gamma", "AIC"] > 50
    # The spline is scored (and converges near the best fits) but is never chosen.
    assert cands.loc["spline", "converged"] and not cands.loc["spline", "simulatable"] and not cands.loc["spline", "chosen"]
    assert abs(cands.loc["spline", "log_likelihood"] - cands.loc[at_risk.best_, "log_likelihood"]) < 20
    with pytest.raises(ValueError, match="no cssim curve"):
        at_risk.curve_spec("spline")
    assert at_risk.to_dict()["spec"]["family"] == at_risk.best_


def test_round_trip_renewal_model(renewal_roundtrip):
    r = renewal_roundtrip.renewal["mid"]
    assert r["source"] == "renewal_log" and r["renewals_due"] > 3000
    truth = {
        "const": math.log(0.9 / 0.1),
        "at_risk": math.log(0.5 / 0.5) - math.log(0.9 / 0.1),
        "onboarding": math.log(0.4),
        "touched": math.log(2.0),
    }
    for name, value in truth.items():
        c = r["coefficients"][name]
        assert c["lower"] <= value <= c["upper"], (name, c, value)
    m = r["renewal"]
    assert abs(m["healthy"] - 0.9) < 0.03 and abs(m["at_risk"] - 0.5) < 0.06
    assert 0.25 < m["not_activated_odds_ratio"] < 0.6 and 1.5 < m["touch_renewal_odds"] < 2.7
    assert "touch_renewal_odds" in renewal_roundtrip.report()


def test_results_summary_and_plot(roundtrip):
    import matplotlib

    matplotlib.use("Agg")
    res = roundtrip["results"]
    s = res.summary()
    chosen = s[s["chosen"]]
    assert sorted(chosen["key"]) == ["smb/churn", "smb/onboarding"]
    for key, g in s.groupby("key"):  # the chosen family has the lowest AIC among simulatable candidates
        best = g[g["simulatable"] & ~g["at_bound"]].sort_values("AIC").iloc[0]
        assert best["chosen"] and best["family"] == res.fits[key].best_
    ax = res.plot_vs_km("smb/onboarding", families=["lognormal", "exponential"])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(lb.startswith("lognormal (AIC") for lb in labels) and any(lb.startswith("exponential (AIC") for lb in labels)
    with pytest.raises(KeyError, match="fitted: smb/onboarding, smb/churn"):
        res.plot_vs_km("smb/growth")
