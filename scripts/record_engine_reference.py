"""Record the engine's KPI distributions as reference data for the statistical-equivalence test.

Run with a trusted engine (``python scripts/record_engine_reference.py``): it simulates the shipped
baseline, high-touch and low-touch scenarios (200 replications each) and writes, per scenario, every KPI
of every replication plus the program reach share to ``tests/data/engine_reference/<scenario>.csv``.
``tests/test_engine_equivalence.py`` compares a fresh run's means and spreads against these files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cssim

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from engine_reference import DATA, SCENARIOS, kpi_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    for name in SCENARIOS:
        scenario = cssim.load_scenario(ROOT / "scenarios" / f"{name}.yaml")
        results = cssim.simulate(scenario, replications=args.replications, jobs=args.jobs)
        kpi_table(results).to_csv(DATA / f"{name}.csv", index=False, float_format="%.10g")
        print(f"{name}: {args.replications} replications written")


if __name__ == "__main__":
    main()
