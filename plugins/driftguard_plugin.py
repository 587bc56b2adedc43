"""Airflow 3 plugin: Driftguard's pages inside the Airflow UI, behind Airflow's login.

Registers the FastAPI app of driftguard.ui.app under /driftguard with Airflow's user dependency on
every route but Evidently's vendor bundle and font, which sandboxed report pages load without the
cookie (a plugin app has no authentication otherwise), a "Driftguard" entry in the Browse
menu, a "Driftguard" tab on DAG pages, and "Extra links" on Driftguard's task instances (the
run's drift and data-quality reports, the model page, a retraining run's candidate page; the
URLs come from driftguard.ui.extra_links). Every Airflow component imports plugins, so this
module stays light: FastAPI and the history-store code only, no pandas/MLflow/Evidently.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink
from driftguard.settings import get_settings
from driftguard.ui import extra_links
from driftguard.ui.app import create_app
from fastapi import Request

if TYPE_CHECKING:  # pragma: no cover
    from airflow.sdk.types import TaskInstanceKey

URL_PREFIX = "/driftguard"
CANDIDATE_TASK = "register_candidate"
"""The retraining task whose return value names the registered version ({"version": ...})."""


async def airflow_user(request: Request) -> Any:
    """Airflow's own get_user (bearer token first, else the UI's JWT cookie): 401/403 without one.

    Imported on the first request, so that schedulers and workers loading plugins never pay for
    Airflow's API security module."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)
    return await get_user(request, _oauth_token=None, bearer_credentials=credentials)


def _root() -> str:
    """The plugin's path under Airflow's base URL (AIRFLOW__API__BASE_URL), root-relative."""
    from airflow.configuration import conf

    return extra_links.mount_path(conf.get("api", "base_url", fallback=""), URL_PREFIX)


def _data_interval(dag_id: str, run_id: str) -> tuple[datetime | None, datetime | None]:
    """The run's data interval from Airflow's metadata DB (the API server asks for links there)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.execute(
            select(DagRun.data_interval_start, DagRun.data_interval_end).where(
                DagRun.dag_id == dag_id, DagRun.run_id == run_id
            )
        ).first()
    return (row[0], row[1]) if row else (None, None)


def _registered_version(dag_id: str, run_id: str) -> Any:
    """The version the retraining run's register_candidate returned, or None before it ran."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=run_id, key="return_value", dag_ids=dag_id, task_ids=CANDIDATE_TASK)
        ).first()
        value = None if row is None else XComModel.deserialize_value(row)
    return value.get("version") if isinstance(value, dict) else None


class _RunReportLink(BaseOperatorLink):
    """A monitoring run's report file; no button on other DAGs or before publish_results wrote it."""

    report: ClassVar[str] = ""

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        if extra_links.parse_dag_id(ti_key.dag_id) is None:
            return ""  # not a Driftguard DAG: spare the metadata DB the query
        start, end = _data_interval(ti_key.dag_id, ti_key.run_id)
        settings = get_settings()
        url = extra_links.report_url(_root(), settings.reports_dir, ti_key.dag_id, start, end, self.report)
        return url or ""


class DriftReportLink(_RunReportLink):
    name = extra_links.DRIFT_REPORT
    report = extra_links.REPORT_LINKS[extra_links.DRIFT_REPORT]


class QualityReportLink(_RunReportLink):
    name = extra_links.QUALITY_REPORT
    report = extra_links.REPORT_LINKS[extra_links.QUALITY_REPORT]


class ModelPageLink(BaseOperatorLink):
    name = extra_links.MODEL_PAGE

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        return extra_links.model_page_url(_root(), ti_key.dag_id) or ""


class CandidatePageLink(BaseOperatorLink):
    name = extra_links.CANDIDATE_PAGE

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        parsed = extra_links.parse_dag_id(ti_key.dag_id)
        if parsed is None or parsed.kind != extra_links.RETRAIN_KIND:
            return ""
        version = _registered_version(ti_key.dag_id, ti_key.run_id)
        return extra_links.candidate_page_url(_root(), ti_key.dag_id, version) or ""


class DriftguardPlugin(AirflowPlugin):
    name = "driftguard"
    fastapi_apps = [
        {
            "app": create_app(get_settings(), auth_dependency=airflow_user),
            "url_prefix": URL_PREFIX,
            "name": "Driftguard",
        }
    ]
    # Global: Airflow's API server resolves them per task instance (no XCom, no DAG change);
    # every link is empty, so hidden, outside Driftguard's DAGs.
    global_operator_extra_links = [DriftReportLink(), QualityReportLink(), ModelPageLink(), CandidatePageLink()]
    external_views = [
        {
            "name": "Driftguard",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "driftguard",
        },
        {
            "name": "Driftguard",
            "href": f"{URL_PREFIX}/dags/{{DAG_ID}}",
            "destination": "dag",
            "url_route": "driftguard_dag",
        },
    ]
