"""Fit a whole customer history and write ``curves.json``, the file scenarios reference.

``fit_history(path)`` fits every segment × transition (:mod:`.univariate`),
the touch-model hazard ratios and the renewal model (:mod:`.covariates`), and
returns a :class:`HistoryFitResults`; ``write_history_fit`` writes the output
folder atomically: ``curves.json``, ``fit_report.md``, ``km.csv`` and the
manifest. A scenario uses a curve with::

    lifecycle:
      churn: {family: fitted, file: fit/curves.json, key: smb/churn}

``curves.json`` (``format: cssim-curves/1``) holds, per ``segment/transition``
key, the chosen cssim curve spec (days), the parameter estimates and their
covariance on lifelines' estimation scale (``variance_matrix_``, so that
estimation uncertainty can be drawn later), every candidate's scores, and the
provenance of the data (file, sha256, extract date, n and events). With
``bootstrap=N`` each curve's ``parameters`` and each renewal model's
``parameters`` also hold ``bootstrap`` (N refits to resampled customers, on the
same names and scale; failed refits are left out and counted in
``bootstrap_failed``; see :mod:`.bootstrap`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .._version import __version__
from ..core.contract import Results, Summary
from ..core.errors import DataError
from ..core.output import build_manifest
from ..core.progress import progress_bar_class
from ..model.curvefile import FORMAT, load_curves, read_curve
from .bootstrap import bootstrap_renewal, check_count, resample_customers
from .cohorts import is_cohort_table
from .covariates import fit_renewal_model, renewal_designs, touch_hazard_ratios
from .history import History, read_history
from .snapshot import read_snapshot
from .univariate import FAMILY_ORDER, TRANSITIONS, UnivariateFit, durations

__all__ = ["FORMAT", "HistoryFitResults", "fit_history", "write_history_fit", "load_curves", "read_curve", "read_fit_source", "fit_lines",
           "looks_like_cohort_table"]



@dataclass(repr=False)
class HistoryFitResults(Results):
    """Every fitted curve of a history, the touch hazard ratios and the renewal model."""

    KIND = "history_fit"

    history: History
    fits: dict[str, UnivariateFit] = field(default_factory=dict)  # key "segment/transition"
    skipped: dict[str, str] = field(default_factory=dict)
    touch_effects: pd.DataFrame | None = None
    renewal: dict = field(default_factory=dict)

    def curve_spec(self, key: str) -> dict:
        return self.fits[key].curve_spec()

    def km_table(self) -> pd.DataFrame:
        return pd.concat([f.km_table() for f in self.fits.values()], ignore_index=True)

    def candidates(self) -> pd.DataFrame:
        rows = []
        for key, f in self.fits.items():
            for _, r in f.candidates_.iterrows():
                rows.append({"key": key, "family": r["family"], "AIC": r.get("AIC"), "BIC": r.get("BIC"),
                             "log_likelihood": r.get("log_likelihood"), "simulatable": r["simulatable"],
                             "at_bound": isinstance(r.get("at_bound"), list) and bool(r["at_bound"]),
                             "chosen": r["chosen"]})
        return pd.DataFrame(rows)

    @property
    def level(self) -> float:
        """Level of the parameter intervals (lifelines' ``1 - alpha``)."""
        return 1.0 - next(iter(self.fits.values())).alpha if self.fits else 0.95

    @property
    def manifest(self) -> dict:
        return build_manifest(self.KIND, source=self.history.source, level=self.level)

    def summary(self) -> Summary:
        """One row per key × candidate family: log-likelihood, AIC, BIC and whether it was chosen."""
        return Summary(self.candidates())

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"km": self.km_table(), "candidates": self.candidates()}

    def files(self) -> dict[str, str]:
        return {"curves.json": json.dumps(self.to_dict(), indent=2, default=float) + "\n", "fit_report.md": self.report()}

    def plot_vs_km(self, key: str, ax=None, families=None):
        """The chosen curve of ``key`` (``segment/transition``) against its Kaplan–Meier band; returns the Axes."""
        if key not in self.fits:
            raise KeyError(f"no fit {key!r}; fitted: {', '.join(self.fits)}")
        return self.fits[key].plot_vs_km(ax=ax, families=families)

    def to_dict(self) -> dict:
        h = self.history
        return {
            "format": FORMAT,
            "provenance": {
                "source": Path(h.source).name,
                "sha256": h.sha256,
                "extract_date": h.extract_date.date().isoformat(),
                "rows": int(len(h.frame)),
                "dropped_rows": int(h.dropped),
                "cssim": __version__,
                "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
                "time_unit": "days",
            },
            "curves": {key: f.to_dict() for key, f in self.fits.items()},
            "skipped": self.skipped,
            "touch_effects": [] if self.touch_effects is None else self.touch_effects.to_dict(orient="records"),
            "renewal": self.renewal,
        }

    def report(self) -> str:
        h = self.history
        lines = [
            f"# Curves fitted from {Path(h.source).name}",
            "",
            f"{len(h.frame)} customer episodes, extract date {h.extract_date.date()}"
            + (f", {h.dropped} bad rows dropped" if h.dropped else "")
            + f". sha256 `{h.sha256[:16]}…`.",
            "",
            "Durations in days; right-censored at churn or the extract date, left-truncated at `observed_from`. "
            "The chosen family has the lowest AIC among the families cssim can simulate, leaving out fits with a "
            "parameter pinned at its bound (BIC uses the number of events; the spline is a flexibility benchmark).",
            "",
        ]
        for key, f in self.fits.items():
            e = f.edge_
            lines += [f"## {key}", "", f"n = {f.n_}, events = {f.events_}, left-truncated = {f.truncated_}; "
                      f"chosen: **{f.best_}** → `{_fmt_spec(f.curve_spec())}`"
                      + (f"; {_boot_note(f._bootstrap_block())}" if f._bootstrap_block() else ""), "",
                      f"Data edge: {e['edge']:.0f} days (the last duration with at least {e['min_at_risk']} at risk; "
                      f"longest observed {e['observed_max']:.0f}). Weights ({f.weighting}) are what a model-averaged "
                      "forecast draws each family with.", "",
                      "| family | log-lik | AIC | ΔAIC | weight | BIC | parameters (95 % CI) |",
                      "|---|---:|---:|---:|---:|---:|---|"]
            for _, r in f.candidates_.iterrows():
                if not r["converged"]:
                    lines.append(f"| {r['family']} | – | – | – | – | – | failed: {r['note']} |")
                    continue
                ps = ", ".join(f"{n} {v['estimate']:.4g} ({v['lower']:.4g}–{v['upper']:.4g})" for n, v in r["params"].items())
                mark = " **✓**" if r["chosen"] else (" (report only)" if not r["simulatable"] else "")
                note = f" — {r['note']}, not chosen" if r["note"] else ""
                weight = f"{r['weight']:.1%}" if r["simulatable"] and r["weight"] > 0 else "–"
                lines.append(f"| {r['family']}{mark} | {r['log_likelihood']:.2f} | {r['AIC']:.2f} | "
                             f"{r['delta_AIC']:.2f} | {weight} | {r['BIC']:.2f} | {ps}{note} |")
            lines.append("")
            lines += [f"**Note:** {n.split(': ', 1)[1]}." for n in f.notes()] + ([""] if f.notes() else [])
        if self.skipped:
            lines += ["## Not fitted", ""] + [f"- {k}: {v}" for k, v in self.skipped.items()] + [""]
        lines += ["## Touch-model hazard ratios (Cox PH, stratified by segment, with log ARR)", ""]
        te = self.touch_effects
        if te is None or te.empty:
            lines += ["No transition has two touch models within a segment; nothing to estimate.", ""]
        else:
            lines += ["| transition | covariate | vs | HR | 95 % CI | p | events |", "|---|---|---|---:|---|---:|---:|"]
            for _, r in te.iterrows():
                lines.append(f"| {r['transition']} | {r['covariate']} | {r['reference'] or '–'} | {r['hr']:.3f} | "
                             f"{r['lower']:.3f}–{r['upper']:.3f} | {r['p']:.3g} | {r['events']} |")
            lines.append("")
        lines += ["## Renewal model (binomial GLM per segment)", ""]
        if not self.renewal:
            lines += ["No renewals recorded (`renewals_due`).", ""]
        for seg, r in self.renewal.items():
            coefs = ", ".join(f"{n} {v['estimate']:+.3f} ({v['lower']:+.3f}…{v['upper']:+.3f})" for n, v in r["coefficients"].items())
            mapped = ", ".join(f"{k}: {v:.3f}" for k, v in r["renewal"].items())
            boot = _boot_note(r.get("parameters", {}))
            lines += [f"- **{seg}** ({r['renewals_renewed']}/{r['renewals_due']} renewed; from {r.get('source', '?')}; "
                      f"reference: {r['reference']}): {coefs}. Scenario `renewal`: {mapped}."
                      + (f" {boot.capitalize()}." if boot else "")]
        if any(r.get("source") != "renewal_log" for r in self.renewal.values()):
            lines += ["", "Without a `renewal_log` the renewal mapping is approximate: `ever at-risk` and "
                      "`not activated` describe the customer, not its state at each renewal "
                      "(see cssim.fitting.covariates).", ""]
        else:
            lines += ["", "Fitted per renewal on the state at that renewal (the engine's rule); "
                      "`touch_renewal_odds` is the renewal-odds effect of the renewal touches.", ""]
        return "\n".join(lines)


