"""Regenerate the cohort side-by-side table in docs/fitting.md from the code.

    python docs/make_cohort_table.py

Fits the published regular cohort (tests/data/contractual_cohort_regular.csv)
on years 0-7, projects years 8-12 and writes the table between the
``cohort-table`` markers; tests/test_fit_cohorts.py checks the doc matches.
"""

from __future__ import annotations

import re
from pathlib import Path

from cssim.fitting.cohorts import fit_cohorts, side_by_side_table

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "fitting.md"
DATA = ROOT / "tests" / "data" / "contractual_cohort_regular.csv"


def main() -> None:
    table = side_by_side_table(fit_cohorts(DATA, until=7, horizon=12))
    text = DOC.read_text(encoding="utf-8")
    new, n = re.subn(
        r"(<!-- cohort-table:start -->\n).*?(\n<!-- cohort-table:end -->)",
        lambda m: m.group(1) + table + m.group(2),
        text,
        flags=re.S,
    )
    if n != 1:
        raise SystemExit(f"{DOC}: expected one pair of cohort-table markers, found {n}")
    DOC.write_text(new, encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
