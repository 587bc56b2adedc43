"""Airflow test harness: a migrated metadata DB, DAG parsing, and real DAG runs.

tests/conftest.py sets the Airflow environment before anything imports Airflow (session
temp AIRFLOW_HOME with a SQLite metadata DB, AIRFLOW__CORE__DAGS_FOLDER = the repo's dags/,
no example DAGs, DRIFTGUARD_HOME in the same temp dir). Loaded as a pytest plugin there.

Pointing a DAG at a test's own data: set DRIFTGUARD_MODELS_DIR (the contracts) and the
variables the contract's `source.url` references (e.g. `${DRIFTGUARD_FEATURE_LOG_URL}`) with
`monkeypatch.setenv` BEFORE `run_dag`. `dag.test()` parses the DAG files and runs every task in
this process, so tasks see the test's environment (tests/integration/test_dag_runs.py relies on
it: the task can only find its contract through DRIFTGUARD_MODELS_DIR). `airflow_dags_test`
runs `airflow dags test` in a subprocess that inherits `os.environ`.

Data-interval schedules: a run for `logical_date=T` covers the last complete interval that
ends at or before T (Airflow's manual-run rule), e.g. `@weekly` and T = Sunday 2013-03-17
00:00 UTC covers [2013-03-10, 2013-03-17).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from airflow.dag_processing.dagbag import DagBag

REPO_ROOT = Path(__file__).resolve().parents[1]
DAGS_DIR = REPO_ROOT / "dags"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The session's Airflow metadata DB, migrated once (`airflow db migrate`, about 3 s)."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([AIRFLOW, "db", "migrate"], env=dict(os.environ), capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"airflow db migrate failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return home


def parse_dags(dag_folder: Path | str = DAGS_DIR) -> DagBag:
    """Parse DAG files the way the dag-processor does (safe mode, no examples in Airflow 3)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(dag_folder))


@dataclass(frozen=True)
class RunResult:
    """What a test asserts on after a DAG run: states, the interval, and task return values."""

    dag_id: str
    run_id: str
    state: str
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    task_states: dict[str, str | None] = field(default_factory=dict)
    task_tries: dict[str, int] = field(default_factory=dict)

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        return task_xcom(self.dag_id, self.run_id, task_id, key)


def run_dag(
    dag_id: str,
    logical_date: datetime | None,
    *,
    dag_folder: Path | str = DAGS_DIR,
    conf: dict[str, Any] | None = None,
) -> RunResult:
    """Run one DagRun with `dag.test()` (real scheduler-loop logic, tasks in this process).

    Needs the `airflow_db` fixture. Raises AssertionError naming the import errors when the
    DAG is not parsed (e.g. a broken contract)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    bag = parse_dags(dag_folder)
    dag = bag.dags.get(dag_id)
    if dag is None:
        raise AssertionError(f"DAG {dag_id} not found in {dag_folder}; parsed {sorted(bag.dags)}, {bag.import_errors}")
    dr = dag.test(logical_date=logical_date, run_conf=conf)
    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == dr.run_id).one()
        tis = run.get_task_instances(session=session)
        states = {ti.task_id: _state(ti.state) for ti in tis}
        tries = {ti.task_id: ti.try_number for ti in tis}
        return RunResult(
            dag_id=dag_id,
            run_id=run.run_id,
            state=str(_state(run.state)),
            data_interval_start=run.data_interval_start,
            data_interval_end=run.data_interval_end,
            task_states=states,
            task_tries=tries,
        )


def _state(state: Any) -> str | None:
    """Airflow hands back enum members or plain strings depending on the code path."""
    return None if state is None else str(getattr(state, "value", state))


def task_xcom(dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
    """A task's XCom value from the metadata DB (None when the task pushed nothing)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(XComModel.get_many(run_id=run_id, key=key, dag_ids=dag_id, task_ids=task_id)).first()
        return None if row is None else XComModel.deserialize_value(row)


def airflow_dags_test(
    dag_id: str, logical_date: datetime, *, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`airflow dags test DAG_ID DATE` in a subprocess (exit code 1 when the run fails)."""
    return subprocess.run(
        [AIRFLOW, "dags", "test", dag_id, logical_date.isoformat()],
        env=dict(os.environ if env is None else env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
