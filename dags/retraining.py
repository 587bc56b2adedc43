"""
### Driftguard retraining

One DAG per valid model contract, unscheduled. The model's monitoring run starts it when it
decides to retrain (its `trigger_retrain` task), as run `retrain__<interval start>_<interval end>`
(UTC ISO timestamps, e.g. `retrain__2013-03-10T00:00:00+00:00_2013-03-17T00:00:00+00:00`, no
logical date) with the request as conf; a person starts it with params `interval_start` /
`interval_end` (the data up to `interval_end` trains the candidate; default the last full day)
and `reason`, as an Airflow `manual__…` run. Never promote a worse model: that is the promise.

A rerun of the monitoring run finds its retrain run and starts no second one. To retry a FAILED
retrain, clear that retraining run (its failure released the interval's claim).

1. `read_request`: the decided interval and its reasons, from the run's conf.
2. `claim_interval`: first finishes what a killed retrain of the model left (an interrupted
   promotion, MLflow runs left RUNNING: `driftguard.retraining.retrain.recover`); then a retrain already
   decided for this interval does nothing new (short-circuit), and neither does one whose
   candidate an earlier attempt promoted before it died (`promoted` is recorded then). Each later step refreshes the
   claim's heartbeat; a claim without one for 5 minutes is taken over by the next request.
3. `train_candidate`: the contract's training window up to the interval's end (the `reference`
   period for a first champion; the rows since the change point when the trigger names one),
   matured labels only, intervals that failed critical quality checks excluded, split by time and
   rows (train / validation / out-of-time holdout); one MLflow run with the reference artifacts.
   Too few rows (or one class) is the outcome `insufficient_data`: `candidate_trained` stops the
   run there, and the next interval may try again without a cooldown.
4. `register_candidate`: a registered model version (idempotent per training run).
5. `evaluate_candidate`: candidate and `@champion` scored on the same holdout rows; the gate
   (loads and scores, metric threshold, paired bootstrap, segment guardrails, calibration, sanity,
   and servability: both timed on one fixed batch in a fresh process). The verdict and its
   numbers are tagged on the version and logged as JSON. A CI that cannot tell on too few rows
   is `insufficient evidence`, not a rejection.
6. `promote_or_not` branches to `promote_champion` (after `approve_promotion` when the contract
   asks for human approval; a reviewer's "Reject" runs `decline_promotion`) or
   `keep_as_challenger`. The alias move is the last step and is
   guarded: it aborts if `@champion` moved since the gate compared against it. It is crash-safe:
   an intent is recorded first, and a killed move is completed by the next run or `driftguard doctor`.

7. The run ends in one `outcome_*` task (`outcome_promoted`, `outcome_rejected`,
   `outcome_insufficient_evidence`, `outcome_insufficient_data`, `outcome_declined`,
   `outcome_aborted`): the grid says how the retrain ended (the run itself is a green success
   either way; Airflow 3 tasks cannot set the run's note). A run that found the interval already
   decided skips everything, these included.

`max_active_runs=1`: one retrain of a model at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Param, chain, dag, get_current_context, task
from driftguard.airflow import dag_defaults
from driftguard.airflow.dag_specs import DagSpec
from driftguard.retraining import retrain  # retrain: stdlib only at import, steps import their libraries
from driftguard.step_results import RETRAIN_OUTCOMES

log = logging.getLogger(__name__)
KIND = "retraining"


def _ctx(model: str, request: dict[str, Any]) -> retrain.RetrainContext:
    return retrain.RetrainContext.create(
        model,
        datetime.fromisoformat(request["interval_start"]),
        datetime.fromisoformat(request["interval_end"]),
        trigger=request.get("trigger"),
    )


def _step(model: str, request: dict[str, Any], step: Callable[..., dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    """Run one driftguard.retraining.retrain step for the requested interval."""
    with dag_defaults.fail_fast_on_data_errors(model, step.__name__):
        return step(_ctx(model, request), **kwargs)


def release_claim(context: Any) -> None:
    """on_failure_callback: mark the interval's retrain failed so a rerun retries it."""
    ti = context["ti"]
    request = ti.xcom_pull(task_ids="read_request")
    if not request:
        return
    try:
        retrain.fail(_ctx(ti.dag_id.split("__", 1)[1], request), f"task {ti.task_id} failed")
    except Exception:  # the claim may not exist yet; never mask the original failure
        log.exception("could not release the retrain claim")


@task
def read_request(model: str) -> dict[str, Any]:
    """The interval to retrain for and why, from the run's conf: as the monitoring run's
    `trigger_retrain` passes it (interval, reason, the monitoring `trigger`) or as a person gives it
    (params `interval_start` / `interval_end`, default the last full day, and `reason`)."""
    context = get_current_context()
    params = context["params"]
    end = params.get("interval_end") or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = end if isinstance(end, datetime) else datetime.fromisoformat(str(end))
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    start = params.get("interval_start") or (end - timedelta(days=1))
    start = start if isinstance(start, datetime) else datetime.fromisoformat(str(start))
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    request = {
        "interval_start": start.isoformat(),
        "interval_end": end.isoformat(),
        "trigger": params.get("trigger") or {"source": "manual", "summary": params.get("reason") or "manual retrain"},
    }
    log.info(
        "retrain %s for [%s, %s): %s",
        model,
        request["interval_start"],
        request["interval_end"],
        request["trigger"]["summary"][:500],
    )
    return request


@task.short_circuit(ignore_downstream_trigger_rules=True)
def claim_interval(model: str, request: dict[str, Any]) -> bool:
    return bool(_step(model, request, retrain.claim)["proceed"])


