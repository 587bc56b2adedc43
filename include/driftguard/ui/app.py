"""Driftguard pages inside the Airflow UI: a small FastAPI app, server-rendered HTML, no JavaScript.

The Airflow plugin (plugins/driftguard_plugin.py) mounts it under ``/driftguard`` and passes
Airflow's user dependency, so every route needs a valid Airflow session cookie or bearer token,
except ``/reports/_assets/<vendor file>``: the Evidently bundle and icon font that
driftguard.monitoring._evidently copies there (public code, no data; see below why).
This module itself never imports Airflow: the app works (and is tested) standalone.

Pages: the health board (``/``: one row per model, its status from driftguard.reporting.health, champion,
last run, last decision, links to the failed task's log, the runbook and the rollback DAG), a
model's status, run history, trend, failed runs and shadow challenger (``/models/{model}``), its registry
state (``/models/{model}/registry``), one retraining candidate against the champion
(``/models/{model}/candidates/{version}``, driftguard.ui.candidate_page), the on-call runbook
(``/runbook``, docs/runbook.md), and the report files under ``settings.reports_dir``
(``/reports/{path}``), served only after a containment check because the path comes from the URL.
Pages are Jinja2 templates (templates/served/, through FastAPI's Jinja2Templates on the environment
of driftguard.reporting.templating): every value from the history store, MLflow or the URL is HTML-escaped.
Errors (404, 401, a broken store, a crash) are HTML pages too, never JSON.

Links into Airflow's own UI (a task's log, a DAG) are built from the app's mount point: the app
sits one path segment under Airflow's base URL (``/driftguard``), so Airflow's root is the mount
point without its last segment.

Report files are Evidently's and GX's HTML, built from feature-log data. They are served with
``Content-Security-Policy: sandbox allow-scripts`` (no ``allow-same-origin``): their scripts run
(Evidently draws its plots) in an opaque origin, so they can read no Airflow cookie or storage,
and ``connect-src 'none'`` stops them from calling any API. A sandboxed page's requests are
cross-site for cookies, so Chromium sends no Airflow session with them: that is why the vendor
bundle and font (requested by report pages) are served without a login, and the font with
``Access-Control-Allow-Origin: *`` (fonts are fetched with CORS, here from origin ``null``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import mimetypes
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from driftguard.reporting import health, reports, runbook
from driftguard.reporting.templating import ENV
from driftguard.settings import Settings, get_settings
from driftguard.store import FailureRecord, HistoryStore, RunRecord, StoreError
from driftguard.ui import candidate_page

log = logging.getLogger(__name__)

ALIASES = ("champion", "previous_champion", "challenger")
DAG_ID = re.compile(r"^driftguard_[a-z_]+?__(?P<model>.+)$")
"""DAG ids built by driftguard.airflow.dag_defaults.dag_id: ``driftguard_<kind>__<model>``."""

THEME_SCRIPT = (
    'try{var m=localStorage.getItem("theme")||localStorage.getItem("chakra-ui-color-mode");'
    'if(m==="dark"||m==="light")document.documentElement.setAttribute("data-theme",m)}catch(e){}'
)
"""Our pages' only script: Airflow 3's UI (Chakra + next-themes) keeps its colour mode in
localStorage `theme` on the same origin; the page takes it (else the OS preference decides)."""
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(THEME_SCRIPT.encode()).digest()).decode()

# Our own pages carry one script, THEME_SCRIPT, allowed by its hash. Report files (third-party
# HTML holding feature-log data) run sandboxed in an opaque origin: scripts yes (Evidently's
# plots), same-origin access, forms, popups and top navigation no; they load scripts, styles,
# images and fonts only from this server (or inline) and may connect nowhere.
PAGE_CSP = (
    f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH}'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'self'"
)
REPORT_CSP = (
    "sandbox allow-scripts allow-downloads; default-src 'none'; "
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
ASSETS_DIR = "_assets"
"""Folder of reports_dir holding the vendor files report pages link (driftguard.monitoring.monitor writes there)."""
VENDOR_ASSET = re.compile(r"^(?:evidently-[0-9][0-9A-Za-z.+-]*\.js|material-ui-icons\.woff2)$")
"""Names of the vendor files driftguard.monitoring._evidently copies into ASSETS_DIR (the only login-free files)."""
ASSET_CSP = "default-src 'none'; sandbox"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".txt": "text/plain; charset=utf-8",
}
# Percent-encodings that must never reach the file system decoded: '/', '\', '.', NUL.
_ENCODED_DANGER = re.compile(r"%(2f|5c|2e|00)", re.IGNORECASE)

RegistryLookup = Callable[[str, str, str], Any]
"""(model, alias, tracking_uri) -> an MLflow ModelVersion or None."""
PausedLookup = Callable[[Sequence[str]], Mapping[str, bool]]
"""DAG ids -> is_paused, for the ids Airflow knows ({} when it cannot tell)."""


def _when(value: Any) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else "—"


# --------------------------------------------------------------------------- report files


def resolve_report_file(reports_dir: Path, rel: str, raw_path: str = "") -> Path | None:
    """The file ``rel`` names inside reports_dir, or None when it is not a plain file inside it.

    Rejected: empty, absolute or backslash paths, '.'/'..'/hidden segments, NUL bytes, paths whose
    raw URL carried percent-encoded slashes or dots (decoded differently by proxies), and anything
    that resolves (through symlinks) outside reports_dir. A folder serves its index.html."""
    if not rel or "\x00" in rel or "\\" in rel or rel.startswith("/") or _ENCODED_DANGER.search(raw_path):
        return None
    parts = rel.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts[:-1]) or parts[-1] in (".", ".."):
        return None
    if parts[-1].startswith("."):
        return None
    root = Path(reports_dir).resolve()
    try:
        target = (root / rel).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None
    if not target.is_relative_to(root):
        return None
    if target.is_dir():
        target = target / reports.INDEX_HTML
    return target if target.is_file() else None


def resolve_vendor_asset(reports_dir: Path, name: str, raw_path: str = "") -> Path | None:
    """The vendor file ``<reports_dir>/_assets/<name>``, or None: the name must be one of
    VENDOR_ASSET and the file a plain file directly in that folder (no symlink out of it)."""
    if not VENDOR_ASSET.match(name):
        return None
    target = resolve_report_file(reports_dir, f"{ASSETS_DIR}/{name}", raw_path)
    if target is None or target.parent != (Path(reports_dir).resolve() / ASSETS_DIR).resolve():
        return None
    return target


def content_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def report_href(root: str, reports_dir: Path, rec: RunRecord, key: str) -> str | None:
    """URL of one of a run's files under /reports, or None when there is none inside reports_dir."""
    try:
        folder = reports.run_dir(reports_dir, rec.model, rec.interval_start, rec.interval_end)
    except ValueError:
        folder = None
    given = (rec.report_paths or {}).get(key)
    if given:
        path = Path(given)
        if not path.is_absolute():
            if folder is None:
                return None
            path = folder / path
    elif folder is not None:
        path = folder / reports.REPORT_FILES[key]
    else:
        return None
    base = Path(reports_dir).resolve()
    try:
        rel = path.resolve().relative_to(base)
    except ValueError:
        return None
    if resolve_report_file(base, rel.as_posix()) is None:
        return None
    return f"{root}/reports/{quote(rel.as_posix())}"


