"""The Driftguard plugin inside a real `airflow api-server`: Airflow's auth in front, a real drift report behind.

One api-server (Airflow 3.3, SQLite metadata DB, simple auth manager, the repo's plugins/ folder)
runs for the module on a free port, with DRIFTGUARD_* pointing at a temporary history store and
reports folder holding one recorded run whose drift.html came from the real driftguard.monitoring.drift.run_drift,
and a run of a second model whose feature log carries HTML/script payloads (tests/xss_support.py)
in a feature name and category values, with the real drift.html and validation.html, plus a
hand-written report page whose script tries to call Airflow's API.
Before the api-server starts, a real `airflow dags test` run of MODEL's monitoring DAG fails (its
contract's feature log has no table): the DAG's failure callback records the failure, so the
health board shows MODEL as "run failed" with a link to the failed task's page in Airflow's UI.
Tokens come from Airflow's own POST /auth/token. The browser test drives headless Chromium through
Selenium + the Debian chromedriver (scripts/install_browser.sh) and saves screenshots to test-artifacts/.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from browser_support import chromium, webdriver_or_skip

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
MODEL = "ui_demo"
XSS_MODEL = "ui_xss"
PROBE_HTML = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>probe</title></head><body>
<p id="origin">origin: pending</p><p id="cookie">cookie: pending</p><p id="storage">storage: pending</p>
<p id="api">api: pending</p>
<script>
function put(id, text) { document.getElementById(id).textContent = id + ": " + text; }
put("origin", String(window.origin));
try { put("cookie", "read " + JSON.stringify(document.cookie)); } catch (e) { put("cookie", "refused " + e.name); }
try { localStorage.setItem("k", "v"); put("storage", "usable"); } catch (e) { put("storage", "refused " + e.name); }
fetch("/api/v2/dags", {credentials: "include"})
  .then(r => r.text().then(t => put("api", "answered " + r.status + " " + t.slice(0, 300))))
  .catch(e => put("api", "blocked " + e));
</script></body></html>
"""
"""A report file as a script that bypassed escaping would write it: what can it reach?"""
FAILED_DAG = f"driftguard_monitor__{MODEL}"
STARTUP_LIMIT_S = 180.0  # readiness wait for the api-server, not an assertion on speed

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _airflow_env_module() -> Any:
    """scripts/airflow_env.py, as tests/conftest.py loaded it (standard library only)."""
    return sys.modules["_driftguard_airflow_env"]


def _http(
    url: str, *, token: str | None = None, data: dict[str, Any] | None = None, method: str | None = None
) -> tuple[int, dict[str, str], str]:
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(data).encode() if data is not None else None
    method = method or ("POST" if data is not None else "GET")
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode("utf-8", "replace")


def _seed(home: Path) -> SimpleNamespace:
    """One recorded run with a real Evidently drift report (small synthetic log with a mean shift)."""
    from driftguard.monitoring.drift import run_drift
    from driftguard.reporting import reports
    from driftguard.store import HistoryStore, RunRecord, dispose_engines
    from driftguard.testing import DEFAULT_START, Injection, generate_log, synthetic_contract

    reports_dir = home / "reports"
    history_url = f"sqlite:///{home / 'history.db'}"
    contract = synthetic_contract(url="sqlite:///unused.db", name=MODEL)
    start = DEFAULT_START + timedelta(days=30)
    end = start + timedelta(days=1)
    reference, _ = generate_log(contract.task.value, start=DEFAULT_START, days=1, rows_per_day=400, seed=1)
    shift = [Injection("mean_shift", start, magnitude=3.0)]
    current, _ = generate_log(contract.task.value, start=start, days=1, rows_per_day=400, seed=2, injections=shift)
    folder = reports.run_dir(reports_dir, MODEL, start, end)
    result = run_drift(
        contract, reference, current, out_html=folder / reports.DRIFT_HTML, assets_dir=reports_dir / "_assets"
    )
    assert result.drifted_features, "the injected mean shift must drift at least one feature"
    store = HistoryStore(history_url)
    store.record_run(
        RunRecord(
            model=MODEL,
            interval_start=start,
            interval_end=end,
            rows=len(current),
            drift_share=result.drift_share,
            drifted_features=result.drifted_features,
            retrain=True,
            summary=f"retrain: {result.summary()}",
            report_paths={"drift": str(folder / reports.DRIFT_HTML)},
        )
    )
    xss = _seed_payloads(reports_dir, store)
    dispose_engines()
    drift_url = f"/driftguard/reports/{MODEL}/{folder.name}/{reports.DRIFT_HTML}"
    return SimpleNamespace(
        reports_dir=reports_dir, history_url=history_url, drift_url=drift_url, drifted=result.drifted_features, xss=xss
    )


