"""The variants a scenario declares — its sweep points and sensitivity end points — checked against it on load.

Dotted field paths (``team.pods.smb.headcount``) address a dumped scenario;
:func:`point_data` sets them. :class:`~cssim.model.scenario.Scenario` calls
:func:`check_sweep` and :func:`check_sensitivity` when it validates, so a bad
path or a point that would not validate is reported with the scenario file;
running the variants is :mod:`cssim.analysis.sweep` and
:mod:`cssim.analysis.sensitivity`.
"""

from __future__ import annotations

import copy
import difflib
import itertools
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError
from scipy import stats

from ..core.errors import ScenarioError
from .metrics import KPI_NAMES, KPIS

if TYPE_CHECKING:
    from .scenario import Scenario

#: Dump context keeping the content of files a scenario names (:data:`cssim.model.scenario.RESOLVED`).
RESOLVED = {"resolved": True}

__all__ = ["assignments", "check_sensitivity", "check_sweep", "parse_output", "point_data", "resolve_path", "set_path"]

# Stream key of the sample generator (apart from every replication's streams).
_SAMPLE_KEY = 0x5EE9
# Fields a sweep may not vary: the seed and replications are what common random numbers share.
_FIXED = {"seed": "every point shares the seed (common random numbers)",
          "replications": "every point runs the same replications",
          "sweep": "a sweep cannot sweep itself",
          "sensitivity": "not a scenario assumption"}

def set_path(data: dict, path: str, value: Any) -> dict:
    """Return a copy of ``data`` with the dotted ``path`` (e.g. ``team.pods.smb.headcount``) set."""
    parts = path.split(".")
    out = copy.deepcopy(data)
    node = out

    def item(lst: list, i: int) -> int:
        part = parts[i]
        where = ".".join(parts[:i]) or "(top level)"
        if not part.lstrip("-").isdigit() or not -len(lst) <= int(part) < len(lst):
            raise ScenarioError(f"{path}: {where} is a list of {len(lst)} items; {part!r} is not an index of it")
        return int(part)

    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = node[item(node, i)]
            continue
        if part not in node or not isinstance(node[part], (dict, list)):
            node[part] = {}
        node = node[part]
    if isinstance(node, list):
        node[item(node, len(parts) - 1)] = value
    else:
        node[parts[-1]] = value
    return out


def resolve_path(data: dict, path: str) -> Any:
    """The value at dotted ``path`` in a dumped scenario, or ValueError naming the first unknown part."""
    node: Any = data
    done: list[str] = []
    for part in path.split("."):
        where = ".".join(done) or "the scenario"
        if isinstance(node, dict):
            if part not in node:
                keys = [str(k) for k in node]
                hint = difflib.get_close_matches(part, keys, n=1)
                tip = f"; did you mean {hint[0]!r}?" if hint else f"; {where} has: {', '.join(keys)}"
                raise ValueError(f"{where} has no field {part!r}{tip}")
            node = node[part]
        elif isinstance(node, list):
            if not node:
                raise ValueError(f"{where} is an empty list; it has no item {part!r}")
            if not part.isdigit() or int(part) >= len(node):
                raise ValueError(f"{where} is a list of {len(node)}; {part!r} is not an index in 0..{len(node) - 1}")
            node = node[int(part)]
        else:
            raise ValueError(f"{where} is a value ({node!r}), it has no field {part!r}")
        done.append(part)
    return node


def _check_path(base: dict, path: str, where: str) -> None:
    top = path.split(".", 1)[0]
    if top in _FIXED:
        raise ValueError(f"{where}: cannot vary {top!r}: {_FIXED[top]}")
    try:
        resolve_path(base, path)
    except ValueError as exc:
        raise ValueError(f"{where}: unknown field path ({exc})") from None


def _draw_sample(sample, seed: int) -> list[dict[str, Any]]:
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(_SAMPLE_KEY,))))
    columns = {}
    for path, (low, high) in sample.ranges.items():
        if isinstance(low, int) and isinstance(high, int):
            columns[path] = [int(v) for v in rng.integers(low, high + 1, size=sample.n)]
        else:
            columns[path] = [float(v) for v in rng.uniform(low, high, size=sample.n)]
    return [{path: values[i] for path, values in columns.items()} for i in range(sample.n)]


def assignments(scenario: Scenario) -> list[dict[str, Any]]:
    spec = scenario.sweep
    grid = [dict(zip(spec.grid, combo, strict=True)) for combo in itertools.product(*spec.grid.values())]
    if spec.sample is None:
        return grid
    seed = spec.sample.seed if spec.sample.seed is not None else scenario.seed
    return [{**g, **s} for g in grid for s in _draw_sample(spec.sample, seed)]


def point_data(base: dict, values: dict[str, Any]) -> dict:
    """``base`` (a dumped scenario) with dotted fields set and the sweep and sensitivity blocks dropped."""
    data = base
    for path, value in values.items():
        data = set_path(data, path, value)
    data.pop("sweep", None)
    data.pop("sensitivity", None)
    return data


def _describe_values(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in values.items())


