"""Simulation time: the engine runs in days; results are reported by month."""

DAYS_PER_YEAR = 365.25
DAYS_PER_MONTH = DAYS_PER_YEAR / 12.0
MONTHS_PER_WINDOW = 12  # period KPIs (GRR, NRR, logo retention) use annual windows
