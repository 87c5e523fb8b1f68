"""Every result honours one contract (cssim.core.contract): summary() is a table that prints as text, tables are
methods, plot_*(ax=...) return the Axes, to_folder() writes through one writer with one manifest, ``level`` names
the interval level, and notebooks get HTML."""

from __future__ import annotations

import copy
import inspect
import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
from conftest import DATA, small_scenario_dict

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import cssim  # noqa: E402
from cssim.core.contract import Results, Summary  # noqa: E402

KINDS = ["simulation", "comparison", "sweep", "plan", "sensitivity", "uncertainty_decomposition", "backtest",
         "touch_effects", "cohort_fit", "history_fit"]


def _scenario(**changes) -> cssim.Scenario:
    data = copy.deepcopy(small_scenario_dict())
    data.update(horizon_months=12, replications=2)
    data.update(changes)
    return cssim.scenario_from_dict(data)


def _touch_frame(n: int = 400, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    high = rng.random(n) < 0.5
    x = rng.normal(size=n)
    t = rng.exponential(300 / np.where(high, 0.7, 1.0) / np.exp(0.3 * x))
    return pd.DataFrame({"duration": np.minimum(t, 400), "event": (t < 400).astype(int), "log_arr": x,
                         "touch_model": np.where(high, "high_touch", "low_touch")})


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One small result of every kind (a few replications each: the contract, not the numbers, is tested)."""
    out = {}
    base = _scenario()
    out["simulation"] = cssim.simulate(base)
    out["comparison"] = cssim.compare([base, _scenario(name="more", team={"pods": {"enterprise": {
        "segments": ["enterprise"], "headcount": 3}}})])
    out["sweep"] = cssim.sweep(_scenario(sweep={"grid": {"team.pods.enterprise.headcount": [1, 2]}}))
    out["plan"] = cssim.plan(base, "touch_miss_rate <= 0.9", over="team.pods.enterprise.headcount", low=1, high=2,
                             criterion="mean")
    out["sensitivity"] = cssim.sensitivity(_scenario(sensitivity={
        "fields": {"segments.enterprise.renewal.healthy": [0.8, 0.95]}, "outputs": ["grr"], "methods": ["oat"]}))
    uncertain = cssim.with_uncertainty({"family": "weibull", "scale": 700.0, "shape": 0.9},
                                       {"scale": 700.0, "shape": 0.9}, [[400.0, 0.0], [0.0, 0.001]])
    data = copy.deepcopy(small_scenario_dict())
    data.update(horizon_months=12, replications=3)
    data["segments"]["smb"]["lifecycle"]["churn"] = uncertain
    out["uncertainty_decomposition"] = cssim.decompose(cssim.scenario_from_dict(data))
    folder = tmp_path_factory.mktemp("history")
    history = cssim.synthesize_history(_scenario(horizon_months=30), seed=3)
    path = folder / "history.csv"
    history.to_csv(path, index=False)
    out["history_fit"] = cssim.fit_history(path, transitions=("churn",))
    cutoff = (pd.Timestamp(history["signed_date"].max()) - pd.DateOffset(months=6)).date()
    out["backtest"] = cssim.backtest(path, cutoff, 3, replications=3, families=("exponential",))
    out["touch_effects"] = cssim.touch_effects(_touch_frame(), covariates=["log_arr"], reference="low_touch")
    out["cohort_fit"] = cssim.fit_cohorts(DATA / "contractual_cohort_regular.csv", until=7, horizon=12)
    return out


@pytest.fixture(params=KINDS)
def result(request, made):
    return made[request.param]


def test_every_result_class_is_a_results(made):
    exported = [getattr(cssim, n) for n in cssim.__all__ if n.endswith("Results") or n in ("TouchEffects",
                                                                                          "UncertaintyDecomposition")]
    made_types = {type(r) for r in made.values()}
    for cls in exported:
        assert issubclass(cls, Results) and cls in made_types, cls
    assert sorted(r.KIND for r in made.values()) == sorted(KINDS)


def test_summary_is_a_table_that_prints_as_text(result):
    s = result.summary()
    assert isinstance(s, pd.DataFrame) and isinstance(s, Summary) and len(s) > 0
    text = str(s)
    assert text.strip() and text == repr(s)
    assert "<table" in result._repr_html_() and type(result).__name__ in result._repr_html_()


def test_level_is_the_one_name_of_the_interval_level(result):
    assert 0.5 <= result.level < 1.0
    for name in ("alpha", "interval", "confidence_level"):
        assert not isinstance(getattr(type(result), name, None), property), f"{name} is a second name for the level"


def test_tables_are_methods(result):
    tables = result.tables()
    assert tables and all(isinstance(t, pd.DataFrame) for t in tables.values())
    table = getattr(result, "table", None)
    if table is not None and not isinstance(table, pd.DataFrame) and result.KIND != "cohort_fit":
        assert callable(table) and isinstance(table(), pd.DataFrame)
    for name, value in vars(result).items():
        assert not (name.startswith("table") and isinstance(value, pd.DataFrame)), f"{name} is a table attribute"


def test_plots_take_ax_and_return_it(result):
    for name, method in inspect.getmembers(result, inspect.ismethod):
        if not name.startswith("plot_"):
            continue
        params = inspect.signature(method).parameters
        assert "ax" in params or "axes" in params, f"{name} takes no ax"
        if "ax" not in params:
            continue
        args = [next(iter(result.fits))] if name == "plot_vs_km" else []
        fig, ax = plt.subplots()
        try:
            drawn = method(*args, ax=ax)
        except ValueError as exc:  # a plot of a method this result did not run (Sobol' of a one-at-a-time study)
            assert "no sobol rows" in str(exc), exc
            continue
        finally:
            plt.close(fig)
        assert drawn is ax, f"{name} did not return the Axes it drew on"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_to_folder_writes_tables_summary_and_one_manifest(result, fmt, tmp_path):
    out = result.to_folder(tmp_path / "out", format=fmt)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tool"] == "cssim" and manifest["kind"] == result.KIND and manifest["format"] == fmt
    assert manifest["versions"]["cssim"] == cssim.__version__
    assert (out / "summary.txt").read_text().strip() == str(result.summary()).strip()
    for stem, frame in result.tables().items():
        path = out / f"{stem}.{fmt}"
        assert path.name in manifest["files"]
        back = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)
        assert back.shape == frame.shape and list(back.columns) == [str(c) for c in frame.columns]
    with pytest.raises(cssim.CssimError, match="exists"):
        result.to_folder(tmp_path / "out", format=fmt)
    with pytest.raises(cssim.CssimError, match="format"):
        result.to_folder(tmp_path / "other", format="xlsx")
