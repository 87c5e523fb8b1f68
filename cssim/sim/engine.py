"""The engine: customers are records in one calendar, CSM pods are SimPy capacities.

One replication of a scenario: customers arrive, move through signing →
onboarding → growth → maturity, fall at-risk and recover, renew or churn, and
may come back. Their time-to-event draws come from the scenario's survival
curves; delivered touches multiply the hazards (proportional hazards), and a
touch that waits past its deadline for a busy CSM has no effect. The engine
does no I/O and no plotting: it returns a :class:`~cssim.ledger.Ledger` of
monthly aggregates (and, on request, flat per-customer records).

Only what interacts or changes state is an event. A customer is not a SimPy
process but a record with a few clocks (the next time each of its transitions
or tasks is due), filed in one :class:`Calendar` by its earliest clock.
``Engine.run`` takes whichever is earlier, the calendar's next customer or
SimPy's next event: the CSM pods, their hires and attrition, arrivals,
win-backs and month ends stay SimPy events.
Tech-touch programs (tasks without CSM time on a cadence or at random) are
schedules drawn in advance: send times are fixed, reach is drawn per send, and
the reached sends' effect windows enter the hazard multipliers directly.

Assumptions
-----------
- Each customer wakes at the earliest of its clocks (stage, health, churn,
  renewal, window, deadline, champion, task cadences); a delivered touch that
  raises a hazard re-solves the clock exactly through H and H⁻¹ and moves the
  customer earlier in the calendar; one that can only delay the event leaves
  the clock a lower bound, solved exactly when it comes due.
- The hazard budget of every transition is one unit-exponential draw per
  customer and episode, so policies differ only through the multipliers.
- Program schedules are drawn half a year ahead (``LOOKAHEAD_DAYS``) and
  extended when a solve needs more; past the drawn part a program that delays
  an event leaves the clock a lower bound and one that raises a hazard makes
  it look again where the drawn part ends, so the result is the same as
  sending each program touch as an event.
- Initial customers have uniform tenure on ``[0, initial_tenure_months]``;
  their stage is sampled from the same curves and their clocks are
  conditioned on the time already spent. A segment's ``book`` lists them
  instead (ARR, touch model, tenure, stage, at-risk, days in stage / at risk):
  see ``_book_stage`` and ``_book_at_risk``.
"""

from __future__ import annotations

import gc
import heapq
import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import count
from statistics import NormalDist

import simpy

from ..core import streams as S
from ..core.clock import DAYS_PER_MONTH, DAYS_PER_YEAR, MONTHS_PER_WINDOW
from ..model.curves import INF, consumed, event_time
from ..model.scenario import EFFECT_NAMES, Scenario
from ..model.uncertainty import ReplicationParameters
from .csm import Job, Pod
from .ledger import Ledger

STAGES = ("signing", "onboarding", "growth", "maturity")
SIGNING, ONBOARDING, GROWTH, MATURITY = range(4)
EFFECTS = EFFECT_NAMES
E_ONB, E_GROW, E_ATR, E_REC, E_CHURN, E_RENEW, E_EXP = range(7)
_NORMAL = NormalDist()
_PER_DAY = 1.0 / DAYS_PER_MONTH  # months per day
_EPS = 1e-9  # clocks due within this many days of now fire now (float rounding of timeouts)
LOOKAHEAD_DAYS = DAYS_PER_YEAR / 2  # how far ahead program schedules are drawn


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

    def __post_init__(self):
        # A program on a cadence or at random needs no CSM time, so its sends are drawn in advance.
        self.scheduled = self.hours == 0.0 and self.trigger in ("cadence", "poisson")
        self.touched = tuple(i for i, r in enumerate(self.effects) if r != 1.0)


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
    draws: S.SegmentDraws


class HazardClock:
    """Remaining hazard budget of one transition at ``t_last``.

    ``exact`` is false when the clock's time is only a lower bound: a touch that can only delay the event
    (a hazard ratio below 1) arrived after the last solve, or part of a program schedule it depends on is
    not drawn yet. Such a clock is solved again when it comes due, instead of on every touch.
    """

    __slots__ = ("curve", "entered", "budget", "t_last", "effect", "base", "exact")

    def __init__(self, curve, entered, budget, t_last, effect, base):
        self.curve = curve
        self.entered = entered
        self.budget = budget
        self.t_last = t_last
        self.effect = effect
        self.base = base
        self.exact = True


