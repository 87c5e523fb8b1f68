"""Hostile inputs: every one fails in one line (exit 2) naming the file and the field or row, fast.

Each case writes files into an empty working folder, runs the CLI there and
checks: exit code 2, exactly one line on stderr starting ``cssim: error:``
with the expected fragments, no traceback, nothing printed on stdout, no file
created (no results folder, no partial folder, no default ``results/``), every
file of the user's unchanged, and the whole case done within a few seconds.
Cases that could block for ever if a check regressed (FIFOs, ``/dev/zero``)
run as subprocesses with a timeout.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cssim.cli import main

SECONDS = 5.0  # every case finishes well within this

BASE = {
    "name": "base",
    "horizon_months": 6,
    "replications": 1,
    "segments": {
        "smb": {"initial_customers": 5, "arr": {"median": 5000}, "touch_model": "tech"},
    },
    "touch_models": {"tech": {"tasks": {"nudge": {"trigger": "cadence", "every_days": 30, "hours": 0}}}},
    "team": {"pods": {"smb_pod": {"segments": ["smb"], "headcount": 1}}},
}

HISTORY_HEAD = "customer_id,segment,arr,signed_date,churn_date\n"


def _merge(base: dict, patch: dict) -> dict:
    out = dict(base)
    for k, v in patch.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and v and isinstance(out.get(k), dict) else v
    return out


def scen(text: str | None = None, **patch) -> str:
    """The base scenario with ``patch`` merged in (as YAML text), or ``text`` appended to it."""
    doc = yaml.safe_dump(_merge(BASE, patch), sort_keys=False)
    return doc + (text or "")


def scen_book(file: str = "b.csv") -> str:
    """The base scenario whose segment starts from a book file (and so gives no initial_customers)."""
    data = _merge(BASE, seg(book={"file": file}))
    data["segments"]["smb"] = {k: v for k, v in data["segments"]["smb"].items() if k != "initial_customers"}
    return yaml.safe_dump(data, sort_keys=False)


def seg(**fields) -> dict:
    return {"segments": {"smb": fields}}


def pod(**fields) -> dict:
    return {"team": {"pods": {"smb_pod": fields}}}


def task(**fields) -> dict:
    return {"touch_models": {"tech": {"tasks": {"nudge": fields}}}}


def _deep_yaml(depth: int) -> str:
    return "description: " + "[" * depth + "]" * depth + "\n"


def _deep_mapping(depth: int) -> str:
    return "".join("  " * i + "a:\n" for i in range(depth)) + "  " * depth + "b: 1\n"


# "Billion laughs": nine levels of nine aliases each (9⁹ strings if expanded), all under one field.
ALIAS_BOMB = (
    'description:\n  - &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"  - &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)
    )
)

CURVES_OK = '{"format": "cssim-curves/1", "curves": {"smb/churn": {"spec": {"family": "exponential", "scale": 300}}}}'
FITTED = seg(
    contract={"billing": "monthly"},
    lifecycle={"churn": {"family": "fitted", "file": "curves.json", "key": "smb/churn"}},
)
ACQ = '{"format": "%s", "segments": {"smb": {"start": "2027-01", "paths": [[1, 2, 3, 4, 5, %s]]}}}'
BOOK_HEAD = "customer_id,arr,touch_model,tenure_days\n"
RUN = ["run", "s.yaml", "-j", "1", "-q"]
STRICT = ["validate", "s.yaml", "--strict"]

# id -> (files, argv, fragments). Files: name -> text (or a special marker). Run in an empty folder.
CASES: dict[str, tuple[dict, list[str], list[str]]] = {
    # ---- scenario numbers: finite, integer, bounded
    "inf_arr": ({"s.yaml": scen(**seg(arr={"median": float("inf")}))}, RUN, ["segments.smb.arr.median", "finite"]),
    "nan_hours": ({"s.yaml": scen(**task(hours=float("nan")))}, RUN, ["tasks.nudge.hours", "finite"]),
    "inf_cost": ({"s.yaml": scen(**pod(cost_per_year=float("inf")))}, RUN, ["cost_per_year", "finite"]),
    "inf_effect": ({"s.yaml": scen(**task(effects={"churn": float("inf")}))}, RUN, ["effects.churn", "finite"]),
    "inf_curve_scale": (
        {"s.yaml": scen(**seg(lifecycle={"growth": {"family": "weibull", "scale": float("inf"), "shape": 1.0}}))},
        RUN, ["lifecycle.growth.scale", "finite"],
    ),
    "inf_text_arr": ({"s.yaml": scen(**seg(arr={"median": "inf"}))}, RUN, ["arr.median", "not text"]),
    "bool_true_count": ({"s.yaml": scen(**pod(headcount=True))}, RUN, ["headcount", "not a boolean", "True"]),
    "yes_count": ({"s.yaml": scen().replace("initial_customers: 5", "initial_customers: yes")}, RUN,
                  ["initial_customers", "not text", "'yes'"]),
    "on_replications": ({"s.yaml": scen().replace("replications: 1", "replications: on")}, RUN,
                        ["replications", "not text", "'on'"]),
    "sexagesimal_days": ({"s.yaml": scen().replace("every_days: 30", "every_days: 1:30")}, RUN,
                         ["every_days", "not text", "'1:30'"]),
    "sexagesimal_count": ({"s.yaml": scen().replace("initial_customers: 5", "initial_customers: 1:30")}, RUN,
                          ["initial_customers", "'1:30'"]),
    "fractional_headcount": ({"s.yaml": scen(**pod(headcount=2.5))}, RUN, ["headcount", "fractional"]),
    "billion_customers": ({"s.yaml": scen(**seg(initial_customers=10**9))}, RUN,
                          ["initial_customers", "less than or equal to 1000000"]),
    "billion_csms": ({"s.yaml": scen(**pod(headcount=10**9))}, RUN, ["headcount", "less than or equal to 10000"]),
    "billion_new_logos": ({"s.yaml": scen(**seg(new_logos_per_month=1e9))}, RUN, ["new_logos_per_month", "100000"]),
    "too_many_over_run": (
        {"s.yaml": scen(horizon_months=240, **seg(new_logos_per_month=50_000))}, RUN,
        ["segments: about 12,000,005 customers", "at most 5,000,000"],
    ),
    "billion_replications": ({"s.yaml": scen(replications=10**9)}, RUN, ["replications", "100000"]),
    "huge_hire": ({"s.yaml": scen(**pod(hires=[{"month": 1, "count": 10**8}]))}, RUN, ["hires.0.count", "10000"]),
    "cadence_every_millisecond": ({"s.yaml": scen(**task(every_days=1e-8))}, RUN,
                                  ["tasks.nudge.every_days", "greater than or equal to 1"]),
    "champion_billion_a_year": ({"s.yaml": scen(**seg(lifecycle={"champion_change_per_year": 1e9}))}, RUN,
                                ["champion_change_per_year", "less than or equal to 365"]),
    "at_risk_flip_flop": (
        {"s.yaml": scen(**seg(lifecycle={"at_risk": {"family": "exponential", "scale": 1e-6}}))},
        RUN, ["segments.smb.lifecycle.at_risk: median time 6.93e-07 days", "at least 0.1 day"],
    ),
    "weibull_tiny_shape": (
        {"s.yaml": scen(**seg(lifecycle={"recovery": {"family": "weibull", "scale": 300, "shape": 0.01}}))},
        RUN, ["segments.smb.lifecycle.recovery: median time 3.63e-14 days"],
    ),
    "arr_overflow": ({"s.yaml": scen(**seg(arr={"median": 1e308, "sigma": 2}))}, RUN,
                     ["segments.smb.arr.median", "less than or equal to 1000000000000"]),
    "effect_ratio_huge": ({"s.yaml": scen(**task(effects={"recovery": 1e300}))}, RUN,
                          ["effects.recovery", "less than or equal to 1000"]),
    "tenure_eons": ({"s.yaml": scen(**seg(initial_tenure_months=1e300))}, RUN, ["initial_tenure_months", "1200"]),
    "horizon_10000": ({"s.yaml": scen(horizon_months=10_000)}, RUN, ["horizon_months", "240"]),
    "start_after_pandas": ({"s.yaml": scen().replace("replications: 1", "replications: 1\nstart_date: 9999-12-01")},
                           RUN, ["start_date", "outside 1900-01-01..2200-12-01"]),
    "start_medieval": ({"s.yaml": scen().replace("replications: 1", "replications: 1\nstart_date: 1066-10-14")},
                       RUN, ["start_date", "outside"]),
    "seed_negative": ({"s.yaml": scen(seed=-1)}, RUN, ["seed", "greater than or equal to 0"]),
    "seed_huge": ({"s.yaml": scen(seed=2**70)}, RUN, ["seed", "less than or equal to"]),
    "sweep_grid_8x10": (
        {"s.yaml": scen(sweep={"grid": {f"team.pods.smb_pod.p{i}": list(range(10)) for i in range(8)}})},
        ["sweep", "s.yaml", "-j", "1", "-q"], ["sweep", "100,000,000 points", "at most 10,000"],
    ),
    # ---- names that would write outside the working folder
    "name_absolute": ({"s.yaml": scen(name="/tmp/cssim-evil")}, RUN, ["name", "not a safe folder name"]),
    "name_dotdot": ({"s.yaml": scen(name="../../evil")}, RUN, ["name", "not a safe folder name"]),
    "name_slash": ({"s.yaml": scen(name="a/b")}, RUN, ["name", "no '/'"]),
    "name_hidden": ({"s.yaml": scen(name=".cssim-cache")}, RUN, ["name", "not starting with '.'"]),
    # ---- YAML structure
    "deep_list_1000": ({"s.yaml": scen(_deep_yaml(1000))}, RUN, ["s.yaml", "nested"]),
    "deep_mapping_60": ({"s.yaml": _deep_mapping(60)}, RUN, ["s.yaml", "nested more than 40 levels"]),
    "alias_bomb": ({"s.yaml": scen() + ALIAS_BOMB}, RUN,
                   ["s.yaml", "description", "valid string"]),
    "python_tag": ({"s.yaml": "name: !!python/object/apply:os.system ['true']\n"}, RUN, ["not valid YAML"]),
    "duplicate_key": ({"s.yaml": scen() + "horizon_months: 7\n"}, RUN, ["duplicate key 'horizon_months'"]),
    "extends_passwd": ({"s.yaml": "extends: /etc/passwd\n"}, RUN, ["extends", "not a scenario file", ".yaml"]),
    "extends_link_to_passwd": ({"s.yaml": "extends: p.yaml\n", "p.yaml": ("symlink", "/etc/passwd")}, RUN,
                               ["p.yaml", "expected a mapping"]),
    "extends_circular": ({"s.yaml": "extends: t.yaml\n", "t.yaml": "extends: s.yaml\n"}, RUN, ["circular"]),
    "scenario_directory": ({"s.yaml": ("dir",)}, RUN, ["s.yaml", "is a directory"]),
    "scenario_symlink_loop": ({"s.yaml": ("symlink", "s.yaml")}, RUN, ["s.yaml", "symbolic link loop"]),
    "scenario_dev_null": ({"s.yaml": ("symlink", "/dev/null")}, RUN, ["s.yaml", "device file"]),
    "scenario_too_big": ({"s.yaml": scen("#" + "x" * 2_100_000 + "\n")}, RUN, ["s.yaml", "at most 2,000,000 bytes"]),
    # ---- model checks under --strict
    "csm_work_without_pod": (
        {"s.yaml": scen(team={"pods": {}}, **task(hours=2))}, STRICT,
        ["segments.smb", "needs CSM time (nudge)", "no pod", "(--strict)"],
    ),
    "monthly_without_churn": ({"s.yaml": scen(**seg(contract={"billing": "monthly"}))}, STRICT,
                              ["segments.smb.lifecycle.churn", "monthly billing", "100 %", "(--strict)"]),
    "annual_with_unused_churn": (
        {"s.yaml": scen(**seg(lifecycle={"churn": {"family": "exponential", "scale": 300}}))}, STRICT,
        ["segments.smb.lifecycle.churn", "not use", "(--strict)"],
    ),
    "qbr_every_3_days": (
        {"s.yaml": scen(**task(every_days=3, hours=5))}, STRICT,
        ["team.pods.smb_pod", "offered load", "touch_models.tech.tasks.nudge", "deadline_days", "(--strict)"],
    ),
    "target_percent_as_number": ({"s.yaml": scen()}, ["plan", "s.yaml", "--target", "grr >= 90", "--over",
                                 "team.pods.smb_pod.headcount"], ["grr >= 90", "no outcome", "0.9"]),
    "target_always_met": ({"s.yaml": scen()}, ["plan", "s.yaml", "--target", "touch_miss_rate <= 1.5", "--over",
                          "team.pods.smb_pod.headcount"], ["every outcome meets it"]),
    # ---- curves, acquisition and book files
    "curves_inf_scale": ({"s.yaml": scen(**FITTED), "curves.json": CURVES_OK.replace("300", "Infinity")}, RUN,
                         ["segments.smb.lifecycle.churn", "finite"]),
    "curves_not_json": ({"s.yaml": scen(**FITTED), "curves.json": "not json"}, RUN, ["curves.json", "not JSON"]),
    "curves_deep_json": ({"s.yaml": scen(**FITTED), "curves.json": "[" * 100_000 + "]" * 100_000}, RUN,
                         ["curves.json", "nested too deeply"]),
    "curves_directory": ({"s.yaml": scen(**FITTED), "curves.json": ("dir",)}, RUN, ["curves.json", "is a directory"]),
    "curves_symlink_loop": ({"s.yaml": scen(**FITTED), "curves.json": ("symlink", "curves.json")}, RUN,
                            ["curves.json", "symbolic link loop"]),
    "acquisition_infinite": (
        {"s.yaml": scen(**seg(acquisition={"file": "a.json", "key": "smb"})),
         "a.json": ACQ % ("cssim.acquisition_forecast", "Infinity")}, RUN, ["segments.smb.acquisition", "not finite"],
    ),
    "acquisition_deep_json": (
        {"s.yaml": scen(**seg(acquisition={"file": "a.json", "key": "smb"})), "a.json": "[" * 100_000}, RUN,
        ["a.json", "nested too deeply"],
    ),
    "book_infinite_arr": ({"s.yaml": scen_book(),
                           "b.csv": BOOK_HEAD + "c1,inf,tech,30\n"}, RUN, ["b.csv", "row 1", "arr", "finite"]),
    "book_day_first": ({"s.yaml": scen_book(),
                        "b.csv": "customer_id,arr,touch_model,signed_date\nc1,100,tech,05/02/2024\n"}, RUN,
                       ["b.csv", "row 1", "signed_date", "YYYY-MM-DD"]),
    "book_directory": ({"s.yaml": scen_book(),
                        "b.csv": ("dir",)}, RUN, ["b.csv", "is a directory"]),
    # ---- customer histories
    "history_day_first": ({"h.csv": HISTORY_HEAD + "a,smb,100,13/02/2024,\nb,smb,100,14/02/2024,\n"},
                          ["fit", "h.csv", "--out", "fit"], ["'signed_date'", "line 2", "ISO", "--date-format"]),
    "history_mixed_formats": ({"h.csv": HISTORY_HEAD + "a,smb,100,2024-02-05,\nb,smb,100,05/02/2024,\n"},
                              ["fit", "h.csv", "--out", "fit"], ["'signed_date' mixes date formats", "line 3"]),
    "history_mixed_with_format": (
        {"h.csv": HISTORY_HEAD + "a,smb,100,05/02/2024,\nb,smb,100,2024-02-05,\n"},
        ["fit", "h.csv", "--out", "fit", "--date-format", "%d/%m/%Y"], ["mixes date formats", "line 3", "%d/%m/%Y"],
    ),
    "history_churn_2099": ({"h.csv": HISTORY_HEAD + "a,smb,100,2024-02-05,2099-01-01\nb,smb,100,2024-03-05,\n"},
                           ["fit", "h.csv", "--out", "fit"], ["line 2", "churn_date", "2099-01-01", "after today"]),
    "history_after_extract": (
        {"h.csv": "customer_id,signed_date,churn_date,extract_date\na,2024-01-01,2025-06-01,2025-01-01\n"},
        ["fit", "h.csv", "--out", "fit"], ["line 2", "churn_date", "after the extract date"],
    ),
    "history_infinite_arr": ({"h.csv": HISTORY_HEAD + "a,smb,inf,2024-02-05,\n"}, ["fit", "h.csv", "--out", "fit"],
                             ["line 2", "arr", "not finite"]),
    "history_directory": ({"h.csv": ("dir",)}, ["fit", "h.csv", "--out", "fit"], ["h.csv", "is a directory"]),
    "history_symlink_loop": ({"h.csv": ("symlink", "h.csv")}, ["fit", "h.csv", "--out", "fit"],
                             ["h.csv", "symbolic link loop"]),
    "history_dev_null": ({"h.csv": ("symlink", "/dev/null")}, ["fit", "h.csv", "--out", "fit"], ["device file"]),
    "history_bad_date_format_flag": ({"h.csv": HISTORY_HEAD}, ["fit", "h.csv", "--out", "f", "--date-format", "%Q"],
                                     ["--date-format", "not a date format"]),
    "backtest_day_first": ({"h.csv": HISTORY_HEAD + "a,smb,100,13/02/2024,\n"},
                           ["backtest", "h.csv", "--cutoff", "2024-06-01", "--horizon", "3", "--out", "bt"],
                           ["'signed_date'", "ISO"]),
    "acquisition_through_month_13": (
        {"h.csv": HISTORY_HEAD + "a,smb,100,2024-02-05,\n"},
        ["forecast-acquisition", "h.csv", "--history", "--through", "2029-13", "--out", "a.json"],
        ["--through", "'2029-13'", "YYYY-MM"],
    ),
    # ---- cohort tables
    "cohort_infinite": ({"c.csv": "year,active\n0,1000\n1,inf\n2,400\n"}, ["fit", "c.csv", "--out", "fit"],
                        ["c.csv", "active"]),
    "cohort_negative": ({"c.csv": "year,active\n0,1000\n1,-5\n2,400\n"}, ["fit", "c.csv", "--out", "fit"],
                        ["c.csv", "row 3", "'active'", "negative"]),
    "cohort_rising": ({"c.csv": "year,active\n0,1000\n1,1200\n2,400\n"}, ["fit", "c.csv", "--out", "fit"],
                      ["c.csv", "row 3", "rises"]),
    "cohort_overflow": ({"c.csv": "year,active\n0,1000\n1,1e400\n"}, ["fit", "c.csv", "--out", "fit"],
                        ["row 3", "'1e400' is not a finite number"]),
    "counts_month_13": ({"n.csv": "month,segment,new_logos\n2024-13,smb,3\n"},
                        ["forecast-acquisition", "n.csv", "--out", "a.json"], ["n.csv", "row 2", "'month'", "2024-13"]),
    "counts_boolean": ({"n.csv": "month,segment,new_logos\n2024-01,smb,true\n"},
                       ["forecast-acquisition", "n.csv", "--out", "a.json"], ["n.csv", "row 2", "'true'"]),
    "counts_infinite": ({"n.csv": "month,segment,new_logos\n2024-01,smb,inf\n"},
                        ["forecast-acquisition", "n.csv", "--out", "a.json"], ["n.csv", "row 2", "'inf'"]),
    "cohort_symlink_loop": ({"c.csv": ("symlink", "c.csv")}, ["fit", "c.csv", "--out", "fit"],
                            ["c.csv", "symbolic link loop"]),
    # ---- command-line flags
    "backtest_seed_negative": ({"h.csv": HISTORY_HEAD}, ["backtest", "h.csv", "--cutoff", "2024-01-01", "--horizon",
                               "3", "--seed", "-1"], ["backtest: argument --seed", "at least 0"]),
    "acquisition_paths_zero": ({"h.csv": HISTORY_HEAD}, ["forecast-acquisition", "h.csv", "--paths", "0", "--out",
                               "a.json"], ["--paths", "1..100,000"]),
    "run_replications_zero": ({"s.yaml": scen()}, [*RUN, "-n", "0"], ["--replications", "1..100,000"]),
    "run_replications_float": ({"s.yaml": scen()}, [*RUN, "-n", "1.5"], ["--replications", "'1.5'"]),
    "run_jobs_zero": ({"s.yaml": scen()}, ["run", "s.yaml", "-j", "0"], ["--jobs", "0 workers"]),
    "run_seed_text": ({"s.yaml": scen()}, [*RUN, "--seed", "true"], ["--seed", "'true'"]),
    "plan_confidence": ({"s.yaml": scen()}, ["plan", "s.yaml", "--target", "grr >= 0.9", "--over", "seed",
                        "--confidence", "1.5"], ["--confidence", "0..1"]),
    "plan_range_huge": ({"s.yaml": scen()}, ["plan", "s.yaml", "--target", "grr >= 0.9", "--over", "seed",
                        "--max", "1000000000"], ["--max", "100,000"]),
    "sweep_batch_zero": ({"s.yaml": scen()}, ["sweep", "s.yaml", "--batch-size", "0"], ["--batch-size"]),
    "synth_months_huge": ({"s.yaml": scen()}, ["synth", "s.yaml", "--months", "100000", "--out", "h.csv"],
                          ["--months", "1..240"]),
    "fit_bootstrap_negative": ({"h.csv": HISTORY_HEAD}, ["fit", "h.csv", "--out", "f", "--bootstrap", "-3"],
                               ["--bootstrap"]),
    "touch_effects_trim": ({"h.csv": HISTORY_HEAD}, ["touch-effects", "h.csv", "--trim", "0.7"], ["--trim"]),
    "unknown_flag": ({"s.yaml": scen()}, ["run", "s.yaml", "--replicatons", "3"], ["unrecognized arguments"]),
    # ---- faults around output
    "out_is_a_file": ({"s.yaml": scen(), "r": "mine"}, [*RUN, "--out", "r", "--force"],
                      ["r: exists and is not a folder"]),
    "plan_cache_is_a_file": ({"s.yaml": scen()}, ["plan", "s.yaml", "--target", "grr >= 0.9", "--over",
                             "team.pods.smb_pod.headcount", "--cache", "s.yaml"], ["--cache s.yaml", "not a folder"]),
    "synth_out_under_a_file": ({"s.yaml": scen()}, ["synth", "s.yaml", "--out", "s.yaml/h.csv"],
                               ["s.yaml/h.csv", "s.yaml is not a folder"]),
    "run_out_under_a_file": ({"s.yaml": scen()}, [*RUN, "--out", "s.yaml/r"], ["s.yaml is not a folder"]),
    "name_unicode_ok_but_slash": ({"s.yaml": scen(name="équipe/../x")}, RUN, ["name", "not a safe folder name"]),
    "force_over_user_folder": ({"s.yaml": scen(), "r/notes.md": "mine"}, [*RUN, "--out", "r", "--force"],
                               ["not a cssim results folder"]),
}

SUBPROCESS_CASES = {
    "scenario_fifo": ({"s.yaml": ("fifo",)}, ["validate", "s.yaml"], ["s.yaml", "FIFO"]),
    "scenario_dev_zero": ({"s.yaml": ("symlink", "/dev/zero")}, ["run", "s.yaml"], ["s.yaml", "device file"]),
    "history_fifo": ({"h.csv": ("fifo",)}, ["fit", "h.csv", "--out", "f"], ["h.csv", "FIFO"]),
    "curves_fifo": ({"s.yaml": scen(**FITTED), "curves.json": ("fifo",)}, ["validate", "s.yaml"],
                    ["curves.json", "FIFO"]),
    "extends_dev_zero": ({"s.yaml": "extends: z.yaml\n", "z.yaml": ("symlink", "/dev/zero")}, ["validate", "s.yaml"],
                         ["z.yaml", "device file"]),
}


def _make(folder: Path, files: dict) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple):
            kind = content[0]
            if kind == "dir":
                path.mkdir()
            elif kind == "symlink":
                path.symlink_to(content[1])
            elif kind == "fifo":
                os.mkfifo(path)
        else:
            path.write_text(content, encoding="utf-8")


def snapshot(folder: Path) -> dict:
    """Every entry under ``folder``: kind and, for regular files, content (never opens a FIFO or device)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        st = os.lstat(path)
        rel = path.relative_to(folder).as_posix()
        if stat.S_ISREG(st.st_mode):
            out[rel] = path.read_bytes()
        elif stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(path))
        else:
            out[rel] = stat.S_IFMT(st.st_mode)
    return out


