"""Monthly accumulators one replication writes into, and nothing else.

The engine adds flows (what happened during month ``m``) into plain nested
lists — fast to increment in the hot path. Segment stocks (state at the end of
month ``m``) are booked as changes in the month they happen, so no month end
has to visit every customer; :meth:`Ledger.arrays` accumulates them and hands
everything over as numpy arrays. Memory is O(months × segments), independent
of how many customers or events there were.
"""

from __future__ import annotations

import numpy as np

# Per (month, segment): what happened during the month.
SEGMENT_FLOWS = (
    "new_logos",
    "new_arr",
    "winback_logos",
    "winback_arr",
    "churned_logos",
    "churned_arr",
    "expansion_arr",
    "contraction_arr",
    "renewals_due",
    "renewals_renewed",
    "renewal_arr_due",
    "renewal_arr_renewed",
    "renewal_expansion_arr",
    "renewal_contraction_arr",
    "tasks_released",
    "tasks_delivered",
    "tasks_late",
    "tasks_missed",
    "tasks_unassigned",
    "tasks_waiting_at_end",  # still queued at the horizon, deadline not passed (booked in the last month)
    "tasks_overdue_at_end",  # of those, waiting longer than their due date
    "wait_days_sum",
    "tasks_waited",
    "program_sent",
    "program_reached",
    "handoffs",
    "became_at_risk",
)
# Per (month, segment): state at the end of the month (booked as changes, see ``Ledger.arrays``).
SEGMENT_STOCKS = (
    "active",
    "signing",
    "onboarding",
    "growth",
    "maturity",
    "at_risk",
    "arr",
    "with_csm",
)
# Per (month, pod).
POD_SERIES = ("busy_days", "employed_days", "headcount", "backlog", "accounts")
# Per (window, segment): annual cohorts of customers active at the window start.
WINDOW_SERIES = (
    "start_logos",
    "start_arr",
    "churned_logos",
    "churned_arr",
    "contraction_arr",
    "expansion_arr",
    "end_logos",
    "end_arr",
)


def _grid(rows: int, cols: int) -> list[list[float]]:
    return [[0.0] * cols for _ in range(rows)]


class Ledger:
    """The aggregated record of one replication."""

    def __init__(self, months: int, n_segments: int, n_pods: int, n_windows: int):
        self.months = months
        self.seg = {name: _grid(months, n_segments) for name in SEGMENT_FLOWS + SEGMENT_STOCKS}
        self.pod = {name: _grid(months, n_pods) for name in POD_SERIES}
        self.win = {name: _grid(n_windows, n_segments) for name in WINDOW_SERIES}

    def arrays(self) -> dict[str, dict[str, np.ndarray]]:
        seg = {k: np.asarray(v, dtype=float) for k, v in self.seg.items()}
        for name in SEGMENT_STOCKS:
            seg[name] = np.cumsum(seg[name], axis=0)
        # ARR booked as +a / −a in different months leaves rounding residue in an emptied book; it holds none.
        seg["arr"][seg["active"] == 0] = 0.0
        return {
            "segment": seg,
            "pod": {k: np.asarray(v, dtype=float) for k, v in self.pod.items()},
            "window": {k: np.asarray(v, dtype=float) for k, v in self.win.items()},
        }