class Program:
    """A customer's schedule of one program task, drawn up to ``until``.

    Reached sends add effect windows to the customer's windows of the task as
    they are drawn; ``pending`` holds drawn sends not yet booked in the ledger
    (they are booked once the simulation has passed them, and dropped if the
    customer leaves or changes touch model first).
    """

    __slots__ = ("task", "next", "until", "pending", "last_reached")

    def __init__(self, task: Task, first: float):
        self.task = task
        self.next = first
        self.until = first
        self.pending: list[tuple[float, bool]] = []
        self.last_reached = None


class Calendar:
    """Customers filed by the time of their next event: a heap for the current day, a list per later day.

    Entries are ``(time, seq, version, customer)``; one whose version is not the customer's is stale and
    skipped. A heap of every customer would be as exact, but with a large book each of its operations
    touches entries all over memory; a day's list is appended to, and heapified only when its day comes.
    """

    __slots__ = ("today", "day", "later", "days")

    def __init__(self):
        self.today: list = []  # heap of the current day's entries
        self.day = -1
        self.later: dict[int, list] = {}  # day -> entries, in no order
        self.days: list[int] = []  # heap of the days in ``later``

    def push(self, entry) -> None:
        day = int(entry[0])
        if day <= self.day:
            heapq.heappush(self.today, entry)
            return
        bucket = self.later.get(day)
        if bucket is None:
            self.later[day] = [entry]
            heapq.heappush(self.days, day)
        else:
            bucket.append(entry)

    def head(self):
        """The earliest live entry (left in place), or ``None``."""
        today = self.today
        while True:
            while today:
                entry = today[0]
                if entry[2] == entry[3].ver:
                    return entry
                heapq.heappop(today)
            if not self.days:
                return None
            self.day = heapq.heappop(self.days)
            today = self.today = self.later.pop(self.day)
            heapq.heapify(today)

    def pop(self) -> None:
        """Remove the entry ``head`` returned."""
        heapq.heappop(self.today)


