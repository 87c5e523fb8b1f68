"""What is done with simulations: results, comparisons, sweeps, headcount plans, back-tests, sensitivity and the
decomposition of interval width."""