def _seed_payloads(reports_dir: Path, store: Any) -> SimpleNamespace:
    """A run of XSS_MODEL: its drift.html (run_drift) and validation.html (validate_window) hold the payloads."""
    import xss_support
    from driftguard.monitoring.drift import run_drift
    from driftguard.monitoring.quality import validate_window
    from driftguard.reporting import reports
    from driftguard.statistics.profile import profile_frame
    from driftguard.store import RunRecord
    from driftguard.testing import DEFAULT_START

    contract = xss_support.contract(XSS_MODEL)
    start = DEFAULT_START + timedelta(days=30)
    end = start + timedelta(days=1)
    reference, current = xss_support.windows(DEFAULT_START, start)
    folder = reports.run_dir(reports_dir, XSS_MODEL, start, end)
    drift = run_drift(
        contract, reference, current, out_html=folder / reports.DRIFT_HTML, assets_dir=reports_dir / "_assets"
    )
    assert xss_support.FEATURE in drift.drifted_features
    quality = validate_window(
        contract, current, profile_frame(reference, contract), start=start, end=end, out_dir=folder
    )
    assert quality.docs_path == str(folder / reports.QUALITY_HTML)
    store.record_run(
        RunRecord(
            model=XSS_MODEL,
            interval_start=start,
            interval_end=end,
            rows=len(current),
            drift_share=drift.drift_share,
            drifted_features=drift.drifted_features,
            summary=f"payload run: {drift.summary()}",
            report_paths={"drift": drift.report_path, "quality": quality.docs_path},
        )
    )
    (folder / "probe.html").write_text(PROBE_HTML, encoding="utf-8")
    candidate = _seed_candidate(store, start, end, xss_support.PAYLOADS)
    base = f"/driftguard/reports/{XSS_MODEL}/{folder.name}"
    return SimpleNamespace(
        drift_url=f"{base}/{reports.DRIFT_HTML}",
        quality_url=f"{base}/{reports.QUALITY_HTML}",
        probe_url=f"{base}/probe.html",
        feature=xss_support.FEATURE,
        payloads=xss_support.PAYLOADS,
        marker=xss_support.MARKER,
        injected=xss_support.INJECTED_ELEMENTS,
        candidate=candidate,
    )


CANDIDATE_RUN_ID = "0123456789abcdef0123456789abcdef"


def _seed_candidate(store: Any, start: Any, end: Any, payloads: tuple[str, ...]) -> SimpleNamespace:
    """A rejected retrain of XSS_MODEL (candidate v5 vs champion v4) whose segment values and
    reason are the payloads; the page's numbers come from this verdict."""
    sig = {"metric": "roc_auc", "mode": "superiority", "margin": "1%", "margin_abs": 0.0071, "bound": 0.0071,
           "diff": 0.0290, "ci_low": 0.0123, "ci_high": 0.0456, "confidence": 0.95, "rows": 2400,
           "rows_needed": 2100, "insufficient_evidence": 0}  # fmt: skip
    bad, ok = f"origin={payloads[1]}", f"origin={payloads[2]}"
    segments = {"metric": "roc_auc", "margin": "2.5%", "alpha": 0.05, "min_rows": 200, f"loss[{bad}]": 0.37,
                f"p[{bad}]": 1e-9, f"rows[{bad}]": 800, f"loss[{ok}]": -0.1, f"p[{ok}]": 1.0, f"rows[{ok}]": 800,
                "failing_segments": bad}  # fmt: skip
    verdict = {
        "promote": False,
        "outcome": "reject",
        "metric": "roc_auc",
        "summary": f"REJECT (challenger vs champion on roc_auc): segment_guardrails: {payloads[0]}",
        "checks": [
            {
                "name": "primary_metric_threshold",
                "passed": True,
                "detail": "roc_auc 0.7100 -> 0.7390",
                "numbers": {"metric": "roc_auc", "champion": 0.71, "challenger": 0.739, "improvement": 0.029},
            },
            {"name": "significance", "passed": True, "detail": "better", "numbers": sig},
            {"name": "segment_guardrails", "passed": False, "detail": f"worse in {bad}", "numbers": segments},
        ],
        "candidate": {
            "registered_model": XSS_MODEL,
            "version": "5",
            "champion_version": "4",
            "run_id": CANDIDATE_RUN_ID,
            "experiment_id": "1",
            "trigger": "metric_drop",
        },
    }
    assert store.claim_retrain(XSS_MODEL, start, end) is None
    store.finish_retrain(XSS_MODEL, start, end, status="rejected", candidate_version="5", verdict=verdict)
    return SimpleNamespace(
        url=f"/driftguard/models/{XSS_MODEL}/candidates/5", ci=("95% CI of the gain", "[+0.0123, +0.0456]")
    )


