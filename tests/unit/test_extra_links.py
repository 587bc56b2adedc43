"""Airflow extra links of Driftguard's tasks: the URL computation, and Airflow's plugin manager loading them.

The URLs are checked against a real reports folder (files written where driftguard.reporting.reports puts
a run's pages); the plugin test loads the repo's plugins/ folder through Airflow's own plugins
manager, as the api-server does, and the candidate link against a real run's XCom. A real task
instance's links through the REST API are checked in tests/integration/test_ui_browser.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from driftguard.reporting import reports
from driftguard.ui import extra_links

START = datetime(2013, 3, 10, tzinfo=UTC)
END = START + timedelta(days=7)
MONITOR = "driftguard_monitor__flight_delay"
RETRAIN = "driftguard_retrain__flight_delay"


def _write_report(reports_dir: Path, key: str, model: str = "flight_delay") -> Path:
    path = reports.run_dir(reports_dir, model, START, END) / reports.REPORT_FILES[key]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<html></html>")
    return path


def test_parse_dag_id_only_accepts_driftguard_dags() -> None:
    assert extra_links.parse_dag_id(MONITOR) == extra_links.DagModel("monitor", "flight_delay")
    assert extra_links.parse_dag_id("driftguard_rollback__a__b") == extra_links.DagModel("rollback", "a__b")
    for other in ("example_bash_operator", "driftguard_monitor_x", "", "xdriftguard_monitor__m"):
        assert extra_links.parse_dag_id(other) is None, other


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://localhost:8080", "/driftguard"),
        ("http://localhost:8080/", "/driftguard"),
        ("https://airflow.example.com/ops/airflow/", "/ops/airflow/driftguard"),
        ("", "/driftguard"),
    ],
)
def test_mount_path_follows_the_base_url_path(base_url: str, expected: str) -> None:
    assert extra_links.mount_path(base_url) == expected


def test_report_links_point_at_the_run_folder_once_the_file_exists(tmp_path: Path) -> None:
    root = "/airflow/driftguard"
    assert extra_links.report_url(root, tmp_path, MONITOR, START, END, "drift") is None  # not published yet
    _write_report(tmp_path, "drift")
    url = extra_links.report_url(root, tmp_path, MONITOR, START, END, "drift")
    assert url == f"{root}/reports/flight_delay/20130310T0000_20130317T0000/{reports.REPORT_FILES['drift']}"
    # Same run, the other file: only the drift page exists.
    assert extra_links.report_url(root, tmp_path, MONITOR, START, END, "quality") is None
    _write_report(tmp_path, "quality")
    quality = extra_links.report_url(root, tmp_path, MONITOR, START, END, "quality")
    assert quality == url.replace(reports.REPORT_FILES["drift"], reports.REPORT_FILES["quality"])
    # Another interval, a run without an interval, a retraining DAG, someone else's DAG: no link.
    assert extra_links.report_url(root, tmp_path, MONITOR, END, END + timedelta(days=7), "drift") is None
    assert extra_links.report_url(root, tmp_path, MONITOR, None, None, "drift") is None
    assert extra_links.report_url(root, tmp_path, RETRAIN, START, END, "drift") is None
    assert extra_links.report_url(root, tmp_path, "flight_delay", START, END, "drift") is None


def test_report_links_refuse_unsafe_model_names_and_naive_intervals(tmp_path: Path) -> None:
    for dag_id in ("driftguard_monitor__../etc", "driftguard_monitor__a/b"):
        assert extra_links.report_url("/driftguard", tmp_path, dag_id, START, END, "drift") is None
    naive = datetime(2013, 3, 10)
    assert extra_links.report_url("/driftguard", tmp_path, MONITOR, naive, naive, "drift") is None


def test_model_and_candidate_page_urls_are_quoted() -> None:
    assert extra_links.model_page_url("/driftguard", MONITOR) == "/driftguard/models/flight_delay"
    assert extra_links.model_page_url("/driftguard", RETRAIN) == "/driftguard/models/flight_delay"
    assert extra_links.model_page_url("/driftguard", "driftguard_monitor__a b#c") == "/driftguard/models/a%20b%23c"
    assert extra_links.model_page_url("/driftguard", "driftguard_rollback__flight_delay") is None
    assert extra_links.model_page_url("/driftguard", "example_dag") is None
    assert extra_links.candidate_page_url("/driftguard", RETRAIN, "7") == "/driftguard/models/flight_delay/candidates/7"
    assert extra_links.candidate_page_url("/driftguard", RETRAIN, None) is None  # nothing registered
    assert extra_links.candidate_page_url("/driftguard", MONITOR, "7") is None


def test_airflow_plugins_manager_loads_the_links() -> None:
    """Airflow's plugins manager (the api-server's path) finds the four links in plugins/, and a
    link for someone else's DAG is empty (Airflow then shows no button) without a DB query."""
    from airflow import plugins_manager
    from airflow.sdk.types import TaskInstanceKey

    links = {link.name: link for link in plugins_manager.get_global_operator_extra_links()}
    assert set(links) >= {"Drift report", "Data quality report", "Model page", "Candidate page"}
    key = TaskInstanceKey(dag_id="example_bash_operator", task_id="run", run_id="manual__1", try_number=1)
    assert all(link.get_link(None, ti_key=key) == "" for link in links.values())
    key = TaskInstanceKey(dag_id=MONITOR, task_id="detect_drift", run_id="manual__1", try_number=1)
    assert links["Model page"].get_link(None, ti_key=key) == "/driftguard/models/flight_delay"


TINY_RETRAIN_DAG = """
from datetime import datetime, timezone
from airflow.sdk import dag, task

@dag(dag_id="driftguard_retrain__tiny", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=timezone.utc))
def tiny():
    @task
    def register_candidate():
        return {"version": "3"}
    register_candidate()

tiny()
"""


@pytest.mark.slow
def test_candidate_link_reads_the_version_a_real_run_registered(airflow_db: Path, tmp_path: Path) -> None:
    """The plugin's Candidate page link reads register_candidate's XCom of a real `airflow dags test`
    run (its own DAG folder, the session's metadata DB)."""
    import os

    from airflow import plugins_manager
    from airflow.models.dagrun import DagRun
    from airflow.sdk.types import TaskInstanceKey
    from airflow.utils.session import create_session
    from airflow_support import airflow_dags_test, task_xcom

    (tmp_path / "tiny_retrain.py").write_text(TINY_RETRAIN_DAG)
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path)}
    proc = airflow_dags_test("driftguard_retrain__tiny", datetime(2024, 1, 2, tzinfo=UTC), env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with create_session() as session:
        run_id = session.query(DagRun.run_id).filter(DagRun.dag_id == "driftguard_retrain__tiny").one()[0]
    assert task_xcom("driftguard_retrain__tiny", run_id, "register_candidate") == {"version": "3"}
    link = next(x for x in plugins_manager.get_global_operator_extra_links() if x.name == "Candidate page")
    key = TaskInstanceKey(dag_id="driftguard_retrain__tiny", task_id="outcome", run_id=run_id, try_number=1)
    assert link.get_link(None, ti_key=key) == "/driftguard/models/tiny/candidates/3"
    other_run = TaskInstanceKey(dag_id="driftguard_retrain__tiny", task_id="outcome", run_id="manual__x", try_number=1)
    assert link.get_link(None, ti_key=other_run) == ""  # nothing registered in that run
