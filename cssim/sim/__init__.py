"""The simulation: the engine (customers in one calendar), CSM pods, the monthly ledger, and the backends that run
replications locally or on Dask."""
