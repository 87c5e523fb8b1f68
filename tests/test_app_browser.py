"""The planning page in a real browser: ``cssim app`` on 127.0.0.1, driven by headless Chromium.

Starts the page as a user would (``python -m cssim app FILE --port P --no-browser``),
changes a pod's headcount and a segment's touch model, waits for the KPI table to show the
new setting, and checks its numbers against ``cssim.simulate`` of the same setting (same
seed, same replications: identical numbers). Saves a screenshot (``planning_page.png`` in the
test's temporary folder, or in ``$CSSIM_SCREENSHOTS`` if set).

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package; without
them the test skips naming what is missing (in CI it fails instead).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import headless_chromium, small_scenario_dict, write_yaml

from cssim import load_scenario, simulate
from cssim.analysis.whatif import HEADLINE_KPIS
from cssim.app import free_port

pytestmark = pytest.mark.slow  # starts a server and a browser

REPLICATIONS = 3

#: document.querySelectorAll that also looks inside shadow roots (panel's components render in them).
DEEP = """
const sel = arguments[0], out = [];
const walk = (root) => {
  for (const e of root.querySelectorAll(sel)) out.push(e);
  for (const e of root.querySelectorAll('*')) if (e.shadowRoot) walk(e.shadowRoot);
};
walk(document);
return out;
"""


@pytest.fixture(scope="module")
def browser():
    yield from headless_chromium("1500,1500")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """``cssim app`` serving a small scenario with an ARR-band route; yields (url, scenario file)."""
    root = tmp_path_factory.mktemp("app")
    data = small_scenario_dict()
    data["policy"] = {"routes": [{"segment": "smb", "arr_below": 3000, "touch_model": "tech_touch"}]}
    scenario = write_yaml(root / "tiny.yaml", data)
    port = free_port()
    with open(root / "server.log", "w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cssim", "app", str(scenario), "--port", str(port), "--no-browser",
             "-n", str(REPLICATIONS), "-j", "1"],
            cwd=root, stdout=log, stderr=subprocess.STDOUT, text=True,
        )
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120
        while "planning page for" not in (root / "server.log").read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"cssim app did not start: {(root / 'server.log').read_text()}")
            time.sleep(0.3)
        yield url, scenario
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _deep(driver, selector: str):
    return driver.execute_script(DEEP, selector)


def _wait(predicate, what: str, timeout: float = 120.0):
    """Poll ``predicate`` until it is truthy. The page redraws its panes as results arrive, so an element found
    a moment ago may be gone (stale): that is "not yet", and the next poll finds the new one."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


#: The KPI table as one snapshot (read in one script, so a redraw cannot leave half of it stale): its hash,
#: replications and each row's KPI and mean; null while there is no table.
TABLE = DEEP.replace("return out;", """
const t = out.find(e => e.id === 'kpi-table');
if (!t) return null;
const rows = [...t.querySelectorAll('tbody tr')].map(r => [r.dataset.kpi, r.querySelector('td.num').dataset.value]);
return {hash: t.dataset.hash, replications: t.dataset.replications, rows: rows};
""")


def _table(driver) -> dict | None:
    return driver.execute_script(TABLE, "#kpi-table")


def _control(driver, name: str, tag: str):
    found = _wait(lambda: _deep(driver, f".{name}"), f"control {name}", 30)
    inner = driver.execute_script(f"return arguments[0].shadowRoot.querySelector('{tag}')", found[0])
    assert inner is not None, f"{name} has no {tag}"
    return inner


def test_planning_page_updates_and_matches_simulate(browser, page, tmp_path):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    url, scenario_file = page

    def page_text() -> str:
        return " ".join(e.get_attribute("textContent") or "" for e in _deep(browser, "p"))

    browser.get(url)
    start_table = _wait(lambda: _table(browser), "the KPI table")
    start_hash = start_table["hash"]
    assert start_table["replications"] == str(REPLICATIONS)

    # Two controls a VP would touch: a pod's headcount and a segment's touch model.
    headcount = _control(browser, "ctl-headcount-enterprise", "input")
    browser.execute_script("arguments[0].value = ''", headcount)  # then type the new value
    headcount.send_keys("0", Keys.ENTER)
    new = _wait(lambda: (t := _table(browser)) is not None and t["hash"] != start_hash and t,
                "the KPI table to show the new headcount")
    first_hash = new["hash"]
    Select(_control(browser, "ctl-touch-smb", "select")).select_by_visible_text("high_touch")
    shown_table = _wait(lambda: (t := _table(browser)) is not None and t["hash"] not in (start_hash, first_hash) and t,
                        "the KPI table to show the new touch model")
    shown = {kpi: float(value) for kpi, value in shown_table["rows"]}

    # The same setting through the Python API: identical numbers.
    overrides = {"team.pods.enterprise.headcount": 0, "segments.smb.touch_model": "high_touch"}
    with pytest.warns(Warning):  # high-touch SMB with no pod for it is a model-check finding
        expected = simulate(load_scenario(scenario_file, overrides), replications=REPLICATIONS)
    means = expected.kpis(scope="all").set_index("kpi")["mean"]
    assert list(shown) == list(HEADLINE_KPIS)
    for kpi, value in shown.items():
        assert value == pytest.approx(means[kpi], rel=0, abs=0, nan_ok=True), (kpi, page_text())

    # The page says what changed, that it differs from the start, and warns about the unserved segment.
    _wait(lambda: "enterprise CSMs 2 → 0" in page_text() and "smb: tech_touch → high_touch" in page_text(),
          "the status line")
    assert "⚠" in page_text() and "smb" in page_text()  # the model check on the unserved segment
    verdicts = [e.get_attribute("textContent") for e in _deep(browser, "#kpi-table tbody td:last-child")]
    assert "real change" in verdicts, verdicts

    # Back to the start: an earlier setting comes from the cache.
    reset = _wait(lambda: [b for b in _deep(browser, "button") if "Back to the start" in (b.text or "")],
                  "the reset button", 30)
    reset[0].click()
    back = _wait(lambda: (t := _table(browser)) is not None and t["hash"] == start_hash and t,
                 "the start again")
    assert back is not None
    _wait(lambda: any("from the cache" in (e.get_attribute("textContent") or "") for e in _deep(browser, "p")),
          "the cached answer")

    # Nothing was fetched from anywhere but this machine.
    hosts = {urlparse(u).hostname for u in browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)") if u.startswith("http")}
    assert hosts <= {"127.0.0.1", "localhost"}, hosts

    # Leave the what-if on screen for the screenshot, with both charts redrawn for it.
    def charts() -> list[str]:
        return [e.get_attribute("src") for e in _deep(browser, "img") if "image/png" in (e.get_attribute("src") or "")]

    before = _wait(lambda: len(charts()) == 2 and charts(), "the two charts")
    headcount = _control(browser, "ctl-headcount-enterprise", "input")
    browser.execute_script("arguments[0].value = ''", headcount)  # then type the new value
    headcount.send_keys("0", Keys.ENTER)
    _wait(lambda: (t := _table(browser)) is not None and t["hash"] == first_hash, "the what-if")
    _wait(lambda: len(now := charts()) == 2 and all(a != b for a, b in zip(now, before, strict=True)),
          "both charts redrawn")
    shots = Path(os.environ.get("CSSIM_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shots / "planning_page.png"))
