"""A run's report pages in headless Chromium, served as the plugin serves them (its report CSP)
from a local folder: no Airflow, so it stays quick.

The folder holds one run of tests/xss_support.py's payload model with a model score: the real
drift.html (driftguard.monitoring.drift.run_drift), validation.html (driftguard.monitoring.quality.validate_window) and
reports/index.html (reports.write_home). Chromium's network log shows every request a page made.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from browser_support import chromium, webdriver_or_skip

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
MODEL = "report_pages"

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _seed(reports_dir: Path) -> SimpleNamespace:
    import xss_support
    from driftguard.monitoring.drift import run_drift
    from driftguard.monitoring.quality import validate_window
    from driftguard.reporting import reports
    from driftguard.statistics.profile import profile_frame
    from driftguard.store import RunRecord
    from driftguard.testing import DEFAULT_START

    contract = xss_support.contract(MODEL)
    start = DEFAULT_START + timedelta(days=30)
    end = start + timedelta(days=1)
    reference, current = xss_support.windows(DEFAULT_START, start)
    reference[reports.SCORE_COLUMN] = reference["num_0"]
    current[reports.SCORE_COLUMN] = current["num_0"] + 1.0  # the score drifts: plotted over event time
    folder = reports.run_dir(reports_dir, MODEL, start, end)
    drift = run_drift(
        contract,
        reference,
        current,
        prediction_column=reports.SCORE_COLUMN,
        out_html=folder / reports.DRIFT_HTML,
        assets_dir=reports_dir / "_assets",
        interval=(start, end),
        reference_label="champion v3 (run abc), trained on data from 2024-01-01",
    )
    quality = validate_window(
        contract, current, profile_frame(reference, contract), start=start, end=end, out_dir=folder
    )
    assert quality.warnings and not quality.critical_failures
    record = RunRecord(
        model=MODEL,
        interval_start=start,
        interval_end=end,
        rows=len(current),
        warnings=len(quality.warnings),
        drift_share=drift.drift_share,
        drifted_features=drift.drifted_features,
        report_paths={"drift": drift.report_path, "quality": quality.docs_path},
    )
    reports.write_home(reports_dir, [MODEL], recent={MODEL: [record]})
    return SimpleNamespace(run=f"{MODEL}/{folder.name}", drifted=drift.drifted_features, warnings=len(quality.warnings))


class _Handler(http.server.SimpleHTTPRequestHandler):
    def end_headers(self) -> None:
        from driftguard.ui.app import REPORT_CSP

        self.send_header("Content-Security-Policy", REPORT_CSP)  # what the plugin sends with report files
        super().end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    webdriver_or_skip()
    reports_dir = tmp_path_factory.mktemp("report_pages") / "reports"
    seeded = _seed(reports_dir)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(reports_dir)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(base=f"http://127.0.0.1:{server.server_address[1]}", **vars(seeded))
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser(site: SimpleNamespace, tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path, {"browser": "ALL", "performance": "ALL"}) as driver:
        yield driver


def _requests(driver: Any) -> list[str]:
    """URLs the page asked for since the last call (Chromium's DevTools network log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _open(driver: Any, url: str) -> None:
    """Load url with a clean network log (the browser's own start page logs chrome:// requests)."""
    driver.get("about:blank")
    _requests(driver)
    driver.get(url)


def _style(driver: Any, selector: str, prop: str) -> str:
    return str(driver.execute_script(f"return getComputedStyle(document.querySelector({selector!r}))[{prop!r}]"))


def _problems(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_quality_page_is_styled_offline_and_agrees_with_driftguard(site: SimpleNamespace, browser: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    _open(browser, f"{site.base}/{site.run}/validation.html")
    browser.save_screenshot(str(ARTIFACTS / "report_validation.png"))
    requested = _requests(browser)
    assert requested and all(u.startswith(site.base + "/") for u in requested), requested
    status = browser.find_element("id", "quality-status")
    assert status.text == f"passed, {site.warnings} warnings"
    assert _style(browser, "#quality-status", "backgroundColor") == "rgb(154, 103, 0)"  # the warning badge
    assert _style(browser, "table.checks th", "backgroundColor") == "rgb(244, 244, 244)"
    assert browser.title.startswith(f"{MODEL} data quality")
    assert "XSS" not in browser.title and not browser.find_elements("css selector", "img, svg, script")
    links = [a.get_attribute("href") for a in browser.find_elements("tag name", "a")]
    assert links and all(href.startswith(site.base + "/") for href in links), links
    assert not _problems(browser)


def test_drift_page_header_table_and_time_axis(site: SimpleNamespace, browser: Any) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    ARTIFACTS.mkdir(exist_ok=True)
    _open(browser, f"{site.base}/{site.run}/drift.html")
    header = browser.find_element("css selector", "div.dg dl.facts").text
    assert MODEL in browser.find_element("tag name", "h1").text
    assert "2024-01-31 00:00 → 2024-02-01 00:00" in header and "champion v3" in header
    rows = browser.find_elements("css selector", "table.drift-verdicts tbody tr")
    verdicts = [r.find_element("css selector", ".badge").text for r in rows]
    assert verdicts == sorted(verdicts, key=["drifted", "no drift", "insufficient data"].index)
    assert verdicts[0] == "drifted"
    assert _style(browser, "tr.verdict-drift .badge", "backgroundColor") == "rgb(176, 0, 32)"
    plots = WebDriverWait(browser, 60).until(lambda d: d.find_elements("css selector", ".js-plotly-plot"))
    browser.save_screenshot(str(ARTIFACTS / "report_drift.png"))
    text = browser.find_element("tag name", "body").text
    assert "__score__" not in text and "model score" in text
    axes = [t.get_attribute("textContent") for t in browser.find_elements("css selector", ".xtitle")]
    assert any(a.startswith("event time (UTC)") for a in axes) and "Index binned" not in axes, axes
    assert plots and "XSS" not in browser.title
    requested = _requests(browser)
    assert all(u.startswith(site.base + "/") or u.startswith(("data:", "blob:")) for u in requested), requested
    assert not [p for p in _problems(browser) if "Content Security Policy" in p or "404" in p]


def test_home_lists_the_runs(site: SimpleNamespace, browser: Any) -> None:
    browser.get(f"{site.base}/index.html")
    assert browser.title == "Driftguard reports"
    rows = browser.find_elements("css selector", "table.runs tr.run")
    assert [r.get_attribute("data-model") for r in rows] == [MODEL]
    rows[0].find_element("link text", "drift").click()
    assert browser.current_url == f"{site.base}/{site.run}/drift.html"
