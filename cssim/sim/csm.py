"""CSM pods: the capacity-limited resource that links headcount to retention.

A pod's CSMs work one task at a time from a shared queue ordered by
(priority, deadline, arrival). A heap replaces ``simpy.PriorityResource``:
with long backlogs its sorted-list inserts cost O(n) each, and it has no
notion of a deadline after which a request should be dropped rather than
served (see ``benchmarks/bench_queue.py``). Each CSM works at
``hours_per_week × customer_facing_share / 7`` task-hours per calendar day,
scaled by a linear ramp for new hires.

Accounts are assigned to named CSMs (up to ``book_cap`` each) so that
attrition hands specific accounts off; an account without a CSM gets no
CSM touches.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

from ..core import streams
from ..core.clock import DAYS_PER_MONTH

INF = math.inf


class CSM:
    """One customer success manager."""

    __slots__ = ("id", "hired", "left", "busy_until", "customers", "leaving", "active")

    def __init__(self, ident: int, hired: float):
        self.id = ident
        self.hired = hired
        self.left = INF
        self.busy_until = -INF
        self.customers: dict = {}  # insertion-ordered (a set of objects iterates by address)
        self.leaving = False
        self.active = True


class Job:
    """One task instance waiting for or receiving CSM time."""

    __slots__ = ("customer", "task", "released", "hours", "deadline")

    def __init__(self, customer, task, released: float, hours: float):
        self.customer = customer
        self.task = task
        self.released = released
        self.hours = hours
        self.deadline = released + task.deadline if task.deadline is not None else INF


class Pod:
    """CSMs serving a set of segments, their queue and their books."""

    def __init__(self, engine, index: int, name: str, spec):
        self.engine = engine
        self.index = index
        self.name = name
        self.spec = spec
        self.rate = spec.hours_per_week * spec.customer_facing_share / 7.0
        self.ramp_days = spec.ramp_months * DAYS_PER_MONTH
        self.rng = streams.generator(engine.seed, (engine.rep, streams.KIND_POD, streams.name_key(name)))
        self.csms: list[CSM] = []
        self.all_csms: list[CSM] = []
        self.idle: list[CSM] = []
        self.queue: list = []
        self.seq = 0
        self.waiting: deque = deque()
        self.books: list = []  # heap of (book size, id, csm); see _roomiest
        self.cap = spec.book_cap if spec.book_cap is not None else INF
        for _ in range(spec.headcount):
            self._add_csm(hired=-INF)
        for hire in spec.hires:
            engine.at(hire.month * DAYS_PER_MONTH, self._on_hire, hire.count)

    # ---------------------------------------------------------------- staffing

    def _add_csm(self, hired: float) -> CSM:
        csm = CSM(len(self.all_csms), hired)
        self.csms.append(csm)
        self.all_csms.append(csm)
        self.idle.append(csm)
        self._booked(csm)
        if self.spec.attrition_per_year > 0:
            stay = self.rng.exponential(365.25 / self.spec.attrition_per_year)
            start = max(hired, 0.0)
            self.engine.at(start + stay, self._on_leave, csm)
        self._fill_books()
        self._dispatch()
        return csm

    def _on_hire(self, ev) -> None:
        for _ in range(ev.value):
            self._add_csm(hired=self.engine.now)

    def _on_leave(self, ev) -> None:
        csm: CSM = ev.value
        now = self.engine.now
        csm.active = False
        self.csms.remove(csm)
        if csm in self.idle:
            self.idle.remove(csm)
            csm.left = now
        else:
            csm.leaving = True  # finishes the task in hand, then goes
        orphans = [c for c in csm.customers if c.alive]
        csm.customers.clear()
        for customer in reversed(orphans):
            customer.csm = None
            self.engine.csm_changed(customer, -1)
            self.assign(customer, front=True)
        for customer in orphans:
            self.engine.handoff(customer)
        self.engine.at(now + self.spec.backfill_days, self._on_backfill)

    def _on_backfill(self, _ev) -> None:
        self._add_csm(hired=self.engine.now)

    def productivity(self, csm: CSM, now: float) -> float:
        if self.ramp_days <= 0 or now - csm.hired >= self.ramp_days:
            return 1.0
        p0 = self.spec.ramp_start_productivity
        return p0 + (1.0 - p0) * (now - csm.hired) / self.ramp_days

    # ---------------------------------------------------------------- books

    def _roomiest(self) -> CSM | None:
        """The CSM with the smallest book (the earliest hired among equals), if that book has room.

        ``books`` is a heap of ``(book size, id, csm)`` pushed at every change of a book; an entry whose size
        is no longer the CSM's, or whose CSM has left, is stale and dropped when it reaches the top. So a
        choice costs O(log CSMs) rather than a scan of every CSM (a large book has hundreds of them).
        """
        books = self.books
        while books:
            n, _, csm = books[0]
            if csm.active and n == len(csm.customers):
                return csm if n < self.cap else None
            heapq.heappop(books)
        return None

    def _booked(self, csm: CSM) -> None:
        """``csm``'s book changed size: file its new size (and compact the heap when stale entries pile up)."""
        books = self.books
        heapq.heappush(books, (len(csm.customers), csm.id, csm))
        if len(books) > 4 * len(self.csms) + 64:
            books[:] = [(len(c.customers), c.id, c) for c in self.csms]
            heapq.heapify(books)

    def assign(self, customer, front: bool = False) -> None:
        """Give ``customer`` a named CSM with room in their book, or queue it for one."""
        best = self._roomiest()
        if best is None:
            customer.csm = None
            if front:
                self.waiting.appendleft(customer)
            else:
                self.waiting.append(customer)
            return
        self._give(customer, best)

    def _give(self, customer, csm: CSM) -> None:
        csm.customers[customer] = None
        customer.csm = csm
        self._booked(csm)
        self.engine.csm_changed(customer, 1)

    def release(self, customer) -> None:
        """``customer`` no longer needs a CSM (churned or moved to tech-touch)."""
        csm = customer.csm
        if csm is not None:
            csm.customers.pop(customer, None)
            customer.csm = None
            self._booked(csm)
            self.engine.csm_changed(customer, -1)
            self._fill_books()

    def _fill_books(self) -> None:
        while self.waiting:
            customer = self.waiting[0]
            if not customer.alive or customer.pod is not self or customer.csm is not None or not customer.tm.uses_csm:
                self.waiting.popleft()  # gone, served, or moved to a model without CSM work
                continue
            best = self._roomiest()
            if best is None:
                return
            self.waiting.popleft()
            self._give(customer, best)

    # ---------------------------------------------------------------- work

    def submit(self, job: Job) -> None:
        if self.idle and not self.queue:  # a CSM is free and nobody waits: start at once
            self._start(job, self.engine.now)
            return
        self.seq += 1
        heapq.heappush(self.queue, (job.task.priority, job.deadline, self.seq, job))
        self._dispatch()

    def _dispatch(self) -> None:
        while self.idle and self.queue:
            job = heapq.heappop(self.queue)[3]
            if not job.customer.alive:
                continue
            now = self.engine.now
            if job.deadline < now:
                self.engine.task_missed(job)
                continue
            self._start(job, now)

    def _start(self, job: Job, now: float) -> None:
        csm = self.idle.pop()
        duration = job.hours / (self.rate * self.productivity(csm, now))
        csm.busy_until = now + duration
        self.engine.task_started(job, self.index, now, duration)
        self.engine.at(now + duration, self._on_done, (csm, job))

    def _on_done(self, ev) -> None:
        csm, job = ev.value
        self.engine.task_done(job)
        if csm.leaving:
            csm.left = self.engine.now
        else:
            self.idle.append(csm)
        self._dispatch()

    def live_backlog(self) -> int:
        now = self.engine.now
        return sum(1 for *_, job in self.queue if job.customer.alive and job.deadline >= now)

    def expire_backlog(self) -> None:
        """At the horizon: queued tasks whose deadline has passed are missed; the rest are left waiting."""
        now = self.engine.now
        for *_, job in self.queue:
            if job.customer.alive:
                if job.deadline < now:
                    self.engine.task_missed(job)
                else:
                    self.engine.task_waiting(job)
        self.queue.clear()
