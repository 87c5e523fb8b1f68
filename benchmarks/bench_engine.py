"""Engine speed and scale: events per second against bare SimPy, replication times, peak memory.

Prints three tables:

1. the engine's event rate on one replication of ``scenarios/baseline.yaml``
   against a bare SimPy loop (processes that only ``yield env.timeout``)
   processing the same number of events in the same run — the issue's goal is
   cssim at ≥ 50 % of the bare rate;
2. wall time of single replications of the baseline;
3. a 20,000-customer, 5-year scenario derived from the baseline (every
   segment's initial book, new logos, headcount and hires scaled up), timed
   in a fresh subprocess that also reports its peak resident memory.

An "event" is one SimPy event processed by ``Environment.step`` (timeouts,
process starts and resumptions, interrupts), counted from the environment's
event-id counter minus the events still queued at the horizon.

Run: ``python benchmarks/bench_engine.py [--reps N] [--skip-large] [--profile]``. The
machine's other load makes the figures noisy; compare runs on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "scenarios" / "baseline.yaml"
LARGE_CUSTOMERS = 20_000
LARGE_MONTHS = 60


def processed_events(env) -> int:
    """Events processed so far: ids handed out minus events still in the queue."""
    scheduled = next(env._eid)  # SimPy's event-id counter (itertools.count)
    return scheduled - len(env._queue)


def run_engine(scenario, rep: int) -> tuple[float, int]:
    """Wall seconds (construction + run) and processed events of one replication."""
    from cssim.engine import Engine

    t0 = time.perf_counter()
    engine = Engine(scenario, rep)
    engine.run()
    return time.perf_counter() - t0, processed_events(engine.env)


def run_bare(n_events: int, n_procs: int = 1000) -> tuple[float, int]:
    """A bare SimPy loop: ``n_procs`` processes sleeping exponential times until ``n_events`` are processed."""
    import random

    import simpy

    rnd = random.Random(0)
    delays = [rnd.expovariate(1.0) for _ in range(4096)]
    per_proc = max(1, n_events // n_procs - 2)  # + start and end event of each process

    def proc(env, offset):
        timeout = env.timeout
        for i in range(per_proc):
            yield timeout(delays[(offset + i) & 4095])

    t0 = time.perf_counter()
    env = simpy.Environment()
    for p in range(n_procs):
        env.process(proc(env, p * 7))
    env.run()
    return time.perf_counter() - t0, processed_events(env)


def print_profile(scenario, top: int = 12) -> None:
    """cProfile one replication: share of time inside SimPy itself vs cssim's model code, and the top functions."""
    import cProfile
    import pstats

    from cssim.engine import Engine

    prof = cProfile.Profile()
    prof.enable()
    Engine(scenario, 0).run()
    prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt
    by_area: dict[str, float] = {}
    for (path, _line, _name), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
        area = "simpy" if "simpy" in path else "cssim" if "cssim" in path else "builtins/numpy"
        by_area[area] = by_area.get(area, 0.0) + tt
    print("Profile of one baseline replication (cProfile; own time, profiler overhead included)")
    for area, tt in sorted(by_area.items(), key=lambda kv: -kv[1]):
        print(f"   {area:<15} {tt / total:>6.1%}")
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]
    for (path, line, name), (_cc, nc, tt, ct, _callers) in rows:
        print(f"   {tt / total:>6.1%} own {ct / total:>6.1%} cum {nc:>8,} calls  {Path(path).name}:{line} {name}")


def large_scenario_dict() -> dict:
    """The baseline scaled to a 20,000-customer initial book over 5 years."""
    from cssim.loader import read_scenario_dict, set_path

    data = read_scenario_dict(BASELINE)
    total = sum(seg.get("initial_customers", 0) for seg in data["segments"].values())
    factor = LARGE_CUSTOMERS / total
    data = set_path(data, "horizon_months", LARGE_MONTHS)
    for name, seg in data["segments"].items():
        data = set_path(data, f"segments.{name}.initial_customers", round(seg.get("initial_customers", 0) * factor))
        data = set_path(data, f"segments.{name}.new_logos_per_month", seg.get("new_logos_per_month", 0) * factor)
    for name, pod in data.get("team", {}).get("pods", {}).items():
        data = set_path(data, f"team.pods.{name}.headcount", max(1, round(pod["headcount"] * factor)))
        hires = [{**h, "count": max(1, round(h["count"] * factor))} for h in pod.get("hires", [])]
        data = set_path(data, f"team.pods.{name}.hires", hires)
    return data


