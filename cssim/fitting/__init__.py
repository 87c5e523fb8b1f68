"""Fitting: turn customer data into curves and forecasts a scenario can use."""
