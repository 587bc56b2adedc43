"""The Airflow failure notifier: a real DAG run whose failing task alerts a local webhook."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from driftguard.store import HistoryStore, dispose_engines

PROBE_DAG = """
import os
from datetime import datetime

from airflow.sdk import dag, task

from driftguard.airflow.notifier import DriftguardNotifier
from driftguard.contract import AlertConfig, AlertRoute

notifier = DriftguardNotifier(
    model="flight_delay",
    alert_config=AlertConfig(routes=[AlertRoute(kind="webhook", url="${DG_PROBE_HOOK}")]),
    history_url=os.environ["DG_PROBE_HISTORY"],
)


@dag(schedule=None, start_date=datetime(2013, 1, 1), catchup=False,
     default_args={"retries": 0, "on_failure_callback": notifier})
def dg_notifier_probe():
    @task
    def boom() -> None:
        raise RuntimeError("feature log unreachable")

    boom()


probe = dg_notifier_probe()

if __name__ == "__main__":
    probe.test()
"""


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_failing_task_in_a_real_dag_run_sends_an_alert(
    airflow_db: Path, tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    """`dag.test()` in a subprocess: the probe DAG must sit in the configured dags folder, which
    for this process is the repo's dags/ (fixed at Airflow import), so the child gets its own."""
    url, received = webhook
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "dg_notifier_probe.py").write_text(textwrap.dedent(PROBE_DAG))
    history = f"sqlite:///{tmp_path / 'history.db'}"
    # A copy of the session's migrated metadata DB: the probe DAG never shows up in other tests.
    metadata_db = tmp_path / "airflow.db"
    session_db = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    shutil.copyfile(session_db, metadata_db)
    env = {
        **os.environ,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{metadata_db}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "DG_PROBE_HOOK": url,
        "DG_PROBE_HISTORY": history,
    }
    run = subprocess.run(
        [sys.executable, str(dags / "dg_notifier_probe.py")], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    log = run.stdout + run.stderr
    assert "RuntimeError: feature log unreachable" in log, log[-3000:]
    assert "alert pipeline_failure for flight_delay delivered via webhook (HTTP 200)" in log, log[-3000:]

    (alert,) = received
    assert alert["model"] == "flight_delay"
    assert alert["kind"] == "pipeline_failure"
    assert alert["severity"] == "critical"
    assert alert["title"] == "dg_notifier_probe.boom failed (RuntimeError)"
    assert alert["state"] == "dg_notifier_probe.boom:RuntimeError"
    assert "task boom" in alert["body"] and "RuntimeError: feature log unreachable" in alert["body"]
    assert "/dags/dg_notifier_probe/runs/" in alert["report_path"]
    # the default runbook opens at its section, with Airflow's address (AIRFLOW__API__BASE_URL) in front
    assert alert["runbook_url"] == f"{os.environ['AIRFLOW__API__BASE_URL']}/driftguard/runbook#pipeline_failure"
    try:  # recorded for de-duplication in the history store
        store = HistoryStore(history)
        assert store.alert_last_sent("flight_delay", alert["fingerprint"]) is not None
        (failure,) = store.failures("flight_delay")  # and the failure itself, for the health board
    finally:
        dispose_engines()
    assert (failure.dag_id, failure.task_id, failure.try_number) == ("dg_notifier_probe", "boom", 1)
    assert failure.run_id in alert["body"] and failure.error == "RuntimeError: feature log unreachable"


def test_notifier_called_directly_with_a_dag_run_context(
    webhook: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """DAG-level callbacks get `dag_run` and `reason` instead of a task instance."""
    from datetime import timedelta

    from driftguard.airflow.notifier import DriftguardNotifier
    from driftguard.contract import AlertConfig, AlertRoute

    url, received = webhook
    notifier = DriftguardNotifier(
        model="flight_delay",
        severity="warning",
        body="owner: {{ params.owner }}",
        alert_config=AlertConfig(routes=[AlertRoute(kind="webhook", url=url)], repeat_after=timedelta(days=1)),
        history_url=f"sqlite:///{tmp_path / 'h.db'}",
    )

    class DagRun:  # the two attributes the notifier reads from Airflow's DagRun
        dag_id = "flight_delay_monitoring"
        run_id = "scheduled__2013-06-03T00:00:00+00:00"

    try:
        notifier({"dag_run": DagRun(), "reason": "task_failure", "params": {"owner": "ml-platform"}})
        (failure,) = HistoryStore(f"sqlite:///{tmp_path / 'h.db'}").failures("flight_delay")
    finally:
        dispose_engines()
    assert (failure.dag_id, failure.run_id, failure.task_id) == (DagRun.dag_id, DagRun.run_id, "")
    assert failure.step == "the DAG run" and failure.error == "task_failure" and failure.interval_start is None
    (alert,) = received
    assert alert["title"] == "flight_delay_monitoring failed (task_failure)"
    assert alert["severity"] == "warning"
    assert alert["body"] == (
        "DAG flight_delay_monitoring, run scheduled__2013-06-03T00:00:00+00:00\nowner: ml-platform"
    )
    assert alert["state"] == "flight_delay_monitoring:task_failure"