def _boot_note(parameters: dict) -> str:
    """``bootstrap 198 sets (2 failed)`` for a parameters block that has bootstrap sets."""
    if "bootstrap" not in parameters:
        return ""
    failed = parameters.get("bootstrap_failed", 0)
    return f"bootstrap {len(parameters['bootstrap'])} sets" + (f" ({failed} failed)" if failed else "")


def _fmt_spec(spec: dict) -> str:
    return "{" + ", ".join(
        f"{k}: {v}" if isinstance(v, str) else f"{k}: {[round(x, 6) for x in v] if isinstance(v, list) else round(v, 4)}"
        for k, v in spec.items()
    ) + "}"


def fit_history(
    source, segments=None, transitions=TRANSITIONS, drop_bad_rows: bool = False, extract_date=None, alpha: float = 0.05,
    bootstrap: int = 0, seed: int = 0, progress: bool = False, families=None, weighting: str | None = None,
) -> HistoryFitResults:
    """Fit every segment × transition of a customer history (path or :class:`History`).

    ``families`` limits the candidate curve families (default: all of
    :data:`~cssim.fitting.univariate.FAMILY_ORDER`); ``weighting`` is how they are
    weighted for model averaging (one of :data:`~cssim.fitting.univariate.WEIGHTINGS`:
    ``akaike``, ``stacking`` or ``pseudo_bma``; None: the default, see
    :class:`~cssim.fitting.univariate.UnivariateFit`).

    ``bootstrap`` > 0 also refits each chosen curve and each renewal model to
    that many resamples of the segment's customers (the same resamples for all
    of a segment's fits, drawn from ``seed``); ``progress`` shows a bar while
    they run.
    """
    check_count(bootstrap, seed)

    h = source if isinstance(source, History) else read_history(
        source, segments=segments, drop_bad_rows=drop_bad_rows, extract_date=extract_date
    )
    res = HistoryFitResults(h)
    for seg in h.segments:
        for tr in transitions:
            key = f"{seg}/{tr}"
            d = durations(h, tr, seg)
            try:
                res.fits[key] = UnivariateFit(d, seg, tr, alpha, families=tuple(families or FAMILY_ORDER),
                                              weighting=weighting).fit()
            except DataError as exc:
                res.skipped[key] = str(exc).split(": ", 1)[-1]
    if not res.fits:
        first = next(iter(res.skipped.items()), ("", "no segments"))
        raise DataError(f"{h.source}: no curve could be fitted (e.g. {first[0]}: {first[1]})")
    res.touch_effects = touch_hazard_ratios(h, transitions, alpha=alpha)
    res.renewal = fit_renewal_model(h, alpha=alpha) if "renewals_due" in h.frame else {}
    if bootstrap:
        _bootstrap(res, bootstrap, seed, progress)
    return res