def _failing_run(home: Path, env: dict[str, str]) -> None:
    """A real run of MODEL's monitoring DAG whose feature log has no table: extract_window and
    load_reference fail (a data error: no retry) and the DAG's failure callback records each
    failure in the history store (the board links the latest)."""
    import sqlite3

    import yaml
    from driftguard.testing import DEFAULT_START, synthetic_contract

    sqlite3.connect(home / "empty_feature_log.db").close()  # a database without the log's table
    contract = synthetic_contract(
        url=f"sqlite:///{home / 'empty_feature_log.db'}",
        name=MODEL,
        start_date=DEFAULT_START,
        overrides={"reference": {"start": "2024-01-01", "end": "2024-01-08"}},  # no champion: the bootstrap
    )
    models = Path(env["DRIFTGUARD_MODELS_DIR"])
    models.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(contract.model_dump(mode="json", exclude_unset=True), sort_keys=False)
    (models / f"{MODEL}.yaml").write_text(text)
    when = (DEFAULT_START + timedelta(days=40)).isoformat()
    run = subprocess.run(
        [AIRFLOW, "dags", "test", FAILED_DAG, when], env=env, capture_output=True, text=True, timeout=600
    )
    out = run.stdout + run.stderr
    (home / "failing_run.log").write_text(out)
    assert run.returncode != 0 and "MissingTableError" in out, (
        f"the injected run did not fail as planned:\n{out[-3000:]}"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """A real `airflow api-server` with the repo's plugins on a free port; stopped (whole group) at the end."""
    home = tmp_path_factory.mktemp("ui_server")
    seeded = _seed(home)
    port = _free_port()
    mod = _airflow_env_module()
    env = mod.airflow_env(home, port=port, base=os.environ)
    env.update(
        {
            "DRIFTGUARD_REPORTS_DIR": str(seeded.reports_dir),
            "DRIFTGUARD_HISTORY_URL": seeded.history_url,
            "DRIFTGUARD_MODELS_DIR": str(home / "models"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__WORKERS": "1",
        }
    )
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    migrate = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True)
    assert migrate.returncode == 0, f"airflow db migrate failed:\n{migrate.stdout[-2000:]}\n{migrate.stderr[-2000:]}"
    _failing_run(home, env)
    base = f"http://localhost:{port}"
    services = mod.Services(env, home / "logs")
    try:
        api = services.start("api-server", [AIRFLOW, "api-server", "--port", str(port)])
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while True:
            services.check_alive()
            try:
                if _http(f"{base}/api/v2/monitor/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"api-server not healthy after {STARTUP_LIMIT_S:.0f} s; log:\n{_tail(api.log_path)}")
            time.sleep(1)
        passwords = json.loads(mod.password_file(env).read_text())
        status, _, body = _http(f"{base}/auth/token", data={"username": "admin", "password": passwords["admin"]})
        assert status in (200, 201), f"POST /auth/token answered {status}: {body[:500]}"
        token = json.loads(body)["access_token"]
        yield SimpleNamespace(base=base, token=token, password=passwords["admin"], log=api.log_path, **vars(seeded))
    finally:
        services.stop()


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


def test_plugin_pages_need_an_airflow_login(server: SimpleNamespace) -> None:
    for path in ("/driftguard/", f"/driftguard/models/{MODEL}", server.drift_url):
        status, _, body = _http(server.base + path)
        assert status in (401, 403), f"{path} without credentials answered {status}: {body[:300]}"
        assert MODEL not in body
    status, _, _ = _http(server.base + "/driftguard/", token="not-a-jwt")
    assert status in (401, 403)


def test_plugin_pages_with_an_airflow_token(server: SimpleNamespace) -> None:
    status, headers, body = _http(server.base + "/driftguard/", token=server.token)
    assert status == 200, f"{status}: {body[:500]}\n{_tail(server.log)}"
    assert headers["content-type"].startswith("text/html")
    assert f'href="/driftguard/models/{MODEL}"' in body

    status, _, body = _http(server.base + f"/driftguard/models/{MODEL}", token=server.token)
    assert status == 200
    assert f'href="{server.drift_url}"' in body
    assert ", ".join(server.drifted) in body

    status, headers, body = _http(server.base + server.drift_url, token=server.token)
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    bundle = body.split('<script src="', 1)[1].split('"', 1)[0]
    assert bundle.startswith("../../_assets/evidently-"), bundle
    from urllib.parse import urljoin

    status, headers, js = _http(urljoin(server.base + server.drift_url, bundle), token=server.token)
    assert status == 200 and headers["content-type"] == "text/javascript; charset=utf-8"
    assert len(js) > 100_000  # the real Evidently bundle, not an error page

    status, _, _ = _http(server.base + "/driftguard/reports/%2e%2e/history.db", token=server.token)
    assert status == 404


def test_report_files_are_sandboxed_and_only_vendor_assets_skip_the_login(server: SimpleNamespace) -> None:
    from urllib.parse import urljoin

    for url in (server.drift_url, server.xss.drift_url, server.xss.quality_url, server.xss.probe_url):
        status, headers, body = _http(server.base + url, token=server.token)
        assert status == 200, f"{url}: {status} {body[:300]}"
        csp = headers["content-security-policy"]
        assert csp.startswith("sandbox allow-scripts") and "allow-same-origin" not in csp
        assert "connect-src 'none'" in csp
    # Sandboxed pages request the bundle and font without the Airflow cookie: those two need no login.
    _, _, page = _http(server.base + server.xss.drift_url, token=server.token)
    bundle = page.split('<script src="', 1)[1].split('"', 1)[0]
    status, _, js = _http(urljoin(server.base + server.xss.drift_url, bundle))
    assert status == 200 and len(js) > 100_000
    status, headers, _ = _http(server.base + "/driftguard/reports/_assets/material-ui-icons.woff2")
    assert status == 200 and headers["access-control-allow-origin"] == "*"
    for url in (server.xss.probe_url, "/driftguard/reports/_assets/index.html", "/driftguard/reports/_assets/x/y.js"):
        status, _, body = _http(server.base + url)
        assert status in (401, 403, 404), f"{url} without credentials answered {status}"
        assert "fetch(" not in body


def test_dag_tab_and_registry_page_through_airflow(server: SimpleNamespace) -> None:
    # The DAG-page tab's href, with {DAG_ID} filled in by the UI: a driftguard DAG lands on its model.
    status, _, body = _http(server.base + f"/driftguard/dags/driftguard_monitor__{MODEL}", token=server.token)
    assert status == 200 and f"<h1>{MODEL}</h1>" in body
    # The registry page imports MLflow inside the api-server and reads aliases from the (empty) SQLite registry.
    status, _, body = _http(server.base + f"/driftguard/models/{MODEL}/registry", token=server.token)
    assert status == 200, body[:500]
    assert "MLflow registry unavailable" not in body
    assert body.count("not set") == 3  # champion, previous_champion, challenger
    assert "No promotions yet." in body


def test_plugin_listed_by_airflow_with_its_links(server: SimpleNamespace) -> None:
    status, _, body = _http(server.base + "/api/v2/plugins", token=server.token)
    assert status == 200, body[:500]
    plugin = next(p for p in json.loads(body)["plugins"] if p["name"] == "driftguard")
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/driftguard"]
    views = {(v["destination"], v["href"]) for v in plugin["external_views"]}
    assert ("nav", "/driftguard/") in views
    assert ("dag", "/driftguard/dags/{DAG_ID}") in views
    status, _, body = _http(server.base + "/api/v2/importErrors", token=server.token)
    assert status == 200


def _board_row(body: str, model: str) -> str:
    return body.split(f'<tr class="model" data-model="{model}">', 1)[1].split("</tr>", 1)[0]


def test_board_runbook_and_error_pages_through_airflow(server: SimpleNamespace) -> None:
    import html
    import re

    status, _, body = _http(server.base + "/driftguard/", token=server.token)
    assert status == 200, body[:500]
    row = _board_row(body, MODEL)
    assert 'data-status="run_failed"' in row and "MissingTableError" in row, row
    log = html.unescape(re.search(r'class="task-log" href="([^"]+)"', row)[1])
    assert log.startswith(f"/dags/{FAILED_DAG}/runs/manual__") and "/tasks/" in log, log
    rollback = html.unescape(re.search(r'class="rollback-link" href="([^"]+)"', row)[1])
    assert rollback == f"/driftguard/models/{MODEL}/rollback", rollback
    status, _, page = _http(server.base + rollback, token=server.token)
    assert status == 200 and f'class="rollback-dag" href="/dags/driftguard_rollback__{MODEL}"' in page, page[:800]
    # The run, the task and its state are in Airflow's metadata DB: its REST API knows the linked task.
    _, run_id, _, task_id = log.removeprefix(f"/dags/{FAILED_DAG}/").split("/")
    from urllib.parse import unquote

    api = f"/api/v2/dags/{FAILED_DAG}/dagRuns/{run_id}/taskInstances/{task_id}"
    status, _, ti = _http(server.base + api, token=server.token)
    assert status == 200 and json.loads(ti)["state"] == "failed", ti[:500]
    assert json.loads(ti)["dag_run_id"] == unquote(run_id)

    status, headers, page = _http(server.base + "/driftguard/runbook#pipeline_failure", token=server.token)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert 'id="pipeline_failure"' in page and 'id="board"' in page
    # Errors are pages a browser shows, never {"detail": ...}.
    for path, token, code in (
        ("/driftguard/no/such/page", server.token, 404),
        ("/driftguard/models/nope", server.token, 404),
        ("/driftguard/models/nope/rollback", server.token, 404),
        (f"/driftguard/models/{XSS_MODEL}/candidates/99", server.token, 404),
        ("/driftguard/reports/nope.html", server.token, 404),
        ("/driftguard/", None, 401),
    ):
        status, headers, page = _http(server.base + path, token=token)
        assert status == code and headers["content-type"].startswith("text/html"), (path, status, page[:300])
        assert not page.lstrip().startswith("{") and '"detail"' not in page, (path, page[:300])


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def webdriver_module() -> Any:
    """Checked before the api-server starts (module scope, listed first), so a skip costs nothing."""
    return webdriver_or_skip()


@pytest.fixture
def browser(webdriver_module: Any, tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path, {"browser": "ALL"}) as driver:
        yield driver


def _wait_for(driver: Any, condition: Any, what: str, limit: float = 60.0) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, limit).until(condition)
    except TimeoutException:
        shot = ARTIFACTS / "ui_browser_failure.png"
        driver.save_screenshot(str(shot))
        body = driver.find_element("tag name", "body").text[:1500]
        pytest.fail(f"browser: {what} did not happen; page {driver.current_url!r} shows:\n{body}\nscreenshot {shot}")


def _login(driver: Any, server: SimpleNamespace, next_path: str) -> None:
    """Log in through Airflow's own login page (simple auth manager), which sets the `_token` JWT cookie."""
    from selenium.webdriver.common.keys import Keys

    driver.get(f"{server.base}/auth/login?next={next_path}")
    user = _wait_for(driver, lambda d: d.find_elements("css selector", "input[name=username]"), "the login form")[0]
    user.send_keys("admin")
    password = driver.find_element("css selector", "input[name=password]")
    password.send_keys(server.password, Keys.ENTER)
    _wait_for(driver, lambda d: d.get_cookie("_token"), "the _token cookie after login")


@pytest.mark.browser
def test_browser_opens_plugin_page_and_drift_report(
    webdriver_module: Any, server: SimpleNamespace, browser: Any
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    # Without the login cookie Airflow's dependency refuses the page.
    browser.get(server.base + "/driftguard/")
    assert "Not authenticated" in browser.find_element("tag name", "body").text

    _login(browser, server, next_path="/driftguard/")
    _wait_for(browser, lambda d: d.current_url.endswith("/driftguard/"), "the redirect after login")
    home = browser.find_element("tag name", "body").text
    assert "Driftguard" in home and MODEL in home
    browser.find_element("link text", MODEL).click()
    _wait_for(browser, lambda d: "/driftguard/models/" in d.current_url, "opening the model page")
    page = browser.find_element("tag name", "body").text
    assert ", ".join(server.drifted) in page
    assert browser.find_elements("css selector", "svg.trend circle.drift"), "trend plot has no drift point"
    decision = browser.find_element("css selector", "tr.run span.decision")
    assert decision.text.startswith("retrain") and len(decision.text) <= 160  # one short line, not a paragraph
    browser.save_screenshot(str(ARTIFACTS / "ui_model_page.png"))

    browser.find_element("link text", "Evidently drift report").click()
    # Evidently renders its plots with the bundle served by /driftguard/reports (JavaScript).
    _wait_for(browser, lambda d: d.find_elements("css selector", ".js-plotly-plot"), "Evidently rendering")
    text = browser.find_element("tag name", "body").text
    assert f"Drift report: {MODEL}" in text and server.drifted[0] in text
    browser.save_screenshot(str(ARTIFACTS / "ui_drift_report.png"))
    problems = [
        e["message"]
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and ("Content Security Policy" in e["message"] or "404" in e["message"])
    ]
    assert not problems, f"browser console: {problems}"


@pytest.mark.browser
def test_browser_shows_plugin_inside_airflow_ui(webdriver_module: Any, server: SimpleNamespace, browser: Any) -> None:
    """The Browse entry's page: Airflow's React UI embeds /driftguard/ in an iframe with the same login."""
    ARTIFACTS.mkdir(exist_ok=True)
    _login(browser, server, next_path="/plugin/driftguard")
    browser.get(server.base + "/plugin/driftguard")
    frame = _wait_for(
        browser, lambda d: d.find_elements("css selector", "iframe[src*='/driftguard/']"), "the plugin iframe"
    )[0]
    browser.switch_to.frame(frame)
    _wait_for(browser, lambda d: MODEL in d.find_element("tag name", "body").text, "the models list in the iframe")
    browser.switch_to.default_content()
    browser.save_screenshot(str(ARTIFACTS / "ui_airflow_embedded.png"))
    # A report opened inside Airflow's frame runs sandboxed there too and still draws its plots.
    browser.switch_to.frame(frame)
    browser.find_element("link text", MODEL).click()
    _wait_for(browser, lambda d: d.find_elements("link text", "Evidently drift report"), "the model page in the iframe")
    browser.find_element("link text", "Evidently drift report").click()
    _wait_for(
        browser, lambda d: d.find_elements("css selector", ".js-plotly-plot"), "Evidently rendering in the iframe"
    )
    assert browser.execute_script("return window.origin") == "null"
    browser.switch_to.default_content()


def _title(driver: Any) -> str:
    return str(driver.execute_script("return document.title"))


@pytest.mark.browser
def test_browser_payloads_in_reports_stay_text(webdriver_module: Any, server: SimpleNamespace, browser: Any) -> None:
    """HTML and script in a feature name and in category values: Evidently's and GX's pages show
    them as text, no injected element or script exists and none ran (it would set the title)."""
    ARTIFACTS.mkdir(exist_ok=True)
    xss = server.xss
    _login(browser, server, next_path="/driftguard/")
    browser.get(server.base + xss.drift_url)
    assert xss.feature in browser.find_element("css selector", "table.drift-verdicts").text  # Driftguard's table
    plots = _wait_for(browser, lambda d: d.find_elements("css selector", ".js-plotly-plot"), "Evidently's plots")
    browser.save_screenshot(str(ARTIFACTS / "ui_xss_drift_report.png"))
    browser.execute_script("arguments[0].scrollIntoView()", plots[0])
    plots[0].screenshot(str(ARTIFACTS / "ui_xss_drift_plot.png"))
    assert xss.marker not in _title(browser)
    assert browser.find_elements("css selector", xss.injected) == []
    assert browser.execute_script("return window.origin") == "null"  # the report runs sandboxed
    problems = [
        e["message"]
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and ("Content Security Policy" in e["message"] or "404" in e["message"])
    ]
    assert not problems, f"browser console: {problems}"

    browser.get(server.base + xss.quality_url)
    _wait_for(browser, lambda d: d.find_elements("css selector", "table.checks"), "the quality page")
    text = browser.find_element("tag name", "body").text
    browser.save_screenshot(str(ARTIFACTS / "ui_xss_validation.png"))
    assert xss.marker not in _title(browser)
    assert f"{XSS_MODEL} data quality" in text
    assert browser.find_elements("css selector", xss.injected) == []
    for payload in (*xss.payloads, xss.feature):
        assert payload in text, f"{payload!r} is not shown as text on the quality page"


@pytest.mark.browser
def test_browser_report_page_cannot_call_the_airflow_api(
    webdriver_module: Any, server: SimpleNamespace, browser: Any
) -> None:
    """Even a script that got into a report file runs in an opaque origin: no cookie, no storage,
    no API call, although the same call works from an Airflow page with the same login."""
    _login(browser, server, next_path="/driftguard/")
    browser.get(server.base + "/api/v2/version")  # a document of the Airflow origin
    same_origin = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/api/v2/dags', {credentials: 'include'}).then(r => r.text().then(t => done([r.status, t])))"
        ".catch(e => done([0, String(e)]));"
    )
    assert same_origin[0] == 200 and '"dags"' in same_origin[1], same_origin  # what the XSS exploited

    browser.get(server.base + server.xss.probe_url)
    _wait_for(browser, lambda d: "pending" not in d.find_element("id", "api").text, "the probe's API call")
    found = {key: browser.find_element("id", key).text for key in ("origin", "cookie", "storage", "api")}
    browser.save_screenshot(str(ARTIFACTS / "ui_report_probe.png"))
    assert found["origin"] == "origin: null", found
    assert found["cookie"] in ('cookie: read ""', "cookie: refused SecurityError"), found
    assert found["storage"] == "storage: refused SecurityError", found
    assert found["api"].startswith("api: blocked"), found
    assert '"dags"' not in found["api"] and "200" not in found["api"]


@pytest.mark.browser
def test_browser_board_shows_the_failed_run_and_opens_its_task_log(
    webdriver_module: Any, server: SimpleNamespace, browser: Any
) -> None:
    """The injected failing run: the board says "run failed" (text and colour), its task-log link
    opens the failed task instance in Airflow's own UI, its runbook link opens the right section.
    With its monitoring DAG paused in Airflow the board flags it "paused", not "overdue"; the
    rollback page says what a rollback would do; the pages follow the light or dark mode."""
    ARTIFACTS.mkdir(exist_ok=True)
    status, _, body = _http(
        f"{server.base}/api/v2/dags/{FAILED_DAG}", token=server.token, data={"is_paused": True}, method="PATCH"
    )
    assert status == 200 and '"is_paused":true' in body.replace(" ", ""), (status, body[:500])
    _login(browser, server, next_path="/driftguard/")
    browser.get(server.base + "/driftguard/")
    row = _wait_for(browser, lambda d: d.find_elements("css selector", f"tr[data-model='{MODEL}']"), "the board's row")[
        0
    ]
    badge = row.find_element("css selector", ".status")
    assert badge.text == "run failed"
    assert badge.value_of_css_property("background-color") == "rgba(255, 235, 233, 1)"  # .status.bad
    assert "MissingTableError" in row.text
    flags = row.find_element("css selector", ".flags").text
    assert "paused" in flags and "overdue" not in flags, flags  # read from Airflow's DAG table
    link = row.find_element("css selector", "a.task-log")
    task_id = link.text.removesuffix(" log")
    browser.save_screenshot(str(ARTIFACTS / "ui_health_board.png"))

    runbook = row.find_element("css selector", "a.runbook-link").get_attribute("href")
    rollback = row.find_element("css selector", "a.rollback-link").get_attribute("href")
    assert runbook.endswith("/driftguard/runbook#pipeline_failure")
    link.click()
    # Airflow's React UI renders the task instance: its id and its failed state.
    _wait_for(
        browser,
        lambda d: (
            task_id in d.find_element("tag name", "body").text
            and "failed" in d.find_element("tag name", "body").text.lower()
        ),
        "Airflow's page of the failed task",
    )
    assert f"/dags/{FAILED_DAG}/runs/" in browser.current_url
    assert "404" not in browser.title and "Page Not Found" not in browser.find_element("tag name", "body").text
    browser.save_screenshot(str(ARTIFACTS / "ui_failed_task.png"))

    browser.get(runbook)
    section = _wait_for(browser, lambda d: d.find_elements("id", "pipeline_failure"), "the runbook section")[0]
    assert section.text == "pipeline_failure" and "What to run" in browser.find_element("tag name", "body").text

    browser.get(rollback)
    plan = _wait_for(browser, lambda d: d.find_elements("css selector", ".rollback-plan"), "the rollback page")[0]
    assert "champion" in plan.text and browser.find_elements("css selector", "a.rollback-dag")

    # One look with Airflow: light by default, the OS's dark preference, Airflow's stored mode wins.
    def background() -> tuple[str, str]:
        browser.get(server.base + "/driftguard/")
        body = _wait_for(browser, lambda d: d.find_elements("css selector", "table.board"), "the board")[0]
        return str(body.value_of_css_property("color")), str(
            browser.find_element("tag name", "body").value_of_css_property("background-color")
        )

    assert background() == ("rgba(24, 24, 27, 1)", "rgba(255, 255, 255, 1)")
    dark = {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", dark)
    assert background() == ("rgba(244, 244, 245, 1)", "rgba(9, 9, 11, 1)")
    browser.save_screenshot(str(ARTIFACTS / "ui_health_board_dark.png"))
    browser.execute_script("localStorage.setItem('theme', 'light')")  # what Airflow's colour-mode toggle stores
    assert background() == ("rgba(24, 24, 27, 1)", "rgba(255, 255, 255, 1)")
    problems = [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not problems, f"the theme script was blocked: {problems}"


@pytest.mark.browser
def test_browser_candidate_page_shows_the_ci_and_the_mlflow_run(
    webdriver_module: Any, server: SimpleNamespace, browser: Any
) -> None:
    """From the model page's retraining candidates to champion vs challenger: the gain's CI, the
    MLflow run id with how to open it (the tracking URI is SQLite), payloads as text, none ran."""
    ARTIFACTS.mkdir(exist_ok=True)
    xss = server.xss
    _login(browser, server, next_path="/driftguard/")
    browser.get(f"{server.base}/driftguard/models/{XSS_MODEL}")
    link = _wait_for(browser, lambda d: d.find_elements("css selector", "a.candidate-link"), "the candidate link")[0]
    link.click()
    _wait_for(browser, lambda d: d.current_url.endswith(xss.candidate.url), "opening the candidate page")
    text = browser.find_element("tag name", "body").text
    browser.save_screenshot(str(ARTIFACTS / "ui_candidate_page.png"))
    assert all(part in text for part in xss.candidate.ci), text[:2000]
    assert f"MLflow run {CANDIDATE_RUN_ID}" in text and "mlflow ui --backend-store-uri sqlite:///" in text
    assert browser.find_elements("css selector", "tr.failing"), "the failing segment is not marked"
    assert xss.marker not in _title(browser)
    assert browser.find_elements("css selector", xss.injected) == []
    for payload in xss.payloads[:3]:
        assert payload in text, f"{payload!r} is not shown as text on the candidate page"


def test_task_extra_links_through_airflow_rest_api(server: SimpleNamespace) -> None:
    """Airflow's extra-links endpoint for a task of the real failed run: the model page always,
    the drift report once a page exists in the run's report folder (named from its data interval)."""
    from datetime import datetime

    from driftguard.reporting import reports

    status, _, body = _http(f"{server.base}/api/v2/dags/{FAILED_DAG}/dagRuns", token=server.token)
    assert status == 200, body[:500]
    run = json.loads(body)["dag_runs"][0]
    links_url = f"{server.base}/api/v2/dags/{FAILED_DAG}/dagRuns/{run['dag_run_id']}/taskInstances/detect_drift/links"
    status, _, body = _http(links_url, token=server.token)
    assert status == 200, body[:500]
    links = json.loads(body)["extra_links"]
    assert links["Model page"] == f"/driftguard/models/{MODEL}"
    assert links["Drift report"] is None and links["Data quality report"] is None  # nothing published
    assert links["Candidate page"] is None  # a monitoring DAG

    start, end = (datetime.fromisoformat(run[k]) for k in ("data_interval_start", "data_interval_end"))
    page = reports.run_dir(server.reports_dir, MODEL, start, end) / reports.DRIFT_HTML
    page.parent.mkdir(parents=True)
    try:
        page.write_text("<!DOCTYPE html><title>drift</title>")
        links = json.loads(_http(links_url, token=server.token)[2])["extra_links"]
        assert links["Drift report"] == f"/driftguard/reports/{MODEL}/{page.parent.name}/{reports.DRIFT_HTML}"
        assert links["Data quality report"] is None
        status, _, body = _http(server.base + links["Drift report"], token=server.token)
        assert status == 200 and "<title>drift</title>" in body
    finally:
        page.unlink()
        page.parent.rmdir()
