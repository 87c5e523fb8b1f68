"""Record the engine's KPI distributions as reference data for the statistical-equivalence test.

Run once with a trusted engine (``python scripts/record_engine_reference.py``): it simulates the
shipped baseline, high-touch and low-touch scenarios (200 replications each) and writes, per
scenario, every KPI of every replication plus the program reach share to
``tests/data/engine_reference/<scenario>.csv``. ``tests/test_engine_equivalence.py`` compares a
fresh run's means and spreads against these files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import cssim

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "engine_reference"
SCENARIOS = ("baseline", "high_touch", "low_touch")


def reference_table(results) -> pd.DataFrame:
    """Every KPI per replication and scope, plus program reach (reached / sent) per segment and overall."""
    table = results.kpis_by_replication()[["replication", "kpi", "scope", "value"]]
    seg = results.arrays["segment"]
    sent, reached = seg["program_sent"].sum(axis=1), seg["program_reached"].sum(axis=1)  # (rep, segment)
    rows = []
    for i, rep in enumerate(results.replication_ids):
        scopes = [("all", sent[i].sum(), reached[i].sum())]
        scopes += [(name, sent[i, j], reached[i, j]) for j, name in enumerate(results.segments)]
        for scope, s, r in scopes:
            rows.append({"replication": rep, "kpi": "program_reach", "scope": scope, "value": r / s if s else np.nan})
            rows.append({"replication": rep, "kpi": "program_sent", "scope": scope, "value": s})
    return pd.concat([table, pd.DataFrame(rows)], ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name in SCENARIOS:
        scenario = cssim.load_scenario(ROOT / "scenarios" / f"{name}.yaml")
        results = cssim.simulate(scenario, replications=args.replications, jobs=args.jobs)
        reference_table(results).to_csv(OUT / f"{name}.csv", index=False, float_format="%.10g")
        print(f"{name}: {args.replications} replications written")


if __name__ == "__main__":
    main()
