"""Snapshot tables (one row per customer: tenure, churn flag, attributes) fitted as churn curves."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cssim import scenario_from_dict
from cssim.cli import main
from cssim.fitting.snapshot import read_flags, read_snapshot
from cssim.fitting.univariate import UnivariateFit, durations

MONTH = 30.436875
# Per contract type: a Weibull churn clock (scale in months, shape), as in a telecom churn table.
TRUTH = {"Month-to-month": (30.0, 0.7), "Two year": (400.0, 1.0)}


def _snapshot(path, n=1500, seed=4):
    rng = np.random.default_rng(seed)
    contract = rng.choice(list(TRUTH), size=n)
    scale = np.array([TRUTH[c][0] for c in contract])
    shape = np.array([TRUTH[c][1] for c in contract])
    life = scale * rng.standard_exponential(n) ** (1 / shape)
    since = rng.uniform(0, 72, n)  # months since signing at the snapshot
    tenure = np.round(np.minimum(life, since), 2)
    churn = np.where(life <= since, "Yes", "No")
    pd.DataFrame({"customerID": [f"{i:04d}-X" for i in range(n)], "tenure": tenure, "Churn": churn,
                  "Contract": contract, "MonthlyCharges": rng.uniform(20, 100, n).round(2)}).to_csv(path, index=False)
    return path


def test_flags_read_as_one_and_zero():
    s = pd.Series(["Yes", "no", "TRUE", "0", " 1 ", "n"])
    assert list(read_flags(s, "Churn", "t.csv")) == [1, 0, 1, 0, 1, 0]
    with pytest.raises(Exception, match=r"t.csv: row 3, column 'Churn': 'maybe' is not a churn flag"):
        read_flags(pd.Series(["Yes", "maybe"]), "Churn", "t.csv")


def test_a_snapshot_is_the_churn_clock_of_each_segment(tmp_path):
    path = _snapshot(tmp_path / "telco.csv")
    h = read_snapshot(path, "tenure", "Churn", "2024-01-31", segment="Contract")
    raw = pd.read_csv(path)
    d = durations(h, "churn", "Month-to-month")
    sub = raw[raw.Contract == "Month-to-month"]
    assert len(d) == len(sub) and d["event"].sum() == (sub.Churn == "Yes").sum()
    expected = np.sort(np.maximum(np.round(sub.tenure.to_numpy() * MONTH), 0.5))
    assert np.allclose(np.sort(d["duration"].to_numpy()), expected, atol=1.0)  # whole days (0.5: churned at once)
    # The fit recovers the month-to-month Weibull (scale 30 months, shape 0.7) within its interval.
    f = UnivariateFit(d, "Month-to-month", "churn", families=("weibull",)).fit().fitters_["weibull"]
    ci = f.summary[["coef lower 95%", "coef upper 95%"]]
    assert ci.loc["lambda_"].iloc[0] / MONTH < 30 < ci.loc["lambda_"].iloc[1] / MONTH
    assert ci.loc["rho_"].iloc[0] < 0.7 < ci.loc["rho_"].iloc[1]


def test_cssim_fit_writes_curves_a_scenario_can_use(tmp_path, capsys):
    path = _snapshot(tmp_path / "telco.csv")
    out = tmp_path / "fit"
    assert main(["fit", str(path), "--duration", "tenure", "--event", "Churn", "--segment", "Contract",
                 "--extract-date", "2024-01-31", "--families", "exponential,weibull,lognormal",
                 "--out", str(out), "-q"]) == 0
    text = capsys.readouterr().out
    assert "Month-to-month/churn:" in text and "data edge:" in text and "renewal: {fitted" not in text
    curves = json.loads((out / "curves.json").read_text())
    assert set(curves["curves"]) == {"Month-to-month/churn", "Two year/churn"}
    assert curves["provenance"]["extract_date"] == "2024-01-31"
    entry = curves["curves"]["Month-to-month/churn"]
    assert entry["edge"]["observed_max"] <= 72 * MONTH + 1 and entry["weights"]
    from conftest import small_scenario_dict

    d = small_scenario_dict()
    d["segments"]["smb"]["lifecycle"] = {"churn": {"family": "fitted", "file": str(out / "curves.json"),
                                                   "key": "Month-to-month/churn"}, "at_risk_churn_hazard_ratio": 1.0}
    sc = scenario_from_dict(d, "s.yaml")
    assert sc.segments["smb"].lifecycle.churn.concrete().build().cumhaz(365.0) > 0


@pytest.mark.parametrize(("args", "message"), [
    (["--duration", "tenure", "--event", "Churn"], "a snapshot table needs --extract-date"),
    (["--duration", "tenure", "--event", "Churned", "--extract-date", "2024-01-31"], "no column 'Churned' for --event"),
    (["--event", "Churn", "--extract-date", "2024-01-31"], "needs --duration and --event"),
])
def test_bad_snapshot_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    path = _snapshot(tmp_path / "telco.csv", n=50)
    assert main(["fit", str(path), "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_tenure_and_flag_name_the_row(tmp_path, capsys):
    path = _snapshot(tmp_path / "telco.csv", n=50)
    raw = pd.read_csv(path)
    raw["tenure"] = raw["tenure"].astype(object)
    raw.loc[6, "tenure"] = "-3"
    raw.to_csv(path, index=False)
    assert main(["fit", str(path), "--out", str(tmp_path / "o"), "--duration", "tenure", "--event", "Churn",
                 "--extract-date", "2024-01-31"]) == 2
    assert "row 8, column 'tenure': '-3' is negative" in capsys.readouterr().err
    raw.loc[6, "tenure"] = 3
    raw.loc[9, "Churn"] = "maybe"
    raw.to_csv(path, index=False)
    assert main(["fit", str(path), "--out", str(tmp_path / "o"), "--duration", "tenure", "--event", "Churn",
                 "--extract-date", "2024-01-31"]) == 2
    assert "row 11, column 'Churn': 'maybe' is not a churn flag" in capsys.readouterr().err


def test_fit_report_lists_the_weights_and_the_edge(tmp_path):
    path = _snapshot(tmp_path / "telco.csv")
    out = tmp_path / "fit"
    assert main(["fit", str(path), "--duration", "tenure", "--event", "Churn", "--extract-date", "2024-01-31",
                 "--families", "weibull,lognormal", "--out", str(out), "-q"]) == 0
    report = (out / "fit_report.md").read_text()
    entry = json.loads((out / "curves.json").read_text())["curves"]["all/churn"]
    assert "| family | log-lik | AIC | ΔAIC | weight |" in report
    assert f"Data edge: {entry['edge']['edge']:.0f} days" in report
    for fam, w in entry["weights"].items():
        assert f"| {fam}" in report and f"{w:.1%}" in report
