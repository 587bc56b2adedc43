"""driftguard.ui.app: pages from a real SQLite history store, escaping, report-file containment, auth hook."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urljoin

import pytest
from driftguard.reporting import reports
from driftguard.settings import Settings
from driftguard.store import HistoryStore, RunRecord, ShadowRecord, dispose_engines
from driftguard.ui import app as ui
from driftguard.ui.app import create_app, resolve_report_file, resolve_vendor_asset
from fastapi import FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

T0 = datetime(2013, 3, 4, tzinfo=UTC)
WEEK = timedelta(days=7)
EVIL = "<script>alert(1)</script>"
EVIL_MODEL = "<img src=x onerror=alert(1)>"  # model names cannot hold '/', so no closing tag here
BUNDLE = "evidently-0.0.0.js"  # a name of the vendor bundle driftguard.monitoring._evidently copies into _assets
REPO_ROOT = Path(__file__).resolve().parents[2]


class Text(HTMLParser):
    """Visible text and links of a page (what a reader sees, with entities decoded)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.links: list[str] = []
        self.scripts = 0
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs).get("href") or "")
        if tag == "script":  # counted unless it turns out to be the page's own theme script
            self.scripts += 1
            self._script: list[str] | None = [] if not dict(attrs).get("src") else None

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and getattr(self, "_script", None) is not None:
            if "".join(self._script or []) == ui.THEME_SCRIPT:
                self.scripts -= 1
            self._script = None

    def handle_data(self, data: str) -> None:
        if getattr(self, "_script", None) is not None:
            self._script.append(data)  # type: ignore[union-attr]
            return
        self.text.append(data)

    @property
    def joined(self) -> str:
        return " ".join(" ".join(self.text).split())


