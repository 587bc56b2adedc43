"""History tables: what every monitoring run found and decided, promotions, retrains, shadow evidence, alerts,
failed runs.

SQLAlchemy 2 Core on SQLite (embedded) or PostgreSQL (production). Tables are prefixed `dg_`
and created lazily. The retrain decision is stored in its `dg_runs` row (`retrain`, `reasons`,
`summary`): one decision per run, written in the same transaction as the run, so a run and its
decision can never disagree. Datetimes go in and come out tz-aware UTC on both databases.

Reruns are idempotent: a run is keyed by (model, interval_start, interval_end); recording it
again replaces the row and its child rows (feature drift, quality checks) in one transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import math
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError

from driftguard.facts import RunFacts

log = logging.getLogger(__name__)

RUN_STATUSES = ("ok", "degraded", "no_data", "quality_failed")  # degraded: a signal lost or incomplete
RETRAIN_ACTIONS = ("promote", "first_champion")  # promotion actions that count as "a retrain happened"
RETRYABLE_RETRAIN_STATUSES = ("failed",)
COOLDOWN_RETRAIN_STATUSES = ("promoted", "rejected", "declined", "aborted")  # a decided attempt: cools down
# Outcomes that decide nothing about the model: too few rows to train on, or an inconclusive gate
# on too few rows. The interval is done (a rerun does nothing new), but the next interval may try
# again at once: a cooldown after "we could not tell" would only delay the evidence.
UNDECIDED_RETRAIN_STATUSES = ("insufficient_data", "insufficient_evidence")
FINISHED_RETRAIN_STATUSES = (*COOLDOWN_RETRAIN_STATUSES, *UNDECIDED_RETRAIN_STATUSES)


class StoreError(RuntimeError):
    """A history write or read failed; the message names the model, interval and table."""


class ConcurrentRunError(StoreError, ValueError):
    """Another run of the same model and interval recorded its result after this run read its
    data: this run's result is not recorded (history keeps the other one). A ValueError, so
    Airflow does not retry: a retry would only find the same newer record."""


class StoreBusyError(StoreError):
    """The history database is locked by another writer (SQLite "database is locked"): transient,
    retrying later succeeds. Not a data error, so Airflow retries the task."""

    retryable = True


# --------------------------------------------------------------------------- types


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timestamps stored as UTC; returned tz-aware UTC even from SQLite (which drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__} {value!r}")
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the history store: pass tz-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, NaN/inf -> None, datetimes ISO, tuples/sets -> lists."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return [jsonable(v) for v in sorted(value, key=str)]
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalar
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    tolist = getattr(value, "tolist", None)  # numpy array
    if callable(tolist):
        return jsonable(tolist())
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), (str, int)):  # Enum
        return value.value
    return str(value)


def _float(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------- tables

metadata = sa.MetaData()
_JSON = sa.JSON()

runs_table = sa.Table(
    "dg_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("interval_start", UTCDateTime, nullable=False),
    sa.Column("interval_end", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False, default=0),
    sa.Column("quality_passed", sa.Boolean, nullable=False),
    sa.Column("critical_failures", sa.Integer, nullable=False, default=0),
    sa.Column("warnings", sa.Integer, nullable=False, default=0),
    sa.Column("drift_share", sa.Float, nullable=True),
    sa.Column("drifted_features", _JSON, nullable=False),
    sa.Column("metric_name", sa.String(64), nullable=True),
    sa.Column("metric_value", sa.Float, nullable=True),
    sa.Column("proxy_metrics", _JSON, nullable=False),
    sa.Column("labelled_rows", sa.BigInteger, nullable=False, default=0),
    sa.Column("retrain", sa.Boolean, nullable=False, default=False),
    sa.Column("reasons", _JSON, nullable=False),
    sa.Column("champion_version", sa.String(64), nullable=True),
    sa.Column("report_paths", _JSON, nullable=False),
    sa.Column("summary", sa.Text, nullable=False, default=""),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # Added after the first release (ADDED_COLUMNS): weighted drift share, calibrated share threshold,
    # label-free estimates. Nullable, so rows written before it read as {}.
    sa.Column("signals", _JSON, nullable=True),
    # The run that recorded the row (an Airflow run id; ADDED_COLUMNS): a retried publish is told
    # apart from another run of the same interval.
    sa.Column("run_id", sa.String(250), nullable=True),
    sa.UniqueConstraint("model", "interval_start", "interval_end", name="uq_dg_runs_model_interval"),
)
ADDED_COLUMNS = (
    ("dg_runs", "signals"),
    ("dg_runs", "run_id"),
    *(("dg_feature_drift", c) for c in ("status", "effect", "reference_rows", "current_rows", "nonfinite")),
)
"""Columns added to existing tables since the first release: create_all adds them where missing."""

feature_drift_table = sa.Table(
    "dg_feature_drift",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("interval_start", UTCDateTime, nullable=False),
    sa.Column("interval_end", UTCDateTime, nullable=False),
    sa.Column("feature", sa.String(255), nullable=False),
    sa.Column("method", sa.String(64), nullable=True),
    sa.Column("threshold", sa.Float, nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("drifted", sa.Boolean, nullable=False),
    # The verdict's evidence (ADDED_COLUMNS): ok / drift / insufficient data, the effect size, the
    # usable rows compared on each side and the current side's non-finite values set aside.
    sa.Column("status", sa.String(32), nullable=True),
    sa.Column("effect", sa.Float, nullable=True),
    sa.Column("reference_rows", sa.BigInteger, nullable=True),
    sa.Column("current_rows", sa.BigInteger, nullable=True),
    sa.Column("nonfinite", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("model", "interval_start", "interval_end", "feature", name="uq_dg_feature_drift"),
)

quality_checks_table = sa.Table(
    "dg_quality_checks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("interval_start", UTCDateTime, nullable=False),
    sa.Column("interval_end", UTCDateTime, nullable=False),
    sa.Column("family", sa.String(32), nullable=False),
    sa.Column("expectation", sa.String(255), nullable=False),
    sa.Column("column", sa.String(255), nullable=True),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("success", sa.Boolean, nullable=False),
    sa.Column("observed", _JSON, nullable=True),
    sa.Column("message", sa.Text, nullable=False, default=""),
)

promotions_table = sa.Table(
    "dg_promotions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("version", sa.String(64), nullable=True),
    sa.Column("previous_version", sa.String(64), nullable=True),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("details", _JSON, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

alerts_table = sa.Table(
    "dg_alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=True),
    sa.Column("title", sa.Text, nullable=True),
    sa.Column("sent_at", UTCDateTime, nullable=False),
)

retrains_table = sa.Table(
    "dg_retrains",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("interval_start", UTCDateTime, nullable=False),
    sa.Column("interval_end", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("candidate_version", sa.String(64), nullable=True),
    sa.Column("verdict", _JSON, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("model", "interval_start", "interval_end", name="uq_dg_retrains_model_interval"),
)

# At most one alias move (promotion or rollback) in flight per model: written before the first
# alias write, deleted in the same transaction that appends its dg_promotions row. A row that
# outlives its writer (a kill, an MLflow error) is completed by driftguard.retraining.registry.repair.
promotion_intents_table = sa.Table(
    "dg_promotion_intents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),  # promote, first_champion or rollback
    sa.Column("version", sa.String(64), nullable=False),  # the version that becomes @champion
    sa.Column("champion_before", sa.String(64), nullable=True),
    sa.Column("previous_before", sa.String(64), nullable=True),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("at", UTCDateTime, nullable=False),  # the time recorded in dg_promotions
    sa.Column("owner", sa.String(255), nullable=False),  # the process moving the aliases (or repairing)
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("model", name="uq_dg_promotion_intents_model"),
)

# Failed Airflow runs (driftguard.airflow.notifier records them from the tasks' failure callback):
# one row per failed task of a run, so the health board can say "run failed", name the step and
# error, and link the task's log. A cleared task that fails again replaces its row (same key).
# task_id "" is a DAG-level failure (no task instance). The interval is the run's data interval
# (None when the run has none).
failures_table = sa.Table(
    "dg_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("dag_id", sa.String(250), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("task_id", sa.String(250), nullable=False),
    sa.Column("try_number", sa.Integer, nullable=True),
    sa.Column("interval_start", UTCDateTime, nullable=True),
    sa.Column("interval_end", UTCDateTime, nullable=True),
    sa.Column("error", sa.Text, nullable=False, default=""),
    sa.Column("failed_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("dag_id", "run_id", "task_id", name="uq_dg_failures_task"),
)

# Batch shadow scoring (driftguard.retraining.shadow): one row per challenger and part of its evidence. kind
# "holdout": the registration's gate holdout, which opens the session; "window": one monitoring
# window it scored beside the champion; "end": a later retrain ended the session. The paired
# rows themselves are parquet files (ShadowEvidence); a window row is written after its file,
# so the row is the commit: a file without its row is never read.
shadow_table = sa.Table(
    "dg_shadow",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("challenger_version", sa.String(64), nullable=False),
    sa.Column("champion_version", sa.String(64), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("interval_start", UTCDateTime, nullable=False),
    sa.Column("interval_end", UTCDateTime, nullable=False),
    sa.Column("windows", sa.Integer, nullable=False, default=0),  # shadow windows so far, this one included
    sa.Column("rows", sa.BigInteger, nullable=False, default=0),  # window rows both models scored
    sa.Column("labelled_rows", sa.BigInteger, nullable=False, default=0),  # paired labelled rows this part added
    sa.Column("cumulative_rows", sa.BigInteger, nullable=False, default=0),  # paired rows judged (holdout + windows)
    sa.Column("disagreement", sa.Float, nullable=True),
    sa.Column("prediction_shift", sa.Float, nullable=True),
    sa.Column("score_distance", sa.Float, nullable=True),
    sa.Column("metric_name", sa.String(64), nullable=True),
    sa.Column("champion_metric", sa.Float, nullable=True),
    sa.Column("challenger_metric", sa.Float, nullable=True),
    sa.Column("ci_low", sa.Float, nullable=True),
    sa.Column("ci_high", sa.Float, nullable=True),
    sa.Column("bound", sa.Float, nullable=True),
    sa.Column("rows_needed", sa.BigInteger, nullable=True),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("action", sa.String(32), nullable=True),  # for outcome promote: promoted / aborted / awaiting_approval
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("details", _JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint(
        "model", "challenger_version", "kind", "interval_start", "interval_end", name="uq_dg_shadow_part"
    ),
)

for _t, _cols in (
    (runs_table, ("model", "interval_end")),
    (feature_drift_table, ("model", "interval_start", "interval_end")),
    (quality_checks_table, ("model", "interval_start", "interval_end")),
    (promotions_table, ("model", "at")),
    (alerts_table, ("model", "fingerprint", "sent_at")),
    (shadow_table, ("model", "interval_end")),
    (failures_table, ("model", "failed_at")),
):
    sa.Index(f"ix_{_t.name}_{'_'.join(_cols)}", *(_t.c[c] for c in _cols))

FEATURE_DRIFT_FIELDS = (
    "feature", "method", "threshold", "score", "drifted", "status", "effect", "reference_rows", "current_rows",
    "nonfinite",
)  # fmt: skip
QUALITY_CHECK_FIELDS = ("family", "expectation", "column", "severity", "success", "observed", "message")


# --------------------------------------------------------------------------- record


@dataclass
class RunRecord:
    """One monitoring run of one model over one data interval, with its decision."""

    model: str
    interval_start: datetime
    interval_end: datetime
    status: str = "ok"
    rows: int = 0
    quality_passed: bool = True
    critical_failures: int = 0
    warnings: int = 0
    drift_share: float | None = None
    drifted_features: list[str] = field(default_factory=list)
    metric_name: str | None = None
    metric_value: float | None = None
    proxy_metrics: dict[str, Any] = field(default_factory=dict)
    labelled_rows: int = 0
    retrain: bool = False
    reasons: list[dict[str, Any]] = field(default_factory=list)
    champion_version: str | None = None
    report_paths: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    updated_at: datetime | None = None
    feature_drift: list[dict[str, Any]] = field(default_factory=list)
    quality_checks: list[dict[str, Any]] = field(default_factory=list)
    signals: dict[str, Any] = field(default_factory=dict)  # weighted_drift_share, drift_share_threshold, ...
    run_id: str | None = None  # the run that recorded it (monitor.RunContext.run_id)

    @property
    def key(self) -> tuple[str, datetime, datetime]:
        return (self.model, self.interval_start, self.interval_end)

    def to_facts(self) -> RunFacts:
        return RunFacts(
            model=self.model,
            interval_start=self.interval_start,
            interval_end=self.interval_end,
            status=self.status,
            quality_passed=self.quality_passed,
            drift_share=self.drift_share,
            drifted_features=tuple(self.drifted_features),
            metric_value=self.metric_value,
            labelled_rows=self.labelled_rows,
            retrain=self.retrain,
            drift_share_threshold=_float(self.signals.get("drift_share_threshold")),
            weighted_drift_share=_float(self.signals.get("weighted_drift_share")),
            metric_se=_float(self.signals.get("metric_se")),
        )

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))


SHADOW_KINDS = ("holdout", "window", "end")


@dataclass
class ShadowRecord:
    """One part of a challenger's shadow evidence (a dg_shadow row); see driftguard.retraining.shadow."""

    model: str
    challenger_version: str
    champion_version: str | None
    kind: str  # holdout | window | end
    interval_start: datetime
    interval_end: datetime
    outcome: str  # shadowing | promote | rejected | expired | stopped | replaced
    windows: int = 0
    rows: int = 0
    labelled_rows: int = 0
    cumulative_rows: int = 0
    disagreement: float | None = None
    prediction_shift: float | None = None
    score_distance: float | None = None
    metric_name: str | None = None
    champion_metric: float | None = None
    challenger_metric: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    bound: float | None = None
    rows_needed: int | None = None
    action: str | None = None
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None

    @property
    def part(self) -> str:
        """The evidence file's name: `holdout`, or the window's interval (reports.run_dir_name's format)."""
        if self.kind == "holdout":
            return "holdout"
        return f"{_stamp(self.interval_start)}_{_stamp(self.interval_end)}"

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShadowRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        for key in ("interval_start", "interval_end", "updated_at"):
            if isinstance(values.get(key), str):
                values[key] = datetime.fromisoformat(values[key])
        return cls(**values)


