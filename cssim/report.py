"""One-page summaries of results folders, for people who never open a notebook.

``cssim report RESULTS_DIR`` reads a folder written by ``cssim run`` (or
``cssim compare --out``, ``cssim plan --out``, ``cssim sweep``, ``cssim sensitivity``), draws the key
figures as PNGs beside the report and writes a Markdown (``.md``) or HTML
(``.html``) page that embeds them. Nothing is simulated again: a run's folder
is read back into a :class:`FolderResults` — a :class:`SimulationResults`
whose monthly arrays come from ``monthly.csv``/``monthly_pods.csv`` and whose
KPIs come from ``kpis.csv``/``kpis_by_replication.csv`` — so the plotting
functions work on it unchanged.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from .analysis.plan import parse_target
from .analysis.results import SimulationResults
from .core.errors import CssimError, ScenarioError
from .core.formatting import fmt_change, fmt_value
from .core.output import add_to_manifest
from .model.loader import scenario_from_dict
from .model.metrics import KPI_UNITS
from .plots import figures as plots
from .plots.figures import KPI_LABELS, save
from .sim.ledger import POD_SERIES, SEGMENT_FLOWS, SEGMENT_STOCKS

__all__ = ["FolderResults", "read_results", "folder_kind", "write_report"]

MANIFEST = "manifest.json"
#: Files that identify each kind of results folder (besides a cssim manifest.json).
KIND_FILES = {
    "run": ("kpis", "monthly", "monthly_pods"),
    "comparison": ("comparison", "differences"),
    "plan": ("plan",),
    "sweep": ("sweep", "points"),
    "sensitivity": ("sensitivity", "points"),
}


def _table_path(folder: Path, stem: str) -> Path:
    """A folder's table ``stem``, in whichever format it was written (``--format``)."""
    for suffix in (".csv", ".parquet"):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return folder / f"{stem}.csv"


def _read(folder: Path, stem: str) -> pd.DataFrame:
    path = _table_path(Path(folder), stem)
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
HEADLINE = ("grr", "nrr", "logo_retention", "renewal_rate", "ending_arr", "ending_logos", "new_arr",
            "churned_arr", "expansion_arr", "touch_miss_rate", "touch_overdue_rate", "backlog_at_horizon",
            "csm_utilisation", "csm_cost",
            "cost_per_retained_arr")


def _not_results(folder: Path, why: str) -> CssimError:
    return CssimError(f"{folder}: not a cssim results folder ({why}); pass a folder written by cssim run, "
                      "compare --out, plan --out, sweep or sensitivity")


def read_manifest(folder: str | Path) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise _not_results(folder, "no such folder")
    path = folder / MANIFEST
    if not path.is_file():
        raise _not_results(folder, "no manifest.json")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise _not_results(folder, f"manifest.json is unreadable: {exc}") from None
    if not isinstance(manifest, dict) or "cssim" not in manifest.get("versions", {}):
        raise _not_results(folder, "manifest.json was not written by cssim")
    return manifest


def folder_kind(folder: str | Path) -> str:
    """``run``, ``comparison``, ``plan``, ``sweep`` or ``sensitivity``; CssimError for anything else."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    kind = manifest.get("kind", "run")
    kind = "run" if kind == "simulation" else kind  # a simulation's folder is what `cssim run` writes
    files = KIND_FILES.get(kind)
    if files is None:
        raise _not_results(folder, f"unknown kind {kind!r} in manifest.json")
    missing = [f"{f}.csv" for f in files if not _table_path(folder, f).is_file()]
    if missing:
        raise _not_results(folder, f"{kind} folder without {', '.join(missing)}")
    return kind


# ---------------------------------------------------------------------- a run folder read back


def _scenario(data: dict):
    """The resolved scenario from the manifest; a light stand-in if it no longer validates."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the run warned already; the report only reads it back
            return scenario_from_dict(data, source="manifest.json")
    except ScenarioError:
        pods = {
            name: SimpleNamespace(segments=list(p.get("segments", [])), cost_per_year=float(p.get("cost_per_year", 0)))
            for name, p in data.get("team", {}).get("pods", {}).items()
        }
        return SimpleNamespace(
            name=data.get("name", "scenario"),
            segments=dict(data.get("segments", {})),
            start_date=dt.date.fromisoformat(str(data["start_date"])),
            horizon_months=int(data["horizon_months"]),
            seed=data.get("seed"),
            team=SimpleNamespace(pods=pods),
        )


