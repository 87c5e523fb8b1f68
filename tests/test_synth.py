"""cssim synth: a scenario's replication written as a customer history."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import cssim
from cssim.cli import main
from cssim.fitting.history import read_history

ROOT = Path(__file__).resolve().parents[1]
ROUNDTRIP = ROOT / "tests" / "data" / "roundtrip.yaml"


def test_synth_cli_writes_valid_history(tmp_path, capsys):
    out = tmp_path / "h.csv"
    assert main(["synth", str(ROUNDTRIP), "--out", str(out), "--months", "12", "--seed", "3"]) == 0
    assert "customer episodes" in capsys.readouterr().out
    h = read_history(out)  # the synthetic file passes the reader's validation
    f = h.frame
    assert h.extract_date == pd.Timestamp("2028-01-01")  # 12 months = 365.25 days from 2027-01-01
    initial = f["signed_date"] < pd.Timestamp("2027-01-01")
    assert initial.sum() == 1500 and (f.loc[initial, "observed_from"] == pd.Timestamp("2027-01-01")).all()
    assert f.loc[~initial, "observed_from"].isna().all()
    assert (f["churn_date"].dropna() <= h.extract_date).all()
    # Refuses to overwrite without --force; the same seed gives the same file.
    assert main(["synth", str(ROUNDTRIP), "--out", str(out)]) == 2
    again = tmp_path / "again.csv"
    main(["synth", str(ROUNDTRIP), "--out", str(again), "--months", "12", "--seed", "3"])
    assert out.read_bytes() == again.read_bytes()


def test_synth_seed_changes_history():
    s = cssim.load_scenario(ROUNDTRIP)
    a = cssim.synthesize_history(s, seed=1, months=6)
    b = cssim.synthesize_history(s, seed=2, months=6)
    assert not a["churn_date"].equals(b["churn_date"])
