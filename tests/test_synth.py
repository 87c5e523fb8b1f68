"""cssim synth: a scenario's replication written as a customer history."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

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


def test_synth_seed_and_months_are_honoured():
    s = cssim.load_scenario(ROUNDTRIP)
    a = cssim.synthesize_history(s, seed=1, months=6)
    b = cssim.synthesize_history(s, seed=2, months=6)
    assert a.equals(cssim.synthesize_history(s, seed=1, months=6))  # the seed alone decides the history
    assert not a["churn_date"].equals(b["churn_date"])
    for h in (a, b):
        # The initial book is the scenario's, every seed; the extract is 6 months (182.6 days) after the start.
        assert (h["signed_date"] < str(s.start_date)).sum() == sum(g.initial_customers for g in s.segments.values())
        assert set(h["extract_date"]) == {"2027-07-02"}
        # New logos arrive at the scenario's rate (Poisson over 6 months, within 4 standard deviations).
        rate = sum(g.new_logos_per_month for g in s.segments.values()) * 6
        new = ((h["signed_date"] >= str(s.start_date)) & (h["episode"].astype(int) == 0)).sum()
        assert abs(new - rate) < 4 * rate**0.5 + 1
    # Overrides are validated like any other: a history of no months is refused, naming the field.
    with pytest.raises(cssim.ScenarioError, match="horizon_months"):
        cssim.synthesize_history(s, months=0)


def test_synth_renewal_log_and_maturity_match_the_records():
    s = cssim.load_scenario(ROOT / "tests" / "data" / "roundtrip_renewal.yaml")
    f = cssim.synthesize_history(s, months=12)
    entries = f["renewal_log"].map(lambda t: [e.split() for e in t.split("; ")] if t else [])
    assert (entries.map(len) == f["renewals_due"]).all() and f["renewals_due"].sum() > 500
    assert (entries.map(lambda es: sum(e[1] == "renewed" for e in es)) == f["renewals_renewed"]).all()
    flags = pd.Series([flag for es in entries for e in es for flag in e[2:]]).value_counts()
    assert set(flags.index) == {"at_risk", "onboarding", "touched"}  # every state occurs
    # A lost renewal is the churn: same day, and only as the last entry.
    lost = f[f["churn_reason"] == "not_renewed"]
    assert len(lost) > 0 and (entries[lost.index].map(lambda es: es[-1][:2]) == lost["churn_date"].map(lambda d: [d, "lost"])).all()
    matured = f[f["matured_date"] != ""]
    assert len(matured) > 100 and (matured["matured_date"] >= matured["onboarded_date"]).all()
    assert read_history_frame_ok(f)


def read_history_frame_ok(frame) -> bool:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "h.csv"
        frame.to_csv(p, index=False)
        h = read_history(p)
    return len(h.renewals) == int(frame["renewals_due"].sum())