def _bootstrap(res: HistoryFitResults, n: int, seed: int, progress: bool) -> None:
    """Refit every chosen curve and renewal model to ``n`` resamples of each segment's customers."""
    f = res.history.frame
    resamples = {seg: resample_customers(f.loc[f["segment"] == seg, "customer_id"], n, seed, seg)
                 for seg in res.history.segments}
    total = n * (len(res.fits) + len(res.renewal))
    bar = progress_bar_class(progress)(total=total, disable=not progress, desc="bootstrap", unit="refit",
                                       leave=False, delay=2)
    with bar:
        for fit in res.fits.values():
            bar.set_postfix_str(f"{fit.segment}/{fit.transition}", refresh=False)
            fit.bootstrap(n, seed, resamples=resamples[fit.segment], progress=bar)
        if res.renewal:
            bar.set_postfix_str("renewal", refresh=False)
            bootstrap_renewal(renewal_designs(res.history, res.renewal), res.renewal, resamples, progress=bar)


def write_history_fit(results: HistoryFitResults, out_dir, force: bool = False, format: str = "csv") -> Path:
    """Write ``curves.json``, ``fit_report.md``, ``km.csv`` and the manifest atomically into ``out_dir``."""
    return results.to_folder(out_dir, force=force, format=format)


def looks_like_cohort_table(path) -> bool:
    """True if the file's columns are a cohort table's (``active`` and ``period`` or an alias), not a history."""
    p = Path(path)
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            cols = pq.read_schema(p).names
        else:
            cols = pd.read_csv(p, nrows=0, skipinitialspace=True).columns
    except Exception:  # unreadable: let the history reader give its one-line error
        return False
    names = {str(c).strip().lower() for c in cols}
    return is_cohort_table(cols) and "customer_id" not in names


