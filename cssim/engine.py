"""The SimPy engine: each customer is a process, each CSM pod a capacity.

One replication of a scenario: customers arrive, move through signing →
onboarding → growth → maturity, fall at-risk and recover, renew or churn, and
may come back. Their time-to-event draws come from the scenario's survival
curves; delivered touches multiply the hazards (proportional hazards), and a
touch that waits past its deadline for a busy CSM has no effect. The engine
does no I/O and no plotting: it returns a :class:`~cssim.ledger.Ledger` of
monthly aggregates (and, on request, flat per-customer records).

Assumptions
-----------
- Each customer process sleeps until the earliest of its clocks (stage,
  health, churn, renewal, task cadences); a delivered touch recomputes the
  affected hazard clocks exactly through H and H⁻¹ and wakes the process if
  an event moved earlier.
- The hazard budget of every transition is one unit-exponential draw per
  customer and episode, so policies differ only through the multipliers.
- Initial customers have uniform tenure on ``[0, initial_tenure_months]``;
  their stage is sampled from the same curves and their clocks are
  conditioned on the time already spent. A segment's ``book`` lists them
  instead (ARR, touch model, tenure, stage, at-risk, days in stage / at risk):
  see ``_book_stage`` and ``_book_at_risk``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from operator import itemgetter
from statistics import NormalDist

import simpy

from . import streams as S
from .clock import DAYS_PER_MONTH, DAYS_PER_YEAR, MONTHS_PER_WINDOW
from .csm import Job, Pod
from .curves import INF, consumed, event_time
from .ledger import Ledger
from .scenario import EFFECT_NAMES, Scenario
from .uncertainty import ReplicationParameters

STAGES = ("signing", "onboarding", "growth", "maturity")
SIGNING, ONBOARDING, GROWTH, MATURITY = range(4)
EFFECTS = EFFECT_NAMES
E_ONB, E_GROW, E_ATR, E_REC, E_CHURN, E_RENEW, E_EXP = range(7)
_HAZARD_EFFECTS = range(5)
_NORMAL = NormalDist()
_second = itemgetter(1)


class _MonthEnd(simpy.Timeout):
    """A timeout processed before ordinary events scheduled for the same instant (SimPy's URGENT)."""

    def __init__(self, env: simpy.Environment, delay: float):
        self.env = env
        self.callbacks = []
        self._value = None
        self._delay = delay
        self._ok = True
        env.schedule(self, simpy.events.URGENT, delay)


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1.0 - 1e-12)
    return math.log(p / (1.0 - p))


@dataclass(eq=False)
class Task:
    """A task of a touch model, compiled for the hot path."""

    idx: int
    name: str
    trigger: str
    every: float | None
    rate_per_day: float | None
    hours: float
    exp_hours: bool
    priority: int
    due: float | None
    deadline: float | None
    reach: float
    effects: tuple[float, ...]
    effect_days: float
    has_effect: bool


@dataclass(eq=False)
class TouchModel:
    name: str
    uses_csm: bool
    tasks: list[Task]
    by_trigger: dict[str, list[Task]] = field(default_factory=dict)


@dataclass(eq=False)
class Segment:
    index: int
    name: str
    key: int
    spec: object
    touch_model: TouchModel
    pod: Pod | None
    term: float
    monthly: bool
    curves: dict


class HazardClock:
    """Remaining hazard budget of one transition, and the multipliers last used."""

    __slots__ = ("curve", "entered", "budget", "t_last", "effect", "base", "pieces")

    def __init__(self, curve, entered, budget, t_last, effect, base):
        self.curve = curve
        self.entered = entered
        self.budget = budget
        self.t_last = t_last
        self.effect = effect
        self.base = base
        self.pieces = ((INF, base),)


class Customer:
    """One customer episode (a win-back starts a new episode)."""

    __slots__ = (
        "cid", "k", "episode", "seg", "tm", "arr", "alive", "stage", "at_risk", "csm", "pod",
        "proc", "clocks", "hz", "effects", "draws", "wake_at", "poked", "signed", "window",
        "window_arr", "rec",
    )  # fmt: skip

    def __init__(self, cid, k, episode, seg, draws):
        self.cid = cid
        self.k = k
        self.episode = episode
        self.seg = seg
        self.draws = draws
        self.alive = True
        self.stage = SIGNING
        self.at_risk = False
        self.csm = None
        self.pod = None
        self.proc = None
        self.clocks: dict = {}
        self.hz: dict[str, HazardClock] = {}
        self.effects: dict[int, tuple[float, tuple]] = {}
        self.wake_at = INF
        self.poked = False
        self.window = -1
        self.window_arr = 0.0
        self.rec = None