FAILURE_ERROR_CHARS = 2000
"""A failure's error text is cut to this many characters (a traceback belongs in the task log)."""


@dataclass
class FailureRecord:
    """One failed task of an Airflow run of a Driftguard DAG (a dg_failures row)."""

    model: str
    dag_id: str
    run_id: str
    task_id: str  # "" for a DAG-level failure
    failed_at: datetime
    error: str = ""
    try_number: int | None = None
    interval_start: datetime | None = None
    interval_end: datetime | None = None

    @property
    def step(self) -> str:
        """The failed step as a reader names it: the task id, or "the DAG run"."""
        return self.task_id or "the DAG run"

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M")


def _where(model: str, start: datetime | None = None, end: datetime | None = None) -> str:
    if start is None:
        return f"model {model!r}"
    return f"model {model!r}, interval {start.isoformat()} .. {end.isoformat() if end else '?'}"


def _validate(record: RunRecord) -> None:
    """Reject what the database would reject less clearly (before anything is written)."""
    where = _where(record.model, record.interval_start, record.interval_end)
    if not record.model:
        raise ValueError("RunRecord.model is empty")
    for name in ("interval_start", "interval_end"):
        value = getattr(record, name)
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"{where}: RunRecord.{name} must be a tz-aware UTC datetime, got {value!r}")
    if record.interval_end <= record.interval_start:
        raise ValueError(f"{where}: interval_end must be after interval_start")
    if record.status not in RUN_STATUSES:
        raise ValueError(f"{where}: RunRecord.status {record.status!r} is not one of {list(RUN_STATUSES)}")
    for table, rows, allowed in (
        ("dg_feature_drift", record.feature_drift, FEATURE_DRIFT_FIELDS),
        ("dg_quality_checks", record.quality_checks, QUALITY_CHECK_FIELDS),
    ):
        for i, row in enumerate(rows):
            unknown = sorted(set(row) - set(allowed))
            if unknown:
                raise ValueError(f"{where}: {table} row {i} has unknown field(s) {unknown}; allowed: {list(allowed)}")


