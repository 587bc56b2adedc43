"""Each injected drift kind is detected on its date, nothing fires on the stable stretch, and a
critical quality failure blocks the retrain: monitoring runs day by day against a real champion
(real GX, Evidently, MLflow on SQLite, history on SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from driftguard.monitoring import monitor
from driftguard.retraining import retrain
from driftguard.settings import get_settings
from driftguard.testing import Injection, generate_log, synthetic_contract, write_log
from home_support import isolated_stores

START = datetime(2024, 1, 1, tzinfo=UTC)
INJECTED = {  # day -> (kind, column)
    13: ("mean_shift", "num_0"),
    15: ("variance_change", "num_1"),
    17: ("new_category", "cat_a"),
    19: ("null_spike", "num_2"),
    21: ("type_change", "num_3"),
}


def _day(n: int) -> datetime:
    return START + timedelta(days=n)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("detection")
    mp = pytest.MonkeyPatch()
    home = tmp / "home"
    isolated_stores(mp, home)
    url = f"sqlite:///{tmp / 'log.db'}"
    contract = synthetic_contract(
        url=url,
        name="detect",
        prediction=False,
        overrides={
            "training": {"window": "12d", "validation": "2d", "holdout": "2d", "params": {"max_iter": 50}},
            "drift": {"sample_size": 5000},
            # Drift alone must not retrain in this test: the guards and triggers are tested elsewhere.
            "policy": {"drift_share": 0.9, "important_features": None, "metric_drop": 0.2},
        },
    )
    injections = [Injection(kind, _day(day), column, 3.0) for day, (kind, column) in INJECTED.items()]
    log, labels = generate_log(
        "binary_classification", start=START, days=23, rows_per_day=1500, seed=11, injections=injections
    )
    write_log(url, contract, log, labels)
    settings = get_settings()
    assert retrain.run_retraining(contract, _day(10), _day(11), settings=settings)["status"] == "promoted"
    out = {d: monitor.run_monitoring(contract, _day(d), _day(d + 1), settings=settings) for d in range(11, 23)}
    out[-1] = {"reports": str(home / "reports")}
    from driftguard.store import HistoryStore

    store = HistoryStore(settings.history_url)
    recorded = store.runs("detect")
    out[-2] = {r.interval_start: store.get_run("detect", r.interval_start, r.interval_end) for r in recorded}
    mp.undo()
    return out


@pytest.mark.slow
def test_no_decision_on_the_stable_stretch(runs: dict[int, dict[str, Any]]) -> None:
    for day in (11, 12):
        assert runs[day]["status"] == "ok"
        assert runs[day]["drifted_features"] == [], (day, runs[day]["summary"])
        assert runs[day]["retrain"] is False
        assert runs[day]["quality_passed"] is True


@pytest.mark.slow
@pytest.mark.parametrize("day", [13, 15, 17])
def test_distribution_drift_is_detected_on_its_date(runs: dict[int, dict[str, Any]], day: int) -> None:
    kind, column = INJECTED[day]
    assert column not in runs[day - 1]["drifted_features"], f"{kind} on {column} flagged before its date"
    assert column in runs[day]["drifted_features"], f"{kind} on {column} missed: {runs[day]['summary']}"


@pytest.mark.slow
def test_null_spike_fails_the_null_share_check(runs: dict[int, dict[str, Any]]) -> None:
    before, after = runs[18]["summary"], runs[19]["summary"]
    assert "num_2" not in before.split("Drift for")[0]
    assert "num_2" in after.split("Drift for")[0], after


@pytest.mark.slow
def test_type_change_is_a_critical_failure_that_blocks_retraining(runs: dict[int, dict[str, Any]]) -> None:
    run = runs[21]
    assert run["status"] == "quality_failed" and run["quality_passed"] is False
    assert "num_3" in run["summary"]
    assert run["retrain"] is False
    assert "quality_critical" in run["alerts"]


@pytest.mark.slow
def test_reports_and_index_are_written(runs: dict[int, dict[str, Any]]) -> None:
    reports = Path(runs[-1]["reports"])
    index = (reports / "detect" / "index.html").read_text()
    with_report = [d for d in range(11, 23) if runs[d]["report"].endswith("drift.html")]
    assert with_report == list(range(11, 23)), "an unusable column must not cost the other columns their report"
    assert "num_2: entirely null in the window" in runs[19]["summary"] or "num_2" in runs[19]["drifted_features"]
    # The type change made every num_3 value text: read as missing (its `types` check fails), so
    # drift has nothing of num_3 to compare and names it.
    assert "num_3: entirely null in the window" in runs[21]["summary"]
    assert "num_3 (types)" in runs[21]["summary"]
    assert all(f"{Path(runs[d]['report']).parent.name}/drift.html" in index for d in with_report)
    assert Path(runs[13]["report"]).stat().st_size < 1_000_000


@pytest.mark.slow
def test_the_champions_estimate_and_thresholds_are_recorded(runs: dict[int, dict[str, Any]]) -> None:
    """The champion carries its drift calibration and a CBPE estimator from training; every run
    records the estimated ROC AUC with its band beside the realized one."""
    stable = runs[-2][_day(12)]
    est = stable.signals["estimated_metric"]
    assert est["metric"] == "roc_auc" and est["lower"] < est["value"] < est["upper"]
    assert est["rows"] == stable.rows
    assert abs(est["value"] - stable.metric_value) < 0.05, (est, stable.metric_value)  # covariate shift only
    assert stable.signals["drift_share_threshold"] is not None
    assert all(f["status"] in ("ok", "drift", "insufficient data") and f["current_rows"] for f in stable.feature_drift)