def compile_touch_models(scenario: Scenario, params: ReplicationParameters) -> dict[str, TouchModel]:
    """The scenario's touch models as the engine runs them, with this replication's effects (``params``)."""
    out = {}
    idx = 0
    for name, spec in scenario.touch_models.items():
        tasks = []
        effects = params.effects(name, spec)
        for tname, t in spec.tasks.items():
            eff = effects[tname]
            tasks.append(
                Task(
                    idx=idx,
                    name=f"{name}.{tname}",
                    trigger=t.trigger,
                    every=t.every_days,
                    rate_per_day=(t.rate_per_year / DAYS_PER_YEAR) if t.rate_per_year else None,
                    hours=t.hours,
                    exp_hours=t.hours_distribution == "exponential",
                    priority=t.priority,
                    due=t.due_days,
                    deadline=t.deadline_days,
                    reach=t.reach,
                    effects=eff,
                    effect_days=t.effect_duration,
                    has_effect=any(e != 1.0 for e in eff),
                )
            )
            idx += 1
        tm = TouchModel(name, spec.uses_csm, tasks)
        for t in tasks:
            tm.by_trigger.setdefault(t.trigger, []).append(t)
        out[name] = tm
    return out


class Engine:
    """One replication of a scenario. ``Engine(scenario, rep).run()`` returns its ledger."""

    def __init__(self, scenario: Scenario, rep: int, record: bool = False):
        self.scenario = scenario
        self.seed = scenario.seed
        self.rep = rep
        self.env = simpy.Environment()
        self.months = scenario.horizon_months
        self.end = self.months * DAYS_PER_MONTH
        if self.months >= MONTHS_PER_WINDOW:
            self.window_len, self.n_windows = MONTHS_PER_WINDOW, self.months // MONTHS_PER_WINDOW
        else:
            self.window_len, self.n_windows = self.months, 1
        # Estimation uncertainty (cssim.uncertainty): with parameter_uncertainty on, curves, renewal models and
        # touch effects that carry uncertainty get this replication's draw, each from its own stream keyed by
        # (seed, rep, KIND_PARAMS, ...) so process-noise streams are untouched; otherwise the values as written.
        params = ReplicationParameters(scenario, rep)
        self.touch_models = compile_touch_models(scenario, params)
        self.pods: list[Pod] = []
        pods_by_name = {}
        self.ledger = Ledger(self.months, len(scenario.segments), len(scenario.team.pods), self.n_windows)
        L = self.ledger.seg
        self._new_logos, self._new_arr = L["new_logos"], L["new_arr"]
        self.routes = [
            (r.segment, r.arr_at_least, r.arr_below, self.touch_models[r.touch_model]) for r in scenario.policy.routes
        ]
        for i, (name, spec) in enumerate(scenario.team.pods.items()):
            pod = Pod(self, i, name, spec)
            self.pods.append(pod)
            pods_by_name[name] = pod
        self.segments: list[Segment] = []
        curve = params.curve
        for i, (name, spec) in enumerate(scenario.segments.items()):
            life = spec.lifecycle
            renewal = params.renewal(name, spec.renewal)
            pod_name = scenario.pod_of(name)
            self.segments.append(
                Segment(
                    index=i,
                    name=name,
                    key=S.name_key(name),
                    spec=spec,
                    touch_model=self.touch_models[spec.touch_model],
                    pod=pods_by_name.get(pod_name) if pod_name else None,
                    term=spec.contract.term_months * DAYS_PER_MONTH,
                    monthly=spec.contract.billing == "monthly",
                    curves={
                        "onboarding": curve(name, "onboarding", life.onboarding),
                        "growth": curve(name, "growth", life.growth),
                        "at_risk": curve(name, "at_risk", life.at_risk),
                        "recovery": curve(name, "recovery", life.recovery),
                        "churn": curve(name, "churn", life.churn),
                        "winback": curve(name, "winback", spec.winback.delay),
                        "logit_healthy": _logit(renewal.healthy),
                        "logit_at_risk": _logit(renewal.at_risk),
                        "log_or_not_activated": math.log(renewal.not_activated_odds_ratio),
                    },
                )
            )
        self.active: dict[tuple, Customer] = {}
        self.window = 0
        self.records: list[dict] | None = [] if record else None
        for seg in self.segments:
            for k in range(seg.spec.initial_customers):
                self._spawn(seg, k, initial=True)
            self.env.process(self._arrivals(seg))
        self._open_window(0)
        self.env.process(self._ticker())

    # ------------------------------------------------------------------ running

    def run(self) -> Ledger:
        self.env.run(until=self.end)
        self._snapshot(self.months - 1)
        if self.window < self.n_windows:
            self._close_window(self.window)
        for pod in self.pods:
            pod.expire_backlog()
            self._pod_totals(pod)
        if self.records is not None:
            for c in self.active.values():
                self._finish_record(c, None, None)
        return self.ledger

    def _month(self, t: float) -> int:
        m = int(t / DAYS_PER_MONTH)
        return m if m < self.months else self.months - 1

    def _arrivals(self, seg: Segment):
        rng = S.generator(self.seed, (self.rep, S.KIND_ARRIVALS, seg.key))
        acq = seg.spec.acquisition
        if acq is None:
            counts = rng.poisson(seg.spec.new_logos_per_month, size=self.months)
        else:
            # Fitted acquisition forecast (resolved at load, no I/O here): this replication follows one
            # simulated path, drawn from the arrivals stream; stochastic rounding keeps each month's mean.
            path = acq.paths[int(rng.integers(len(acq.paths)))][acq.offset : acq.offset + self.months]
            counts = [math.floor(max(x, 0.0) + rng.random()) for x in path]
        times = []
        for m, n in enumerate(counts):
            times.extend(sorted((m + rng.random(n)) * DAYS_PER_MONTH))
        k = seg.spec.initial_customers
        env = self.env
        for t in times:
            yield env.timeout(t - env.now)
            self._spawn(seg, k)
            k += 1

    def _ticker(self):
        env = self.env
        for m in range(self.months - 1):
            # Month end comes before any other event at the same instant: ``_month`` books an
            # event at exactly (m + 1) months into month m + 1, so the month-m snapshot must not see it.
            yield _MonthEnd(env, (m + 1) * DAYS_PER_MONTH - env.now)
            self._snapshot(m)
            if (m + 1) % self.window_len == 0 and self.window < self.n_windows:
                self._close_window(self.window)
                if self.window + 1 < self.n_windows:
                    self._open_window(self.window + 1)
                self.window += 1

    # ------------------------------------------------------------------ customers

    def _route(self, seg: Segment, arr: float) -> TouchModel:
        for segment, lo, hi, tm in self.routes:
            if (segment is None or segment == seg.name) and (lo is None or arr >= lo) and (hi is None or arr < hi):
                return tm
        return seg.touch_model

    def _spawn(self, seg: Segment, k: int, initial: bool = False, episode: int = 0, arr: float | None = None):
        env = self.env
        now = env.now
        spec = seg.spec
        draws = S.CustomerDraws(self.seed, (self.rep, S.KIND_CUSTOMER, seg.key, k, episode))
        c = Customer((seg.index, k), k, episode, seg, draws)
        row = spec.book.rows[k] if initial and spec.book is not None else None  # explicit starting book
        if arr is None and row is not None:
            arr = row["arr"]
        if arr is None:
            z = _NORMAL.inv_cdf(min(max(draws.u(S.ARR), 1e-12), 1 - 1e-12))
            arr = spec.arr.median * math.exp(spec.arr.sigma * z)
            arr = max(arr, spec.arr.min)
            if spec.arr.max is not None:
                arr = min(arr, spec.arr.max)
        c.arr = arr
        tenure = draws.u(S.TENURE) * spec.initial_tenure_months * DAYS_PER_MONTH if initial else 0.0
        if row is not None:
            tenure = row["tenure_days"]
        c.signed = now - tenure
        if self.records is not None:
            c.rec = {
                "customer_id": f"{seg.name}-{k}",
                "episode": episode,
                "segment": seg.name,
                "initial": initial,
                "signed_day": c.signed,
                "arr_start": arr,
                "kickoff_day": None,
                "onboarded_day": None,
                "matured_day": None,
                "at_risk_spells": [],
                "renewals": [],
            }
        self.active[(c.cid, episode)] = c
        if not initial:
            m = self._month(now)
            if episode == 0:
                self._new_logos[m][seg.index] += 1
                self._new_arr[m][seg.index] += arr
            else:
                self.ledger.seg["winback_logos"][m][seg.index] += 1
                self.ledger.seg["winback_arr"][m][seg.index] += arr
        c.tm = self.touch_models[row["touch_model"]] if row is not None and row["touch_model"] else self._route(seg, arr)
        c.pod = seg.pod
        if c.tm.uses_csm and c.pod is not None:
            c.pod.assign(c)
        life = spec.lifecycle
        curves = seg.curves
        kickoff = c.signed + life.signing_days
        clocks = c.clocks
        if row is not None and row["stage"] is not None:
            self._book_stage(c, row)
        elif kickoff > now:
            clocks["stage"] = kickoff
        else:
            self._set_stage(c, ONBOARDING, kickoff)
            e_on = draws.exp(S.ONBOARDING)
            d_on = curves["onboarding"].inv_cumhaz(e_on)
            if kickoff + d_on > now:
                self._start_hazard(c, "stage", curves["onboarding"], kickoff, e_on, E_ONB, 1.0, spent=True)
                if life.activation_deadline_days is not None:
                    clocks["deadline"] = kickoff + life.activation_deadline_days
            else:
                onboarded = kickoff + d_on
                self._set_stage(c, GROWTH, onboarded)
                e_g = draws.exp(S.GROWTH)
                d_g = curves["growth"].inv_cumhaz(e_g)
                if onboarded + d_g > now:
                    self._start_hazard(c, "stage", curves["growth"], onboarded, e_g, E_GROW, 1.0, spent=True)
                else:
                    self._set_stage(c, MATURITY, onboarded + d_g)
        # Health: conditioned on having stayed healthy since signing.
        self._start_hazard(c, "health", curves["at_risk"], c.signed, draws.exp(S.AT_RISK), E_ATR, 1.0)
        if seg.monthly:
            self._start_hazard(c, "churn", curves["churn"], c.signed, draws.exp(S.CHURN), E_CHURN, 1.0)
        if row is not None and row["at_risk"]:
            self._book_at_risk(c, row)
        rate = life.champion_change_per_year
        if rate > 0:
            clocks["champion"] = now + draws.exp(S.CHAMPION) * DAYS_PER_YEAR / rate
        n = math.floor((now - c.signed) / seg.term) + 1
        self._set_renewal(c, c.signed + n * seg.term)
        self._start_task_clocks(c, kickoff, initial)
        c.proc = env.process(self._life(c))
        return c

    # ------------------------------------------------------------------ explicit starting book

    def _book_stage(self, c: Customer, row: dict) -> None:
        """Put a book customer in its listed stage; the stage clock is conditioned on the days already spent."""
        now = self.env.now
        life = c.seg.spec.lifecycle
        stage = row["stage"]
        spent = row["days_in_stage"]
        entered = now - spent if spent is not None else now
        if stage == SIGNING:
            c.clocks["stage"] = max(now, (c.signed if spent is None else entered) + life.signing_days)
            return
        self._set_stage(c, stage, entered)
        if stage == ONBOARDING:
            self._start_hazard(c, "stage", c.seg.curves["onboarding"], entered, c.draws.exp(S.ONBOARDING), E_ONB, 1.0)
            if life.activation_deadline_days is not None:
                c.clocks["deadline"] = max(now, entered + life.activation_deadline_days)
        elif stage == GROWTH:
            self._start_hazard(c, "stage", c.seg.curves["growth"], entered, c.draws.exp(S.GROWTH), E_GROW, 1.0)

    def _book_at_risk(self, c: Customer, row: dict) -> None:
        """A book customer listed at-risk: the recovery clock is conditioned on the days already at risk."""
        now = self.env.now
        since = now - row["days_at_risk"] if row["days_at_risk"] is not None else now
        c.at_risk = True
        if c.rec is not None:
            c.rec["at_risk_spells"].append([since, None, "initial"])
        self._start_hazard(c, "health", c.seg.curves["recovery"], since, c.draws.exp(S.RECOVERY), E_REC, 1.0)
        if "churn" in c.hz:
            self._recompute(c, "churn", now, base=c.seg.spec.lifecycle.at_risk_churn_hazard_ratio)

    def _set_renewal(self, c: Customer, at: float) -> None:
        c.clocks["renewal"] = at
        if not c.seg.monthly and c.tm.by_trigger.get("renewal_window"):
            opens = at - c.seg.spec.renewal.window_fraction * c.seg.term
            now = self.env.now
            if opens < now:
                # Already inside the window (initial book, or a new touch model mid-term): spread
                # the renewal work over the first half of what is left rather than piling it on today.
                opens = now + c.draws.u(S.PHASE) * (at - now) / 2.0
            c.clocks["window"] = opens

    def _start_task_clocks(self, c: Customer, kickoff: float, initial: bool) -> None:
        now = self.env.now
        for task in c.tm.by_trigger.get("cadence", ()):
            phase = c.draws.u(S.PHASE) * task.every
            c.clocks[task] = now + phase if initial else max(now, kickoff) + task.every
        for task in c.tm.by_trigger.get("poisson", ()):
            c.clocks[task] = now + c.draws.exp(S.POISSON) / task.rate_per_day

    def _set_stage(self, c: Customer, stage: int, when: float) -> None:
        c.stage = stage
        if c.rec is not None:
            key = {ONBOARDING: "kickoff_day", GROWTH: "onboarded_day", MATURITY: "matured_day"}[stage]
            c.rec[key] = when

    def _life(self, c: Customer):
        env = self.env
        clocks = c.clocks
        fire = self._fire
        timeout = env.timeout
        while c.alive:
            if clocks:
                kind, t = min(clocks.items(), key=_second)
            else:
                kind, t = None, INF
            now = env.now
            if t <= now + 1e-9:
                fire(c, kind, now)
                continue
            c.wake_at = t
            c.poked = False
            try:
                yield timeout(t - now) if t < INF else env.event()
            except simpy.Interrupt:
                pass

    def _poke(self, c: Customer) -> None:
        """Wake ``c``'s process if one of its clocks moved earlier than its planned wake."""
        if c.poked or not c.alive or c.proc is self.env.active_process:
            return
        if min(c.clocks.values(), default=INF) < c.wake_at and c.proc.is_alive:
            c.poked = True
            c.proc.interrupt()

    def _fire(self, c: Customer, kind, now: float) -> None:
        clocks = c.clocks
        if kind.__class__ is Task:
            task = kind
            if task.trigger == "cadence":
                clocks[task] = now + task.every
            else:
                clocks[task] = now + c.draws.exp(S.POISSON) / task.rate_per_day
            self._release(c, task)
        elif kind == "stage":
            self._advance_stage(c, now)
        elif kind == "health":
            if c.at_risk:
                self._recover(c, now)
            else:
                self._become_at_risk(c, now, "health")
        elif kind == "renewal":
            self._renew(c, now)
        elif kind == "window":
            del clocks["window"]
            for task in c.tm.by_trigger.get("renewal_window", ()):
                self._release(c, task)
        elif kind == "deadline":
            del clocks["deadline"]
            if c.stage == ONBOARDING:
                self._become_at_risk(c, now, "slow_activation")
        elif kind == "champion":
            rate = c.seg.spec.lifecycle.champion_change_per_year
            clocks["champion"] = now + c.draws.exp(S.CHAMPION) * DAYS_PER_YEAR / rate
            self._become_at_risk(c, now, "champion_left")
        elif kind == "churn":
            self._churn(c, now, "cancelled")
        else:  # pragma: no cover - a clock name without a handler is a bug
            raise RuntimeError(f"unknown clock {kind!r}")

    def _advance_stage(self, c: Customer, now: float) -> None:
        seg = c.seg
        if c.stage == SIGNING:
            self._set_stage(c, ONBOARDING, now)
            deadline = seg.spec.lifecycle.activation_deadline_days
            if deadline is not None:
                c.clocks["deadline"] = now + deadline
            self._start_hazard(c, "stage", seg.curves["onboarding"], now, c.draws.exp(S.ONBOARDING), E_ONB, 1.0)
            for task in c.tm.by_trigger.get("onboarding", ()):
                self._release(c, task)
        elif c.stage == ONBOARDING:
            self._set_stage(c, GROWTH, now)
            c.clocks.pop("deadline", None)
            self._start_hazard(c, "stage", seg.curves["growth"], now, c.draws.exp(S.GROWTH), E_GROW, 1.0)
        else:
            self._set_stage(c, MATURITY, now)
            del c.clocks["stage"]
            del c.hz["stage"]

    # ------------------------------------------------------------------ hazards

    def _pieces(self, c: Customer, effect: int, base: float, now: float):
        """Multiplier pieces ``((until, m), ..., (inf, base))`` of the touches in effect after ``now``."""
        active = []
        for exp, eff in c.effects.values():
            r = eff[effect]
            if r != 1.0 and exp > now:
                active.append((exp, r))
        if not active:
            return ((INF, base),)
        if len(active) == 1:  # the common case, without the general loop
            exp, r = active[0]
            return ((exp, base * r), (INF, base))
        active.sort()
        pieces = []
        for i in range(len(active)):
            m = base
            for _, r in active[i:]:
                m *= r
            pieces.append((active[i][0], m))
        pieces.append((INF, base))
        return tuple(pieces)

    def _start_hazard(self, c, name, curve, entered, budget, effect, base, spent=False):
        """Start the clock ``name``; ``spent=True`` means ``budget`` counts from ``entered``."""
        now = self.env.now
        if spent:
            budget -= curve.cumhaz(now - entered)
        hc = HazardClock(curve, entered, budget, now, effect, base)
        hc.pieces = self._pieces(c, effect, base, now)
        c.hz[name] = hc
        c.clocks[name] = event_time(curve, entered, now, budget, hc.pieces)

    def _recompute(self, c: Customer, name: str, now: float, base: float | None = None) -> None:
        hc = c.hz[name]
        hc.budget -= consumed(hc.curve, hc.entered, hc.t_last, now, hc.pieces)
        hc.t_last = now
        if base is not None:
            hc.base = base
        hc.pieces = self._pieces(c, hc.effect, hc.base, now)
        c.clocks[name] = event_time(hc.curve, hc.entered, now, hc.budget, hc.pieces)

    # ------------------------------------------------------------------ health

    def _become_at_risk(self, c: Customer, now: float, reason: str) -> None:
        if c.at_risk:
            return
        c.at_risk = True
        seg = c.seg
        self.ledger.seg["became_at_risk"][self._month(now)][seg.index] += 1
        if c.rec is not None:
            c.rec["at_risk_spells"].append([now, None, reason])
        self._start_hazard(c, "health", seg.curves["recovery"], now, c.draws.exp(S.RECOVERY), E_REC, 1.0)
        if "churn" in c.hz:
            self._recompute(c, "churn", now, base=seg.spec.lifecycle.at_risk_churn_hazard_ratio)
        for task in c.tm.by_trigger.get("at_risk", ()):
            self._release(c, task)
        self._poke(c)

    def _recover(self, c: Customer, now: float) -> None:
        c.at_risk = False
        seg = c.seg
        if c.rec is not None:
            c.rec["at_risk_spells"][-1][1] = now
        self._start_hazard(c, "health", seg.curves["at_risk"], now, c.draws.exp(S.AT_RISK), E_ATR, 1.0)
        if "churn" in c.hz:
            self._recompute(c, "churn", now, base=1.0)

    # ------------------------------------------------------------------ renewal, ARR

    def _renew(self, c: Customer, now: float) -> None:
        seg = c.seg
        s = seg.index
        m = self._month(now)
        L = self.ledger.seg
        before = c.arr
        if not seg.monthly:
            L["renewals_due"][m][s] += 1
            L["renewal_arr_due"][m][s] += before
            cv = seg.curves
            logit = cv["logit_at_risk"] if c.at_risk else cv["logit_healthy"]
            if c.stage <= ONBOARDING:
                logit += cv["log_or_not_activated"]
            touched = False
            for exp, eff in c.effects.values():
                if exp >= now and eff[E_RENEW] != 1.0:
                    logit += math.log(eff[E_RENEW])
                    touched = True
            p = 1.0 / (1.0 + math.exp(-logit))
            renewed = c.draws.u(S.RENEWAL) < p
            if c.rec is not None:
                # (day, renewed, at-risk, still onboarding, a renewal-odds touch in effect)
                c.rec["renewals"].append((now, renewed, c.at_risk, c.stage <= ONBOARDING, touched))
            if not renewed:
                self._churn(c, now, "not_renewed")
                return
            L["renewals_renewed"][m][s] += 1
            L["renewal_arr_renewed"][m][s] += before
        self._reprice(c, now, m)
        if not seg.monthly:
            change = c.arr - before
            if change > 0:
                L["renewal_expansion_arr"][m][s] += change
            elif change < 0:
                L["renewal_contraction_arr"][m][s] -= change
        self._set_renewal(c, now + seg.term)
        tm = self._route(seg, c.arr)
        if tm is not c.tm:
            self._switch_touch_model(c, tm, now)

    def _reprice(self, c: Customer, now: float, m: int) -> None:
        """Expansion or contraction at renewal / anniversary; sizes are Gamma(2) fractions."""
        spec = c.seg.spec.expansion
        d = c.draws
        u_contract, u_expand = d.u(S.EXPANSION), d.u(S.EXPANSION)
        g = d.exp(S.EXPANSION) + d.exp(S.EXPANSION)
        s = c.seg.index
        if u_contract < spec.contraction_probability.get("at_risk" if c.at_risk else "healthy", 0.0):
            frac = min(0.95, spec.contraction_mean_fraction * g / 2.0)
            delta = c.arr * frac
            c.arr -= delta
            self.ledger.seg["contraction_arr"][m][s] += delta
            return
        stage = STAGES[max(c.stage, ONBOARDING)]
        p = spec.probability.get(stage, 0.0)
        if p <= 0.0:
            return
        odds = p / (1.0 - p) if p < 1.0 else INF
        for exp, eff in c.effects.values():
            if exp >= now and eff[E_EXP] != 1.0:
                odds *= eff[E_EXP]
        if u_expand < odds / (1.0 + odds):
            delta = c.arr * spec.mean_fraction * g / 2.0
            c.arr += delta
            self.ledger.seg["expansion_arr"][m][s] += delta

    def _switch_touch_model(self, c: Customer, tm: TouchModel, now: float) -> None:
        for task in c.tm.tasks:
            c.clocks.pop(task, None)
        c.clocks.pop("window", None)
        old = c.tm
        c.tm = tm
        if c.pod is not None:
            if old.uses_csm and not tm.uses_csm:
                c.pod.release(c)
            elif tm.uses_csm and not old.uses_csm:
                c.pod.assign(c)
        self._start_task_clocks(c, now, initial=False)
        self._set_renewal(c, c.clocks["renewal"])

    def _churn(self, c: Customer, now: float, reason: str) -> None:
        seg = c.seg
        s = seg.index
        m = self._month(now)
        c.alive = False
        L = self.ledger.seg
        L["churned_logos"][m][s] += 1
        L["churned_arr"][m][s] += c.arr
        if c.window == self.window and self.window < self.n_windows:
            self.ledger.win["churned_logos"][self.window][s] += 1
            # A cohort churner loses its window-start ARR (GRR stays in [0, 1]); its in-window
            # expansion or contraction is not booked (see _close_window).
            self.ledger.win["churned_arr"][self.window][s] += c.window_arr
        if c.pod is not None:
            c.pod.release(c)
        del self.active[(c.cid, c.episode)]
        if c.rec is not None:
            self._finish_record(c, now, reason)
        wb = seg.spec.winback
        if wb.probability > 0 and c.draws.u(S.WINBACK) < wb.probability:
            delay = seg.curves["winback"].inv_cumhaz(c.draws.exp(S.WINBACK))
            if now + delay < self.end:
                ev = self.env.timeout(delay, value=(seg, c.k, c.episode + 1, c.arr * wb.arr_factor))
                ev.callbacks.append(self._on_winback)

    def _on_winback(self, ev) -> None:
        seg, k, episode, arr = ev.value
        self._spawn(seg, k, episode=episode, arr=arr)

    # ------------------------------------------------------------------ touches

    def _release(self, c: Customer, task: Task) -> None:
        now = self.env.now
        m = self._month(now)
        s = c.seg.index
        L = self.ledger.seg
        if task.hours == 0.0:
            L["program_sent"][m][s] += 1
            if c.draws.u(S.REACH) < task.reach:
                L["program_reached"][m][s] += 1
                self._deliver(c, task, now)
            return
        L["tasks_released"][m][s] += 1
        if c.csm is None:
            L["tasks_missed"][m][s] += 1
            L["tasks_unassigned"][m][s] += 1
            return
        hours = task.hours * c.draws.exp(S.HOURS) if task.exp_hours else task.hours
        c.pod.submit(Job(c, task, now, hours))

    def _deliver(self, c: Customer, task: Task, now: float) -> None:
        if not c.alive or not task.has_effect:
            return
        c.effects[task.idx] = (now + task.effect_days, task.effects)
        changed = False
        for name, hc in c.hz.items():
            if task.effects[hc.effect] != 1.0:
                self._recompute(c, name, now)
                changed = True
        if changed:
            self._poke(c)

    # Called by pods.

    def task_started(self, job: Job, pod_index: int, now: float, duration: float) -> None:
        m = self._month(now)
        s = job.customer.seg.index
        L = self.ledger.seg
        wait = now - job.released
        L["tasks_delivered"][m][s] += 1
        L["wait_days_sum"][m][s] += wait
        if wait > 0.0:
            L["tasks_waited"][m][s] += 1
        if job.task.due is not None and wait > job.task.due:
            L["tasks_late"][m][s] += 1
        self._spread(self.ledger.pod["busy_days"], pod_index, now, min(now + duration, self.end))

    def task_done(self, job: Job) -> None:
        self._deliver(job.customer, job.task, self.env.now)

    def task_missed(self, job: Job) -> None:
        self.ledger.seg["tasks_missed"][self._month(job.deadline)][job.customer.seg.index] += 1

    def handoff(self, c: Customer) -> None:
        """``c``'s CSM left; it has been reassigned (or queued). A hand-off is a risk event."""
        now = self.env.now
        self.ledger.seg["handoffs"][self._month(now)][c.seg.index] += 1
        if c.draws.u(S.HANDOFF) < c.pod.spec.handoff_risk:
            self._become_at_risk(c, now, "handoff")
        for task in c.tm.by_trigger.get("handoff", ()):
            self._release(c, task)

    # ------------------------------------------------------------------ accounting

    def _spread(self, grid, col: int, t0: float, t1: float) -> None:
        """Add the length of [t0, t1] to ``grid[month][col]``, split at month boundaries."""
        while t1 > t0:
            m = self._month(t0)
            edge = (m + 1) * DAYS_PER_MONTH if m < self.months - 1 else t1
            stop = min(edge, t1)
            grid[m][col] += stop - t0
            t0 = stop

    def _snapshot(self, m: int) -> None:
        L = self.ledger.seg
        stage_rows = [L[name][m] for name in STAGES]
        active, at_risk, arr, with_csm = L["active"][m], L["at_risk"][m], L["arr"][m], L["with_csm"][m]
        for c in self.active.values():
            s = c.seg.index
            active[s] += 1
            stage_rows[c.stage][s] += 1
            arr[s] += c.arr
            if c.at_risk:
                at_risk[s] += 1
            if c.csm is not None:
                with_csm[s] += 1
        P = self.ledger.pod
        for pod in self.pods:
            P["headcount"][m][pod.index] = len(pod.csms)
            P["backlog"][m][pod.index] = pod.live_backlog()
            P["accounts"][m][pod.index] = sum(len(csm.customers) for csm in pod.csms)

    def _open_window(self, w: int) -> None:
        W = self.ledger.win
        for c in self.active.values():
            c.window = w
            c.window_arr = c.arr
            W["start_logos"][w][c.seg.index] += 1
            W["start_arr"][w][c.seg.index] += c.arr

    def _close_window(self, w: int) -> None:
        W = self.ledger.win
        for c in self.active.values():
            if c.window == w:
                W["end_logos"][w][c.seg.index] += 1
                W["end_arr"][w][c.seg.index] += c.arr
                # Survivors' net ARR change over the window: expansion or contraction, per customer.
                change = c.arr - c.window_arr
                if change > 0:
                    W["expansion_arr"][w][c.seg.index] += change
                elif change < 0:
                    W["contraction_arr"][w][c.seg.index] -= change

    def _pod_totals(self, pod: Pod) -> None:
        grid = self.ledger.pod["employed_days"]
        for csm in pod.all_csms:
            start = max(csm.hired, 0.0)
            stop = min(csm.left, self.end)
            self._spread(grid, pod.index, start, stop)

    def _finish_record(self, c: Customer, when, reason) -> None:
        rec = c.rec
        rec.update(
            touch_model=c.tm.name,
            arr_end=c.arr,
            churned_day=when,
            churn_reason=reason,
        )
        self.records.append(rec)


def run_replication(scenario: Scenario, rep: int, record: bool = False):
    """Simulate replication ``rep`` of ``scenario``; returns (arrays, records or None)."""
    engine = Engine(scenario, rep, record=record)
    ledger = engine.run()
    return ledger.arrays(), engine.records
