"""Helpers shared by the Monte Carlo benchmarks: the baseline, scaled, and peak-memory subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "scenarios" / "baseline.yaml"


def baseline_dict() -> dict:
    from cssim.model.loader import read_scenario_dict

    return read_scenario_dict(BASELINE)


def scaled(data: dict, factor: float) -> dict:
    """The scenario with every segment's initial book and new logos, and every pod's headcount, scaled."""
    import copy

    out = copy.deepcopy(data)
    for seg in out["segments"].values():
        seg["initial_customers"] = max(1, round(seg.get("initial_customers", 0) * factor))
        seg["new_logos_per_month"] = seg.get("new_logos_per_month", 0.0) * factor
    for pod in out.get("team", {}).get("pods", {}).values():
        pod["headcount"] = max(1, round(pod["headcount"] * factor)) if pod["headcount"] else 0
        for hire in pod.get("hires", []):
            hire["count"] = max(1, round(hire["count"] * factor))
    return out


def in_subprocess(code: str, timeout: float = 3600) -> dict:
    """Run ``code`` (which must print one JSON object last) in a fresh Python; add its peak RSS in MiB."""
    wrapper = code + (
        "\nimport resource as _r, json as _j\n"
        "print(_j.dumps({'peak_rss_mib': _r.getrusage(_r.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    done = subprocess.run([sys.executable, "-c", wrapper], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    out: dict = {}
    for line in done.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.update(json.loads(line))
    return out
