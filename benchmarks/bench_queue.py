"""CSM task queue: the heap used by ``cssim.sim.csm.Pod`` vs ``simpy.PriorityResource``.

A pod's queue holds every task waiting for CSM time; when demand exceeds
capacity the backlog grows to tens of thousands of tasks. This script measures
the cost of one enqueue and one dequeue at a given backlog for

- the heap of ``(priority, deadline, seq, job)`` tuples that ``Pod.submit`` /
  ``Pod._dispatch`` use (``heapq.heappush`` / ``heappop``), and
- ``simpy.PriorityResource`` (capacity 1, held busy): ``request(priority=...)``
  to enqueue, ``release`` of the user to dequeue the next request.

``PriorityResource`` re-sorts its whole queue on every insert and pops from
the front of a list, so building a 100k backlog through it takes many minutes;
the backlog is therefore filled with one bulk sort, and only the measured
operations go through the public API.

Run: ``python benchmarks/bench_queue.py`` (prints a table; takes ~1 minute).
"""

from __future__ import annotations

import heapq
import random
import time

import simpy

BACKLOGS = (10_000, 50_000, 100_000)
OPS = 400  # measured inserts and removals per backlog for PriorityResource
PRIORITIES = 5


class _Job:
    __slots__ = ("priority", "deadline")

    def __init__(self, priority: int, deadline: float):
        self.priority = priority
        self.deadline = deadline


def _jobs(n: int, seed: int) -> list[_Job]:
    rnd = random.Random(seed)
    return [_Job(rnd.randrange(PRIORITIES), rnd.uniform(0.0, 90.0)) for _ in range(n)]


def bench_heap(n: int) -> tuple[float, float]:
    """Microseconds per push (filling to ``n``) and per pop (draining from ``n``)."""
    jobs = _jobs(n, 1)
    queue: list = []
    push = heapq.heappush
    t0 = time.perf_counter()
    for seq, job in enumerate(jobs):
        push(queue, (job.priority, job.deadline, seq, job))
    t1 = time.perf_counter()
    pop = heapq.heappop
    for _ in range(n):
        pop(queue)
    t2 = time.perf_counter()
    return (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6


def bench_priority_resource(n: int) -> tuple[float, float]:
    """Microseconds per request and per release→next grant at a backlog of ``n``."""
    env = simpy.Environment()
    res = simpy.PriorityResource(env, capacity=1)
    holder = res.request(priority=0)
    jobs = _jobs(n + OPS, 2)
    # Fill the backlog with one sort instead of n sorted inserts.
    queue = res.put_queue
    queue.append = lambda item: list.append(queue, item)  # type: ignore[method-assign]
    for job in jobs[:n]:
        res.request(priority=job.priority)
    del queue.append
    list.sort(queue, key=lambda e: e.key)
    assert len(queue) == n
    # Measured inserts (each re-sorts the queue).
    t0 = time.perf_counter()
    for job in jobs[n:]:
        res.request(priority=job.priority)
    t1 = time.perf_counter()
    # Measured removals: release the current user; the front request is granted.
    while env.peek() < float("inf"):  # settle events of the fill (the holder's grant)
        env.step()
    current = holder
    t2 = time.perf_counter()
    step = env.step
    for _ in range(OPS):
        res.release(current)
        while not res.users:  # processing the release grants the front request
            step()
        current = res.users[0]
    t3 = time.perf_counter()
    return (t1 - t0) / OPS * 1e6, (t3 - t2) / OPS * 1e6


def main() -> None:
    print("CSM task queue: time per operation at a given backlog (µs; lower is better)")
    print(f"{'backlog':>9} | {'heap push':>10} {'heap pop':>10} | {'PR request':>11} {'PR release':>11} | {'PR/heap':>8}")
    print("-" * 74)
    for n in BACKLOGS:
        hp, hq = bench_heap(n)
        pp, pq = bench_priority_resource(n)
        ratio = (pp + pq) / (hp + hq)
        print(f"{n:>9,} | {hp:>10.2f} {hq:>10.2f} | {pp:>11.1f} {pq:>11.1f} | {ratio:>7.0f}x")
    print()
    print("heap: heapq on (priority, deadline, seq, job) tuples, as in cssim.sim.csm.Pod;")
    print("PR: simpy.PriorityResource(capacity=1) with a busy user; release grants the next request.")
    print("The heap also lets a pod drop tasks whose deadline has passed when they reach the front.")


if __name__ == "__main__":
    main()
