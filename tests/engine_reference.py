"""KPI distributions of the shipped scenarios, as recorded in ``tests/data/engine_reference``.

The reference files were written by ``scripts/record_engine_reference.py`` from the engine that ran one
SimPy process per customer; ``tests/test_engine_equivalence.py`` holds the calendar engine to them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parent / "data" / "engine_reference"
SCENARIOS = ("baseline", "high_touch", "low_touch")
# The KPIs held to the reference: retention, renewals, CSM work and program reach, per segment and overall.
KPIS = ("grr", "nrr", "logo_retention", "renewal_rate", "touch_miss_rate", "csm_utilisation", "program_reach")


def kpi_table(results) -> pd.DataFrame:
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


def compare(reference: pd.DataFrame, new: pd.DataFrame, kpis=KPIS) -> pd.DataFrame:
    """Per KPI and scope: both means, z = difference / combined standard error, and the ratio of spreads (SD)."""
    rows = []
    for (kpi, scope), ref in reference[reference.kpi.isin(kpis)].groupby(["kpi", "scope"]):
        a = ref["value"].dropna().to_numpy()
        b = new.loc[(new.kpi == kpi) & (new.scope == scope), "value"].dropna().to_numpy()
        if len(a) < 2 or len(b) < 2 or (a.std() == 0 and b.std() == 0 and a.mean() == b.mean()):
            continue
        se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        rows.append({
            "kpi": kpi, "scope": scope, "reference": a.mean(), "new": b.mean(),
            "z": (b.mean() - a.mean()) / se if se > 0 else np.inf,
            "sd_ratio": b.std(ddof=1) / a.std(ddof=1) if a.std() > 0 else np.inf,
        })
    return pd.DataFrame(rows)
