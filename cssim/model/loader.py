"""Read scenario files: YAML, ``extends`` chains, overrides, one-line errors.

Validation happens once, here, at the boundary; everything downstream can
trust a :class:`~cssim.scenario.Scenario`.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import typing
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ValidationError

from ..core.errors import DataError, ModelWarning, ScenarioError
from ..core.files import regular_file
from ..shipped import resolve_scenario, scenario_names
from .book import read_book
from .checks import model_checks
from .curvefile import load_curves, read_curve
from .edge import warn_beyond_edge
from .forecast import read_forecast
from .scenario import RESOLVED, CurveSpec, FittedRenewal, RenewalSpec, Scenario, with_tail
from .uncertainty import MAX_SE, attach_fitted, averaged_spec
from .variants import set_path

__all__ = [
    "load_scenario",
    "read_scenario_dict",
    "scenario_from_dict",
    "deep_merge",
    "set_path",
    "scenario_hash",
]


#: The renewal fields a ``fitted`` renewal model supplies (:func:`cssim.uncertainty.fitted_renewal`).
FITTED_RENEWAL_FIELDS = ("fitted", "healthy", "at_risk", "not_activated_odds_ratio", "uncertainty")


def deep_merge(base: dict, override: dict) -> dict:
    """Return ``base`` updated by ``override``: mappings merge recursively, the rest replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and value.get("fitted") is not None:
            # A renewal model switching to a fitted one: the fit supplies its values, the base's do not apply.
            out[key] = {k: v for k, v in out[key].items() if k not in FITTED_RENEWAL_FIELDS}
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not _other_family(out[key], value):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _other_family(base: dict, override: dict) -> bool:
    """A curve whose ``family`` changes is replaced whole (the old family's parameters do not apply)."""
    return "family" in override and "family" in base and override["family"] != base["family"]


#: Largest scenario file read (bytes); a scenario is a few kilobytes.
MAX_SCENARIO_BYTES = 2_000_000
#: Deepest nesting of mappings and lists in a scenario (the schema itself is about 8 deep).
MAX_NESTING = 40

# YAML 1.2 core schema scalars: ``1:30`` stays a string (not 90), ``yes``/``on`` stay strings (not true),
# ``0o17`` is octal and ``017`` is 17, ``1_000`` is 1000; ``.inf``/``.nan`` are read as floats and refused by
# the schema.
_CORE_RESOLVERS = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9][0-9_]*|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+.0123456789"),
    ),
]


class _ScenarioLoader(yaml.SafeLoader):
    """Safe YAML loader for scenarios.

    - a key given twice in one mapping is an error (a merge key ``<<:`` may be overridden);
    - scalars follow the YAML 1.2 core schema, so ``1:30`` is the string "1:30" (not 90) and
      ``yes``/``on`` are strings (not booleans); the schema then names the field;
    - dates stay strings so that the schema (not the YAML parser) checks them.
    """

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (given twice in one mapping)", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        text = self.construct_scalar(node).replace("_", "")
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text)


_ScenarioLoader.add_constructor("tag:yaml.org,2002:int", _ScenarioLoader.construct_yaml_int)
_ScenarioLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (
        "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
    )]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _rx, _first in _CORE_RESOLVERS:
    _ScenarioLoader.add_implicit_resolver(_tag, __import__("re").compile(_rx), _first)


def _depth(node: yaml.Node) -> int:
    """Nesting depth of a composed YAML node (iterative: a deep file cannot exhaust the stack here)."""
    deepest, stack, seen = 0, [(node, 1)], set()
    while stack:
        current, depth = stack.pop()
        if id(current) in seen:  # an alias shares its anchor's node
            continue
        seen.add(id(current))
        deepest = max(deepest, depth)
        if depth > MAX_NESTING:
            break
        if isinstance(current, yaml.MappingNode):
            stack.extend((child, depth + 1) for pair in current.value for child in pair)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in current.value)
    return deepest