@dataclass(repr=False)
class FolderResults(SimulationResults):
    """A run's results read back from its folder: monthly series from the CSVs, KPIs as written."""

    folder: Path | None = None

    def kpis_by_replication(self) -> pd.DataFrame:
        return _read(self.folder, "kpis_by_replication")

    def kpis(self, level: float = 0.9, scope: str | None = None) -> pd.DataFrame:
        table = _read(self.folder, "kpis")
        if level != 0.9:
            return super().kpis(level, scope)
        return table if scope is None else table[table["scope"] == scope].reset_index(drop=True)

    def __repr__(self) -> str:
        return (
            f"FolderResults({str(self.folder)!r}, scenario={self.scenario.name!r}, "
            f"replications={self.n_replications})"
        )


def _cube(frame: pd.DataFrame, key: str, order: list[str], names, folder: Path, file: str) -> dict[str, np.ndarray]:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise _not_results(folder, f"{file} lacks columns {', '.join(missing[:4])}")
    frame = frame.assign(_k=pd.Categorical(frame[key], categories=order, ordered=True))
    frame = frame.sort_values(["replication", "month", "_k"])
    R, M, K = frame["replication"].nunique(), frame["month"].nunique(), len(order)
    if len(frame) != R * M * K:
        raise _not_results(folder, f"{file} is not a full replication × month × {key} table")
    return {n: frame[n].to_numpy(dtype=float).reshape(R, M, K) for n in names}


def read_results(folder: str | Path) -> FolderResults:
    """Read a ``cssim run`` folder back as a results object the plotting functions accept."""
    folder = Path(folder)
    kind = folder_kind(folder)
    if kind != "run":
        raise CssimError(f"{folder}: a {kind} folder, not a run; read its CSV files directly")
    manifest = read_manifest(folder)
    if "scenario" not in manifest:
        raise _not_results(folder, "manifest.json has no scenario")
    scenario = _scenario(manifest["scenario"])
    monthly = _read(folder, "monthly")
    pods = _read(folder, "monthly_pods")
    segments = list(scenario.segments)
    arrays = {
        "segment": _cube(monthly, "segment", segments, SEGMENT_STOCKS + SEGMENT_FLOWS, folder, "monthly.csv"),
        "pod": _cube(pods, "pod", list(scenario.team.pods), POD_SERIES, folder, "monthly_pods.csv"),
    }
    reps = sorted(int(r) for r in monthly["replication"].unique())
    return FolderResults(scenario=scenario, arrays=arrays, replication_ids=reps, manifest=manifest, folder=folder)


# ---------------------------------------------------------------------- page building


