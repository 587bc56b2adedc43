"""Point MLflow at the configured tracking store, and fail fast when it is not there.

MLflow's HTTP client retries a refused connection with exponential backoff for minutes
before giving up; a monitoring task should say "the tracking server at X is down" in
seconds instead. SQLite backends get a file artifact location next to the database (or
DRIFTGUARD_MLFLOW_ARTIFACTS), never MLflow's default of ./mlruns in the working directory.
"""

from __future__ import annotations

import logging
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

from driftguard.settings import get_settings

log = logging.getLogger(__name__)

# Bounded retries: a transient blip is retried, a dead server is reported within seconds.
HTTP_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
HEALTH_TIMEOUT_S = 5.0
MAX_TAG_CHARS = 250
"""Longest tag value Driftguard writes: tags are short scalars that MLflow's tag table shows in one
line; anything longer (a trigger's reasons, the gate's record, a data fingerprint) is an artifact."""


def short_tag(text: str, *, full: str = "", limit: int = MAX_TAG_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying where the whole of it is (``full``) when cut."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    suffix = f"… (full text in {full})" if full else "…"
    return text[: max(0, limit - len(suffix))] + suffix


class MlflowUnavailable(RuntimeError):
    """The tracking server or store named by the URI cannot be used."""


def experiment_name(model: str) -> str:
    """One experiment per model, so its runs are easy to find in the MLflow UI."""
    return f"driftguard/{model}"


def _is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///...` URI (None for other schemes or in-memory)."""
    if not uri.startswith("sqlite:"):
        return None
    path = unquote(urlsplit(uri).path)
    if not path or path == "/:memory:":
        return None
    # sqlite:///rel.db -> path "/rel.db" (relative); sqlite:////abs.db -> "//abs.db" (absolute)
    return Path(path[1:])


def artifacts_dir(tracking_uri: str) -> Path | None:
    """Local artifact root for a SQLite backend: DRIFTGUARD_MLFLOW_ARTIFACTS when set, else
    `mlartifacts` next to the database (for the default settings both are $DRIFTGUARD_HOME/mlartifacts)."""
    db = sqlite_path(tracking_uri)
    if db is None:
        return None
    if os.environ.get("DRIFTGUARD_MLFLOW_ARTIFACTS"):
        return get_settings().mlflow_artifacts_dir
    return db.resolve().parent / "mlartifacts"


def check_http(uri: str, *, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """GET <uri>/health once, with a short timeout; raise MlflowUnavailable naming the URI."""
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            if resp.status >= 400:
                raise MlflowUnavailable(f"MLflow tracking server {uri} answered HTTP {resp.status} on /health")
    except urllib.error.HTTPError as exc:
        raise MlflowUnavailable(
            f"MLflow tracking server {uri} answered HTTP {exc.code} on /health; check MLFLOW_TRACKING_URI "
            "(a 403 'Invalid Host header' means the server needs --allowed-hosts)"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MlflowUnavailable(
            f"MLflow tracking server {uri} is unreachable ({reason}); start it or point MLFLOW_TRACKING_URI "
            "at a running server"
        ) from None


_TRANSIENT_MLFLOW_CODES = frozenset({"TEMPORARILY_UNAVAILABLE", "DEADLINE_EXCEEDED", "REQUEST_LIMIT_EXCEEDED"})
_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it was raised from) says a store could not be reached,
    not that the artifacts are bad: a connection error or timeout (``requests``' errors are
    ``OSError``s), any other ``OSError`` but a missing file (a missing artifact is a defect), a
    dead tracking database (SQLAlchemy's ``OperationalError``), a failed health check of the
    tracking server (``MlflowUnavailable``), an HTTP 5xx or 429 answer, or an MLflow error with a
    5xx status from the server, a "try again" code, or a failed REST call. Anything else, notably
    MLflow's ``RESOURCE_DOES_NOT_EXIST``, is about the artifacts: the servability check stays a
    rejection, a missing reference a ReferenceError. Callers: the servability check, the retrain
    step's in-process loads, the reference download."""
    from mlflow.exceptions import MlflowException, RestException

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, MlflowUnavailable):  # the tracking server's health check failed
            return True
        if isinstance(cause, MlflowException):
            if cause.error_code in _TRANSIENT_MLFLOW_CODES:
                return True
            if isinstance(cause, RestException) and cause.get_http_status_code() >= 500:
                return True
        elif isinstance(cause, (ConnectionError, TimeoutError)):
            return True
        elif (status := getattr(getattr(cause, "response", None), "status_code", None)) is not None:
            # An HTTP answer (requests' HTTPError is an OSError): the server was reached; a 4xx
            # (missing, forbidden) is about the artifacts, 5xx and 429 (too many requests) are not.
            return status >= 500 or status == 429
        elif isinstance(cause, OSError):
            return not isinstance(cause, _MISSING)
        elif type(cause).__module__.startswith("sqlalchemy") and type(cause).__name__ == "OperationalError":
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def configure(tracking_uri: str | None = None) -> str:
    """Set MLflow's tracking URI (process-wide, also MLFLOW_TRACKING_URI) from the argument or the
    settings and return it; the model registry follows it.

    http(s): bounded client retries plus a health check, so a dead server is an error in seconds.
    sqlite: the database's folder and the artifact folder are created."""
    import mlflow

    uri = tracking_uri or get_settings().mlflow_tracking_uri
    for key, value in HTTP_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if _is_http(uri):
        check_http(uri)
    else:
        db = sqlite_path(uri)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
            art = artifacts_dir(uri)
            if art is not None:
                art.mkdir(parents=True, exist_ok=True)
            _init_sqlite_store(uri, db, art or db.parent)
    # The registry URI is left unset so it follows the tracking URI (setting it would pin
    # MLFLOW_REGISTRY_URI in the environment and outlive a later tracking-URI change).
    mlflow.set_tracking_uri(uri)
    return uri


_READY: set[str] = set()  # SQLite stores this process has seen initialised


def _init_sqlite_store(uri: str, db: Path, artifacts: Path) -> None:
    """Create and migrate a SQLite tracking store once, under an exclusive file lock.

    MLflow creates the tables on a store's first use. Task processes that start together (Airflow's
    LocalExecutor with parallelism 4, all on the embedded store) raced there: "Online migration
    expected to match one row when updating ... in 'alembic_version'; 0 found". The first process
    initialises it; the others wait at the lock, then find the tables at head."""
    if uri in _READY:
        return
    import fcntl

    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    with open(db.with_name(db.name + ".init-lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            SqlAlchemyStore(uri, artifacts.as_uri()).engine.dispose()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _READY.add(uri)


def ensure_experiment(model: str, tracking_uri: str) -> str:
    """Id of the model's experiment, created on first use (with a local artifact location for
    SQLite backends); safe when two processes create it at the same time."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name = experiment_name(model)
    client = MlflowClient(tracking_uri)
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            client.restore_experiment(existing.experiment_id)
        return existing.experiment_id
    location = None
    art = artifacts_dir(tracking_uri)
    if art is not None:
        location = (art / re.sub(r"[^A-Za-z0-9_.-]", "_", name)).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location, tags={"driftguard.model": model})
    except MlflowException:
        again = client.get_experiment_by_name(name)
        if again is None:
            raise
        return again.experiment_id