def _read_yaml(path: Path, label: str) -> dict:
    regular_file(path, label, "a YAML scenario file", error=ScenarioError, max_bytes=MAX_SCENARIO_BYTES)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{label}: cannot read file ({exc})") from None
    try:
        loader = _ScenarioLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None and _depth(node) > MAX_NESTING:
                raise ScenarioError(
                    f"{label}: nested more than {MAX_NESTING} levels deep; a scenario is a few levels of mappings"
                )
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(f"{label}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise ScenarioError(
            f"{label}: nested too deeply to read; a scenario is a few levels of mappings"
        ) from None
    except ValueError as exc:  # a scalar the YAML resolver accepted but could not construct
        raise ScenarioError(f"{label}: not valid YAML: {exc}") from None
    if data is None:
        raise ScenarioError(f"{label}: file is empty; a scenario needs at least segments and touch_models")
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{label}: expected a mapping of scenario fields at the top level, got {type(data).__name__}"
        )
    return data


def _absolute(path: Path) -> str:
    """``path`` resolved (symlinks followed), or made absolute if it cannot be (a symlink loop: reported on read)."""
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):
        return str(path.absolute())


def _anchor_files(data: dict, base: Path) -> None:
    """Make every ``file`` a scenario names (acquisition, book, fitted curves and renewal models) relative to it."""
    segments = data.get("segments")
    if not isinstance(segments, dict):
        return
    for seg in segments.values():
        if not isinstance(seg, dict):
            continue
        renewal = seg.get("renewal")
        refs = [seg.get("acquisition"), seg.get("book"), renewal.get("fitted") if isinstance(renewal, dict) else None]
        life = seg.get("lifecycle")
        if isinstance(life, dict):
            refs += [v for v in life.values() if isinstance(v, dict) and v.get("family") == "fitted"]
        delay = (seg.get("winback") or {}).get("delay") if isinstance(seg.get("winback"), dict) else None
        if isinstance(delay, dict) and delay.get("family") == "fitted":
            refs.append(delay)
        for ref in refs:
            if isinstance(ref, dict) and isinstance(ref.get("file"), str) and not Path(ref["file"]).is_absolute():
                ref["file"] = _absolute(base / ref["file"])


# --------------------------------------------------------------------------- files a scenario names


def _changed(file, digest: str, expected: str | None, what: str) -> None:
    if expected is not None and expected != digest:
        raise ValueError(
            f"{file}: file changed since this scenario was resolved (sha256 {digest[:12]}..., "
            f"expected {expected[:12]}...); drop sha256 to accept the new {what}"
        )


def _fitted_curve(ref: dict) -> dict:
    """A ``{family: fitted, file, key}`` reference with the curve it names (and its uncertainty) filled in."""
    try:
        spec, digest = read_curve(ref["file"], ref["key"])
    except DataError as exc:
        raise ValueError(str(exc)) from None
    _changed(ref["file"], digest, ref.get("sha256"), "curves")
    entry = load_curves(ref["file"])["curves"][ref["key"]]
    resolved, block = dict(spec), None
    averaged = None if ref.get("model_uncertainty") == "best" else averaged_spec(entry, ref["key"])
    if averaged is not None:
        resolved = averaged
    elif "uncertainty" not in spec:
        block = attach_fitted(dict(spec), entry.get("parameters"), label=ref["key"]).get("uncertainty")
    resolved = with_tail(resolved, entry.get("edge"), ref.get("tail"))
    return {**ref, "sha256": digest, "resolved": resolved, "uncertainty": block}


#: A fitted renewal Logit's coefficient names (``cssim fit``) → the scenario's renewal coefficients.
_RENEWAL_NAMES = {"const": "logit_healthy", "at_risk": "log_or_at_risk", "onboarding": "log_or_not_activated",
                  "not_activated": "log_or_not_activated"}