def _settings(tmp: Path, history_url: str, mlflow_uri: str = "http://127.0.0.1:9") -> Settings:
    return Settings(
        home=tmp,
        models_dir=tmp / "models",
        reports_dir=(tmp / "reports").resolve(),
        history_url=history_url,
        feature_log_url=f"sqlite:///{tmp / 'features.db'}",
        mlflow_tracking_uri=mlflow_uri,
        mlflow_artifacts_dir=tmp / "mlartifacts",
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """Two recorded runs of `flight_delay` (one drifting, with report files), a promotion, a gate
    verdict, and a run of a model whose name and feature are HTML."""
    tmp = tmp_path_factory.mktemp("ui")
    settings = _settings(tmp, f"sqlite:///{tmp / 'history.db'}")
    store = HistoryStore(settings.history_url)
    folder = reports.run_dir(settings.reports_dir, "flight_delay", T0 + WEEK, T0 + 2 * WEEK)
    folder.mkdir(parents=True)
    (folder / "drift.html").write_text(
        f'<html><body><script src="../../_assets/{BUNDLE}"></script>drift page</body></html>'
    )
    (folder / "validation.html").write_text("<html><body>validation page</body></html>")
    reports.write_summary(folder, {"model": "flight_delay"})
    assets = settings.reports_dir / "_assets"
    assets.mkdir()
    (assets / BUNDLE).write_text("console.log('bundle');")
    (assets / "material-ui-icons.woff2").write_bytes(b"wOF2 font")
    (assets / "notes.txt").write_text("not a vendor file")  # in _assets, but served to nobody
    (assets / "evidently-9.9.9.js").symlink_to(folder / "validation.html")  # vendor name, not a vendor file
    (settings.reports_dir / ".hidden.html").write_text("hidden")
    outside = tmp / "secret.txt"
    outside.write_text("top secret")
    (settings.reports_dir / "escape.txt").symlink_to(outside)
    (settings.reports_dir / "escape_dir").symlink_to(tmp, target_is_directory=True)
    (settings.reports_dir / "inside_link.html").symlink_to(folder / "validation.html")

    base = RunRecord(
        model="flight_delay",
        interval_start=T0,
        interval_end=T0 + WEEK,
        rows=1200,
        drift_share=0.1,
        metric_name="roc_auc",
        metric_value=0.81,
        summary="no retrain: nothing fired",
    )
    store.record_run(base)
    store.record_run(
        dataclasses.replace(
            base,
            interval_start=T0 + WEEK,
            interval_end=T0 + 2 * WEEK,
            drift_share=0.6,
            drifted_features=["dep_hour", "distance"],
            metric_value=0.74,
            retrain=True,
            reasons=[{"kind": "trigger", "rule": "drift_share", "fired": True, "detail": "0.60 >= 0.30"}],
            summary="retrain: drift share 0.60 >= 0.30",
            report_paths={
                "drift": str(folder / "drift.html"),
                "quality": str(folder / "validation.html"),
                "summary": str(folder / "summary.json"),
            },
        )
    )
    store.record_promotion(
        "flight_delay",
        action="promote",
        version="2",
        previous_version="1",
        actor="gate",
        reason="challenger better",
        at=T0 + 2 * WEEK + timedelta(hours=3),
    )
    assert store.claim_retrain("flight_delay", T0 + WEEK, T0 + 2 * WEEK) is None
    store.finish_retrain(
        "flight_delay",
        T0 + WEEK,
        T0 + 2 * WEEK,
        status="rejected",
        candidate_version="3",
        verdict={
            "promote": False,
            "summary": "REJECT (challenger vs champion on roc_auc): uplift: +0.001 < 0.01",
            "checks": [{"name": "uplift", "passed": False, "detail": "+0.001 < 0.01"}],
        },
    )
    store.record_run(
        RunRecord(
            model=EVIL_MODEL,
            interval_start=T0,
            interval_end=T0 + WEEK,
            drift_share=0.5,
            drifted_features=[f"feat{EVIL}"],
            summary=f"reason {EVIL}",
        )
    )
    yield SimpleNamespace(settings=settings, store=store, folder=folder, outside=outside)
    dispose_engines()


@pytest.fixture(scope="module")
def client(world: SimpleNamespace) -> TestClient:
    return TestClient(create_app(world.settings))


def test_health_board_lists_models_with_status_champion_and_links(client: TestClient) -> None:
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    page = Text(resp.text)
    assert "flight_delay" in page.joined
    assert "/models/flight_delay" in page.links
    assert "/models/flight_delay/registry" in page.links
    # the latest run of flight_delay drifted and decided a retrain; v2 was promoted after it
    assert "2013-03-11 00:00 → 2013-03-18 00:00" in page.joined
    assert 'data-status="drift"' in resp.text and "drift share 0.60" in page.joined
    assert "retrain: drift_share" in page.joined
    assert "v2" in page.joined
    assert "/runbook#drift" in page.links
    assert "/models/flight_delay/rollback" in page.links


def test_rollback_page_names_the_version_it_restores_and_the_one_it_replaces(
    world: SimpleNamespace, client: TestClient
) -> None:
    # MLflow unreachable (the fixture's tracking URI): the promotion history's last move says it
    page = client.get("/models/flight_delay/rollback")
    text = Text(page.text)
    assert page.status_code == 200 and "makes v1 (@previous_champion) the champion again and replaces v2" in text.joined
    assert "the promotion history" in text.joined
    assert "/dags/driftguard_rollback__flight_delay" in text.links  # Airflow's root: the mount point's parent
    aliases = {"champion": SimpleNamespace(version="5"), "previous_champion": SimpleNamespace(version="4")}
    mlflow = TestClient(create_app(world.settings, registry_lookup=lambda m, alias, uri: aliases.get(alias)))
    joined = Text(mlflow.get("/models/flight_delay/rollback").text).joined
    assert "makes v4 (@previous_champion) the champion again and replaces v5" in joined and "MLflow's aliases" in joined
    aliases.pop("previous_champion")
    joined = Text(mlflow.get("/models/flight_delay/rollback").text).joined
    assert "A rollback is not possible: @champion is v5" in joined
    assert client.get("/models/nobody/rollback").status_code == 404


def test_a_paused_monitoring_dag_shows_paused_on_board_and_model_page(world: SimpleNamespace) -> None:
    asked: list[list[str]] = []

    def paused(ids):
        asked.append(list(ids))
        return {"driftguard_monitor__flight_delay": True}

    app = TestClient(create_app(world.settings, paused_lookup=paused))
    row = re.search(r'<tr class="model" data-model="flight_delay">.*?</tr>', app.get("/").text).group(0)
    assert '<span class="status muted" data-status="paused">paused</span>' in row  # grey, with its word
    assert "also: drift" in Text(row).joined  # the last run's verdict stays visible
    assert "driftguard_monitor__flight_delay" in asked[0]
    model = app.get("/models/flight_delay").text
    assert "paused" in Text(model).joined and "overdue" not in Text(model).joined


def test_model_page_decision_is_one_line_and_trend_marks_outcomes(client: TestClient) -> None:
    page = client.get("/models/flight_delay").text
    rows = re.findall(r'<tr class="run">.*?</tr>', page)
    newest = rows[0]
    assert '<span class="decision retrain">retrain: drift_share, 0.60 &gt;= 0.30</span>' in newest
    assert "<details><summary>reasons</summary>" in newest  # the rule-by-rule list, one click away
    assert 'class="rejection-marker"' in page and "candidate v3 rejected" in page  # dg_retrains
    assert 'class="promotion-marker"' not in page  # a gate promotion is drawn from dg_retrains only
    assert "<th>Data interval (UTC)</th>" in page  # data time vs wall clock, one wording everywhere
    assert "<th>Ran at (UTC)</th>" in client.get("/models/flight_delay/registry").text


def test_html_in_names_is_escaped_everywhere(client: TestClient) -> None:
    home = client.get("/")
    assert EVIL_MODEL not in home.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in home.text
    assert "<img" not in home.text
    assert EVIL_MODEL in Text(home.text).joined  # shown as text, literally
    assert "/models/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E" in Text(home.text).links

    page = client.get("/models/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E")
    assert page.status_code == 200, page.text
    assert EVIL not in page.text and "<img" not in page.text
    assert Text(page.text).scripts == 0
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    joined = Text(page.text).joined
    assert EVIL_MODEL in joined
    assert f"feat{EVIL}" in joined
    assert f"reason {EVIL}" in joined
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_model_page_has_trend_runs_and_report_links(client: TestClient, world: SimpleNamespace) -> None:
    resp = client.get("/models/flight_delay")
    assert resp.status_code == 200
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="trend"' in resp.text
    assert resp.text.count('class="pt drift') == 2  # one point per run in the drift panel
    page = Text(resp.text)
    assert "retrain: drift share 0.60 >= 0.30" in page.joined
    assert "trigger drift_share fired: 0.60 >= 0.30" in page.joined
    assert "dep_hour, distance" in page.joined
    assert "roc_auc 0.7400" in page.joined
    run = reports.run_dir_name(T0 + WEEK, T0 + 2 * WEEK)
    for name in ("drift.html", "validation.html", "summary.json"):
        assert f"/reports/flight_delay/{run}/{name}" in page.links
    # the older run has no report files: no dead links for it
    assert not any(reports.run_dir_name(T0, T0 + WEEK) in link for link in page.links)


def test_model_page_shows_the_shadow_challenger(client: TestClient, world: SimpleNamespace) -> None:
    world.store.record_shadow(
        ShadowRecord("flight_delay", "3", "2", "holdout", T0, T0 + WEEK, "shadowing", labelled_rows=24,
                     cumulative_rows=24, reason=f"opened {EVIL}")
    )  # fmt: skip
    world.store.record_shadow(
        ShadowRecord(
            "flight_delay", "3", "2", "window", T0 + WEEK, T0 + 2 * WEEK, "shadowing", windows=1, rows=1200,
            labelled_rows=50, cumulative_rows=74, disagreement=0.041, prediction_shift=-0.0123, ci_low=-0.01,
            ci_high=0.15, rows_needed=100, metric_name="roc_auc", reason=f"shadowing {EVIL}",
        )
    )  # fmt: skip
    resp = client.get("/models/flight_delay")
    assert EVIL not in resp.text and Text(resp.text).scripts == 0
    text = Text(resp.text).joined
    assert (
        "v3 is shadowing champion v2 since 2013-03-11 00:00 UTC: 1 window(s), 74 paired rows, "
        "CI of the roc_auc gain [-0.010, +0.150]; about 100 rows needed." in text
    )
    assert f"shadowing {EVIL}" in text and f"opened {EVIL}" in text
    assert "4.1%" in text and "-0.0123" in text and "Shadow challenger" in text


def test_unknown_model_is_404(client: TestClient) -> None:
    assert client.get("/models/nope").status_code == 404


def test_links_follow_the_mount_prefix(world: SimpleNamespace) -> None:
    outer = FastAPI()
    outer.mount("/driftguard", create_app(world.settings))
    resp = TestClient(outer).get("/driftguard/models/flight_delay")
    assert resp.status_code == 200
    links = Text(resp.text).links
    assert "/driftguard/" in links
    assert any(link.startswith("/driftguard/reports/flight_delay/") for link in links)
    report = TestClient(outer).get(next(link for link in links if link.endswith("drift.html")))
    assert report.status_code == 200 and "drift page" in report.text


def test_registry_page_with_dead_mlflow_says_so(client: TestClient) -> None:
    resp = client.get("/models/flight_delay/registry")
    assert resp.status_code == 200
    page = Text(resp.text)
    assert "MLflow registry unavailable" in page.joined
    assert "http://127.0.0.1:9" in page.joined  # names the tracking URI to fix
    # the history half still renders
    assert "REJECT (challenger vs champion on roc_auc): uplift: +0.001 < 0.01" in page.joined
    assert "uplift: +0.001 < 0.01" in page.joined
    assert "rejected" in page.joined
    assert "promote 2 1 gate challenger better" in page.joined


def test_registry_page_reads_aliases_from_real_mlflow(world: SimpleNamespace, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    c.create_registered_model("flight_delay")
    for _ in range(3):
        c.create_model_version("flight_delay", source=str(tmp_path / "model"))
    c.set_registered_model_alias("flight_delay", "champion", "2")
    c.set_registered_model_alias("flight_delay", "previous_champion", "1")
    c.set_model_version_tag("flight_delay", "2", "driftguard.verdict", "promote")

    app = create_app(dataclasses.replace(world.settings, mlflow_tracking_uri=uri))
    resp = TestClient(app).get("/models/flight_delay/registry")
    assert resp.status_code == 200
    joined = Text(resp.text).joined
    assert "MLflow registry unavailable" not in joined
    assert "@champion v2" in joined and "promote" in joined
    assert "@previous_champion v1" in joined
    assert "@challenger not set" in joined


@pytest.mark.parametrize(
    "url",
    [
        "/reports/../history.db",
        "/reports/%2e%2e/secret.txt",
        "/reports/%2E%2E/secret.txt",
        "/reports/flight_delay%2F..%2F..%2Fsecret.txt",
        "/reports/flight_delay/%2e%2e/%2e%2e/secret.txt",
        "/reports/..%2fsecret.txt",
        "/reports/%2fetc/passwd",
        "/reports//etc/passwd",
        "/reports/escape.txt",
        "/reports/escape_dir/secret.txt",
        "/reports/drift.html%00.txt",
        "/reports/.hidden.html",
        "/reports/..\\secret.txt",
        "/reports/missing.html",
        "/reports/flight_delay/nope/drift.html",
    ],
)
def test_report_paths_outside_or_odd_are_404(client: TestClient, url: str) -> None:
    resp = client.get(url)
    assert resp.status_code == 404, f"{url} answered {resp.status_code}: {resp.text[:200]}"
    assert "top secret" not in resp.text


def test_raw_dot_segments_are_404(world: SimpleNamespace) -> None:
    """httpx normalises '..' away before sending; drive the ASGI app with the raw path instead."""
    import asyncio

    app = create_app(world.settings)
    for raw in (b"/reports/../secret.txt", b"/reports/flight_delay/../../secret.txt", b"/reports/./escape.txt"):
        path = raw.decode()
        sent: list[dict[str, Any]] = []

        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive(messages: list[dict[str, Any]] = messages) -> dict[str, Any]:
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": raw,
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"testserver")],
            "client": ("127.0.0.1", 1),
            "server": ("testserver", 80),
        }
        asyncio.run(app(scope, receive, send))
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        assert status == 404, f"{raw!r} answered {status}"
        assert b"top secret" not in body