# --------------------------------------------------------------------------- engines

_ENGINES: dict[str, Engine] = {}
_CREATED: set[str] = set()
_LOCK = threading.Lock()


def engine_for(url: str) -> Engine:
    """One engine per URL and process (connection pools are per engine)."""
    with _LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            kwargs: dict[str, Any] = {"pool_pre_ping": True, "future": True}
            if url.startswith("sqlite"):
                kwargs["connect_args"] = {"timeout": 30}  # concurrent Airflow tasks wait instead of failing
                database = sa.engine.make_url(url).database
                if database and database != ":memory:":
                    # A new home has no folder yet; an impossible path fails later with StoreError.
                    with contextlib.suppress(OSError):
                        Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, **kwargs)
            _ENGINES[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every cached pool (tests; forked workers)."""
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()
        _CREATED.clear()


def _forget_inherited_pools() -> None:
    """In a forked child, drop the parent's pooled connections without closing them (they are the parent's)."""
    for engine in _ENGINES.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_inherited_pools)


def _insert(conn: Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"unsupported history database {conn.dialect.name!r}: use SQLite or PostgreSQL")


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- store


class HistoryStore:
    """Read and write the dg_ tables at one SQLAlchemy URL."""

    def __init__(self, url: str):
        self.url = url
        self.engine = engine_for(url)

    def __repr__(self) -> str:
        return f"HistoryStore({self.engine.url.render_as_string(hide_password=True)!r})"

    # -- schema

    def create_all(self) -> None:
        """Create missing tables; idempotent, and safe when two processes race to do it."""
        if self.url in _CREATED:
            return
        try:
            try:
                metadata.create_all(self.engine, checkfirst=True)
            except (OperationalError, ProgrammingError, IntegrityError):
                # Another process created a table between our check and our CREATE: check again.
                metadata.create_all(self.engine, checkfirst=True)
            self._add_columns()
        except SQLAlchemyError as exc:
            if _locked(exc):
                raise StoreBusyError(
                    f"cannot create the dg_ history tables at {self!r}: the database is locked (busy): another "
                    f"process held its write lock past the busy timeout ({_first_line(exc)}). This is transient: "
                    "retry (Airflow retries the task)"
                ) from exc
            raise StoreError(f"cannot create the dg_ history tables at {self!r}: {_first_line(exc)}") from exc
        _CREATED.add(self.url)

    def _add_columns(self) -> None:
        """ALTER TABLE ... ADD COLUMN for ADDED_COLUMNS missing from a store created earlier
        (nullable columns only, so existing rows stay valid); a racing process may add it first."""
        for table_name, column_name in ADDED_COLUMNS:
            if column_name in {c["name"] for c in sa.inspect(self.engine).get_columns(table_name)}:
                continue
            column = metadata.tables[table_name].c[column_name]
            kind = column.type.compile(dialect=self.engine.dialect)
            try:
                with self.engine.begin() as conn:
                    conn.execute(sa.text(f'ALTER TABLE {table_name} ADD COLUMN "{column_name}" {kind}'))
                log.info("history store %r: added column %s.%s", self, table_name, column_name)
            except (OperationalError, ProgrammingError):
                if column_name not in {c["name"] for c in sa.inspect(self.engine).get_columns(table_name)}:
                    raise

    def _begin(self) -> Any:
        self.create_all()
        return self.engine.begin()

    # -- runs

    def record_run(self, record: RunRecord, *, unless_recorded_since: datetime | None = None) -> None:
        """Upsert one run and replace its child rows, all in ONE transaction.

        `unless_recorded_since` (when this run read its data): a row of the same model and
        interval that another run (another `run_id`) recorded after it is kept, and this raises
        ConcurrentRunError naming that run; nothing is written. An older row is replaced, as a
        rerun replaces it. The check and the write are one statement (an upsert whose update is
        conditional), so two runs racing to publish cannot both win."""
        _validate(record)
        where = _where(*record.key)
        values = {
            "model": record.model,
            "interval_start": record.interval_start,
            "interval_end": record.interval_end,
            "status": record.status,
            "rows": int(record.rows),
            "quality_passed": bool(record.quality_passed),
            "critical_failures": int(record.critical_failures),
            "warnings": int(record.warnings),
            "drift_share": _float(record.drift_share),
            "drifted_features": jsonable(list(record.drifted_features)),
            "metric_name": record.metric_name,
            "metric_value": _float(record.metric_value),
            "proxy_metrics": jsonable(record.proxy_metrics or {}),
            "labelled_rows": int(record.labelled_rows),
            "retrain": bool(record.retrain),
            "reasons": jsonable(list(record.reasons)),
            "champion_version": record.champion_version,
            "report_paths": jsonable({k: str(v) for k, v in (record.report_paths or {}).items()}),
            "summary": record.summary or "",
            "updated_at": record.updated_at or _now(),
            "signals": jsonable(dict(record.signals or {})),
            "run_id": record.run_id,
        }
        key_cols = ("model", "interval_start", "interval_end")
        key = {c: values[c] for c in key_cols}
        table = "dg_runs"
        self.create_all()
        try:
            with self._begin() as conn:
                stmt = _insert(conn, runs_table).values(**values)
                newer = None
                if unless_recorded_since is not None:
                    t = runs_table
                    newer = sa.or_(t.c.updated_at <= unless_recorded_since, t.c.run_id == record.run_id)
                stmt = stmt.on_conflict_do_update(
                    index_elements=list(key_cols),
                    set_={k: v for k, v in values.items() if k not in key_cols},
                    where=newer,
                )
                if newer is None:
                    conn.execute(stmt)
                elif conn.execute(stmt.returning(runs_table.c.id)).first() is None:
                    self._refuse(conn, record, unless_recorded_since)
                for child, rows, fields in (
                    (feature_drift_table, record.feature_drift, FEATURE_DRIFT_FIELDS),
                    (quality_checks_table, record.quality_checks, QUALITY_CHECK_FIELDS),
                ):
                    table = child.name
                    conn.execute(child.delete().where(*(child.c[c] == key[c] for c in key_cols)))
                    if rows:
                        conn.execute(child.insert(), [self._child(key, row, fields) for row in rows])
        except SQLAlchemyError as exc:
            raise StoreError(f"{where}: writing {table} failed, nothing was changed: {_first_line(exc)}") from exc
        log.info("recorded run %s: status=%s retrain=%s", where, record.status, record.retrain)

    @staticmethod
    def _refuse(conn: Connection, record: RunRecord, since: datetime) -> None:
        t = runs_table
        key = (t.c.model == record.model, t.c.interval_start == record.interval_start)
        other = conn.execute(
            sa.select(t.c.updated_at, t.c.run_id).where(*key, t.c.interval_end == record.interval_end)
        ).one()
        raise ConcurrentRunError(
            f"{_where(*record.key)}: another run ({other.run_id or 'without a run id'}) recorded its result at "
            f"{other.updated_at.isoformat()}, after this run ({record.run_id}) read its data at {since.isoformat()}. "
            "This run's result is not recorded and its reports are discarded; history keeps the other run's. "
            "To replace it, rerun this interval once the other run has finished."
        )

    @staticmethod
    def _child(key: Mapping[str, Any], row: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = dict(key)
        for f in fields:
            v = row.get(f)
            if f in ("threshold", "score", "effect"):
                v = _float(v)
            elif f in ("reference_rows", "current_rows", "nonfinite") and v is not None:
                v = int(v)
            elif f == "observed":
                v = jsonable(v)
            elif f == "message":
                v = "" if v is None else str(v)
            elif f in ("drifted", "success") and v is not None:
                v = bool(v)
            out[f] = v
        return out

    def _row_to_record(self, row: Mapping[str, Any]) -> RunRecord:
        return RunRecord(
            model=row["model"],
            interval_start=row["interval_start"],
            interval_end=row["interval_end"],
            status=row["status"],
            rows=int(row["rows"]),
            quality_passed=bool(row["quality_passed"]),
            critical_failures=int(row["critical_failures"]),
            warnings=int(row["warnings"]),
            drift_share=row["drift_share"],
            drifted_features=list(row["drifted_features"] or []),
            metric_name=row["metric_name"],
            metric_value=row["metric_value"],
            proxy_metrics=dict(row["proxy_metrics"] or {}),
            labelled_rows=int(row["labelled_rows"]),
            retrain=bool(row["retrain"]),
            reasons=list(row["reasons"] or []),
            champion_version=row["champion_version"],
            report_paths=dict(row["report_paths"] or {}),
            summary=row["summary"] or "",
            updated_at=row["updated_at"],
            signals=dict(row.get("signals") or {}),
            run_id=row.get("run_id"),
        )

    def runs(
        self, model: str, *, before: datetime | None = None, limit: int | None = None, details: bool = False
    ) -> list[RunRecord]:
        """Runs ordered by interval (oldest first). `before`: intervals starting before it;
        `limit`: the most recent `limit` of those; `details`: also load child rows."""
        t = runs_table
        q = sa.select(t).where(t.c.model == model)
        if before is not None:
            q = q.where(t.c.interval_start < before)
        q = q.order_by(t.c.interval_start.desc(), t.c.interval_end.desc())
        if limit is not None:
            q = q.limit(limit)
        with self._begin() as conn:
            records = [self._row_to_record(r._mapping) for r in conn.execute(q)]
            records.reverse()
            if details:
                for rec in records:
                    self._load_children(conn, rec)
        return records

    def get_run(self, model: str, start: datetime, end: datetime) -> RunRecord | None:
        """One run with its feature-drift and quality-check rows, or None."""
        t = runs_table
        q = sa.select(t).where(t.c.model == model, t.c.interval_start == start, t.c.interval_end == end)
        with self._begin() as conn:
            row = conn.execute(q).first()
            if row is None:
                return None
            rec = self._row_to_record(row._mapping)
            self._load_children(conn, rec)
        return rec

    def _load_children(self, conn: Connection, rec: RunRecord) -> None:
        for child, fields, attr, order in (
            (feature_drift_table, FEATURE_DRIFT_FIELDS, "feature_drift", "feature"),
            (quality_checks_table, QUALITY_CHECK_FIELDS, "quality_checks", "id"),
        ):
            q = (
                sa.select(*(child.c[f] for f in fields))
                .where(
                    child.c.model == rec.model,
                    child.c.interval_start == rec.interval_start,
                    child.c.interval_end == rec.interval_end,
                )
                .order_by(child.c[order])
            )
            setattr(rec, attr, [dict(r._mapping) for r in conn.execute(q)])

    def history_facts(self, model: str, *, before: datetime, n: int) -> list[RunFacts]:
        """The last n runs whose interval starts before `before`, oldest first (persistence window)."""
        if n <= 0:
            return []
        return [r.to_facts() for r in self.runs(model, before=before, limit=n)]

    def labelled_rows_since(self, model: str, since: datetime | None, *, before: datetime | None = None) -> int:
        """Labelled rows of recorded runs whose interval ends after `since` (all runs if None).

        The interval that was being decided when the retrain happened ended before it, so it is
        not counted; the next interval (which starts before the retrain) is. `before`: only runs
        starting before it (a rerun of an interval must not count its own earlier record)."""
        t = runs_table
        q = sa.select(sa.func.coalesce(sa.func.sum(t.c.labelled_rows), 0)).where(t.c.model == model)
        if since is not None:
            q = q.where(t.c.interval_end > since)
        if before is not None:
            q = q.where(t.c.interval_start < before)
        with self._begin() as conn:
            return int(conn.execute(q).scalar_one())

    def models(self) -> list[str]:
        """Every model with a run, a promotion or a failed run on record, sorted."""
        q = sa.union(
            sa.select(runs_table.c.model), sa.select(promotions_table.c.model), sa.select(failures_table.c.model)
        )
        with self._begin() as conn:
            return sorted({r[0] for r in conn.execute(q)})

    # -- promotions

    def record_promotion(
        self,
        model: str,
        *,
        action: str,
        version: str | None,
        previous_version: str | None,
        actor: str,
        reason: str,
        details: Mapping[str, Any] | None = None,
        at: datetime,
    ) -> bool:
        """Append a promotion event; a rerun repeating the latest event (same action, version and
        previous version) is not recorded twice. Returns True if a row was written."""
        with self._begin() as conn:
            return _append_promotion(
                conn, model, action=action, version=version, previous_version=previous_version, actor=actor,
                reason=reason, details=details, at=at,
            )  # fmt: skip

    def promotions(self, model: str) -> list[dict[str, Any]]:
        """Promotion events, oldest first."""
        t = promotions_table
        q = sa.select(t).where(t.c.model == model).order_by(t.c.at, t.c.id)
        with self._begin() as conn:
            return [{k: v for k, v in r._mapping.items() if k != "id"} for r in conn.execute(q)]

    def latest_promotion(self, model: str, actions: Sequence[str]) -> dict[str, Any] | None:
        """The last recorded event (by insertion order) among `actions`, or None."""
        t = promotions_table
        q = sa.select(t).where(t.c.model == model, t.c.action.in_(list(actions))).order_by(t.c.id.desc()).limit(1)
        with self._begin() as conn:
            row = conn.execute(q).first()
        return None if row is None else {k: v for k, v in row._mapping.items() if k != "id"}

    # -- promotion intents (crash-safe alias moves, see driftguard.retraining.registry)

    def begin_promotion_intent(
        self,
        model: str,
        *,
        action: str,
        version: str,
        champion_before: str | None,
        previous_before: str | None,
        actor: str,
        reason: str,
        at: datetime,
        owner: str,
    ) -> dict[str, Any] | None:
        """Record an alias move before its first alias write. Returns the intent row, or None when
        the model already has one (another move is in flight or was interrupted: repair it first)."""
        t = promotion_intents_table
        values = {
            "model": model, "action": action, "version": str(version), "champion_before": _str(champion_before),
            "previous_before": _str(previous_before), "actor": actor, "reason": reason or "", "at": at,
            "owner": owner, "created_at": _now(),
        }  # fmt: skip
        with self._begin() as conn:
            stmt = _insert(conn, t).values(**values).on_conflict_do_nothing(index_elements=["model"])
            if conn.execute(stmt).rowcount != 1:
                return None
            row = conn.execute(sa.select(t).where(t.c.model == model)).one()
        log.info("%s: intent %s to v%s recorded (owner %s)", model, action, version, owner)
        return dict(row._mapping)

    def promotion_intent(self, model: str) -> dict[str, Any] | None:
        """The model's pending alias move, or None."""
        t = promotion_intents_table
        with self._begin() as conn:
            row = conn.execute(sa.select(t).where(t.c.model == model)).first()
        return None if row is None else dict(row._mapping)

    def promotion_intents(self) -> list[dict[str, Any]]:
        """Every pending alias move, oldest first."""
        t = promotion_intents_table
        with self._begin() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(t.c.created_at, t.c.id))]

    def take_over_promotion_intent(self, model: str, intent_id: int, *, seen_owner: str, owner: str) -> bool:
        """Compare-and-set the intent's owner (a repair takes over an interrupted move): False when
        the intent is gone or someone else took it over first."""
        t = promotion_intents_table
        with self._begin() as conn:
            n = conn.execute(
                t.update().where(t.c.id == intent_id, t.c.model == model, t.c.owner == seen_owner).values(owner=owner)
            ).rowcount
        return n == 1

    def finish_promotion_intent(
        self, model: str, intent_id: int, *, owner: str, promotion: Mapping[str, Any] | None
    ) -> bool:
        """Append the move's dg_promotions row (None: nothing to record) and delete the intent, in
        one transaction. False (nothing written) when the intent is no longer this owner's."""
        t = promotion_intents_table
        with self._begin() as conn:
            # Delete first: its row lock makes a racing finisher wait, then find nothing to finish.
            mine = (t.c.id == intent_id, t.c.model == model, t.c.owner == owner)
            if conn.execute(t.delete().where(*mine)).rowcount != 1:
                return False
            if promotion is not None:
                _append_promotion(conn, model, **promotion)
        return True

    def last_retrain_at(
        self, model: str, *, before: datetime | None = None, promotions_only: bool = False
    ) -> datetime | None:
        """Data time of the last retrain: a promotion (promote / first_champion) or any decided
        candidate, whose interval end is when it was decided (a rejected one cost a training too,
        so it starts the policy's cooldown as well; `insufficient_data` / `insufficient_evidence`
        decided nothing and do not). `promotions_only`: the last promotion, the
        point the label evidence counts from (a rejected attempt does not reset it). `before`:
        ignore records after it, so a rerun of an interval decides as its first run did."""
        p, r = promotions_table, retrains_table
        promoted = sa.select(sa.func.max(p.c.at)).where(p.c.model == model, p.c.action.in_(RETRAIN_ACTIONS))
        finished = sa.select(sa.func.max(r.c.interval_end)).where(
            r.c.model == model, r.c.status.in_(COOLDOWN_RETRAIN_STATUSES)
        )
        if before is not None:
            promoted = promoted.where(p.c.at <= before)
            finished = finished.where(r.c.interval_end <= before)
        with self._begin() as conn:
            times = [conn.execute(promoted).scalar_one_or_none()]
            if not promotions_only:
                times.append(conn.execute(finished).scalar_one_or_none())
        return max((t for t in times if t is not None), default=None)

    # -- retrains

    def claim_retrain(
        self, model: str, start: datetime, end: datetime, *, stale_after: timedelta | None = None
    ) -> dict[str, Any] | None:
        """Claim the retrain of one interval. None = claimed (a "running" row now exists, go ahead);
        a dict = someone already did or is doing it (that row), so do nothing new.

        A "failed" row is reclaimed (a retry should retry); a "running" row older than
        `stale_after` is reclaimed too (its worker died)."""
        t = retrains_table
        now = _now()
        key = (t.c.model == model, t.c.interval_start == start, t.c.interval_end == end)
        with self._begin() as conn:
            stmt = _insert(conn, t).values(
                model=model, interval_start=start, interval_end=end, status="running", updated_at=now
            )
            stmt = stmt.on_conflict_do_nothing(index_elements=["model", "interval_start", "interval_end"])
            result = conn.execute(stmt)
            if result.rowcount == 1:
                log.info("claimed retrain of %s", _where(model, start, end))
                return None
            row = dict(conn.execute(sa.select(t).where(*key)).one()._mapping)
            row.pop("id", None)
            stale = row["status"] == "running" and stale_after is not None and now - row["updated_at"] >= stale_after
            if row["status"] in RETRYABLE_RETRAIN_STATUSES or stale:
                # Compare-and-set on the status we saw, so two retries cannot both take it over.
                taken = conn.execute(
                    t.update()
                    .where(*key, t.c.status == row["status"], t.c.updated_at == row["updated_at"])
                    .values(status="running", candidate_version=None, verdict=None, updated_at=now)
                ).rowcount
                if taken == 1:
                    log.info("reclaimed retrain of %s (was %s)", _where(model, start, end), row["status"])
                    return None
                row = dict(conn.execute(sa.select(t).where(*key)).one()._mapping)
                row.pop("id", None)
        log.info("retrain of %s already %s: nothing new to do", _where(model, start, end), row["status"])
        return row

    def finish_retrain(
        self,
        model: str,
        start: datetime,
        end: datetime,
        status: str,
        candidate_version: str | None = None,
        verdict: Mapping[str, Any] | None = None,
        *,
        only_running: bool = False,
    ) -> bool:
        """Record how a claimed retrain ended (e.g. promoted, rejected, awaiting_approval, failed).
        ``only_running``: only while the claim is running (False, nothing written, when the row
        has an outcome already or does not exist); else a missing row is a StoreError."""
        t = retrains_table
        key = [t.c.model == model, t.c.interval_start == start, t.c.interval_end == end]
        if only_running:
            key.append(t.c.status == "running")
        with self._begin() as conn:
            n = conn.execute(
                t.update()
                .where(*key)
                .values(
                    status=status,
                    candidate_version=_str(candidate_version),
                    verdict=jsonable(dict(verdict)) if verdict is not None else None,
                    updated_at=_now(),
                )
            ).rowcount
        if n != 1 and only_running:
            return False
        if n != 1:
            raise StoreError(f"{_where(model, start, end)}: no dg_retrains row to finish: call claim_retrain first")
        log.info("retrain of %s finished: %s (candidate v%s)", _where(model, start, end), status, candidate_version)
        return True

    def heartbeat_retrain(self, model: str, start: datetime, end: datetime) -> bool:
        """Refresh a running claim's updated_at (its worker is alive); False when it is not running."""
        t = retrains_table
        with self._begin() as conn:
            n = conn.execute(
                t.update()
                .where(t.c.model == model, t.c.interval_start == start, t.c.interval_end == end,
                       t.c.status == "running")
                .values(updated_at=_now())
            ).rowcount  # fmt: skip
        return n == 1

    def running_retrains(self, model: str | None = None) -> list[dict[str, Any]]:
        """Claims in status "running" (live or stale: compare updated_at with the stale window)."""
        t = retrains_table
        q = sa.select(t).where(t.c.status == "running").order_by(t.c.model, t.c.interval_start)
        if model is not None:
            q = q.where(t.c.model == model)
        with self._begin() as conn:
            return [{k: v for k, v in r._mapping.items() if k != "id"} for r in conn.execute(q)]

    def retrains(self, model: str) -> list[dict[str, Any]]:
        t = retrains_table
        q = sa.select(t).where(t.c.model == model).order_by(t.c.interval_start, t.c.interval_end)
        with self._begin() as conn:
            return [{k: v for k, v in r._mapping.items() if k != "id"} for r in conn.execute(q)]

    # -- batch shadow scoring

    def record_shadow(self, record: ShadowRecord) -> None:
        """Upsert one part of a challenger's shadow evidence, keyed by (model, challenger version,
        kind, interval): a rerun of the interval replaces its row, never adds one."""
        if record.kind not in SHADOW_KINDS:
            raise ValueError(f"{_where(record.model)}: shadow kind {record.kind!r} is not one of {SHADOW_KINDS}")
        for name in ("interval_start", "interval_end"):
            value = getattr(record, name)
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise ValueError(f"{_where(record.model)}: ShadowRecord.{name} must be tz-aware UTC, got {value!r}")
        key_cols = ("model", "challenger_version", "kind", "interval_start", "interval_end")
        values: dict[str, Any] = {
            "model": record.model,
            "challenger_version": str(record.challenger_version),
            "kind": record.kind,
            "interval_start": record.interval_start,
            "interval_end": record.interval_end,
            "champion_version": _str(record.champion_version),
            "windows": int(record.windows),
            "rows": int(record.rows),
            "labelled_rows": int(record.labelled_rows),
            "cumulative_rows": int(record.cumulative_rows),
            "rows_needed": None if record.rows_needed is None else int(record.rows_needed),
            "metric_name": record.metric_name,
            "outcome": record.outcome,
            "action": record.action,
            "reason": record.reason or "",
            "details": jsonable(dict(record.details or {})),
            "updated_at": record.updated_at or _now(),
        }
        for name in ("disagreement", "prediction_shift", "score_distance", "champion_metric", "challenger_metric",
                     "ci_low", "ci_high", "bound"):  # fmt: skip
            values[name] = _float(getattr(record, name))
        where = _where(record.model, record.interval_start, record.interval_end)
        try:
            with self._begin() as conn:
                stmt = _insert(conn, shadow_table).values(**values)
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=list(key_cols), set_={k: v for k, v in values.items() if k not in key_cols}
                    )
                )
        except SQLAlchemyError as exc:
            raise StoreError(f"{where}: writing dg_shadow failed, nothing was changed: {_first_line(exc)}") from exc
        log.info("recorded shadow %s of %s v%s: %s", record.kind, where, record.challenger_version, record.outcome)

    def shadow_records(self, model: str, *, version: str | None = None) -> list[ShadowRecord]:
        """A model's shadow evidence rows, oldest first (by interval end; a session's holdout row
        before its windows, an `end` row after a window of the same interval)."""
        t = shadow_table
        q = sa.select(t).where(t.c.model == model)
        if version is not None:
            q = q.where(t.c.challenger_version == str(version))
        with self._begin() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        order = {k: i for i, k in enumerate(SHADOW_KINDS)}
        rows.sort(key=lambda r: (r["interval_end"], r["interval_start"], order.get(r["kind"], 9), r["id"]))
        return [ShadowRecord(**{k: v for k, v in r.items() if k != "id"}) for r in rows]

    def set_shadow_action(
        self, model: str, version: str, start: datetime, end: datetime, *, action: str, note: str | None = None
    ) -> bool:
        """Record what became of a window's `promote` outcome (promoted, aborted, awaiting_approval);
        `note` is added to the row's details. False when there is no such window row."""
        t = shadow_table
        key = (
            t.c.model == model,
            t.c.challenger_version == str(version),
            t.c.kind == "window",
            t.c.interval_start == start,
            t.c.interval_end == end,
        )
        with self._begin() as conn:
            row = conn.execute(sa.select(t.c.details).where(*key)).first()
            if row is None:
                return False
            details = dict(row.details or {})
            if note:
                details["action_note"] = note
            conn.execute(t.update().where(*key).values(action=action, details=jsonable(details), updated_at=_now()))
        log.info("shadow window %s of v%s: action %s", _where(model, start, end), version, action)
        return True

    # -- failed runs

    def record_failure(self, record: FailureRecord) -> None:
        """Upsert one failed task, keyed by (dag_id, run_id, task_id): the same task of the same
        run failing again (cleared, or retried by hand) replaces its row, never adds one."""
        for name in ("failed_at", "interval_start", "interval_end"):
            value = getattr(record, name)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise ValueError(f"{_where(record.model)}: FailureRecord.{name} must be tz-aware UTC, got {value!r}")
        key_cols = ("dag_id", "run_id", "task_id")
        values = {
            "model": record.model,
            "dag_id": record.dag_id,
            "run_id": record.run_id,
            "task_id": record.task_id or "",
            "try_number": None if record.try_number is None else int(record.try_number),
            "interval_start": record.interval_start,
            "interval_end": record.interval_end,
            "error": (record.error or "")[:FAILURE_ERROR_CHARS],
            "failed_at": record.failed_at,
        }
        try:
            with self._begin() as conn:
                stmt = _insert(conn, failures_table).values(**values)
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=list(key_cols), set_={k: v for k, v in values.items() if k not in key_cols}
                    )
                )
        except SQLAlchemyError as exc:
            raise StoreError(f"{_where(record.model)}: writing dg_failures failed: {_first_line(exc)}") from exc
        log.info("recorded failure of %s.%s (run %s) for %s", record.dag_id, record.step, record.run_id, record.model)

    def failures(self, model: str, *, limit: int | None = None) -> list[FailureRecord]:
        """A model's failed tasks, oldest first (by failure time); `limit`: the most recent ones."""
        t = failures_table
        q = sa.select(t).where(t.c.model == model).order_by(t.c.failed_at.desc(), t.c.id.desc())
        if limit is not None:
            q = q.limit(limit)
        with self._begin() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        rows.reverse()
        return [FailureRecord(**{k: v for k, v in r.items() if k != "id"}) for r in rows]

    # -- alerts

    def alert_last_sent(self, model: str, fingerprint: str) -> datetime | None:
        t = alerts_table
        q = sa.select(sa.func.max(t.c.sent_at)).where(t.c.model == model, t.c.fingerprint == fingerprint)
        with self._begin() as conn:
            return conn.execute(q).scalar_one_or_none()

    def record_alert(
        self,
        model: str,
        *,
        kind: str,
        fingerprint: str,
        sent_at: datetime,
        severity: str | None = None,
        title: str | None = None,
    ) -> None:
        with self._begin() as conn:
            conn.execute(
                alerts_table.insert().values(
                    model=model, kind=kind, fingerprint=fingerprint, sent_at=sent_at, severity=severity, title=title
                )
            )