# --------------------------------------------------------------------------- html


_CSS_EXTRA = (
    "nav a{margin-right:1rem}.msg{padding:.5rem .75rem;border-left:4px solid #d1242f;background:#fff5f5}"
    ".status{display:inline-block;padding:.1rem .45rem;border-radius:3px;font-weight:600;white-space:nowrap}"
    ".status.bad{background:#ffebe9;color:#b00020}.status.warn{background:#fff8c5;color:#7a5200}"
    ".status.good{background:#dafbe1;color:#1a7f37}.status.muted{background:#eee;color:#555}"
    ".flags,.detail{font-size:.8rem}pre{background:#f6f8fa;padding:.5rem;overflow:auto}"
    "table.kv{width:auto;min-width:28rem}table.kv th{text-align:left;font-weight:600}tr.failing td{background:#ffebe9}"
    "section.check h3{font-size:1rem;margin:.9rem 0 .2rem}p.numbers{font-size:.85rem;margin:.2rem 0}"
    "form.rollback label{display:block;font-weight:600;margin:.5rem 0 .2rem}"
    "form.rollback input{width:28rem;max-width:100%;padding:.3rem;background:var(--dg-bg);color:var(--dg-fg);"
    "border:1px solid var(--dg-border)}"
)
_THEME_EXTRA = (
    ".status.bad{color:var(--dg-bad)}.status.warn{color:var(--dg-warn)}.status.good{color:var(--dg-good)}"
    ".status.muted{color:var(--dg-muted)}"
)
BOARD_RUNS = 60
"""Recorded runs the board reads per model (the newest intervals): enough for its verdict."""
BOARD_FAILURES = 5
RUNBOOK_SECTION = {
    "run_failed": "pipeline_failure",
    "quality_failed": "quality_critical",
    "no_data": "no_data",
    "degraded": "drift_degraded",
    "drift": "drift",
}
"""The runbook section a board status links (anything else: the board's own section)."""