def fitted_renewal(data: dict) -> dict:
    """A ``renewal`` block with ``fitted: {file, key}`` resolved from a curves file's renewal model.

    Fills ``healthy``, ``at_risk``, ``not_activated_odds_ratio`` (a state the fit
    could not separate gets no effect: at_risk = healthy, odds ratio 1) and the
    ``uncertainty`` of their coefficients (touch-model terms are left out: the
    touch models' own ``renewal_odds`` carry them). Raises ``ValueError`` (one
    line) for a missing file or key, a changed file, a model the data do not
    identify, or a field given both explicitly and by the fit.
    """
    ref = data["fitted"]
    if not isinstance(ref, FittedRenewal):
        try:
            ref = FittedRenewal.model_validate(ref)
        except ValidationError:
            return data  # the field's own validation reports it, under its path
    try:
        stored = load_curves(ref.file)
    except DataError as exc:
        raise ValueError(str(exc)) from None
    if ref.sha256 is not None and ref.sha256 != stored["sha256"]:
        raise ValueError(
            f"{ref.file}: file changed since this scenario was resolved (sha256 {stored['sha256'][:12]}..., "
            f"expected {ref.sha256[:12]}...); drop sha256 to accept the new fit"
        )
    models = stored.get("renewal") or {}
    if ref.key not in models:
        have = ", ".join(sorted(models)) or "none"
        raise ValueError(f"{ref.file}: no renewal model {ref.key!r}; the file has: {have}")
    params = models[ref.key].get("parameters")
    if not isinstance(params, dict):
        raise ValueError(f"{ref.file}: renewal model {ref.key!r} has no coefficients; refit with this cssim version")
    names = list(params["names"])
    keep = [i for i, n in enumerate(names) if n in _RENEWAL_NAMES]
    est = np.asarray(params["estimates"], dtype=float)[keep]
    cov = np.asarray(params["covariance"], dtype=float)[np.ix_(keep, keep)]
    for i, k in enumerate(keep):
        se = math.sqrt(cov[i, i]) if cov[i, i] >= 0 else math.nan
        if not (math.isfinite(se) and se <= MAX_SE):
            raise ValueError(
                f"{ref.file}: renewal model {ref.key!r} is not identified by the data (coefficient {names[k]} has "
                f"standard error {se:.3g} on the logit scale; e.g. nearly every renewal shares one state or touch); "
                "set healthy / at_risk / not_activated_odds_ratio by hand"
            )
    coef = {_RENEWAL_NAMES[names[k]]: float(est[i]) for i, k in enumerate(keep)}
    model = RenewalSpec().with_coefficients({"log_or_at_risk": 0.0, "log_or_not_activated": 0.0, **coef})
    fields = {k: getattr(model, k) for k in ("healthy", "at_risk", "not_activated_odds_ratio")}
    for name, value in fields.items():
        if name in data and abs(float(data[name]) - value) > 1e-9 * max(1.0, abs(value)):
            raise ValueError(
                f"{name}: given as {data[name]} but the fitted model ({ref.file}, {ref.key!r}) says {value:.6g}; "
                "give one or the other"
            )
    block = {"names": [_RENEWAL_NAMES[names[k]] for k in keep], "estimates": est.tolist(), "covariance": cov.tolist()}
    if params.get("bootstrap"):
        block["bootstrap"] = np.asarray(params["bootstrap"], dtype=float)[:, keep].tolist()
    resolved = {**ref.model_dump(), "sha256": stored["sha256"]}
    return {**data, **fields, "uncertainty": block, "fitted": resolved}


def _acquisition(ref: dict) -> dict:
    found = read_forecast(ref["file"], ref["key"])
    _changed(ref["file"], found["sha256"], ref.get("sha256"), "forecast")
    return {**ref, "paths": found["paths"], "start": found["start"], "sha256": found["sha256"]}


def _book(ref: dict) -> dict:
    try:
        rows, digest = read_book(ref["file"])
    except DataError as exc:
        raise ValueError(str(exc)) from None
    _changed(ref["file"], digest, ref.get("sha256"), "book")
    return {**ref, "rows": rows, "sha256": digest}


def _unread(ref, *fields: str) -> bool:
    """A well-formed file reference whose content is not filled in yet (malformed ones the schema reports)."""
    return (isinstance(ref, dict) and isinstance(ref.get("file"), str) and isinstance(ref.get("key", ""), str)
            and any(ref.get(f) is None for f in fields))