def test_resolve_report_file_rules(world: SimpleNamespace) -> None:
    root = world.settings.reports_dir
    assert resolve_report_file(root, str(world.outside)) is None  # absolute
    assert resolve_report_file(root, "flight_delay/../../secret.txt") is None
    assert resolve_report_file(root, "escape.txt") is None  # symlink out
    assert resolve_report_file(root, "a\x00b") is None
    assert resolve_report_file(root, f"_assets/{BUNDLE}", f"/reports/_assets/{BUNDLE}") is not None
    assert resolve_report_file(root, f"_assets/{BUNDLE}", f"/reports/_assets%2F{BUNDLE}") is None
    # a symlink that stays inside is fine
    assert resolve_report_file(root, "inside_link.html") == (world.folder / "validation.html").resolve()


def test_report_files_serve_with_content_types(client: TestClient, world: SimpleNamespace) -> None:
    run = world.folder.name
    drift = client.get(f"/reports/flight_delay/{run}/drift.html")
    assert drift.status_code == 200
    assert drift.headers["content-type"] == "text/html; charset=utf-8"
    assert "drift page" in drift.text
    assert drift.headers["x-content-type-options"] == "nosniff"
    csp = [d.strip() for d in drift.headers["content-security-policy"].split(";")]
    # Third-party HTML runs in an opaque origin: its scripts cannot use the viewer's Airflow session.
    assert "sandbox allow-scripts allow-downloads" in csp and "allow-same-origin" not in ";".join(csp)
    assert "connect-src 'none'" in csp and "default-src 'none'" in csp
    assert "http" not in ";".join(csp)  # no other origin allowed
    assert (
        client.get(f"/reports/flight_delay/{run}/validation.html").headers["content-security-policy"]
        == (drift.headers["content-security-policy"])
    )
    # the drift page's relative bundle link resolves to the same route
    src = re.search(r'<script src="([^"]+)"', drift.text)
    assert src is not None
    bundle_url = urljoin(f"http://testserver/reports/flight_delay/{run}/drift.html", src.group(1))
    assert bundle_url == f"http://testserver/reports/_assets/{BUNDLE}"
    bundle = client.get(bundle_url)
    assert bundle.status_code == 200
    assert bundle.headers["content-type"] == "text/javascript; charset=utf-8"
    assert bundle.text == "console.log('bundle');"
    summary = client.get(f"/reports/flight_delay/{run}/summary.json")
    assert summary.headers["content-type"] == "application/json"
    assert summary.json() == {"model": "flight_delay"}
    assert client.get("/reports/inside_link.html").text == "<html><body>validation page</body></html>"


