"""`make demo`'s default mode end to end: scripts/demo.py replays weeks in-process with dag.test().

Four weeks on a fresh DRIFTGUARD_HOME (the first champion, then [03-10, 04-07) of 2013; the fourth
week's realized ROC AUC drop triggers `retrain__<interval>`, whose conf the demo runs with
dag.test()), then the same command again, which must change nothing. The script runs as
`make demo` runs it, in its own process: it configures Airflow for its own home before importing
it, which this test process has already done for the suite's.
The stores are read back with sqlite3 (Airflow's metadata DB, MLflow's registry, the history).
"""

from __future__ import annotations

import ast
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MONITOR = "driftguard_monitor__flight_delay"
RETRAIN = "driftguard_retrain__flight_delay"
WEEKS = [
    ("2013-03-10", "2013-03-17"),
    ("2013-03-17", "2013-03-24"),
    ("2013-03-24", "2013-03-31"),
    ("2013-03-31", "2013-04-07"),
]

pytestmark = pytest.mark.slow


def _demo(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The suite's own Airflow/Driftguard/MLflow settings must not leak into the demo's stores.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DRIFTGUARD_", "MLFLOW_"))}
    env |= {"DRIFTGUARD_HOME": str(home), "GX_ANALYTICS_ENABLED": "false"}
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,  # a 4-week replay took 15 min on the shared 2-core machine at load average 20
        check=False,
    )


def _query(db: Path, sql: str, *params: object) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def _conf(raw: object) -> dict:
    """dag_run.conf as stored (JSON text, or pickled by older Airflow versions)."""
    return json.loads(raw) if isinstance(raw, str | bytes) else dict(raw or {})


def _snapshot(home: Path) -> dict[str, object]:
    airflow_db = home / "airflow" / "airflow.db"
    return {
        "runs": _query(airflow_db, "select dag_id, run_id, state from dag_run order by dag_id, run_id"),
        "versions": _query(home / "mlflow.db", "select name, version from model_versions order by version"),
        "history": _query(home / "history.db", "select interval_start, retrain from dg_runs order by 1"),
    }


def test_demo_replays_weeks_in_process_and_a_rerun_changes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = _demo(home, "--weeks", "4")
    out = first.stdout
    assert first.returncode == 0, f"{out[-3000:]}\n{first.stderr[-3000:]}"
    assert "first champion of flight_delay: run success" in out and "@champion = v1" in out
    for i, (start, end) in enumerate(WEEKS, 1):
        assert f"week {i}/4 [{start}, {end}): success in" in out, out
    # The calibrated drift signals stay quiet; week 4's realized ROC AUC falls below the champion's
    # validation AUC by more than metric_drop, so that week retrains and the gate promotes v2.
    for i in (1, 2, 3):
        line = next(line for line in out.splitlines() if f"week {i}/4" in line)
        assert line.endswith("no retrain"), line
    week4 = next(line for line in out.splitlines() if "week 4/4" in line)
    assert "drift share 0.00" in week4 and "retrain -> v2 promoted" in week4, week4
    # The same candidate as when the scheduler ran it from the Asset event: same data, same gate numbers.
    assert "95% CI of the roc_auc gain [+0.0360, +0.0693] on 6,552 rows" in out
    assert "4 monitoring run(s): {'success': 4}" in out
    # The summary counts the triggered run left queued in the paused retraining DAG.
    totals = next(line for line in out.splitlines() if f"all runs of {RETRAIN}: " in line)
    assert ast.literal_eval(totals.split(": ", 1)[1]) == {"success": 2, "queued": 1}, totals

    db = home / "airflow" / "airflow.db"
    # Monitoring: one dag.test(logical_date=<interval end>) run per week; Airflow infers the manual
    # run's data interval as the week that ends at its logical date.
    monitoring = _query(
        db,
        "select substr(logical_date, 1, 10), substr(data_interval_start, 1, 10),"
        " substr(data_interval_end, 1, 10), run_type, state, run_id from dag_run"
        " where dag_id = ? order by logical_date",
        MONITOR,
    )
    assert [r[:5] for r in monitoring] == [(end, start, end, "manual", "success") for start, end in WEEKS]
    week4_run = monitoring[3][5]
    # Retraining: the first champion (dag.test(run_conf=...)); week 4's trigger_retrain queued
    # retrain__<interval> in the paused DAG, and the demo ran that conf with dag.test().
    retraining = _query(
        db, "select run_id, run_type, state, logical_date, conf from dag_run where dag_id = ? order by id", RETRAIN
    )
    triggered_id = "retrain__2013-03-31T00:00:00+00:00_2013-04-07T00:00:00+00:00"
    assert [r[1:3] for r in retraining] == [
        ("manual", "success"),
        ("operator_triggered", "queued"),
        ("manual", "success"),
    ], retraining
    assert (retraining[1][0], retraining[1][3]) == (triggered_id, None)  # no logical date
    confs = [_conf(r[4]) for r in retraining]
    assert confs[0]["reason"] == "first champion (make demo)" and "trigger" not in confs[0]
    assert confs[2] == confs[1], "the demo's run is the triggered run's request"
    assert (confs[1]["interval_start"][:10], confs[1]["interval_end"][:10]) == WEEKS[3]
    assert confs[1]["trigger"]["source"] == "monitoring"
    assert confs[1]["trigger"]["triggers"] == ["metric_drop"], confs[1]["trigger"]
    # The request is also the model's Asset event (lineage); nothing is scheduled on the Asset.
    events = _query(db, "select source_run_id from asset_event where source_dag_id = ?", MONITOR)
    assert events == [(week4_run,)]
    assert _query(db, "select count(*) from asset_dag_run_queue") == [(0,)], "nothing left for a scheduler"
    unfinished = _query(
        db, "select dag_id, run_id, task_id, state from task_instance where state not in ('success', 'skipped')"
    )
    assert unfinished == []
    # Each task's log where the Airflow UI (`make up`) reads it.
    log = home / "airflow" / "logs" / f"dag_id={MONITOR}" / f"run_id={week4_run}"
    assert "published" in (log / "task_id=publish_results" / "attempt=1.log").read_text()
    assert (log / "task_id=request_retrain" / "attempt=1.log").exists()
    assert "where the time went: Airflow DB migrate" in out and "monitoring: 4 run(s)" in out
    # CPU beside wall time: the load-independent figure docs/demo.md's "How long" reports.
    assert re.search(r"finished in [\d.]+ min \(CPU [\d.]+ min: user \+ system", out), out[-2000:]
    assert re.search(r"monitoring: 4 run\(s\), \d+ s \(median [\d.]+ s, max [\d.]+ s\), CPU \d+ s", out)

    before = _snapshot(home)
    assert len(before["versions"]) == 2 and len(before["history"]) == 4

    again = _demo(home, "--weeks", "4")
    assert again.returncode == 0, f"{again.stdout[-3000:]}\n{again.stderr[-3000:]}"
    assert again.stdout.count("already succeeded") == 4, again.stdout
    assert "training the first champion" not in again.stdout
    assert _snapshot(home) == before, "a rerun must not add runs, model versions or history"
