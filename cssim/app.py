"""The planning page: a few widgets over :mod:`cssim.analysis.whatif`, served on this machine only.

Built with panel (on the Bokeh server) rather than ipywidgets under Voilà: ``pn.serve``
runs in the ``cssim`` process itself — no Jupyter server, no kernel per visitor — binds to
``127.0.0.1``, serves its JavaScript from the package (nothing is fetched from elsewhere), and
runs a callback in a thread while the page stays responsive. All the logic (building a
variant, running it, the tables, the frontier) is in :mod:`cssim.analysis.whatif`; this module only
turns control values into :class:`cssim.analysis.whatif.Controls` and results into panes.

Start it with ``cssim app [SCENARIO]`` or ``make app``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import panel as pn

from . import plots
from .analysis.whatif import LEVEL, Planner, WhatIf, run_error
from .core.errors import CssimError, PlanError
from .core.limits import MAX_HEADCOUNT
from .model.scenario import Scenario
from .shipped import scenario_names

__all__ = ["HOST", "PlanningPage", "free_port", "serve"]

#: The only address the page listens on: the page runs on this machine, for this machine.
HOST = "127.0.0.1"
#: Largest replications the page offers (the CLI and the Python API take more).
MAX_PAGE_REPLICATIONS = 1000
#: Changes closer together than this are answered once, for the last of them.
DEBOUNCE_SECONDS = 0.15

TABLE_CSS = """
table.cssim-kpis { border-collapse: collapse; font-size: 14px; width: 100%; }
table.cssim-kpis th, table.cssim-kpis td { padding: 5px 10px; border-bottom: 1px solid #ddd; text-align: left; }
table.cssim-kpis th { background: #f3f5f7; font-weight: 600; }
table.cssim-kpis td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.cssim-kpis td.real { color: #2a9d5c; font-weight: 600; }
table.cssim-kpis td.noise { color: #8a6d00; }
table.cssim-kpis td.same { color: #777; }
"""


class Planners:
    """One :class:`Planner` per scenario, shared by every browser session, so their caches are shared too."""

    def __init__(self, replications: int | None, jobs: int):
        self.replications, self.jobs = replications, jobs
        self._planners: dict[str, Planner] = {}
        self._lock = threading.Lock()
        #: One simulation at a time: the worker processes are shared, and a second run would only slow the first.
        self.run_lock = threading.Lock()

    def get(self, scenario: str | Path | Scenario) -> Planner:
        key = scenario.name if isinstance(scenario, Scenario) else str(scenario)
        with self._lock:
            if key not in self._planners:
                self._planners[key] = Planner(scenario, replications=self.replications, jobs=self.jobs)
            return self._planners[key]

    def what_if(self, planner: Planner, controls) -> WhatIf:
        with self.run_lock:
            return planner.what_if(controls)


class PlanningPage:
    """The widgets and panes of one browser session."""

    def __init__(self, planners: Planners, scenario: str, choices: list[str]):
        self.planners = planners
        self.planner = planners.get(scenario)
        self._generation = 0
        labels = {(Path(c).name if c.endswith((".yaml", ".yml")) else c): c for c in choices}
        self.scenario = pn.widgets.Select(label="Scenario", options=labels, value=scenario, width=280,
                                          css_classes=["ctl-scenario"])
        self.scenario.param.watch(self._scenario_changed, "value")
        self.reset = pn.widgets.Button(label="Back to the start", width=280)
        self.reset.on_click(self._reset)
        self.controls = pn.Column(width=300)
        self.status = pn.pane.Markdown("", css_classes=["status"], sizing_mode="stretch_width")
        self.table = pn.pane.HTML("", stylesheets=[TABLE_CSS], sizing_mode="stretch_width", css_classes=["kpis"])
        self.note = pn.pane.Markdown("", sizing_mode="stretch_width", css_classes=["note"])
        self.fan = pn.pane.Matplotlib(None, dpi=110, tight=True, format="png", sizing_mode="stretch_width")
        self.frontier = pn.pane.Matplotlib(None, dpi=110, tight=True, format="png", sizing_mode="stretch_width")
        self._build_controls()

    # ------------------------------------------------------------------ controls

    def _build_controls(self) -> None:
        p, start = self.planner, self.planner.start
        self.headcount = {
            pod: pn.widgets.IntInput(label=f"{pod} CSMs", value=n, start=0, end=MAX_HEADCOUNT, width=280,
                                     css_classes=[f"ctl-headcount-{pod}"])
            for pod, n in start.headcount.items()
        }
        self.touch = {
            seg: pn.widgets.Select(label=f"{seg} touch model", options=p.touch_models, value=m, width=280,
                                   css_classes=[f"ctl-touch-{seg}"])
            for seg, m in start.touch_model.items()
        }
        self.routes = [
            pn.widgets.Select(label=f"route: {label}", options=p.touch_models, value=m, width=280,
                              css_classes=[f"ctl-route-{i}"])
            for i, (label, m) in enumerate(zip(p.routes, start.routes, strict=True))
        ]
        self.replications = pn.widgets.IntInput(label="Replications (more: narrower intervals, slower)",
                                                value=start.replications, start=2, end=MAX_PAGE_REPLICATIONS,
                                                width=280, css_classes=["ctl-replications"])
        widgets = [*self.headcount.values(), *self.touch.values(), *self.routes, self.replications]
        for w in widgets:
            w.param.watch(self._changed, "value")
        parts = [pn.pane.Markdown("#### Headcount per pod"), *self.headcount.values(),
                 pn.pane.Markdown("#### Touch model per segment"), *self.touch.values()]
        if self.routes:
            parts += [pn.pane.Markdown("#### ARR-band routing (first match wins)"), *self.routes]
        parts += [pn.pane.Markdown("#### Precision"), self.replications]
        self.controls.objects = parts

    def current(self):
        """The controls' values as :class:`cssim.analysis.whatif.Controls` (a bad value raises a one-line PlanError)."""
        return self.planner.controls(
            headcount={pod: w.value for pod, w in self.headcount.items()},
            touch_model={seg: w.value for seg, w in self.touch.items()},
            routes=[w.value for w in self.routes],
            replications=self.replications.value,
        )

    # ------------------------------------------------------------------ callbacks

    async def _scenario_changed(self, event) -> None:
        try:
            self.planner = await asyncio.to_thread(self.planners.get, event.new)
        except CssimError as exc:
            self._error(f"{event.new}: {run_error(exc)}")
            return
        self._build_controls()
        await self._changed()

    async def _reset(self, event=None) -> None:
        start = self.planner.start
        for pod, w in self.headcount.items():
            w.value = start.headcount[pod]
        for seg, w in self.touch.items():
            w.value = start.touch_model[seg]
        for w, m in zip(self.routes, start.routes, strict=True):
            w.value = m
        await self._changed()

    async def _changed(self, event=None) -> None:
        """Run the controls' setting off the server's event loop; show it unless a newer one was asked for."""
        self._generation += 1
        generation = self._generation
        await asyncio.sleep(DEBOUNCE_SECONDS)  # several controls set at once (Back to the start) make one run
        if generation != self._generation:
            return
        planner = self.planner
        try:
            controls = self.current()
            cached = planner.cached(controls)  # also validates the variant
        except CssimError as exc:
            self._error(run_error(exc))
            return
        if not cached:
            self.status.object = f"**Running {controls.replications} replications…**"
            self.table.loading = True
        try:
            parts = await asyncio.to_thread(lambda: self.render(self.planners.what_if(planner, controls)))
        except CssimError as exc:
            if generation == self._generation:
                self._error(run_error(exc))
            return
        finally:
            if generation == self._generation:
                self.table.loading = False
        if generation == self._generation:
            self.show(parts)

    # ------------------------------------------------------------------ output

    def _error(self, message: str) -> None:
        shown = " The table below is the last setting that ran." if self.table.object else ""
        self.status.object = f"**Not run:** {message.rstrip('.')}.{shown}"
        self.table.loading = False

    def render(self, w: WhatIf) -> dict:
        """Everything a what-if puts on the page (text, table, figures), built off the event loop."""
        pct = round(LEVEL * 100)
        changed = "; ".join(w.changes) if w.changes else "none (this is the starting scenario)"
        timing = "from the cache" if w.cached else f"in {w.seconds:.1f} s"
        notes = [w.noise_note()]
        if w.changes:
            notes.append(w.tradeoff_line())
        notes += [f"⚠ {line}" for line in w.warnings]
        notes.append(f"*{pct}% interval*: where the outcome may land across replications. *Difference*: paired on "
                     "the same simulated customers (common random numbers), with the interval of its mean.")
        runs = {"start": w.start} if not w.changes else {"start": w.start, "what-if": w.results}
        return {
            "status": f"**{w.scenario.name}** — changes: {changed}. {w.results.n_replications} replications, seed "
                      f"{w.scenario.seed}, {w.scenario.horizon_months} months; answered {timing}.",
            "note": "\n\n".join(notes),
            "fan": plots.fan_chart(runs, "arr").figure,
            "frontier": plots.cost_frontier(self.planner.frontier(w.controls.replications),
                                            current="; ".join(w.changes) or "start").figure,
            "table": w.table_html(),
        }

    def show(self, parts: dict) -> None:
        """Put a rendered what-if on the page in one batch; the KPI table last (it marks the update done)."""
        with pn.io.hold():
            self.status.object = parts["status"]
            self.note.object = parts["note"]
            self.fan.object = parts["fan"]
            self.frontier.object = parts["frontier"]
            self.table.object = parts["table"]

    def view(self) -> pn.viewable.Viewable:
        sidebar = pn.Column(self.scenario, self.reset, self.controls, width=310)
        main = pn.Column(
            pn.pane.Markdown("## What if? Headcount and touch models against retention, revenue and cost"),
            self.status, self.table, self.note,
            pn.Row(self.fan, self.frontier, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
        pn.state.onload(self._changed)
        return pn.Row(sidebar, main, sizing_mode="stretch_width")


def free_port() -> int:
    """A TCP port free on :data:`HOST` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def serve(scenario: str = "baseline", port: int = 0, replications: int | None = None, jobs: int = -1,
          show: bool = False, announce=print):
    """Serve the planning page on ``http://127.0.0.1:PORT/`` until interrupted.

    The starting scenario is simulated before the page opens (which also starts the worker
    processes), so the first view is instant. A bad scenario raises a one-line
    :class:`~cssim.errors.CssimError` before anything listens.
    """
    planners = Planners(replications, jobs)
    planner = planners.get(scenario)
    announce(f"cssim: simulating {planner.name} ({planner.start.replications} replications) for the planning page…")
    planners.what_if(planner, planner.start)
    choices = list(dict.fromkeys([scenario, *scenario_names()]))
    port = port or free_port()
    try:
        server = pn.serve(
            lambda: PlanningPage(planners, scenario, choices).view(),
            port=port, address=HOST, websocket_origin=[f"{HOST}:{port}", f"localhost:{port}"],
            show=False, start=False, title=f"cssim — planning page ({planner.name})", verbose=False,
        )
    except OSError as exc:
        raise PlanError(f"port {port}: cannot listen on {HOST} ({exc.strerror or exc})") from None
    url = f"http://{HOST}:{port}/"
    announce(f"cssim: planning page for {planner.name} at {url} (this machine only; Ctrl-C to stop)")
    if show:
        import webbrowser

        server.io_loop.add_callback(webbrowser.open, url)
    server.start()
    server.io_loop.start()
