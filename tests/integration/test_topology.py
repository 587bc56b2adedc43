"""The production topology for real: what docker-compose starts, as local processes.

PostgreSQL (the local server) holds Airflow's metadata DB, MLflow's backend store and the
Driftguard database (feature log + history), each a throwaway database. Airflow runs its four
components (api-server, scheduler, dag-processor, triggerer) with the LocalExecutor; MLflow runs
as a tracking server with served artifacts. The monitoring -> retraining -> registration loop is
driven only through Airflow's REST API, and the scheduler (not dag.test()) runs every DAG run,
including the retraining run the monitoring run triggers (`retrain__<interval>`).

Scenario (same contract and days as tests/integration/test_loop_dags.py): a manual retraining
run trains the first champion; monitoring a stable day decides no retrain (three more models are
monitored for that day at the same time: four runs in the executor's four task slots, one history
row each); monitoring a day after the injected concept drift triggers the retraining run
`retrain__<interval start>_<interval end>` with the request as conf, which gates and registers
version 2; clearing the trigger afterwards starts no second retrain.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import pytest
import yaml
from topology_support import (
    Services,
    Topology,
    demo_scheduler,
    existing_databases,
    group_alive,
    pg_databases,
    start_topology,
    stop,
    topology_env,
)

START = datetime(2024, 1, 1, tzinfo=UTC)
DRIFT_AT = START + timedelta(days=20)
MODEL = "topo"
STEP_TIMEOUT = 900.0  # seconds per triggered run (plus the runs it causes); 2 shared cores
MONITOR, RETRAIN = f"driftguard_monitor__{MODEL}", f"driftguard_retrain__{MODEL}"
# Three more models monitored on the stable day at the same time as MODEL: four monitoring runs for
# the LocalExecutor's four task slots (parallelism 4), into the same PostgreSQL history tables.
PEERS = [f"{MODEL}_peer{i}" for i in range(1, 4)]
PEER_MONITORS = [f"driftguard_monitor__{m}" for m in PEERS]


def _day(n: int) -> datetime:
    return START + timedelta(days=n)


def _write_world(models: Path, feature_log_url: str) -> None:
    """The synthetic contract and log of test_loop_dags.py, in the Driftguard PostgreSQL database."""
    from driftguard.testing import Injection, generate_log, synthetic_contract, write_log

    contract = synthetic_contract(
        url="${DRIFTGUARD_FEATURE_LOG_URL}",
        name=MODEL,
        prediction=False,
        schedule="@daily",
        start_date=START,
        overrides={
            "reference": {"start": "2024-01-01", "end": "2024-01-15", "sample_size": 5000},
            "training": {"window": "21d", "validation": "3d", "holdout": "3d", "params": {"max_iter": 60}},
            "policy": {"cooldown": "2d", "min_new_labels": 500, "metric_drop": 0.05,
                       "persistence": {"k": 1, "n": 1}},
            "promotion": {"bootstrap": {"samples": 200}, "mode": "non_inferiority", "margin": 0.02},
        },
    )  # fmt: skip
    assert contract.catchup is False  # with a past schedule end, the scheduler creates no run of its own
    models.mkdir()
    (models / f"{MODEL}.yaml").write_text(yaml.safe_dump(contract.model_dump(mode="json", exclude_unset=True)))
    log, labels = generate_log(
        contract.task.value, start=START, days=26, rows_per_day=400, seed=3,
        injections=[Injection("concept_drift", DRIFT_AT, None, 1.0)],
    )  # fmt: skip
    write_log(feature_log_url, contract, log, labels)
    for i, peer in enumerate(PEERS, 1):  # same settings, own tables and data, no drift
        twin = contract.model_copy(update={"name": peer, "source": contract.source.model_copy(
            update={"table": f"events_{peer}",
                    "labels": contract.source.labels.model_copy(update={"table": f"labels_{peer}"})})})  # fmt: skip
        (models / f"{peer}.yaml").write_text(yaml.safe_dump(twin.model_dump(mode="json", exclude_unset=True)))
        log, labels = generate_log(contract.task.value, start=START, days=17, rows_per_day=200, seed=3 + i)
        write_log(feature_log_url, twin, log, labels)


# --------------------------------------------------------------------------- REST helpers


def _runs(api: demo_scheduler.Api, dag_id: str) -> list[dict[str, Any]]:
    return api.get(f"/api/v2/dags/{quote(dag_id)}/dagRuns", order_by="run_after", limit=100)["dag_runs"]


def _run(api: demo_scheduler.Api, dag_id: str, run_id: str) -> dict[str, Any]:
    return api.get(f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}")


def _task_states(api: demo_scheduler.Api, dag_id: str, run_id: str) -> dict[str, str | None]:
    tis = api.get(f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances", limit=100)
    return {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}


def _xcom(api: demo_scheduler.Api, dag_id: str, run_id: str, task_id: str) -> Any:
    import json

    path = f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances/{task_id}/xcomEntries/return_value"
    value = api.get(path)["value"]
    return json.loads(value) if isinstance(value, str) else value


def _wait_dags(topo: Topology, dag_ids: set[str], timeout: float = 300) -> None:
    """Until the dag-processor has serialized the model's DAGs (import errors on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        topo.check_alive()
        known = {d["dag_id"] for d in topo.api.get("/api/v2/dags", tags=["driftguard"], limit=100)["dags"]}
        if dag_ids <= known:
            return
        time.sleep(1)
    errors = topo.api.get("/api/v2/importErrors")["import_errors"]
    raise topo.fail(f"DAGs {sorted(dag_ids)} not parsed within {timeout:.0f} s; import errors: {errors}")


