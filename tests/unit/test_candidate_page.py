"""The champion-vs-challenger page (driftguard.ui.candidate_page, /models/{model}/candidates/{version}):
a real gate verdict stored in a real SQLite history store, its numbers on the page, links, escaping."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import xss_support
from driftguard.contract import ModelContract
from driftguard.retraining.gate import evaluate_gate
from driftguard.retraining.servability import ServabilityResult
from driftguard.settings import Settings
from driftguard.store import HistoryStore, RunRecord, ShadowRecord, dispose_engines
from driftguard.ui import candidate_page
from driftguard.ui.app import THEME_SCRIPT, create_app
from fastapi.testclient import TestClient

T0 = datetime(2013, 6, 3, tzinfo=UTC)
DAY = timedelta(days=1)
MODEL = "flight_delay"
RUN_ID = "0123456789abcdef0123456789abcdef"
BAD_SEGMENT, OK_SEGMENT = xss_support.PAYLOADS[1], xss_support.PAYLOADS[2]  # <img onerror>, "><svg onload>
EVIL_REASON = xss_support.PAYLOADS[0]  # </script><script>...


class Page(HTMLParser):
    """Visible text, links and the tags a payload would inject if it were parsed as markup."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.links: list[str] = []
        self.tags: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "a":
            self.links.append(dict(attrs).get("href") or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @property
    def joined(self) -> str:
        return " ".join(" ".join(self.text).split())


def _verdict() -> dict:
    """A real rejection: better overall, useless in one segment (whose value is an HTML payload)."""
    contract = ModelContract.model_validate(
        {
            "name": MODEL,
            "task": "binary_classification",
            "owners": ["a@example.com"],
            "start_date": "2024-01-01",
            "source": {"url": "sqlite:///x.db", "table": "log", "timestamp_column": "ts", "id_column": "id"},
            "features": [{"name": "origin", "kind": "categorical", "segment": True}],
            "promotion": {"bootstrap": {"samples": 200, "confidence": 0.95, "seed": 0}},
        }
    )
    rng = np.random.default_rng(5)
    n = 2400
    y = rng.binomial(1, 0.35, n).astype(float)
    origin = np.repeat(np.array(["EWR", OK_SEGMENT, BAD_SEGMENT], dtype=object), n // 3)
    bad = origin == BAD_SEGMENT

    def probs(strength: np.ndarray | float, noise: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(strength * (2 * y - 1) + noise - 0.6)))

    champion = probs(0.8, rng.normal(0, 1, n))
    challenger = probs(np.where(bad, 0.0, 2.0), rng.normal(0, 1, n))
    timing = ServabilityResult(
        ok=True, load_seconds=0.4, ms_per_1k_rows=12.0, error=None, model_uri=f"models:/{MODEL}/5",
        champion_ms_per_1k_rows=10.0,
    )  # fmt: skip
    verdict = evaluate_gate(
        contract,
        y_true=y,
        champion_scores=champion,
        challenger_scores=challenger,
        segments={"origin": origin},
        servability=timing,
    )
    assert not verdict.check("segment_guardrails").passed and not verdict.promote
    doc = verdict.to_dict()
    doc["candidate"] = {
        "registered_model": MODEL,
        "version": "5",
        "champion_version": "4",
        "run_id": RUN_ID,
        "experiment_id": "7",
        "trigger": f"metric_drop {EVIL_REASON}",
    }
    return doc


def _settings(tmp: Path, mlflow_uri: str) -> Settings:
    return Settings(
        home=tmp,
        models_dir=tmp / "models",
        reports_dir=(tmp / "reports").resolve(),
        history_url=f"sqlite:///{tmp / 'history.db'}",
        feature_log_url=f"sqlite:///{tmp / 'features.db'}",
        mlflow_tracking_uri=mlflow_uri,
        mlflow_artifacts_dir=tmp / "mlartifacts",
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("candidate_page")
    settings = _settings(tmp, "https://user:secret@mlflow.example:5000/")
    store = HistoryStore(settings.history_url)
    store.record_run(
        RunRecord(model=MODEL, interval_start=T0, interval_end=T0 + DAY, retrain=True, summary="retrain: metric_drop")
    )
    verdict = _verdict()
    assert store.claim_retrain(MODEL, T0, T0 + DAY) is None
    store.finish_retrain(MODEL, T0, T0 + DAY, status="rejected", candidate_version="5", verdict=verdict)
    store.record_shadow(
        ShadowRecord(
            MODEL, "5", "4", "window", T0 + DAY, T0 + 2 * DAY, "shadowing", windows=2, cumulative_rows=1800,
            metric_name="roc_auc", champion_metric=0.71, challenger_metric=0.72, ci_low=-0.012, ci_high=0.031,
            bound=0.007, rows_needed=5200, reason=f"window {EVIL_REASON}",
        )
    )  # fmt: skip
    yield SimpleNamespace(settings=settings, store=store, verdict=verdict)
    dispose_engines()


@pytest.fixture(scope="module")
def client(world: SimpleNamespace) -> TestClient:
    return TestClient(create_app(world.settings))


def test_candidate_page_shows_both_models_the_gain_ci_and_every_check(
    client: TestClient, world: SimpleNamespace
) -> None:
    resp = client.get(f"/models/{MODEL}/candidates/5")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    page = Page(resp.text)
    text = page.joined
    checks = {c["name"]: c for c in world.verdict["checks"]}
    sig, thr = checks["significance"]["numbers"], checks["primary_metric_threshold"]["numbers"]
    assert "Rejected v5 vs champion v4" in text
    assert f"Champion {thr['champion']:.4f}" in text and f"Challenger {thr['challenger']:.4f}" in text
    assert f"95% CI of the gain [{sig['ci_low']:+.4f}, {sig['ci_high']:+.4f}]" in text
    assert f"Decision bound {sig['bound']:+.4f}" in text and f"Mode {sig['mode']}" in text
    assert f"Paired holdout rows {sig['rows']:,}" in text and "Margin 1% (=" in text
    for name in ("loads_and_scores", "output_sanity", "significance", "segment_guardrails", "calibration",
                 "servability"):  # fmt: skip
        assert f'data-check="{name}"' in resp.text
    cal = checks["calibration"]["numbers"]
    assert (
        f"champion <b>{cal['champion']:.4f}</b>" in resp.text
        and f"challenger <b>{cal['challenger']:.4f}</b>" in resp.text
    )
    assert "challenger ms / 1k rows 12.0000" in text and "ratio 1.2000" in text  # 12 ms vs the champion's 10
    seg = checks["segment_guardrails"]["numbers"]
    label = f"origin={BAD_SEGMENT}"
    assert f"{label} {seg[f'rows[{label}]']:,} {seg[f'loss[{label}]']:+.4f}" in text
    assert resp.text.count('<tr class="failing">') == 1  # Holm's rejection: the useless segment only
    # shadow evidence from dg_shadow
    assert "after 2 window(s), 1,800 paired rows, CI of the roc_auc gain [-0.0120, +0.0310]" in text
    # MLflow links from the http(s) tracking URI, without its credentials
    assert "https://mlflow.example:5000/#/models/flight_delay/versions/5" in page.links
    assert f"https://mlflow.example:5000/#/experiments/7/runs/{RUN_ID}" in page.links
    assert "secret" not in resp.text


def test_payloads_in_segments_reasons_and_trigger_stay_text(client: TestClient) -> None:
    resp = client.get(f"/models/{MODEL}/candidates/5")
    page = Page(resp.text)
    for payload in (BAD_SEGMENT, OK_SEGMENT, EVIL_REASON):
        assert payload not in resp.text  # never raw
        assert payload in page.joined  # shown as text, literally
    assert {"img", "svg"}.isdisjoint(page.tags)
    assert page.tags.count("script") == 1 and f"<script>{THEME_SCRIPT}</script>" in resp.text  # the theme's only
    assert "default-src 'none'" in resp.headers["content-security-policy"]


def test_file_tracking_uri_shows_ids_and_how_to_open_them(world: SimpleNamespace) -> None:
    uri = f"sqlite:///{world.settings.home / 'mlflow.db'}"
    app = create_app(dataclasses.replace(world.settings, mlflow_tracking_uri=uri))
    resp = TestClient(app).get(f"/models/{MODEL}/candidates/5")
    text = Page(resp.text).joined
    assert f"MLflow run {RUN_ID}" in text and "registered model flight_delay version 5" in text
    assert f"mlflow ui --backend-store-uri {uri}" in text
    assert not any("#/" in link for link in Page(resp.text).links)


def test_candidate_is_linked_from_model_registry_and_board(client: TestClient) -> None:
    href = f"/models/{MODEL}/candidates/5"
    model = client.get(f"/models/{MODEL}")
    assert href in Page(model.text).links
    assert "roc_auc" in Page(model.text).joined and "gain" in Page(model.text).joined
    assert href in Page(client.get(f"/models/{MODEL}/registry").text).links
    board = client.get("/")
    assert href in Page(board.text).links  # the last run decided the retrain that made v5


@pytest.mark.parametrize("path", [f"/models/{MODEL}/candidates/99", "/models/nope/candidates/1"])
def test_unknown_candidate_is_an_html_404(client: TestClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 404 and resp.headers["content-type"].startswith("text/html")
    assert "no retraining candidate" in Page(resp.text).joined and not resp.text.lstrip().startswith("{")


def test_builder_without_checks_or_links() -> None:
    row = {"status": "failed", "candidate_version": "3", "verdict": {"error": f"boom {EVIL_REASON}"}}
    body = candidate_page.candidate_body(
        "/dg", MODEL, row, [], tracking_uri="file:///tmp/mlruns", model_href="/m", registry_href="/r"
    )
    text = Page(body).joined
    assert "Failed" in text and f"boom {EVIL_REASON}" in text and EVIL_REASON not in body
    assert "run id not recorded" in text and "did not shadow" in text
    assert candidate_page.mlflow_links("http://h:5000", "a b", "1", "r", None) == {
        "version": "http://h:5000/#/models/a%20b/versions/1"
    }
