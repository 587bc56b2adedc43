"""
### Driftguard rollback

Triggered by hand. Moves `@champion` back to `@previous_champion` in the MLflow registry and
records who, what, when and why in the promotion history (MLflow keeps no alias history).
The same as `driftguard rollback <model> --reason "..."` on the command line. The rolled-back
version is tagged `driftguard.rolled_back`; `@previous_champion` is cleared so a second rollback
cannot flip back to it. It refuses, changing nothing, when `@previous_champion` is missing or is
`@champion` itself. Crash-safe: a rollback killed half-way is finished by the next promote or
rollback, the next retrain, or `driftguard doctor`.
"""

from __future__ import annotations

import logging
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task
from driftguard.airflow import dag_defaults
from driftguard.airflow.dag_specs import DagSpec

log = logging.getLogger(__name__)
KIND = "rollback"


@task(retries=0)
def rollback_champion(model: str) -> dict[str, Any]:
    from driftguard.retraining import registry
    from driftguard.settings import get_settings
    from driftguard.store import HistoryStore

    context = get_current_context()
    settings = get_settings()
    reason = context["params"]["reason"]
    actor = f"airflow:{context['dag_run'].run_id}"
    with dag_defaults.fail_fast_on_data_errors(model, "rollback"):
        frm, to = registry.rollback(
            model,
            store=HistoryStore(settings.history_url),
            actor=actor,
            reason=reason,
            tracking_uri=settings.mlflow_tracking_uri,
        )
    log.info("SUMMARY rolled %s back: @champion v%s -> v%s (%s)", model, frm, to, reason)
    return {"from_version": frm, "to_version": to, "reason": reason}


def build_rollback_dag(spec: DagSpec) -> None:
    @dag(
        dag_id=dag_defaults.dag_id("rollback", spec.name),
        schedule=None,
        start_date=pendulum.instance(dag_defaults.start_date(spec)),
        catchup=False,
        max_active_runs=1,
        default_args=dag_defaults.default_args(spec),
        tags=dag_defaults.tags(KIND, spec),
        doc_md=dag_defaults.doc_md(__doc__, spec, KIND),
        # No default: the person who rolls back says why (recorded in dg_promotions). The version it
        # restores is shown on the model's rollback page before anyone triggers this.
        params={
            "reason": Param(
                type="string",
                minLength=3,
                title="Reason",
                description=(
                    f"Why {spec.name} is rolled back (recorded with your name). The version that becomes "
                    f"@champion is shown at /driftguard/models/{spec.name}/rollback."
                ),
            )
        },
    )
    def rollback() -> None:
        rollback_champion(spec.name)

    rollback()


for _spec in dag_defaults.dag_specs().specs.values():
    build_rollback_dag(_spec)