def read_fit_source(path, snapshot: dict | None = None, segments=None, drop_bad_rows: bool = False,
                    extract_date=None, date_format: str | None = None) -> tuple[History, tuple[str, ...]]:
    """The history ``cssim fit`` fits and the transitions to fit: a customer history, or with ``snapshot``
    (``duration``, ``event``, optional ``segment`` and ``duration_unit``) a snapshot table
    (:mod:`cssim.fitting.snapshot`) whose ``churn`` curves are fitted. ``segments`` are the only ones allowed."""
    if snapshot is None:
        h = read_history(path, segments=segments, drop_bad_rows=drop_bad_rows, extract_date=extract_date,
                         date_format=date_format)
        return h, TRANSITIONS
    h = read_snapshot(path, extract_date=extract_date, **snapshot)
    if segments is not None:
        unknown = sorted(set(h.segments) - set(segments))
        if unknown:
            raise DataError(f"{path}: segment {unknown[0]!r} is not in the scenario (allowed: {', '.join(segments)})")
    return h, ("churn",)


def fit_lines(results: HistoryFitResults, out_dir) -> list[str]:
    """What ``cssim fit`` says about a history fit: each curve, its weights and data edge, the renewal and touch
    models, the notes, and how a scenario uses the file."""
    lines = []
    for key, f in results.fits.items():
        boot = _boot_note(f._bootstrap_block())
        lines.append(f"{key}: {f.best_} {_fmt_spec(f.curve_spec())}  (n {f.n_}, events {f.events_}"
                     + (f"; {boot})" if boot else ")"))
        weights = [(fam, w) for fam, w in f.weights_.sort_values(ascending=False).items() if w >= 0.01]
        if len(weights) > 1:
            lines.append(f"  averaged by default ({f.weighting} weights): "
                         + ", ".join(f"{fam} {w:.0%}" for fam, w in weights))
        e = f.edge_
        lines.append(f"  data edge: {e['edge']:.0f} days (at least {e['min_at_risk']} at risk up to there; longest "
                     f"observed {e['observed_max']:.0f}); beyond it a rising hazard is held at its level (tail: auto)")
    for seg, r in results.renewal.items():
        boot = _boot_note(r.get("parameters", {}))
        mapped = ", ".join(f"{k} {v:.3g}" for k, v in r["renewal"].items())
        lines.append(f"renewal {seg}: {mapped} ({r['renewals_renewed']}/{r['renewals_due']} renewed"
                     + (f"; {boot})" if boot else ")"))
    te = results.touch_effects
    if te is not None:
        for _, r in te[te["touch_model"].notna()].iterrows():
            lines.append(f"touch {r['touch_model']} vs {r['reference']} on {r['transition']}: HR {r['hr']:.2f} "
                         f"({r['lower']:.2f}–{r['upper']:.2f})")
    for f in results.fits.values():
        lines.extend(f"note: {note}" for note in f.notes())
    use = f"use in a scenario: lifecycle.churn: {{family: fitted, file: {out_dir}/curves.json, key: SEGMENT/churn}}"
    if results.renewal:  # only suggest what the file holds
        keys = ", ".join(sorted(results.renewal))
        use += f"; renewal: {{fitted: {{file: {out_dir}/curves.json, key: SEGMENT}}}} (SEGMENT: {keys})"
    else:
        use += "; no renewal model (the history records no renewals): set each segment's renewal block by hand"
    lines.append(use + " (docs/fitting.md)")
    return lines