def check_line(err: str, fragments: list[str]) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    line = lines[0]
    assert line.startswith("cssim: error: "), line
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in: {line}"
    return line


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_input(case, tmp_path, monkeypatch, capsys):
    files, argv, fragments = CASES[case]
    _make(tmp_path, files)
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    line = check_line(err, fragments)
    assert "root:x:0" not in line  # never echoes another file's content
    assert snapshot(tmp_path) == before, "a file was created, changed or removed"
    assert elapsed < SECONDS, f"took {elapsed:.1f} s"


def test_there_are_at_least_60_cases():
    assert len(CASES) + len(SUBPROCESS_CASES) >= 60


@pytest.mark.parametrize("case", sorted(SUBPROCESS_CASES))
def test_hostile_special_files(case, tmp_path):
    """FIFOs and devices are refused without being opened (a regression would block: hence a subprocess)."""
    files, argv, fragments = SUBPROCESS_CASES[case]
    _make(tmp_path, files)
    before = snapshot(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-m", "cssim.cli", *argv], cwd=tmp_path, capture_output=True, text=True,
                          timeout=30, env=env)
    assert proc.returncode == 2, proc.stderr
    check_line(proc.stderr, fragments)
    assert snapshot(tmp_path) == before


def test_every_problem_listed_one_line_each(tmp_path, monkeypatch, capsys):
    text = scen(horizon_months=0, **pod(headcount=-1), **seg(arr={"median": float("inf")}))
    (tmp_path / "s.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "s.yaml"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3, lines
    assert all(line.startswith("cssim: error: s.yaml: ") for line in lines)
    fields = sorted(line.split(": ")[3] for line in lines)
    assert fields == ["horizon_months", "segments.smb.arr.median", "team.pods.smb_pod.headcount"]
    assert not any("more problem" in line for line in lines)


def test_merge_key_works_and_1_30_is_text(tmp_path):
    from cssim import load_scenario

    text = scen().replace("touch_model: tech", "touch_model: tech\n    <<: {new_logos_per_month: 2}")
    (tmp_path / "m.yaml").write_text(text)
    assert load_scenario(tmp_path / "m.yaml").segments["smb"].new_logos_per_month == 2
    (tmp_path / "d.yaml").write_text(scen(description="x").replace("description: x", "description: 1:30"))
    assert load_scenario(tmp_path / "d.yaml").description == "1:30"
    (tmp_path / "u.yaml").write_text(scen().replace("initial_customers: 5", "initial_customers: 1_000"))
    assert load_scenario(tmp_path / "u.yaml").segments["smb"].initial_customers == 1000


def test_dask_address_that_is_not_a_scheduler(tmp_path, monkeypatch, capsys):
    """A plain TCP socket on 127.0.0.1 that never answers: one line within the connect timeout."""
    from cssim.sim import backends

    monkeypatch.setattr(backends, "DASK_CONNECT_TIMEOUT", 1.5)
    (tmp_path / "s.yaml").write_text(scen())
    monkeypatch.chdir(tmp_path)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        start = time.perf_counter()
        code = main(["run", "s.yaml", "-q", "--dask", f"tcp://127.0.0.1:{port}"])
        elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2
    check_line(err, [f"--dask tcp://127.0.0.1:{port}", "no Dask scheduler answered within 1.5 s"])
    assert elapsed < 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_force_refuses_a_results_folder_holding_a_users_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "s.yaml").write_text(scen())
    monkeypatch.chdir(tmp_path)
    assert main([*RUN, "--out", "r"]) == 0
    capsys.readouterr()
    (tmp_path / "r" / "my_notes.md").write_text("keep me")
    before = snapshot(tmp_path)
    assert main([*RUN, "--out", "r", "--force"]) == 2
    check_line(capsys.readouterr().err, ["r: holds my_notes.md", "cssim did not write"])
    assert snapshot(tmp_path) == before
    (tmp_path / "r" / "my_notes.md").unlink()
    assert main([*RUN, "--out", "r", "--force", "--seed", "3"]) == 0  # its own files only: replaced


