"""The scenarios and example data that ship with cssim, found through the package.

``scenarios/``, ``examples/`` and ``notebooks/data/`` at the top of the source tree are
linked into this package and installed with it, so a ``pip install`` user (or a
notebook copied elsewhere) has the baseline without a checkout: ``cssim run baseline``
and ``cssim.load_scenario("baseline")`` read ``scenario_path("baseline")``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SHIPPED", "example_path", "notebook_data_path", "scenario_names", "scenario_path", "resolve_scenario"]

SHIPPED = Path(__file__).resolve().parent


def scenario_names() -> list[str]:
    """Names of the shipped scenarios (``baseline``, ``high_touch``, ...)."""
    return sorted(p.stem for p in (SHIPPED / "scenarios").glob("*.yaml"))


def scenario_path(name: str) -> Path:
    """Path of a shipped scenario by name (``"baseline"`` or ``"baseline.yaml"``)."""
    stem = name[:-5] if name.endswith(".yaml") else name
    path = SHIPPED / "scenarios" / f"{stem}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no shipped scenario {name!r}; shipped: {', '.join(scenario_names())}")
    return path


def example_path(name: str) -> Path:
    """Path of a shipped example data file (``"history.csv"``, ``"contractual_cohort_regular.csv"``)."""
    path = SHIPPED / "examples" / name
    if not path.is_file():
        shipped = sorted(p.name for p in (SHIPPED / "examples").iterdir() if p.suffix == ".csv")
        raise FileNotFoundError(f"no shipped example {name!r}; shipped: {', '.join(shipped)}")
    return path


def notebook_data_path(name: str) -> Path:
    """Path of a scenario the notebooks use (``"churn_curve.yaml"``, ...)."""
    path = SHIPPED / "notebook_data" / name
    if not path.is_file():
        raise FileNotFoundError(f"no notebook data file {name!r}")
    return path


def resolve_scenario(path: str | Path) -> Path:
    """``path`` itself if it exists or names a file; a shipped scenario if it is a bare name like ``baseline``."""
    path = Path(path)
    if path.exists() or path.is_symlink() or len(path.parts) != 1 or path.suffix not in ("", ".yaml"):
        return path
    candidate = SHIPPED / "scenarios" / (path.name if path.suffix else f"{path.name}.yaml")
    return candidate if candidate.is_file() else path
