"""The scenario model: survival curves, the validated ``Scenario`` schema, KPI definitions, parameter uncertainty,
and the loader that reads a scenario file and resolves the files it names, once."""
