"""The ``cssim`` command line.

User errors (bad scenario, bad data, refused output folder) print one line
``cssim: error: …`` on stderr and exit with code 2; nothing is written.
Each subcommand is a ``cmd_*`` function registered in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._version import __version__
from .core.errors import CssimError
from .core.limits import MAX_HORIZON_MONTHS, MAX_REPLICATIONS, MAX_SEED
from .fitting.families import DEFAULT_WEIGHTING, FAMILY_ORDER, WEIGHTINGS, parse_families

EXIT_USAGE = 2

#: Upper limits of numeric flags (the scenario's own limits are in cssim.scenario).
MAX_JOBS = 1024
MAX_PATHS = 100_000
MAX_BOOTSTRAP = 10_000
MAX_PLAN_RANGE = 100_000


def _int_in(low: int, high: int):
    """An argparse type: a whole number in [low, high] (not 1.5, not 'true')."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give one in {low:,}..{high:,}") from None
        if not low <= value <= high:
            allowed = f"at least {low:,}" if high >= MAX_SEED else f"{low:,}..{high:,}"
            raise argparse.ArgumentTypeError(f"{value:,} is not allowed; give a whole number, {allowed}")
        return value

    return parse


def _real_in(low: float, high: float):
    """An argparse type: a finite number in [low, high]."""
    import math

    def parse(text: str) -> float:
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside {low:g}..{high:g}")
        return value

    return parse


def _jobs(text: str) -> int:
    value = _int_in(-1, MAX_JOBS)(text)
    if value == 0:
        raise argparse.ArgumentTypeError("0 workers; give -1 (all cores) or 1 or more")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with cssim's error format: one line ``cssim: error: …``, exit code 2."""

    def error(self, message: str):
        name = self.prog.removeprefix("cssim").strip()
        self.exit(EXIT_USAGE, f"cssim: error: {name + ': ' if name else ''}{message}\n")


def _add_date_format(p) -> None:
    p.add_argument(
        "--date-format", metavar="FORMAT", type=_date_format,
        help="strftime format of the file's dates, e.g. %%d/%%m/%%Y (default: ISO 8601, YYYY-MM-DD; never guessed)",
    )