def _wait_done(topo: Topology, dag_id: str, run_id: str, timeout: float = STEP_TIMEOUT) -> dict[str, Any]:
    """Until the run has finished AND Airflow is idle: no queued or running run of an unpaused DAG
    (so the retraining run this run triggered has finished too)."""
    deadline = time.monotonic() + timeout
    pending: list[str] = []
    while time.monotonic() < deadline:
        topo.check_alive()
        run = _run(topo.api, dag_id, run_id)
        pending = demo_scheduler.busy(topo.api)
        if run["state"] not in demo_scheduler.ACTIVE_STATES and not pending:
            return run
        time.sleep(2)
    states = _task_states(topo.api, dag_id, run_id)
    raise topo.fail(f"{dag_id} {run_id} not done after {timeout:.0f} s; pending {pending}; tasks {states}")


def _trigger(topo: Topology, dag_id: str, body: dict[str, Any]) -> str:
    _, run = topo.api.request("POST", f"/api/v2/dags/{quote(dag_id)}/dagRuns", body)
    return str(run["dag_run_id"])


def _monitor(topo: Topology, day: int) -> dict[str, Any]:
    """One monitoring run for exactly the data interval [day, day + 1), as `make demo` triggers it."""
    step = demo_scheduler.Step(MONITOR, _day(day), _day(day + 1))
    demo_scheduler.start_run(topo.api, step, None)
    run = demo_scheduler.find_run(topo.api, step)
    assert run is not None, f"no run of {MONITOR} for {step}"
    return _wait_done(topo, MONITOR, run["dag_run_id"])


# --------------------------------------------------------------------------- the test