def _append_promotion(
    conn: Connection,
    model: str,
    *,
    action: str,
    version: str | None,
    previous_version: str | None,
    actor: str,
    reason: str,
    details: Mapping[str, Any] | None = None,
    at: datetime,
) -> bool:
    """HistoryStore.record_promotion inside the caller's transaction."""
    t = promotions_table
    latest = conn.execute(
        sa.select(t.c.action, t.c.version, t.c.previous_version)
        .where(t.c.model == model)
        .order_by(t.c.at.desc(), t.c.id.desc())
        .limit(1)
    ).first()
    if latest is not None and tuple(latest) == (action, _str(version), _str(previous_version)):
        log.info("promotion %s of %s v%s already recorded: not duplicated", action, model, version)
        return False
    conn.execute(
        t.insert().values(
            model=model,
            action=action,
            version=_str(version),
            previous_version=_str(previous_version),
            actor=actor,
            reason=reason or "",
            details=jsonable(dict(details or {})),
            at=at,
        )
    )
    log.info("recorded promotion %s of %s: v%s (was v%s) by %s", action, model, version, previous_version, actor)
    return True


def _locked(exc: BaseException) -> bool:
    """SQLite's "database is locked" / "database table is locked" (SQLITE_BUSY / SQLITE_LOCKED)."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    return "database is locked" in text or "database table is locked" in text


def _first_line(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


# --------------------------------------------------------------------------- shadow evidence files


class ShadowEvidence:
    """The paired rows of shadow evidence (id, event time, label, champion and challenger scores,
    segment values), one parquet file per (model, challenger version, part) under
    ``<root>/<model>/v<version>/<part>.parquet``; `part` is ShadowRecord.part. Files are written
    atomically (temporary file + rename) and a rerun of a part replaces its file, so an interval's
    rows are never counted twice. pandas is imported only here, when evidence is read or written."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @classmethod
    def under(cls, home: Path) -> ShadowEvidence:
        """The evidence of a Driftguard home (DRIFTGUARD_HOME): ``<home>/shadow``."""
        return cls(Path(home) / "shadow")

    def folder(self, model: str, version: str) -> Path:
        return self.root / model / f"v{version}"

    def path(self, model: str, version: str, part: str) -> Path:
        if not part or "/" in part or part.startswith("."):
            raise ValueError(f"shadow evidence part {part!r} is not a file name")
        return self.folder(model, version) / f"{part}.parquet"

    def write(self, model: str, version: str, part: str, frame: Any) -> Path:
        path = self.path(model, version, part)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            frame.to_parquet(tmp, index=False)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def read(self, model: str, version: str, parts: Sequence[str]) -> dict[str, Any]:
        """The named parts that exist, by part name (a part whose file is gone is left out, and the
        caller says so: its rows are no longer evidence)."""
        import pandas as pd

        out: dict[str, Any] = {}
        for part in parts:
            path = self.path(model, version, part)
            if path.is_file():
                out[part] = pd.read_parquet(path)
        return out
