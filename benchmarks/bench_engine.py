"""Engine cost per customer-year against a bare SimPy loop timed in the same run, and the engine's wall-time goals.

Prints four tables:

1. cost per customer-year of one baseline replication, expressed in bare-SimPy
   events: (CPU µs per customer-year) ÷ (CPU µs per event of a bare SimPy loop
   of 1,000 processes that only ``yield env.timeout``), both timed in this run
   (goal: at most 30);
2. the same ratio for the baseline scaled to 1,000 … 100,000 initial
   customers, one replication each in a fresh subprocess with its peak memory
   (goal: the largest within 1.3× of the smallest);
3. wall times of what users run: the demo (``cssim run`` of the baseline, 40
   replications on 2 workers; goal ≤ 8 s), one replication of 20,000 customers
   × 60 months (≤ 10 s), 100,000 customers × 36 months (≤ 60 s, ≤ 2 GB);
4. with ``--plan``, the README's ``cssim plan`` example at 11 replications, the fewest its 80 % claim
   needs (goal ≤ 1 minute).

A customer-year is one customer active for one year (Σ month-end active logos
÷ 12).
The machine may be shared: CPU times are steadier than wall times, and the
ratios compare two timings taken side by side. Bare SimPy runs with ``env.run``; its event
count (each process's start, timeouts and end) is checked once with the public ``step``.

Run: ``python benchmarks/bench_engine.py [--reps 3] [--sizes 1000 10000 100000] [--skip-large] [--plan] [--profile]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _montecarlo import BASELINE, ROOT, baseline_dict, in_subprocess, scaled

BARE_PROCESSES = 1000
BARE_EVENTS = 200_000
PLAN_EXAMPLE = [
    "plan", str(BASELINE), "--target", "touch_miss_rate[smb] <= 0.05", "--over", "team.pods.smb.headcount",
    "--replications", "11", "--quiet",
]


def _bare_env(n_procs: int, per_proc: int):
    import random

    import simpy

    rnd = random.Random(0)
    delays = [rnd.expovariate(1.0) for _ in range(4096)]

    def proc(env, offset):
        timeout = env.timeout
        for i in range(per_proc):
            yield timeout(delays[(offset + i) & 4095])

    env = simpy.Environment()
    for p in range(n_procs):
        env.process(proc(env, p * 7))
    return env


def bare_events(n_procs: int, per_proc: int) -> int:
    """Events such a loop processes: each process's start, its timeouts and its end (counted with ``step``)."""
    return n_procs * (per_proc + 2)


def _check_event_count() -> None:
    env = _bare_env(10, 5)
    steps = 0
    while env.peek() < float("inf"):
        env.step()
        steps += 1
    assert steps == bare_events(10, 5), steps


def bare_us_per_event(n_procs: int = BARE_PROCESSES, n_events: int = BARE_EVENTS, repeats: int = 5) -> float:
    """CPU µs per event of ``n_procs`` SimPy processes sleeping exponential times (``env.run``, no counting cost).

    The median of ``repeats`` runs: one run of a fraction of a second varies by tens of percent on a shared
    machine, and every ratio in this script divides by it.
    """
    per_proc = n_events // n_procs
    times = []
    for _ in range(repeats):
        env = _bare_env(n_procs, per_proc)
        t0 = time.process_time()
        env.run()
        times.append((time.process_time() - t0) / bare_events(n_procs, per_proc) * 1e6)
    return statistics.median(times)


def engine_us_per_customer_year(scenario, rep: int) -> tuple[float, float, float]:
    """CPU µs per customer-year, CPU seconds and customer-years of one replication (construction included)."""
    from cssim.sim.engine import Engine

    t0 = time.process_time()
    arrays = Engine(scenario, rep).run().arrays()
    cpu = time.process_time() - t0
    customer_years = float(arrays["segment"]["active"].sum() / 12.0)
    return cpu / customer_years * 1e6, cpu, customer_years


CHILD = """
import json, time
from cssim import scenario_from_dict
from cssim.sim.engine import Engine
data = json.loads({data!r})
s = scenario_from_dict(data, source="scaled baseline")
w0, c0 = time.perf_counter(), time.process_time()
arrays = Engine(s, 0).run().arrays()
wall, cpu = time.perf_counter() - w0, time.process_time() - c0
sys_bare = __import__("bench_engine").bare_us_per_event()
print(json.dumps({{"wall": wall, "cpu": cpu, "customer_years": float(arrays["segment"]["active"].sum() / 12.0),
                   "bare": sys_bare}}))
"""