def test_dag_tab_redirects_driftguard_dags_to_their_model(client: TestClient) -> None:
    resp = client.get("/dags/driftguard_monitor__flight_delay", follow_redirects=False)
    assert resp.status_code == 307
    assert resp.headers["location"] == "/models/flight_delay"
    other = client.get("/dags/etl_daily")
    assert other.status_code == 200
    assert "DAG etl_daily is not a Driftguard DAG." in Text(other.text).joined


def test_unreadable_history_is_a_503_page(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the history's folder should be")
    settings = _settings(tmp_path, f"sqlite:///{tmp_path / 'blocked' / 'history.db'}")
    resp = TestClient(create_app(settings)).get("/")
    assert resp.status_code == 503
    assert "History store unavailable" in Text(resp.text).joined


def test_auth_dependency_guards_every_route(world: SimpleNamespace) -> None:
    async def deny(request: Request) -> None:
        if request.headers.get("authorization") != "Bearer good":
            raise HTTPException(status_code=401, detail="Not authenticated")

    client = TestClient(create_app(world.settings, auth_dependency=deny))
    run = world.folder.name
    urls = [
        "/",
        "/models/flight_delay",
        "/models/flight_delay/registry",
        "/dags/driftguard_monitor__flight_delay",
        f"/reports/flight_delay/{run}/drift.html",
        f"/reports/flight_delay/{run}/summary.json",
        f"/reports/_assets/sub/{BUNDLE}",  # not directly in _assets: the guarded route
        f"/reports/flight_delay/{BUNDLE}",
    ]
    for url in urls:
        resp = client.get(url, follow_redirects=False)
        assert resp.status_code == 401, f"{url} answered {resp.status_code} without credentials"
        assert "drift page" not in resp.text
    ok = client.get("/", headers={"Authorization": "Bearer good"})
    assert ok.status_code == 200 and "flight_delay" in ok.text


def test_vendor_assets_alone_are_served_without_login(world: SimpleNamespace) -> None:
    """Sandboxed report pages fetch the bundle and font without the Airflow cookie: those two
    vendor files (and nothing else, not even other files of _assets) need no login."""

    async def deny(request: Request) -> None:
        raise HTTPException(status_code=401, detail="Not authenticated")

    client = TestClient(create_app(world.settings, auth_dependency=deny))
    bundle = client.get(f"/reports/_assets/{BUNDLE}")
    assert bundle.status_code == 200 and bundle.text == "console.log('bundle');"
    assert bundle.headers["content-type"] == "text/javascript; charset=utf-8"
    font = client.get("/reports/_assets/material-ui-icons.woff2")
    assert font.status_code == 200 and font.headers["content-type"] == "font/woff2"
    assert font.headers["access-control-allow-origin"] == "*"  # fonts load with CORS from origin "null"
    assert "sandbox" in font.headers["content-security-policy"]
    # an encoded '../' is two segments for the router: the login-guarded route answers
    assert client.get("/reports/_assets/%2e%2e%2fescape.txt").status_code == 401
    for name in ("notes.txt", "evidently-9.9.9.js", "evidently-1.0.js", "index.html", "%2e%2e"):
        resp = client.get(f"/reports/_assets/{name}")
        assert resp.status_code == 404, f"_assets/{name} answered {resp.status_code}"
        assert "validation page" not in resp.text and "not a vendor" not in resp.text
    root = world.settings.reports_dir
    assert resolve_vendor_asset(root, BUNDLE) == (root / "_assets" / BUNDLE).resolve()
    assert resolve_vendor_asset(root, "evidently-9.9.9.js") is None  # symlink to a report
    assert resolve_vendor_asset(root, "notes.txt") is None
    assert resolve_vendor_asset(root, f"../_assets/{BUNDLE}") is None


def test_plugin_import_is_light_and_registers_app_and_links(tmp_path: Path) -> None:
    """A fresh interpreter: the plugin registers /driftguard and its links without pandas/MLflow."""
    code = (
        "import sys, json\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import driftguard_plugin as p\n"
        "heavy = [m for m in ('pandas', 'mlflow', 'evidently', 'great_expectations', 'sklearn') if m in sys.modules]\n"
        "app = p.DriftguardPlugin.fastapi_apps[0]\n"
        "print(json.dumps({'heavy': heavy, 'prefix': app['url_prefix'], 'name': app['name'],\n"
        "  'deps': {r.path: len(r.dependencies) for r in app['app'].routes if hasattr(r, 'dependencies')},\n"
        "  'views': [(v['destination'], v.get('category'), v['href']) for v in p.DriftguardPlugin.external_views]}))\n"
    )
    env = {**os.environ, "DRIFTGUARD_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(REPO_ROOT / "plugins")], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["heavy"] == []
    assert info["prefix"] == "/driftguard" and info["name"] == "Driftguard"
    # Airflow's user dependency on every route but the vendor assets' (Evidently's bundle and font)
    assert info["deps"].pop("/reports/_assets/{name}") == 0
    assert set(info["deps"].values()) == {1} and "/reports/{path:path}" in info["deps"]
    assert ["nav", "browse", "/driftguard/"] in info["views"]
    assert ["dag", None, "/driftguard/dags/{DAG_ID}"] in info["views"]


# --------------------------------------------------------------------------- health board, runbook, error pages


@pytest.fixture
def oncall(tmp_path: Path) -> Iterator[SimpleNamespace]:
    """`m1`: a run, then a failed task (HTML in its error); `fresh`: a daily contract, never run."""
    import yaml
    from driftguard.store import FailureRecord
    from driftguard.testing import synthetic_contract

    settings = _settings(tmp_path, f"sqlite:///{tmp_path / 'history.db'}")
    settings.models_dir.mkdir()
    fresh = synthetic_contract(url="sqlite:///unused.db", name="fresh", start_date=T0)
    text = yaml.safe_dump(fresh.model_dump(mode="json", exclude_unset=True), sort_keys=False)
    (settings.models_dir / "fresh.yaml").write_text(text)
    store = HistoryStore(settings.history_url)
    store.record_run(RunRecord(model="m1", interval_start=T0, interval_end=T0 + WEEK, updated_at=T0 + WEEK))
    failure = FailureRecord(
        model="m1",
        dag_id="driftguard_monitor__m1",
        run_id="scheduled__2013-03-11T00:00:00+00:00",
        task_id="extract_window",
        try_number=1,
        interval_start=T0 + WEEK,
        interval_end=T0 + 2 * WEEK,
        error=f"MissingTableError: {EVIL}",
        failed_at=T0 + 2 * WEEK + timedelta(hours=1),
    )
    store.record_failure(failure)
    outer = FastAPI()
    outer.mount("/driftguard", create_app(settings, clock=lambda: T0 + 2 * WEEK + timedelta(hours=2)))
    yield SimpleNamespace(client=TestClient(outer), failure=failure)
    dispose_engines()


def test_board_shows_a_failed_run_with_its_task_log_and_an_overdue_contract(oncall: SimpleNamespace) -> None:
    resp = oncall.client.get("/driftguard/")
    assert resp.status_code == 200 and EVIL not in resp.text and Text(resp.text).scripts == 0
    rows = {m: row for m, row in re.findall(r'<tr class="model" data-model="([^"]+)">(.*?)</tr>', resp.text)}
    assert 'data-status="run_failed"' in rows["m1"] and ">run failed<" in rows["m1"]
    m1 = Text(rows["m1"])
    assert f"extract_window failed 1h 0m ago: MissingTableError: {EVIL}" in m1.joined
    # Airflow 3's task-instance page (its log), under Airflow's root: the mount point's parent
    log = "/dags/driftguard_monitor__m1/runs/scheduled__2013-03-11T00%3A00%3A00%2B00%3A00/tasks/extract_window"
    assert log in m1.links and "/driftguard/runbook#pipeline_failure" in m1.links
    assert "/driftguard/models/m1/rollback" in m1.links
    # never run, its first daily interval ended long ago: overdue, and listed although nothing is recorded
    assert 'data-status="overdue"' in rows["fresh"]
    assert "/driftguard/runbook#board" in Text(rows["fresh"]).links
    page = oncall.client.get("/driftguard/models/fresh")
    assert page.status_code == 200 and "No failed runs recorded." in page.text
    page = oncall.client.get("/driftguard/models/m1")
    assert f"MissingTableError: {EVIL}" in Text(page.text).joined and log in Text(page.text).links
    assert 'data-status="run_failed"' in page.text  # the model page shows the board's status too


def test_runbook_page_has_a_section_per_alert_kind(oncall: SimpleNamespace) -> None:
    from driftguard.reporting.alerts import KINDS

    resp = oncall.client.get("/driftguard/runbook")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in resp.headers["content-security-policy"]
    ids = set(re.findall(r'<h2 id="([^"]+)"', resp.text))
    assert set(KINDS) | {"board"} <= ids
    assert "#pipeline_failure" in Text(resp.text).links and Text(resp.text).scripts == 0


def test_runbook_renderer_escapes_everything() -> None:
    from driftguard.reporting import runbook

    html_, headings = runbook.render(
        f"## {EVIL} {{#x}}\n\ntext {EVIL} `{EVIL}` **{EVIL}** [a](javascript:alert(1)) [b](#x)\n\n"
        f"- item {EVIL}\n  continued\n\n```\n{EVIL}\n```\n"
    )
    assert "<script" not in html_ and 'href="javascript' not in html_
    assert headings == [(2, "x", EVIL)] and '<a href="#x">b</a>' in html_
    assert "<li>item &lt;script&gt;alert(1)&lt;/script&gt; continued</li>" in html_
    assert f"<pre><code>{EVIL.replace('<', '&lt;').replace('>', '&gt;')}</code></pre>" in html_


def test_errors_are_html_pages_never_json(world: SimpleNamespace) -> None:
    async def deny(request: Request) -> None:
        raise HTTPException(status_code=401, detail="Not authenticated", headers={"WWW-Authenticate": "Bearer"})

    def broken_clock() -> datetime:
        raise RuntimeError("clock broke")

    plain = TestClient(create_app(world.settings, clock=broken_clock), raise_server_exceptions=False)
    guarded = TestClient(create_app(world.settings, auth_dependency=deny))
    for client, url, status, text in (
        (plain, "/no/such/page", 404, "Not Found"),
        (plain, "/models/nope", 404, "no runs, promotions or failed runs recorded for model 'nope'"),
        (plain, "/reports/nope.html", 404, "no such report file"),
        (plain, "/", 500, "This page failed: RuntimeError"),
        (guarded, "/", 401, "Not authenticated"),
    ):
        resp = client.get(url, headers={"Accept": "application/json"})
        assert resp.status_code == status, url
        assert resp.headers["content-type"].startswith("text/html"), url
        assert not resp.text.lstrip().startswith("{") and text in Text(resp.text).joined, url
    assert guarded.get("/").headers["www-authenticate"] == "Bearer"