def _child_large() -> None:
    """Subprocess body: run the large scenario once and print JSON figures."""
    import resource

    from cssim.loader import scenario_from_dict

    scenario = scenario_from_dict(large_scenario_dict(), source="large")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    seconds, events = run_engine(scenario, 0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    customers = sum(s.initial_customers for s in scenario.segments.values())
    new = sum(s.new_logos_per_month for s in scenario.segments.values()) * scenario.horizon_months
    print(json.dumps({
        "seconds": seconds, "events": events, "rss_before_mb": before, "peak_rss_mb": peak,
        "initial_customers": customers, "expected_new_logos": new, "months": scenario.horizon_months,
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="baseline replications to time (default 3)")
    parser.add_argument("--skip-large", action="store_true", help="skip the 20,000-customer scenario")
    parser.add_argument("--profile", action="store_true", help="print where one baseline replication spends its time")
    args = parser.parse_args()

    import cssim

    scenario = cssim.load_scenario(BASELINE)
    run_engine(scenario, 0)  # warm caches and imports

    print("1. Event rate: one baseline replication vs a bare SimPy loop with the same number of events")
    rows = []
    for rep in range(args.reps):
        t_eng, n_eng = run_engine(scenario, rep)
        t_bare, n_bare = run_bare(n_eng)
        rows.append((rep, n_eng, t_eng, n_bare, t_bare))
    print(f"{'rep':>4} | {'events':>9} {'cssim s':>8} {'µs/event':>9} {'events/s':>10} | "
          f"{'bare events':>11} {'bare s':>7} {'µs/event':>9} | {'cssim/bare rate':>15}")
    print("-" * 100)
    for rep, n_eng, t_eng, n_bare, t_bare in rows:
        rate, bare_rate = n_eng / t_eng, n_bare / t_bare
        print(f"{rep:>4} | {n_eng:>9,} {t_eng:>8.2f} {1e6 / rate:>9.2f} {rate:>10,.0f} | "
              f"{n_bare:>11,} {t_bare:>7.2f} {1e6 / bare_rate:>9.2f} | {rate / bare_rate:>14.1%}")
    ratios = [(n / t) / (nb / tb) for _, n, t, nb, tb in rows]
    print(f"cssim runs at {sum(ratios) / len(ratios):.1%} of bare SimPy's event rate (goal ≥ 50 %).")
    print()

    times = [r[2] for r in rows]
    mean = sum(times) / len(times)
    sd = math.sqrt(sum((t - mean) ** 2 for t in times) / max(1, len(times) - 1))
    n_customers = sum(s.initial_customers for s in scenario.segments.values())
    print("2. One replication of scenarios/baseline.yaml")
    print(f"   {n_customers:,} initial customers, {scenario.horizon_months} months: "
          f"{mean:.2f} s per replication (sd {sd:.2f} s over {len(times)}); "
          f"{scenario.replications} replications ≈ {mean * scenario.replications:.0f} s on one core")
    print()

    if args.profile:
        print_profile(scenario)
        print()
    if args.skip_large:
        return
    print(f"3. Large scenario: baseline scaled to {LARGE_CUSTOMERS:,} initial customers, {LARGE_MONTHS} months "
          "(fresh subprocess)")
    out = subprocess.run(
        [sys.executable, __file__, "--child-large"], capture_output=True, text=True, check=True, cwd=ROOT
    )
    fig = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"   initial customers {fig['initial_customers']:,}, ~{fig['expected_new_logos']:,.0f} new logos expected")
    print(f"   time            {fig['seconds']:.1f} s for one replication")
    print(f"   events          {fig['events']:,} ({1e6 * fig['seconds'] / fig['events']:.2f} µs/event)")
    print(f"   peak RSS        {fig['peak_rss_mb']:.0f} MB (of which {fig['rss_before_mb']:.0f} MB "
          "interpreter, libraries and scenario before the run)")


if __name__ == "__main__":
    if "--child-large" in sys.argv:
        _child_large()
    else:
        main()