class _Page:
    """A tiny document model rendered to Markdown or HTML."""

    def __init__(self):
        self.blocks: list[tuple[str, object]] = []

    def h(self, level: int, text: str):
        self.blocks.append(("h", (level, text)))

    def p(self, text: str):
        self.blocks.append(("p", text))

    def table(self, frame: pd.DataFrame):
        self.blocks.append(("table", frame))

    def img(self, path: str, alt: str):
        self.blocks.append(("img", (path, alt)))

    def pre(self, text: str):
        self.blocks.append(("pre", text))

    def markdown(self) -> str:
        out = []
        for kind, v in self.blocks:
            if kind == "h":
                out.append("#" * v[0] + " " + v[1])
            elif kind == "p":
                out.append(v)
            elif kind == "table":
                cols = list(v.columns)
                align = "|".join("---" if i == 0 else "---:" for i in range(len(cols)))
                rows = ["| " + " | ".join(cols) + " |", f"|{align}|"]
                rows += ["| " + " | ".join(str(x) for x in r) + " |" for r in v.itertuples(index=False)]
                out.append("\n".join(rows))
            elif kind == "img":
                out.append(f"![{v[1]}]({v[0]})")
            elif kind == "pre":
                out.append("```\n" + v + "\n```")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        e = html.escape
        out = [
            "<!DOCTYPE html>",
            f"<html><head><meta charset='utf-8'><title>{e(title)}</title><style>"
            "body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border-bottom:1px solid #ddd;padding:4px 10px}"
            "td:not(:first-child){text-align:right}img{max-width:100%}"
            "pre{background:#f6f6f6;padding:1em;overflow-x:auto}"
            "</style></head><body>",
        ]
        for kind, v in self.blocks:
            if kind == "h":
                out.append(f"<h{v[0]}>{e(v[1])}</h{v[0]}>")
            elif kind == "p":
                out.append("<p>" + re.sub(r"`([^`]*)`", r"<code>\1</code>", e(v)) + "</p>")
            elif kind == "table":
                head = "".join(f"<th>{e(str(c))}</th>" for c in v.columns)
                body = "".join(
                    "<tr>" + "".join(f"<td>{e(str(x))}</td>" for x in r) + "</tr>" for r in v.itertuples(index=False)
                )
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif kind == "img":
                out.append(f"<p><img src='{e(v[0])}' alt='{e(v[1])}'></p>")
            elif kind == "pre":
                out.append(f"<pre>{e(v)}</pre>")
        out.append("</body></html>")
        return "\n".join(out) + "\n"


def _label(kpi: str) -> str:
    return KPI_LABELS.get(kpi, kpi)


def _kpi_rows(table: pd.DataFrame, kpis=HEADLINE) -> pd.DataFrame:
    t = table.set_index("kpi")
    rows = []
    for k in kpis:
        if k not in t.index:
            continue
        r = t.loc[k]
        rows.append({"KPI": _label(k), "mean": fmt_value(r["mean"], r["unit"]),
                     "90 % interval (across replications)": f"{fmt_value(r['lo'], r['unit'])} – {fmt_value(r['hi'], r['unit'])}",
                     "90 % CI of the mean": f"{fmt_value(r['ci_lo'], r['unit'])} – {fmt_value(r['ci_hi'], r['unit'])}"})
    return pd.DataFrame(rows)


def _by_scope(table: pd.DataFrame, kpis, scopes) -> pd.DataFrame:
    t = table.set_index(["kpi", "scope"])
    rows = []
    for k in kpis:
        row = {"KPI": _label(k)}
        for s in scopes:
            cell = fmt_value(t.loc[(k, s), "mean"], t.loc[(k, s), "unit"]) if (k, s) in t.index else "n/a"
            row[s.replace("_", " ")] = cell
        rows.append(row)
    return pd.DataFrame(rows)


def _versions(manifest: dict) -> str:
    v = manifest.get("versions", {})
    return f"cssim {v.get('cssim', '?')}, Python {v.get('python', '?')}"


def _figure(page: _Page, out: Path, name: str, ax, alt: str, written: list[Path]):
    path = out.parent / f"{out.stem}-{name}.png"
    save(ax, path)
    written.append(path)
    page.img(path.name, alt)