class Customer:
    """One customer episode (a win-back starts a new episode)."""

    __slots__ = (
        "cid", "k", "episode", "seg", "tm", "arr", "alive", "stage", "at_risk", "csm", "pod",
        "clocks", "hz", "win", "progs", "sync_at", "draws", "next", "ver", "signed", "window", "window_arr", "rec",
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
        self.clocks: dict = {}
        self.hz: dict[str, HazardClock] = {}
        # task index -> (its hazard/odds ratios, merged effect windows [[start, stop], ...] in time order)
        self.win: dict[int, tuple[tuple, list]] = {}
        self.progs: list[Program] = []
        self.sync_at = INF  # when the program schedules drawn so far run short
        self.next = INF  # time of this customer's live calendar entry
        self.ver = 0  # calendar entries with another version are stale
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



#: Allocations between young-generation collections while an engine runs (CPython's default is 700).
GC_GEN0_THRESHOLD = 100_000
_gc_lock = threading.Lock()
_gc_running = 0
_gc_saved: tuple = ()


@contextmanager
def sparse_gc():
    """Let the cycle collector run rarely while engines work; restored when the last running engine is done.

    The engine allocates millions of short-lived objects but makes almost no reference cycles (a run of
    30,000 customers leaves about ten objects for the collector), so with CPython's default thresholds
    the collector mostly walks a live heap that only grows: 10–30 % of a large run. Reference counting
    still frees everything else at once; the thresholds are process-wide, hence the count of engines
    running (threads of one process may run several).
    """
    global _gc_running, _gc_saved
    with _gc_lock:
        if _gc_running == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(max(GC_GEN0_THRESHOLD, _gc_saved[0]), *_gc_saved[1:])
        _gc_running += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_running -= 1
            if _gc_running == 0:
                gc.set_threshold(*_gc_saved)


class Engine:
    """One replication of a scenario. ``Engine(scenario, rep).run()`` returns its ledger."""

    def __init__(self, scenario: Scenario, rep: int, record: bool = False):
        self.scenario = scenario
        self.seed = scenario.seed
        self.rep = rep
        self.env = simpy.Environment()
        self.now = 0.0
        self._t_sim = INF  # time of SimPy's next event, kept by ``run`` and ``at``
        self.months = scenario.horizon_months
        self.end = self.months * DAYS_PER_MONTH
        if self.months >= MONTHS_PER_WINDOW:
            self.window_len, self.n_windows = MONTHS_PER_WINDOW, self.months // MONTHS_PER_WINDOW
        else:
            self.window_len, self.n_windows = self.months, 1
        # Month ends are the first events scheduled, so at an instant shared with other events they come
        # first: a change booked at exactly (m + 1) months belongs to month m + 1.
        for m in range(self.months - 1):
            self.env.timeout((m + 1) * DAYS_PER_MONTH, value=m).callbacks.append(self._month_end)
        # Estimation uncertainty (cssim.uncertainty): with parameter_uncertainty on, curves, renewal models and
        # touch effects that carry uncertainty get this replication's draw, each from its own stream keyed by
        # (seed, rep, KIND_PARAMS, ...) so process-noise streams are untouched; otherwise the values as written.
        params = ReplicationParameters(scenario, rep)
        self.touch_models = compile_touch_models(scenario, params)
        self.ledger = Ledger(self.months, len(scenario.segments), len(scenario.team.pods), self.n_windows)
        self.L = self.ledger.seg
        self.routes = [
            (r.segment, r.arr_at_least, r.arr_below, self.touch_models[r.touch_model]) for r in scenario.policy.routes
        ]
        self.pods: list[Pod] = []
        pods_by_name = {}
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
            key = S.name_key(name)
            self.segments.append(
                Segment(
                    index=i,
                    name=name,
                    key=key,
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
                    draws=S.SegmentDraws(self.seed, (rep, S.KIND_CUSTOMER, key)),
                )
            )
        self.active: dict[tuple, Customer] = {}
        self.window = 0
        self.records: list[dict] | None = [] if record else None
        self.calendar = Calendar()
        self._seq = count()
        with sparse_gc():
            for seg in self.segments:
                for k in range(seg.spec.initial_customers):
                    self._spawn(seg, k, initial=True)
                self.env.process(self._arrivals(seg))
        self._open_window(0)

    # ------------------------------------------------------------------ running

    def run(self) -> Ledger:
        """Process the calendar and SimPy's queue together, always taking the earlier event.

        At a tie SimPy's event goes first (month ends were scheduled before anything else). SimPy's own
        clock catches up at its next event; the engine's ``now`` is the time of whatever is processed.
        """
        with sparse_gc():
            return self._run()

    def _run(self) -> Ledger:
        env, end = self.env, self.end
        head, pop = self.calendar.head, self.calendar.pop
        peek, step, wake = env.peek, env.step, self._wake
        self._t_sim = peek()
        while True:
            entry = head()
            t_cal = entry[0] if entry is not None else INF
            if t_cal < self._t_sim:  # calendar work schedules SimPy events only through ``at``, which lowers _t_sim
                self.now = t_cal
                pop()
                wake(entry[3], t_cal)
            else:
                if self._t_sim >= end:
                    break
                self.now = self._t_sim
                step()
                self._t_sim = peek()
        self.now = end
        for c in self.active.values():  # program sends of the last stretch
            for prog in c.progs:
                if prog.until < end:
                    self._draw_sends(c, prog, end)
                self._book_sends(c, prog, end)
        self._snapshot_pods(self.months - 1)
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
        m = int(t * _PER_DAY)
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
            times.extend(sorted(((m + rng.random(n)) * DAYS_PER_MONTH).tolist()))
        k = seg.spec.initial_customers
        env = self.env
        for t in times:
            yield env.timeout(t - env.now)
            self._spawn(seg, k)
            k += 1

    def _month_end(self, ev) -> None:
        m = ev.value
        self._snapshot_pods(m)
        if (m + 1) % self.window_len == 0 and self.window < self.n_windows:
            self._close_window(self.window)
            if self.window + 1 < self.n_windows:
                self._open_window(self.window + 1)
            self.window += 1

    # ------------------------------------------------------------------ calendar

    def at(self, t: float, callback, value=None) -> None:
        """Call ``callback(event)`` at absolute time ``t`` (a SimPy timeout; ``event.value`` is ``value``)."""
        self.env.timeout(t - self.env.now, value=value).callbacks.append(callback)
        if t < self._t_sim:
            self._t_sim = t

    def _schedule(self, c: Customer) -> None:
        """File ``c`` in the calendar at its earliest clock if that is earlier than its current entry.

        A clock that moved later leaves the earlier entry in place: it wakes ``c``, finds nothing due and
        files ``c`` again at its real time, which is cheaper than re-filing on every change.
        """
        clocks = c.clocks
        t = min(clocks.values()) if clocks else INF
        if t < c.next:
            self._file(c, t)

    def _file(self, c: Customer, t: float) -> None:
        if t < self.now:  # overdue (e.g. a starting book's passed deadline): due at once
            t = self.now
        c.ver += 1  # any older entry of c is stale now
        c.next = t
        if t < self.end:  # past the horizon it never fires
            self.calendar.push((t, next(self._seq), c.ver, c))

    def _wake(self, c: Customer, now: float) -> None:
        """Fire ``c``'s due clocks in time order, then file it at its next one."""
        c.next = -INF  # while firing, changes to c's clocks need no re-filing
        clocks = c.clocks
        due = now + _EPS
        fire = self._fire
        get = clocks.__getitem__
        t = INF
        while clocks and c.alive:
            kind = min(clocks, key=get)
            t = clocks[kind]
            if t > due:
                break
            fire(c, kind, now)
            t = INF
        if c.alive:
            self._file(c, t)

    def _poke(self, c: Customer) -> None:
        """One of ``c``'s clocks may have moved earlier (a touch from outside its own wake-up)."""
        if c.alive:
            self._schedule(c)

    # ------------------------------------------------------------------ customers

    def _route(self, seg: Segment, arr: float) -> TouchModel:
        for segment, lo, hi, tm in self.routes:
            if (segment is None or segment == seg.name) and (lo is None or arr >= lo) and (hi is None or arr < hi):
                return tm
        return seg.touch_model

    def _spawn(self, seg: Segment, k: int, initial: bool = False, episode: int = 0, arr: float | None = None):
        now = self.now
        spec = seg.spec
        s = seg.index
        draws = seg.draws.draws(k, episode)
        c = Customer((s, k), k, episode, seg, draws)
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
        L = self.L
        m = self._month(now)
        L["active"][m][s] += 1
        L["signing"][m][s] += 1
        L["arr"][m][s] += arr
        if not initial:
            if episode == 0:
                L["new_logos"][m][s] += 1
                L["new_arr"][m][s] += arr
            else:
                L["winback_logos"][m][s] += 1
                L["winback_arr"][m][s] += arr
        c.tm = self.touch_models[row["touch_model"]] if row is not None and row["touch_model"] else self._route(seg, arr)
        c.pod = seg.pod
        if c.tm.uses_csm and c.pod is not None:
            c.pod.assign(c)
        life = spec.lifecycle
        curves = seg.curves
        kickoff = c.signed + life.signing_days
        clocks = c.clocks
        # Task clocks and program schedules first: programs' effect windows enter every hazard solved below.
        self._start_task_clocks(c, kickoff, initial)
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
        self._schedule(c)
        return c

    # ------------------------------------------------------------------ explicit starting book

    def _book_stage(self, c: Customer, row: dict) -> None:
        """Put a book customer in its listed stage; the stage clock is conditioned on the days already spent."""
        now = self.now
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
        now = self.now
        since = now - row["days_at_risk"] if row["days_at_risk"] is not None else now
        self._set_at_risk(c, True, now)
        if c.rec is not None:
            c.rec["at_risk_spells"].append([since, None, "initial"])
        self._start_hazard(c, "health", c.seg.curves["recovery"], since, c.draws.exp(S.RECOVERY), E_REC, 1.0)
        if "churn" in c.hz:
            self._solve(c, "churn", now, base=c.seg.spec.lifecycle.at_risk_churn_hazard_ratio)

    # ------------------------------------------------------------------ clocks

    def _set_renewal(self, c: Customer, at: float) -> None:
        c.clocks["renewal"] = at
        if not c.seg.monthly and c.tm.by_trigger.get("renewal_window"):
            opens = at - c.seg.spec.renewal.window_fraction * c.seg.term
            now = self.now
            if opens < now:
                # Already inside the window (initial book, or a new touch model mid-term): spread
                # the renewal work over the first half of what is left rather than piling it on today.
                opens = now + c.draws.u(S.PHASE) * (at - now) / 2.0
            c.clocks["window"] = opens

    def _start_task_clocks(self, c: Customer, kickoff: float, initial: bool) -> None:
        now = self.now
        clocks = c.clocks
        for task in c.tm.by_trigger.get("cadence", ()):
            first = now + c.draws.u(S.PHASE) * task.every if initial else max(now, kickoff) + task.every
            if task.scheduled:
                c.progs.append(Program(task, first))
            else:
                clocks[task] = first
        for task in c.tm.by_trigger.get("poisson", ()):
            first = now + c.draws.exp(S.POISSON) / task.rate_per_day
            if task.scheduled:
                c.progs.append(Program(task, first))
            else:
                clocks[task] = first
        if c.progs:
            self._sync_programs(c, now)

    def _set_stage(self, c: Customer, stage: int, when: float) -> None:
        L = self.L
        m = self._month(self.now)
        L[STAGES[c.stage]][m][c.seg.index] -= 1
        L[STAGES[stage]][m][c.seg.index] += 1
        c.stage = stage
        if c.rec is not None:
            key = {ONBOARDING: "kickoff_day", GROWTH: "onboarded_day", MATURITY: "matured_day"}[stage]
            c.rec[key] = when

    def _set_at_risk(self, c: Customer, at_risk: bool, now: float) -> None:
        c.at_risk = at_risk
        self.L["at_risk"][self._month(now)][c.seg.index] += 1 if at_risk else -1

    def _fire(self, c: Customer, kind, now: float) -> None:
        clocks = c.clocks
        if kind.__class__ is Task:
            task = kind
            if task.trigger == "cadence":
                clocks[task] = now + task.every
            else:
                clocks[task] = now + c.draws.exp(S.POISSON) / task.rate_per_day
            self._release(c, task)
        elif kind == "health":
            if not c.hz["health"].exact and self._not_yet(c, "health", now):
                return
            if c.at_risk:
                self._recover(c, now)
            else:
                self._become_at_risk(c, now, "health")
        elif kind == "stage":
            if "stage" in c.hz and not c.hz["stage"].exact and self._not_yet(c, "stage", now):
                return
            self._advance_stage(c, now)
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
            if not c.hz["churn"].exact and self._not_yet(c, "churn", now):
                return
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

    # ------------------------------------------------------------------ programs

    def _sync_programs(self, c: Customer, now: float) -> None:
        """Draw ``c``'s program schedules ahead when less than half a look-ahead is left (booking the sends passed).

        Callers check ``c.sync_at`` first, so most solves skip this.
        """
        ahead = now + LOOKAHEAD_DAYS / 2
        sync_at = INF
        for prog in c.progs:
            if prog.until < ahead and prog.until < self.end:
                self._book_sends(c, prog, now)
                self._draw_sends(c, prog, now + LOOKAHEAD_DAYS)
            if prog.until < self.end and prog.until - LOOKAHEAD_DAYS / 2 < sync_at:
                sync_at = prog.until - LOOKAHEAD_DAYS / 2
        c.sync_at = sync_at

    def _draw_sends(self, c: Customer, prog: Program, until: float) -> None:
        """Draw ``prog``'s sends and their reach up to ``until``; reached sends open effect windows at once."""
        stop = until if until < self.end else self.end
        task = prog.task
        reach, days, every = task.reach, task.effect_days, task.every
        u = c.draws.u
        pending = prog.pending
        windows = None
        if task.has_effect:
            entry = c.win.get(task.idx)
            if entry is None:
                entry = c.win[task.idx] = (task.effects, [])
            windows = entry[1]
            self._prune(c, windows)
        t = prog.next
        while t < stop:
            reached = u(S.PROGRAM) < reach
            pending.append((t, reached))
            if reached and windows is not None:
                if windows and t <= windows[-1][1]:
                    windows[-1][1] = t + days
                else:
                    windows.append([t, t + days])
            t = t + every if every is not None else t + c.draws.exp(S.PROGRAM) / task.rate_per_day
        prog.next = t
        prog.until = stop
        if windows is not None:
            for hc in c.hz.values():  # new windows ahead: the clocks they touch are lower bounds now
                if task.effects[hc.effect] != 1.0:
                    hc.exact = False

    def _book_sends(self, c: Customer, prog: Program, upto: float) -> None:
        """Book ``prog``'s drawn sends up to ``upto`` in the months they happened."""
        s = c.seg.index
        sent, reached_grid = self.L["program_sent"], self.L["program_reached"]
        last_month = self.months - 1
        pending = prog.pending
        n = 0
        for t, reached in pending:
            if t > upto:
                break
            n += 1
            m = int(t * _PER_DAY)
            if m > last_month:
                m = last_month
            sent[m][s] += 1
            if reached:
                reached_grid[m][s] += 1
                prog.last_reached = t
        del pending[:n]

    def _end_programs(self, c: Customer, now: float, keep_effects: bool) -> None:
        """Book ``c``'s program sends up to ``now`` and drop the rest of the schedule.

        With ``keep_effects`` (a change of touch model) the sends reached by now run their course, as a touch
        delivered before the change would; windows drawn for later sends are taken back.
        """
        for prog in c.progs:
            self._book_sends(c, prog, now)
            task = prog.task
            if keep_effects and task.has_effect and task.idx in c.win:
                windows = c.win[task.idx][1]
                windows[:] = [w for w in windows if w[0] <= now]
                if windows and prog.last_reached is not None:
                    windows[-1][1] = min(windows[-1][1], prog.last_reached + task.effect_days)
        c.progs = []
        c.sync_at = INF

    def _prune(self, c: Customer, windows: list) -> None:
        """Drop effect windows that ended before every hazard clock's last solve: no solve reads them again."""
        if windows and len(windows) > 2:
            lo = min([hc.t_last for hc in c.hz.values()], default=self.now)
            if windows[0][1] <= lo:
                windows[:] = [w for w in windows if w[1] > lo]

    # ------------------------------------------------------------------ hazards

    def _pieces(self, c: Customer, effect: int, base: float, t0: float):
        """Multiplier pieces ``((until, m), ..., (inf, base))`` of the effect windows open after ``t0``.

        Also returns ``lim``, the time up to which every program schedule touching ``effect`` is drawn
        (``inf`` if none is cut short), and whether any of those programs raises the hazard. Past ``lim`` the
        pieces assume no program touch: a lower bound on the event time for programs that delay it.
        """
        lim, accel = INF, False
        for prog in c.progs:
            r = prog.task.effects[effect]
            if r != 1.0 and prog.until < self.end:
                if prog.until < lim:
                    lim = prog.until
                if r > 1.0:
                    accel = True
        lists = None
        for eff, windows in c.win.values():
            r = eff[effect]
            if r != 1.0 and windows and windows[-1][1] > t0:
                if lists is None:
                    lists = [(windows, r)]
                else:
                    lists.append((windows, r))
        if lists is None:
            return ((INF, base),), lim, accel
        if len(lists) == 1:
            # One task's windows alone: merged, sorted and disjoint, so they are the pieces.
            windows, r = lists[0]
            pieces = []
            for start, stop in windows:
                if stop > t0:
                    if start > t0 and (not pieces or start > pieces[-1][0]):
                        pieces.append((start, base))
                    pieces.append((stop, base * r))
            pieces.append((INF, base))
            return pieces, lim, accel
        segs = []
        for windows, r in lists:
            for start, stop in windows:
                if stop > t0:
                    segs.append((start if start > t0 else t0, stop, r))
        points = []
        for start, stop, r in segs:
            points.append((start, r))
            points.append((stop, 1.0 / r))
        points.sort()
        pieces = []
        m, prev = base, t0
        for t, f in points:
            if t > prev:
                pieces.append((t, m))
                prev = t
            m *= f
        pieces.append((INF, base))
        return pieces, lim, accel

    def _set_clock(self, c: Customer, name: str, hc: HazardClock, pieces, lim: float, accel: bool, now: float):
        t = event_time(hc.curve, hc.entered, now, hc.budget, pieces)
        hc.exact = lim == INF
        if accel and t > lim:  # a program that raises the hazard may act past what is drawn: look again then
            t = lim
        c.clocks[name] = t

    def _start_hazard(self, c, name, curve, entered, budget, effect, base, spent=False):
        """Start the clock ``name``; ``spent=True`` means ``budget`` counts from ``entered``."""
        now = self.now
        if now >= c.sync_at:
            self._sync_programs(c, now)
        if spent:
            budget -= curve.cumhaz(now - entered)
        hc = c.hz[name] = HazardClock(curve, entered, budget, now, effect, base)
        pieces, lim, accel = self._pieces(c, effect, base, now)
        self._set_clock(c, name, hc, pieces, lim, accel, now)

    def _solve(self, c: Customer, name: str, now: float, base: float | None = None) -> None:
        """Use up the budget from the last solve to ``now`` under every touch since, then solve forward."""
        hc = c.hz[name]
        if now >= c.sync_at:
            self._sync_programs(c, now)
        pieces, lim, accel = self._pieces(c, hc.effect, hc.base, hc.t_last)
        if now > hc.t_last:
            hc.budget -= consumed(hc.curve, hc.entered, hc.t_last, now, pieces)
            hc.t_last = now
        if base is not None and base != hc.base:
            hc.base = base
            pieces, lim, accel = self._pieces(c, hc.effect, base, now)
        self._set_clock(c, name, hc, pieces, lim, accel, now)

    def _not_yet(self, c: Customer, name: str, now: float) -> bool:
        """A lower-bound clock came due: solve it exactly; true if the event is still ahead."""
        self._solve(c, name, now)
        return c.clocks[name] > now + _EPS

    def _odds_ratio(self, c: Customer, effect: int, now: float) -> tuple[float, bool]:
        """Product of the odds ratios of ``effect`` in force at ``now`` (touches and programs), and whether any is."""
        if now >= c.sync_at:
            self._sync_programs(c, now)
        ratio, touched = 1.0, False
        for eff, windows in c.win.values():
            r = eff[effect]
            if r != 1.0 and any(start <= now <= stop for start, stop in windows):
                ratio *= r
                touched = True
        return ratio, touched

    # ------------------------------------------------------------------ health

    def _become_at_risk(self, c: Customer, now: float, reason: str) -> None:
        if c.at_risk:
            return
        self._set_at_risk(c, True, now)
        seg = c.seg
        self.L["became_at_risk"][self._month(now)][seg.index] += 1
        if c.rec is not None:
            c.rec["at_risk_spells"].append([now, None, reason])
        self._start_hazard(c, "health", seg.curves["recovery"], now, c.draws.exp(S.RECOVERY), E_REC, 1.0)
        if "churn" in c.hz:
            self._solve(c, "churn", now, base=seg.spec.lifecycle.at_risk_churn_hazard_ratio)
        for task in c.tm.by_trigger.get("at_risk", ()):
            self._release(c, task)
        self._poke(c)

    def _recover(self, c: Customer, now: float) -> None:
        self._set_at_risk(c, False, now)
        seg = c.seg
        if c.rec is not None:
            c.rec["at_risk_spells"][-1][1] = now
        self._start_hazard(c, "health", seg.curves["at_risk"], now, c.draws.exp(S.AT_RISK), E_ATR, 1.0)
        if "churn" in c.hz:
            self._solve(c, "churn", now, base=1.0)

    # ------------------------------------------------------------------ renewal, ARR

    def _renew(self, c: Customer, now: float) -> None:
        seg = c.seg
        s = seg.index
        m = self._month(now)
        L = self.L
        before = c.arr
        if not seg.monthly:
            L["renewals_due"][m][s] += 1
            L["renewal_arr_due"][m][s] += before
            cv = seg.curves
            logit = cv["logit_at_risk"] if c.at_risk else cv["logit_healthy"]
            if c.stage <= ONBOARDING:
                logit += cv["log_or_not_activated"]
            ratio, touched = self._odds_ratio(c, E_RENEW, now)
            if touched:
                logit += math.log(ratio)
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
        L = self.L
        if u_contract < spec.contraction_probability.get("at_risk" if c.at_risk else "healthy", 0.0):
            frac = min(0.95, spec.contraction_mean_fraction * g / 2.0)
            delta = c.arr * frac
            c.arr -= delta
            L["contraction_arr"][m][s] += delta
            L["arr"][m][s] -= delta
            return
        stage = STAGES[max(c.stage, ONBOARDING)]
        p = spec.probability.get(stage, 0.0)
        if p <= 0.0:
            return
        odds = p / (1.0 - p) if p < 1.0 else INF
        odds *= self._odds_ratio(c, E_EXP, now)[0]
        if u_expand < odds / (1.0 + odds):
            delta = c.arr * spec.mean_fraction * g / 2.0
            c.arr += delta
            L["expansion_arr"][m][s] += delta
            L["arr"][m][s] += delta

    def _switch_touch_model(self, c: Customer, tm: TouchModel, now: float) -> None:
        for task in c.tm.tasks:
            c.clocks.pop(task, None)
        c.clocks.pop("window", None)
        self._end_programs(c, now, keep_effects=True)
        old = c.tm
        c.tm = tm
        if c.pod is not None:
            if old.uses_csm and not tm.uses_csm:
                c.pod.release(c)
            elif tm.uses_csm and not old.uses_csm:
                c.pod.assign(c)
        self._start_task_clocks(c, now, initial=False)
        for name in c.hz:  # schedules ended and started: solve again under the windows now known
            self._solve(c, name, now)
        self._set_renewal(c, c.clocks["renewal"])

    def _churn(self, c: Customer, now: float, reason: str) -> None:
        seg = c.seg
        s = seg.index
        m = self._month(now)
        c.alive = False
        c.ver += 1  # its calendar entries are stale
        L = self.L
        L["churned_logos"][m][s] += 1
        L["churned_arr"][m][s] += c.arr
        L["active"][m][s] -= 1
        L[STAGES[c.stage]][m][s] -= 1
        L["arr"][m][s] -= c.arr
        if c.at_risk:
            L["at_risk"][m][s] -= 1
        if c.progs:
            self._end_programs(c, now, keep_effects=False)
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
                self.at(now + delay, self._on_winback, (seg, c.k, c.episode + 1, c.arr * wb.arr_factor))

    def _on_winback(self, ev) -> None:
        seg, k, episode, arr = ev.value
        self._spawn(seg, k, episode=episode, arr=arr)

    # ------------------------------------------------------------------ touches

    def _release(self, c: Customer, task: Task) -> None:
        now = self.now
        m = self._month(now)
        s = c.seg.index
        L = self.L
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
        """``task``'s effect starts now: a clock it can only delay stays a lower bound, others are solved now."""
        if not c.alive or not task.has_effect:
            return
        entry = c.win.get(task.idx)
        if entry is None:
            c.win[task.idx] = (task.effects, [[now, now + task.effect_days]])
        else:
            windows = entry[1]
            if windows and now <= windows[-1][1]:  # the same touch again extends its effect, it does not stack
                windows[-1][1] = now + task.effect_days
            else:
                self._prune(c, windows)
                windows.append([now, now + task.effect_days])
        changed = False
        for name, hc in c.hz.items():
            r = task.effects[hc.effect]
            if r < 1.0:
                hc.exact = False
            elif r > 1.0:
                self._solve(c, name, now)
                changed = True
        if changed:
            self._poke(c)

    # Called by pods.

    def task_started(self, job: Job, pod_index: int, now: float, duration: float) -> None:
        m = self._month(now)
        s = job.customer.seg.index
        L = self.L
        wait = now - job.released
        L["tasks_delivered"][m][s] += 1
        L["wait_days_sum"][m][s] += wait
        if wait > 0.0:
            L["tasks_waited"][m][s] += 1
        if job.task.due is not None and wait > job.task.due:
            L["tasks_late"][m][s] += 1
        self._spread(self.ledger.pod["busy_days"], pod_index, now, min(now + duration, self.end))

    def task_done(self, job: Job) -> None:
        self._deliver(job.customer, job.task, self.now)

    def task_missed(self, job: Job) -> None:
        self.L["tasks_missed"][self._month(job.deadline)][job.customer.seg.index] += 1

    def task_waiting(self, job: Job) -> None:
        """``job`` is still queued at the horizon (its deadline not passed): backlog, overdue if past its due date."""
        s, m = job.customer.seg.index, self.months - 1
        self.L["tasks_waiting_at_end"][m][s] += 1
        if job.task.due is not None and self.now - job.released > job.task.due:
            self.L["tasks_overdue_at_end"][m][s] += 1

    def handoff(self, c: Customer) -> None:
        """``c``'s CSM left; it has been reassigned (or queued). A hand-off is a risk event."""
        now = self.now
        self.L["handoffs"][self._month(now)][c.seg.index] += 1
        if c.draws.u(S.HANDOFF) < c.pod.spec.handoff_risk:
            self._become_at_risk(c, now, "handoff")
        for task in c.tm.by_trigger.get("handoff", ()):
            self._release(c, task)

    def csm_changed(self, c: Customer, delta: int) -> None:
        """A pod gave ``c`` a named CSM (+1) or took it away (−1)."""
        self.L["with_csm"][self._month(self.now)][c.seg.index] += delta

    # ------------------------------------------------------------------ accounting

    def _spread(self, grid, col: int, t0: float, t1: float) -> None:
        """Add the length of [t0, t1] to ``grid[month][col]``, split at month boundaries."""
        while t1 > t0:
            m = self._month(t0)
            edge = (m + 1) * DAYS_PER_MONTH if m < self.months - 1 else t1
            stop = min(edge, t1)
            grid[m][col] += stop - t0
            t0 = stop

    def _snapshot_pods(self, m: int) -> None:
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
