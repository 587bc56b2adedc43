"""Human approval of a promotion through a real Airflow (api-server, scheduler, dag-processor,
triggerer; LocalExecutor on a SQLite metadata DB in tmp).

`dag.test()` blocks forever on a human-in-the-loop task, so this needs the real components: the
approval task (Airflow's `HITLBranchOperator`) defers to the triggerer and parks in `awaiting_input`
until someone answers through the REST API. The scenario: two models reading the same log, each with
`promotion.require_approval: true`, their retraining DAGs triggered by hand for a first champion.
While the approvals wait nothing is promoted; then one reviewer answers "Approve" (the candidate
becomes @champion and the promotion is in the history) and the other "Reject" (nothing promoted, the
candidate kept as @challenger, the retrain recorded as declined). Both answers share one Airflow:
starting it is most of this test's time.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
#: The model each reviewer answers for, and the answer.
ANSWERS = {"approval_approved": "Approve", "approval_rejected": "Reject"}
TASKS = "/taskInstances"


@contextlib.contextmanager
def airflow_with_approval_contracts(
    tmp_path: Path,
) -> Iterator[tuple[demo_scheduler.Api, airflow_env.Services, dict[str, str]]]:
    """The synthetic models with required approval, their log and stores in tmp, and Airflow running."""
    home = tmp_path / "home"
    models = tmp_path / "models"
    models.mkdir()
    feature_log = f"sqlite:///{tmp_path / 'feature_log.db'}"
    for name in ANSWERS:
        contract = synthetic_contract(
            url="${DRIFTGUARD_FEATURE_LOG_URL}",
            name=name,
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
        (models / f"{name}.yaml").write_text(yaml.safe_dump(contract.model_dump(mode="json", exclude_unset=True)))
    # Both contracts read the same tables, so one log serves them.
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
        for component, sub in AIRFLOW_COMPONENTS:
            services.start(component, [airflow_env.airflow_bin(), *sub])
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


@dataclass
class ApprovalRun:
    """One model's hand-triggered first-champion retrain, driven through the REST API."""

    api: demo_scheduler.Api
    services: airflow_env.Services
    model: str
    run_id: str = "first_champion_with_approval"

    @property
    def dag(self) -> str:
        return dag_id("retrain", self.model)

    @property
    def dag_path(self) -> str:
        return f"/api/v2/dags/{quote(self.dag)}"

    @property
    def run_path(self) -> str:
        return f"{self.dag_path}/dagRuns/{quote(self.run_id)}"

    @property
    def hitl_path(self) -> str:
        return f"{self.run_path}{TASKS}/approve_promotion/-1/hitlDetails"

    def states(self) -> dict[str, str | None]:
        tis = self.api.get(f"{self.run_path}{TASKS}", limit=100)["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}

    def trigger(self) -> None:
        def parsed() -> tuple[bool, Any]:
            status, _ = self.api.request("GET", self.dag_path, ok=(200, 404))
            return status == 200, self.api.get("/api/v2/importErrors")["import_errors"]

        wait_for(f"the dag-processor parses {self.dag}", parsed, self.services, timeout=180)
        self.api.request("PATCH", self.dag_path, {"is_paused": False})
        end = START + timedelta(days=14)
        conf = {
            "interval_start": (end - timedelta(days=1)).isoformat(),
            "interval_end": end.isoformat(),
            "reason": "first champion, approval required",
        }
        self.api.request(
            "POST", f"{self.dag_path}/dagRuns", {"dag_run_id": self.run_id, "logical_date": None, "conf": conf}
        )

    def wait_awaiting(self, timeout: float = 600) -> dict[str, str | None]:
        def awaiting() -> tuple[bool, Any]:
            states = self.states()
            run_state = self.api.get(self.run_path)["state"]
            if run_state not in ("queued", "running"):
                pytest.fail(
                    f"{self.dag} ended as {run_state} before the approval step: {states}\n{tails(self.services)}"
                )
            return states.get("approve_promotion") == "awaiting_input", states

        return wait_for(f"{self.dag}: approve_promotion awaiting_input", awaiting, self.services, timeout=timeout)

    def answer(self, option: str) -> None:
        self.api.request("PATCH", self.hitl_path, {"chosen_options": [option]})

    def wait_finished(self, option: str) -> tuple[str, dict[str, str | None]]:
        """The run's final state and task states after the reviewer's `option`, riding out Airflow's races."""

        def finished() -> tuple[bool, Any]:
            state = self.api.get(self.run_path)["state"]
            parked = self.states().get("approve_promotion") == "awaiting_input"
            if state in ("queued", "running") and parked and not self.api.get(self.hitl_path).get("chosen_options"):
                # Airflow 3.3 race (LocalExecutor, SQLite): a late executor event can put the parked task
                # up for retry; its next try asks again, and a reviewer would answer it again.
                self.answer(option)
            return state not in ("queued", "running"), state

        final = wait_for(f"{self.dag} finishes after the answer", finished, self.services, timeout=200)
        states = self.states()
        if final == "failed" and states.get("approve_promotion") == "failed" and airflow_start_race(self.services):
            # Airflow 3.3 race (LocalExecutor, SQLite, busy machine): the executor launched the parked
            # task's next try while it was still up_for_retry, and each try failed to start. An on-call
            # engineer clears the approval task; the reviewer answers again.
            self.api.request(
                "POST",
                f"{self.dag_path}/clearTaskInstances",
                {"dry_run": False, "dag_run_id": self.run_id, "task_ids": ["approve_promotion"],
                 "include_downstream": True, "only_failed": False, "reset_dag_runs": True},
            )  # fmt: skip
            self.wait_awaiting(timeout=300)
            self.answer(option)
            final = wait_for(f"{self.dag} finishes after the second answer", finished, self.services, timeout=200)
            states = self.states()
        return final, states


@pytest.mark.slow
def test_promotion_waits_for_human_approval(tmp_path: Path) -> None:
    from driftguard.retraining import registry
    from driftguard.store import HistoryStore

    with airflow_with_approval_contracts(tmp_path) as (api, services, env):
        uri = env["MLFLOW_TRACKING_URI"]
        store = HistoryStore(env["DRIFTGUARD_HISTORY_URL"])
        runs = {model: ApprovalRun(api, services, model) for model in ANSWERS}
        for run in runs.values():
            run.trigger()

        for model, run in runs.items():
            states = run.wait_awaiting()
            assert states["evaluate_candidate"] == "success", states
            assert states["promote_or_not"] == "success", states
            assert states["keep_as_challenger"] == "skipped", states
            assert states["promote_champion"] in (None, "none", "scheduled"), states
            # The gate passed, but nothing moves before a person says so.
            assert registry.champion_version(model, tracking_uri=uri) is None
            assert store.promotions(model) == []
            details = api.get(run.hitl_path)
            assert details["options"] == ["Approve", "Reject"], details
            assert "first champion" in details["body"], details  # the gate's summary, rendered for the reviewer

        for model, run in runs.items():
            run.answer(ANSWERS[model])

        for model, run in runs.items():
            answer = ANSWERS[model]
            final, states = run.wait_finished(answer)
            assert final == "success", f"{model} {final}: {states}\n{tails(services)}"
            assert states["approve_promotion"] == "success", states
            assert states["keep_as_challenger"] == "skipped", states
            if answer == "Approve":
                assert (states["promote_champion"], states["decline_promotion"]) == ("success", "skipped"), states
                assert (states["outcome_promoted"], states["outcome_declined"]) == ("success", "skipped"), states
                champion = registry.champion_version(model, tracking_uri=uri)
                assert champion is not None and int(champion.version) == 1
                promotions = store.promotions(model)
                assert [(p["action"], str(p["version"])) for p in promotions] == [("first_champion", "1")], promotions
            else:
                # The reviewer said no: nothing promoted, the decision recorded, the candidate kept for inspection.
                assert (states["promote_champion"], states["decline_promotion"]) == ("skipped", "success"), states
                assert (states["outcome_declined"], states["outcome_promoted"]) == ("success", "skipped"), states
                assert registry.champion_version(model, tracking_uri=uri) is None
                assert str(registry.alias_version(model, "challenger", tracking_uri=uri).version) == "1"
                assert [r["status"] for r in store.retrains(model)] == ["declined"]
                assert store.promotions(model) == []
            answered = api.get(run.hitl_path)
            assert answered["chosen_options"] == [answer], answered
