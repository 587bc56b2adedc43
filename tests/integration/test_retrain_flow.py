"""Retraining steps end to end on a real MLflow store (SQLite + local artifacts), regression task:
first champion, a gated second candidate, idempotent reruns, and a promotion aborted by a
concurrent alias move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from driftguard.retraining import registry, retrain
from driftguard.settings import get_settings
from driftguard.store import HistoryStore
from driftguard.testing import Injection, generate_log, synthetic_contract, write_log
from home_support import isolated_stores

START = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    isolated_stores(monkeypatch, tmp_path / "home")
    contract = synthetic_contract(
        task="regression",
        url=url,
        name="reg_flow",
        overrides={
            "training": {"window": "20d", "validation": "3d", "holdout": "3d", "params": {"max_iter": 50}},
            "promotion": {"bootstrap": {"samples": 200}, "mode": "non_inferiority", "margin": 0.5},
        },
    )
    log, labels = generate_log("regression", start=START, days=30, rows_per_day=300, seed=5)
    write_log(url, contract, log, labels)
    settings = get_settings()
    return contract, settings


def _day(n: int) -> datetime:
    return START + timedelta(days=n)


def aliases(uri: str, model: str) -> dict[str, str]:
    return {k: str(v) for k, v in registry.client(uri).get_registered_model(model).aliases.items()}


@pytest.mark.slow
def test_regression_candidates_are_gated_and_registered_once(world) -> None:
    contract, settings = world
    uri = settings.mlflow_tracking_uri
    first = retrain.run_retraining(contract, _day(20), _day(21), trigger={"summary": "first"}, settings=settings)
    assert first["status"] == "promoted" and first["version"] == "1"

    second = retrain.run_retraining(contract, _day(27), _day(28), trigger={"summary": "drift"}, settings=settings)
    # The same stationary process a week later: the candidate is no worse than the champion by more
    # than the margin (0.5 rmse), so the non-inferiority gate promotes it.
    assert second["status"] == "promoted", second
    mv = registry.client(uri).get_model_version("reg_flow", "2")
    assert mv.tags["driftguard.verdict"] == "promote"
    assert aliases(uri, "reg_flow") == {"champion": "2", "previous_champion": "1"}
    promotions = HistoryStore(settings.history_url).promotions("reg_flow")
    assert [(p["action"], p["version"]) for p in promotions] == [("first_champion", "1"), ("promote", "2")]
    assert "rmse" in mv.tags["driftguard.summary"]
    # Readable in MLflow: short tags, the verdict as the version's description, a described model,
    # and the candidate page's facts (run, experiment, champion) stored with the verdict.
    c = registry.client(uri)
    assert all(len(v) <= 250 for v in mv.tags.values()) and mv.description.startswith(("PROMOTE", "REJECT"))
    assert "Managed by Driftguard" in c.get_registered_model("reg_flow").description
    assert c.get_run(mv.run_id).info.run_name == "reg_flow 2024-01-29 manual"
    facts = HistoryStore(settings.history_url).retrains("reg_flow")[-1]["verdict"]["candidate"]
    assert facts["run_id"] == mv.run_id and facts["champion_version"] == "1"
    assert facts["experiment_id"] == c.get_run(mv.run_id).info.experiment_id

    again = retrain.run_retraining(contract, _day(27), _day(28), trigger={"summary": "drift"}, settings=settings)
    assert again == {"status": "skipped", "previous_status": second["status"], "version": "2"}
    assert len(registry.client(uri).search_model_versions("name = 'reg_flow'")) == 2
    retrains = HistoryStore(settings.history_url).retrains("reg_flow")
    assert [r["status"] for r in retrains] == ["promoted", "promoted"]
    # Timed on the train step's fixed, seeded 1,000-row batch, against the champion in the same process.
    first_checks = {c["name"]: c for c in retrains[0]["verdict"]["checks"]}
    checks = {c["name"]: c for c in retrains[1]["verdict"]["checks"]}
    assert next(iter(checks)) == "loads_and_scores" and checks["loads_and_scores"]["passed"]
    serve = checks["servability"]
    assert serve["passed"], serve["detail"]
    assert serve["numbers"]["rows"] == 1000 and serve["numbers"]["champion_uri"] == "models:/reg_flow/1"
    assert serve["numbers"]["ratio"] is not None and serve["numbers"]["repeats"] >= 5
    assert first_checks["servability"]["numbers"]["champion_uri"] is None  # a first champion: the ceiling only


@pytest.mark.slow
def test_concurrent_alias_move_aborts_the_promotion(world) -> None:
    contract, settings = world
    contract = contract.model_copy(
        update={"promotion": replace_promotion(contract, margin=10.0)}  # any candidate passes the gate
    )
    uri = settings.mlflow_tracking_uri
    assert retrain.run_retraining(contract, _day(20), _day(21), settings=settings)["status"] == "promoted"

    ctx = retrain.RetrainContext.create(contract, _day(27), _day(28), settings=settings)
    assert retrain.claim(ctx)["proceed"]
    retrain.train(ctx)
    retrain.register(ctx)
    verdict = retrain.evaluate(ctx)
    assert verdict["promote"], verdict["summary"]
    # Someone promotes another version between the gate and the alias move.
    registry.client(uri).set_registered_model_alias("reg_flow", "champion", "2")
    registry.client(uri).set_registered_model_alias("reg_flow", "champion", "1")
    other = retrain.RetrainContext.create(contract, _day(24), _day(25), settings=settings)
    retrain.claim(other)
    retrain.train(other)
    retrain.register(other)
    registry.client(uri).set_registered_model_alias("reg_flow", "champion", "3")

    result = retrain.promote(ctx)

    assert result["status"] == "aborted"
    aliases = {k: str(v) for k, v in registry.client(uri).get_registered_model("reg_flow").aliases.items()}
    assert aliases["champion"] == "3", "nothing may move when the champion changed under the gate"
    rows = {r["interval_end"].date(): r["status"] for r in HistoryStore(settings.history_url).retrains("reg_flow")}
    assert rows[_day(28).date()] == "aborted"


def replace_promotion(contract, **changes):
    """The contract's promotion section with changes, validated (a bare margin becomes `abs`)."""
    return type(contract.promotion).model_validate({**contract.promotion.model_dump(), **changes})