def check_sweep(scenario: Scenario) -> list[dict[str, Any]]:
    """Validate a scenario's sweep block against the scenario; returns the point assignments.

    Raises ValueError (one line) for an unknown or fixed field path, a path in
    both grid and sample, or a point that does not validate.
    """
    spec = scenario.sweep
    base = scenario.model_dump(mode="json", exclude={"sweep", "sensitivity"}, context=RESOLVED)
    for path in spec.grid:
        _check_path(base, path, f"sweep.grid.{path}")
    if spec.sample is not None:
        for path in spec.sample.ranges:
            _check_path(base, path, f"sweep.sample.ranges.{path}")
            if path in spec.grid:
                raise ValueError(f"sweep.sample.ranges.{path}: already varied by sweep.grid; vary it in one place")
    points = assignments(scenario)
    for i, values in enumerate(points):
        try:
            type(scenario).model_validate(point_data(base, values))
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
            msg = err.get("msg", "invalid").removeprefix("Value error, ").splitlines()[0]
            raise ValueError(f"sweep.grid: point {i} ({_describe_values(values)}) is not a valid scenario: {loc}: {msg}") from None
    return points


_FIXED_SENSITIVITY = {"seed": "every point shares the seed (common random numbers)",
          "replications": "every point runs the same replications",
          "sweep": "not a scenario assumption", "sensitivity": "not a scenario assumption"}


def parse_output(text: str, scenario: Scenario) -> tuple[str, str]:
    """``"grr"`` → (grr, all); ``"touch_miss_rate[smb]"`` → (touch_miss_rate, smb); ValueError naming it."""
    text = str(text).strip()
    kpi, _, rest = text.partition("[")
    kpi, scope = kpi.strip(), rest.rstrip("]").strip() or "all"
    if kpi not in KPI_NAMES:
        hint = difflib.get_close_matches(kpi, KPI_NAMES, n=1)
        raise ValueError(f"sensitivity.outputs: unknown KPI {kpi!r}" + (f"; did you mean {hint[0]!r}?" if hint else
                                                                       f"; known: {', '.join(KPI_NAMES)}"))
    by = next(k.by for k in KPIS if k.name == kpi)
    scopes = ["all", *(scenario.team.pods if by == "pod" else scenario.segments if by == "segment" else [])]
    if scope not in scopes:
        raise ValueError(f"sensitivity.outputs: {text!r}: unknown scope {scope!r}; known: {', '.join(scopes)}")
    return kpi, scope


def _is_int_range(spec, current) -> bool:
    return bool(spec.integer) and isinstance(current, int) and not isinstance(current, bool)


def _dist(f):
    """The field's distribution as a frozen scipy distribution."""
    if f.dist == "uniform":
        return stats.uniform(loc=f.low, scale=f.high - f.low)
    if f.dist == "triangular":
        return stats.triang((f.mode - f.low) / (f.high - f.low), loc=f.low, scale=f.high - f.low)
    if f.dist == "normal" and f.low is not None:
        return stats.truncnorm((f.low - f.mean) / f.sd, (f.high - f.mean) / f.sd, loc=f.mean, scale=f.sd)
    if f.dist == "normal":
        return stats.norm(f.mean, f.sd)
    return stats.lognorm(f.sigma, scale=f.median)


def _bounded(f) -> bool:
    return f.dist in ("uniform", "triangular") or (f.dist == "normal" and f.low is not None)


def _low_high(f) -> tuple[float, float]:
    """The one-at-a-time values: a range's bounds, a distribution's 5th and 95th percentiles."""
    if f.dist == "uniform":
        return f.low, f.high
    d = _dist(f)
    return float(d.ppf(0.05)), float(d.ppf(0.95))


def check_sensitivity(scenario: Scenario) -> None:
    """Validate a scenario's sensitivity block against the scenario (paths, outputs, end points).

    Raises ValueError (one line) naming the field.
    """
    spec = scenario.sensitivity
    base = scenario.model_dump(mode="json", exclude={"sweep", "sensitivity"}, context=RESOLVED)
    for path, f in spec.fields.items():
        where = f"sensitivity.fields.{path}"
        top = path.split(".", 1)[0]
        if top in _FIXED_SENSITIVITY:
            raise ValueError(f"{where}: cannot vary {top!r}: {_FIXED_SENSITIVITY[top]}")
        try:
            current = resolve_path(base, path)
        except ValueError as exc:
            raise ValueError(f"{where}: unknown field path ({exc})") from None
        if isinstance(current, bool) or not isinstance(current, (int, float)):
            raise ValueError(f"{where}: expected a numeric field, its value is {current!r}")
        for value in _low_high(f):
            value = int(round(value)) if _is_int_range(f, current) else float(value)
            try:
                type(scenario).model_validate(point_data(base, {path: value}))
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
                msg = err.get("msg", "invalid").removeprefix("Value error, ")
                raise ValueError(f"{where}: the value {value:g} does not give a valid scenario: {loc}: {msg}") from None
    for out in spec.outputs:
        parse_output(out, scenario)


