"""Acquisition forecast: ETS fit on known series, intervals, forecast files in scenarios."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
from conftest import small_scenario_dict, write_yaml

from cssim import DataError, ScenarioError, load_scenario, scenario_from_dict
from cssim.analysis.simulate import simulate
from cssim.fitting.acquisition import counts_from_history, fit_acquisition, read_monthly_counts, write_forecast
from cssim.sim.engine import Engine

LEVEL = {"smb": 20.0, "mid": 5.0}


def _months(n: int, start: int = 2024 * 12) -> list[str]:
    return [f"{(start + i) // 12}-{(start + i) % 12 + 1:02d}" for i in range(n)]


@pytest.fixture(scope="module")
def counts_file(tmp_path_factory):
    rng = np.random.default_rng(11)
    rows = [(m, s, int(rng.poisson(lam))) for m in _months(36) for s, lam in LEVEL.items()]
    path = tmp_path_factory.mktemp("acq") / "new_logos.csv"
    pd.DataFrame(rows, columns=["month", "segment", "new_logos"]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def forecast(counts_file):
    return fit_acquisition(counts_file, horizon=24, n_paths=300, seed=3)


@pytest.fixture(scope="module")
def forecast_file(forecast, tmp_path_factory):
    return write_forecast(forecast, tmp_path_factory.mktemp("fc") / "acquisition.json")


def test_fit_recovers_the_level_and_intervals_cover_poisson_noise(forecast):
    for seg, lam in LEVEL.items():
        f = forecast.segments[seg]
        assert f.start == "2027-01" and len(f.mean) == 24
        assert f.mean[0] == pytest.approx(lam, rel=0.15)
        # A 90 % interval for Poisson(lam) counts is about lam ± 1.645·sqrt(lam).
        half = (f.hi[0] - f.lo[0]) / 2
        assert half == pytest.approx(1.645 * np.sqrt(lam), rel=0.35)
        assert np.all(f.lo <= f.mean) and np.all(f.mean <= f.hi)
        # The simulated paths agree with the analytic forecast.
        assert f.paths.shape == (300, 24)
        assert f.paths.mean() == pytest.approx(f.mean.mean(), rel=0.05)
        inside = np.mean((f.paths >= f.lo) & (f.paths <= f.hi))
        assert 0.82 <= inside <= 0.97
        assert set(f.aicc) >= {"A,N,N", "A,Ad,N", "A,N,A"} and f.model == min(f.aicc, key=f.aicc.get)


def test_trend_is_picked_up():
    rng = np.random.default_rng(5)
    y = 10 + 0.5 * np.arange(48) + rng.normal(0, 1.0, 48)
    wide = pd.DataFrame({"growth": y}, index=pd.Index(_months(48), name="month"))
    f = fit_acquisition(wide, horizon=12, n_paths=50, seed=1).segments["growth"]
    assert f.model == "A,Ad,N"
    assert f.mean[-1] > y[-6:].mean() + 2  # keeps rising (damped), not flat at the last level


def test_forecast_file_round_trip(forecast, forecast_file):
    data = json.loads(forecast_file.read_text())
    assert data["format"] == "cssim.acquisition_forecast"
    seg = data["segments"]["smb"]
    assert seg["start"] == "2027-01" and seg["months"] == 24 and len(seg["paths"]) == 300
    assert seg["mean"][0] == pytest.approx(forecast.segments["smb"].mean[0], abs=1e-3)
    frame = forecast.to_frame()
    assert list(frame.columns) == ["segment", "month", "mean", "lo", "hi"] and len(frame) == 48


BAD_COUNTS = [
    ("month,new_logos\n2024-01,3\n", r"missing column 'segment'"),
    ("month,segment,new_logos\n2024-01,smb,3\n2024-13,smb,4\n", r"row 3, column 'month': cannot parse '2024-13'"),
    ("month,segment,new_logos\n2024-01,smb,three\n", r"row 2, column 'new_logos': 'three' is not a number"),
    ("month,segment,new_logos\n2024-01,smb,-1\n", r"row 2, column 'new_logos': '-1' must be a count"),
    ("month,segment,new_logos\n2024-01,smb,1\n2024-01,smb,2\n", r"row 3, column 'month': duplicate month 2024-01"),
    ("month,segment,new_logos\n2024-01,smb,1\n2024-03,smb,2\n", r"row 3, column 'month': segment 'smb' has no row for 2024-02"),
]


@pytest.mark.parametrize("text,message", BAD_COUNTS)
def test_bad_counts_tables(tmp_path, text, message):
    path = tmp_path / "counts.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as err:
        read_monthly_counts(path)
    assert str(err.value).startswith(str(path))


def test_too_short_a_series(tmp_path):
    path = tmp_path / "counts.csv"
    pd.DataFrame({"month": _months(8), "segment": "smb", "new_logos": 3}).to_csv(path, index=False)
    with pytest.raises(DataError, match="segment 'smb' has 8 months of data; .* at least 12"):
        fit_acquisition(path)


def test_counts_from_history_signed_dates():
    hist = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "c", "d"],
            "segment": ["smb", "smb", "smb", "smb", "mid"],
            "episode": [0, 0, 0, 1, 0],
            "signed_date": ["2024-01-05", "2024-01-20", "2024-03-02", "2024-09-01", "2024-02-11"],
        }
    )
    wide = counts_from_history(hist, through="2024-04")
    assert wide["smb"].loc["2024-01":"2024-04"].tolist() == [2, 0, 1, 0]  # the win-back episode is not a new logo
    assert wide["mid"].dropna().tolist() == [1, 0, 0]


# --------------------------------------------------------------------------- scenarios


def _scenario_with_forecast(forecast_file, **acq):
    data = copy.deepcopy(small_scenario_dict())
    data["start_date"] = "2027-01-01"
    data["horizon_months"] = 12
    data["replications"] = 6
    smb = data["segments"]["smb"]
    smb["new_logos_per_month"] = 0.0
    smb["acquisition"] = {"file": str(forecast_file), "key": "smb", **acq}
    return data


def test_scenario_with_forecast_simulates_and_replications_differ(forecast_file, forecast):
    scenario = scenario_from_dict(_scenario_with_forecast(forecast_file), source="acq.yaml")
    acq = scenario.segments["smb"].acquisition
    assert acq.offset == 0 and len(acq.paths) == 300 and len(acq.sha256) == 64
    new = []
    for rep in range(6):
        ledger = Engine(scenario, rep).run()
        new.append(sum(row[1] for row in ledger.seg["new_logos"]))  # segment index 1 = smb
    mean_forecast = forecast.segments["smb"].mean[:12].sum()
    assert np.mean(new) == pytest.approx(mean_forecast, rel=0.15)
    assert len(set(new)) > 1  # each replication follows its own path
    # Same seed, same replication: the same arrivals (reproducible).
    again = sum(row[1] for row in Engine(scenario, 2).run().seg["new_logos"])
    assert again == new[2]
    # simulate() (through the backends, on the resolved scenario) follows the same paths as the engine.
    results = simulate(scenario, replications=3)
    per_rep = results.arrays["segment"]["new_logos"][:, :, 1].sum(axis=1)
    assert per_rep.tolist() == new[:3]


def test_forecast_paths_drive_arrivals_not_the_poisson_rate(tmp_path, forecast):
    """A flat forecast of exactly 7 a month gives 7 arrivals every month."""
    f = copy.deepcopy(forecast)
    f.segments["smb"].paths = np.full((5, 24), 7.0)
    path = write_forecast(f, tmp_path / "flat.json")
    scenario = scenario_from_dict(_scenario_with_forecast(path), source="flat.yaml")
    ledger = Engine(scenario, 0).run()
    assert [row[1] for row in ledger.seg["new_logos"]] == [7] * 12


def test_relative_file_and_dump_round_trip(tmp_path, forecast_file):
    (tmp_path / "scen").mkdir()
    local = tmp_path / "scen" / "acquisition.json"
    local.write_bytes(forecast_file.read_bytes())
    data = _scenario_with_forecast("acquisition.json")
    path = write_yaml(tmp_path / "scen" / "s.yaml", data)
    scenario = load_scenario(path)
    acq = scenario.segments["smb"].acquisition
    assert acq.file == str(local.resolve())
    dumped = scenario.model_dump(mode="json")
    assert "paths" not in dumped["segments"]["smb"]["acquisition"]
    again = scenario_from_dict(dumped)  # re-reads the file, checks its hash
    assert again.segments["smb"].acquisition.paths == acq.paths


def test_forecast_must_cover_the_scenario_months(forecast_file):
    data = _scenario_with_forecast(forecast_file)
    data["horizon_months"] = 30  # forecast covers 2027-01..2028-12 (24 months)
    with pytest.raises(ScenarioError, match=r"covers 2027-01\.\.2028-12 but the scenario runs 2027-01\.\.2029-06"):
        scenario_from_dict(data, source="long.yaml")
    data = _scenario_with_forecast(forecast_file)
    data["start_date"] = "2026-06-01"
    with pytest.raises(ScenarioError, match=r"scenario runs 2026-06\.\.2027-05"):
        scenario_from_dict(data, source="early.yaml")
    # A later start uses the matching part of the forecast.
    data = _scenario_with_forecast(forecast_file)
    data["start_date"] = "2027-07-01"
    assert scenario_from_dict(data).segments["smb"].acquisition.offset == 6


def test_bad_acquisition_references(tmp_path, forecast_file):
    with pytest.raises(ScenarioError, match=r"segments\.smb\.acquisition: .*no forecast for key 'nope'; the file has: mid, smb"):
        scenario_from_dict(_scenario_with_forecast(forecast_file, key="nope"), source="s.yaml")
    with pytest.raises(ScenarioError, match=r"segments\.smb\.acquisition: .*not found"):
        scenario_from_dict(_scenario_with_forecast(tmp_path / "missing.json"), source="s.yaml")
    with pytest.raises(ScenarioError, match="file changed since"):
        scenario_from_dict(_scenario_with_forecast(forecast_file, sha256="0" * 64), source="s.yaml")
    data = _scenario_with_forecast(forecast_file)
    data["segments"]["smb"]["new_logos_per_month"] = 2.0
    with pytest.raises(ScenarioError, match="either new_logos_per_month or acquisition"):
        scenario_from_dict(data, source="s.yaml")


def test_cli_forecast_acquisition(tmp_path, counts_file, capsys):
    from cssim.cli import main

    out = tmp_path / "acq.json"
    assert main(["forecast-acquisition", str(counts_file), "--out", str(out), "--horizon", "6", "--paths", "20"]) == 0
    data = json.loads(out.read_text())
    assert data["segments"]["mid"]["months"] == 6 and len(data["segments"]["mid"]["paths"]) == 20
    assert "smb: ETS(" in capsys.readouterr().out
    assert main(["forecast-acquisition", str(counts_file), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("month,segment,new_logos\n2024-01,smb,x\n")
    assert main(["forecast-acquisition", str(bad), "--out", str(tmp_path / "b.json")]) == 2
    assert "row 2, column 'new_logos'" in capsys.readouterr().err
