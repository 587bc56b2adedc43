"""The monitoring -> retraining loop through real Airflow DAG runs (dag.test()), on SQLite and
PostgreSQL: feature log and history in the database under test, MLflow on SQLite in tmp.

One scenario per database, in order: the retraining DAG trains the first champion by hand;
monitoring runs on stable data decide "no retrain"; after an injected concept drift the realized
metric drops, a run decides to retrain, records the request on the retrain-request Asset and
triggers `retrain__<interval>` with it as conf; a rerun of the same monitoring interval leaves
history unchanged and triggers no second retrain; the retraining DAG on that conf gates and
registers the candidate (dag.test() cannot run the queued run itself, so a manual run does).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from airflow_support import run_dag, task_xcom
from driftguard.airflow.dag_defaults import dag_id, retrain_asset_name, retrain_run_id
from driftguard.testing import Injection, generate_log, synthetic_contract, write_log

START = datetime(2024, 1, 1, tzinfo=UTC)
DRIFT_AT = START + timedelta(days=20)


@pytest.fixture
def loop_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    name = "loop_pg" if db_url.startswith("postgresql") else "loop_sqlite"
    contract = synthetic_contract(
        url="${DRIFTGUARD_FEATURE_LOG_URL}",
        name=name,
        prediction=False,
        schedule="@daily",
        start_date=START,
        overrides={
            "reference": {"start": "2024-01-01", "end": "2024-01-15", "sample_size": 5000},
            "training": {"window": "21d", "validation": "3d", "holdout": "3d", "params": {"max_iter": 60}},
            "policy": {"cooldown": "2d", "min_new_labels": 500, "metric_drop": 0.05, "persistence": {"k": 1, "n": 1}},
            "promotion": {"bootstrap": {"samples": 200}, "mode": "non_inferiority", "margin": 0.02},
        },
    )
    models = tmp_path / "models"
    models.mkdir()
    (models / f"{name}.yaml").write_text(yaml.safe_dump(contract.model_dump(mode="json", exclude_unset=True)))
    log, labels = generate_log(
        contract.task.value,
        start=START,
        days=26,
        rows_per_day=400,
        seed=3,
        injections=[Injection("concept_drift", DRIFT_AT, None, 1.0)],
    )
    write_log(db_url, contract, log, labels)
    home = tmp_path / "home"
    env = {
        "DRIFTGUARD_MODELS_DIR": str(models),
        "DRIFTGUARD_FEATURE_LOG_URL": db_url,
        "DRIFTGUARD_HOME": str(home),
        "DRIFTGUARD_HISTORY_URL": db_url,
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "DRIFTGUARD_MLFLOW_ARTIFACTS": str(home / "mlartifacts"),
        "DRIFTGUARD_REPORTS_DIR": str(home / "reports"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return {"name": name, **env}


def _day(n: int) -> datetime:
    return START + timedelta(days=n)


def _asset_events(name: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == retrain_asset_name(name))
            .all()
        )
        return [dict(r.extra or {}) for r in rows]


def _retrain_runs(name: str) -> list[tuple[str, str, str, object, dict]]:
    """(run id, run type, state, logical date, conf) of the model's retraining runs, oldest first."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == dag_id("retrain", name)).order_by(DagRun.id).all()
        value = lambda v: str(getattr(v, "value", v))  # noqa: E731 (enum members or plain strings)
        return [(r.run_id, value(r.run_type), value(r.state), r.logical_date, dict(r.conf or {})) for r in runs]


