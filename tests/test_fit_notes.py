"""Console notes of ``cssim fit``: a better non-simulatable candidate, and only the renewal models that exist."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cssim.cli import main
from cssim.fitting.univariate import UnivariateFit


def _weibull_frame(n, scale, shape, censor, seed):
    rng = np.random.default_rng(seed)
    t = scale * rng.weibull(shape, n)
    return pd.DataFrame({"duration": np.minimum(t, censor).clip(0.5), "event": (t <= censor).astype(int),
                         "entry": 0.0, "customer_id": np.arange(n).astype(str)})


def test_a_spline_far_ahead_of_every_simulatable_family_is_noted():
    # Rising hazard (Weibull shape 3) offered only a constant hazard: the spline wins by hundreds of AIC.
    d = _weibull_frame(800, 300.0, 3.0, 600.0, seed=1)
    f = UnivariateFit(d, "smb", "churn", families=("exponential", "spline")).fit()
    assert f.best_ == "exponential"
    (note,) = f.notes()
    gap = float(f.candidates_.set_index("family").loc["exponential", "AIC"]
                - f.candidates_.set_index("family").loc["spline", "AIC"])
    assert gap > 100 and f"beats the chosen exponential by {gap:.0f} AIC" in note
    # With the right family among the candidates there is nothing to say.
    assert UnivariateFit(d, "smb", "churn", families=("weibull", "spline")).fit().notes() == []


def test_cli_suggests_a_renewal_model_only_when_the_history_has_one(tmp_path, capsys):
    rng = np.random.default_rng(2)
    n = 300
    signed = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    life = pd.to_timedelta(rng.exponential(400, n).round() + 1, unit="D")
    churn = pd.Series(signed + life).where(signed + life < pd.Timestamp("2026-01-01"))
    frame = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "episode": 1, "segment": "smb",
                          "touch_model": "tech", "arr": 5000, "signed_date": signed.strftime("%Y-%m-%d"),
                          "churn_date": churn.dt.strftime("%Y-%m-%d"), "renewals_due": 0, "renewals_renewed": 0})
    path = tmp_path / "history.csv"
    frame.to_csv(path, index=False)
    assert main(["fit", str(path), "--out", str(tmp_path / "fit"), "--families", "exponential,weibull",
                 "--extract-date", "2026-01-01"]) == 0
    out = capsys.readouterr().out
    assert "renewal: {fitted" not in out
    assert "no renewal model" in out