def test_stale_partial_folder_is_removed(tmp_path, monkeypatch, capsys):
    """A partial folder of a killed run (its pid no longer exists) is cleaned up by the next write beside it."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    stale = tmp_path / f".r.partial-{proc.pid}-0123abcd"
    stale.mkdir()
    (stale / "kpis.csv").write_text("half")
    alive = tmp_path / f".r.partial-{os.getpid()}-0123abcd"  # a run still going: left alone
    alive.mkdir()
    (tmp_path / "s.yaml").write_text(scen())
    monkeypatch.chdir(tmp_path)
    assert main([*RUN, "--out", "r"]) == 0
    assert not stale.exists() and alive.exists()


def test_default_output_stays_inside_the_working_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "s.yaml").write_text(scen(name="my run"))
    monkeypatch.chdir(tmp_path)
    assert main(RUN) == 0
    assert (tmp_path / "results" / "my run" / "manifest.json").is_file()


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    """``kill -9`` of ``cssim run -j 2`` leaves no worker running (they watch their parent)."""
    import signal

    psutil = pytest.importorskip("psutil")
    (tmp_path / "s.yaml").write_text(scen(replications=40, horizon_months=120, **seg(initial_customers=3000)))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "cssim.cli", "run", "s.yaml", "-j", "2", "-q"], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 30
        workers = []
        while time.monotonic() < deadline and len(workers) < 2:
            workers = [p for p in parent.children(recursive=True) if "loky" in " ".join(p.cmdline())]
            time.sleep(0.2)
        assert workers, "no worker processes started"
        time.sleep(1.0)  # let them pick up a batch (the watchdog starts with the first one)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        gone, alive = psutil.wait_procs(workers, timeout=10)
        for p in alive:
            p.kill()
        assert not alive, f"{len(alive)} worker(s) still running after their parent was killed"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_every_broken_reference_listed(tmp_path, monkeypatch, capsys):
    """Cross-field problems (unknown touch model, pod segment, route) are all listed too, one line each."""
    text = scen(policy={"routes": [{"segment": "nosuch", "touch_model": "white_glove"}]},
                **seg(touch_model="gold"), **pod(segments=["smb", "ent"]))
    (tmp_path / "s.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "s.yaml"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[3] for line in lines] == [
        "segments.smb.touch_model", "policy.routes.0.touch_model", "policy.routes.0.segment",
        "team.pods.smb_pod.segments",
    ]
    assert all(line.startswith("cssim: error: s.yaml: ") for line in lines)


def test_compare_lists_the_problems_of_every_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "a.yaml").write_text(scen(horizon_months=0))
    (tmp_path / "b.yaml").write_text(scen(**pod(headcount=True)))
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "a.yaml", "b.yaml", "-q", "-j", "1"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[2:4] for line in lines] == [["a.yaml", "horizon_months"],
                                                        ["b.yaml", "team.pods.smb_pod.headcount"]]
