"""Cohort retention tables: the published regular cohort, bad input, triangles, back-tests, intervals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cssim import DataError
from cssim.fitting.cohorts import (
    COHORT_MODELS,
    fit_cohorts,
    read_cohort_table,
    sbg_to_exponential_gamma,
    side_by_side_table,
)

HERE = Path(__file__).resolve().parent
REGULAR = HERE / "data" / "contractual_cohort_regular.csv"
DOC = HERE.parent / "docs" / "fitting.md"

# Fader & Hardie (2007), "How to Project Customer Retention", regular cohort, calibrated on years 0-7.
PAPER_ALPHA, PAPER_BETA, PAPER_YEAR12, ACTUAL_YEAR12 = 0.704, 1.182, 170, 173


@pytest.fixture(scope="module")
def regular():
    return fit_cohorts(REGULAR, until=7, horizon=12)


# --------------------------------------------------------------------------- the published cohort


def test_sbg_reproduces_the_published_parameters(regular):
    p = regular.fits["sbg"].params
    assert p["alpha"] == pytest.approx(PAPER_ALPHA, abs=0.001)
    assert p["beta"] == pytest.approx(PAPER_BETA, abs=0.001)
    # The paper's projection is n0 * S(12) from the fitted curve.
    assert 1000 * regular.fits["sbg"].survival([12])[0] == pytest.approx(PAPER_YEAR12, abs=0.5)


def test_heterogeneity_aware_fit_projects_year_12_within_3_percent(regular):
    for model in ("sbg", "exponential_gamma"):
        year12 = regular.projected(model)[12]
        assert abs(year12 / ACTUAL_YEAR12 - 1) < 0.03, (model, year12)
    # Conditioning on the 241 still active at year 7 does at least as well as the paper's -1.7 %.
    assert abs(regular.projected("sbg")[12] / ACTUAL_YEAR12 - 1) <= abs(PAPER_YEAR12 / ACTUAL_YEAR12 - 1)


def test_constant_hazard_is_far_off_and_loses_on_aic(regular):
    year12 = regular.projected("geometric")[12]
    assert year12 / ACTUAL_YEAR12 - 1 < -0.30
    assert regular.fits["geometric"].aic - regular.fits["sbg"].aic > 100
    assert regular.best in ("sbg", "exponential_gamma", "bdw")
    report = regular.report()
    row12 = next(line for line in report.splitlines() if line.startswith("| 12 |"))
    assert "held out" in row12 and "| 173 |" in row12
    errors = [float(x) for x in re.findall(r"([+-]\d+\.\d) %", row12)]
    assert len(errors) == 4 and errors[1] < -30 and abs(errors[0]) < 3


def test_lifelines_interval_censored_fit_agrees_with_direct_likelihood(regular):
    """lifelines' exponential-gamma optimum equals the same model maximised directly (scipy)."""
    from cssim.fitting.cohorts import _cells, _fit_ml

    cells, _ = _cells(regular.table, 7)
    direct = _fit_ml(COHORT_MODELS["exponential_gamma"], cells, "logos", 0.95)
    lf = regular.fits["exponential_gamma"]
    assert lf.method.endswith("(lifelines)")
    for k in ("shape", "scale"):
        assert lf.params[k] == pytest.approx(direct.params[k], rel=2e-3)
    assert lf.loglik == pytest.approx(direct.loglik, abs=1e-3)
    se_l = np.sqrt(np.diag(lf.cov_free))
    se_d = np.sqrt(np.diag(direct.cov_free))
    assert se_l == pytest.approx(se_d, rel=0.05)


def test_sbg_maps_to_exponential_gamma_curve(regular):
    a, b = PAPER_ALPHA, PAPER_BETA
    spec = sbg_to_exponential_gamma(a, b, period_days=365.25)
    assert spec["shape"] == a
    t = np.array([1.0, 4.0, 12.0, 40.0])
    s_sbg = COHORT_MODELS["sbg"].survival(t[None], np.array([[a, b]]))[0]
    s_eg = (1 + t * 365.25 / spec["scale"]) ** (-a)
    assert s_eg == pytest.approx(s_sbg, rel=0.03)  # tail-matched: close at every tenure
    naive = (1 + t / b) ** (-a)
    assert np.max(np.abs(naive / s_sbg - 1)) > 0.05  # scale = beta is only the large-beta limit
    out = regular.to_dict()
    assert out["curve"]["family"] == "exponential_gamma"
    assert out["curve"]["scale"] == pytest.approx(regular.fits["exponential_gamma"].params["scale"] * 365.25)


def test_doc_table_is_the_computed_one(regular):
    """docs/fitting.md carries the side-by-side table exactly as the code computes it."""
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- cohort-table:start -->\n(.*?)\n<!-- cohort-table:end -->", text, re.S)
    assert block, "docs/fitting.md lost its generated cohort table; run python docs/make_cohort_table.py"
    assert block.group(1).strip() == side_by_side_table(regular).strip()