def _run_page(folder: Path, out: Path, written: list[Path]) -> tuple[_Page, str]:
    res = read_results(folder)
    sc, m = res.scenario, res.manifest
    kpis = res.kpis()
    title = f"cssim report — scenario {sc.name}"
    page = _Page()
    page.h(1, title)
    page.p(
        f"{sc.horizon_months} months from {sc.start_date}, {res.n_replications} replications, seed {m.get('seed')}; "
        f"scenario hash {m.get('scenario_hash', '?')}; {_versions(m)}. Results folder: `{folder}`."
    )
    page.h(2, "Headline KPIs (all customers)")
    page.table(_kpi_rows(kpis[kpis["scope"] == "all"]))
    page.p("Intervals: where the outcome may land (5th–95th percentile across replications) and how precisely the "
           "replications pin down the mean (90 % t-interval).")
    page.h(2, "By segment")
    page.table(_by_scope(kpis, ("grr", "nrr", "logo_retention", "ending_arr", "ending_logos", "touch_miss_rate"),
                         ["all", *res.segments]))
    page.h(2, "Revenue")
    _figure(page, out, "arr", plots.fan_chart(res, "arr"), "ARR fan chart", written)
    _figure(page, out, "waterfall", plots.arr_waterfall(res), "ARR bridge", written)
    page.h(2, "Customers")
    _figure(page, out, "logos", plots.fan_chart(res, "active"), "Active customers fan chart", written)
    _figure(page, out, "stages", plots.stage_occupancy(res), "Customers by lifecycle stage", written)
    _figure(page, out, "at-risk", plots.health_share(res), "At-risk share", written)
    page.h(2, "CSM team")
    page.table(_by_scope(kpis, ("csm_utilisation", "accounts_per_csm", "csm_cost"), ["all", *res.pods]))
    _figure(page, out, "csm-load", plots.csm_load(res), "CSM utilisation, backlog and missed touches", written)
    return page, title


def _comparison_page(folder: Path, out: Path, written: list[Path]) -> tuple[_Page, str]:
    manifest = read_manifest(folder)
    table = _read(folder, "comparison")
    diffs = _read(folder, "differences")
    names = list(dict.fromkeys(table["scenario"]))
    title = f"cssim report — comparison of {', '.join(names)}"
    page = _Page()
    page.h(1, title)
    level = int(round(100 * float(manifest.get("level", 0.9))))
    page.p(f"{len(names)} scenarios on the same {manifest.get('replications')} replications "
           f"(seed {manifest.get('seed')}, "
           f"common random numbers); differences to {names[0]} are paired by replication, {level} % intervals. "
           f"{_versions(manifest)}.")
    page.h(2, "KPIs (all customers)")
    t = table[table["scope"] == "all"].set_index(["kpi", "scenario"])
    rows = []
    for k in HEADLINE:
        if (k, names[0]) not in t.index:
            continue
        row = {"KPI": _label(k)}
        for n in names:
            row[n] = fmt_value(t.loc[(k, n), "mean"], t.loc[(k, n), "unit"]) if (k, n) in t.index else "n/a"
        rows.append(row)
    page.table(pd.DataFrame(rows))
    page.h(2, "Paired differences (all customers)")
    d = diffs[diffs["scope"] == "all"]
    page.table(_difference_rows(d, level, kpis=HEADLINE))
    for line in manifest.get("tradeoff", []):
        page.p(line)
    if d["kpi"].isin(plots.FOREST_KPIS).any():
        _figure(page, out, "forest", plots.forest(diffs), "Paired differences, ratios", written)
    if d["kpi"].isin(plots.FOREST_MONEY_KPIS).any():
        _figure(page, out, "forest-money", plots.forest(diffs, kpis=plots.FOREST_MONEY_KPIS),
                "Paired differences, dollars", written)
    # Scopes with the most differences distinguishable from noise first: where the policy acts.
    real = diffs.assign(_d=diffs["distinguishable"].astype(str) == "True").groupby("scope", sort=False)["_d"].sum()
    scopes = sorted((sc for sc in dict.fromkeys(diffs["scope"]) if sc != "all"), key=lambda sc: -int(real.get(sc, 0)))
    if scopes:
        first = (manifest.get("scenarios") or [{}])[0].get("scenario", {})
        segments = set(first.get("segments", {}))
        pods = set(first.get("team", {}).get("pods", {}))
        page.h(2, "By segment and pod")
        page.p("Each segment's (and pod's) KPIs that differ between the scenarios; rows whose difference is exactly "
               "0 in every replication are left out. Distinguishable differences first.")
        for sc in scopes:
            kinds = [k for k, names in (("segment", segments), ("pod", pods)) if sc in names]
            page.h(3, f"{' and '.join(kinds).capitalize() or 'Scope'} {sc}")
            sub = diffs[diffs["scope"] == sc]
            rows = _difference_rows(sub, level)
            if rows.empty:
                page.p(f"No KPI of {sc} differs between the scenarios.")
                continue
            page.table(rows)
            if sub["kpi"].isin(plots.FOREST_KPIS).any() and _moves(sub[sub["kpi"].isin(plots.FOREST_KPIS)]).any():
                _figure(page, out, f"forest-{_slug(sc)}", plots.forest(diffs, scope=sc),
                        f"Paired differences, {sc}, ratios", written)
            money = sub[sub["kpi"].isin(plots.FOREST_MONEY_KPIS)]
            if len(money) and _moves(money).any():
                _figure(page, out, f"forest-money-{_slug(sc)}", plots.forest(diffs, kpis=plots.FOREST_MONEY_KPIS,
                                                                             scope=sc),
                        f"Paired differences, {sc}, dollars", written)
    return page, title


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-") or "scope"


