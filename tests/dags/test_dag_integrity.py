"""DAG integrity, in the spirit of Airflow's own example-DAG tests.

Every file in dags/ imports cleanly; parsing opens no database connection and looks up no
Airflow connection or variable; parsing imports no heavy library; every DAG has tags, an
owner and retries; a broken contract is an import error of contract_errors.py only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow_support import DAGS_DIR, REPO_ROOT, parse_dags
from driftguard.airflow.dag_defaults import dag_id
from driftguard.contract import contract_files, load_contracts

PROBE = Path(__file__).with_name("parse_probe.py")
UNREACHABLE_DB = "sqlite:////nonexistent-driftguard-probe/airflow.db"
REPO_MODELS = REPO_ROOT / "include" / "models"


def probe(dag_folder: Path, **env: str) -> dict[str, Any]:
    """Parse `dag_folder` in a fresh interpreter whose metadata DB cannot be reached."""
    full_env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": UNREACHABLE_DB, **env}
    proc = subprocess.run(
        [sys.executable, str(PROBE), str(dag_folder)], env=full_env, capture_output=True, text=True, timeout=300
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PROBE-RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"probe failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    )
    return json.loads(lines[-1].removeprefix("PROBE-RESULT "))


@pytest.fixture(scope="module")
def repo_parse() -> dict[str, Any]:
    result = probe(DAGS_DIR)
    print(f"\nparse time of dags/: {result['parse_seconds']} s; per file: {result['per_file']}")
    return result


def test_every_dag_file_imports_without_errors(repo_parse: dict[str, Any]) -> None:
    expected = {dag_id("monitor", c) for c in load_contracts(contract_files(REPO_MODELS)).contracts}
    assert expected, "the repo ships at least the demo contract"
    assert repo_parse["import_errors"] == {}
    assert expected <= set(repo_parse["dag_ids"])
    parsed_files = {Path(f).name for f in repo_parse["per_file"]}
    assert parsed_files == {p.name for p in DAGS_DIR.glob("*.py")}, "safe mode skipped a DAG file"


def test_parsing_opens_no_database_connection_and_looks_up_nothing(repo_parse: dict[str, Any]) -> None:
    assert repo_parse["db_connects"] == []
    assert repo_parse["lookups"] == []


def test_parsing_imports_no_heavy_library(repo_parse: dict[str, Any]) -> None:
    assert repo_parse["heavy_before"] == [], "Airflow itself imported a heavy library: the check would be blind"
    assert repo_parse["heavy_modules"] == []


def test_probe_catches_queries_lookups_and_heavy_imports(tmp_path: Path) -> None:
    """The checks above can fail: DAG files that misbehave at parse time are all caught."""
    dag = """
        import pendulum
        from airflow.sdk import dag

        @dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), tags=["t"])
        def {name}():
            pass

        {name}()
    """
    files = {
        "queries_db.py": "import sqlalchemy as sa\n"
        f"sa.create_engine('sqlite:///{tmp_path / 'other.db'}').connect().exec_driver_sql('select 1')\n",
        "queries_metadata.py": "from sqlalchemy import text\nfrom airflow import settings\n"
        "settings.Session().execute(text('select 1'))\n",
        "reads_variable.py": "from airflow.sdk import Variable\nVariable.get('threshold', default=1)\n",
        "heavy.py": "import pandas\n",
    }
    for name, prefix in files.items():
        stem = name.removesuffix(".py")
        (tmp_path / name).write_text(prefix + textwrap.dedent(dag).format(name=stem))
    result = probe(tmp_path)
    assert result["db_connects"], "a DAG file connecting to a database was not noticed"
    assert "queries_metadata.py" in " ".join(result["import_errors"]), result["import_errors"]
    assert "unable to open database file" in str(result["import_errors"])
    assert "variable:threshold" in result["lookups"]
    assert "pandas" in result["heavy_modules"]


# Tasks whose DAG file sets retries=0 on purpose (a blind automatic re-run would do harm or
# waste: the DAG has its own recovery path). Adding a task here is a reviewed decision.
NO_RETRY_BY_DESIGN = {
    "train_candidate": "dags/retraining.py: a failed training releases its claim; the next request retrains",
    "rollback_champion": "dags/rollback.py: a manual action, re-run by a person",
}


def test_every_dag_has_tags_owner_and_retries() -> None:
    bag = parse_dags()
    assert bag.import_errors == {}
    assert bag.dags
    no_retry: set[str] = set()
    for dag in bag.dags.values():
        assert "driftguard" in dag.tags, dag.dag_id
        assert len(dag.tags) >= 3, f"{dag.dag_id}: tags are driftguard, the DAG kind and the model"
        assert dag.max_active_runs == 1, dag.dag_id
        assert dag.doc_md and "/driftguard/runbook" in dag.doc_md, dag.dag_id
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag.dag_id}.{task.task_id} has no owner"
            if task.retries < 1:
                no_retry.add(task.task_id)
    unexpected = sorted(no_retry - set(NO_RETRY_BY_DESIGN))
    assert not unexpected, f"tasks without retries (add retries, or justify in NO_RETRY_BY_DESIGN): {unexpected}"


def test_monitoring_dag_follows_the_contract() -> None:
    from airflow.sdk import CronDataIntervalTimetable

    contract = load_contracts(contract_files(REPO_MODELS)).contracts["flight_delay"]
    dag = parse_dags().dags[dag_id("monitor", "flight_delay")]
    assert isinstance(dag.timetable, CronDataIntervalTimetable), "a trigger timetable has empty data intervals"
    assert dag.timetable.expression == "0 0 * * 0"
    assert dag.start_date.isoformat() == "2013-03-04T00:00:00+00:00"
    assert dag.catchup is contract.catchup
    assert set(dag.tags) == {"driftguard", "monitoring", "flight_delay"}
    assert dag.owner == "ml-platform@example.com"
    assert "New York airport" in dag.doc_md
    extract = dag.task_dict["extract_window"]
    assert "flight_delay" in [*extract.op_args, *extract.op_kwargs.values()], "tasks get the model name"


# monitor step -> its task in the monitoring DAG
STEP_TASKS = {
    "extract": "extract_window",
    "load_reference": "load_reference",
    "score": "score_window",
    "check_quality": "check_quality",
    "detect_drift": "detect_drift",
    "evaluate_model": "evaluate_model",
    "shadow": "shadow_challenger",
    "decide": "decide_retrain",
    "publish": "publish_results",
    "promote_shadow": "promote_shadow",
}


def test_monitoring_dag_wires_what_each_step_reads() -> None:
    """The DAG's edges are monitor.UPSTREAM's: no step starts before the files it reads exist,
    and independent steps (the two reads, the three checks) run side by side."""
    from driftguard.monitoring.monitor import STEPS, UPSTREAM

    dag = parse_dags().dags[dag_id("monitor", "flight_delay")]
    for step, upstream in UPSTREAM.items():
        task = dag.task_dict[STEP_TASKS[step]]
        assert task.upstream_task_ids == {STEP_TASKS[u] for u in upstream}, step
    assert set(STEP_TASKS) == set(UPSTREAM)
    done: set[str] = set()
    for step in STEPS:  # the in-process order respects the same edges
        assert set(UPSTREAM[step]) <= done, step
        done.add(step)


def _good_contract(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "task": "binary_classification",
        "owners": ["team-a@example.com", "team-b@example.com"],
        "schedule": "@daily",
        "start_date": "2024-01-01",
        "source": {
            "url": "${DRIFTGUARD_FEATURE_LOG_URL}",
            "table": "events",
            "timestamp_column": "ts",
            "id_column": "id",
        },
        "features": [{"name": "x", "kind": "numeric"}, {"name": "distance", "kind": "numeric"}],
    }


def test_broken_contract_is_one_import_error_and_other_models_keep_their_dags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "good_model.yaml").write_text(yaml.safe_dump(_good_contract("good_model")))
    broken = _good_contract("broken_model")
    broken["features"][1]["kind"] = "numerc"
    broken["schedul"] = "@weekly"
    (models / "broken_model.yaml").write_text(yaml.safe_dump(broken))
    monkeypatch.setenv("DRIFTGUARD_MODELS_DIR", str(models))

    bag = parse_dags()

    assert dag_id("monitor", "good_model") in bag.dags
    assert dag_id("monitor", "broken_model") not in bag.dags
    assert bag.dags[dag_id("monitor", "good_model")].owner == "team-a@example.com, team-b@example.com"
    assert list(bag.import_errors) == [str(DAGS_DIR / "contract_errors.py")]
    error = bag.import_errors[str(DAGS_DIR / "contract_errors.py")]
    broken_file = models / "broken_model.yaml"
    assert "1 broken model contract file(s)" in error
    assert f"{broken_file}: features[1](distance).kind: Input should be 'numeric' or 'categorical'" in error
    assert f"{broken_file}: schedul: unknown field" in error


def test_missing_models_folder_is_reported_not_silent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTGUARD_MODELS_DIR", str(tmp_path / "nowhere"))
    bag = parse_dags()
    assert not bag.dags
    error = bag.import_errors[str(DAGS_DIR / "contract_errors.py")]
    assert f"{tmp_path / 'nowhere'}: <folder>: models folder does not exist (set DRIFTGUARD_MODELS_DIR)" in error


def test_retraining_dag_ends_in_one_outcome_task_per_outcome() -> None:
    """Airflow's grid names how a retrain ended: `outcome` (after the deciding steps, and after
    train_candidate, not candidate_trained, whose short-circuit skips its direct downstream)
    branches to one `outcome_<status>` task per retrain outcome."""
    from driftguard.retraining import retrain
    from driftguard.step_results import RETRAIN_OUTCOMES

    dag = parse_dags().dags[dag_id("retrain", "flight_delay")]
    ended = dag.task_dict["outcome"]
    assert ended.upstream_task_ids == {"train_candidate", "promote_champion", "keep_as_challenger"} | (
        {"decline_promotion"} & set(dag.task_ids)
    )
    assert ended.trigger_rule == "none_failed_min_one_success"
    assert ended.downstream_task_ids == {f"outcome_{o}" for o in RETRAIN_OUTCOMES}
    assert dag.task_dict["candidate_trained"].ignore_downstream_trigger_rules is False
    assert retrain.outcome_task_id([None, {"status": "rejected"}, {"status": "trained"}]) == "outcome_rejected"
    assert retrain.outcome_task_id([None, None, None, {"status": "insufficient_data"}]) == "outcome_insufficient_data"
    assert retrain.outcome_task_id([None, {"status": "trained"}]) is None


def test_monitoring_triggers_the_retrain_of_its_interval_and_retraining_has_no_schedule() -> None:
    """A retrain decision starts `retrain__<interval start>_<interval end>` with the request as
    conf; the Asset stays as lineage, and the retraining DAG is not scheduled on it (it would
    run twice per decision)."""
    import pendulum
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
    from driftguard.airflow.dag_defaults import retrain_asset_name

    bag = parse_dags()
    monitoring, retraining = bag.dags[dag_id("monitor", "flight_delay")], bag.dags[dag_id("retrain", "flight_delay")]
    assert retraining.schedule is None and type(retraining.timetable).__name__ == "NullTimetable"
    trigger = monitoring.task_dict["trigger_retrain"]
    assert isinstance(trigger, TriggerDagRunOperator)
    assert trigger.trigger_dag_id == retraining.dag_id
    assert trigger.upstream_task_ids == {"request_retrain"}
    assert (trigger.skip_when_already_exists, trigger.reset_dag_run, trigger.logical_date) == (True, False, None)
    assert [a.name for a in monitoring.task_dict["request_retrain"].outlets] == [retrain_asset_name("flight_delay")]
    start, end = pendulum.datetime(2013, 3, 10, tz="UTC"), pendulum.datetime(2013, 3, 17, tz="UTC")
    run_id = (
        monitoring.get_template_env()
        .from_string(trigger.trigger_run_id)
        .render(data_interval_start=start, data_interval_end=end)
    )
    assert run_id == "retrain__2013-03-10T00:00:00+00:00_2013-03-17T00:00:00+00:00"