@task(retries=0)
def train_candidate(model: str, request: dict[str, Any]) -> dict[str, Any]:
    return _step(model, request, retrain.train)


@task.short_circuit(ignore_downstream_trigger_rules=False)
def candidate_trained(trained: dict[str, Any]) -> bool:
    """Too few rows to train on is an outcome (`insufficient_data`, recorded by train): stop here.
    Skips register_candidate, and the steps after it by their trigger rules, not `outcome`."""
    if trained["status"] == "insufficient_data":
        log.info("SUMMARY insufficient data: %s", trained["summary"])
        return False
    return True


@task
def register_candidate(model: str, request: dict[str, Any]) -> dict[str, Any]:
    return _step(model, request, retrain.register)


@task
def evaluate_candidate(model: str, request: dict[str, Any]) -> dict[str, Any]:
    result = _step(model, request, retrain.evaluate)
    log.info("GATE %s", result["summary"])
    return result


@task.branch
def promote_or_not(verdict: dict[str, Any], approval: bool) -> str:
    if not verdict["promote"]:
        return "keep_as_challenger"
    return "approve_promotion" if approval else "promote_champion"


@task
def promote_champion(model: str, request: dict[str, Any]) -> dict[str, Any]:
    context = get_current_context()
    answer = (
        context["ti"].xcom_pull(task_ids="approve_promotion")
        if "approve_promotion" in context["dag"].task_ids
        else None
    )
    approver = _responder(answer)
    result = _step(model, request, retrain.promote, approved_by=approver)
    log.info("SUMMARY %s: %s", result["status"], result["summary"])
    return result


@task
def decline_promotion(model: str, request: dict[str, Any]) -> dict[str, Any]:
    """A reviewer rejected a candidate the gate accepted: record it, keep it as @challenger."""
    answer = get_current_context()["ti"].xcom_pull(task_ids="approve_promotion")
    result = _step(model, request, retrain.reject_unapproved, by=_responder(answer))
    log.info("SUMMARY declined: v%s kept as @challenger", result["version"])
    return result


def _responder(answer: Any) -> str | None:
    """Who answered the approval (Airflow's HITL result), for the promotion history."""
    user = (answer or {}).get("responded_by_user") if isinstance(answer, dict) else None
    if isinstance(user, dict):
        return f"approved in Airflow by {user.get('name') or user.get('id')}"
    return None


@task
def keep_as_challenger(model: str, request: dict[str, Any]) -> dict[str, Any]:
    result = _step(model, request, retrain.promote)
    log.info("SUMMARY %s: %s", result["status"], result["summary"])
    return result


DECIDING_STEPS = ("promote_champion", "keep_as_challenger", "decline_promotion", "train_candidate")
"""Whose result says the outcome, the last step first (train_candidate: insufficient data)."""


@task.branch(trigger_rule="none_failed_min_one_success")
def outcome() -> list[str]:
    """The `outcome_*` task that names how this retrain ended, for Airflow's grid (never fails:
    its failure callback would mark a decided retrain failed)."""
    context = get_current_context()
    steps = [t for t in DECIDING_STEPS if t in context["dag"].task_ids]
    chosen = retrain.outcome_task_id([context["ti"].xcom_pull(task_ids=t) for t in steps])
    log.info("OUTCOME %s", chosen.removeprefix("outcome_") if chosen else "unknown")
    return [chosen] if chosen else []


def build_retraining_dag(spec: DagSpec) -> None:
    approval = spec.require_approval

    @dag(
        dag_id=dag_defaults.dag_id("retrain", spec.name),
        schedule=None,  # started by the monitoring run's trigger_retrain, or by a person
        start_date=pendulum.instance(dag_defaults.start_date(spec)),
        catchup=False,
        max_active_runs=1,
        default_args={
            **(args := dag_defaults.default_args(spec)),
            "on_failure_callback": [release_claim, *args["on_failure_callback"]],
        },
        tags=dag_defaults.tags(KIND, spec),
        doc_md=dag_defaults.doc_md(__doc__, spec, KIND),
        params={
            "interval_start": Param(None, type=["null", "string"], description="ISO start of the decided interval"),
            "interval_end": Param(None, type=["null", "string"], description="ISO end: training cut-off"),
            "reason": Param("manual retrain", type="string"),
        },
    )
    def retraining() -> None:
        m = spec.name
        request = read_request(m)
        verdict = evaluate_candidate(m, request)
        trained = train_candidate(m, request)
        chain(claim_interval(m, request), trained, candidate_trained(trained), register_candidate(m, request), verdict)
        branch = promote_or_not(verdict, approval)
        promote = promote_champion(m, request)
        keep = keep_as_challenger(m, request)
        ended = outcome()
        chain(trained, ended)  # not after candidate_trained: its short-circuit skips what follows it directly
        chain([promote, keep], ended)
        chain(ended, [EmptyOperator(task_id=f"outcome_{name}") for name in RETRAIN_OUTCOMES])
        if approval:
            from airflow.providers.standard.operators.hitl import HITLBranchOperator

            # A branch, not ApprovalOperator: "Reject" must run a task that records the decision.
            approve = HITLBranchOperator(
                task_id="approve_promotion",
                subject=f"Promote a new {m} champion?",
                body="{{ ti.xcom_pull(task_ids='evaluate_candidate')['summary'] }}",
                options=["Approve", "Reject"],
                options_mapping={"Approve": "promote_champion", "Reject": "decline_promotion"},
            )
            declined = decline_promotion(m, request)
            branch >> approve >> [promote, declined]
            declined >> ended
        else:
            branch >> promote
        branch >> keep

    retraining()


_specs = dag_defaults.dag_specs()
for _spec in _specs.specs.values():
    build_retraining_dag(_spec)