def _moves(d: pd.DataFrame) -> pd.Series:
    """Rows whose paired difference is not exactly 0 in every replication (or is undefined)."""
    zero = (d["diff"] == 0) & (d["ci_lo"].fillna(0) == 0) & (d["ci_hi"].fillna(0) == 0)
    one_sided = d["reference_mean"].isna() != d["mean"].isna()  # defined in one scenario only (e.g. a pod removed)
    return (~zero & d["diff"].notna()) | one_sided


def _difference_rows(d: pd.DataFrame, level: int, kpis=None) -> pd.DataFrame:
    """Readable paired differences: only rows that move, distinguishable ones first."""
    if kpis is not None:
        d = d[d["kpi"].isin(kpis)]
    d = d[_moves(d)]
    dist = d["distinguishable"].astype(str) == "True"
    d = pd.concat([d[dist], d[~dist]])
    rows = []
    for r, real in zip(d.itertuples(), pd.concat([dist[dist], dist[~dist]]), strict=True):
        f = (lambda v, u=r.unit: fmt_change(v, u))
        if not np.isfinite(r.diff):
            which = r.reference if np.isfinite(r.reference_mean) else r.scenario
            rows.append({"scenario": r.scenario, "KPI": _label(r.kpi), "difference": "n/a",
                         f"{level} % interval": f"defined only in {which}", "distinguishable": "—"})
            continue
        rows.append({"scenario": r.scenario, "KPI": _label(r.kpi), "difference": f(r.diff),
                     f"{level} % interval": f"{f(r.ci_lo)} – {f(r.ci_hi)}",
                     "distinguishable": "yes" if real else "no"})
    return pd.DataFrame(rows)


def _plan_page(folder: Path, out: Path, written: list[Path]) -> tuple[_Page, str]:
    manifest = read_manifest(folder)
    table = _read(folder, "plan")
    target = parse_target(manifest["target"])
    answer = manifest.get("answer")
    title = f"cssim report — plan for {manifest.get('scenario_name', 'scenario')}: {manifest['target']}"
    page = _Page()
    page.h(1, title)
    verdict = (f"Smallest {manifest['over']} meeting {manifest['target']}: {answer}" if answer is not None
               else f"No value of {manifest['over']} in {manifest.get('range')} meets {manifest['target']}.")
    page.p(verdict)
    page.p(f"Confidence {manifest.get('confidence')} ({manifest.get('criterion')} criterion), "
           f"{manifest.get('replications')} replications per value, seed {manifest.get('seed')}. "
           f"{_versions(manifest)}.")
    if manifest.get("no_response"):
        page.p("This lever does not move this KPI over the range searched: the paired change between the two ends "
               "has a 90 % interval that includes 0 (see below).")
    ax = plots.headcount_frontier(table, kpi=target.kpi, target=target.value, chosen=answer, scope=target.scope,
                                  xlabel=manifest["over"].split(".")[-1].replace("_", " ").capitalize()
                                  if not manifest["over"].endswith("headcount")
                                  else f"CSM headcount ({manifest['over']})")
    _figure(page, out, "frontier", ax, "KPI and CSM cost by value", written)
    if "kpi_at_confidence" in table.columns:
        unit = KPI_UNITS[target.kpi]
        pct = int(round(100 * float(manifest.get("confidence", 0.8))))
        label = manifest.get("scope_label", target.kpi)
        at = f"{label} met in {pct} % of replications" if manifest.get("criterion") == "share" else \
            f"{label}, one-sided {pct} % bound on the mean"
        marg = lambda v: "" if not np.isfinite(v) else ("+" if v >= 0 else "-") + fmt_value(abs(v), "currency")  # noqa: E731
        rows = [{manifest["over"]: int(r.value), at: fmt_value(r.kpi_at_confidence, unit),
                 "mean [90 % CI of the mean]": f"{fmt_value(r.mean, unit)} [{fmt_value(r.ci_lo, unit)}, {fmt_value(r.ci_hi, unit)}]",
                 "share of replications meeting it": f"{r.share_met * 100:.0f} %", "meets": "yes" if r.meets else "no",
                 "CSM cost per year (all pods)": fmt_value(r.csm_cost_per_year, "currency"),
                 "Δ retained ARR per year per +1 [90 % CI]": "" if not np.isfinite(r.marginal_arr_per_csm) else
                 f"{marg(r.marginal_arr_per_csm)} [{marg(r.marginal_arr_per_csm_lo)}, "
                 f"{marg(r.marginal_arr_per_csm_hi)}]"}
                for r in table.itertuples()]
        page.h(2, "What each value gives")
        page.table(pd.DataFrame(rows))
    summary = folder / "summary.txt"
    if summary.is_file():
        page.h(2, "Evaluated values")
        page.pre(summary.read_text().rstrip())
    return page, title


