"""Airflow adapter: a notifier DAGs use as `on_failure_callback` to send a Driftguard alert.

The only module of the library that imports Airflow; the rest stays importable without it.
Usage in a DAG file::

    from driftguard.airflow.notifier import DriftguardNotifier
    @dag(..., default_args={"on_failure_callback": DriftguardNotifier(model="flight_delay")})

The alert goes through `driftguard.reporting.alerts.dispatch` with the model contract's alert routes and
the same de-duplication: the same task failing with the same exception type is one alert per
`repeat_after`, so a broken nightly task does not page on every retry.

Before alerting, a `pipeline_failure` notifier records the failure in the history store's
dg_failures table (model, DAG, run, task, try, data interval, error): the health board at
``/driftguard/`` shows the model as "run failed" with a link to the task's log.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from driftguard.settings import get_settings

if TYPE_CHECKING:  # imported when a failure is notified, not when a DAG file is parsed
    from driftguard.contract import AlertConfig
    from driftguard.reporting.alerts import Alert
    from driftguard.store import FailureRecord

log = logging.getLogger(__name__)


class DriftguardNotifier(BaseNotifier):
    """Send an Alert (default: a critical `pipeline_failure`) when a task or DAG run fails.

    `title` and `body` are Jinja templates rendered with the Airflow context; by default
    they name the DAG, task, run and exception. Alert routes come from `alert_config`, else from
    the model's contract in settings.models_dir. Never raises: a broken alert path is logged."""

    template_fields = ("title", "body")

    def __init__(
        self,
        model: str,
        *,
        kind: str = "pipeline_failure",
        severity: str = "critical",
        title: str | None = None,
        body: str | None = None,
        alert_config: AlertConfig | None = None,
        history_url: str | None = None,
    ):
        super().__init__()
        self.model = model
        self.kind = kind
        self.severity = severity
        self.title = title or ""
        self.body = body or ""
        self.alert_config = alert_config
        self.history_url = history_url

    def _config(self) -> AlertConfig:
        from driftguard.contract import AlertConfig, ContractError, load_contract

        if self.alert_config is not None:
            return self.alert_config
        path = get_settings().models_dir / f"{self.model}.yaml"
        try:
            return load_contract(path).alerts
        except ContractError as exc:
            log.error("alert routes for %s unreadable (%s): falling back to the log route only", self.model, exc)
            return AlertConfig()

    def build_alert(self, context: Mapping[str, Any]) -> Alert:
        """Alert from the Airflow context of a task (`ti`, `exception`) or DAG run (`dag_run`, `reason`)."""
        from driftguard.reporting.alerts import Alert

        ti = context.get("ti") or context.get("task_instance")
        dag_run = context.get("dag_run")
        dag = context.get("dag")
        dag_id = getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None) or getattr(dag, "dag_id", "?")
        task_id = getattr(ti, "task_id", None)
        run_id = getattr(ti, "run_id", None) or getattr(dag_run, "run_id", None) or context.get("run_id")
        exception = context.get("exception")
        error = type(exception).__name__ if exception is not None else str(context.get("reason") or "failed")
        where = f"{dag_id}.{task_id}" if task_id else str(dag_id)
        title = self.title or f"{where} failed ({error})"
        lines = [f"DAG {dag_id}, run {run_id}" + (f", task {task_id}" if task_id else "")]
        try_number = getattr(ti, "try_number", None)
        if try_number is not None:
            lines.append(f"try {try_number}")
        if exception is not None:
            lines.append(f"{type(exception).__name__}: {exception}")
        if self.body:
            lines.append(self.body)
        log_url = getattr(ti, "log_url", None)
        return Alert(
            model=self.model,
            kind=self.kind,
            severity=self.severity,
            title=title,
            body="\n".join(lines),
            report_path=log_url,
            runbook_url=None,
            state=f"{where}:{error}",
        )

    def build_failure(self, context: Mapping[str, Any], now: datetime) -> FailureRecord:
        """The dg_failures row of a failed task (or DAG run) from its Airflow context."""
        from driftguard.store import FailureRecord

        ti = context.get("ti") or context.get("task_instance")
        dag_run = context.get("dag_run")
        dag = context.get("dag")
        exception = context.get("exception")
        if exception is not None:
            error = f"{type(exception).__name__}: {exception}"
        else:
            error = str(context.get("reason") or "failed")
        start = context.get("data_interval_start") or getattr(dag_run, "data_interval_start", None)
        end = context.get("data_interval_end") or getattr(dag_run, "data_interval_end", None)
        return FailureRecord(
            model=self.model,
            dag_id=str(getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None) or getattr(dag, "dag_id", "?")),
            run_id=str(getattr(ti, "run_id", None) or getattr(dag_run, "run_id", None) or context.get("run_id") or "?"),
            task_id=str(getattr(ti, "task_id", None) or ""),
            try_number=getattr(ti, "try_number", None),
            interval_start=_utc(start),
            interval_end=_utc(end),
            error=error,
            failed_at=now,
        )

    def notify(self, context: Mapping[str, Any]) -> None:
        from driftguard.reporting.alerts import dispatch

        now = datetime.now(UTC)
        store = None
        try:
            from driftguard.store import HistoryStore

            store = HistoryStore(self.history_url or get_settings().history_url)
        except Exception as exc:
            log.error("history store unavailable for failure recording and alert de-duplication: %s", exc)
        if store is not None and self.kind == "pipeline_failure":
            try:
                store.record_failure(self.build_failure(context, now))
            except Exception as exc:  # the alert below must still go out
                log.error("could not record the failure of %s in the history store: %s", self.model, exc)
        try:
            alert = self.build_alert(context)
            config = self._config()
            if alert.runbook_url is None:
                alert = dataclasses.replace(alert, runbook_url=config.runbook_url)
            dispatch(alert, config, store=store, now=now)
        except Exception:
            log.exception("Driftguard failure notifier for %s could not send its alert", self.model)


def _utc(value: Any) -> datetime | None:
    """A context datetime (pendulum, stdlib or ISO text) as stdlib tz-aware UTC; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if getattr(value, "tzinfo", None) is None:
        return None
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)