def _date_format(text: str) -> str:
    import datetime as dt

    if "%" not in text or not any(code in text for code in ("%d", "%j")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a date format; give strftime codes, e.g. %d/%m/%Y")
    try:
        dt.date(2024, 2, 5).strftime(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    return text


def _add_strict(p) -> None:
    p.add_argument("--strict", action="store_true", help="treat model-check warnings as errors (exit 2)")


def _assignment(text: str) -> str:
    """An argparse type for ``--set``: FIELD=VALUE, checked for its shape here and read by the loader."""
    field, sep, _ = text.partition("=")
    if not sep or not field.strip() or any(not part.strip() for part in field.split(".")):
        raise argparse.ArgumentTypeError(f"{text!r}: expected FIELD=VALUE, e.g. team.pods.smb.headcount=4")
    return text


def _parent(*adders) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    for add in adders:
        add(p)
    return p


def _scenario_options(p) -> None:
    """Options of every command that loads a scenario: ``--set`` and ``--strict``."""
    p.add_argument("--set", dest="overrides", action="append", type=_assignment, default=[], metavar="FIELD=VALUE",
                   help="set a scenario field before validation (repeatable; the value is YAML), e.g. "
                   "--set team.pods.smb.headcount=4 --set segments.smb.renewal.healthy=0.9")
    _add_strict(p)


def _run_options(p) -> None:
    """Options of every command that simulates: replications, seed, where to run, progress."""
    p.add_argument("--replications", "-n", type=_int_in(1, MAX_REPLICATIONS),
                   help="override the scenario's replications (every scenario or point)")
    p.add_argument("--seed", type=_int_in(0, MAX_SEED), help="override the scenario's seed (shared by every point)")
    p.add_argument("--jobs", "-j", type=_jobs, default=-1, help="worker processes (-1: all cores)")
    _add_dask_option(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _add_format(p) -> None:
    p.add_argument("--format", choices=("csv", "parquet"), default="csv",
                   help="file format of the tables written (default csv)")


def _output_options(p) -> None:
    """Options of every command that writes a results folder."""
    p.add_argument("--out", "-o", help="results folder (default: results/<scenario name>[-command])")
    p.add_argument("--force", action="store_true", help="replace an existing results folder (only files cssim wrote)")
    _add_format(p)


def _cache_options(p) -> None:
    p.add_argument(
        "--cache", help="folder of finished batches, for resuming (default: .cssim-cache/ beside the results folder)"
    )
    p.add_argument("--no-cache", action="store_true", help="keep no batches (an interrupted run starts over)")
    p.add_argument("--batch-size", type=_int_in(1, MAX_REPLICATIONS), default=4,
                   help="replications per cached batch (default 4)")


def _overrides(args) -> dict:
    """The ``--set`` assignments as a mapping of dotted paths to values (later ones win)."""
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .model.loader import parse_assignment

    return dict(parse_assignment(text) for text in getattr(args, "overrides", None) or [])


def _load(path, args, extra: dict | None = None, **kwargs):
    """The scenario at ``path`` with the command's ``--set`` overrides and ``extra`` ones (a flag such as
    ``--months``; None values are left out), checked (``--strict``)."""
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .model.loader import load_scenario

    overrides = {**_overrides(args), **{k: v for k, v in (extra or {}).items() if v is not None}}
    return load_scenario(path, overrides, strict=getattr(args, "strict", False), **kwargs)


def _add_run(sub):
    p = sub.add_parser("run", help="simulate a scenario and write a results folder", parents=PARENTS["run"])
    p.add_argument("scenario", help="scenario YAML file, or the name of a shipped one (baseline)")
    p.add_argument(
        "--decompose",
        action="store_true",
        help="also run without parameter uncertainty on the same seeds; write uncertainty.csv (interval width "
        "with and without, share from estimation error)",
    )
    p.set_defaults(func=cmd_run)


def _add_dask_option(p) -> None:
    p.add_argument(
        "--dask",
        metavar="SCHEDULER",
        help="run on a Dask cluster: a scheduler address (tcp://host:8786), or 'local' for a LocalCluster of --jobs workers",
    )


def cmd_run(args) -> int:
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .analysis.simulate import simulate
    from .core.output import check_target

    scenario = _load(args.scenario, args, {"replications": args.replications, "seed": args.seed})
    out = Path(args.out) if args.out else Path("results") / scenario.name
    check_target(out, args.force)
    extra, decomposition = {}, None
    if getattr(args, "decompose", False):
        # lazy: imported when the command runs, so that `cssim --help` starts fast
        from .analysis.decompose import decompose

        decomposition = decompose(scenario, jobs=args.jobs, progress=not args.quiet, dask=args.dask)
        results = decomposition.with_uncertainty
        extra = {"uncertainty.csv": decomposition.table().to_csv(index=False),
                 "summary.txt": f"{results.summary()}\n\n{decomposition.summary()}\n"}
    else:
        results = simulate(scenario, jobs=args.jobs, progress=not args.quiet, dask=args.dask)
    try:
        results.to_folder(out, force=args.force, format=args.format, files=extra)
    except OSError as exc:  # disk full, no permission: nothing was written (the folder is atomic)
        raise CssimError(f"{out}: cannot write the results folder ({exc.strerror or exc}); nothing was written") from None
    print(results.summary())
    if decomposition is not None:
        print(f"\n{decomposition.summary()}")
    listed = ", ".join(f"{stem}.{args.format}" for stem in ("kpis", "monthly", "monthly_pods")) + ", manifest.json"
    listed += ", uncertainty.csv" if extra else ""
    print(f"\nwrote {out}/ ({listed})")
    return 0


def _add_validate(sub):
    p = sub.add_parser("validate", help="check a scenario file and report problems", parents=PARENTS["scenario"])
    p.add_argument("scenario")
    p.set_defaults(func=cmd_validate)


def cmd_validate(args) -> int:
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .model.checks import offered_load
    from .model.loader import scenario_hash

    scenario = _load(args.scenario, args)
    print(
        f"{args.scenario}: ok — scenario {scenario.name!r}, {len(scenario.segments)} segments, "
        f"{len(scenario.touch_models)} touch models, {len(scenario.team.pods)} pods, hash {scenario_hash(scenario)}"
    )
    for load in offered_load(scenario).values():
        print(f"  {load.describe()}")
    return 0


def _add_schema(sub):
    p = sub.add_parser("schema", help="print the JSON Schema of scenario files (partial files that extend another "
                       "validate too); shipped scenarios point editors at it on their first line")
    p.set_defaults(func=cmd_schema)


def cmd_schema(args) -> int:
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .model.schema import scenario_schema

    print(json.dumps(scenario_schema(), indent=2))
    return 0


def _add_compare(sub):
    p = sub.add_parser(
        "compare", help="compare scenarios on the same random customers (paired differences to the first)",
        parents=PARENTS["run"], epilog="--replications and --seed default to the first scenario's; --set applies "
        "to every scenario; with --out, comparison, differences and tradeoff tables are written there",
    )
    p.add_argument("scenarios", nargs="+", help="two or more scenario files; the first is the reference")
    p.add_argument("--by-segment", action="store_true", help="also compare every segment and pod")
    p.add_argument("--show-all", action="store_true",
                   help="also print KPI rows that are identical in every scenario (hidden by default)")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args) -> int:
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .analysis.compare import compare
    from .core.errors import PlanError
    from .core.output import check_target

    if len(args.scenarios) < 2:
        raise PlanError(f"compare needs at least two scenario files, got {len(args.scenarios)}")
    scenarios, problems = [], []
    for path in args.scenarios:  # every file's problems, not only the first file's
        try:
            scenarios.append(_load(path, args))
        except CssimError as exc:
            problems.extend(exc.problems)
    if problems:
        raise CssimError.many(problems)
    out = Path(args.out) if args.out else None
    if out is not None:
        check_target(out, args.force)
    result = compare(
        scenarios, replications=args.replications, seed=args.seed, jobs=args.jobs, dask=args.dask,
        progress=not args.quiet,
    )
    scope = None if args.by_segment else "all"
    summary = result.summary(scope, show_all=args.show_all)
    print(summary)
    if out is not None:
        result.to_folder(out, force=args.force, format=args.format, scope=scope, show_all=args.show_all)
        tables = ", ".join(f"{stem}.{args.format}" for stem in ("comparison", "differences", "tradeoff"))
        print(f"\nwrote {out}/ ({tables}, summary.txt, manifest.json)")
    return 0


def _add_sweep(sub):
    p = sub.add_parser("sweep", help="simulate every point of a scenario's sweep: block (resumable)",
                       parents=PARENTS["cached"])
    p.add_argument("scenario", help="scenario YAML file with a sweep: block")
    p.set_defaults(func=cmd_sweep)


def _cache_dir(args, out: Path) -> Path | None:
    """The batch cache of sweep and sensitivity (``--cache``, default beside ``out``), refused if unusable."""
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .analysis.cache import DEFAULT_CACHE_NAME
    from .core.output import check_dir_option

    if getattr(args, "no_cache", False):
        return None
    cache = Path(args.cache) if args.cache else out.parent / DEFAULT_CACHE_NAME
    check_dir_option(cache, "--cache")
    return cache


def _interrupted(cache: Path | None) -> int:
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .analysis.cache import BatchCache

    if cache is None:
        print("cssim: interrupted; nothing was written", file=sys.stderr)
    else:
        print(
            f"cssim: interrupted; nothing was written, {len(BatchCache(cache))} finished batches are kept in "
            f"{cache}/ — rerun the same command to resume",
            file=sys.stderr,
        )
    return 130


def cmd_sweep(args) -> int:
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .analysis.sweep import sweep
    from .core.errors import PlanError
    from .core.output import check_target

    scenario = _load(args.scenario, args)
    if scenario.sweep is None:
        raise PlanError(f"{args.scenario}: no sweep: block; add one, e.g. sweep: {{grid: {{team.pods.smb.headcount: [2, 3, 4]}}}}")
    out = Path(args.out) if args.out else Path("results") / f"{scenario.name}-sweep"
    check_target(out, args.force)
    cache = _cache_dir(args, out)
    try:
        result = sweep(
            scenario, replications=args.replications, seed=args.seed, jobs=args.jobs, dask=args.dask,
            progress=not args.quiet, cache=cache, batch_size=args.batch_size,
        )
    except KeyboardInterrupt:
        return _interrupted(cache)
    result.to_folder(out, force=args.force, format=args.format)
    print(result.summary())
    tables = ", ".join(f"{stem}.{args.format}" for stem in ("sweep", "points", "kpis_by_replication"))
    print(f"\nwrote {out}/ ({tables}, manifest.json)")
    return 0


def _add_plan(sub):
    p = sub.add_parser("plan", help="smallest value of a field (e.g. a headcount) that meets a KPI target",
                       parents=PARENTS["run"])
    p.add_argument("scenario", help="scenario YAML file")
    p.add_argument("--target", required=True, help='e.g. "grr >= 0.90" or "touch_miss_rate[smb] < 0.05"')
    p.add_argument("--over", required=True, help="integer field path, e.g. team.pods.smb.headcount")
    p.add_argument(
        "--confidence", type=_real_in(0.0, 1.0), default=0.8,
        help="share of replications that must meet the target (needs at least ceil(ln 0.1 / ln C) replications: "
        "11 at 0.8, 22 at 0.9; fewer are refused)",
    )
    p.add_argument(
        "--criterion", choices=("share", "mean"), default="share",
        help="share: share of replications meeting the target >= confidence (default); "
        "mean: one-sided confidence bound on the mean meets it",
    )
    p.add_argument("--min", type=_int_in(-MAX_PLAN_RANGE, MAX_PLAN_RANGE), default=0, dest="low",
        help="smallest value to consider (default 0)")
    p.add_argument("--max", type=_int_in(-MAX_PLAN_RANGE, MAX_PLAN_RANGE), default=30, dest="high",
        help="largest value to consider (default 30)")
    p.add_argument("--cache", help="folder of finished batches to reuse between runs")
    p.set_defaults(func=cmd_plan)


def cmd_plan(args) -> int:
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .analysis.plan import parse_target, plan
    from .core.output import check_dir_option, check_target

    target = parse_target(args.target)  # fail on a bad target before loading or simulating
    scenario = _load(args.scenario, args, varied=(args.over,))
    out = Path(args.out) if args.out else None
    if out is not None:
        check_target(out, args.force)
    if args.cache:
        check_dir_option(Path(args.cache), "--cache")
    try:
        result = plan(
            scenario, target, over=args.over, confidence=args.confidence, low=args.low, high=args.high,
            criterion=args.criterion, replications=args.replications, seed=args.seed, jobs=args.jobs,
            dask=args.dask, progress=not args.quiet, cache=args.cache,
        )
    except KeyboardInterrupt:
        return _interrupted(Path(args.cache) if args.cache else None)
    summary = result.summary()
    print(summary)
    if out is not None:
        result.to_folder(out, force=args.force, format=args.format)
        print(f"\nwrote {out}/ (plan.{args.format}, summary.txt, manifest.json)")
    return 0 if result.answer is not None else 1


def _add_sensitivity(sub):
    p = sub.add_parser(
        "sensitivity",
        help="which assumptions drive the forecast: one-at-a-time swings, Morris screening, Sobol' indices (resumable)",
        parents=PARENTS["cached"],
    )
    p.add_argument("scenario", help="scenario YAML file with a sensitivity: block")
    p.set_defaults(func=cmd_sensitivity)


def cmd_sensitivity(args) -> int:
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .analysis.sensitivity import sensitivity
    from .core.errors import PlanError
    from .core.output import check_target

    scenario = _load(args.scenario, args)
    if scenario.sensitivity is None:
        raise PlanError(
            f"{args.scenario}: no sensitivity: block; add one, e.g. "
            "sensitivity: {fields: {segments.smb.renewal.healthy: [0.85, 0.95], team.pods.smb.headcount: [2, 6]}}"
        )
    out = Path(args.out) if args.out else Path("results") / f"{scenario.name}-sensitivity"
    check_target(out, args.force)
    cache = _cache_dir(args, out)
    try:
        result = sensitivity(
            scenario, replications=args.replications, seed=args.seed, jobs=args.jobs, dask=args.dask,
            progress=not args.quiet, cache=cache, batch_size=args.batch_size,
        )
    except KeyboardInterrupt:
        return _interrupted(cache)
    result.to_folder(out, force=args.force, format=args.format)
    print(result.summary())
    tables = ", ".join(f"{stem}.{args.format}" for stem in ("sensitivity", "points", "outputs"))
    print(f"\nwrote {out}/ ({tables}, manifest.json)")
    return 0


def _add_acquisition(sub):
    p = sub.add_parser(
        "forecast-acquisition",
        help="forecast monthly new logos per segment (statsmodels ETS) into a file scenarios can use",
    )
    p.add_argument("data", help="monthly counts (month, segment, new_logos) or a customer history (--history)")
    p.add_argument("--out", "-o", required=True, help="forecast JSON to write")
    p.add_argument("--history", action="store_true", help="DATA is a customer history: count signed dates")
    p.add_argument("--through", help="last complete month of a history (YYYY-MM); later signings are dropped")
    p.add_argument("--horizon", type=_int_in(1, MAX_HORIZON_MONTHS), default=36, help="months to forecast (default 36)")
    p.add_argument("--paths", type=_int_in(1, MAX_PATHS), default=500, help="simulated paths per segment (default 500)")
    p.add_argument("--seed", type=_int_in(0, MAX_SEED), default=0)
    p.add_argument("--force", action="store_true", help="replace an existing forecast file")
    p.set_defaults(func=cmd_acquisition)


def cmd_acquisition(args) -> int:
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .core.output import check_file_target
    from .fitting.acquisition import counts_from_history, fit_acquisition, write_forecast

    out = Path(args.out)
    check_file_target(out, args.force)
    data = counts_from_history(args.data, through=args.through) if args.history else args.data
    forecast = fit_acquisition(data, horizon=args.horizon, n_paths=args.paths, seed=args.seed)
    write_forecast(forecast, out)
    frame = forecast.to_frame()
    for name, f in forecast.segments.items():
        rows = frame[frame.segment == name]
        print(
            f"{name}: ETS({f.model}), {rows.month.iloc[0]}..{rows.month.iloc[-1]}: mean {rows['mean'].mean():.1f} "
            f"new logos/month (first month {f.mean[0]:.1f}, 90 % {f.lo[0]:.1f}-{f.hi[0]:.1f})"
        )
    print(f"wrote {out} — use it with  acquisition: {{file: {out.name}, key: <segment>}}")
    return 0


def _add_report(sub):
    p = sub.add_parser("report", help="write a one-page summary (Markdown or HTML, with figures) of a results folder")
    p.add_argument("results", help="a folder written by cssim run, compare --out, plan --out, sweep or sensitivity")
    p.add_argument("--out", "-o", help="report file, .md or .html (default: RESULTS/report.md); figures go beside it")
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .report import write_report

    out, figures = write_report(args.results, args.out)
    print(f"wrote {out} ({len(figures)} figures beside it)")
    return 0


FAMILIES_HELP = "comma-separated candidate curve families (default: all of {}); fewer is much faster"
WEIGHTING_HELP = ("weights of the candidate families for model averaging: {} (default: {}); stacking and pseudo_bma "
                  "(pseudo-BMA+) score 5-fold cross-validated predictive densities (5 refits per family)")


def _add_weighting(p, prefix: str = "") -> None:
    p.add_argument("--weighting", choices=WEIGHTINGS, default=DEFAULT_WEIGHTING,
                   help=prefix + WEIGHTING_HELP.format(", ".join(WEIGHTINGS), DEFAULT_WEIGHTING))


def _families_help() -> str:
    return FAMILIES_HELP.format(", ".join(FAMILY_ORDER))


def _families(text):
    try:
        return parse_families(text)
    except ValueError as exc:
        raise CssimError(str(exc)) from None


def _add_fit(sub):
    p = sub.add_parser("fit", help="fit curves from a customer history or a cohort retention table")
    p.add_argument("data", help="customer history (CSV/Parquet) or cohort table (cohort, period, active)")
    p.add_argument("--out", "-o", required=True, help="output folder (curves.json or cohort_fit.json, fit_report.md, ...)")
    p.add_argument("--until", type=_int_in(0, 10_000),
        help="cohort tables: calibrate on periods <= UNTIL only (back-test)")
    p.add_argument("--horizon", type=_int_in(1, 10_000), help="cohort tables: project every cohort to this period")
    p.add_argument("--extract-date", help="histories: date of the extract (default: extract_date column, else the latest date)")
    p.add_argument("--drop-bad-rows", action="store_true", help="histories: drop invalid rows (and report how many) instead of failing")
    _add_date_format(p)
    p.add_argument("--scenario", help="histories: a scenario whose segments are the only ones allowed in the file")
    p.add_argument(
        "--bootstrap", type=_int_in(0, MAX_BOOTSTRAP), default=0, metavar="N",
        help="histories: also refit each chosen curve and renewal model to N resamples of the customers and store "
        "the parameter sets (for parameter_uncertainty: bootstrap); costs about N refits per curve",
    )
    p.add_argument("--seed", type=_int_in(0, MAX_SEED), default=0,
        help="histories: seed of the bootstrap resamples (default 0)")
    p.add_argument("--families", help="histories: " + _families_help())
    _add_weighting(p, "histories: ")
    p.add_argument("--duration", help="snapshot tables (one row per customer): column of the tenure")
    p.add_argument("--event", help="snapshot tables: column of the churn flag (1/0, Yes/No, True/False)")
    p.add_argument("--segment", help="snapshot tables: column whose values are the segments (e.g. contract type)")
    p.add_argument("--duration-unit", choices=("months", "days"), default="months",
                   help="snapshot tables: unit of --duration (default months)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _add_format(p)
    p.set_defaults(func=cmd_fit)


def cmd_fit(args) -> int:
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .fitting.curvesfile import looks_like_cohort_table

    path = Path(args.data)
    families = _families(args.families)
    if args.bootstrap < 0:
        raise CssimError(f"--bootstrap: {args.bootstrap}; give 0 (none) or more refits")
    if args.seed < 0:
        raise CssimError(f"--seed: {args.seed}; give a whole number >= 0")
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .core.files import regular_file

    regular_file(path, str(path), "a customer history or a cohort table (CSV or Parquet)")
    snapshot = None
    if args.duration is not None or args.event is not None or args.segment is not None:
        if args.duration is None or args.event is None:
            raise CssimError(f"{path}: a snapshot table needs --duration and --event (the tenure and churn-flag "
                             "columns)")
        snapshot = {"duration": args.duration, "event": args.event, "segment": args.segment,
                    "duration_unit": args.duration_unit}
    elif looks_like_cohort_table(path):
        if args.bootstrap:
            raise CssimError(f"{path}: --bootstrap applies to customer histories; this file is a cohort table")
        return _fit_cohort_table(path, args)
    if args.until is not None or args.horizon is not None:
        raise CssimError(f"{path}: --until and --horizon apply to cohort tables; this file is a customer history")
    segments = None
    if args.scenario:
        # lazy: imported when the command runs, so that `cssim --help` starts fast
        from .model.loader import load_scenario

        segments = list(load_scenario(args.scenario).segments)
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .core.output import check_target
    from .fitting.bootstrap import check_count
    from .fitting.curvesfile import fit_history, fit_lines, read_fit_source

    try:
        check_count(args.bootstrap, args.seed)
    except ValueError as exc:
        raise CssimError(str(exc)) from None
    check_target(Path(args.out), args.force)
    h, transitions = read_fit_source(path, snapshot, segments, args.drop_bad_rows, args.extract_date,
                                     args.date_format)
    if h.dropped:
        shown = ", ".join(map(str, h.dropped_lines[:20])) + (", ..." if len(h.dropped_lines) > 20 else "")
        print(f"{path}: dropped {h.dropped} bad row{'s' if h.dropped != 1 else ''} ({len(h.frame)} kept): "
              f"line{'s' if h.dropped != 1 else ''} {shown}")
    results = fit_history(h, bootstrap=args.bootstrap, seed=args.seed, progress=not args.quiet, families=families,
                          transitions=transitions, weighting=args.weighting)
    results.to_folder(args.out, force=args.force, format=args.format)
    lines = fit_lines(results, args.out)
    print("\n".join(lines[:-1]))
    print(f"wrote {args.out}/ (curves.json, fit_report.md, km.{args.format}, candidates.{args.format})")
    print(lines[-1])
    return 0


def _fit_cohort_table(path: Path, args) -> int:
    """``cssim fit`` for a cohort table: read, fit, write the folder, print the report."""
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .core.output import check_target

    try:
        # lazy: imported when the command runs, so that `cssim --help` starts fast
        from .fitting.cohorts import fit_cohorts, read_cohort_table
    except ImportError as exc:
        raise CssimError(
            f"{path}: looks like a cohort table (cohort, period, active), but cohort fitting is not available "
            f"in this installation ({exc})"
        ) from None
    check_target(Path(args.out), args.force)
    results = fit_cohorts(read_cohort_table(path), until=args.until, horizon=args.horizon)
    results.to_folder(args.out, force=args.force, format=args.format)
    print(results.report())
    print(f"wrote {args.out}/ (projection.{args.format}, cohort_fit.json, fit_report.md)")
    return 0


def _add_synth(sub):
    p = sub.add_parser("synth", help="simulate one replication of a scenario and write it as a customer-history file",
                       parents=PARENTS["scenario"])
    p.add_argument("scenario", help="scenario YAML file")
    p.add_argument("--out", "-o", required=True, help="history file to write (.csv or .parquet)")
    p.add_argument("--seed", type=_int_in(0, MAX_SEED), help="override the scenario's seed")
    p.add_argument("--months", type=_int_in(1, MAX_HORIZON_MONTHS),
        help="override the scenario's horizon_months (length of the history)")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(func=cmd_synth)


def cmd_synth(args) -> int:
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .core.output import check_file_target
    from .sim.synth import synthesize_history, write_history

    out = Path(args.out)
    check_file_target(out, args.force)
    scenario = _load(args.scenario, args, {"horizon_months": args.months})
    frame = synthesize_history(scenario, seed=args.seed)
    write_history(frame, out, force=args.force)
    churned = int((frame["churn_date"] != "").sum())
    print(f"wrote {out}: {len(frame)} customer episodes, {churned} churned, extract date {frame['extract_date'].iloc[0]}")
    return 0


def _add_touch_effects(sub):
    p = sub.add_parser(
        "touch-effects",
        help="touch-model hazard ratios adjusted for who got which touch model (naive, covariates, IPW)",
    )
    p.add_argument("history", help="customer history (CSV/Parquet), or any per-customer table with --duration/--event/--group")
    p.add_argument("--transition", default="churn", help="histories: onboarding, at_risk, recovery or churn (default churn)")
    p.add_argument("--covariates", help="comma-separated columns the assignment depends on (default for histories: arr,segment); arr enters as log ARR")
    p.add_argument("--duration", help="other tables: duration column (> 0)")
    p.add_argument("--event", help="other tables: event column (1 happened, 0 censored)")
    p.add_argument("--group", help="other tables: touch-model column")
    p.add_argument("--entry", help="other tables: left-truncation (entry time) column")
    p.add_argument("--reference", help="touch model to compare against (default: the most common)")
    p.add_argument("--trim", type=_real_in(0.0, 0.4999),
        help="drop customers with a propensity below TRIM for any touch model")
    p.add_argument("--truncate", type=_real_in(1e-9, 0.4999),
        help="clip weights at the TRUNCATE and 1-TRUNCATE quantiles (e.g. 0.01)")
    p.add_argument("--out", "-o", help="output folder (default: results/<file stem>-touch-effects)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    _add_format(p)
    p.set_defaults(func=cmd_touch_effects)


def cmd_touch_effects(args) -> int:
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .core.output import check_target
    from .fitting.causal import TouchEffects, touch_table

    if args.trim is not None and not 0.0 <= args.trim < 0.5:
        raise CssimError(f"--trim: must be in [0, 0.5), got {args.trim}")
    if args.truncate is not None and not 0.0 < args.truncate < 0.5:
        raise CssimError(f"--truncate: must be in (0, 0.5), got {args.truncate}")
    path = Path(args.history)
    out = Path(args.out) if args.out else Path("results") / f"{path.stem}-touch-effects"
    check_target(out, args.force)
    frame, names, entry = touch_table(path, args.transition, args.covariates, args.duration, args.event, args.group,
                                      args.entry)
    te = TouchEffects(
        frame, duration=args.duration or "duration", event=args.event or "event", group=args.group or "touch_model",
        covariates=names, entry=entry, reference=args.reference, trim=args.trim, truncate=args.truncate,
        source=str(path), transition=args.transition,
    ).fit()
    te.to_folder(out, force=args.force, format=args.format)
    print(te.report())
    tables = ", ".join(f"{stem}.{args.format}" for stem in ("touch_effects", "balance", "overlap"))
    print(f"\nwrote {out}/ ({tables}, summary.txt, effects.json, touch_effects_forest.png, covariate_balance.png)")
    return 0


def _add_backtest(sub):
    p = sub.add_parser(
        "backtest", help="fit on a customer history up to a cutoff, forecast, and score against what happened next"
    )
    p.add_argument("history", help="customer-history file (.csv or .parquet)")
    p.add_argument("--cutoff", required=True, help="date (YYYY-MM-DD): everything after it is treated as unknown")
    p.add_argument("--horizon", type=_int_in(1, MAX_HORIZON_MONTHS), required=True,
        help="months to forecast after the cutoff")
    p.add_argument("--scenario", help="template scenario: touch models, team, contracts, renewal settings")
    p.add_argument("--replications", "-n", type=_int_in(1, MAX_REPLICATIONS), default=100,
        help="Monte Carlo replications (default 100)")
    p.add_argument("--seed", type=_int_in(0, MAX_SEED), default=0,
        help="seed of the forecast and the baselines (default 0)")
    p.add_argument("--jobs", "-j", type=_jobs, default=1, help="worker processes (-1: every core)")
    p.add_argument("--families", help=_families_help())
    p.add_argument("--fixed-rate", action="store_true",
                   help="new logos at the point estimate of the pre-cutoff rate (default: rate drawn from its posterior)")
    p.add_argument("--parameter-uncertainty", choices=("none", "asymptotic", "bootstrap"), default="asymptotic",
                   help="asymptotic (default): each replication draws the fitted curves' parameters from their "
                   "estimation covariance, and the forecast is run again at the point estimates (cssim_point) to "
                   "show how much of the interval is estimation error; bootstrap: one refit to resampled customers "
                   "per replication instead (see --bootstrap); none: point estimates only")
    p.add_argument("--bootstrap", type=_int_in(2, MAX_BOOTSTRAP), default=None, metavar="N",
                   help="with --parameter-uncertainty bootstrap: refits per curve (default 200; costs N refits each)")
    p.add_argument("--model-uncertainty", choices=("averaged", "best"), default="averaged",
                   help="averaged (default): a curve with several credible families draws one per replication by its "
                   "weight (see --weighting), and the forecast is run again with the lowest-AIC family (cssim_best); "
                   "best: the lowest-AIC family is taken as known")
    _add_weighting(p)
    p.add_argument("--tail", choices=("auto", "hold", "fitted"), default=None,
                   help="hazards beyond each curve's data edge (fewer than 20 at risk): hold keeps them at their level "
                   "over the last well-observed window; fitted extrapolates the fitted curve; auto (default) holds "
                   "only a hazard that would rise above that level")
    p.add_argument("--out", "-o", default="backtest", help="folder to write (default ./backtest)")
    p.add_argument("--force", action="store_true", help="replace an existing back-test folder")
    _add_format(p)
    p.set_defaults(func=cmd_backtest)


def cmd_backtest(args) -> int:
    # lazy: imported when the command runs, so that `cssim --help` starts fast
    from .analysis.backtest import backtest, write_backtest
    from .core.output import check_target

    check_target(Path(args.out), args.force)
    if args.replications < 1:
        raise CssimError(f"--replications: {args.replications}; give at least 1")
    families = _families(args.families)
    res = backtest(args.history, args.cutoff, args.horizon, template=args.scenario, families=families,
                   replications=args.replications, seed=args.seed, jobs=args.jobs,
                   rate_uncertainty=not args.fixed_rate, parameter_uncertainty=args.parameter_uncertainty,
                   bootstrap=args.bootstrap, model_uncertainty=args.model_uncertainty, tail=args.tail,
                   weighting=args.weighting)
    out = write_backtest(res, args.out, force=args.force, format=args.format)
    print(res.summary())
    print(f"wrote {out}")
    return 0


def _add_app(sub):
    p = sub.add_parser("app", help="serve the planning page (headcount and touch-model what-ifs) on 127.0.0.1")
    p.add_argument("scenario", nargs="?", default="baseline",
                   help="starting scenario: a YAML file or a shipped name (default: baseline)")
    p.add_argument("--port", "-p", type=_int_in(0, 65535), default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--replications", "-n", type=_int_in(2, MAX_REPLICATIONS),
                   help="replications per what-if (default: the scenario's, kept within 2..8)")
    p.add_argument("--jobs", "-j", type=_jobs, default=-1, help="worker processes (-1: all cores)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    p.set_defaults(func=cmd_app)


def cmd_app(args) -> int:
    # lazy: panel and Bokeh load only for this command, so that `cssim --help` starts fast
    from .app import serve

    try:
        serve(args.scenario, port=args.port, replications=args.replications, jobs=args.jobs,
              show=not args.no_browser)
    except KeyboardInterrupt:  # Ctrl-C is how the page is stopped
        print("cssim: planning page stopped", file=sys.stderr)
    return 0


COMMANDS = [
    _add_run, _add_validate, _add_schema, _add_compare, _add_sweep, _add_plan, _add_sensitivity, _add_acquisition,
    _add_report,
    _add_fit, _add_synth, _add_touch_effects, _add_backtest, _add_app,
]


#: Shared option groups (argparse parents): each is defined once and reads the same in every command.
PARENTS = {
    "scenario": [_parent(_scenario_options)],
    "run": [_parent(_scenario_options, _run_options, _output_options)],
    "cached": [_parent(_scenario_options, _run_options, _output_options, _cache_options)],
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cssim", description="Forecast what a customer-success policy does to a B2B SaaS business."
    )
    parser.add_argument("--version", action="version", version=f"cssim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings are about the user's inputs: one line, without a library's source location."""
    print(f"cssim: warning: {message}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a bad flag (one line already printed), or --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.func(args)
    except CssimError as exc:
        for line in exc.problems:
            print(f"cssim: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("cssim: interrupted; nothing was written", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