@pytest.mark.slow
def test_production_topology_runs_the_loop_through_the_scheduler(pg_server: str, tmp_path: Path) -> None:
    from driftguard.store import HistoryStore, dispose_engines
    from mlflow import MlflowClient

    pids: list[int] = []
    with pg_databases(pg_server) as urls:
        tag = urls["airflow"].rsplit("/", 1)[1].removesuffix("_airflow")
        _write_world(tmp_path / "models", urls["driftguard"])
        env = topology_env(tmp_path / "home", urls, tmp_path / "models", schedule_end="2024-02-01")
        with start_topology(env, tmp_path / "logs", mlflow_backend_uri=urls["mlflow"]) as topo:
            pids = [s.process.pid for s in topo.services if s.process is not None]
            assert len(pids) == 5 and all(group_alive(p) for p in pids)
            assert "MLFLOW_BACKEND_STORE_URI" not in topo.airflow.env  # tasks reach MLflow over HTTP only
            _wait_dags(topo, {MONITOR, RETRAIN, *PEER_MONITORS})
            # The retraining DAG must be unpaused for the scheduler to run its triggered run.
            for dag_id in (MONITOR, RETRAIN, *PEER_MONITORS):
                topo.api.request("PATCH", f"/api/v2/dags/{quote(dag_id)}", {"is_paused": False})

            # 1. First champion: a manual retraining run with the decided interval as conf.
            first_id = _trigger(topo, RETRAIN, {
                "logical_date": None,
                "conf": {"interval_start": _day(13).isoformat(), "interval_end": _day(14).isoformat(),
                         "reason": "first champion"},
            })  # fmt: skip
            first = _wait_done(topo, RETRAIN, first_id)
            assert (first["state"], first["run_type"]) == ("success", "manual"), topo.fail(f"first run {first}")
            first_tasks = _task_states(topo.api, RETRAIN, first_id)
            assert first_tasks["promote_champion"] == "success", first_tasks
            assert first_tasks["keep_as_challenger"] == "skipped", first_tasks

            # 2. A stable day: no retrain. The three peers are monitored for the same day at the same
            #    time (their retraining DAGs stay paused: the first-champion runs they trigger only queue).
            for peer in PEER_MONITORS:
                demo_scheduler.start_run(topo.api, demo_scheduler.Step(peer, _day(15), _day(16)), None)
            stable = _monitor(topo, 15)
            assert stable["state"] == "success", topo.fail(f"stable run {stable}")
            for peer in PEER_MONITORS:
                run = demo_scheduler.find_run(topo.api, demo_scheduler.Step(peer, _day(15), _day(16)))
                assert run is not None and _wait_done(topo, peer, run["dag_run_id"])["state"] == "success", run
            tasks = _task_states(topo.api, MONITOR, stable["dag_run_id"])
            assert (tasks["no_retrain"], tasks["request_retrain"]) == ("success", "skipped"), tasks

            # 3. After the concept drift: the monitoring run triggers `retrain__<interval>` with its
            #    request as conf; _wait_done waits until that retraining run has finished too.
            drifted = _monitor(topo, 22)
            assert drifted["state"] == "success", topo.fail(f"drifted run {drifted}")
            tasks = _task_states(topo.api, MONITOR, drifted["dag_run_id"])
            assert tasks["request_retrain"] == tasks["trigger_retrain"] == "success", (
                tasks, _xcom(topo.api, MONITOR, drifted["dag_run_id"], "publish_results"),
            )  # fmt: skip
            request = _xcom(topo.api, MONITOR, drifted["dag_run_id"], "request_retrain")
            auto_id = f"retrain__{_day(22).isoformat()}_{_day(23).isoformat()}"
            assert auto_id == "retrain__2024-01-23T00:00:00+00:00_2024-01-24T00:00:00+00:00"
            found = demo_scheduler.retrain_run(topo.api, demo_scheduler.Step(MONITOR, _day(22), _day(23)))
            assert found is not None and found["dag_run_id"] == auto_id, found  # as `make demo --scheduler` finds it
            retrains = _runs(topo.api, RETRAIN)
            assert [(r["dag_run_id"], r["run_type"]) for r in retrains] == [
                (first_id, "manual"), (auto_id, "operator_triggered"),
            ], retrains  # fmt: skip
            auto = retrains[1]
            assert auto["state"] == "success", topo.fail(f"triggered run {auto}")
            assert (auto["logical_date"], auto["conf"]) == (None, request), auto
            assert (request["interval_start"], request["interval_end"]) == (_day(22).isoformat(), _day(23).isoformat())
            assert request["trigger"]["source"] == "monitoring" and "worse by" in request["trigger"]["summary"], request
            # The Asset event stays, for lineage: which run asked, for which retrain run.
            events = topo.api.get("/api/v2/assets/events", source_dag_id=MONITOR)["asset_events"]
            assert [(e["source_run_id"], e["extra"]["retrain_run_id"]) for e in events] == [
                (drifted["dag_run_id"], auto_id)
            ], events
            auto_tasks = _task_states(topo.api, RETRAIN, auto_id)
            assert auto_tasks["train_candidate"] == auto_tasks["register_candidate"] == "success", auto_tasks
            # The gate's verdict is pinned (the same data and contract as test_loop_dags.py): promoted.
            promoted = ("promote_champion", "keep_as_challenger", "outcome_promoted")
            assert tuple(auto_tasks[t] for t in promoted) == ("success", "skipped", "success"), auto_tasks

            # 3b. Clearing the trigger (as clearing the monitoring run would) starts no second retrain:
            #     the run id exists, so the trigger is skipped.
            topo.api.request("POST", f"/api/v2/dags/{quote(MONITOR)}/clearTaskInstances", {
                "dry_run": False, "dag_run_id": drifted["dag_run_id"], "task_ids": ["trigger_retrain"],
                "only_failed": False,
            })  # fmt: skip
            again = _wait_done(topo, MONITOR, drifted["dag_run_id"])
            assert again["state"] == "success", topo.fail(f"cleared run {again}")
            assert _task_states(topo.api, MONITOR, drifted["dag_run_id"])["trigger_retrain"] == "skipped"
            assert [r["dag_run_id"] for r in _runs(topo.api, RETRAIN)] == [first_id, auto_id]
            # Nothing ran that the test did not cause (schedule end in the past, catchup off); the
            # peers' first-champion retrains wait, queued, in their paused retraining DAGs.
            peer_retrains = {
                (r["dag_id"], r["dag_run_id"], r["state"]) for r in demo_scheduler.all_runs(topo.api)
                if r["dag_id"].startswith(f"driftguard_retrain__{MODEL}_peer")
            }  # fmt: skip
            assert peer_retrains == {
                (f"driftguard_retrain__{p}", f"retrain__{_day(15).isoformat()}_{_day(16).isoformat()}", "queued")
                for p in PEERS
            }, peer_retrains  # fmt: skip
            assert sorted((r["dag_id"], r["run_type"]) for r in demo_scheduler.all_runs(topo.api)) == sorted([
                (MONITOR, "manual"), (MONITOR, "manual"), (RETRAIN, "operator_triggered"), (RETRAIN, "manual"),
                *((peer, "manual") for peer in PEER_MONITORS),
                *((f"driftguard_retrain__{p}", "operator_triggered") for p in PEERS),
            ])  # fmt: skip

            # 4. MLflow, through the HTTP tracking server (PostgreSQL backend, served artifacts).
            client = MlflowClient(tracking_uri=topo.mlflow_uri, registry_uri=topo.mlflow_uri)
            versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{MODEL}'"))
            assert versions == [1, 2]
            champion = client.get_model_version_by_alias(MODEL, "champion")
            assert champion.version == "2", champion
            assert client.get_model_version_by_alias(MODEL, "previous_champion").version == "1"
            v2 = client.get_model_version(MODEL, "2")
            assert v2.tags["driftguard.verdict"] == "promote", v2.tags
            artifacts = client.list_artifacts(champion.run_id)
            assert artifacts, f"no artifacts served for run {champion.run_id}"

            # 5. History tables in the Driftguard PostgreSQL database.
            store = HistoryStore(urls["driftguard"])
            runs = store.runs(MODEL)
            assert [(r.interval_start, r.interval_end, r.retrain) for r in runs] == [
                (_day(15), _day(16), False),
                (_day(22), _day(23), True),
            ]
            assert runs[1].champion_version == "1" and "worse by" in runs[1].summary, runs[1]
            for peer in PEERS:  # the four parallel runs lost nothing: one row each
                assert [(r.interval_start, r.interval_end) for r in store.runs(peer)] == [(_day(15), _day(16))], peer
            claimed = store.retrains(MODEL)
            assert [(r["interval_start"], r["interval_end"]) for r in claimed] == [
                (_day(13), _day(14)),
                (_day(22), _day(23)),
            ], claimed
            assert [r["status"] for r in claimed] == ["promoted", "promoted"], claimed
            promotions = [(p["action"], p["version"]) for p in store.promotions(MODEL)]
            assert promotions == [("first_champion", "1"), ("promote", "2")], promotions
            dispose_engines()  # no pooled connection keeps the database from being dropped

        # Everything it started, it stopped: no process group left, no process of the tree either
        # (task processes live in groups of their own), without a kill after the stop.
        assert [p for p in pids if group_alive(p)] == [], "process groups still alive after stop"
        assert len(topo.stopped) > len(pids)  # the leaders and their children were tracked
        assert topo.survivors == [], f"processes left running after the stop (killed): {topo.survivors}"
    assert existing_databases(pg_server, f"{tag}%") == []


