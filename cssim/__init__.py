"""cssim — forecast what a customer-success policy does to a B2B SaaS business.

Load a scenario, simulate it, read the results::

    import cssim
    scenario = cssim.load_scenario("scenarios/baseline.yaml")
    results = cssim.simulate(scenario, replications=20)
    print(results.summary())
"""

from .backtest import BacktestResults, backtest
from .checks import model_checks, offered_load
from .compare import ComparisonResults, compare
from .errors import CssimError, DataError, ModelWarning, PlanError, ScenarioError
from .fitting.acquisition import fit_acquisition, write_forecast
from .fitting.causal import TouchEffects, touch_effects
from .fitting.cohorts import fit_cohorts, read_cohort_table
from .fitting.curvesfile import fit_history, load_curves
from .fitting.history import read_history
from .loader import load_scenario, scenario_from_dict, scenario_hash
from .metrics import KPI_NAMES, KPIS
from .output import write_results
from .plan import PlanResults, Target, parse_target, plan
from .results import SimulationResults
from .scenario import Scenario
from .sensitivity import SensitivityResults, sensitivity
from .simulate import simulate
from .sweep import SweepResults, sweep, sweep_points
from .synth import synthesize_history
from .uncertainty import UncertaintyDecomposition, decompose, with_uncertainty

__version__ = "0.2.0"

__all__ = [
    "BacktestResults",
    "ComparisonResults",
    "CssimError",
    "DataError",
    "KPIS",
    "KPI_NAMES",
    "ModelWarning",
    "PlanError",
    "PlanResults",
    "Scenario",
    "ScenarioError",
    "SensitivityResults",
    "SimulationResults",
    "SweepResults",
    "Target",
    "TouchEffects",
    "UncertaintyDecomposition",
    "backtest",
    "compare",
    "decompose",
    "fit_acquisition",
    "fit_cohorts",
    "fit_history",
    "load_curves",
    "load_scenario",
    "model_checks",
    "offered_load",
    "parse_target",
    "plan",
    "read_cohort_table",
    "read_history",
    "scenario_from_dict",
    "scenario_hash",
    "sensitivity",
    "simulate",
    "sweep",
    "sweep_points",
    "synthesize_history",
    "touch_effects",
    "with_uncertainty",
    "write_forecast",
    "write_results",
]
