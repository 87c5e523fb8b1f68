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

from .errors import CssimError

EXIT_USAGE = 2


def _add_run(sub):
    p = sub.add_parser("run", help="simulate a scenario and write a results folder")
    p.add_argument("scenario", help="scenario YAML file")
    p.add_argument("--replications", "-n", type=int, help="override the scenario's replications")
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--out", "-o", help="results folder (default: results/<scenario name>)")
    p.add_argument("--force", action="store_true", help="replace an existing results folder")
    p.add_argument("--jobs", "-j", type=int, default=-1, help="worker processes (-1: all cores)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    from .loader import load_scenario
    from .output import check_target, write_results
    from .simulate import simulate

    overrides = {}
    if args.replications is not None:
        overrides["replications"] = args.replications
    if args.seed is not None:
        overrides["seed"] = args.seed
    scenario = load_scenario(args.scenario, overrides)
    out = Path(args.out) if args.out else Path("results") / scenario.name
    check_target(out, args.force)
    results = simulate(scenario, jobs=args.jobs, progress=not args.quiet)
    write_results(results, out, force=args.force)
    print(results.summary())
    print(f"\nwrote {out}/ (kpis.csv, monthly.csv, monthly_pods.csv, manifest.json)")
    return 0


def _add_validate(sub):
    p = sub.add_parser("validate", help="check a scenario file and report problems")
    p.add_argument("scenario")
    p.set_defaults(func=cmd_validate)


def cmd_validate(args) -> int:
    from .loader import load_scenario, scenario_hash

    scenario = load_scenario(args.scenario)
    print(
        f"{args.scenario}: ok — scenario {scenario.name!r}, {len(scenario.segments)} segments, "
        f"{len(scenario.touch_models)} touch models, {len(scenario.team.pods)} pods, hash {scenario_hash(scenario)}"
    )
    return 0


def _add_schema(sub):
    p = sub.add_parser("schema", help="print the JSON Schema of scenario files")
    p.set_defaults(func=cmd_schema)


def cmd_schema(args) -> int:
    from .scenario import Scenario

    schema = Scenario.model_json_schema()
    schema["properties"]["extends"] = {
        "type": "string",
        "description": "another scenario file (relative to this one) whose fields this file overrides",
    }
    print(json.dumps(schema, indent=2))
    return 0


COMMANDS = [_add_run, _add_validate, _add_schema]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cssim", description="Forecast what a customer-success policy does to a B2B SaaS business."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CssimError as exc:
        print(f"cssim: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("cssim: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
