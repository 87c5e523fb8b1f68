"""environment.yml (conda) and pyproject.toml (pip) declare the same packages with the same bounds."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

# pyproject requirement (name with extras) -> the conda packages that provide it. Anything not listed
# has the same name on conda-forge.
CONDA_NAMES: dict[str, tuple[str, ...]] = {
    "dask[distributed]": ("dask", "distributed"),
}
# Conda-only entries that are tooling, not dependencies of cssim.
CONDA_ONLY = {"pip"}

_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*(;.*)?$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _bounds(spec: str) -> frozenset[str]:
    """``">=2.1, <3"`` -> {">=2.1", "<3"} (order and spaces do not matter)."""
    return frozenset(part.replace(" ", "") for part in spec.split(",") if part.strip())


def parse(requirement: str) -> tuple[str, str, frozenset[str]]:
    m = _REQ.match(requirement)
    assert m, f"cannot parse requirement {requirement!r}"
    name, extras, spec, marker = m.groups()
    assert marker is None, f"environment markers are not mirrored in environment.yml: {requirement!r}"
    return _norm(name), (extras or "").replace(" ", "").lower(), _bounds(spec)


def pip_requirements() -> dict[str, frozenset[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for group in project.get("optional-dependencies", {}).values():
        reqs.extend(group)
    out: dict[str, frozenset[str]] = {}
    for req in reqs:
        name, extras, bounds = parse(req)
        for conda_name in CONDA_NAMES.get(f"{name}{extras}", (name,)):
            assert conda_name not in out or out[conda_name] == bounds, f"{conda_name} declared twice"
            out[_norm(conda_name)] = bounds
    out["python"] = _bounds(project["requires-python"])
    return out


def conda_requirements() -> dict[str, frozenset[str]]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    out: dict[str, frozenset[str]] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):  # a nested "pip:" list installs from PyPI
            for req in dep.get("pip", []):
                name, _, bounds = parse(req)
                out[name] = bounds
            continue
        name, extras, bounds = parse(str(dep))
        assert not extras, f"conda packages have no extras: {dep!r}"
        assert name not in out, f"{name} listed twice in environment.yml"
        if name not in CONDA_ONLY:
            out[name] = bounds
    return out


def test_same_packages():
    pip, conda = pip_requirements(), conda_requirements()
    assert set(pip) - set(conda) == set(), "in pyproject.toml but not environment.yml"
    assert set(conda) - set(pip) == set(), "in environment.yml but not pyproject.toml"


def test_same_version_bounds():
    pip, conda = pip_requirements(), conda_requirements()
    differ = {name: (sorted(pip[name]), sorted(conda[name])) for name in pip if conda.get(name) != pip[name]}
    assert differ == {}, f"version bounds differ (pyproject, environment.yml): {differ}"


def test_every_dependency_has_a_lower_bound():
    for name, bounds in pip_requirements().items():
        assert any(b.startswith(">=") for b in bounds), f"{name} has no lower bound"


def test_pandas_kept_below_3_for_lifelines():
    assert "<3" in pip_requirements()["pandas"]


def test_parser():
    assert parse("dask[distributed]>=2024.1") == ("dask", "[distributed]", frozenset({">=2024.1"}))
    assert parse("pandas >=2.1, <3") == ("pandas", "", frozenset({">=2.1", "<3"}))
    assert parse("Jupyter_Lab>=4")[0] == "jupyter-lab"
