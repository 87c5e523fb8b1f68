"""Back-testing (cssim.backtest) and explicit starting books (segments.*.book)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from cssim.analysis.backtest import actual_paths, backtest, book_at, censor_history, write_backtest
from cssim.cli import main
from cssim.core.errors import DataError, ScenarioError
from cssim.model.loader import load_scenario, scenario_from_dict
from cssim.model.scenario import RESOLVED, Scenario
from cssim.sim.engine import GROWTH, ONBOARDING, SIGNING, Engine
from cssim.sim.synth import synthesize_history

DATA = Path(__file__).parent / "data"
TRUTH = DATA / "backtest_truth.yaml"
CUTOFF = "2024-12-31"
STEEP_CUTOFF = "2024-06-30"
FAMILIES = ("exponential", "weibull", "lognormal", "exponential_gamma")


def _histories(tmp_path_factory, seeds, overrides):
    scenario = load_scenario(TRUTH, overrides)
    out = []
    for seed in seeds:
        path = tmp_path_factory.mktemp("hist") / f"history_{seed}.csv"
        synthesize_history(scenario, seed=seed).to_csv(path, index=False)
        out.append(path)
    return out


@pytest.fixture(scope="module")
def histories(tmp_path_factory):
    """Three synthetic 36-month histories (different seeds) of a business whose churn hazard falls with tenure."""
    return _histories(tmp_path_factory, (11, 12, 13), {})


@pytest.fixture(scope="module")
def results(histories):
    return [backtest(h, CUTOFF, 12, replications=40, seed=3, families=FAMILIES) for h in histories]


@pytest.fixture(scope="module")
def steep(tmp_path_factory):
    """Strongly heterogeneous churn (exponential-gamma, shape 0.4) and a younger business: 30 months of history."""
    overrides = {"horizon_months": 30, "segments.smb.lifecycle.churn.scale": 60.0,
                 "segments.smb.lifecycle.churn.shape": 0.4}
    return [backtest(h, STEEP_CUTOFF, 12, replications=40, seed=3, families=FAMILIES)
            for h in _histories(tmp_path_factory, (11, 12, 13, 14), overrides)]


# --------------------------------------------------------------------------- forecasts vs truth


def test_intervals_cover_the_realised_path(results):
    cov = [r.scores.set_index(["method", "metric"]).loc[("cssim", "active_logos"), "coverage"] for r in results]
    arr = [r.scores.set_index(["method", "metric"]).loc[("cssim", "arr"), "coverage"] for r in results]
    assert np.mean(cov) >= 0.7, cov
    assert np.mean(arr) >= 0.7, arr


def test_cssim_beats_the_flat_rate_when_hazard_falls_with_tenure(steep):
    """Pooled over four histories: one short history can favour a flat rate by chance (or AIC can pick a
    log-normal that runs high, see docs/backtest.md), four cannot."""
    cov = pd.concat([r.scores.set_index(["method", "metric"])["coverage"] for r in steep], axis=1).mean(axis=1)
    s = pd.concat([r.scores.set_index(["method", "metric"])["mape"] for r in steep], axis=1).mean(axis=1)
    assert cov[("cssim", "active_logos")] >= 0.7
    assert cov[("cssim", "active_logos")] >= cov[("flat_rate", "active_logos")]
    assert s[("cssim", "active_logos")] < 0.75 * s[("flat_rate", "active_logos")]
    assert s[("cssim", "active_logos")] < s[("constant_hazard", "active_logos")]
    assert s[("cssim", "arr")] < s[("flat_rate", "arr")]
    # A constant rate fitted on a young book over-forecasts churn: logos biased low.
    bias = pd.concat([r.scores.set_index(["method", "metric"])["bias"] for r in steep], axis=1).mean(axis=1)
    assert bias[("flat_rate", "active_logos")] < 0


def test_forecast_starts_from_the_book_at_the_cutoff(results, histories):
    raw = pd.read_csv(histories[0], dtype=str, keep_default_na=False)
    res = results[0]
    book = res.scenario.segments["smb"].book.rows
    signed = pd.to_datetime(raw["signed_date"])
    churn = pd.to_datetime(raw["churn_date"].replace("", None))
    cut = pd.Timestamp(CUTOFF)
    active = (signed <= cut) & (churn.isna() | (churn > cut))
    assert len(book) == active.sum()
    assert sum(r["arr"] for r in book) == pytest.approx(pd.to_numeric(raw.loc[active, "arr"]).sum())
    # Month 1 of the forecast starts from that book: its mean is within a month's churn and arrivals of it.
    t = res.table()
    first = t[(t.method == "cssim") & (t.metric == "active_logos") & (t.month == 1)]["mean"].iloc[0]
    assert abs(first - len(book)) < 0.25 * len(book)


def test_tables_have_every_month_metric_and_method(results):
    t = results[0].table()
    # Several credible families (the default averages over them): also the lowest-AIC family alone, cssim_best.
    assert results[0].model_uncertainty == "averaged"
    assert set(t["method"]) == {"cssim", "cssim_best", "cssim_point", "flat_rate", "constant_hazard"}
    logos = t[t.metric == "active_logos"]
    assert len(logos) == 5 * 12
    assert (logos["lo"] <= logos["mean"]).all() and (logos["mean"] <= logos["hi"]).all()
    # The baselines say nothing about renewals; only cssim is scored on them.
    assert set(t[t.metric == "renewed"]["method"]) <= {"cssim", "cssim_best", "cssim_point"}


# --------------------------------------------------------------------------- censoring and actuals


def test_censoring_hides_everything_after_the_cutoff(histories):
    raw = pd.read_csv(histories[0], dtype=str, keep_default_na=False)
    cut = dt.date(2024, 12, 31)
    known = censor_history(raw, cut)
    for col in ("signed_date", "kickoff_date", "onboarded_date", "first_at_risk_date", "churn_date"):
        dates = pd.to_datetime(known[col].replace("", None))
        assert (dates.dropna() <= pd.Timestamp(cut)).all(), col
    assert (known["extract_date"] == "2024-12-31").all()
    assert len(known) == (pd.to_datetime(raw["signed_date"]) <= pd.Timestamp(cut)).sum()
    # Churn after the cutoff is unknown, not lost: those customers are active at the cutoff.
    later = pd.to_datetime(raw["churn_date"].replace("", None)) > pd.Timestamp(cut)
    assert (known.loc[known.index.intersection(raw.index[later]), "churn_date"] == "").all()


def test_actual_paths_add_up(histories):
    raw = pd.read_csv(histories[0], dtype=str, keep_default_na=False)
    a = actual_paths(raw, dt.date(2024, 12, 31), 12)
    signed = pd.to_datetime(raw["signed_date"])
    start = pd.Timestamp("2024-12-31")
    new = [((signed - start).dt.days.between(np.floor((m - 1) * 30.436875) + 1, np.floor(m * 30.436875))).sum()
           for m in range(2, 13)]
    # active(m) = active(m-1) + new(m) - churned(m)
    change = a["active_logos"].diff().iloc[1:].to_numpy()
    np.testing.assert_array_equal(change, np.array(new) - a["churned"].iloc[1:].to_numpy())


def test_book_stage_and_risk_at_cutoff():
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e"],
            "segment": ["s"] * 5,
            "arr": ["100", "200", "300", "400", "500"],
            "signed_date": ["2023-01-01", "2023-12-30", "2023-06-01", "2023-03-01", "2023-02-01"],
            "kickoff_date": ["2023-01-10", "", "2023-06-05", "2023-03-05", "2023-02-05"],
            "onboarded_date": ["2023-02-01", "", "", "2023-04-01", ""],
            "matured_date": ["2023-08-01", "", "", "2024-02-01", ""],
            "first_at_risk_date": ["", "", "2023-12-01", "2023-05-01", ""],
            "recovered_date": ["", "", "", "2023-06-01", ""],
            "churn_date": ["", "", "", "", "2023-10-01"],
        }
    )
    book = book_at(frame, dt.date(2024, 1, 1), {"s": 14.0})["s"].set_index("customer_id")
    assert list(book.index) == ["a", "b", "c", "d"]  # e churned before the cutoff
    assert book.loc["a", "stage"] == "maturity" and book.loc["a", "days_in_stage"] == 153
    assert book.loc["b", "stage"] == "signing" and book.loc["b", "days_in_stage"] == 2
    assert book.loc["c", "stage"] == "onboarding" and book.loc["c", "at_risk"] == 1
    assert book.loc["c", "days_at_risk"] == 31
    assert book.loc["d", "stage"] == "growth"  # matured after the cutoff: still growing then
    assert book.loc["d", "at_risk"] == 0  # recovered before the cutoff


# --------------------------------------------------------------------------- errors and the CLI


def test_cutoff_outside_history_and_horizon_too_long(histories, capsys):
    with pytest.raises(DataError, match="outside the history"):
        backtest(histories[0], "2030-01-01", 6)
    with pytest.raises(DataError, match="past the extract date"):
        backtest(histories[0], CUTOFF, 24)
    with pytest.raises(DataError, match="churn events before the cutoff"):
        backtest(histories[0], "2023-01-20", 6)
    assert main(["backtest", str(histories[0]), "--cutoff", "1999-01-01", "--horizon", "6", "--out", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cssim: error:") and "outside the history" in err and "\n" not in err
    assert main(["backtest", str(histories[0]), "--cutoff", "Jan 2024", "--horizon", "6", "--out", "x"]) == 2
    assert "--cutoff" in capsys.readouterr().err


def test_cli_writes_tables_and_figures(histories, tmp_path, capsys):
    out = tmp_path / "bt"
    args = ["backtest", str(histories[1]), "--cutoff", CUTOFF, "--horizon", "6", "-n", "8", "--out", str(out),
            "--families", ",".join(FAMILIES)]
    assert main(args) == 0
    names = {p.name for p in out.iterdir()}
    assert {"backtest.csv", "scores.csv", "fan_active_logos.png", "fan_arr.png", "calibration.png",
            "manifest.json"} <= names
    scores = pd.read_csv(out / "scores.csv")
    assert {"method", "metric", "coverage", "mape", "coverage_90"} <= set(scores.columns)
    assert "cssim" in capsys.readouterr().out
    # The forecast scenario is kept, with its starting book, and loads again.
    again = load_scenario(out / "scenario.yaml")
    assert again.start_date == dt.date(2024, 12, 31) and again.horizon_months == 6
    book = pd.read_csv(out / "book_smb.csv")
    assert again.segments["smb"].initial_customers == len(book) > 0
    # The book is exactly the customers the history shows active at the cutoff.
    raw = pd.read_csv(histories[1], dtype=str, keep_default_na=False)
    signed, churned = pd.to_datetime(raw["signed_date"]), pd.to_datetime(raw["churn_date"].replace("", None))
    cut = pd.Timestamp(CUTOFF)
    active = (raw["segment"] == "smb") & (signed <= cut) & (churned.isna() | (churned > cut))
    assert len(book) == int(active.sum())
    # The table is the library's, month by month: every metric and method for months 1..6, the actual path the
    # same under every method, and the coverage in the scores is the share of months inside the interval.
    table = pd.read_csv(out / "backtest.csv")
    library = backtest(histories[1], CUTOFF, 6, replications=8, families=FAMILIES)
    pd.testing.assert_frame_equal(table, library.table().reset_index(drop=True), check_dtype=False)
    assert sorted(set(table["month"])) == list(range(1, 7))
    assert table.groupby(["metric", "month"])["actual"].nunique().eq(1).all()
    inside = table.assign(inside=(table["actual"] >= table["lo"]) & (table["actual"] <= table["hi"]))
    coverage = inside.groupby(["method", "metric"])["inside"].mean()
    for r in scores.itertuples():
        assert r.coverage == pytest.approx(coverage[(r.method, r.metric)])
    # Existing folder: refused without --force, replaced with it; --fixed-rate changes the cssim forecast only.
    assert main(args) == 2
    assert main([*args, "--force", "--fixed-rate"]) == 0
    fixed = pd.read_csv(out / "backtest.csv")
    key = ["method", "metric", "month"]
    a, b = table.set_index(key).sort_index(), fixed.set_index(key).sort_index()
    assert a.index.equals(b.index) and a["actual"].equals(b["actual"])
    assert not a.loc["cssim", ["mean", "lo", "hi"]].equals(b.loc["cssim", ["mean", "lo", "hi"]])
    assert not list(tmp_path.glob(".bt.partial*"))


def test_write_backtest_is_atomic_on_failure(results, tmp_path, monkeypatch):
    import cssim.analysis.backtest as bt

    def boom(*a, **k):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(bt, "backtest_calibration", boom)
    with pytest.raises(RuntimeError):
        write_backtest(results[0], tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- starting book


def _book_scenario(tmp_path: Path, book_text: str, **seg) -> Path:
    (tmp_path / "book.csv").write_text(book_text)
    (tmp_path / "s.yaml").write_text(
        "horizon_months: 3\nstart_date: 2027-01-01\nreplications: 2\n"
        "segments:\n  smb:\n    book: {file: book.csv}\n    arr: {median: 1000}\n    touch_model: tech\n"
        + "".join(f"    {k}: {v}\n" for k, v in seg.items())
        + "touch_models:\n  tech: {}\n  high: {}\n"
    )
    return tmp_path / "s.yaml"


BOOK = """customer_id,arr,touch_model,signed_date,tenure_days,stage,at_risk,days_in_stage,days_at_risk
a,12000,high,2026-01-01,,growth,0,100,
b,2500,,,61,onboarding,1,20,5
c,500,,,30,signing,0,,
d,7000,,2024-05-01,,,0,,
"""


def test_book_starts_with_exactly_those_customers(tmp_path):
    scenario = load_scenario(_book_scenario(tmp_path, BOOK))
    assert scenario.segments["smb"].initial_customers == 4
    engine = Engine(scenario, 0, record=True)
    customers = sorted(engine.active.values(), key=lambda c: c.k)
    assert [c.arr for c in customers] == [12000, 2500, 500, 7000]
    assert [round(-c.signed) for c in customers] == [365, 61, 30, (dt.date(2027, 1, 1) - dt.date(2024, 5, 1)).days]
    assert [c.stage for c in customers[:3]] == [GROWTH, ONBOARDING, SIGNING]
    assert [c.at_risk for c in customers] == [False, True, False, False]
    assert customers[0].tm.name == "high" and customers[1].tm.name == "tech"
    assert customers[0].rec["onboarded_day"] == -100  # entered growth 100 days before the start
    assert customers[1].rec["at_risk_spells"][0][0] == -5
    ledger = engine.run()
    arrays = ledger.arrays()["segment"]
    assert arrays["new_logos"].sum() == 0
    # A scenario dumped with its files' content re-validates without reading them (the file is gone); a plain
    # dump names the file only, and the loader reads it again.
    plain = scenario.model_dump(mode="json")
    assert "rows" not in plain["segments"]["smb"]["book"]
    assert scenario_from_dict(plain).segments["smb"].book.rows == scenario.segments["smb"].book.rows
    Path(scenario.segments["smb"].book.file).unlink()
    again = Scenario.model_validate(scenario.model_dump(context=RESOLVED))
    assert again.segments["smb"].book.rows == scenario.segments["smb"].book.rows
    with pytest.raises(ValidationError, match="not read"):
        Scenario.model_validate(plain)


def test_book_clocks_are_conditioned_on_time_spent(tmp_path):
    # Growth takes ~exactly 200 days (Weibull with a huge shape): 190 days in, maturity comes ~10 days after start.
    text = "arr,tenure_days,stage,days_in_stage\n" + "".join("1000,400,growth,190\n" for _ in range(20))
    scenario = load_scenario(
        _book_scenario(tmp_path, text, lifecycle="{growth: {family: weibull, scale: 200, shape: 60}}")
    )
    engine = Engine(scenario, 0, record=True)
    engine.run()
    matured = [r["matured_day"] for r in engine.records]
    assert all(r is not None and 0 < r < 20 for r in matured), matured


@pytest.mark.parametrize(
    "text, row, column",
    [
        ("arr,tenure_days,stage\n100,10,growth\n100,10,adult\n", 2, "stage"),
        ("arr,tenure_days\n100,10\nlots,10\n", 2, "arr"),
        ("arr,signed_date\n100,2026-01-01\n100,2027-03-01\n", 2, "signed_date"),
        ("arr,tenure_days,touch_model\n100,10,platinum\n", 1, "touch_model"),
        ("arr,tenure_days,at_risk\n100,10,maybe\n", 1, "at_risk"),
        ("arr,tenure_days,days_in_stage,stage\n100,10,20,growth\n", 1, "days_in_stage"),
    ],
)
def test_bad_book_names_file_row_and_column(tmp_path, text, row, column):
    with pytest.raises(ScenarioError) as info:
        load_scenario(_book_scenario(tmp_path, text))
    msg = str(info.value)
    assert "book.csv" in msg and f"row {row}" in msg and f"'{column}'" in msg, msg
    assert "\n" not in msg


def test_book_and_initial_customers_must_agree(tmp_path):
    with pytest.raises(ScenarioError, match="disagrees with the book"):
        load_scenario(_book_scenario(tmp_path, "arr,tenure_days\n100,10\n", initial_customers=5))
    with pytest.raises(ScenarioError, match="unknown column 'colour'"):
        load_scenario(_book_scenario(tmp_path, "arr,tenure_days,colour\n100,10,red\n"))


def test_scenario_without_book_is_unchanged():
    data = {"segments": {"s": {"initial_customers": 5, "arr": {"median": 10}, "touch_model": "t"}},
            "touch_models": {"t": {}}}
    scenario = scenario_from_dict(data)
    assert scenario.segments["s"].book is None
    assert "book" not in scenario.model_dump(exclude_none=True)["segments"]["s"]


def test_template_with_annual_contracts_scores_renewals(tmp_path_factory):
    """Term contracts: churn happens at renewal; the renewal rate before the cutoff drives the forecast."""
    overrides = {"horizon_months": 30, "segments.smb.contract.billing": "annual", "segments.smb.renewal.healthy": 0.8,
                 "segments.smb.renewal.at_risk": 0.5, "segments.smb.lifecycle.churn": {"family": "never"}}
    (history,) = _histories(tmp_path_factory, (21,), overrides)
    template = load_scenario(TRUTH, overrides).model_dump(mode="json", exclude_none=True)
    res = backtest(history, STEEP_CUTOFF, 6, template=template, replications=20, seed=1, families=FAMILIES)
    renewal = res.scenario.segments["smb"].renewal
    assert 0.7 < renewal.healthy < 0.9  # estimated from the renewals before the cutoff, not the template's
    # ...with its binomial sampling error, drawn per replication like the curves' (logit scale).
    unc = renewal.uncertainty
    assert unc.names[0] == "logit_healthy" and unc.estimates[0] == pytest.approx(renewal.coefficients()["logit_healthy"])
    assert 0.0 < unc.covariance[0][0] < 1.0
    s = res.scores.set_index(["method", "metric"])
    assert s.loc[("cssim", "renewed"), "actual_total"] > 0
    assert s.loc[("cssim", "renewed"), "mape"] < 0.5
    assert s.loc[("cssim", "active_logos"), "mape"] < 0.1