def test_fit_cohort_file_writes_the_folder(tmp_path, capsys):
    from cssim.cli import main

    out = tmp_path / "fit"
    assert main(["fit", str(REGULAR), "--out", str(out), "--until", "7", "--horizon", "15"]) == 0
    proj = pd.read_csv(out / "projection.csv")
    assert {"cohort", "period", "observed", "projected", "lo", "hi", "model"} <= set(proj.columns)
    assert proj.groupby("model")["period"].max().eq(15).all()
    sbg = proj[proj.model == "sbg"].set_index("period")
    assert np.isnan(sbg.loc[13, "observed"]) and sbg.loc[12, "observed"] == 173
    assert (sbg["lo"] <= sbg["projected"] + 1e-9).all() and (sbg["projected"] <= sbg["hi"] + 1e-9).all()
    fit = json.loads((out / "cohort_fit.json").read_text())
    assert set(fit["models"]) == {"sbg", "geometric", "exponential_gamma", "bdw"}
    assert fit["models"]["sbg"]["ci"]["alpha"][0] < PAPER_ALPHA < fit["models"]["sbg"]["ci"]["alpha"][1]
    assert "parameter uncertainty" in fit["projection_interval"]["includes"][0]
    assert "| 12 |" in (out / "fit_report.md").read_text()
    assert "| 12 |" in capsys.readouterr().out
    assert main(["fit", str(REGULAR), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["fit", str(REGULAR), "--out", str(out), "--force"]) == 0


# --------------------------------------------------------------------------- bad input


def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "cohorts.csv"
    p.write_text(text)
    return p


BAD = [
    ("cohort,period\na,0\n", r"missing column 'active'"),
    ("cohort,active\na,10\n", r"missing column 'period'"),
    ("cohort,period,active\na,0,100\na,1,ninety\n", r"row 3, column 'active': 'ninety' is not a number"),
    ("cohort,period,active\na,0,100\na,x,90\n", r"row 3, column 'period': 'x' is not a number"),
    ("cohort,period,active\na,0,100\na,1.5,90\n", r"row 3, column 'period': '1.5' is not a whole number"),
    ("cohort,period,active\na,0,100\na,1,-5\n", r"row 3, column 'active': negative value -5"),
    ("cohort,period,active\na,0,100\na,-1,90\n", r"row 3, column 'period': negative period"),
    ("cohort,period,active\na,0,100\na,1,80\na,2,90\n", r"row 4, column 'active': cohort 'a' rises from 80 at period 1 to 90"),
    ("cohort,period,active\na,0,100\na,1,80\na,1,70\n", r"row 4, column 'period': duplicate period 1 of cohort 'a' \(also on row 3\)"),
    ("cohort,period,active\na,0,100\nb,1,80\nb,2,70\n", r"row 3, column 'period': cohort 'b' has no period 0"),
    ("cohort,period,active\na,0,100\na,1,80\na,3,60\n", r"row 4, column 'period': cohort 'a' jumps from period 1 to 3"),
    ("cohort,period,active\na,0,0\na,1,0\n", r"row 2, column 'active': cohort 'a' has size 0"),
    ("", r"file is empty"),
]


@pytest.mark.parametrize("text,message", BAD, ids=[m.split(":")[0][:30] for _, m in BAD])
def test_bad_cohort_tables_name_file_row_and_column(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(DataError, match=message) as err:
        read_cohort_table(path)
    assert str(err.value).startswith(str(path))
    assert "\n" not in str(err.value)


def test_missing_file_and_bad_until(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_cohort_table(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"--until 20 is beyond the last period in the table \(12\)"):
        fit_cohorts(REGULAR, until=20)
    with pytest.raises(DataError, match="--until 0"):
        fit_cohorts(REGULAR, until=0)


def test_arr_tables_allow_amounts_but_not_net_expansion(tmp_path):
    ok = _write(tmp_path, "cohort,period,active\na,0,1000.5\na,1,700.25\na,2,600\n")
    assert read_cohort_table(ok).kind == "arr"
    grows = _write(tmp_path, "cohort,period,active\na,0,1000.5\na,1,1100.25\n")
    with pytest.raises(DataError, match="gross retained ARR"):
        read_cohort_table(grows)


# --------------------------------------------------------------------------- triangles, back-tests, intervals


def _triangle(alpha, beta, sizes, ages, rng) -> pd.DataFrame:
    """Cohorts of given sizes observed for given numbers of periods, from a known sBG."""
    rows = []
    for i, (n, age) in enumerate(zip(sizes, ages, strict=True)):
        theta = rng.beta(alpha, beta, size=n)
        life = rng.geometric(theta)  # renewal at which each customer leaves (1, 2, ...)
        for t in range(age + 1):
            rows.append((f"c{i}", t, int(np.sum(life > t))))
    return pd.DataFrame(rows, columns=["cohort", "period", "active"])


def test_triangle_recovers_known_sbg_parameters_within_cis(tmp_path):
    rng = np.random.default_rng(2024)
    alpha, beta = 1.2, 3.0
    df = _triangle(alpha, beta, sizes=[3000, 2500, 2500, 2000, 2000, 1500], ages=[8, 7, 6, 5, 3, 1], rng=rng)
    path = tmp_path / "triangle.csv"
    df.to_csv(path, index=False)
    res = fit_cohorts(path, models=("sbg", "geometric"), n_draws=500)
    fit = res.fits["sbg"]
    assert fit.ci["alpha"][0] < alpha < fit.ci["alpha"][1]
    assert fit.ci["beta"][0] < beta < fit.ci["beta"][1]
    assert fit.params["alpha"] == pytest.approx(alpha, rel=0.3)
    # Every cohort is projected to the same horizon from its own last period.
    proj = res.projection[res.projection.model == "sbg"]
    assert sorted(proj.cohort.unique()) == [f"c{i}" for i in range(6)]
    young = proj[proj.cohort == "c5"].set_index("period")
    assert young.loc[1, "calibration"] and not young.loc[2, "calibration"]
    n1 = df[(df.cohort == "c5") & (df.period == 1)].active.item()
    s = fit.survival([1, 8])
    assert young.loc[8, "projected"] == pytest.approx(n1 * s[1] / s[0])


def test_until_holds_out_later_periods(regular):
    full = fit_cohorts(REGULAR, models=("sbg",), n_draws=200)
    assert regular.last_calibrated == {"all": 7} and full.last_calibrated == {"all": 12}
    # Different data, different estimates: the back-test really ignored years 8-12.
    assert full.fits["sbg"].params["alpha"] != pytest.approx(regular.fits["sbg"].params["alpha"], abs=1e-3)
    proj = regular.projection[regular.projection.model == "sbg"].set_index("period")
    assert proj.loc[7, "calibration"] and not proj.loc[8, "calibration"]
    assert proj.loc[12, "observed"] == 173


def test_projection_intervals_cover_held_out_years():
    """Synthetic cohorts from a known sBG: 90 % intervals for held-out years cover near 90 % of outcomes."""
    rng = np.random.default_rng(99)
    hits = total = 0
    for _ in range(40):
        df = _triangle(0.7, 1.2, sizes=[400], ages=[10], rng=rng)
        res = fit_cohorts(df, until=5, models=("sbg",), n_draws=400, seed=int(rng.integers(1 << 30)))
        p = res.projection.set_index("period")
        held = p.loc[6:10]
        hits += int(((held.observed >= held.lo) & (held.observed <= held.hi)).sum())
        total += len(held)
    coverage = hits / total
    assert 0.78 <= coverage <= 0.99, coverage


def test_intervals_widen_with_horizon(regular):
    p = regular.projection[regular.projection.model == "sbg"].set_index("period")
    width = (p.hi - p.lo).loc[8:12].to_numpy()
    assert np.all(np.diff(width) > 0)


def test_arr_table_same_estimates_honest_errors(regular):
    """ARR in dollars: same curve as the logo counts, but errors not shrunk by counting every dollar."""
    df = pd.read_csv(REGULAR).rename(columns={"year": "period"})
    df["active"] = df["active"] * 2500.5
    res = fit_cohorts(df, until=7, models=("sbg",), n_draws=300)
    assert res.table.kind == "arr"
    fit = res.fits["sbg"]
    for k in ("alpha", "beta"):
        assert fit.params[k] == pytest.approx(regular.fits["sbg"].params[k], rel=1e-3)
    se_arr = np.sqrt(np.diag(fit.cov_free))
    se_naive = np.sqrt(np.diag(regular.fits["sbg"].cov_free)) / np.sqrt(2500.5)
    assert np.all(se_arr > 5 * se_naive) and fit.dispersion > 1
    assert "binomial" not in json.dumps(res.to_dict()["projection_interval"]["includes"])


# --------------------------------------------------------------------------- model averaging


def test_averaged_projection_of_the_regular_cohort(regular):
    w = regular.weights
    aic = {k: f.aic for k, f in regular.fits.items()}
    expected = {k: np.exp(-(a - min(aic.values())) / 2) for k, a in aic.items()}
    total = sum(expected.values())
    assert w == pytest.approx({k: v / total for k, v in expected.items()})
    assert w["geometric"] < 1e-40  # 227 AIC behind: no weight
    # sBG, exponential-gamma and BdW are within 1 AIC of each other: no single model is clearly best.
    assert regular.recommended == "averaged"
    avg = regular.projection[regular.projection.model == "averaged"].set_index("period")
    assert abs(avg.loc[12, "projected"] / ACTUAL_YEAR12 - 1) < 0.02, avg.loc[12]
    assert avg.loc[12, "lo"] <= ACTUAL_YEAR12 <= avg.loc[12, "hi"]
    # The mean is the weighted mean of the models' projections; the interval holds each credible model's mean.
    mix = sum(w[m] * regular.projected(m)[12] for m in regular.fits)
    assert avg.loc[12, "projected"] == pytest.approx(mix)
    for m in ("sbg", "exponential_gamma", "bdw"):
        assert avg.loc[12, "lo"] <= regular.projected(m)[12] <= avg.loc[12, "hi"]
    assert "recommended projection: model-averaged" in regular.report()
    d = regular.to_dict()
    assert d["recommended"] == "averaged" and d["weights"] == pytest.approx(w)
