"""cssim — forecast what a customer-success policy does to a B2B SaaS business.

Load a scenario, simulate it, read the results::

    import cssim
    scenario = cssim.load_scenario("scenarios/baseline.yaml")
    results = cssim.simulate(scenario, replications=20)
    print(results.summary())
"""

# The public names are imported on first use (PEP 562), so that ``cssim --help`` and ``cssim --version`` start
# without loading pandas, SimPy, lifelines and the rest; ``from cssim import simulate`` works as before.
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__ as __version__

_EXPORTS = {
    "BacktestResults": "cssim.analysis.backtest",
    "ComparisonResults": "cssim.analysis.compare",
    "CssimError": "cssim.core.errors",
    "DataError": "cssim.core.errors",
    "KPIS": "cssim.model.metrics",
    "KPI_NAMES": "cssim.model.metrics",
    "ModelWarning": "cssim.core.errors",
    "PlanError": "cssim.core.errors",
    "PlanResults": "cssim.analysis.plan",
    "Scenario": "cssim.model.scenario",
    "ScenarioError": "cssim.core.errors",
    "SensitivityResults": "cssim.analysis.sensitivity",
    "SimulationResults": "cssim.analysis.results",
    "SweepResults": "cssim.analysis.sweep",
    "Target": "cssim.analysis.plan",
    "TouchEffects": "cssim.fitting.causal",
    "UncertaintyDecomposition": "cssim.analysis.decompose",
    "backtest": "cssim.analysis.backtest",
    "compare": "cssim.analysis.compare",
    "decompose": "cssim.analysis.decompose",
    "fit_acquisition": "cssim.fitting.acquisition",
    "fit_cohorts": "cssim.fitting.cohorts",
    "fit_history": "cssim.fitting.curvesfile",
    "load_curves": "cssim.model.curvefile",
    "load_scenario": "cssim.model.loader",
    "model_checks": "cssim.model.checks",
    "offered_load": "cssim.model.checks",
    "parse_target": "cssim.analysis.plan",
    "plan": "cssim.analysis.plan",
    "read_cohort_table": "cssim.fitting.cohorts",
    "read_history": "cssim.fitting.history",
    "scenario_from_dict": "cssim.model.loader",
    "scenario_hash": "cssim.model.loader",
    "sensitivity": "cssim.analysis.sensitivity",
    "simulate": "cssim.analysis.simulate",
    "sweep": "cssim.analysis.sweep",
    "sweep_points": "cssim.analysis.sweep",
    "synthesize_history": "cssim.sim.synth",
    "touch_effects": "cssim.fitting.causal",
    "with_uncertainty": "cssim.model.uncertainty",
    "write_forecast": "cssim.fitting.acquisition",
    "write_results": "cssim.core.output",
}

if TYPE_CHECKING:  # what static analysers and IDEs see
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


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cssim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


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
