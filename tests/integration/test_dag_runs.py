"""Real Airflow runs of the monitoring DAG on SQLite and PostgreSQL feature logs.

dag.test() runs the scheduler's dependency logic and every task in this process, against the
session's migrated SQLite metadata DB; the feature log is a synthetic one written with
driftguard.testing into the `db_url` database (SQLite file, then a fresh PostgreSQL schema).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from airflow_support import airflow_dags_test, run_dag
from driftguard.airflow.dag_defaults import dag_id
from driftguard.contract import ModelContract
from driftguard.testing import generate_log, synthetic_contract, write_log

START = datetime(2024, 1, 1, tzinfo=UTC)
ROWS_PER_DAY = 40


def _seed(url: str, models_dir: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> ModelContract:
    """A daily contract in its own models dir, and 3 days of log (40 rows a day) in `url`."""
    contract = synthetic_contract(
        url="${DRIFTGUARD_FEATURE_LOG_URL}",
        name=name,
        schedule="@daily",
        start_date=START,
        # Day one is the bootstrap reference: no champion exists in these runs.
        overrides={"reference": {"start": "2024-01-01", "end": "2024-01-02"}},
    )
    models_dir.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(contract.model_dump(mode="json", exclude_unset=True), sort_keys=False)
    (models_dir / f"{name}.yaml").write_text(text)
    log, labels = generate_log(contract.task.value, start=START, days=3, rows_per_day=ROWS_PER_DAY, seed=7)
    write_log(url, contract, log, labels)
    # The DAG finds the contract and the contract finds the log only through these two variables.
    monkeypatch.setenv("DRIFTGUARD_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("DRIFTGUARD_FEATURE_LOG_URL", url)
    return contract


def _model_name(url: str) -> str:
    return "dagrun_postgres" if url.startswith("postgresql") else "dagrun_sqlite"


MONITOR_TASKS = {
    "extract_window",
    "load_reference",
    "score_window",
    "check_quality",
    "detect_drift",
    "evaluate_model",
    "decide_retrain",
    "publish_results",
    "retrain_or_not",
}


@pytest.mark.slow
def test_monitoring_run_reads_its_data_interval(
    airflow_db: Path, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _model_name(db_url)
    _seed(db_url, tmp_path / "models", name, monkeypatch)

    # Daily data intervals: logical date 2024-01-03 00:00 runs [2024-01-02, 2024-01-03).
    result = run_dag(dag_id("monitor", name), datetime(2024, 1, 3, tzinfo=UTC))

    assert result.state == "success", result
    assert all(result.task_states[t] == "success" for t in MONITOR_TASKS), result.task_states
    # No champion yet: the policy's "no champion" trigger asks for the first model.
    assert result.task_states["request_retrain"] == result.task_states["trigger_retrain"] == "success"
    assert result.task_states["no_retrain"] == "skipped"
    assert result.data_interval_start == datetime(2024, 1, 2, tzinfo=UTC)
    assert result.data_interval_end == datetime(2024, 1, 3, tzinfo=UTC)
    summary = result.xcom("extract_window")
    assert summary["model"] == name
    assert summary["rows"] == ROWS_PER_DAY
    assert summary["start"] == "2024-01-02T00:00:00+00:00"
    assert summary["end"] == "2024-01-03T00:00:00+00:00"
    assert summary["schema_problems"] == []
    assert "2024-01-02" in summary["min_ts"] and "2024-01-02" in summary["max_ts"]
    published = result.xcom("publish_results")
    assert published["status"] == "ok" and published["rows"] == ROWS_PER_DAY
    assert "no champion yet" in published["summary"]


@pytest.mark.slow
def test_empty_interval_is_a_clean_no_data_run(
    airflow_db: Path, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "dagrun_empty"
    _seed(sqlite_url, tmp_path / "models", name, monkeypatch)

    result = run_dag(dag_id("monitor", name), datetime(2024, 2, 1, tzinfo=UTC))

    assert result.state == "success", result
    assert result.task_states["no_retrain"] == "success"
    published = result.xcom("publish_results")
    assert published["status"] == "no_data" and published["rows"] == 0
    assert published["retrain"] is False
    assert "no_data" in published["alerts"], "volume.required defaults to true: an empty interval alerts"


@pytest.mark.slow
def test_missing_table_fails_once_without_retries(
    airflow_db: Path,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    name = "dagrun_missing"
    _seed(sqlite_url, tmp_path / "models", name, monkeypatch)
    import sqlalchemy as sa

    with sa.create_engine(sqlite_url).begin() as conn:
        conn.execute(sa.text("drop table events"))

    result = run_dag(dag_id("monitor", name), datetime(2024, 1, 3, tzinfo=UTC))
    logs = "".join(capfd.readouterr())

    assert result.state == "failed"
    assert result.task_states["extract_window"] == "failed"
    assert result.task_states["publish_results"] == "upstream_failed"
    assert result.task_tries["extract_window"] == 1, "a data error must not be retried"
    assert "MissingTableError" in logs and "events" in logs


@pytest.mark.slow
def test_airflow_dags_test_cli_runs_in_a_subprocess(
    airflow_db: Path, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same run through `airflow dags test`: the CLI sees the environment the test set."""
    name = "dagrun_cli"
    _seed(sqlite_url, tmp_path / "models", name, monkeypatch)

    ok = airflow_dags_test(dag_id("monitor", name), datetime(2024, 1, 3, tzinfo=UTC))

    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    out = ok.stdout + ok.stderr
    assert f"{name}: read {ROWS_PER_DAY} rows" in out
    assert "SUMMARY" in out
