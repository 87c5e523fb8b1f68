"""Synthetic customer histories: one replication of a scenario, written in the history format.

``cssim synth SCENARIO --out FILE`` runs the engine once with per-customer
records and writes what a company's CRM extract would show at the end of the
horizon: one row per customer episode with its dates (days → calendar dates
from the scenario's ``start_date``). The initial book signed before the start
(negative days): those rows have ``observed_from`` = ``start_date``, so fits
treat them as left-truncated, exactly as they would a real extract whose
window opens on a live customer base. The extract date is the end of the
horizon. ``renewal_log`` records each renewal with the customer's state at
that moment (at-risk, still onboarding, a renewal touch in effect), which is
what the renewal model is fitted on.

The shipped ``examples/history.csv`` is::

    cssim synth scenarios/baseline.yaml --out examples/history.csv --force

Because the curves behind the file are known, a synthetic history is the
round-trip check of the fitting code: fit it and the scenario's parameters
should come back within their confidence intervals.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pandas as pd

from ..core.clock import DAYS_PER_MONTH
from ..core.output import check_file_target
from ..model.loader import with_overrides
from ..model.scenario import Scenario
from .engine import Engine

__all__ = ["synthesize_history", "history_from_records", "write_history"]


def _date(start: dt.date, day) -> str:
    if day is None:
        return ""
    return (start + dt.timedelta(days=math.floor(day))).isoformat()


def _renewal_entry(start: dt.date, renewal: tuple) -> str:
    day, renewed, at_risk, onboarding, touched = renewal
    flags = [name for name, on in (("at_risk", at_risk), ("onboarding", onboarding), ("touched", touched)) if on]
    return " ".join([_date(start, day), "renewed" if renewed else "lost", *flags])


def history_from_records(records: list[dict], start: dt.date, end_day: float) -> pd.DataFrame:
    """Turn the engine's per-episode records into a history table (see docs/fitting.md)."""
    extract = _date(start, end_day)
    rows = []
    for r in records:
        spells = r["at_risk_spells"]
        first = spells[0] if spells else None
        renewals = r["renewals"]
        rows.append(
            {
                "customer_id": r["customer_id"],
                "episode": r["episode"],
                "segment": r["segment"],
                "touch_model": r["touch_model"],
                "arr": round(r["arr_start"], 2),
                "signed_date": _date(start, r["signed_day"]),
                "kickoff_date": _date(start, r["kickoff_day"]),
                "onboarded_date": _date(start, r["onboarded_day"]),
                "matured_date": _date(start, r["matured_day"]),
                "first_at_risk_date": _date(start, first[0]) if first else "",
                "first_at_risk_reason": first[2] if first else "",
                "recovered_date": _date(start, first[1]) if first and first[1] is not None else "",
                "churn_date": _date(start, r["churned_day"]),
                "churn_reason": r["churn_reason"] or "",
                "observed_from": start.isoformat() if r["signed_day"] < 0 else "",
                "renewals_due": len(renewals),
                "renewals_renewed": sum(1 for _, ok, *_ in renewals if ok),
                "renewal_log": "; ".join(_renewal_entry(start, rn) for rn in renewals),
                "extract_date": extract,
            }
        )
    df = pd.DataFrame(rows)
    return df.sort_values(["signed_date", "customer_id", "episode"], kind="stable").reset_index(drop=True)


def synthesize_history(scenario: Scenario, seed: int | None = None, months: int | None = None, rep: int = 0) -> pd.DataFrame:
    """Simulate one replication of ``scenario`` and return its customer history.

    Parameters
    ----------
    seed : int, optional
        Overrides the scenario's seed.
    months : int, optional
        Overrides ``horizon_months`` (how long the history runs).
    """
    scenario = with_overrides(scenario, {"seed": seed, "horizon_months": months})
    engine = Engine(scenario, rep, record=True)
    engine.run()
    return history_from_records(engine.records, scenario.start_date, scenario.horizon_months * DAYS_PER_MONTH)


def write_history(frame: pd.DataFrame, out, force: bool = False) -> Path:
    """Write a history as CSV (or Parquet for ``.parquet``), refusing to overwrite without ``force``."""
    out = Path(out)
    check_file_target(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    if out.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    tmp.replace(out)
    return out