@pytest.mark.slow
def test_a_short_window_candidate_wrong_next_season_is_stopped_by_the_seasonal_guardrail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A yearly cycle (the label rule differs in the first half of each 364-day cycle) and a 60-day
    window set shorter than `seasonality`. The champion was trained on most of a year; the candidate,
    on the last summer weeks, is better on the (summer) holdout, but last cycle's coming month is
    winter, where it is clearly worse: the guardrail rejects it, and says so with its numbers."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    isolated_stores(monkeypatch, tmp_path / "home")
    contract = synthetic_contract(
        task="regression",
        url=url,
        name="yearly_flow",
        schedule="@monthly",
        overrides={
            "seasonality": "364d",
            # Winter of the first cycle and most of the second summer (the guardrail's phase, last
            # cycle's days 182..212, is out of sample for it).
            "reference": {"start": _day(215).isoformat(), "end": _day(504).isoformat()},
            "training": {"window": "60d", "params": {"max_iter": 60}},
            "promotion": {"metric": "mae", "bootstrap": {"samples": 300}},
        },
    )
    assert contract.shorter_than_season
    season = Injection("seasonal_concept", START, column="num_3", magnitude=4.0)
    log, labels = generate_log("regression", start=START, days=547, rows_per_day=20, seed=11, injections=[season])
    write_log(url, contract, log, labels)
    settings = get_settings()

    first = retrain.run_retraining(contract, _day(503), _day(504), trigger={"summary": "first"}, settings=settings)
    assert first["status"] == "promoted", first["summary"]
    second = retrain.run_retraining(contract, _day(545), _day(546), trigger={"summary": "drift"}, settings=settings)

    assert second["status"] == "rejected", second["summary"]
    verdict = HistoryStore(settings.history_url).retrains("yearly_flow")[-1]["verdict"]
    checks = {c["name"]: c for c in verdict["checks"]}
    assert [n for n, c in checks.items() if not c["passed"]] == ["seasonal_guardrail"], verdict["summary"]
    guard = checks["seasonal_guardrail"]
    numbers = guard["numbers"]
    # Last cycle's coming month (H = one @monthly interval), out of sample for both models.
    assert (numbers["start"], numbers["end"]) == (_day(182).isoformat(), _day(212).isoformat())
    assert numbers["rows"] == numbers["rows_read"] == 600 and numbers["status"] == "failed"
    assert numbers["challenger"] > 1.5 * numbers["champion"] and numbers["ci_high"] < numbers["bound"]
    assert guard["detail"].startswith("challenger mae ") and "(same phase last cycle, n=600)" in guard["detail"]
    assert "seasonal_guardrail: challenger mae" in second["summary"]
    # The champion's training window comes from its run's tags: the rows it was fitted on, before its
    # validation and holdout weeks (which end at its last matured label).
    start, end = registry.training_window("yearly_flow", "1", tracking_uri=settings.mlflow_tracking_uri)
    assert start == _day(215) and _day(488) < end < _day(490)
    # The decision record on the candidate version says the same.
    mv = registry.client(settings.mlflow_tracking_uri).get_model_version("yearly_flow", "2")
    assert mv.tags["driftguard.verdict"] == "reject" and "seasonal_guardrail" in mv.tags["driftguard.reasons"]
    # ... where on the (summer) holdout it beats the champion clearly.
    assert checks["significance"]["passed"] and checks["significance"]["numbers"]["ci_low"] > 0


