"""driftguard.reporting.templating: every page family renders hostile values as text, and the templates ship.

A value that ever reached a page unescaped would show up here as markup: each family (served
pages, report files, the run cells they share) is rendered from real inputs holding a <script>
payload in a model name, a column, a reason, and the raw HTML must hold it only escaped."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from driftguard.reporting import reports, templating
from driftguard.settings import Settings
from driftguard.store import HistoryStore, RunRecord, ShadowRecord, dispose_engines
from driftguard.ui import app as ui
from driftguard.ui import candidate_page
from fastapi.testclient import TestClient

EVIL = "<script>alert('dg')</script>"
ESCAPED = "&lt;script&gt;alert(&#x27;dg&#x27;)&lt;/script&gt;"
EVIL_MODEL = "m<script>alert('dg')"  # a model name cannot hold '/'
T0 = datetime(2013, 3, 4, tzinfo=UTC)
WEEK = timedelta(days=7)
TEMPLATES = Path(templating.__file__).parents[1] / "templates"  # driftguard/templates (package data)
REPO_ROOT = Path(__file__).resolve().parents[2]


def _assert_escaped(page: str, *payloads: str) -> None:
    """No payload as markup; each one there, escaped."""
    assert "<script>alert" not in page
    for payload in payloads:
        assert ui_escape(payload) in page, payload


def ui_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#x27;")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[TestClient]:
    """The app over a real SQLite history store whose model, feature, reasons, promotion and gate
    check are all hostile."""
    settings = Settings(
        home=tmp_path,
        models_dir=tmp_path / "models",
        reports_dir=(tmp_path / "reports").resolve(),
        history_url=f"sqlite:///{tmp_path / 'history.db'}",
        feature_log_url=f"sqlite:///{tmp_path / 'features.db'}",
        mlflow_tracking_uri="http://127.0.0.1:9",
        mlflow_artifacts_dir=tmp_path / "mlartifacts",
    )
    store = HistoryStore(settings.history_url)
    store.record_run(
        RunRecord(
            model=EVIL_MODEL,
            interval_start=T0,
            interval_end=T0 + WEEK,
            drift_share=0.5,
            drifted_features=[f"col {EVIL}"],
            retrain=True,
            reasons=[{"kind": "trigger", "rule": "drift_share", "fired": True, "detail": f"reason {EVIL}"}],
            summary=f"summary {EVIL}",
        )
    )
    store.record_promotion(
        EVIL_MODEL, action="promote", version="1", previous_version=None, actor="gate", reason=f"why {EVIL}", at=T0
    )
    assert store.claim_retrain(EVIL_MODEL, T0, T0 + WEEK) is None
    check = {"name": "segment_guardrails", "passed": False, "detail": f"segment {EVIL}"}
    check["numbers"] = {f"loss[{EVIL}]": 0.2, f"p[{EVIL}]": 0.01, "alpha": 0.05}
    store.finish_retrain(
        EVIL_MODEL, T0, T0 + WEEK, status="rejected", candidate_version="2",
        verdict={"promote": False, "summary": f"gate {EVIL}", "checks": [check]},
    )  # fmt: skip
    yield TestClient(ui.create_app(settings, registry_lookup=lambda *a: None))
    dispose_engines()


def test_served_pages_escape_hostile_values(served: TestClient) -> None:
    model = "/models/m%3Cscript%3Ealert%28%27dg%27%29"
    pages = {
        "/": (EVIL_MODEL,),
        model: (EVIL_MODEL, f"col {EVIL}", f"reason {EVIL}", f"gate {EVIL}", f"segment {EVIL}"),
        f"{model}/registry": (EVIL_MODEL, f"why {EVIL}", f"gate {EVIL}", f"segment {EVIL}"),
        f"{model}/rollback": (EVIL_MODEL,),
        f"{model}/candidates/2": (EVIL_MODEL, f"gate {EVIL}", f"segment {EVIL}", EVIL),
        "/models/nobody%3Cscript%3Ealert%28%27dg%27%29": ("nobody<script>alert('dg')",),  # the 404 page
    }
    for url, payloads in pages.items():
        resp = served.get(url)
        assert resp.status_code == (404 if "nobody" in url else 200), (url, resp.text)
        assert resp.text.count("<script>") == 1, url  # the theme script, nothing else
        _assert_escaped(resp.text, *payloads)


def test_report_files_escape_hostile_values(tmp_path: Path) -> None:
    rec = RunRecord(
        model="m",
        interval_start=T0,
        interval_end=T0 + WEEK,
        drift_share=0.5,
        drifted_features=[f"col {EVIL}"],
        metric_name=f"metric {EVIL}",
        metric_value=0.7,
        reasons=[{"kind": "guard", "rule": f"rule {EVIL}", "fired": True, "detail": f"reason {EVIL}"}],
        signals={"shadow": {"state": "error", "error": f"shadow {EVIL}"}},
    )
    shadow = ShadowRecord(
        model="m", challenger_version="2", champion_version="1", kind="holdout",
        interval_start=T0, interval_end=T0 + WEEK, outcome="rejected", reason=f"shadow reason {EVIL}",
    )  # fmt: skip
    promotion = {"action": "promote", "version": "2", "actor": f"actor {EVIL}", "reason": f"why {EVIL}", "at": T0}
    index = reports.write_model_index(tmp_path, "m", [rec], promotions=[promotion], shadow=[shadow])
    _assert_escaped(index.read_text(), f"col {EVIL}", f"reason {EVIL}", f"rule {EVIL}", f"why {EVIL}")
    _assert_escaped(index.read_text(), f"shadow {EVIL}", f"shadow reason {EVIL}", f"metric {EVIL}")
    home = reports.write_home(tmp_path, ["m"], recent={"m": [rec]})
    _assert_escaped(home.read_text())
    check = {"success": False, "severity": "critical", "family": f"fam {EVIL}", "column": f"col {EVIL}"}
    check |= {"message": f"msg {EVIL}", "observed": {"examples": [f"value {EVIL}"]}}
    quality = reports.quality_page({"model": f"m {EVIL}", "checks": [check]}, summary=f"summary {EVIL}")
    _assert_escaped(quality, f"m {EVIL}", f"fam {EVIL}", f"col {EVIL}", f"msg {EVIL}", f"value {EVIL}")
    feature = {"feature": f"col {EVIL}", "drifted": True, "method": f"test {EVIL}", "basis": f"basis {EVIL}"}
    drift = {"features": [feature], "drift_share": 1.0, "skipped": {f"skip {EVIL}": f"why {EVIL}"}}
    page = reports.drift_sections(drift, model=f"m {EVIL}", reference=f"ref {EVIL}")
    _assert_escaped(page, f"m {EVIL}", f"col {EVIL}", f"test {EVIL}", f"ref {EVIL}", f"skip {EVIL}", f"why {EVIL}")


def test_candidate_body_escapes_hostile_values() -> None:
    retrain = {"candidate_version": "2", "status": "rejected", "verdict": {"summary": f"gate {EVIL}"}}
    retrain["verdict"]["candidate"] = {"run_id": f"run {EVIL}", "trigger": f"trigger {EVIL}"}
    body = candidate_page.candidate_body(
        "", f"m {EVIL}", retrain, [], tracking_uri=f"sqlite:///{EVIL}", model_href="/m", registry_href="/r"
    )
    _assert_escaped(body, f"m {EVIL}", f"gate {EVIL}", f"run {EVIL}", f"trigger {EVIL}", f"sqlite:///{EVIL}")


def test_every_template_compiles_ships_and_explains_its_safe_values() -> None:
    """A template that does not parse, is not package data, or marks a value |safe without saying
    why it is escaped already, fails here rather than on a page."""
    patterns = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    found = sorted(TEMPLATES.rglob("*.html"))
    assert len(found) >= 10
    for path in found:
        rel = path.relative_to(TEMPLATES.parent).as_posix()
        assert any(fnmatch.fnmatch(rel, p) and rel.count("/") == p.count("/") for p in patterns["driftguard"]), rel
        templating.ENV.get_template(path.relative_to(TEMPLATES).as_posix())
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if "|safe }}" in line:
                comment = "\n".join(lines[max(0, i - 3) : i + 1])
                assert re.search(r"\{#.*(escape|constant)", comment, re.S), f"{rel}:{i + 1} |safe without a why"