def run_scaled(initial: int, months: int | None = None) -> dict:
    """One replication of the baseline scaled to ``initial`` customers (and ``months``), in a fresh process."""
    base = baseline_dict()
    total = sum(seg.get("initial_customers", 0) for seg in base["segments"].values())
    data = scaled(base, initial / total)
    if months is not None:
        data["horizon_months"] = months
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n" + CHILD.format(
        data=json.dumps(data, default=str)
    )
    return in_subprocess(code)


def print_profile(scenario, top: int = 15) -> None:
    """cProfile one baseline replication: the functions with the most own time."""
    import cProfile
    import pstats

    from cssim.sim.engine import Engine

    prof = cProfile.Profile()
    prof.enable()
    Engine(scenario, 0).run()
    prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]
    print("Profile of one baseline replication (cProfile; own time, profiler overhead included)")
    for (path, line, name), (_cc, nc, tt, ct, _callers) in rows:
        print(f"   {tt / total:>6.1%} own {ct / total:>6.1%} cum {nc:>8,} calls  {Path(path).name}:{line} {name}")


def timed_command(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cssim.cli", *args], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="baseline replications to time (default 3)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--skip-large", action="store_true", help="skip tables 2 and 3's large scenarios")
    parser.add_argument("--plan", action="store_true", help="time the README's plan example too")
    parser.add_argument("--profile", action="store_true", help="print where one baseline replication spends its time")
    args = parser.parse_args()

    import cssim

    _check_event_count()
    scenario = cssim.load_scenario(BASELINE)
    engine_us_per_customer_year(scenario, 0)  # warm caches and imports

    print("1. Cost per customer-year of the baseline, in bare-SimPy events (CPU time; goal ≤ 30)")
    print(f"{'rep':>4} {'customer-years':>15} {'cssim CPU s':>12} {'µs/customer-year':>17} "
          f"{'bare µs/event':>14} {'bare events/customer-year':>26}")
    ratios = []
    for rep in range(args.reps):
        bare = bare_us_per_event()
        per_cy, cpu, cy = engine_us_per_customer_year(scenario, rep)
        ratios.append(per_cy / bare)
        print(f"{rep:>4} {cy:>15,.0f} {cpu:>12.3f} {per_cy:>17.1f} {bare:>14.2f} {ratios[-1]:>26.1f}")
    ratios.sort()
    print(f"median: {ratios[len(ratios) // 2]:.1f} bare-SimPy events per customer-year")
    print()
    if args.profile:
        print_profile(scenario)
        print()
    if args.skip_large:
        return

    print("2. Scaling: the baseline scaled to N initial customers, 36 months, one replication per fresh process")
    print(f"{'customers':>10} {'customer-years':>15} {'CPU s':>8} {'µs/customer-year':>17} {'bare µs/event':>14} "
          f"{'bare events/cy':>15} {'peak RSS MiB':>13}")
    scale = []
    for n in args.sizes:
        r = run_scaled(n)
        per = r["cpu"] / r["customer_years"] * 1e6
        scale.append(per / r["bare"])
        print(f"{n:>10,} {r['customer_years']:>15,.0f} {r['cpu']:>8.1f} {per:>17.1f} {r['bare']:>14.2f} "
              f"{scale[-1]:>15.1f} {r['peak_rss_mib']:>13.0f}", flush=True)
    print(f"largest / smallest: {scale[-1] / scale[0]:.2f}x (goal ≤ 1.3x)")
    print()

    print("3. Wall times (goals: demo ≤ 8 s; 20,000 × 60 months ≤ 10 s; 100,000 × 36 months ≤ 60 s and ≤ 2 GB)")
    demo = timed_command(["run", str(BASELINE), "--out", str(ROOT / "results" / ".bench-demo"), "--force",
                          "--quiet", "--jobs", "2"])
    print(f"   demo: cssim run baseline, 40 replications, 2 workers   {demo:6.1f} s")
    large = run_scaled(20_000, months=60)
    print(f"   20,000 customers × 60 months, one replication         {large['wall']:6.1f} s "
          f"(CPU {large['cpu']:.1f} s, peak {large['peak_rss_mib']:.0f} MiB)")
    huge = run_scaled(100_000, months=36)
    print(f"   100,000 customers × 36 months, one replication        {huge['wall']:6.1f} s "
          f"(CPU {huge['cpu']:.1f} s, peak {huge['peak_rss_mib']:.0f} MiB)")
    if args.plan:
        print()
        print("4. The README's plan example (11 replications, 2 workers; goal ≤ 60 s)")
        print(f"   cssim {' '.join(PLAN_EXAMPLE[:1])} … {timed_command(PLAN_EXAMPLE + ['--jobs', '2']):.1f} s")


if __name__ == "__main__":
    main()