def _sweep_page(folder: Path, out: Path, written: list[Path]) -> tuple[_Page, str]:
    manifest = read_manifest(folder)
    table = _read(folder, "sweep")
    points = _read(folder, "points")
    fields = [c for c in points.columns if c != "point"]
    title = f"cssim report — sweep of {manifest.get('scenario_name', 'scenario')}"
    page = _Page()
    page.h(1, title)
    page.p(f"{len(points)} points × {manifest.get('replications')} replications, seed {manifest.get('seed')} (common "
           f"random numbers). {_versions(manifest)}.")
    t = table[table["scope"] == "all"]
    rows = []
    for p in points.to_dict("records"):
        sub = t[t["point"] == p["point"]].set_index("kpi")
        row = {f: p[f] for f in fields}
        for k in ("grr", "nrr", "ending_arr", "csm_cost"):
            if k in sub.index:
                row[_label(k)] = fmt_value(sub.loc[k, "mean"], sub.loc[k, "unit"])
        rows.append(row)
    page.table(pd.DataFrame(rows).rename(columns={f: f.split(".")[-1] if f.count(".") else f for f in fields}))
    if len(fields) == 1 and pd.api.types.is_numeric_dtype(points[fields[0]]):
        years = float(manifest.get("scenario", {}).get("horizon_months", 12)) / 12.0
        grr = t[t["kpi"] == "grr"][["point", "mean", "ci_lo", "ci_hi"]].merge(points, on="point")
        cost = t[t["kpi"] == "csm_cost"][["point", "mean"]].rename(columns={"mean": "cost"})
        frame = grr.merge(cost, on="point").rename(columns={fields[0]: "value"})
        frame["cost"] = frame["cost"] / years
        frame = frame[["value", "mean", "ci_lo", "ci_hi", "cost"]]
        ax = plots.headcount_frontier(frame, kpi="grr", xlabel=fields[0].split(".")[-1].replace("_", " ").capitalize()
                                      if not fields[0].endswith("headcount") else f"CSM headcount ({fields[0]})")
        _figure(page, out, "frontier", ax, "GRR and CSM cost across the sweep", written)
    return page, title