@pytest.mark.slow
def test_monitoring_and_retraining_loop(airflow_db: Path, loop_env: dict[str, str]) -> None:
    from driftguard.retraining import registry
    from driftguard.store import HistoryStore

    name = loop_env["name"]
    uri = loop_env["MLFLOW_TRACKING_URI"]

    # 1. First champion, triggered by hand with the decided interval as params.
    first = run_dag(
        dag_id("retrain", name),
        None,
        conf={"interval_start": _day(13).isoformat(), "interval_end": _day(14).isoformat(), "reason": "first"},
    )
    assert first.state == "success", first
    assert first.task_states["promote_champion"] == "success"
    assert first.task_states["keep_as_challenger"] == "skipped"
    # Airflow's grid says how the retrain ended: exactly one outcome_* task ran.
    outcomes = {t: s for t, s in first.task_states.items() if t.startswith("outcome_")}
    assert outcomes.pop("outcome_promoted") == "success" and set(outcomes.values()) == {"skipped"}, outcomes
    assert registry.champion_version(name, tracking_uri=uri).version == 1

    # 2. A stable day: monitored against the champion's reference, no retrain.
    stable = run_dag(dag_id("monitor", name), _day(16))
    assert stable.state == "success", stable
    assert stable.task_states["no_retrain"] == "success"
    assert stable.task_states["request_retrain"] == "skipped"
    published = stable.xcom("publish_results")
    assert published["status"] == "ok" and published["retrain"] is False

    assert stable.task_states["trigger_retrain"] == "skipped"

    # 3. After the concept drift the realized metric collapses: a retrain is requested (the Asset
    #    event, for lineage) and triggered as `retrain__<interval>` with the request as conf.
    drifted = run_dag(dag_id("monitor", name), _day(23))
    assert drifted.state == "success", drifted
    assert drifted.task_states["request_retrain"] == "success", drifted.xcom("publish_results")
    assert drifted.task_states["trigger_retrain"] == "success", drifted.task_states
    request = drifted.xcom("request_retrain")
    assert (request["interval_start"], request["interval_end"]) == (_day(22).isoformat(), _day(23).isoformat())
    assert "roc_auc" in request["trigger"]["summary"] and "worse by" in request["trigger"]["summary"]
    assert request["trigger"]["triggers"] == ["metric_drop"], request["trigger"]
    events = _asset_events(name)
    triggered_id = f"retrain__{_day(22).isoformat()}_{_day(23).isoformat()}"
    assert triggered_id == retrain_run_id(_day(22), _day(23))
    assert events == [{"model": name, "retrain_run_id": triggered_id, **request}], events
    assert task_xcom(dag_id("monitor", name), drifted.run_id, "trigger_retrain", "trigger_run_id") == triggered_id
    triggered = [r for r in _retrain_runs(name) if r[0] == triggered_id]
    # Queued (no scheduler here), no logical date, the request as conf.
    assert triggered == [(triggered_id, "operator_triggered", "queued", None, request)], _retrain_runs(name)

    store = HistoryStore(loop_env["DRIFTGUARD_HISTORY_URL"])
    before = [r.to_dict() for r in store.runs(name)]
    # 4. A rerun of the same interval replaces its record: same rows, same content (but timestamps),
    #    and starts no second retrain: the run `retrain__<interval>` exists, so the trigger skips.
    again = run_dag(dag_id("monitor", name), _day(23))
    assert again.state == "success"
    assert (again.task_states["request_retrain"], again.task_states["trigger_retrain"]) == ("success", "skipped")
    assert [r for r in _retrain_runs(name) if r[1] == "operator_triggered"] == triggered
    after = [r.to_dict() for r in store.runs(name)]
    assert len(after) == len(before) == 2
    # The record names the run that wrote it (the rerun now); nothing else changes.
    assert after[-1]["run_id"] != before[-1]["run_id"] and after[0]["run_id"] == before[0]["run_id"]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("updated_at", "run_id")} for r in rows]  # noqa: E731
    for old, new in zip(strip(before), strip(after), strict=True):
        assert {k: (old[k], new[k]) for k in old if old[k] != new[k]} == {}

    # 5. The retraining DAG on the triggered run's conf: gated, registered, decided once.
    extra = triggered[0][4]
    retrained = run_dag(dag_id("retrain", name), None, conf=extra)
    assert retrained.state == "success", retrained
    # The gate's verdict, pinned: the candidate, trained on the rows up to the drift, is no worse on
    # the post-drift holdout than v1 by more than the margin (0.02 roc_auc): promoted.
    last = store.retrains(name)[-1]
    assert last["status"] == "promoted", (last["status"], (last["verdict"] or {}).get("summary"))
    assert retrained.task_states["promote_champion"] == "success"
    assert retrained.task_states["keep_as_challenger"] == "skipped"
    assert retrained.task_states["outcome_promoted"] == "success", retrained.task_states
    aliases = {k: str(v) for k, v in registry.client(uri).get_registered_model(name).aliases.items()}
    assert aliases == {"champion": "2", "previous_champion": "1"}
    promotions = [(p["action"], p["version"]) for p in store.promotions(name)]
    assert promotions == [("first_champion", "1"), ("promote", "2")], promotions
    mv = registry.client(uri).get_model_version(name, "2")
    assert mv.tags["driftguard.verdict"] == "promote"
    # MLflow's run list tells the candidates apart: model, data cut-off, trigger.
    cut_off = datetime.fromisoformat(extra["interval_end"])
    assert registry.client(uri).get_run(mv.run_id).info.run_name == f"{name} {cut_off:%Y-%m-%d} metric_drop"

    # 6. The next day: that retrain starts the cooldown (2 days).
    after_retrain = run_dag(dag_id("monitor", name), _day(24))
    assert after_retrain.state == "success"
    cooldown = next(r for r in store.get_run(name, _day(23), _day(24)).reasons if r["rule"] == "cooldown")
    assert cooldown["fired"] is True, cooldown
    assert after_retrain.task_states["no_retrain"] == "success"

    # 7. The same interval again does nothing new: no third version.
    rerun = run_dag(
        dag_id("retrain", name),
        None,
        conf={"interval_start": extra["interval_start"], "interval_end": extra["interval_end"]},
    )
    assert rerun.state == "success"
    assert rerun.task_states["train_candidate"] == "skipped"
    assert len(registry.client(uri).search_model_versions(f"name = '{name}'")) == 2

    # 8. Two hours of matured labels are too few to train on: insufficient data, said by the grid's
    # outcome task (labels mature after a day: as of day 1 + 2h only the log's first 2 hours have one).
    early = _day(1) + timedelta(hours=2)
    empty = run_dag(
        dag_id("retrain", name),
        None,
        conf={"interval_start": (early - timedelta(days=1)).isoformat(), "interval_end": early.isoformat()},
    )
    assert empty.state == "success", empty
    assert empty.task_states["register_candidate"] == "skipped" and empty.task_states["evaluate_candidate"] == "skipped"
    assert empty.task_states["outcome_insufficient_data"] == "success", empty.task_states
    assert empty.task_states["outcome_rejected"] == "skipped"
