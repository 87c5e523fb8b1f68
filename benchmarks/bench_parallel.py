"""Parallel speedup of ``cssim run`` on the baseline: 2 worker processes against 1.

Goal (issue 4): ≥ 1.8× on 2 cores. Each run is a fresh ``cssim run`` process
(start-up, simulation and writing the results folder included), best of
``--repeat`` runs. The machine may be shared: figures are noisy. With few
replications the workers' start-up dominates (8 replications: ~1.4×).

Run: ``python benchmarks/bench_parallel.py [--replications 40] [--repeat 1]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _montecarlo import BASELINE, ROOT


def wall(jobs: int, reps: int, out: Path) -> float:
    cmd = [sys.executable, "-m", "cssim.cli", "run", str(BASELINE), "-n", str(reps), "--jobs", str(jobs),
           "--quiet", "--force", "--out", str(out)]
    t = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replications", type=int, default=40)  # the baseline's own count
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    print(f"cores visible: {os.cpu_count()}; load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        times = {}
        for jobs in (1, 2):
            times[jobs] = min(wall(jobs, args.replications, Path(tmp) / f"j{jobs}") for _ in range(args.repeat))
            print(f"cssim run baseline -n {args.replications} --jobs {jobs}: {times[jobs]:.1f} s")
    print(f"speedup 2 vs 1 worker: {times[1] / times[2]:.2f}x (goal >= 1.8x)")


if __name__ == "__main__":
    main()
