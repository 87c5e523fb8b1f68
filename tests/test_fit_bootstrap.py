"""Bootstrap parameter sets from ``cssim fit --bootstrap``: customers resampled, chosen family refitted.

The spread check is built so that it fails if rows rather than customers were
resampled: with every customer's episodes identical copies, a customer-level
bootstrap spreads √3 times as wide as the asymptotic (row-independent)
interval, a row-level one would not.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import small_scenario_dict

from cssim import scenario_from_dict, simulate
from cssim.cli import main
from cssim.fitting.bootstrap import bootstrap_renewal, resample_customers
from cssim.fitting.covariates import fit_renewal_model, renewal_designs
from cssim.fitting.history import read_history
from cssim.fitting.univariate import UnivariateFit, durations
from cssim.model.uncertainty import replication_curve

EXTRACT = pd.Timestamp("2026-12-31")


def _episodes(rng, customers: int, episodes: int, scale: float, copies: bool) -> pd.DataFrame:
    """Exponential durations censored over two years; ``copies``: a customer's episodes are one episode repeated."""
    n = customers * (1 if copies else episodes)
    T = scale * rng.standard_exponential(n)
    C = rng.uniform(30.0, 730.0, n)
    d = pd.DataFrame({"duration": np.minimum(T, C), "event": (T <= C).astype(int), "entry": 0.0})
    if copies:
        d = d.loc[np.repeat(np.arange(customers), episodes)].reset_index(drop=True)
    d["customer_id"] = np.repeat(np.arange(customers), episodes).astype(str)
    return d


def _sd_ratio(data: pd.DataFrame, n: int = 60) -> float:
    """Bootstrap SD of log(scale) over the delta-method SD of the same fit."""
    fit = UnivariateFit(data, "smb", "churn", families=("exponential",)).fit()
    cov = fit.covariance()
    lam, var = cov["estimates"][0], cov["covariance"][0][0]
    rows = fit.bootstrap(n, seed=1)
    assert len(rows) == n and fit.bootstrap_failed_ == 0
    return float(np.std(np.log([r[0] for r in rows]), ddof=1) / (math.sqrt(var) / lam))


def test_resamples_draw_customers_deterministically():
    ids = [f"c{i}" for i in range(50)]
    a = resample_customers(ids, 8, seed=3, key="smb")
    assert a.counts.shape == (8, 50) and (a.counts.sum(axis=1) == 50).all()
    assert np.array_equal(a.counts, resample_customers(ids[::-1] + ids[:5], 8, seed=3, key="smb").counts)
    assert np.array_equal(a.counts[:5], resample_customers(ids, 5, seed=3, key="smb").counts)  # a prefix
    assert not np.array_equal(a.counts, resample_customers(ids, 8, seed=4, key="smb").counts)
    assert not np.array_equal(a.counts, resample_customers(ids, 8, seed=3, key="mid").counts)
    # Every row of a customer gets that customer's weight.
    w = a.weights(["c7", "c7", "c2", "c7"])
    assert np.array_equal(w[:, 0], w[:, 1]) and np.array_equal(w[:, 0], w[:, 3])
    with pytest.raises(ValueError, match="customer_id: 'zz' is not among the resampled customers"):
        a.weights(["zz"])
    with pytest.raises(ValueError, match=r"^bootstrap: must be a whole number >= 0"):
        resample_customers(ids, -1, seed=0, key="smb")


def test_refits_are_deterministic_given_the_seed():
    data = _episodes(np.random.default_rng(5), 120, 2, 400.0, copies=False)
    fit = UnivariateFit(data, "smb", "churn", families=("exponential", "weibull")).fit()
    a = fit.bootstrap(4, seed=7)
    assert len(a) == 4 and all(len(r) == len(fit.covariance()["names"]) for r in a)
    assert fit.bootstrap(4, seed=7) == a
    assert fit.bootstrap(4, seed=8) != a
    block = fit.to_dict()["parameters"]
    assert block["bootstrap"] == fit.bootstrap_ and block["bootstrap_failed"] == 0
    # The sets scatter around the point estimate on the same (natural) scale.
    est = np.array(fit.covariance()["estimates"])
    assert np.all(np.abs(np.log(np.array(a) / est)) < 0.5)


def test_bootstrap_spread_matches_the_asymptotic_one_and_respects_customers():
    independent = _sd_ratio(_episodes(np.random.default_rng(11), 200, 3, 500.0, copies=False))
    assert 0.7 < independent < 1.3, independent
    # Each customer's three episodes are copies: the information is that of 200 rows, not 600.
    copies = _sd_ratio(_episodes(np.random.default_rng(12), 200, 3, 500.0, copies=True))
    assert 0.7 * math.sqrt(3) < copies < 1.3 * math.sqrt(3), copies