Clock = Callable[[], datetime]


TEMPLATES = Jinja2Templates(env=ENV)
"""Served pages: templates/served/*.html in the environment the report files use (driftguard.reporting.templating)."""


def _page(request: Request, name: str, title: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The page `name` (templates/served/) in the Driftguard layout, with our CSP."""
    layout = {
        "root": str(request.scope.get("root_path", "")).rstrip("/"),
        "title": title,
        "theme_script": THEME_SCRIPT,
        "css": f"{reports.PAGE_CSS}{_CSS_EXTRA}{reports.THEME_CSS}{_THEME_EXTRA}",
        "runbook_path": runbook.PAGE_PATH,
    }
    return TEMPLATES.TemplateResponse(
        request,
        f"served/{name}",
        {**layout, **context},
        status_code=status_code,
        headers={"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff"},
    )


def _model_href(root: str, model: str, suffix: str = "") -> str:
    return f"{root}/models/{quote(model, safe='')}{suffix}"


def airflow_root(root: str) -> str:
    """Airflow's base path from the app's mount point (``/driftguard`` -> ``""``)."""
    return root.rsplit("/", 1)[0] if root else ""


def task_log_href(airflow: str, failure: FailureRecord) -> str:
    """Airflow 3's page of the failed task instance (its Logs tab opens first), or of the run."""
    run = f"{airflow}/dags/{quote(failure.dag_id, safe='')}/runs/{quote(failure.run_id, safe='')}"
    return f"{run}/tasks/{quote(failure.task_id, safe='')}" if failure.task_id else run


def rollback_dag_href(airflow: str, model: str) -> str:
    from driftguard.airflow.dag_defaults import dag_id

    return f"{airflow}/dags/{quote(dag_id('rollback', model), safe='')}"


def runbook_href(root: str, section: str) -> str:
    return f"{root}{runbook.PAGE_PATH}#{quote(section, safe='')}"


def board_rows(
    root: str, healths: Sequence[health.Health], now: datetime, candidates: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The health board's rows (templates/served/board.html), worst status first. ``candidates``:
    model -> the candidate version its last run's retrain produced (its decision links that page)."""
    airflow = airflow_root(root)
    order = list(health.STATUSES)
    rows = []
    for h in sorted(healths, key=lambda h: (order.index(h.status), h.model)):
        rec = h.last_run
        version = (candidates or {}).get(h.model) if rec is not None and rec.retrain else None
        links = [
            ("model-link", _model_href(root, h.model), "model page"),
            ("registry-link", _model_href(root, h.model, "/registry"), "registry"),
        ]
        if h.failure is not None:
            links.append(("task-log", task_log_href(airflow, h.failure), f"{h.failure.step} log"))
        links.append(("runbook-link", runbook_href(root, RUNBOOK_SECTION.get(h.status, "board")), "runbook"))
        links.append(("rollback-link", _model_href(root, h.model, "/rollback"), "rollback"))
        rows.append(
            {
                "health": h,
                "model_href": _model_href(root, h.model),
                "others": [health.STATUSES[f][0] for f in h.flags[1:]],
                "champion_age": health.age(now, h.champion.since) if h.champion and h.champion.since else "",
                "ran_ago": health.age(now, rec.updated_at) if rec is not None else "",
                "decision": health.decision_line(rec) if rec is not None else "",
                "candidate": version,
                "candidate_href": candidate_href(root, h.model, version) if version else None,
                "links": links,
            }
        )
    return rows


def failure_rows(root: str, failures: Sequence[FailureRecord]) -> list[tuple[FailureRecord, str]]:
    """Failed runs, newest first, each with its task log's URL in Airflow."""
    airflow = airflow_root(root)
    return [(f, task_log_href(airflow, f)) for f in sorted(failures, key=lambda f: f.failed_at, reverse=True)]


def run_rows(root: str, reports_dir: Path, records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """The model's runs, newest first, for the runs table the reports index shares
    (templates/_cells.html), with report links served under /reports."""
    labels = (("drift", "Evidently drift report"), ("quality", "GX validation"), ("summary", "summary"))

    def links(rec: RunRecord) -> list[tuple[str, str, str]]:
        found = [(key, report_href(root, reports_dir, rec, key), label) for key, label in labels]
        return [(key, href, label) for key, href, label in found if href]

    return reports.run_rows(records, links)


def newest_first(promotions: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(promotions, key=lambda p: p.get("at") or datetime.min.replace(tzinfo=UTC), reverse=True)


def candidate_href(root: str, model: str, version: Any) -> str:
    return _model_href(root, model, f"/candidates/{quote(str(version), safe='')}")


def retrain_rows(root: str, model: str, retrains: Sequence[Mapping[str, Any]], limit: int = 20) -> list[dict[str, Any]]:
    """Newest first: interval, status, candidate (linked to its champion-vs-challenger page), the
    primary metric of both models with the gain's CI, and the gate's verdict with failed checks."""
    rows = []
    for r in list(reversed(retrains))[:limit]:
        verdict = r.get("verdict") or {}
        version = r.get("candidate_version")
        rows.append(
            {
                "retrain": r,
                "version": version,
                "href": candidate_href(root, model, version) if version else None,
                "numbers": candidate_page.compact_comparison(verdict),
                "css": "good" if verdict.get("promote") else ("bad" if verdict else "muted"),
                "summary": verdict.get("summary") or verdict.get("error") or "—",
                "failed": [
                    c for c in verdict.get("checks") or [] if isinstance(c, Mapping) and not c.get("passed", True)
                ],
            }
        )
    return rows


def last_run_candidate(retrains: Sequence[Mapping[str, Any]], rec: RunRecord) -> str | None:
    """The candidate version the retrain of a run's interval produced, if it got that far."""
    for r in retrains:
        if (r.get("interval_start"), r.get("interval_end")) == (rec.interval_start, rec.interval_end):
            return str(r["candidate_version"]) if r.get("candidate_version") else None
    return None


def alias_rows(versions: Mapping[str, Any]) -> list[tuple[str, bool, Any, str, str]]:
    """(alias, set?, version, registered at, verdict tag) of each alias MLflow was asked for."""
    rows = []
    for alias in ALIASES:
        mv = versions.get(alias)
        if mv is None:
            rows.append((alias, False, None, "", ""))
            continue
        tags = getattr(mv, "tags", None) or {}
        created = getattr(mv, "creation_timestamp", None)
        when = _when(datetime.fromtimestamp(created / 1000, UTC)) if created else "—"
        verdict = tags.get("driftguard.verdict") or tags.get("driftguard.summary") or ""
        rows.append((alias, True, getattr(mv, "version", "?"), when, verdict))
    return rows


# --------------------------------------------------------------------------- app


def airflow_paused(dag_ids: Sequence[str]) -> dict[str, bool]:
    """`dag.is_paused` from Airflow's metadata DB, read through Airflow's ORM, only inside
    Airflow's api-server (where the plugin serves this app and the DB session is configured).
    Elsewhere (tests, the app standalone) or on any error: {} and the board does not know."""
    if "airflow.api_fastapi.app" not in sys.modules or not dag_ids:
        return {}
    try:
        from airflow.models.dag import DagModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        query = select(DagModel.dag_id, DagModel.is_paused).where(DagModel.dag_id.in_(list(dag_ids)))
        with create_session() as session:
            return {str(d): bool(p) for d, p in session.execute(query)}
    except Exception as exc:  # the board without the paused state beats no board
        log.warning("Airflow's DAG table unreadable (%s): the board shows no paused state", exc)
        return {}


def _registry_lookup(model: str, alias: str, tracking_uri: str) -> Any:
    from driftguard.retraining import registry  # MLflow is imported only when a registry page is opened

    return registry.alias_version(model, alias, tracking_uri=tracking_uri)


def _drift_threshold(settings: Settings, model: str) -> tuple[float | None, str]:
    """The contract's drift-share trigger and description, when its YAML loads (display only)."""
    path = settings.models_dir / f"{model}.yaml"
    if not reports.SAFE_NAME.match(model) or not path.is_file():
        return None, ""
    try:
        from driftguard.contract import load_contract

        contract = load_contract(path)
    except Exception as exc:  # a broken contract must not break the history page
        log.warning("contract %s does not load (%s): trend drawn without threshold", path, exc)
        return None, ""
    return contract.policy.drift_share, contract.description


def create_app(
    settings: Settings | None = None,
    auth_dependency: Callable[..., Any] | None = None,
    *,
    registry_lookup: RegistryLookup | None = None,
    clock: Clock | None = None,
    paused_lookup: PausedLookup | None = None,
) -> FastAPI:
    """The Driftguard UI app. auth_dependency runs before every route (Airflow's get_user in the
    plugin) but the vendor assets' one; registry_lookup replaces the MLflow alias lookup (tests,
    other registries); clock gives the board's "now" (tests); paused_lookup tells which monitoring
    DAGs Airflow has paused (default: Airflow's DB inside its api-server, else unknown)."""
    settings = settings or get_settings()
    now_of = clock or (lambda: datetime.now(UTC))
    lookup = registry_lookup or _registry_lookup
    paused_of = paused_lookup or airflow_paused
    reports_dir = Path(settings.reports_dir)
    deps = [Depends(auth_dependency)] if auth_dependency is not None else []
    app = FastAPI(title="Driftguard", docs_url=None, redoc_url=None, openapi_url=None)
    router = APIRouter(dependencies=deps)  # every route below but vendor_asset

    @app.get(f"/reports/{ASSETS_DIR}/{{name}}")
    def vendor_asset(request: Request, name: str) -> FileResponse:
        """Evidently's bundle and font, without login: sandboxed report pages request them without
        the Airflow cookie. Registered before the login-guarded /reports route; any other name in
        the folder is a 404, never a file."""
        raw = request.scope.get("raw_path", b"").decode("latin-1")
        target = resolve_vendor_asset(reports_dir, name, raw)
        if target is None:
            raise HTTPException(404, "no such asset")
        headers = {
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": ASSET_CSP,
            "Access-Control-Allow-Origin": "*",
            "Cache-Control": "public, max-age=86400",
        }
        return FileResponse(target, media_type=content_type(target), headers=headers)

    def store() -> HistoryStore:
        return HistoryStore(settings.history_url)

    def root_of(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def error_page(
        request: Request, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> HTMLResponse:
        login = airflow_root(root_of(request)) if status in (401, 403) else None
        title = f"Driftguard: {status}"
        context = {"error": True, "message": message, "login_href": login}
        response = _page(request, "message.html", title, status_code=status, **context)
        for key, value in (headers or {}).items():
            if key.lower() not in ("content-type", "content-length"):
                response.headers[key] = value
        return response

    @app.exception_handler(SQLAlchemyError)
    @app.exception_handler(StoreError)
    async def history_unavailable(request: Request, exc: Exception) -> HTMLResponse:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        log.error("history store %s unreadable: %s", settings.history_url, first)
        return error_page(request, 503, f"History store unavailable: {first}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        """404s, and 401/403 from Airflow's login dependency: an HTML page, not {"detail": ...}."""
        return error_page(request, exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> HTMLResponse:
        return error_page(request, 422, "This address has an invalid part.")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> HTMLResponse:
        log.exception("Driftguard page %s failed", request.url.path)
        return error_page(request, 500, f"This page failed: {type(exc).__name__}. The api-server log has the details.")

    def schedules() -> dict[str, Any]:
        """Each contract's DagSpec (schedule, start date), for the overdue check; {} when unreadable."""
        from driftguard.airflow.dag_specs import load_specs

        try:
            return dict(load_specs(settings.models_dir, settings.home / "cache" / "dag_specs.json").specs)
        except Exception as exc:  # the board still shows every recorded model, without overdue
            log.warning("model contracts unreadable (%s): the board checks no schedule", exc)
            return {}

    def schedule_end() -> datetime | None:
        from driftguard.airflow.dag_defaults import schedule_end as end

        try:
            return end()
        except ValueError as exc:
            log.warning("%s: runs are expected without an end", exc)
            return None

    def assess(
        model: str,
        specs: Mapping[str, Any],
        now: datetime,
        *,
        runs: Sequence[RunRecord],
        failures: Any,
        promotions: Any,
        paused: Mapping[str, bool],
    ) -> health.Health:
        from driftguard.airflow.dag_defaults import dag_id

        spec = specs.get(model)
        return health.assess(
            model,
            runs=runs,
            failures=failures,
            promotions=promotions,
            now=now,
            schedule=spec.schedule if spec else None,
            start_date=spec.start_date if spec else None,
            schedule_end=schedule_end(),
            grace=health.grace_from_env(),
            paused=paused.get(dag_id("monitor", model)),
        )

    @router.get("/", response_class=HTMLResponse)
    def home(request: Request) -> HTMLResponse:
        s = store()
        from driftguard.airflow.dag_defaults import dag_id

        specs, now = schedules(), now_of()
        models = sorted(set(s.models()) | set(specs))
        paused = paused_of([dag_id("monitor", m) for m in models])
        healths = [
            assess(
                model,
                specs,
                now,
                runs=s.runs(model, limit=BOARD_RUNS),
                failures=s.failures(model, limit=BOARD_FAILURES),
                promotions=s.promotions(model),
                paused=paused,
            )
            for model in models
        ]
        candidates = {}
        for h in healths:
            if h.last_run is not None and h.last_run.retrain:
                found = last_run_candidate(s.retrains(h.model), h.last_run)
                if found:
                    candidates[h.model] = found
        rows = board_rows(root_of(request), healths, now, candidates)
        return _page(
            request,
            "board.html",
            "Driftguard",
            now=now,
            rows=rows,
            runbook_board=runbook_href(root_of(request), "board"),
        )

    @router.get(runbook.PAGE_PATH, response_class=HTMLResponse)
    def runbook_page(request: Request) -> HTMLResponse:
        try:
            body = runbook.page_body()
        except OSError as exc:
            raise HTTPException(404, f"runbook {runbook.RUNBOOK_MD} unreadable: {exc.strerror or exc}") from exc
        return _page(request, "runbook.html", "Driftguard runbook", body=body)

    @router.get("/models/{model}", response_class=HTMLResponse)
    def model_page(request: Request, model: str) -> HTMLResponse:
        s = store()
        records, promotions, shadow = s.runs(model), s.promotions(model), s.shadow_records(model)
        failures, specs = s.failures(model, limit=20), schedules()
        if not records and not promotions and not failures and model not in specs:
            raise HTTPException(404, f"no runs, promotions or failed runs recorded for model {model!r}")
        root = root_of(request)
        threshold, description = _drift_threshold(settings, model)
        from driftguard.airflow.dag_defaults import dag_id

        paused = paused_of([dag_id("monitor", model)])
        h = assess(model, specs, now_of(), runs=records, failures=failures, promotions=promotions, paused=paused)
        retrains = s.retrains(model)
        return _page(
            request,
            "model.html",
            f"Driftguard: {model}",
            model=model,
            health=h,
            runbook=runbook_href(root, RUNBOOK_SECTION.get(h.status, "board")),
            description=description,
            registry_href=_model_href(root, model, "/registry"),
            rollback_href=_model_href(root, model, "/rollback"),
            trend=reports.trend_svg(
                records, promotions=promotions, retrains=retrains, failures=failures, drift_threshold=threshold
            ),
            legend=reports.TREND_LEGEND,
            shadow_state=reports.shadow_state(shadow),
            shadow=shadow,
            retrains=retrain_rows(root, model, retrains, limit=10),
            runs=run_rows(root, reports_dir, records),
            failures=failure_rows(root, failures),
        )

    @router.get("/models/{model}/registry", response_class=HTMLResponse)
    def registry_page(request: Request, model: str) -> HTMLResponse:
        s = store()
        versions: dict[str, Any] = {}
        error = None
        try:
            for alias in ALIASES:
                versions[alias] = lookup(model, alias, settings.mlflow_tracking_uri)
        except Exception as exc:  # a dead MLflow is a message on the page, not a 500
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            error = f"{first} (tracking URI {settings.mlflow_tracking_uri})"
            log.warning("registry page of %s: MLflow lookup failed: %s", model, first)
        root = root_of(request)
        return _page(
            request,
            "registry.html",
            f"Driftguard: {model} registry",
            model=model,
            model_href=_model_href(root, model),
            aliases=alias_rows(versions),
            error=error,
            retrains=retrain_rows(root, model, s.retrains(model)),
            promotions=newest_first(s.promotions(model)),
        )

    @router.get("/models/{model}/rollback", response_class=HTMLResponse)
    def rollback_page(request: Request, model: str) -> HTMLResponse:
        """Which version a rollback restores and which it replaces: MLflow's aliases, else the
        promotion history's last champion move (its version and the one it replaced)."""
        s = store()
        promotions = s.promotions(model)
        try:
            found = {alias: lookup(model, alias, settings.mlflow_tracking_uri) for alias in ALIASES[:2]}
        except Exception as exc:  # MLflow down: the history still says what the aliases should be
            log.warning("rollback page of %s: MLflow lookup failed: %s", model, exc)
            found = None
        if found is not None and found.get("champion") is not None:
            champion = str(getattr(found["champion"], "version", None) or "") or None
            prev = found.get("previous_champion")
            previous = str(getattr(prev, "version", None) or "") or None if prev is not None else None
            source = f"MLflow's aliases ({settings.mlflow_tracking_uri})"
        else:
            last = next((p for p in reversed(promotions) if p.get("action") in health.CHAMPION_ACTIONS), None)
            if last is None and not s.runs(model, limit=1):
                raise HTTPException(404, f"no champion or runs recorded for model {model!r}")
            champion = str(last["version"]) if last and last.get("version") else None
            previous = str(last["previous_version"]) if last and last.get("previous_version") else None
            if last and last.get("action") == "rollback":
                previous = None  # a rollback removed @previous_champion
            source = "the promotion history (MLflow's aliases unavailable)"
        root = root_of(request)
        from driftguard.airflow.dag_defaults import dag_id

        return _page(
            request,
            "rollback.html",
            f"Driftguard: {model} rollback",
            model=model,
            champion=champion,
            previous=previous,
            source=source,
            dag=dag_id("rollback", model),
            dag_href=rollback_dag_href(airflow_root(root), model),
            model_href=_model_href(root, model),
            registry_href=_model_href(root, model, "/registry"),
        )

    @router.get("/models/{model}/candidates/{version}", response_class=HTMLResponse)
    def candidate(request: Request, model: str, version: str) -> HTMLResponse:
        """Champion vs challenger for one candidate version (its newest retrain, when one version
        was decided for several intervals)."""
        s = store()
        rows = [r for r in s.retrains(model) if str(r.get("candidate_version")) == version]
        if not rows:
            raise HTTPException(404, f"no retraining candidate v{version} recorded for model {model!r}")
        root = root_of(request)
        context = candidate_page.candidate_context(
            model,
            rows[-1],
            s.shadow_records(model, version=version),
            tracking_uri=settings.mlflow_tracking_uri,
            model_href=_model_href(root, model),
            registry_href=_model_href(root, model, "/registry"),
        )
        return _page(request, "candidate.html", f"Driftguard: {model} candidate v{version}", **context)

    @router.get("/dags/{dag_id}")
    def dag_tab(request: Request, dag_id: str) -> Response:
        """Target of the DAG-page tab: a driftguard DAG goes to its model, any other DAG gets a note."""
        match = DAG_ID.match(dag_id)
        root = root_of(request)
        if match:
            return RedirectResponse(_model_href(root, match["model"]), status_code=307)
        return _page(
            request, "message.html", "Driftguard", error=False, message=f"DAG {dag_id} is not a Driftguard DAG."
        )

    @router.get("/reports/{path:path}")
    def report_file(request: Request, path: str) -> FileResponse:
        raw = request.scope.get("raw_path", b"").decode("latin-1")
        target = resolve_report_file(reports_dir, path, raw)
        if target is None:
            raise HTTPException(404, "no such report file")
        headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": REPORT_CSP}
        return FileResponse(target, media_type=content_type(target), headers=headers)

    app.include_router(router)
    return app
