"""Human approval of a promotion through a real Airflow (api-server, scheduler, dag-processor,
triggerer; LocalExecutor on a SQLite metadata DB in tmp).

`dag.test()` blocks forever on a human-in-the-loop task, so this needs the real components: the
ApprovalOperator defers to the triggerer and parks the task in `awaiting_input` until someone
answers through the REST API. The scenario: a contract with `promotion.require_approval: true`,
the retraining DAG triggered by hand for a first champion; while the approval waits nothing is
promoted; after "Approve" the candidate becomes @champion and the promotion is in the history.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from driftguard.airflow.dag_defaults import dag_id
from driftguard.testing import generate_log, synthetic_contract, write_log
from topology_support import AIRFLOW_COMPONENTS, airflow_env, demo_scheduler, free_port, log_tail

START = datetime(2024, 1, 1, tzinfo=UTC)
NAME = "approval_model"
TASKS = "/taskInstances"


@contextlib.contextmanager
def airflow_with_approval_contract(
    tmp_path: Path,
) -> Iterator[tuple[demo_scheduler.Api, airflow_env.Services, dict[str, str]]]:
    """The synthetic model with required approval, its log and stores in tmp, and Airflow running."""
    home = tmp_path / "home"
    models = tmp_path / "models"
    models.mkdir()
    feature_log = f"sqlite:///{tmp_path / 'feature_log.db'}"
    contract = synthetic_contract(
        url="${DRIFTGUARD_FEATURE_LOG_URL}",
        name=NAME,
        prediction=False,
        schedule="@daily",
        start_date=START,
        overrides={
            "reference": {"start": "2024-01-01", "end": "2024-01-12", "sample_size": 3000},
            "training": {"window": "12d", "validation": "2d", "holdout": "2d", "params": {"max_iter": 40}},
            "promotion": {"require_approval": True, "bootstrap": {"samples": 100}},
        },
    )
    assert contract.promotion.require_approval is True
    (models / f"{NAME}.yaml").write_text(yaml.safe_dump(contract.model_dump(mode="json", exclude_unset=True)))
    log, labels = generate_log(contract.task.value, start=START, days=16, rows_per_day=300, seed=5)
    write_log(feature_log, contract, log, labels)

    env = airflow_env.airflow_env(home, port=free_port(), base=os.environ)
    env.update(
        {
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "true",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "DRIFTGUARD_MODELS_DIR": str(models),
            "DRIFTGUARD_FEATURE_LOG_URL": feature_log,
            "DRIFTGUARD_HISTORY_URL": f"sqlite:///{home / 'history.db'}",
            "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
            "DRIFTGUARD_MLFLOW_ARTIFACTS": str(home / "mlartifacts"),
            "DRIFTGUARD_REPORTS_DIR": str(home / "reports"),
        }
    )
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True)
    migrate = subprocess.run([airflow_env.airflow_bin(), "db", "migrate"], env=env, capture_output=True, text=True)
    assert migrate.returncode == 0, f"airflow db migrate failed:\n{migrate.stdout[-3000:]}\n{migrate.stderr[-3000:]}"

    services = airflow_env.Services(env, home / "logs")
    try:
        for name, sub in AIRFLOW_COMPONENTS:
            services.start(name, [airflow_env.airflow_bin(), *sub])
        api = demo_scheduler.Api(f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}")
        try:
            demo_scheduler.wait_for_api(api, services, env, timeout=240)
        except (SystemExit, RuntimeError) as exc:
            pytest.fail(f"Airflow API did not come up: {exc}\n{tails(services)}")
        yield api, services, env
    finally:
        services.stop()


def tails(services: airflow_env.Services, lines: int = 40) -> str:
    return "\n".join(log_tail(s.log_path, lines) for s in services.services)


def wait_for(
    what: str, probe: Callable[[], Any], services: airflow_env.Services, timeout: float, interval: float = 2.0
) -> Any:
    """Poll `probe` until it returns something truthy; fail with the service log tails after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            services.check_alive()
        except RuntimeError as exc:
            pytest.fail(f"{exc} while waiting for {what}\n{tails(services)}")
        last = probe()
        if last and last[0]:
            return last[1]
        time.sleep(interval)
    pytest.fail(f"{what}: not reached within {timeout:.0f} s (last: {last and last[1]})\n{tails(services)}")


def airflow_start_race(services: airflow_env.Services) -> bool:
    """The api-server refused to start a task try because of its state: Airflow's own race, not ours."""
    marker = "TI was not in a state where it could be marked as running"
    return any(marker in log_tail(s.log_path, 100_000) for s in services.services)


def task_states(api: demo_scheduler.Api, dag: str, run_id: str) -> dict[str, str | None]:
    tis = api.get(f"/api/v2/dags/{quote(dag)}/dagRuns/{quote(run_id)}{TASKS}", limit=100)["task_instances"]
    return {ti["task_id"]: ti["state"] for ti in tis}