@pytest.mark.slow
def test_an_interval_that_failed_critical_quality_checks_never_feeds_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Day 10's rows hold +/-inf (a logging bug) and its monitoring run recorded a critical quality
    failure: the candidate is trained without any of that day's rows, and its MLflow run says which
    interval was left out and how many rows. A failed run that saw no data excludes nothing."""
    import mlflow
    import numpy as np
    from driftguard.store import RunRecord

    url = f"sqlite:///{tmp_path / 'log.db'}"
    isolated_stores(monkeypatch, tmp_path / "home")
    contract = synthetic_contract(
        task="regression",
        url=url,
        name="excluded_flow",
        overrides={
            "training": {"window": "20d", "params": {"max_iter": 30}},
            "promotion": {"bootstrap": {"samples": 100}},
        },
    )
    log, labels = generate_log("regression", start=START, days=22, rows_per_day=100, seed=7)
    ts = log["event_ts"]
    bad_day = ((ts >= _day(10)) & (ts < _day(11))).to_numpy()
    log.loc[np.flatnonzero(bad_day)[:5], "num_0"] = np.inf
    write_log(url, contract, log, labels)
    settings = get_settings()
    store = HistoryStore(settings.history_url)
    store.create_all()
    # As monitoring records them: day 10 failed critically, day 11 passed, day 12 saw no rows at all.
    for day, status, passed, critical in (
        (10, "quality_failed", False, 2),
        (11, "ok", True, 0),
        (12, "no_data", False, 0),
    ):
        store.record_run(
            RunRecord(
                model="excluded_flow",
                interval_start=_day(day),
                interval_end=_day(day + 1),
                status=status,
                quality_passed=passed,
                critical_failures=critical,
            )
        )

    first = retrain.run_retraining(contract, _day(20), _day(21), trigger={"summary": "first"}, settings=settings)

    assert first["status"] == "promoted", first
    c = registry.client(settings.mlflow_tracking_uri)
    run_id = c.get_model_version("excluded_flow", "1").run_id
    fingerprint = mlflow.artifacts.load_dict(
        c.download_artifacts(run_id, "data/fingerprint.json", str(tmp_path / "artifacts"))
    )
    assert fingerprint["exclude_intervals"] == [[_day(10).isoformat(), _day(11).isoformat()]]
    assert fingerprint["rows_excluded"] == int(bad_day.sum()) == 100
    # The inf rows went with their interval, not one by one as unusable rows.
    assert fingerprint["rows_dropped_unusable"] == {}
    # Every other labelled row of the window was trained on (split into train, validation, holdout).
    assert fingerprint["rows"]["total"] == fingerprint["rows_read"] - 100
    assert c.get_run(run_id).data.params["data.rows.total"] == str(fingerprint["rows"]["total"])
