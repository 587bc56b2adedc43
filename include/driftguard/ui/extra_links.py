"""Where a Driftguard task's "Extra links" in Airflow point: the run's reports, model and candidate pages.

Airflow asks for these links in its API server, for one task instance at a time
(``plugins/driftguard_plugin.py`` registers them as global operator extra links). Everything
here is a pure function of the task's DAG id, its run's data interval or registered version,
and the settings, so the URLs are tested without Airflow and the plugin stays a thin adapter.

A link is ``None`` (Airflow then shows no button) when it does not apply: a DAG that is not
Driftguard's, a run whose reports are not written yet (they appear at ``publish_results``), a
retraining run that registered no candidate. A report link is only given when the file exists,
so a button never leads to a 404.

URLs are root-relative (the path of ``AIRFLOW__API__BASE_URL`` plus the plugin's mount): they
open on whatever host the on-call engineer reached Airflow through, with its login cookie.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

from driftguard.reporting import reports

DAG_ID = re.compile(r"^driftguard_(?P<kind>[a-z]+)__(?P<model>.+)$")
"""DAG ids built by driftguard.airflow.dag_defaults.dag_id: ``driftguard_<kind>__<model>``."""
MONITOR_KIND, RETRAIN_KIND = "monitor", "retrain"

DRIFT_REPORT = "Drift report"
QUALITY_REPORT = "Data quality report"
MODEL_PAGE = "Model page"
CANDIDATE_PAGE = "Candidate page"
REPORT_LINKS = {DRIFT_REPORT: "drift", QUALITY_REPORT: "quality"}
"""Link name -> the run's report file (a key of reports.REPORT_FILES)."""


@dataclass(frozen=True)
class DagModel:
    """What a Driftguard DAG id says: which DAG kind, for which model."""

    kind: str
    model: str


def parse_dag_id(dag_id: str) -> DagModel | None:
    """The kind and model of a Driftguard DAG, or None for anyone else's DAG."""
    m = DAG_ID.match(dag_id or "")
    return DagModel(m["kind"], m["model"]) if m else None


def mount_path(base_url: str, mount: str = "/driftguard") -> str:
    """The plugin's path under Airflow's base URL (``http://h:8080/airflow`` -> ``/airflow/driftguard``)."""
    base = urlsplit(base_url or "").path.rstrip("/")
    return f"{base}{mount}"


def model_page_url(root: str, dag_id: str) -> str | None:
    """The Driftguard model page of a monitoring or retraining DAG's model."""
    parsed = parse_dag_id(dag_id)
    if parsed is None or parsed.kind not in (MONITOR_KIND, RETRAIN_KIND):
        return None
    return f"{root}/models/{quote(parsed.model, safe='')}"


def report_url(
    root: str, reports_dir: Path, dag_id: str, start: datetime | None, end: datetime | None, key: str
) -> str | None:
    """URL of a monitoring run's report file (``key``: drift / quality), if the run wrote it.

    The folder is the one driftguard.reporting.reports names from the model and the run's data interval
    (UTC), the same that the plugin's ``/reports/`` route serves and ui.report_href links."""
    parsed = parse_dag_id(dag_id)
    if parsed is None or parsed.kind != MONITOR_KIND or start is None or end is None:
        return None
    try:
        path = reports.run_dir(Path(reports_dir), parsed.model, start, end) / reports.REPORT_FILES[key]
    except ValueError:  # a model name or interval no report folder can have
        return None
    base = Path(reports_dir).resolve()
    try:
        rel = path.resolve().relative_to(base)
    except ValueError:
        return None
    if not path.is_file():
        return None
    return f"{root}/reports/{quote(rel.as_posix())}"


def candidate_page_url(root: str, dag_id: str, version: object) -> str | None:
    """The champion-vs-challenger page of the version a retraining run registered."""
    parsed = parse_dag_id(dag_id)
    if parsed is None or parsed.kind != RETRAIN_KIND or version in (None, ""):
        return None
    return f"{root}/models/{quote(parsed.model, safe='')}/candidates/{quote(str(version), safe='')}"