@pytest.mark.slow
@pytest.mark.parametrize("answer", ["Approve", "Reject"])
def test_promotion_waits_for_human_approval(tmp_path: Path, answer: str) -> None:
    from driftguard.retraining import registry
    from driftguard.store import HistoryStore

    with airflow_with_approval_contract(tmp_path) as (api, services, env):
        uri = env["MLFLOW_TRACKING_URI"]
        dag = dag_id("retrain", NAME)
        dags_path = f"/api/v2/dags/{quote(dag)}"

        def parsed() -> tuple[bool, Any]:
            status, _ = api.request("GET", dags_path, ok=(200, 404))
            return status == 200, api.get("/api/v2/importErrors")["import_errors"]

        wait_for(f"the dag-processor parses {dag}", parsed, services, timeout=180)
        api.request("PATCH", dags_path, {"is_paused": False})

        run_id = "first_champion_with_approval"
        end = START + timedelta(days=14)
        api.request(
            "POST",
            f"{dags_path}/dagRuns",
            {
                "dag_run_id": run_id,
                "logical_date": None,
                "conf": {
                    "interval_start": (end - timedelta(days=1)).isoformat(),
                    "interval_end": end.isoformat(),
                    "reason": "first champion, approval required",
                },
            },
        )
        run_path = f"{dags_path}/dagRuns/{quote(run_id)}"

        def awaiting() -> tuple[bool, Any]:
            states = task_states(api, dag, run_id)
            run_state = api.get(run_path)["state"]
            if run_state not in ("queued", "running"):
                pytest.fail(f"run ended as {run_state} before the approval step: {states}\n{tails(services)}")
            return states.get("approve_promotion") == "awaiting_input", states

        states = wait_for("approve_promotion awaiting_input", awaiting, services, timeout=600)
        assert states["evaluate_candidate"] == "success", states
        assert states["promote_or_not"] == "success", states
        assert states["keep_as_challenger"] == "skipped", states
        assert states["promote_champion"] in (None, "none", "scheduled"), states
        # The gate passed, but nothing moves before a person says so.
        assert registry.champion_version(NAME, tracking_uri=uri) is None
        store = HistoryStore(env["DRIFTGUARD_HISTORY_URL"])
        assert store.promotions(NAME) == []

        hitl_path = f"{run_path}{TASKS}/approve_promotion/-1/hitlDetails"
        details = api.get(hitl_path)
        assert details["options"] == ["Approve", "Reject"], details
        assert "first champion" in details["body"], details  # the gate's summary, rendered for the reviewer
        api.request("PATCH", hitl_path, {"chosen_options": [answer]})

        def finished() -> tuple[bool, Any]:
            state = api.get(run_path)["state"]
            parked = task_states(api, dag, run_id).get("approve_promotion") == "awaiting_input"
            if state in ("queued", "running") and parked and not api.get(hitl_path).get("chosen_options"):
                # Airflow 3.3 race (LocalExecutor, SQLite): a late executor event can put the parked task
                # up for retry; its next try asks again, and a reviewer would answer it again.
                api.request("PATCH", hitl_path, {"chosen_options": [answer]})
            return state not in ("queued", "running"), state

        final = wait_for("the run finishes after approval", finished, services, timeout=200)
        states = task_states(api, dag, run_id)
        if final == "failed" and states.get("approve_promotion") == "failed" and airflow_start_race(services):
            # Airflow 3.3 race (LocalExecutor, SQLite, busy machine): the executor launched the parked
            # task's next try while it was still up_for_retry, and each try failed to start. An on-call
            # engineer clears the approval task; the reviewer answers again.
            api.request(
                "POST",
                f"{dags_path}/clearTaskInstances",
                {"dry_run": False, "dag_run_id": run_id, "task_ids": ["approve_promotion"],
                 "include_downstream": True, "only_failed": False, "reset_dag_runs": True},
            )  # fmt: skip
            wait_for("approve_promotion awaiting_input again", awaiting, services, timeout=300)
            api.request("PATCH", hitl_path, {"chosen_options": [answer]})
            final = wait_for("the run finishes after the second answer", finished, services, timeout=200)
            states = task_states(api, dag, run_id)
        assert final == "success", f"{final}: {states}\n{tails(services)}"
        assert states["approve_promotion"] == "success", states
        assert states["keep_as_challenger"] == "skipped", states
        if answer == "Approve":
            assert (states["promote_champion"], states["decline_promotion"]) == ("success", "skipped"), states
            assert (states["outcome_promoted"], states["outcome_declined"]) == ("success", "skipped"), states
            champion = registry.champion_version(NAME, tracking_uri=uri)
            assert champion is not None and int(champion.version) == 1
            promotions = store.promotions(NAME)
            assert [(p["action"], str(p["version"])) for p in promotions] == [("first_champion", "1")], promotions
        else:
            # The reviewer said no: nothing promoted, the decision recorded, the candidate kept for inspection.
            assert (states["promote_champion"], states["decline_promotion"]) == ("skipped", "success"), states
            assert (states["outcome_declined"], states["outcome_promoted"]) == ("success", "skipped"), states
            assert registry.champion_version(NAME, tracking_uri=uri) is None
            assert str(registry.alias_version(NAME, "challenger", tracking_uri=uri).version) == "1"
            assert [r["status"] for r in store.retrains(NAME)] == ["declined"]
            assert store.promotions(NAME) == []
        answered = api.get(hitl_path)
        assert answered["chosen_options"] == [answer], answered
