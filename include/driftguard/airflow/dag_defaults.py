"""What every Driftguard DAG shares: ids, default_args, tags, docs, schedule bounds.

DAG files (monitoring, retraining) build their DAGs from each contract's DagSpec with these
helpers, so owners, retries, tags and the runbook link are decided in one place. Plain dicts
and strings: nothing here imports Airflow or the pydantic contract models at module level (DAG
files import this at every parse, and the library must stay usable without Airflow).
`timetable()` imports the Task SDK lazily; `dag_specs()` validates contracts only when they
changed (see dag_specs.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from driftguard.airflow.dag_specs import DagSpec, SpecResult, load_specs, validate_folder
from driftguard.settings import get_settings

if TYPE_CHECKING:  # pragma: no cover
    from airflow.sdk.bases.timetable import BaseTimetable

    from driftguard.contract import LoadResult, ModelContract

RUNBOOK_URL = "/driftguard/runbook"  # driftguard.reporting.runbook.DEFAULT_URL: the page the plugin serves
TAG = "driftguard"
DEFAULT_RETRIES = 2
DEFAULT_RETRY_DELAY = timedelta(minutes=5)

# Environment knobs (all optional). Production leaves them unset.
ENV_RETRY_DELAY = "DRIFTGUARD_RETRY_DELAY"  # e.g. "10s": how long Airflow waits before a retry
ENV_SCHEDULE_END = "DRIFTGUARD_SCHEDULE_END"  # ISO date: no scheduled runs after it (the demo replays 2013)


def dag_id(kind: str, model: str) -> str:
    """`driftguard_monitor__flight_delay`: the kind first so the UI groups DAGs by purpose."""
    return f"driftguard_{kind}__{model}"


def owner(spec: DagSpec | ModelContract) -> str:
    return ", ".join(spec.owners)


def retry_delay() -> timedelta:
    """Transient failures (database hiccups) are retried after this; data errors never are."""
    raw = os.environ.get(ENV_RETRY_DELAY)
    if not raw:
        return DEFAULT_RETRY_DELAY
    from driftguard.contract import parse_duration

    return parse_duration(raw)


def default_args(spec: DagSpec) -> dict[str, Any]:
    """Owners, retries, and a `pipeline_failure` alert to the contract's routes when a task fails
    for good (the notifier is Airflow's: imported here, at DAG parse time, never by the library)."""
    from driftguard.airflow.notifier import DriftguardNotifier

    return {
        "owner": owner(spec),
        "retries": DEFAULT_RETRIES,
        "retry_delay": retry_delay(),
        "on_failure_callback": [DriftguardNotifier(model=spec.name)],
    }


def tags(kind: str, spec: DagSpec) -> list[str]:
    return [TAG, kind, spec.name]


def start_date(spec: DagSpec | ModelContract) -> datetime:
    """The contract's start date as midnight UTC (a stdlib datetime; pendulum in the DAG file)."""
    d = spec.start_date
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def schedule_end() -> datetime | None:
    """Optional end of scheduling, from DRIFTGUARD_SCHEDULE_END (a date or datetime, UTC).

    Why: the demo replays 2013 with a running scheduler; without an end date, unpausing a
    catchup=False DAG makes the scheduler also create a run for the current (empty) week."""
    raw = os.environ.get(ENV_SCHEDULE_END, "").strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{ENV_SCHEDULE_END}={raw!r} is not an ISO date like 2013-12-31") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def timetable(spec: DagSpec) -> BaseTimetable | str:
    """Data-interval semantics for the contract's cron schedule.

    A run covers [data_interval_start, data_interval_end) and starts after the interval ends,
    which is what "monitor last week's predictions" means. Airflow 3 defaults a cron string to
    CronTriggerTimetable, whose interval is a single instant (start == end): an empty window."""
    if spec.schedule == "@once":
        return "@once"
    from airflow.sdk import CronDataIntervalTimetable

    return CronDataIntervalTimetable(spec.schedule, timezone="UTC")


def doc_md(module_doc: str | None, spec: DagSpec, kind: str) -> str:
    """The DAG's documentation page: what the DAG does, what the model is, where the runbook is."""
    parts = [(module_doc or "").strip()]
    parts.append(f"### Model `{spec.name}` ({spec.task})")
    if spec.description.strip():
        parts.append(spec.description.strip())
    parts.append(f"Owners: {owner(spec)}. Schedule: `{spec.schedule}` from {spec.start_date.isoformat()} (UTC).")
    parts.append(f"Runbook: [{RUNBOOK_URL}]({RUNBOOK_URL}); model runbook: {spec.runbook_url}.")
    return "\n\n".join(p for p in parts if p)


# --------------------------------------------------------------------------- contracts at parse and run time


def dag_specs() -> SpecResult:
    """What the DAG files need from every contract in the models folder (DRIFTGUARD_MODELS_DIR),
    with the problems of broken ones; revalidated only when a contract file changed.

    A missing folder is reported as a problem, not silently treated as "no models"."""
    settings = get_settings()
    return load_specs(settings.models_dir, settings.home / "cache" / "dag_specs.json")


def model_contracts() -> LoadResult:
    """Every contract in the models folder, validated (pydantic), valid and broken apart."""
    return validate_folder(get_settings().models_dir)


class BrokenContracts(ValueError):
    """Raised by dags/contract_errors.py so Airflow shows broken contracts as one import error."""

    def __init__(self, problems: list[tuple[str, str, str]], models_dir: str):
        self.problems = problems
        files = sorted({file for file, _, _ in problems})
        self.headline = (
            f"{len(files)} broken model contract file(s) in {models_dir}: their DAGs are not loaded "
            f"(every other model's DAGs are). Fix each line below; runbook: {RUNBOOK_URL}"
        )
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join([self.headline, *(f"{file}: {where}: {message}" for file, where, message in self.problems)])


def broken_contracts(result: SpecResult) -> BrokenContracts | None:
    return BrokenContracts(result.problems, str(get_settings().models_dir)) if result.problems else None


# --------------------------------------------------------------------------- task failures

# Bad data or a bad contract will not fix itself: retrying only delays the alert.
DATA_ERRORS: tuple[type[Exception], ...] = (ValueError, LookupError)


def is_data_error(exc: BaseException) -> bool:
    """Contract and data problems (retrying cannot help) versus transient ones (it can).

    driftguard.sources errors are data errors except a failed connection. The module is looked
    up, not imported: it pulls in pandas, and if it was never imported it raised nothing."""
    sources = sys.modules.get("driftguard.sources")
    if sources is not None and isinstance(exc, sources.SourceError):
        return not isinstance(exc, sources.SourceConnectionError)
    return isinstance(exc, DATA_ERRORS)


@contextmanager
def fail_fast_on_data_errors(model: str, step: str) -> Iterator[None]:
    """Turn data/contract errors into AirflowFailException (no retries); let others retry."""
    try:
        yield
    except Exception as exc:
        if not is_data_error(exc):
            raise
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"model {model!r}, step {step}: {type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------- retrain requests


RETRAIN_REQUEST_TRIGGER_KEYS = ("triggers", "change_point", "change_basis", "change_runs", "baseline_metric")
"""What a monitoring run's decision adds to a retrain request's trigger (the policy's `retrain_request`)."""


def retrain_asset_name(model: str) -> str:
    return f"driftguard_retrain_request__{model}"


def retrain_asset(model: str) -> Any:
    """The Asset a monitoring run updates when it decides to retrain: lineage (which run asked,
    with what reasons, in the Asset's event extra). Nothing is scheduled on it: the monitoring run
    triggers the retraining run itself, named by `retrain_run_id`. Imported lazily: this module
    stays Airflow-free at import time."""
    from airflow.sdk import Asset

    return Asset(
        name=retrain_asset_name(model),
        uri=f"x-driftguard://models/{model}/retrain-request",  # x-: a custom scheme, no provider normalizer
        group="driftguard",
    )


def retrain_run_id(start: datetime | str, end: datetime | str) -> str:
    """The run id of the retraining run a monitoring run triggers for its interval [start, end):
    `retrain__2013-03-10T00:00:00+00:00_2013-03-17T00:00:00+00:00`, UTC ISO timestamps as Airflow
    names its own runs (`scheduled__<interval start>`).

    Why one id per interval: Airflow refuses a second run with the same id, so a rerun or clear of
    the monitoring run finds the retrain already there and starts none (the trigger is skipped)."""
    return f"retrain__{_utc(start).isoformat()}_{_utc(end).isoformat()}"


def retrain_conf(start: datetime, end: datetime, published: dict[str, Any], requested_by: str) -> dict[str, Any]:
    """The conf of the retraining run a monitoring run triggers: the decided interval, who asked,
    and the trigger (the policy's summary and report, and what its decision adds: the triggers that
    counted, a change point, the pre-change metric level). The retraining DAG reads it as it reads
    a person's params; the Asset event's extra is the same request."""
    request = published.get("retrain_request") or {}
    return {
        "interval_start": _utc(start).isoformat(),
        "interval_end": _utc(end).isoformat(),
        "reason": f"retrain requested by {requested_by}",
        "trigger": {
            "source": "monitoring",
            "summary": published["summary"][-1500:],
            "report": published.get("report"),
            **{k: request[k] for k in RETRAIN_REQUEST_TRIGGER_KEYS if k in request},
        },
    }


def interval_from_context(context: Any) -> tuple[datetime, datetime]:
    """The data interval of a monitoring run, as stdlib UTC datetimes (the library's currency)."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None or end is None:
        raise ValueError("this run has no data interval: trigger it with a logical date")
    return _utc(start), _utc(end)


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)