def _history_csv(path, rng, customers: int = 260) -> None:
    """One monthly segment, a quarter of the customers won back once, annual renewals logged."""
    rows = []
    start = pd.Timestamp("2024-01-01")
    for i in range(customers):
        signed = start + pd.Timedelta(days=int(rng.integers(0, 700)))
        for ep in range(2 if i % 4 == 0 else 1):
            life = float(600.0 * rng.weibull(0.9))
            churn = signed + pd.Timedelta(days=max(1, int(life)))
            end = min(churn, EXTRACT)
            log, k = [], 1
            while signed + pd.Timedelta(days=365 * k) <= end:
                at_risk = rng.random() < 0.3
                p = 0.5 if at_risk else 0.9
                log.append(f"{(signed + pd.Timedelta(days=365 * k)).date()} "
                           f"{'renewed' if rng.random() < p else 'lost'}{' at_risk' if at_risk else ''}")
                k += 1
            rows.append({"customer_id": f"c{i}", "episode": ep, "segment": "smb", "touch_model": "tech",
                         "signed_date": signed.date(), "churn_date": churn.date() if churn <= EXTRACT else "",
                         "renewal_log": "; ".join(log), "extract_date": EXTRACT.date()})
            if churn > EXTRACT - pd.Timedelta(days=60):
                break
            signed = churn + pd.Timedelta(days=30)
    pd.DataFrame(rows).to_csv(path, index=False)


def test_fit_bootstrap_to_scenario_end_to_end(tmp_path, capsys):
    history = tmp_path / "history.csv"
    _history_csv(history, np.random.default_rng(2))
    out = tmp_path / "fit"
    assert main(["fit", str(history), "--out", str(out), "--bootstrap", "12", "--seed", "5", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "smb/churn:" in printed and "renewal smb: healthy " in printed
    assert f"renewal: {{fitted: {{file: {out}/curves.json, key: SEGMENT}}}}" in printed
    data = json.loads((out / "curves.json").read_text())
    churn = data["curves"]["smb/churn"]["parameters"]
    sets = churn["bootstrap"]
    assert len(sets) + churn["bootstrap_failed"] == 12 and len(sets) >= 10
    assert all(len(r) == len(churn["names"]) for r in sets)
    renewal = data["renewal"]["smb"]["parameters"]
    assert renewal["names"][:2] == ["const", "at_risk"]
    assert len(renewal["bootstrap"]) + renewal["bootstrap_failed"] == 12 and len(renewal["bootstrap"]) >= 10
    assert np.std(np.array(renewal["bootstrap"]), axis=0).min() > 0

    # Same history, same seed: the same sets (the resamples are one keyed draw per segment).
    h = read_history(history)
    chosen = data["curves"]["smb/churn"]["chosen"]
    fit = UnivariateFit(durations(h, "churn", "smb"), "smb", "churn", families=tuple({"weibull", chosen})).fit()
    assert fit.best_ == chosen and fit.covariance()["estimates"] == churn["estimates"]
    assert fit.bootstrap(12, seed=5, resamples=resample_customers(h.frame["customer_id"], 12, 5, "smb")) == sets
    refit = fit_renewal_model(h)
    bootstrap_renewal(renewal_designs(h, refit), refit, {"smb": resample_customers(h.frame["customer_id"], 12, 5, "smb")})
    assert refit["smb"]["parameters"]["bootstrap"] == renewal["bootstrap"]

    d = small_scenario_dict()
    d["segments"]["smb"]["lifecycle"].update(
        churn={"family": "fitted", "file": str(out / "curves.json"), "key": "smb/churn", "model_uncertainty": "best"},
        at_risk_churn_hazard_ratio=1.0,
    )
    d.update(parameter_uncertainty="bootstrap", replications=4, horizon_months=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fitted block is usable: no "leaves out estimation uncertainty"
        warnings.filterwarnings("ignore", message=".*beyond the data's edge")  # true here: a 3-year-old book
        sc = scenario_from_dict(d, "boot.yaml")
    assert sc.uncertainty_mode == "bootstrap"
    spec = sc.segments["smb"].lifecycle.churn.concrete()
    assert len(spec.uncertainty.bootstrap) == len(sets)
    stored = [spec.with_parameters(np.exp(r)).build() for r in spec.uncertainty.bootstrap]
    drawn = [replication_curve(spec, "bootstrap", sc.seed, r, "smb", "churn") for r in range(6)]
    assert all(c in stored for c in drawn)  # each replication uses one of the stored sets, not a normal draw
    assert len({stored.index(c) for c in drawn}) >= 3  # replications draw different sets
    result = simulate(sc, jobs=1, progress=False)
    assert result.manifest["parameter_uncertainty"] == "bootstrap"


def test_cli_bad_bootstrap_is_one_line_exit_2(tmp_path, capsys):
    history = tmp_path / "h.csv"
    history.write_text("customer_id,signed_date\na,2025-01-01\n")
    assert main(["fit", str(history), "--out", str(tmp_path / "o"), "--bootstrap", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("cssim: error: fit: argument --bootstrap: -1")
    assert not (tmp_path / "o").exists()
