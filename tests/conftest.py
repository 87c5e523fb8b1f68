"""Shared fixtures: a small fast scenario, helpers to write and load it, and a guard on global RNG state.

Randomness in cssim is always an explicit ``numpy.random.Generator``; a test
that leaves numpy's global random state changed (directly, or through a
library such as statsmodels that seeds it) fails, as in statsmodels' own suite.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from cssim import scenario_from_dict

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


def small_scenario_dict() -> dict:
    """A few dozen customers over 18 months: an annual and a monthly-billing segment,
    one pod with a book cap and attrition, a high-touch and a tech-touch model, win-back."""
    return {
        "name": "tiny",
        "horizon_months": 18,
        "seed": 7,
        "replications": 3,
        "segments": {
            "enterprise": {
                "initial_customers": 20,
                "new_logos_per_month": 1.0,
                "arr": {"median": 50_000, "sigma": 0.5, "min": 10_000},
                "contract": {"term_months": 12, "billing": "annual"},
                "touch_model": "high_touch",
                "winback": {"probability": 0.2, "delay": {"family": "exponential", "scale": 60}},
            },
            "smb": {
                "initial_customers": 30,
                "new_logos_per_month": 2.0,
                "arr": {"median": 5_000, "sigma": 0.6, "min": 1_000},
                "contract": {"term_months": 12, "billing": "monthly"},
                "touch_model": "tech_touch",
                "lifecycle": {"churn": {"family": "exponential", "scale": 700}},
                "winback": {"probability": 0.3, "delay": {"family": "exponential", "scale": 60}},
            },
        },
        "touch_models": {
            "high_touch": {
                "tasks": {
                    "kickoff": {
                        "trigger": "onboarding",
                        "hours": 6,
                        "priority": 1,
                        "due_days": 7,
                        "deadline_days": 30,
                        "effects": {"onboarding": 1.5},
                    },
                    "check_in": {
                        "trigger": "cadence",
                        "every_days": 30,
                        "hours": 1,
                        "priority": 4,
                        "due_days": 7,
                        "deadline_days": 21,
                        "effects": {"at_risk": 0.7},
                    },
                    "renewal_prep": {
                        "trigger": "renewal_window",
                        "hours": 4,
                        "priority": 2,
                        "deadline_days": 60,
                        "effects": {"renewal_odds": 2.0},
                    },
                    "rescue": {
                        "trigger": "at_risk",
                        "hours": 3,
                        "priority": 0,
                        "deadline_days": 14,
                        "effects": {"recovery": 2.0},
                    },
                }
            },
            "tech_touch": {
                "tasks": {
                    "webinar": {"trigger": "onboarding", "hours": 0, "reach": 0.5, "effects": {"onboarding": 1.2}},
                    "nudge": {
                        "trigger": "cadence",
                        "every_days": 30,
                        "hours": 0,
                        "reach": 0.6,
                        "effects": {"at_risk": 0.9},
                    },
                }
            },
        },
        "team": {
            "pods": {
                "enterprise": {
                    "segments": ["enterprise"],
                    "headcount": 2,
                    "book_cap": 15,
                    "attrition_per_year": 0.5,
                    "backfill_days": 30,
                    "hires": [{"month": 6, "count": 1}],
                }
            }
        },
    }


@pytest.fixture
def scenario_dict() -> dict:
    """A fresh copy of the small scenario as a plain dict (mutate freely)."""
    return copy.deepcopy(small_scenario_dict())


@pytest.fixture
def small_scenario(scenario_dict):
    """The small scenario, validated."""
    return scenario_from_dict(scenario_dict, source="small_scenario")


def write_yaml(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def scenario_file(tmp_path, scenario_dict) -> Path:
    """The small scenario written to ``tmp_path/scenarios/tiny.yaml``."""
    return write_yaml(tmp_path / "scenarios" / "tiny.yaml", scenario_dict)


@pytest.fixture
def make_scenario_file(tmp_path):
    """Write a dict (or raw text) as a YAML file under ``tmp_path`` and return its path."""

    def make(name: str, data) -> Path:
        path = tmp_path / name
        if isinstance(data, str):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(data, encoding="utf-8")
            return path
        return write_yaml(path, data)

    return make


def _same_state(a, b) -> bool:
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and tuple(a[2:]) == tuple(b[2:])


@pytest.fixture(autouse=True)
def no_global_random_state(request):
    """Fail any test that reads or reseeds numpy's global random state."""
    before = np.random.get_state()
    yield
    after = np.random.get_state()
    if not _same_state(before, after):
        np.random.set_state(before)
        pytest.fail(
            f"{request.node.nodeid} changed numpy's global random state; pass a numpy.random.Generator instead",
            pytrace=False,
        )


# --------------------------------------------------------------------------- headless Chromium (browser tests)

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _missing_browser_parts() -> list[str]:
    import shutil

    missing = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install selenium)")
    if not any(shutil.which(b) for b in BROWSERS):
        missing.append("a Chromium browser (apt-get install chromium)")
    if not shutil.which("chromedriver"):
        missing.append("chromedriver (apt-get install chromium-driver)")
    return missing


def headless_chromium(window_size: str, *extra_args: str):
    """A headless Chromium driven by selenium (a generator for a fixture to yield from).

    Without the browser, its driver or selenium the test is skipped naming what is missing, except under CI
    (``CI`` set), where ``.ci/run`` installs them and their absence is a failure.
    """
    import os
    import shutil

    missing = _missing_browser_parts()
    if missing:
        message = "browser test needs " + ", ".join(missing)
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(message + " — CI must install them (.ci/run)")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = next(shutil.which(b) for b in BROWSERS if shutil.which(b))
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={window_size}", *extra_args):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