def resolve_files(data: dict) -> list[str]:
    """Read every file ``data`` names (fitted curves and renewal models, acquisition forecasts, books) once, in place.

    The schema reads nothing: this fills each reference's content (``resolved``,
    ``paths``, ``rows``, a renewal model's fields and ``sha256``) before
    validation. Returns one problem per reference that cannot be read
    (``segments.smb.lifecycle.churn: ...``); those references are left as they were.
    """
    problems: list[str] = []
    segments = data.get("segments") if isinstance(data, dict) else None
    if not isinstance(segments, dict):
        return problems

    def fill(holder: dict, key, where: str, read, *fields: str) -> None:
        if _unread(holder.get(key), *fields):
            try:
                holder[key] = read(holder[key])
            except ValueError as exc:
                problems.append(f"{where}: {str(exc).splitlines()[0]}")

    for name, seg in segments.items():
        if not isinstance(seg, dict):
            continue
        fill(seg, "acquisition", f"segments.{name}.acquisition", _acquisition, "paths")
        fill(seg, "book", f"segments.{name}.book", _book, "rows")
        life = seg.get("lifecycle")
        for stage, curve in (life.items() if isinstance(life, dict) else ()):
            if isinstance(curve, dict) and curve.get("family") == "fitted":
                fill(life, stage, f"segments.{name}.lifecycle.{stage}", _fitted_curve, "resolved")
        winback = seg.get("winback")
        if isinstance(winback, dict) and isinstance(winback.get("delay"), dict) and winback["delay"].get("family") == "fitted":
            fill(winback, "delay", f"segments.{name}.winback.delay", _fitted_curve, "resolved")
        renewal = seg.get("renewal")
        if isinstance(renewal, dict) and isinstance(renewal.get("fitted"), dict) and renewal.get("uncertainty") is None:
            try:
                seg["renewal"] = fitted_renewal(renewal)
            except ValueError as exc:
                problems.append(f"segments.{name}.renewal: {str(exc).splitlines()[0]}")
    return problems