def _sensitivity_page(folder: Path, out: Path, written: list[Path]) -> tuple[_Page, str]:
    manifest = read_manifest(folder)
    table = _read(folder, "sensitivity")
    table["field"] = table["field"].fillna("")
    points = _read(folder, "points")
    title = f"cssim report — what drives the forecast of {manifest.get('scenario_name', 'scenario')}"
    page = _Page()
    page.h(1, title)
    counts = points["method"].value_counts()
    page.p(f"{len(manifest.get('problem', {}).get('names', []))} assumptions varied; {len(points)} points "
           f"({', '.join(f'{m}: {counts[m]}' for m in ('oat', 'morris', 'sobol') if m in counts)}) × "
           f"{manifest.get('replications')} replications, seed {manifest.get('seed')} (common random numbers: every "
           f"point sees the same customers). Intervals are 90 %. {_versions(manifest)}.")
    page.p("Sobol' ST: share of the output's variance due to the assumption, interactions included (an interval "
           "reaching 0: not shown to matter). Morris mu*: mean absolute effect of moving the assumption across part of "
           "its range. Swing: the output with the assumption at its high minus at its low value, others at base.")
    outputs = list(dict.fromkeys(zip(table["kpi"], table["scope"], strict=True)))
    for kpi, scope in outputs:
        sub = table[(table["kpi"] == kpi) & (table["scope"] == scope)]
        unit = KPI_UNITS.get(kpi, "ratio")
        name = _label(kpi) + ("" if scope == "all" else f" ({scope})")
        page.h(2, name)
        rows = []
        for f in [f for f in dict.fromkeys(sub["field"]) if f]:
            row = {"assumption": f}
            for method, index, head in (("sobol", "ST", "Sobol' ST"), ("morris", "mu_star", "Morris mu*"),
                                        ("oat", "swing", "swing high − low")):
                r = sub[(sub["method"] == method) & (sub["index"] == index) & (sub["field"] == f)]
                if not len(r):
                    continue
                r = r.iloc[0]
                if method == "sobol":
                    row[head] = f"{r['estimate']:.2f} [{r['ci_lo']:.2f}, {r['ci_hi']:.2f}]"
                    row["_key"] = r["estimate"]
                else:
                    show = (lambda v, u=unit: fmt_change(v, u)) if method == "oat" else (lambda v, u=unit: fmt_value(v, u))
                    row[head] = f"{show(r['estimate'])} [{show(r['ci_lo'])}, {show(r['ci_hi'])}]"
                    row.setdefault("_key", abs(r["estimate"]))
            rows.append(row)
        frame = pd.DataFrame(rows).sort_values("_key", ascending=False, kind="stable").drop(columns="_key")
        page.table(frame)
        sobol = sub[sub["method"] == "sobol"]["estimate"]
        if ((sobol > 1.05) | (sobol < -0.05)).any():
            n = manifest.get("scenario", {}).get("sensitivity", {}).get("sobol_n", "?")
            page.p(f"Sobol' estimates outside [0, 1]: {n} base points are too few for stable indices; the ranking "
                   "stands where the intervals separate, the values do not — raise sobol_n.")
        slug = _slug(f"{kpi}-{scope}")
        if (sub["method"] == "oat").any():
            _figure(page, out, f"tornado-{slug}", plots.tornado(table, kpi=kpi, scope=scope),
                    f"Tornado chart, {name}", written)
        if (sub["method"] == "sobol").any() and sub[sub["method"] == "sobol"]["estimate"].notna().all():
            _figure(page, out, f"sobol-{slug}", plots.sobol_bars(table, kpi=kpi, scope=scope),
                    f"Sobol' indices, {name}", written)
    return page, title


PAGES = {"run": _run_page, "comparison": _comparison_page, "plan": _plan_page, "sweep": _sweep_page,
         "sensitivity": _sensitivity_page}


def write_report(folder: str | Path, out: str | Path | None = None) -> tuple[Path, list[Path]]:
    """Write the one-page report of a results folder (Markdown, or HTML if ``out`` ends in .html).

    Returns the report path and the figure files written beside it.
    """
    folder = Path(folder)
    kind = folder_kind(folder)
    out = Path(out) if out is not None else folder / "report.md"
    if out.suffix.lower() not in (".md", ".html", ".htm"):
        raise CssimError(f"--out {out}: expected a .md or .html file")
    out.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    page, title = PAGES[kind](folder, out, written)
    text = page.html(title) if out.suffix.lower() in (".html", ".htm") else page.markdown()
    out.write_text(text)
    add_to_manifest(folder, [out, *written])
    return out, written