# --------------------------------------------------------------------------- the harness's own guarantees (fast)

SPAWNER = """
import subprocess, sys, time
# Like Airflow's task supervisor: a child in a process group of its own, out of reach of killpg.
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
time.sleep(300)
"""


def test_stop_kills_processes_that_left_the_process_group(tmp_path: Path) -> None:
    import sys

    airflow = Services({"PATH": ""}, tmp_path)
    airflow.start("spawner", [sys.executable, "-c", SPAWNER])
    deadline = time.monotonic() + 30
    while len(psutil.Process(airflow.services[0].process.pid).children()) < 1:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the spawner did not start its child"
        time.sleep(0.1)
    topo = Topology(env={}, api=demo_scheduler.Api("http://127.0.0.1:9"), airflow=airflow,
                    mlflow=Services({}, tmp_path), mlflow_uri="http://127.0.0.1:9")  # fmt: skip
    stop(topo)
    assert len(topo.stopped) == 2
    assert [cmd for _, cmd in topo.survivors] == [f"{sys.executable} -c import time; time.sleep(300)"]
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in topo.stopped)


def test_pg_databases_are_dropped_even_when_the_body_fails(pg_server: str) -> None:
    import sqlalchemy as sa

    with pytest.raises(RuntimeError, match="boom"), pg_databases(pg_server, "dgtopotest", ("driftguard",)) as urls:
        tag = urls["driftguard"].rsplit("/", 1)[1].removesuffix("_driftguard")
        assert existing_databases(pg_server, f"{tag}%") == [f"{tag}_driftguard"]
        engine = sa.create_engine(urls["driftguard"])
        conn = engine.connect()  # an open connection must not keep the database alive
        conn.execute(sa.text("select 1"))
        raise RuntimeError("boom")
    assert existing_databases(pg_server, f"{tag}%") == []
    conn.invalidate()  # the server closed it: no rollback on a dead connection
    engine.dispose()
