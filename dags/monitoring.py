"""
### Driftguard monitoring

One DAG per valid model contract in the models folder (`DRIFTGUARD_MODELS_DIR`, default
`include/models/`). Each run checks one data interval `[data_interval_start, data_interval_end)`
of the model's production feature log, after the interval has ended:

1. `extract_window` reads the interval from the feature log and returns its counts
   (an XCom of a few numbers; the rows never go through XCom).
2. `log_summary` writes the counts to the task log.

A broken contract gets no DAG here; it shows as an import error of `contract_errors.py`,
naming the file, the field and the problem. Data and contract errors fail a task at once
(retrying cannot fix them); transient errors (a database restart) are retried.
"""

from __future__ import annotations

import logging
from typing import Any

import pendulum
from airflow.sdk import dag, task
from driftguard import dag_defaults
from driftguard.contract import ModelContract

log = logging.getLogger(__name__)
KIND = "monitoring"


@task(multiple_outputs=False)
def extract_window(
    model: str,
    data_interval_start: pendulum.DateTime | None = None,
    data_interval_end: pendulum.DateTime | None = None,
) -> dict[str, Any]:
    """Read this run's interval of the feature log; return its summary (counts, never rows)."""
    from driftguard.sources import read_window

    with dag_defaults.fail_fast_on_data_errors(model, "extract_window"):
        if data_interval_start is None or data_interval_end is None:
            raise ValueError("this run has no data interval: trigger it with a logical date")
        contract = dag_defaults.load_model_contract(model)
        frame, stats = read_window(contract, data_interval_start, data_interval_end)
    summary = stats.to_dict()
    log.info(
        "model %s: read %d rows of [%s, %s) from the feature log; summary %s",
        model,
        len(frame),
        data_interval_start,
        data_interval_end,
        summary,
    )
    return summary


@task
def log_summary(model: str, summary: dict[str, Any]) -> None:
    """One readable line per run, so the task log answers "what did this run see?"."""
    details = ", ".join(f"{k}={v}" for k, v in sorted(summary.items()))
    log.info("model %s monitoring summary: %s", model, details)


def build_monitoring_dag(contract: ModelContract) -> None:
    """Declare the monitoring DAG of one model (registered with Airflow on creation)."""

    @dag(
        dag_id=dag_defaults.dag_id("monitor", contract.name),
        schedule=dag_defaults.timetable(contract),
        start_date=pendulum.instance(dag_defaults.start_date(contract)),
        end_date=dag_defaults.schedule_end(),
        catchup=contract.catchup,
        max_active_runs=1,
        default_args=dag_defaults.default_args(contract),
        tags=dag_defaults.tags(KIND, contract),
        doc_md=dag_defaults.doc_md(__doc__, contract, KIND),
    )
    def monitoring() -> None:
        summary = extract_window(model=contract.name)
        log_summary(model=contract.name, summary=summary)

    monitoring()


_contracts = dag_defaults.model_contracts()
for _path, _error in sorted(_contracts.errors.items()):
    log.warning("no monitoring DAG for %s (broken contract, see contract_errors.py): %s", _path, _error)
for _contract in _contracts.contracts.values():
    build_monitoring_dag(_contract)
