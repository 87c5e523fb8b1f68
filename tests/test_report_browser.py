"""Reports open in a real browser: report.html of run, compare, plan and sensitivity folders in headless Chromium.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and
the ``selenium`` package (dev extra). Without them the test skips locally, naming
what is missing; in CI (``CI`` set) it fails instead.
"""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import pytest
from conftest import small_scenario_dict, write_yaml
from test_sensitivity import driver_scenario

from cssim import scenario_from_dict, simulate, write_results
from cssim.cli import main

pytestmark = pytest.mark.slow  # builds four results folders and starts a browser

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _missing() -> list[str]:
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


@pytest.fixture(scope="module")
def browser():
    missing = _missing()
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
                "--allow-file-access-from-files", "--window-size=1200,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("browser")
    out = {}
    results = simulate(scenario_from_dict(small_scenario_dict()), replications=3)
    out["run"] = write_results(results, root / "run") or root / "run"
    a = small_scenario_dict()
    b = copy.deepcopy(a)
    b["name"] = "churnier"
    b["segments"]["smb"]["lifecycle"]["churn"]["scale"] = 300
    fa, fb = write_yaml(root / "a.yaml", a), write_yaml(root / "b.yaml", b)
    assert main(["compare", str(fa), str(fb), "-n", "3", "-j", "1", "-q", "--by-segment", "-o",
                 str(root / "compare")]) == 0
    out["compare"] = root / "compare"
    assert main(["plan", str(fa), "--target", "grr >= 0.5", "--over", "team.pods.enterprise.headcount", "--max", "4",
                 "-n", "11", "-j", "1", "-q", "-o", str(root / "plan")]) in (0, 1)
    out["plan"] = root / "plan"
    fs = write_yaml(root / "driver.yaml", driver_scenario(methods=["oat", "sobol"], sobol_n=8))
    assert main(["sensitivity", str(fs), "-j", "1", "-q", "--no-cache", "-o", str(root / "sensitivity")]) == 0
    out["sensitivity"] = root / "sensitivity"
    for folder in out.values():
        assert main(["report", str(folder), "--out", str(Path(folder) / "report.html")]) == 0
    return {k: Path(v) for k, v in out.items()}


@pytest.mark.parametrize("kind, tables, images, heading", [
    ("run", 3, 6, "scenario tiny"),
    ("compare", 3, 4, "comparison of tiny, churnier"),
    ("plan", 1, 1, "plan for tiny"),
    ("sensitivity", 2, 4, "what drives the forecast of driver"),
])
def test_report_renders_in_chromium(browser, folders, capsys, kind, tables, images, heading):
    capsys.readouterr()
    page = folders[kind] / "report.html"
    browser.get(page.resolve().as_uri())
    assert heading in browser.find_element("tag name", "h1").text
    found = browser.execute_script(
        "return {tables: document.querySelectorAll('table').length,"
        " rows: Array.from(document.querySelectorAll('table')).map(t => t.querySelectorAll('tbody tr').length),"
        " images: Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])};"
    )
    assert found["tables"] >= tables, f"{kind}: {found['tables']} tables"
    assert all(n > 0 for n in found["rows"]), f"{kind}: an empty table ({found['rows']})"
    assert len(found["images"]) >= images, f"{kind}: {len(found['images'])} images"
    broken = [src for src, complete, width in found["images"] if not complete or width < 300]
    assert not broken, f"{kind}: images that did not load: {broken}"
