"""
### Driftguard monitoring

One DAG per valid model contract in the models folder (`DRIFTGUARD_MODELS_DIR`, default
`include/models/`). Each run judges one data interval `[data_interval_start, data_interval_end)`
of the model's production feature log, after the interval has ended, and decides with reasons
whether the model needs retraining:

1. `extract_window`: the interval's log and the labels that have matured by its end.
2. `load_reference` (beside `extract_window`): the champion's training reference (its MLflow
   run), or the contract's bootstrap window before a champion exists.
3. `score_window`: the logged prediction, or the `@champion`'s scores when the log has none.
4. Three independent checks, side by side:
   - `check_quality`: the Great Expectations suite generated from the contract. Critical
     failures block retraining (bad data never triggers or feeds a retrain).
   - `detect_drift`: Evidently, per feature with the contract's method and threshold, plus
     prediction and target drift.
   - `evaluate_model`: realized metrics on matured labels (overall, per segment), proxy
     metrics before.
   - beside them, `shadow_challenger`: a challenger whose gate was `insufficient evidence`
     scores the same rows on features only (disagreement, prediction shift); its matured
     labelled rows join its paired evidence, which the gate judges again (docs/gate.md).
5. `decide_retrain`: the retrain policy; every trigger and guard is recorded with its numbers.
   It waits for `shadow_challenger`: a retrain is held while a challenger shadows.
6. `publish_results`: history tables (one upsert per interval: reruns replace), the HTML reports,
   the model's index page, alerts to the owners.
7. `retrain_or_not` branches to `request_retrain` or `no_retrain`. `request_retrain` records the
   request (interval, reasons, change point) on the model's retrain-request Asset, for lineage;
   `trigger_retrain` then starts `driftguard_retrain__<model>` with that request as its conf and
   the run id `retrain__<interval start>_<interval end>` (UTC ISO, as Airflow names runs), no
   logical date. If a retraining run with that id exists (a rerun or clear of this run), the
   trigger is skipped and no second retrain starts; a FAILED retrain is retried by clearing it
   in the retraining DAG, not by clearing this run. Its "Triggered DAG" link opens the retrain.
8. `promote_shadow`: when the shadow evidence cleared the gate, the challenger is promoted
   through the guarded alias move (nothing moves if `@champion` moved meanwhile).

XComs carry small summaries; frames stay in the run's own work folder (keyed by the run id).
Nothing reaches the history tables before `publish_results`, and the reports appear only after it.
A broken contract gets no DAG here; it shows as an import error of `contract_errors.py`. Data and
contract errors fail a task at once (retrying cannot fix them); transient errors (a database
restart) are retried.
"""

from __future__ import annotations

import logging
from typing import Any

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, get_current_context, task
from driftguard.airflow import dag_defaults
from driftguard.airflow.dag_specs import DagSpec
from driftguard.monitoring import monitor  # monitor: stdlib only at import, steps import their libraries

log = logging.getLogger(__name__)
KIND = "monitoring"


def _run_step(model: str, step: monitor.Step) -> dict[str, Any]:
    """Run one monitor step for this run's interval, in the run's own work folder."""
    with dag_defaults.fail_fast_on_data_errors(model, step.name):
        context = get_current_context()
        start, end = dag_defaults.interval_from_context(context)
        ctx = monitor.RunContext.create(model, start, end, run_id=context["run_id"])
        result = step.run(ctx)
    if step.run is monitor.publish:
        log.info("SUMMARY %s", result["summary"])
    return result


def _monitor_task(step: monitor.Step) -> Any:
    """A TaskFlow task running one monitor step; task ids read as the flow in the module doc."""

    def run(model: str) -> dict[str, Any]:
        return _run_step(model, step)

    run.__doc__ = step.doc
    return task(task_id=step.task_id)(run)


TASKS = {step.run: _monitor_task(step) for step in monitor.FLOW}


@task.branch
def retrain_or_not(published: dict[str, Any]) -> str:
    return "request_retrain" if published["retrain"] else "no_retrain"


@task
def no_retrain(published: dict[str, Any]) -> None:
    log.info("no retrain: %s", published["summary"])


def build_monitoring_dag(spec: DagSpec) -> None:
    """Declare the monitoring DAG of one model (registered with Airflow on creation)."""
    asset = dag_defaults.retrain_asset(spec.name)

    @task(outlets=[asset])
    def request_retrain(published: dict[str, Any]) -> dict[str, Any]:
        """The retrain request (the retraining run's conf), also put on the retrain-request Asset's
        event for lineage."""
        context = get_current_context()
        start, end = dag_defaults.interval_from_context(context)
        requested_by = f"{context['dag'].dag_id} {context['run_id']}"
        conf = dag_defaults.retrain_conf(start, end, published, requested_by)
        run_id = dag_defaults.retrain_run_id(start, end)
        context["outlet_events"][asset].extra = {"model": spec.name, "retrain_run_id": run_id, **conf}
        log.info("retrain requested for %s as of %s: %s", spec.name, end, published["summary"])
        return conf

    @dag(
        dag_id=dag_defaults.dag_id("monitor", spec.name),
        schedule=dag_defaults.timetable(spec),
        start_date=pendulum.instance(dag_defaults.start_date(spec)),
        end_date=dag_defaults.schedule_end(),
        catchup=spec.catchup,
        max_active_runs=1,  # the policy reads the previous runs' history
        default_args=dag_defaults.default_args(spec),
        tags=dag_defaults.tags(KIND, spec),
        doc_md=dag_defaults.doc_md(__doc__, spec, KIND),
        user_defined_macros={"retrain_run_id": dag_defaults.retrain_run_id},
    )
    def monitoring() -> None:
        steps = {step.run: TASKS[step.run](spec.name) for step in monitor.FLOW}
        for step in monitor.FLOW:  # the edges of monitor.FLOW, nothing else
            for upstream in step.upstream:
                steps[upstream] >> steps[step.run]
        published = steps[monitor.publish]
        request = request_retrain(published)
        retrain_or_not(published) >> [request, no_retrain(published)]
        TriggerDagRunOperator(
            task_id="trigger_retrain",
            trigger_dag_id=dag_defaults.dag_id("retrain", spec.name),
            trigger_run_id="{{ retrain_run_id(data_interval_start, data_interval_end) }}",
            conf=request,  # the XComArg: request_retrain >> trigger_retrain
            logical_date=None,  # the retraining DAG has no schedule: the interval is in the id and conf
            skip_when_already_exists=True,  # a rerun of this interval starts no second retrain
            openlineage_inject_parent_info=False,  # the conf is the request, nothing else
        )

    monitoring()


_specs = dag_defaults.dag_specs()
for _file, _field, _message in _specs.problems:
    log.warning("no monitoring DAG for %s (broken contract, see contract_errors.py): %s: %s", _file, _field, _message)
for _spec in _specs.specs.values():
    build_monitoring_dag(_spec)
