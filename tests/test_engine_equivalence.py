"""The calendar engine against KPI distributions recorded from the per-customer-process engine it replaced.

Results stopped being bit-identical when customers became calendar records (new random streams, program
schedules drawn ahead); they must stay statistically the same model. For each shipped scenario, a fresh
run's per-replication KPIs are compared with 200 recorded replications: means within 4 combined standard
errors and spreads (standard deviations) within 20 %, per segment and overall. The replications are fixed
(seeded), so the test gives the same verdict every time it runs on the same code.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from engine_reference import DATA, SCENARIOS, compare, kpi_table

from cssim import load_scenario, simulate

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
REPLICATIONS = 100


@pytest.mark.parametrize("name", SCENARIOS)
def test_kpi_distributions_match_the_reference(name):
    reference = pd.read_csv(DATA / f"{name}.csv")
    assert reference["replication"].nunique() == 200
    results = simulate(load_scenario(ROOT / "scenarios" / f"{name}.yaml"), replications=REPLICATIONS, jobs=2)
    table = compare(reference, kpi_table(results))
    assert set(table["kpi"]) == {"grr", "nrr", "logo_retention", "renewal_rate", "touch_miss_rate",
                                 "csm_utilisation", "program_reach"}
    off_mean = table[table["z"].abs() > 4]
    off_spread = table[(table["sd_ratio"] - 1).abs() > 0.2]
    assert off_mean.empty and off_spread.empty, (
        f"{name}: means off by more than 4 SE:\n{off_mean.to_string()}\nspreads off by more than 20 %:\n"
        f"{off_spread.to_string()}"
    )


def test_the_comparison_catches_a_different_model():
    """Power: the same check rejects a baseline whose SMB churn is 15 % faster (not the reference model)."""
    reference = pd.read_csv(DATA / "baseline.csv")
    scenario = load_scenario(ROOT / "scenarios" / "baseline.yaml", {"segments.smb.lifecycle.churn.scale": 830})
    table = compare(reference, kpi_table(simulate(scenario, replications=30, jobs=2)), kpis=("logo_retention",))
    assert table.set_index("scope").loc["smb", "z"] < -4
