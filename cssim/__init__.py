"""cssim — forecast what a customer-success policy does to a B2B SaaS business.

Load a scenario, simulate it, read the results::

    import cssim
    scenario = cssim.load_scenario("scenarios/baseline.yaml")
    results = cssim.simulate(scenario, replications=20)
    print(results.summary())
"""

from .errors import CssimError, DataError, PlanError, ScenarioError
from .loader import load_scenario, scenario_from_dict, scenario_hash
from .metrics import KPI_NAMES, KPIS
from .output import write_results
from .results import SimulationResults
from .scenario import Scenario
from .simulate import simulate

__version__ = "0.1.0"

__all__ = [
    "CssimError",
    "DataError",
    "KPIS",
    "KPI_NAMES",
    "PlanError",
    "Scenario",
    "ScenarioError",
    "SimulationResults",
    "load_scenario",
    "scenario_from_dict",
    "scenario_hash",
    "simulate",
    "write_results",
]