def read_scenario_dict(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict:
    """Read ``path`` and resolve its ``extends`` chain into one plain dict (not yet validated).

    A bare name that is not a file here (``baseline``) is the shipped scenario of that name.
    """
    path = Path(path) if _chain else resolve_scenario(path)
    if not _chain and not path.exists() and len(path.parts) == 1 and not path.suffix:
        shipped = ", ".join(scenario_names())
        raise ScenarioError(f"{path}: file not found, and no shipped scenario of that name (shipped: {shipped})")
    label = str(path)
    regular_file(path, label, "a YAML scenario file", error=ScenarioError, max_bytes=MAX_SCENARIO_BYTES)
    resolved = path.resolve()
    if resolved in _chain:
        cycle = " -> ".join(p.name for p in (*_chain, resolved))
        raise ScenarioError(f"{label}: extends: circular chain {cycle}")
    data = _read_yaml(path, label)
    _anchor_files(data, path.parent)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent.strip():
        raise ScenarioError(f"{label}: extends: expected a file name (string), got {parent!r}")
    parent_path = path.parent / parent
    if Path(parent).suffix.lower() not in (".yaml", ".yml"):
        # Never read (and so never quote) a file that is not a scenario.
        raise ScenarioError(f"{label}: extends: {parent!r} is not a scenario file; give a .yaml or .yml file")
    if not parent_path.exists() and not parent_path.is_symlink():
        raise ScenarioError(f"{label}: extends: file {parent!r} not found (looked for {parent_path})")
    base = read_scenario_dict(parent_path, (*_chain, resolved))
    return deep_merge(base, data)


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Names of the fields allowed at ``loc`` (the parent of an unknown key), best effort."""
    node: Any = model
    for part in loc:
        node = _step(node, part)
        if node is None:
            return []
    if isinstance(node, type) and issubclass(node, BaseModel):
        return list(node.model_fields)
    return []


def _unwrap(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    return tp


def _step(node: Any, part: Any) -> Any:
    node = _unwrap(node)
    origin = typing.get_origin(node)
    args = typing.get_args(node)
    if isinstance(node, type) and issubclass(node, BaseModel):
        field = node.model_fields.get(part)
        return field.annotation if field is not None else None
    if origin is dict:
        return args[1]
    if origin is list:
        return args[0]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for arg in args:
            arg = _unwrap(arg)
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                fam = arg.model_fields.get("family")
                if fam is not None and part in typing.get_args(fam.annotation):
                    return arg
        for arg in args:
            arg = _unwrap(arg)
            if arg is not type(None):
                found = _step(arg, part)
                if found is not None:
                    return found
    return None


def _display_loc(loc: tuple) -> str:
    """Dotted field path of ``loc`` without pydantic's union tags (``...at_risk.weibull.scale`` → ``...at_risk.scale``)."""
    node: Any = Scenario
    parts = []
    for part in loc:
        inner = _unwrap(node)
        if typing.get_origin(inner) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            tagged = _step(inner, part)
            if tagged is not None and isinstance(part, str) and "family" in getattr(tagged, "model_fields", {}):
                node = tagged  # a discriminator tag, not a field the user wrote
                continue
        parts.append(str(part))
        node = _step(node, part) if node is not None else None
    return ".".join(parts) or "(top level)"


def _describe(err: dict) -> str:
    loc = tuple(err.get("loc", ()))
    where = _display_loc(loc)
    kind = err.get("type", "")
    msg = err.get("msg", "invalid")
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "extra_forbidden":
        allowed = _fields_at(Scenario, loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        tip = f"; did you mean {hint[0]!r}?" if hint else ""
        listing = f" (allowed: {', '.join(allowed)})" if allowed and not hint else ""
        return f"{where}: unknown field{tip}{listing}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        key = str(ctx.get("discriminator", "family")).strip("'\"")
        allowed = ", ".join(t.strip("' ") for t in str(ctx.get("expected_tags", "")).split(",")) or _families()
        if kind == "union_tag_invalid":
            return f"{where}.{key}: unknown {key} {ctx.get('tag')!r}; allowed: {allowed}"
        return f"{where}.{key}: missing; a curve needs {key}, one of: {allowed}"
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
        head = msg.split(": ", 1)[0] if ": " in msg else ""
        if not loc and (head.count(".") >= 1 or head in Scenario.model_fields):  # the message names its field
            return msg
    if kind == "missing":
        msg = "required field is missing"
    shown = ""
    if kind != "missing" and value is not None:
        if not isinstance(value, (dict, list)):
            shown = f" (got {value!r})"
        elif kind.endswith("_type"):
            shown = f" (got a {'mapping' if isinstance(value, dict) else 'list'})"
    return f"{where}: {msg}{shown}"


def _families() -> str:
    union = typing.get_args(CurveSpec)[0]
    return ", ".join(typing.get_args(m.model_fields["family"].annotation)[0] for m in typing.get_args(union))


def scenario_from_dict(data: dict, source: str = "<scenario>") -> Scenario:
    """Validate a plain dict into a :class:`Scenario`.

    Raises :class:`ScenarioError` listing every problem pydantic finds, one line each
    (``ScenarioError.problems``), each naming ``source`` and the field.
    """
    data = copy.deepcopy(data)
    problems = resolve_files(data)
    if problems:
        raise ScenarioError.many([f"{source}: {line}" for line in problems])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        # An unknown key first: a misspelt field also shows up as a missing one, and the typo is the cause.
        errors = sorted(exc.errors(include_url=False), key=lambda e: e.get("type") != "extra_forbidden")
        # A misspelt field is also reported missing under its right name: the typo says it all.
        meant = set()
        for err in errors:
            loc = tuple(err.get("loc", ()))
            if err.get("type") == "extra_forbidden" and loc:
                hint = difflib.get_close_matches(str(loc[-1]), _fields_at(Scenario, loc[:-1]), n=1)
                meant.update((*loc[:-1], h) for h in hint)
        errors = [e for e in errors if not (e.get("type") == "missing" and tuple(e.get("loc", ())) in meant)]
        lines = []
        for err in errors:
            for part in _describe(err).splitlines():  # a validator may report several problems, one per line
                line = f"{source}: {part}"
                if line not in lines:
                    lines.append(line)
        raise ScenarioError.many(lines) from None
    except RecursionError:
        raise ScenarioError(f"{source}: nested too deeply to validate") from None
    warn_beyond_edge(scenario, source)  # fitted curves: how much of the forecast is extrapolation
    return scenario


def parse_assignment(text: str) -> tuple[str, Any]:
    """``FIELD=VALUE`` (``--set``) as (dotted path, value); the value is read as YAML: ``4`` a number, ``[1, 2]`` a
    list, ``smb`` text. Raises :class:`ScenarioError` (one line) for anything else."""
    path, sep, raw = str(text).partition("=")
    path = path.strip()
    if not sep or not path or any(not part.strip() for part in path.split(".")):
        raise ScenarioError(f"--set {text!r}: expected FIELD=VALUE with a dotted field path, e.g. "
                            "team.pods.smb.headcount=4")
    try:
        value = yaml.load(raw, Loader=_ScenarioLoader) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ScenarioError(f"--set {text!r}: the value is not YAML ({str(exc).splitlines()[0]})") from None
    return path, value


def _apply(data: dict, overrides: Mapping[str, Any] | None, source: str) -> dict:
    for key, value in (overrides or {}).items():
        try:
            data = set_path(data, key, value)
        except ScenarioError as exc:
            raise ScenarioError(f"{source}: override {exc}") from None
    return data


#: Overrides that choose how a scenario is run, not what it is: applying them raises no model warning again.
RUN_SETTINGS = frozenset({"replications", "seed"})


def with_overrides(scenario: Scenario, overrides: Mapping[str, Any] | None, source: str | None = None) -> Scenario:
    """``scenario`` with dotted fields set (``{"team.pods.smb.headcount": 4}``), validated again.

    The one way a scenario is changed after loading (``simulate(replications=...)``, a sweep's run settings,
    ``synthesize_history``): the same paths and messages as ``load_scenario(overrides=...)`` and ``--set``; the
    files the scenario names are not read again.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if not overrides:
        return scenario
    source = source or f"scenario {scenario.name!r}"
    data = _apply(scenario.model_dump(mode="json", context=RESOLVED), overrides, source)
    with warnings.catch_warnings():
        if set(overrides) <= RUN_SETTINGS:
            warnings.simplefilter("ignore")  # the model did not change: its warnings were given when it loaded
        return scenario_from_dict(data, source=source)


def load_scenario(
    path: str | Path, overrides: Mapping[str, Any] | None = None, strict: bool = False, varied: tuple[str, ...] = ()
) -> Scenario:
    """Load, resolve ``extends``, validate and check a scenario file.

    ``overrides`` maps dotted field paths to values (e.g. ``{"seed": 3}``) and
    is applied after the file, before validation. The model checks
    (:func:`cssim.checks.model_checks`) are issued as
    :class:`~cssim.errors.ModelWarning` each; with ``strict`` they are errors
    (one :class:`ScenarioError` listing them all). ``varied`` names fields a
    search will change (``cssim plan --over``): findings on them are left out.
    """
    data = _apply(read_scenario_dict(path), overrides, str(path))
    scenario = scenario_from_dict(data, source=str(path))
    findings = model_checks(scenario, str(path))
    for field in varied:
        parent = field.rsplit(".", 1)[0]
        findings = [line for line in findings if not line.startswith(f"{path}: {parent}:")]
    if strict and findings:
        raise ScenarioError.many([f"{line} (--strict)" for line in findings])
    for line in findings:
        warnings.warn(line, ModelWarning, stacklevel=2)
    return scenario


def scenario_hash(scenario: Scenario) -> str:
    """Content hash of the resolved scenario (stable across key order and formatting)."""
    # The sweep and sensitivity blocks say which variants to run, not what this scenario is.
    content = scenario.model_dump(mode="json", exclude={"sweep", "sensitivity"})
    payload = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
