"""Touch effects under confounded assignment: naive vs covariate-adjusted vs IPW, against a known truth.

The synthetic history: log ARR (z) drives both the touch model (big accounts
get high-touch) and churn (big accounts churn less, hazard × exp(-0.7 z)); the
touch model multiplies the churn hazard by a known ratio, including 1 (no
effect). The conditional truth (what the adjusted Cox model estimates) is that
ratio. The marginal truth (what the IPW fit estimates) differs from it when the
ratio is not 1, because the Cox hazard ratio is non-collapsible; it is computed
here from the potential outcomes of a large population: every customer churning
under both touch models with the same hazard budget and censoring.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import json

import numpy as np
import pandas as pd
import pytest

from cssim import DataError, TouchEffects, plots
from cssim.cli import main
from cssim.fitting.causal import touch_frame_from_history
from cssim.plots.causal import covariate_balance, touch_effects_forest

LAMBDA = 1 / 900.0  # baseline churn hazard per day
ARR_EFFECT = -0.7  # log hazard per SD of log ARR
N = 4000
COVARIATES = ["log_arr", "segment", "size"]


def _population(n, seed, assign=1.0, groups=2):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    size = 0.6 * z + rng.normal(scale=0.8, size=n)
    u = z + rng.normal(scale=0.7, size=n)
    segment = np.where(u > 0.8, "enterprise", np.where(u < -0.6, "smb", "mid_market"))
    if groups == 2:
        p = 1 / (1 + np.exp(-(-0.4 + assign * z + 0.3 * size)))
        touch = np.where(rng.random(n) < p, "high_touch", "low_touch")
    else:
        logits = np.column_stack([np.zeros(n), 0.3 + 0.8 * z, -0.6 + 1.6 * z])
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        touch = np.array(["tech_touch", "low_touch", "high_touch"])[(rng.random(n)[:, None] > probs.cumsum(1)).sum(1)]
    budget = rng.exponential(size=n)  # unit-exponential hazard budget
    censor = rng.uniform(180, 900, size=n)
    return z, size, segment, touch, budget, censor


def _times(z, hr_of, budget, censor):
    t = budget / (LAMBDA * np.exp(ARR_EFFECT * z) * hr_of)
    return np.maximum(np.minimum(t, censor).round(), 0.5), (t <= censor).astype(int)


def confounded(n, hrs: dict, seed, assign=1.0, groups=2) -> pd.DataFrame:
    """Per-customer table; ``hrs`` maps touch model → true hazard ratio (absent: 1)."""
    z, size, segment, touch, budget, censor = _population(n, seed, assign, groups)
    hr_of = np.array([hrs.get(t, 1.0) for t in touch])
    duration, event = _times(z, hr_of, budget, censor)
    return pd.DataFrame({"duration": duration, "event": event, "touch_model": touch,
                         "log_arr": np.log(20_000) + 0.9 * z, "segment": segment, "size": size})


def marginal_truth(hr: float, n: int = 20_000, seed: int = 999) -> float:
    """Cox HR of treat-all vs treat-none potential outcomes (same customers, budgets, censoring)."""
    from lifelines import CoxPHFitter

    z, _, _, _, budget, censor = _population(n, seed)
    parts = []
    for a in (0, 1):
        d, e = _times(z, np.full(n, hr if a else 1.0), budget, censor)
        parts.append(pd.DataFrame({"T": d, "E": e, "a": float(a)}))
    return float(np.exp(CoxPHFitter().fit(pd.concat(parts), "T", "E").params_["a"]))


@pytest.fixture(scope="module")
def fits():
    """Two seeds for each true effect (1: no effect; 0.6: high-touch cuts churn by 40 %)."""
    out = {}
    for hr in (1.0, 0.6):
        truth = {"naive": hr, "adjusted": hr, "ipw": marginal_truth(hr) if hr != 1.0 else 1.0}
        for seed in (1, 2):
            df = confounded(N, {"high_touch": hr}, seed)
            te = TouchEffects(df, covariates=COVARIATES, reference="low_touch", transition="churn").fit()
            out[(hr, seed)] = (te, truth)
    return out


def _row(te, method, model="high_touch"):
    s = te.summary()
    return s[(s["method"] == method) & (s["touch_model"] == model)].iloc[0]


@pytest.mark.parametrize("hr", [1.0, 0.6])
@pytest.mark.parametrize("seed", [1, 2])
def test_naive_is_biased_adjusted_and_ipw_recover_the_truth(fits, hr, seed):
    te, truth = fits[(hr, seed)]
    naive = _row(te, "naive")
    # Big accounts get high-touch and churn less anyway: the naive HR credits high-touch with it.
    assert naive["hi"] < truth["naive"], naive
    assert naive["hazard_ratio"] < 0.75 * truth["naive"]
    for method in ("adjusted", "ipw"):
        r = _row(te, method)
        assert r["lo"] <= truth[method] <= r["hi"], (method, r.to_dict(), truth[method])
        # and the interval is informative (not wide enough to cover anything)
        assert r["hi"] / r["lo"] < 1.6
    # With no true effect, neither corrected method claims one; the naive one does.
    if hr == 1.0:
        assert naive["p"] < 1e-6
        assert _row(te, "adjusted")["p"] > 0.05 or _row(te, "ipw")["p"] > 0.05


def test_marginal_truth_is_between_conditional_truth_and_one():
    # Non-collapsibility: the population-average HR is pulled towards 1 (checked, not assumed).
    m = marginal_truth(0.6)
    assert 0.6 < m < 0.7


def test_weighting_balances_the_covariates(fits):
    te, _ = fits[(1.0, 1)]
    b = te.balance_.set_index("covariate")
    assert set(b.index) == {"log_arr", "segment[mid_market]", "segment[smb]", "size"}
    assert b.loc["log_arr", "smd_before"] > 0.8  # high-touch accounts are much bigger
    assert b.loc["segment[smb]", "smd_before"] < -0.4
    for (hr, seed), (fit, _) in fits.items():
        assert (fit.balance_["smd_after"].abs() < 0.1).all(), (hr, seed, fit.balance_)
    assert not any("imbalance" in w for w in te.warnings_)


def test_weights_and_effective_sample_size(fits):
    te, _ = fits[(1.0, 1)]
    w, g = te.weights_.to_numpy(), te.propensity_["touch_model"].to_numpy()
    # Stabilised weights average about 1 within each group.
    for m in ("high_touch", "low_touch"):
        assert 0.85 < w[g == m].mean() < 1.15
        n = (g == m).sum()
        assert 0.25 * n < te.ess_[m] < n
        assert te.ess_[m] == pytest.approx(w[g == m].sum() ** 2 / (w[g == m] ** 2).sum())
    ps = te.propensity_[["high_touch", "low_touch"]].to_numpy()
    np.testing.assert_allclose(ps.sum(axis=1), 1.0)
    # Big accounts were more likely to get high-touch, and the model says so.
    z = te.data["log_arr"].to_numpy()
    assert np.corrcoef(z, ps[:, 0])[0, 1] > 0.8
    ov = te.overlap_.set_index("touch_model")
    assert ov.loc["high_touch", "ps_own_median"] > ov.loc["high_touch", "ps_others_median"]
    assert type(te.propensity_model_.model).__name__ == "Logit"


def test_summary_shape_and_effects(fits):
    te, _ = fits[(0.6, 1)]
    s = te.summary()
    assert list(s.columns[:7]) == ["method", "touch_model", "reference", "hazard_ratio", "lo", "hi", "p"]
    assert list(s["method"]) == ["naive", "adjusted", "ipw"]
    assert (s["lo"] < s["hazard_ratio"]).all() and (s["hazard_ratio"] < s["hi"]).all()
    assert set(s["estimand"]) == {"crude", "conditional", "marginal"}
    eff = te.to_effects()
    adj = _row(te, "adjusted")
    assert eff["low_touch"] == {"churn": 1.0}
    assert eff["high_touch"]["churn"] == round(adj["hazard_ratio"], 4)
    assert eff["high_touch"]["intervals"]["churn"] == pytest.approx([adj["lo"], adj["hi"]], abs=1e-4)  # alpha 0.05
    # The fragment is a valid scenario effects block, drawn from its interval.
    from cssim.model.scenario import EffectsSpec

    assert EffectsSpec(**eff["high_touch"]).log_sd("churn") > 0
    assert te.to_effects("ipw")["high_touch"]["churn"] == round(_row(te, "ipw")["hazard_ratio"], 4)
    with pytest.raises(ValueError, match="method"):
        te.to_effects("matching")
    text = te.report()
    assert "naive" in text and "ipw" in text and "max |SMD|" in text


def test_three_touch_models_use_a_multinomial_propensity_model():
    # One data set, two comparisons: 99 % intervals, so that a chance miss (1 in 10 at 95 % for two
    # comparisons) does not fail the test; over seeds 100-109 the 95 % intervals covered 9/10 and 9/10.
    truth = {"high_touch": 0.6, "low_touch": 0.8}
    df = confounded(N, truth, seed=5, groups=3)
    te = TouchEffects(df, covariates=COVARIATES, reference="tech_touch", alpha=0.01).fit()
    assert type(te.propensity_model_.model).__name__ == "MNLogit"
    ps = te.propensity_[["high_touch", "low_touch", "tech_touch"]].to_numpy()
    np.testing.assert_allclose(ps.sum(axis=1), 1.0, atol=1e-9)
    for m, hr in truth.items():
        naive, adj = _row(te, "naive", m), _row(te, "adjusted", m)
        assert naive["hi"] < hr
        assert adj["lo"] <= hr <= adj["hi"], (m, adj.to_dict())
    b = te.balance_
    assert set(b["touch_model"]) == {"high_touch", "low_touch"}
    assert b["smd_before"].abs().max() > 1.0
    # Three groups share the weights; the high-touch group is small, so allow a little more noise.
    assert b["smd_after"].abs().max() < 0.15, b
    assert b["smd_after"].abs().max() < b["smd_before"].abs().max() / 5, b


def test_poor_overlap_is_reported():
    df = confounded(1500, {"high_touch": 0.6}, seed=3, assign=6.0)  # ARR nearly decides the touch model
    te = TouchEffects(df, covariates=["log_arr", "segment"]).fit()
    assert any(w.startswith("poor overlap") for w in te.warnings_), te.warnings_
    s = te.summary()
    assert s.loc[s["method"] == "ipw", "warning"].str.contains("poor overlap").all()
    assert (s.loc[s["method"] == "naive", "warning"] == "").all()
    assert "WARNING: poor overlap" in te.report()
    # Good overlap: no warning.
    calm = TouchEffects(confounded(1500, {}, seed=3, assign=0.5), covariates=["log_arr"]).fit()
    assert calm.warnings_ == []


def test_separated_groups_are_flagged_as_no_overlap():
    df = confounded(1500, {}, seed=4)
    df["touch_model"] = np.where(df["segment"] == "enterprise", "high_touch", "low_touch")
    te = TouchEffects(df, covariates=["segment"]).fit()
    assert any(w.startswith("no overlap") and "high_touch" in w for w in te.warnings_), te.warnings_


def test_trim_and_truncate():
    df = confounded(1500, {"high_touch": 0.6}, seed=6, assign=2.5)
    plain = TouchEffects(df, covariates=["log_arr"]).fit()
    trimmed = TouchEffects(df, covariates=["log_arr"], trim=0.05).fit()
    dropped = int((trimmed.weights_ == 0).sum())
    assert dropped > 0
    assert dropped == int((plain.propensity_[["high_touch", "low_touch"]] < 0.05).any(axis=1).sum())
    assert _row(trimmed, "ipw")["n"] == len(df) - dropped
    assert _row(trimmed, "naive")["n"] == len(df)
    truncated = TouchEffects(df, covariates=["log_arr"], truncate=0.01).fit()
    w0, w1 = plain.weights_, truncated.weights_
    assert w1.max() == pytest.approx(np.quantile(w0, 0.99)) and w1.max() < w0.max()
    assert w1.min() == pytest.approx(np.quantile(w0, 0.01))


def _small(**changes) -> pd.DataFrame:
    df = confounded(300, {}, seed=8)
    for k, v in changes.items():
        df[k] = v
    return df


@pytest.mark.parametrize("make, kwargs, message", [
    (lambda: _small().drop(columns="event"), {}, "missing event column 'event'"),
    (lambda: _small(), {"covariates": ["log_arr", "employees"]}, "missing covariate 'employees' column 'employees'"),
    (lambda: _small(touch_model="high_touch"), {}, "single touch model ('high_touch')"),
    (lambda: _small(event=0), {}, "no events"),
    (lambda: _small().assign(event=lambda d: np.where(d.touch_model == "high_touch", 0, d.event)), {},
     "touch model 'high_touch' has no events"),
    (lambda: _small().assign(duration=lambda d: d.duration.where(d.index != 4, -3.0)), {},
     "'duration': -3 at data row 5; durations must be numbers > 0"),
    (lambda: _small().assign(event=lambda d: d.event.where(d.index != 2, 2)), {}, "column 'event': 2 at data row 3; events must be 1"),
    (lambda: _small().assign(log_arr=lambda d: d.log_arr.where(d.index != 7)), {"covariates": ["log_arr"]},
     "column 'log_arr': 1 empty values (first at data row 8)"),
    (lambda: _small(segment="smb"), {"covariates": ["segment"]}, "covariate 'segment' has a single value"),
    (lambda: _small(), {"reference": "white_glove"}, "reference touch model 'white_glove' is not in"),
    (lambda: _small(), {"covariates": ["touch_model"]}, "cannot also be a covariate"),
])
def test_bad_input_messages(make, kwargs, message):
    with pytest.raises(DataError) as err:
        TouchEffects(make(), source="book.csv", **kwargs)
    text = str(err.value)
    assert text.startswith("book.csv: ") and message in text and "\n" not in text


def test_not_fitted():
    with pytest.raises(AttributeError, match="fit"):
        TouchEffects(_small(), covariates=["log_arr"]).summary()


# --------------------------------------------------------------------------- history file and CLI


def _history_csv(path, n=1500, hr=0.6, seed=9):
    """A customer history whose churn follows the confounded model (dates from days)."""
    z, size, segment, touch, budget, _ = _population(n, seed, assign=1.0)
    rng = np.random.default_rng(seed + 1)
    start = pd.Timestamp("2023-01-01")
    extract = pd.Timestamp("2025-06-30")
    signed = start + pd.to_timedelta(rng.integers(0, 700, size=n), unit="D")
    censor = (extract - signed).days.to_numpy().astype(float)
    t = budget / (LAMBDA * np.exp(ARR_EFFECT * z) * np.where(touch == "high_touch", hr, 1.0))
    churned = t < censor
    churn = pd.Series(signed + pd.to_timedelta(np.ceil(t), unit="D")).dt.strftime("%Y-%m-%d").where(churned, "")
    pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)], "segment": segment, "touch_model": touch,
        "arr": np.round(20_000 * np.exp(0.9 * z), 2), "employees": np.round(50 * np.exp(size)).astype(int),
        "signed_date": signed.strftime("%Y-%m-%d"), "churn_date": churn, "extract_date": extract.strftime("%Y-%m-%d"),
    }).to_csv(path, index=False)
    return path


def test_frame_from_history(tmp_path):
    path = _history_csv(tmp_path / "history.csv")
    frame, names = touch_frame_from_history(path, "churn")
    assert names == ["log_arr", "segment"]
    raw = pd.read_csv(path)
    assert len(frame) == len(raw)
    row = frame.set_index("customer_id").loc["c17"]
    assert row["log_arr"] == pytest.approx(np.log(raw.loc[17, "arr"]))
    assert row["event"] == int(isinstance(raw.loc[17, "churn_date"], str))
    frame2, names2 = touch_frame_from_history(path, "churn", ["arr", "employees"])
    assert names2 == ["log_arr", "employees"] and frame2["employees"].dtype == float
    te = TouchEffects(frame, covariates=names).fit()
    adj = _row(te, "adjusted")
    assert adj["lo"] <= 0.6 <= adj["hi"]
    assert _row(te, "naive")["hi"] < 0.6
    with pytest.raises(DataError, match="unknown transition 'renewal'"):
        touch_frame_from_history(path, "renewal")


def test_cli_writes_the_folder_and_refuses_bad_input(tmp_path, capsys):
    path = _history_csv(tmp_path / "history.csv")
    out = tmp_path / "te"
    assert main(["touch-effects", str(path), "--transition", "churn", "--covariates", "arr,segment,employees",
                 "--out", str(out)]) == 0
    files = {p.name for p in out.iterdir()}
    assert {"touch_effects.csv", "balance.csv", "touch_effects_forest.png", "covariate_balance.png",
            "manifest.json", "summary.txt", "effects.json"} <= files
    te = pd.read_csv(out / "touch_effects.csv")
    assert list(te["method"]) == ["naive", "adjusted", "ipw"]
    assert set(pd.read_csv(out / "balance.csv")["covariate"]) == {"log_arr", "segment[mid_market]", "segment[smb]",
                                                                  "employees"}
    effects = json.loads((out / "effects.json").read_text())
    assert effects["adjusted"]["low_touch"] == {"churn": 1.0}
    assert (out / "touch_effects_forest.png").stat().st_size > 15_000
    assert "wrote" in capsys.readouterr().out

    # The folder exists: refused without --force, replaced with it.
    assert main(["touch-effects", str(path), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["touch-effects", str(path), "--out", str(out), "--force"]) == 0
    capsys.readouterr()

    # A plain table needs its columns named; then it works the same.
    table = tmp_path / "table.csv"
    confounded(1200, {"high_touch": 0.6}, seed=10).rename(columns={"touch_model": "plan"}).to_csv(table, index=False)
    assert main(["touch-effects", str(table), "--out", str(tmp_path / "t2")]) == 2
    assert "--duration, --event and --group" in capsys.readouterr().err
    assert main(["touch-effects", str(table), "--duration", "duration", "--event", "event", "--group", "plan",
                 "--covariates", "log_arr,segment", "--out", str(tmp_path / "t2")]) == 0
    capsys.readouterr()

    for argv, message in [
        ([str(table), "--duration", "duration", "--event", "churned", "--group", "plan"], "missing event column 'churned'"),
        ([str(path), "--covariates", "employes"], "no column 'employes'"),
        ([str(tmp_path / "nope.csv")], "file not found"),
        ([str(path), "--trim", "0.7"], "--trim"),
    ]:
        assert main(["touch-effects", *argv, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("cssim: error: ") and message in err and err.count("\n") == 1, err
        assert not (tmp_path / "bad").exists()


# --------------------------------------------------------------------------- figures


def test_figures(fits, tmp_path):
    te, truth = fits[(0.6, 1)]
    ax = touch_effects_forest(te, truth=0.6)
    assert ax.get_xscale() == "log"
    assert any(np.allclose(line.get_xdata(), [1.0, 1.0]) for line in ax.get_lines())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["Naive (touch model only)", "Covariate-adjusted", "Inverse-probability weighted", "True effect"]
    lo, hi = ax.get_xlim()
    assert lo < te.summary()["lo"].min() and hi > 1.0
    path = plots.save(ax, tmp_path / "forest.png")
    assert path.stat().st_size > 15_000

    ax = covariate_balance(te)
    assert any(np.allclose(line.get_xdata(), [0.1, 0.1]) for line in ax.get_lines())
    assert [t.get_text() for t in ax.get_yticklabels()][-1] == "log_arr"  # largest imbalance on top
    assert plots.save(ax, tmp_path / "balance.png").stat().st_size > 15_000

    # An ax passed in is drawn on and returned.
    from matplotlib.figure import Figure

    axes = Figure().subplots(1, 2)
    assert te.plot_forest(ax=axes[0]) is axes[0] and te.plot_balance(ax=axes[1]) is axes[1]
    with pytest.raises(ValueError, match="missing columns"):
        covariate_balance(pd.DataFrame({"covariate": ["x"]}))


# --------------------------------------------------------------------------- degenerate estimates are refused


def test_a_trim_that_leaves_too_few_events_or_too_small_an_ess_is_refused_not_written(tmp_path, capsys):
    # Strong assignment: a large trim keeps a few dozen customers per touch model.
    df = confounded(600, {"high_touch": 0.6}, seed=3, assign=4.0)
    ok = TouchEffects(df, covariates=COVARIATES, trim=0.02).fit()
    assert ok.refused_ == {}
    assert _row(ok, "ipw")["refused"] == ""

    te = TouchEffects(df, covariates=COVARIATES, trim=0.4).fit()
    why = te.refused_[("ipw", "high_touch")]
    assert "4 events among the 23 customers kept" in why
    row = _row(te, "ipw")
    assert np.isnan(row["hazard_ratio"]) and np.isnan(row["lo"]) and row["refused"] == why
    assert _row(te, "adjusted")["refused"] == ""  # the other estimates stand
    assert "ipw       high_touch       refused" in te.report()
    with pytest.warns(UserWarning, match="refused"):
        assert set(te.to_effects("ipw")) == {"low_touch"}

    # The ESS rule: a smaller book, where the kept groups still have events but few effective customers.
    small = confounded(200, {"high_touch": 0.6}, seed=3, assign=4.0)
    te = TouchEffects(small, covariates=COVARIATES, trim=0.2).fit()
    assert te.refused_ == {("ipw", "high_touch"): "effective sample size of high_touch is 21 under the weights "
                                                  "after trim 0.2 (need 30)"}

    path = tmp_path / "table.csv"
    df.to_csv(path, index=False)
    out = tmp_path / "te"
    assert main(["touch-effects", str(path), "--duration", "duration", "--event", "event", "--group", "touch_model",
                 "--covariates", "log_arr,segment,size", "--trim", "0.4", "--out", str(out)]) == 0
    effects = json.loads((out / "effects.json").read_text())
    assert "high_touch" not in effects["ipw"] and "high_touch" in effects["adjusted"]
    assert effects["refused"]["ipw"]["high_touch"] == why
    assert "refused" in capsys.readouterr().out


def test_a_ratio_at_zero_is_refused():
    # Every kept high-touch customer is censored: the weighted Cox ratio runs to 0.
    df = confounded(1500, {"high_touch": 0.6}, seed=4, assign=4.0)
    te = TouchEffects(df, covariates=COVARIATES, trim=0.3).fit()
    kept = te.weights_.to_numpy() > 0
    df.loc[kept & (df["touch_model"] == "high_touch").to_numpy(), "event"] = 0
    te = TouchEffects(df, covariates=COVARIATES, trim=0.3).fit()
    assert "has 0 events" in te.refused_[("ipw", "high_touch")]
    assert np.isnan(_row(te, "ipw")["hazard_ratio"])


def test_cli_reads_yes_no_event_flags(tmp_path, capsys):
    df = confounded(1500, {"high_touch": 0.6}, seed=5)
    df["churned"] = np.where(df["event"] == 1, "Yes", "No")
    path = tmp_path / "table.csv"
    df.drop(columns="event").to_csv(path, index=False)
    out = tmp_path / "te"
    assert main(["touch-effects", str(path), "--duration", "duration", "--event", "churned", "--group", "touch_model",
                 "--covariates", "log_arr", "--out", str(out)]) == 0
    numeric = TouchEffects(df, covariates=["log_arr"]).fit()
    got = pd.read_csv(out / "touch_effects.csv")
    assert got["hazard_ratio"].to_numpy() == pytest.approx(numeric.summary()["hazard_ratio"].to_numpy(), rel=1e-5)
    df["churned"] = df["churned"].where(df.index != 3, "perhaps")
    df.drop(columns="event").to_csv(path, index=False)
    assert main(["touch-effects", str(path), "--duration", "duration", "--event", "churned", "--group", "touch_model",
                 "--out", str(tmp_path / "te2")]) == 2
    assert "row 5, column 'churned': 'perhaps' is not a churn flag" in capsys.readouterr().err
