"""Where replications run: in this process, in joblib/loky worker processes, or on a Dask cluster.

Every backend runs the same task function, :func:`run_batch`, on a
``(scenario, replication ids)`` pair. A replication's random streams are keyed
by ``(seed, replication id)``, so a task carries everything that decides its
result and the result does not depend on which worker ran it, how many
workers there were, or in which order tasks finished.

Results come back one batch at a time, as each finishes, and are copied into
preallocated arrays (:class:`ReplicationStack`): memory holds one small ledger
per replication (months × segments numbers), never per-event data.

Dask treats a task as pure by default — two submissions with equal arguments
share one result. Two batches never have equal arguments here (their
replication ids differ), but every submission still gets a unique key and
``pure=False`` so that a re-submitted batch is always recomputed, not looked up.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..core.errors import PlanError
from ..core.progress import progress_bar_class
from ..model.scenario import Scenario
from .engine import run_replication

__all__ = ["Task", "run_batch", "execute", "ReplicationStack", "n_workers", "batches"]


def run_batch(scenario: Scenario, reps: Sequence[int]) -> list[dict]:
    """The one task function: ledger arrays of replications ``reps`` of ``scenario``, in order."""
    return [run_replication(scenario, int(r))[0] for r in reps]


#: Seconds between a worker's checks that the process that started it is still alive.
PARENT_POLL_SECONDS = 1.0
#: Seconds to wait for a Dask scheduler to answer (connection and handshake) before giving up.
DASK_CONNECT_TIMEOUT = 10.0
_WATCHDOG: list[int] = []  # the parent pid a worker's watchdog follows (empty in the main process)


def _exit_with_parent(parent: int | None = None) -> None:
    """In a worker process: exit as soon as ``parent`` (default: the current parent) is gone.

    Started as the loky workers' initializer with the main process's pid, so a
    worker that starts after ``kill -9`` of ``cssim run -j 2`` exits at once, and
    one that is computing exits within :data:`PARENT_POLL_SECONDS`: an orphaned
    worker is re-parented, so its parent pid changes; a daemon thread polls for
    that and ends the process instead of leaving it to finish work nobody will read.
    """
    import os
    import threading
    import time

    if _WATCHDOG:
        return
    parent = os.getppid() if parent is None else parent
    _WATCHDOG.append(parent)
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="cssim-parent-watchdog", daemon=True).start()


def _tagged(tag: int, scenario: Scenario, reps: Sequence[int]) -> tuple[int, list[dict]]:
    # joblib's unordered generator returns bare results; the tag says which task it was.
    return tag, run_batch(scenario, reps)


@dataclass(frozen=True)
class Task:
    """A batch of replications of one scenario."""

    scenario: Scenario
    reps: tuple[int, ...]


def n_workers(jobs: int | None) -> int:
    """Worker count for ``jobs`` (``None`` or negative: all cores, joblib-style ``-1``)."""
    if jobs is None or jobs < 0:
        from joblib import cpu_count

        count = cpu_count()
        return max(1, count + 1 + jobs) if jobs is not None and jobs < -1 else count
    if jobs == 0:
        raise PlanError("jobs: must be a positive number of workers, or -1 for all cores (got 0)")
    return jobs


def batches(reps: Sequence[int], size: int) -> list[tuple[int, ...]]:
    """Split replication ids into consecutive batches of at most ``size``."""
    reps = [int(r) for r in reps]
    size = max(1, int(size))
    return [tuple(reps[i : i + size]) for i in range(0, len(reps), size)]


def execute(
    tasks: Sequence[Task],
    jobs: int | None = 1,
    dask=None,
) -> Iterator[tuple[int, list[dict]]]:
    """Run ``tasks`` and yield ``(task index, result)`` as each one finishes (in any order).

    Parameters
    ----------
    tasks : sequence of Task
    jobs : int
        ``1`` runs in this process; more uses joblib's loky process pool;
        ``-1`` (or None) uses every core. With ``dask`` it is the number of
        workers of a ``"local"`` cluster.
    dask : str or distributed.Client, optional
        A scheduler address (``"tcp://host:8786"``), ``"local"`` for a
        :class:`distributed.LocalCluster` on this machine, or a connected
        ``Client`` (left open afterwards).

    Stopping the iteration early (Ctrl-C, an exception in the consumer)
    cancels what has not finished; what was yielded stays with the consumer.
    """
    if not tasks:
        return
    if dask is not None:
        yield from _execute_dask(tasks, jobs, dask)
        return
    workers = min(n_workers(jobs), len(tasks))
    if workers == 1:
        for i, task in enumerate(tasks):
            yield i, run_batch(task.scenario, task.reps)
        return
    # Each worker watches its parent from the moment it starts (not only once it has a task).
    import os

    from joblib import Parallel, delayed, parallel_config

    with parallel_config(backend="loky", initializer=_exit_with_parent, initargs=(os.getpid(),)):
        parallel = Parallel(n_jobs=workers, return_as="generator_unordered")
    yield from parallel(delayed(_tagged)(i, t.scenario, t.reps) for i, t in enumerate(tasks))


@contextmanager
def _dask_client(dask, jobs: int | None):
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - a dependency, but say so plainly
        raise PlanError("--dask needs the 'distributed' package (pip install 'dask[distributed]')") from None
    if isinstance(dask, Client):
        yield dask
        return
    if not isinstance(dask, str) or not dask.strip():
        raise PlanError(f"dask: expected a scheduler address or 'local', got {dask!r}")
    if dask == "local":
        cluster = LocalCluster(
            n_workers=n_workers(jobs), threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    client = _connect(Client, dask, DASK_CONNECT_TIMEOUT)

    try:
        yield client
    finally:
        client.close()


def _connect(client_class, address: str, timeout: float):
    """A Client of the scheduler at ``address``, or a one-line PlanError within ``timeout`` seconds.

    ``Client(timeout=...)`` bounds the TCP connection but not the handshake: a
    socket that accepts and never answers like a scheduler would hold it for
    minutes. The connection runs in a daemon thread that is abandoned at the deadline.
    """
    import threading

    box: dict = {}

    def connect() -> None:
        try:
            box["client"] = client_class(address, timeout=f"{timeout}s")
        except BaseException as exc:  # noqa: BLE001 - any failure means "no scheduler there"
            box["error"] = exc

    thread = threading.Thread(target=connect, name="cssim-dask-connect", daemon=True)
    thread.start()
    thread.join(timeout)
    if "client" in box:
        return box["client"]
    exc = box.get("error")
    reason = (str(exc).splitlines() or [type(exc).__name__])[0] if exc is not None else "no answer"
    raise PlanError(
        f"--dask {address}: no Dask scheduler answered within {timeout:g} s ({reason}); give the address of a "
        "running scheduler (tcp://host:8786) or 'local'"
    )


def _execute_dask(tasks: Sequence[Task], jobs: int | None, dask) -> Iterator[tuple[int, list[dict]]]:
    from distributed import as_completed

    run = uuid.uuid4().hex[:12]
    with _dask_client(dask, jobs) as client:
        futures = {}
        for i, task in enumerate(tasks):
            fut = client.submit(
                run_batch, task.scenario, list(task.reps), key=f"cssim-batch-{run}-{i}", pure=False
            )
            futures[fut] = i
        try:
            for fut, result in as_completed(list(futures), with_results=True):
                yield futures[fut], result
        finally:
            client.cancel([f for f in futures if not f.done()])


class ReplicationStack:
    """Ledger arrays of ``n`` replications, filled slot by slot as replications finish.

    The first result fixes the shapes; arrays are allocated once with a leading
    replication axis, so nothing grows or is copied as results arrive.
    """

    def __init__(self, n: int):
        self.n = n
        self.arrays: dict[str, dict[str, np.ndarray]] | None = None
        self.filled = np.zeros(n, dtype=bool)

    def put(self, slot: int, arrays: dict) -> None:
        if self.arrays is None:
            self.arrays = {
                group: {name: np.empty((self.n, *np.shape(a)), dtype=float) for name, a in series.items()}
                for group, series in arrays.items()
            }
        for group, series in arrays.items():
            for name, a in series.items():
                self.arrays[group][name][slot] = a
        self.filled[slot] = True

    @property
    def complete(self) -> bool:
        return bool(self.filled.all())


def simulate_tasks(
    items: Sequence[tuple[Scenario, Sequence[int]]],
    batch_size: int | None = None,
    jobs: int | None = 1,
    dask=None,
    progress: bool = False,
    desc: str = "replications",
    lookup: Callable[[Scenario, tuple[int, ...]], list[dict] | None] | None = None,
    store: Callable[[Scenario, tuple[int, ...], list[dict]], None] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> tuple[list[dict], dict]:
    """Simulate several scenarios' replications in one pool and stack each scenario's results.

    ``items`` are ``(scenario, replication ids)`` pairs. Replications are cut
    into batches (``batch_size``; default: one replication per batch in this
    process, else about four batches per worker per scenario); ``lookup`` may supply a finished batch (a cache) and ``store``
    receives each batch as it finishes. ``on_batch(done, total)`` is called
    after each computed batch. Returns the stacked arrays of each item and
    counts ``{"computed": …, "cached": …}`` of batches.
    """
    tqdm = progress_bar_class(progress)
    workers = n_workers(jobs)
    stacks = [ReplicationStack(len(reps)) for _, reps in items]
    slots = [{int(r): k for k, r in enumerate(reps)} for _, reps in items]
    owner: list[int] = []
    tasks: list[Task] = []
    cached = 0
    total_reps = sum(len(reps) for _, reps in items)
    point_bar = None
    with tqdm(total=total_reps, disable=not progress, desc=desc, unit="rep", leave=False) as bar:
        if len(items) > 1:
            point_bar = tqdm(total=len(items), disable=not progress, desc="points", unit="point", leave=False)
        for j, (scenario, reps) in enumerate(items):
            size = batch_size or (1 if workers == 1 and dask is None else max(1, -(-len(reps) // (workers * 4))))
            for b in batches(reps, size):
                found = lookup(scenario, b) if lookup is not None else None
                if found is not None:
                    for r, arrays in zip(b, found, strict=True):
                        stacks[j].put(slots[j][r], arrays)
                    cached += 1
                    bar.update(len(b))
                else:
                    tasks.append(Task(scenario, b))
                    owner.append(j)
            if point_bar is not None and stacks[j].complete:
                point_bar.update(1)
        done = 0
        for i, result in execute(tasks, jobs=jobs, dask=dask):
            task, j = tasks[i], owner[i]
            if store is not None:
                store(task.scenario, task.reps, result)
            for r, arrays in zip(task.reps, result, strict=True):
                stacks[j].put(slots[j][r], arrays)
            del result
            done += 1
            bar.update(len(task.reps))
            if point_bar is not None and stacks[j].complete:
                point_bar.update(1)
            if on_batch is not None:
                on_batch(done, len(tasks))
        if point_bar is not None:
            point_bar.close()
    return [s.arrays for s in stacks], {"computed": len(tasks), "cached": cached}

