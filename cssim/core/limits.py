"""Limits on sizes, checked when a scenario loads (and by the command line's flags), before any work.

A typo (10⁹ customers) fails in one line instead of running for ever. Documented in README.md ("Limits").
"""

import datetime as dt

#: Customers at the start of one segment (``initial_customers``, or rows of a book).
MAX_CUSTOMERS = 1_000_000
#: Mean new logos per month of one segment.
MAX_NEW_LOGOS_PER_MONTH = 100_000
#: Customers over the whole run, all segments: initial + new logos per month × horizon.
MAX_TOTAL_CUSTOMERS = 5_000_000
#: CSMs in one pod (``headcount``, and each hire's ``count``).
MAX_HEADCOUNT = 10_000
#: Replications of one run.
MAX_REPLICATIONS = 100_000
#: Months simulated.
MAX_HORIZON_MONTHS = 240
#: Points of a sweep (grid × sample).
MAX_SWEEP_POINTS = 10_000
#: Shortest cadence (days) and highest rate of a per-customer event (a year): at most daily, so a typo
#: (``every_days: 0.001``) cannot make a run that never ends.
MIN_EVERY_DAYS = 1.0
#: Shortest median time of a curve (days): states that flip faster than every few hours would loop for ever.
MIN_CURVE_MEDIAN_DAYS = 0.1
MAX_RATE_PER_YEAR = 365.0
#: Hazard and odds ratios lie in [1/1000, 1000]: beyond, a state flips at once or never (and sums overflow).
MIN_RATIO, MAX_RATIO = 1e-3, 1e3
#: Money (ARR of a customer, a CSM's yearly cost) at most 10¹² a year, so totals cannot overflow.
MAX_MONEY = 1e12
#: Hours of one task, and hours a CSM works a week.
MAX_TASK_HOURS, MAX_HOURS_PER_WEEK = 2_000.0, 168.0
#: Tenure of the initial book (months).
MAX_TENURE_MONTHS = 1_200.0
#: Seeds are non-negative integers below 2⁶³.
MAX_SEED = 2**63 - 1
#: Calendar range of ``start_date``: the run must end inside the dates pandas can hold (up to 2262).
MIN_START_DATE, MAX_START_DATE = dt.date(1900, 1, 1), dt.date(2200, 12, 1)
