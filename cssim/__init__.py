"""cssim — forecast what a customer-success policy does to a B2B SaaS business.

Load a scenario, simulate it, read the results::

    import cssim
    scenario = cssim.load_scenario("scenarios/baseline.yaml")
    results = cssim.simulate(scenario, replications=20)
    print(results.summary())
"""

from ._version import __version__ as __version__
from .analysis.backtest import BacktestResults, backtest
from .analysis.compare import ComparisonResults, compare
from .analysis.decompose import UncertaintyDecomposition, decompose
from .analysis.plan import PlanResults, Target, parse_target, plan
from .analysis.results import SimulationResults
from .analysis.sensitivity import SensitivityResults, sensitivity
from .analysis.simulate import simulate
from .analysis.sweep import SweepResults, sweep, sweep_points
from .core.errors import CssimError, DataError, ModelWarning, PlanError, ScenarioError
from .core.output import write_results
from .fitting.acquisition import fit_acquisition, write_forecast
from .fitting.causal import TouchEffects, touch_effects
from .fitting.cohorts import fit_cohorts, read_cohort_table
from .fitting.curvesfile import fit_history
from .fitting.history import read_history
from .model.checks import model_checks, offered_load
from .model.curvefile import load_curves
from .model.loader import load_scenario, scenario_from_dict, scenario_hash
from .model.metrics import KPI_NAMES, KPIS
from .model.scenario import Scenario
from .model.uncertainty import with_uncertainty
from .sim.synth import synthesize_history

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
