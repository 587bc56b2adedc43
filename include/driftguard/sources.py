"""Read one data interval of a model's feature log (and its matured labels) from SQL.

Every later step (quality, drift, training, evaluation) sees the production log only through
this module, so it owns three promises:

* Interval semantics: ``[start, end)`` half-open, tz-aware UTC. Naive datetimes are rejected
  because a silently assumed time zone shifts every window by hours.
* Dtypes come from the contract, not from the database driver: timestamp ->
  ``datetime64[ns, UTC]``; numeric features and the prediction -> ``float64``; categorical ->
  ``object`` holding ``str`` with ``np.nan`` for missing (not ``pd.NA``: GX and scikit-learn
  choke on it); binary labels -> ``int64`` 0/1; regression labels -> ``float64``. Rows are
  sorted by timestamp, then id.
* Identifiers are never formatted into SQL text: tables and columns are SQLAlchemy constructs
  (quoted by the dialect), values are bound parameters, and ``source.query`` is wrapped as a
  subquery.

Timestamps supported (an event belongs to the window of its UTC time, whatever its offset):

* PostgreSQL ``timestamptz`` and ``timestamp`` (naive values are UTC: every connection runs
  ``SET TIME ZONE 'UTC'``), and text, cast to ``timestamptz`` (offsets count, naive text is UTC;
  the cast leaves the index unused).
* SQLite text as written by SQLAlchemy / pandas (``YYYY-MM-DD HH:MM:SS[.ffffff]``, optional
  ``+00:00``) and ISO strings with ``T`` (``YYYY-MM-DDTHH:MM:SS[.ffffff]``), with ``Z``, no
  offset or any ``+hh:mm`` / ``-hh:mm`` offset up to 14 hours (see _sqlite_pieces). Rows whose
  offset SQLite cannot read (``-0500``) and that land outside the window are left out and named
  as a schema problem (strict: ColumnTypeError). Epoch numbers are not supported.

``strict=False`` (the monitoring quality gate) never hides data problems: missing feature /
prediction columns are left out and columns of an incompatible SQL type are kept as read, each
reported in ``WindowStats.schema_problems`` so Great Expectations turns them into failed
expectations. Values of a numeric feature or the prediction that are not numbers (text in a
SQLite REAL column, 'NaN' text) are read as NaN and counted per column in
``WindowStats.type_problems``, which the quality gate turns into that column's failed `types`
check (column, rows, examples); the frame stays all float64, so it reaches Parquet intact. Text
that spells a number is that number ('inf' is infinity, for the `finite` check to fail).
The timestamp and id columns are the key of the log and are required in both modes. Errors
(SourceError) name the model, the table, the column and the interval being read.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from driftguard.contract import ContractError, LabelSource, ModelContract, Task, interpolate_env

log = logging.getLogger(__name__)

_ONE_MICROSECOND = timedelta(microseconds=1)

# --------------------------------------------------------------------------- errors


class SourceError(Exception):
    """A feature log cannot be read as the contract describes. The message names model, table,
    column and, once read_window or read_labels pass it on, the interval being read."""

    def __init__(
        self,
        detail: str,
        *,
        model: str,
        table: str | None = None,
        column: str | None = None,
        interval: tuple[datetime, datetime] | None = None,
    ):
        self.model = model
        self.table = table
        self.column = column
        self.detail = detail
        self.interval = interval
        where = [f"model {model}"]
        if table:
            where.append(f"table {table}")
        if column:
            where.append(f"column {column}")
        message = f"{', '.join(where)}: {detail}"
        if interval is not None:
            span = f"[{interval[0].isoformat()}, {interval[1].isoformat()})"
            if span not in detail:  # EmptyWindowError's detail already names it
                message += f" (reading the interval {span})"
        super().__init__(message)

    def in_interval(self, start: datetime, end: datetime) -> SourceError:
        """The same error, its message naming the interval that was being read."""
        return type(self)(self.detail, model=self.model, table=self.table, column=self.column, interval=(start, end))


def _names_interval(read: Callable[..., Any]) -> Callable[..., Any]:
    """A reader of (contract, start, end, ...) whose SourceErrors name that interval too."""

    @functools.wraps(read)
    def reader(contract: ModelContract, start: datetime, end: datetime, *args: Any, **kwargs: Any) -> Any:
        try:
            return read(contract, start, end, *args, **kwargs)
        except SourceError as exc:
            aware = all(isinstance(d, datetime) and d.utcoffset() is not None for d in (start, end))
            if exc.interval is not None or not aware:
                raise
            raise exc.in_interval(start.astimezone(UTC), end.astimezone(UTC)) from None

    return reader


class SourceConnectionError(SourceError):
    """The database cannot be reached (the URL in the message has its password masked)."""


class MissingTableError(SourceError):
    """The feature-log or label table does not exist."""


class MissingColumnError(SourceError):
    """A column named by the contract is not in the table or query."""


class ColumnTypeError(SourceError):
    """A column's SQL type or its values do not fit the contract's kind."""


class EmptyWindowError(SourceError):
    """The interval holds no rows (or no matured labels)."""


# --------------------------------------------------------------------------- stats


@dataclass(frozen=True)
class WindowStats:
    """What was read, for logs, XComs and the history store."""

    model: str
    start: datetime
    end: datetime
    rows: int
    min_ts: datetime | None
    max_ts: datetime | None
    chunks: int
    schema_problems: tuple[str, ...] = field(default_factory=tuple)
    facts: WindowFacts | None = None  # exact, from the database; set when a sample was asked for
    read_rows: int | None = None  # rows actually read: fewer than `rows` when the window was sampled
    type_problems: tuple[TypeProblem, ...] = field(default_factory=tuple)  # text in numeric columns

    @property
    def sampled(self) -> bool:
        return self.read_rows is not None and self.read_rows < self.rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "rows": self.rows,
            "min_ts": _iso(self.min_ts),
            "max_ts": _iso(self.max_ts),
            "chunks": self.chunks,
            "schema_problems": list(self.schema_problems),
            "read_rows": self.rows if self.read_rows is None else self.read_rows,
            "sampled": self.sampled,
            "facts": None if self.facts is None else self.facts.to_dict(),
            "type_problems": [p.to_dict() for p in self.type_problems],
        }


@dataclass(frozen=True)
class TypeProblem:
    """Values of a numeric column (feature or logged prediction) that are not numbers, such as
    text in a SQLite REAL column or a query's text column. In monitoring they are read as missing
    (NaN) and this record becomes the column's failed `types` check; `rows` of `read_rows` rows
    read (of the sample, when the window was sampled). Text that spells a number ('1.5', 'inf',
    '1e999') is that number; 'NaN' text is not a number and counts here."""

    column: str
    what: str  # "numeric feature", "prediction column"
    rows: int
    read_rows: int
    examples: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "what": self.what,
            "rows": self.rows,
            "read_rows": self.read_rows,
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class WindowFacts:
    """Exact facts of a whole window, answered by the database: no rows leave it."""

    rows: int
    min_ts: datetime | None
    max_ts: datetime | None
    nulls: dict[str, int]  # NULLs per read column
    duplicate_rows: int  # rows whose id occurs more than once (all of them, as GX counts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "min_ts": _iso(self.min_ts),
            "max_ts": _iso(self.max_ts),
            "nulls": dict(self.nulls),
            "duplicate_rows": self.duplicate_rows,
        }


def _iso(d: datetime | None) -> str | None:
    return None if d is None else d.isoformat()


# --------------------------------------------------------------------------- URLs and engines


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, safe for logs and error messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparseable: mask anything that looks like user:password@
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def source_url(contract: ModelContract, url: str | None = None) -> str:
    """The SQLAlchemy URL of the contract's feature log.

    An explicit ``url`` wins (tests, CLI ``--url``); else ``source.url`` with ``${ENV}``
    resolved (an unset ``DRIFTGUARD_FEATURE_LOG_URL`` means the settings default); else the
    Airflow connection ``source.conn_id`` (imported lazily so the library stays importable
    without Airflow)."""
    if url:
        return url
    src = contract.source
    if src.url is not None:
        try:
            return interpolate_env(_settings_defaults(src.url), what="source.url")
        except ContractError as exc:
            raise SourceConnectionError(
                f"cannot resolve source.url: {exc.problems[0].message}",
                model=contract.name,
                table=_table_label(contract),
            ) from None
    from airflow.sdk import BaseHook  # only when the contract uses an Airflow connection

    try:
        uri = BaseHook.get_connection(src.conn_id).get_uri()
    except Exception as exc:
        raise SourceConnectionError(
            f"cannot read Airflow connection {src.conn_id!r}: {exc}", model=contract.name, table=_table_label(contract)
        ) from None
    # Airflow names the scheme after conn_type; SQLAlchemy 2 only knows "postgresql".
    return re.sub(r"^postgres(?=://)", "postgresql", uri)


def _settings_defaults(url: str) -> str:
    """`${DRIFTGUARD_FEATURE_LOG_URL}` falls back to its settings default (SQLite in DRIFTGUARD_HOME)
    when unset, as everywhere else in Driftguard; other variables must be set."""
    name = "DRIFTGUARD_FEATURE_LOG_URL"
    if f"${{{name}}}" in url and name not in os.environ:
        from driftguard.settings import get_settings

        return url.replace(f"${{{name}}}", get_settings().feature_log_url)
    return url


def _set_utc(dbapi_conn: Any, _record: Any) -> None:
    """Naive PostgreSQL timestamps mean UTC, whatever the server's TimeZone setting."""
    cur = dbapi_conn.cursor()
    cur.execute("SET TIME ZONE 'UTC'")
    cur.close()
    dbapi_conn.commit()  # a rolled-back SET is undone


def _sqlite_file(url: sa.engine.URL) -> bool:
    """A plain database file (not :memory:, not a URI filename)."""
    db = url.database
    return bool(db) and db != ":memory:" and not db.startswith("file:") and not url.query.get("uri")


def _check_sqlite_file(url: sa.engine.URL, contract: ModelContract) -> None:
    """SQLite creates a missing file on connect; reading must not, and should say why it failed."""
    db = url.database
    if _sqlite_file(url) and not Path(db).exists():
        raise SourceConnectionError(
            f"cannot connect to {mask_url(str(url))}: database file {db} does not exist",
            model=contract.name,
            table=_table_label(contract),
        )


@contextmanager
def _connect(contract: ModelContract, url: str | None) -> Iterator[sa.Connection]:
    resolved = source_url(contract, url)
    try:
        parsed = sa.engine.make_url(resolved)
        if parsed.get_backend_name() == "sqlite":
            _check_sqlite_file(parsed, contract)
        engine = sa.create_engine(parsed, poolclass=NullPool)
    except SourceError:
        raise
    except Exception as exc:
        raise SourceConnectionError(
            f"invalid database URL {mask_url(resolved)}: {exc}", model=contract.name, table=_table_label(contract)
        ) from None
    if engine.dialect.name == "postgresql":
        sa.event.listen(engine, "connect", _set_utc)
    try:
        try:
            conn = engine.connect()
        except Exception as exc:
            raise SourceConnectionError(
                f"cannot connect to {mask_url(resolved)}: {_first_line(exc)}",
                model=contract.name,
                table=_table_label(contract),
            ) from None
        with conn:
            yield conn
    finally:
        engine.dispose()


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


# --------------------------------------------------------------------------- relations


def _table_label(contract: ModelContract) -> str:
    return contract.source.table or "<source.query>"


def _split(name: str) -> tuple[str | None, str]:
    schema, _, table = name.rpartition(".")
    return schema or None, table


@dataclass(frozen=True)
class _Relation:
    """The feature log (a table or the wrapped query) with its columns and reflected SQL types."""

    label: str
    columns: dict[str, sa.types.TypeEngine[Any] | None]
    selectable: sa.FromClause
    text: frozenset[str] = frozenset()  # a query's columns PostgreSQL reports as text (its other types are unknown)


def _reflect_table(conn: sa.Connection, contract: ModelContract, name: str, what: str) -> dict[str, Any]:
    schema, table = _split(name)
    insp = sa.inspect(conn)
    if not insp.has_table(table, schema=schema):
        raise MissingTableError(
            f"{what} table not found in {conn.engine.url.render_as_string(hide_password=True)}",
            model=contract.name,
            table=name,
        )
    return {c["name"]: c["type"] for c in insp.get_columns(table, schema=schema)}


def _table_relation(conn: sa.Connection, contract: ModelContract, name: str, what: str) -> _Relation:
    """A reflected table as a lightweight `sa.table` (identifiers quoted by the dialect)."""
    cols = _reflect_table(conn, contract, name, what)
    schema, table = _split(name)
    return _Relation(name, cols, sa.table(table, *(sa.column(c) for c in cols), schema=schema))


def _log_relation(conn: sa.Connection, contract: ModelContract) -> _Relation:
    src = contract.source
    if src.table is not None:
        return _table_relation(conn, contract, src.table, "feature-log")
    probe = sa.text(src.query).columns().subquery("dg_probe")
    try:
        probed = conn.execute(sa.select(sa.literal_column("*")).select_from(probe).limit(0))
        keys = list(probed.keys())
        types = _probed_types(probed, keys, conn.dialect.name)
        text = _probed_text(probed, keys, conn.dialect.name)
    except sa.exc.DBAPIError as exc:
        conn.rollback()
        raise SourceError(
            f"source.query failed: {_first_line(exc)}", model=contract.name, table="<source.query>"
        ) from None
    sub = sa.text(src.query).columns(*(sa.column(k) for k in keys)).subquery("dg_source")
    return _Relation("<source.query>", types, sub, text)


_PG_INTEGER_OIDS = frozenset({20, 21, 23})  # int8, int2, int4
_PG_TEXT_OIDS = frozenset({25, 1042, 1043})  # text, char(n), varchar(n)


def _probed_text(probed: sa.CursorResult[Any], keys: list[str], dialect: str) -> frozenset[str]:
    """A query's columns PostgreSQL reports as text: a text timestamp is compared as timestamptz."""
    if dialect != "postgresql" or probed.cursor is None or not probed.cursor.description:
        return frozenset()
    described = zip(keys, probed.cursor.description, strict=False)
    return frozenset(name for name, d in described if d[1] in _PG_TEXT_OIDS)


def _probed_types(probed: sa.CursorResult[Any], keys: list[str], dialect: str) -> dict[str, Any]:
    """The SQL types a query's columns are known to have: PostgreSQL reports each column's type
    (only integers matter here: they choose the sample's hash); SQLite's are per value."""
    types: dict[str, Any] = dict.fromkeys(keys)
    if dialect == "postgresql" and probed.cursor is not None and probed.cursor.description:
        for name, described in zip(keys, probed.cursor.description, strict=False):
            if described[1] in _PG_INTEGER_OIDS:
                types[name] = sa.BigInteger()
    return types


# --------------------------------------------------------------------------- column roles

_NUMERIC_SQL = (sa.Integer, sa.Numeric, sa.Float, sa.Boolean, sa.String, sa.types.NullType)
_TIME_SQL = (sa.DateTime, sa.Date, sa.String, sa.types.NullType)
_CATEGORY_SQL = (sa.String, sa.Integer, sa.Numeric, sa.Float, sa.Boolean, sa.Enum, sa.types.NullType)


@dataclass(frozen=True)
class _Col:
    name: str
    role: str  # timestamp | id | numeric | categorical | label_binary | label_regression
    what: str  # for messages: "numeric feature", "prediction column", ...


def _log_columns(contract: ModelContract) -> list[_Col]:
    src = contract.source
    cols = [_Col(src.id_column, "id", "id column"), _Col(src.timestamp_column, "timestamp", "timestamp column")]
    for f in contract.features:
        cols.append(_Col(f.name, f.kind.value, f"{f.kind.value} feature"))
    if src.prediction_column:
        cols.append(_Col(src.prediction_column, "numeric", "prediction column"))
    return cols


def _label_col(contract: ModelContract) -> _Col:
    labels = _require_labels(contract)
    if contract.task is Task.binary_classification:
        return _Col(labels.column, "label_binary", "binary label column")
    return _Col(labels.column, "label_regression", "regression label column")


def _sql_type_problem(col: _Col, sqltype: sa.types.TypeEngine[Any] | None) -> str | None:
    if sqltype is None:  # a query's columns have no reflected type; values are checked after reading
        return None
    allowed: tuple[type, ...] = {
        "timestamp": _TIME_SQL,
        "categorical": _CATEGORY_SQL,
        "id": (sa.types.TypeEngine,),
    }.get(col.role, _NUMERIC_SQL)
    if isinstance(sqltype, allowed):
        return None
    return f"{col.what} {col.name!r} has SQL type {sqltype}, which cannot hold a {col.role.replace('_', ' ')} value"


# --------------------------------------------------------------------------- time filter


def _utc(value: datetime, name: str, contract: ModelContract) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"model {contract.name}: {name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"model {contract.name}: {name}={value.isoformat()} is a naive datetime; pass a tz-aware UTC datetime "
            "(e.g. datetime(..., tzinfo=timezone.utc) or pendulum's data_interval_start)"
        )
    return value.astimezone(UTC)


def _sqlite_text(value: datetime, sep: str) -> str:
    """Shortest UTC text for `value`: compares correctly against stored text with or without
    microseconds and with a `+00:00` or `Z` suffix (string order == time order)."""
    naive = value.astimezone(UTC).replace(tzinfo=None)
    text = naive.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    return f"{text}.{naive.microsecond:06d}" if naive.microsecond else text


# The widest UTC offset in use (Pacific/Kiritimati, +14:00; -12:00 is the other end). A SQLite text
# timestamp with an offset sorts by its local time, which is at most this far from its UTC time.
MAX_UTC_OFFSET = timedelta(hours=14)


def _shifted(value: datetime, by: timedelta) -> datetime:
    """`value + by`, held at the ends of datetime's range instead of overflowing."""
    try:
        return value + by
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC) if by > timedelta(0) else datetime.min.replace(tzinfo=UTC)


def _sqlite_offset(col: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """Text ending in a non-zero `+hh:mm` / `-hh:mm` offset (ISO 8601, as Python and pandas write
    it). Text without one pays a single substr: its 6th character from the end is a digit or ':'."""
    sign = sa.func.substr(col, -6, 1).op("IN")(sa.literal_column("('+', '-')"))
    return sa.and_(sign, sa.func.substr(col, -3, 1) == ":", sa.func.substr(col, -5) != "00:00")


def _sqlite_utc_text(col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """A text timestamp with an offset as UTC text, `YYYY-MM-DD HH:MM:SS` plus its fraction padded
    to 6 digits: comparable with _sqlite_text(..., " "). SQLite's strftime applies the offset
    (whole minutes, so the fraction is the stored one); it keeps only milliseconds of the fraction,
    hence the stored digits."""
    digits = sa.func.substr(col, 20, sa.func.length(col) - 25).op("||")("000000")
    fraction = sa.case((sa.func.substr(col, 20, 1) == ".", sa.func.substr(digits, 1, 7)), else_="")
    return sa.func.strftime("%Y-%m-%d %H:%M:%S", col).op("||")(fraction)


@dataclass(frozen=True)
class _Piece:
    """Stored text in [lo, hi) (SQLite), in the window when `when` holds (None: always)."""

    lo: str
    hi: str
    when: sa.ColumnElement[bool] | None


def _sqlite_pieces(col: sa.ColumnElement[Any], lo: datetime, hi: datetime) -> list[_Piece]:
    """The window [lo, hi) on SQLite as disjoint ranges of stored text, ascending.

    SQLite stores text, with a space or a 'T' between date and time, and maybe an offset. Text
    sorts by local time, which is within MAX_UTC_OFFSET of the UTC time, and ' ' sorts before
    'T'. Whether a row without an offset is in the window follows from the range it is in, or from
    its separator in the two ranges that hold both layouts ([lo with ' ', lo with 'T') and [hi with
    ' ', hi with 'T')). A row with an offset is judged by its UTC time (_sqlite_utc_text); telling
    whether a row has one costs a substr. The core, text between (lo + MAX_UTC_OFFSET) with 'T'
    and (hi - MAX_UTC_OFFSET) with ' ', is in the window whatever its layout and offset: no
    function call per row there."""
    wide_lo = _sqlite_text(_shifted(lo, -MAX_UTC_OFFSET), " ")
    wide_hi = _sqlite_text(_shifted(hi, MAX_UTC_OFFSET), "T")
    core_lo = _sqlite_text(_shifted(lo, MAX_UTC_OFFSET), "T")
    core_hi = _sqlite_text(_shifted(hi, -MAX_UTC_OFFSET), " ")
    lo_space, lo_t, hi_space, hi_t = (
        _sqlite_text(lo, " "),
        _sqlite_text(lo, "T"),
        _sqlite_text(hi, " "),
        _sqlite_text(hi, "T"),
    )
    offset, utc, sep = _sqlite_offset(col), _sqlite_utc_text(col), sa.func.substr(col, 11, 1)
    utc_in = sa.and_(utc >= lo_space, utc < hi_space)
    out, inside = sa.and_(offset, utc_in), sa.or_(sa.not_(offset), utc_in)  # plain rows out / in
    if lo_t >= hi_space:  # within one day: ' ' rows of the day in [lo_space, hi_space), 'T' rows in [lo_t, hi_t)
        return [
            _Piece(wide_lo, lo_space, out),
            _Piece(lo_space, hi_space, inside),
            _Piece(hi_space, lo_t, out),
            _Piece(lo_t, hi_t, inside),
            _Piece(hi_t, wide_hi, out),
        ]
    head = [
        _Piece(wide_lo, lo_space, out),
        _Piece(lo_space, lo_t, sa.case((offset, utc_in), else_=sep == " ")),
    ]
    tail = [
        _Piece(hi_space, hi_t, sa.case((offset, utc_in), else_=sep == "T")),
        _Piece(hi_t, wide_hi, out),
    ]
    if core_lo >= core_hi:  # about a day or less: no core
        return [*head, _Piece(lo_t, hi_space, inside), *tail]
    core = [_Piece(lo_t, core_lo, inside), _Piece(core_lo, core_hi, None), _Piece(core_hi, hi_space, inside)]
    return [*head, *core, *tail]


def _time_ranges(col: sa.ColumnElement[Any], lo: datetime, hi: datetime, dialect: str) -> list[sa.ColumnElement[bool]]:
    """`lo <= col < hi` as disjoint index ranges: counting each range on its own and adding up
    skips _time_filter's per-row branching (see _sqlite_pieces), the core (most rows) first."""
    if dialect != "sqlite":
        return [sa.and_(col >= lo, col < hi)]
    pieces = sorted(_sqlite_pieces(col, lo, hi), key=lambda p: p.when is not None)
    return [sa.and_(col >= p.lo, col < p.hi, *([p.when] if p.when is not None else [])) for p in pieces]


def _time_filter(col: sa.ColumnElement[Any], lo: datetime, hi: datetime, dialect: str) -> sa.ColumnElement[bool]:
    """`lo <= col < hi` as one condition: on SQLite, one index range around _time_ranges' pieces
    (the core first: most rows are in at the first branch of the OR)."""
    ranges = _time_ranges(col, lo, hi, dialect)
    if dialect != "sqlite":
        return ranges[0]
    pieces = _sqlite_pieces(col, lo, hi)
    return sa.and_(col >= pieces[0].lo, col < pieces[-1].hi, sa.or_(*ranges))


def _event_time(relation: _Relation, name: str, dialect: str) -> sa.ColumnElement[Any]:
    """The timestamp column as the database compares it. PostgreSQL text (a table's text column or
    a query's) is cast to timestamptz, so offsets count ('...-05:00') and naive text is UTC (every
    session runs in UTC); SQLite text is compared by _time_ranges."""
    col = relation.selectable.c[name]
    if dialect == "postgresql" and (isinstance(relation.columns.get(name), sa.String) or name in relation.text):
        return sa.cast(col, sa.DateTime(timezone=True))
    return col


# --------------------------------------------------------------------------- dtype conversion


_OFFSET_TEXT = r"\d:\d\d(?::\d\d(?:[.,]\d*)?)?\s*(?:Z|[+-]\d\d(?::?\d\d)?)$"  # a time of day, then Z or +hh:mm


def _offset_text(s: pd.Series) -> np.ndarray:
    """Which values are text ending in a UTC offset ('Z', '+00:00', '-05:00'), in Arrow (vectorised)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        text = pa.array(s, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all text (datetime objects among it)
        text = pa.array([v if isinstance(v, str) else None for v in s], type=pa.string())
    return pc.match_substring_regex(text, _OFFSET_TEXT).fill_null(False).to_numpy(zero_copy_only=False)


def _parse_iso(s: pd.Series) -> pd.Series:
    """ISO 8601 text as UTC datetime64[ns]. pandas (2.3) reads text without an offset that follows
    text with one in that offset ('2013-04-06T22:00:00-05:00' then '2013-04-07 23:00:00' gives
    2013-04-08 04:00 UTC), so text with and without an offset is parsed apart."""
    offset = _offset_text(s)
    if not offset.any() or offset.all():
        return pd.to_datetime(s, utc=True, format="ISO8601").dt.as_unit("ns")
    values = np.empty(len(s), dtype="datetime64[ns]")
    for part in (offset, ~offset):
        parsed = pd.to_datetime(s[part], utc=True, format="ISO8601").dt.as_unit("ns")
        values[part] = parsed.dt.tz_localize(None).to_numpy()
    return pd.Series(values, index=s.index, name=s.name).dt.tz_localize("UTC")


def _to_timestamp(s: pd.Series) -> pd.Series:
    """UTC datetime64[ns]. Raises ValueError naming how many values are not timestamps pandas can
    hold (unparseable text, or years outside 1677..2262 such as 2999 or 1500), with examples."""
    try:
        return _parse_iso(s) if s.dtype == object else pd.to_datetime(s, utc=True).dt.as_unit("ns")
    except (ValueError, TypeError, OverflowError) as exc:
        bad = _unreadable_timestamps(s)
        if not bad.any():
            raise ValueError(str(exc).splitlines()[0]) from None
        raise ValueError(
            f"{int(bad.sum())} of {len(s)} values are not timestamps between {pd.Timestamp.min:%Y-%m-%d} and "
            f"{pd.Timestamp.max:%Y-%m-%d} (the range pandas can hold), e.g. {_examples(s, bad)}"
        ) from None


def _unreadable_timestamps(s: pd.Series) -> pd.Series:
    """Non-null values that do not convert to datetime64[ns] one by one."""

    def unreadable(value: Any) -> bool:
        try:
            stamp = pd.Timestamp(value)
            return stamp is pd.NaT or stamp.as_unit("ns") is pd.NaT
        except (ValueError, TypeError, OverflowError):
            return True

    return s.notna() & s.map(unreadable).astype(bool)


def _to_numeric(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(float64 values, mask of non-null values that are not numbers)."""
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return s.astype("float64", copy=False), pd.Series(False, index=s.index)
    values = s.map(lambda v: float(v) if isinstance(v, bool) else v)
    coerced = pd.to_numeric(values, errors="coerce")
    bad = coerced.isna() & s.notna()
    return coerced.astype("float64"), bad


def _to_category(s: pd.Series) -> pd.Series:
    """str values with np.nan for missing; integral floats (INTEGER with NULLs) lose their '.0'."""
    if pd.api.types.is_float_dtype(s):
        nonnull = s.dropna()
        if len(nonnull) and bool((nonnull % 1 == 0).all()):
            s = s.astype("Int64")
    mask = s.isna().to_numpy()
    if s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"):
        # Already str (the usual case): keep the objects, only missing -> np.nan. astype(str) would
        # allocate a new string per row (about 60 MB per 1M-row column).
        return s.where(~mask, np.nan) if mask.any() else s
    out = pd.Series(np.full(len(s), np.nan, dtype=object), index=s.index, name=s.name)
    if (~mask).any():
        out[~mask] = s[~mask].astype(str).to_numpy(dtype=object)
    return out


def _examples(s: pd.Series, bad: pd.Series) -> str:
    values = list(dict.fromkeys(s[bad].head(50).tolist()))[:3]
    return ", ".join(repr(v) for v in values)


NUMERIC_TEXT_MODES = ("error", "nan", "keep")


def _convert(
    df: pd.DataFrame,
    cols: list[_Col],
    contract: ModelContract,
    table: str,
    strict: bool,
    raw: set[str],
    numeric_text: str = "error",
    type_problems: list[TypeProblem] | None = None,
) -> list[str]:
    """Enforce contract dtypes in place; return problems (strict: raise the first).

    Values of a numeric feature or the prediction that are not numbers, by `numeric_text`:
    "error" raises ColumnTypeError (strict), "nan" reads them as NaN and "keep" leaves the column
    as read; both record a TypeProblem in `type_problems` instead of a schema problem."""
    problems: list[str] = []

    def fail(col: _Col, detail: str) -> None:
        if strict or col.role in ("timestamp", "id") or col.role.startswith("label"):
            raise ColumnTypeError(detail, model=contract.name, table=table, column=col.name)
        problems.append(f"column {col.name!r}: {detail}; kept as read")
        raw.add(col.name)

    for col in cols:
        if col.name not in df.columns or col.name in raw:
            continue
        s = df[col.name]
        if col.role == "timestamp":
            try:
                df[col.name] = _to_timestamp(s)
            except (ValueError, TypeError) as exc:
                fail(col, f"{col.what} holds values that are not UTC timestamps ({exc})")
        elif col.role in ("numeric", "label_regression", "label_binary"):
            values, bad = _to_numeric(s)
            if bad.any() and col.role == "numeric" and numeric_text in ("nan", "keep"):
                if type_problems is not None:
                    examples = tuple(dict.fromkeys(str(v) for v in s[bad].head(50).tolist()))[:3]
                    type_problems.append(TypeProblem(col.name, col.what, int(bad.sum()), len(s), examples))
                log.warning(
                    "%s: %s %s in %s holds non-numeric values in %d of %d rows (e.g. %s); %s",
                    contract.name, col.what, col.name, table, int(bad.sum()), len(s), _examples(s, bad),
                    "read as missing" if numeric_text == "nan" else "kept as read",
                )  # fmt: skip
                if numeric_text == "nan":
                    df[col.name] = values
                continue
            if bad.any():
                fail(
                    col,
                    f"{col.what} holds non-numeric values in {int(bad.sum())} of {len(s)} rows, e.g. "
                    f"{_examples(s, bad)}",
                )
                continue
            if col.role == "label_binary":
                wrong = values.notna() & ~values.isin([0.0, 1.0])
                if wrong.any():
                    fail(col, f"{col.what} must be 0/1, found {_examples(s, wrong)} in {int(wrong.sum())} rows")
                df[col.name] = values.astype("int64")
            else:
                df[col.name] = values
        elif col.role == "categorical":
            df[col.name] = _to_category(s)
    return problems


def _empty_frame(cols: list[_Col], sqltypes: dict[str, Any]) -> pd.DataFrame:
    data: dict[str, pd.Series] = {}
    for col in cols:
        if col.role == "timestamp":
            dtype: Any = "datetime64[ns, UTC]"
        elif col.role in ("numeric", "label_regression"):
            dtype = "float64"
        elif col.role == "label_binary" or (col.role == "id" and isinstance(sqltypes.get(col.name), sa.Integer)):
            dtype = "int64"
        else:
            dtype = object
        data[col.name] = pd.Series([], dtype=dtype)
    return pd.DataFrame(data)


# --------------------------------------------------------------------------- reading


def _stream(conn: sa.Connection, stmt: sa.Select[Any], chunksize: int) -> tuple[pd.DataFrame | None, int]:
    """Stream the result in partitions of `chunksize` rows (server-side cursor on PostgreSQL)."""
    result = conn.execution_options(stream_results=True, yield_per=chunksize).execute(stmt)
    keys = list(result.keys())
    frames = [pd.DataFrame.from_records(part, columns=keys, coerce_float=True) for part in result.partitions()]
    frames = [f for f in frames if len(f)]
    if not frames:
        return None, 0
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return frame, len(frames)


def _execute(
    conn: sa.Connection,
    stmt: sa.Select[Any],
    chunksize: int,
    contract: ModelContract,
    table: str,
    sqltypes: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame | None, int]:
    """Rows of `stmt` as a frame. With the reflected SQL types of a table, PostgreSQL (psycopg2)
    and SQLite take a bulk path (see _bulk_read); anything else streams through SQLAlchemy."""
    try:
        if sqltypes is not None and _bulk_readable(conn, stmt, sqltypes):
            return _bulk_read(conn, stmt, chunksize, sqltypes)
        return _stream(conn, stmt, chunksize)
    except sa.exc.DBAPIError as exc:
        raise SourceError(f"query failed: {_first_line(exc)}", model=contract.name, table=table) from None
    except Exception as exc:  # the DBAPI's own errors when the bulk path bypasses SQLAlchemy
        if type(exc).__module__.split(".")[0] in ("psycopg2", "sqlite3"):
            raise SourceError(f"query failed: {_first_line(exc)}", model=contract.name, table=table) from None
        raise


# --------------------------------------------------------------------------- bulk reads
#
# Streaming 1M rows through SQLAlchemy Row objects and DataFrame.from_records costs far more
# than the query (profiled: about 25 s of a 1M-row SQLite window on a loaded 2-core machine).
# PostgreSQL: COPY (SELECT ...) TO STDOUT as CSV, parsed by pyarrow with column types taken from
# the reflected SQL types. SQLite: the raw sqlite3 cursor, columns built with numpy per chunk.
# Values still bind as parameters (psycopg2's mogrify quotes them for the COPY text) and every
# result still goes through _convert, so dtypes and schema problems are the same as streaming.


def _arrow_type(sqltype: Any) -> Any:
    """pyarrow type for a reflected SQL type, or None when it must be read as text."""
    import pyarrow as pa

    if isinstance(sqltype, sa.Boolean):
        return pa.bool_()
    if isinstance(sqltype, sa.Integer):
        return pa.int64()
    if isinstance(sqltype, (sa.Float, sa.Numeric)):
        return pa.float64()
    if isinstance(sqltype, sa.DateTime):  # COPY writes '2024-02-01 00:00:03.024+00' (session in UTC)
        return pa.timestamp("us", tz="UTC") if sqltype.timezone else pa.timestamp("us")
    return pa.string()  # text, timestamps (parsed by _convert), anything else as read


def _bulk_readable(conn: sa.Connection, stmt: sa.Select[Any], sqltypes: dict[str, Any]) -> bool:
    names = [c.name for c in stmt.selected_columns]
    if any(sqltypes.get(n) is None for n in names):
        return False  # a query relation: no reflected types to parse by
    return conn.dialect.name == "sqlite" or (conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg2")


def _bulk_read(
    conn: sa.Connection, stmt: sa.Select[Any], chunksize: int, sqltypes: dict[str, Any]
) -> tuple[pd.DataFrame | None, int]:
    compiled = stmt.compile(dialect=conn.dialect)
    names = [c.name for c in stmt.selected_columns]
    dbapi = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        try:
            frame = _pg_copy(dbapi, compiled, names, sqltypes)
        except ValueError as exc:  # pyarrow.ArrowInvalid: a value the typed parser rejects (e.g. 'infinity')
            log.info("bulk read fell back to streaming: %s", _first_line(exc))
            return _stream(conn, stmt, chunksize)
        return frame, _chunks(frame, chunksize)
    database = conn.engine.url
    if _sqlite_file(database):
        frame = _sqlite_arrow(Path(str(database.database)), compiled, names, sqltypes)
        if frame is not _NOT_READ:
            return frame, _chunks(frame, chunksize)
    return _sqlite_fetch(dbapi, compiled, names, chunksize, sqltypes)


def _chunks(frame: pd.DataFrame | None, chunksize: int) -> int:
    """A frame read in one piece (COPY, Arrow), counted in chunksize-row units so stats read the
    same on every path."""
    return 0 if frame is None else -(-len(frame) // chunksize)


def _pg_copy(dbapi: Any, compiled: Any, names: list[str], sqltypes: dict[str, Any]) -> pd.DataFrame | None:
    import tempfile

    import pyarrow as pa

    with tempfile.TemporaryFile() as buf:  # on disk, not in memory: the CSV is larger than the frame
        with dbapi.cursor() as cur:
            query = cur.mogrify(compiled.string, compiled.params).decode()
            cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)", buf)
        if buf.tell() == 0:
            return None
        buf.seek(0)
        table = _parse_csv(buf, names, {n: _arrow_type(sqltypes[n]) for n in names})
    frame = table.to_pandas(split_blocks=True, self_destruct=True)  # strings: object with None, as DBAPIs give
    del table
    pa.default_memory_pool().release_unused()  # hand arrow's freed buffers back instead of caching them
    return frame


def _parse_csv(buf: Any, names: list[str], types: dict[str, Any]) -> Any:
    import pyarrow.csv as pacsv

    return pacsv.read_csv(
        buf,
        read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            null_values=[""],  # COPY writes NULL unquoted and empty; "" (quoted) stays an empty string
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    )


_NOT_READ: Any = object()  # _sqlite_arrow's "use the sqlite3 cursor instead"


def _sqlite_arrow(path: Path, compiled: Any, names: list[str], sqltypes: dict[str, Any]) -> Any:
    """The query through ADBC's SQLite driver: columns come out as Arrow arrays in C, with no
    Python object per value (the sqlite3 cursor builds one per value: 2.7M for a 100k-row
    sample, most of the read's time). Opened read-only.

    Arrow needs one type per column; SQLite stores any value in any column. ADBC infers the type
    from the first rows and fails on a later value of another type, and it reads numbers in a
    column that starts with text as text. Both come back as _NOT_READ: the sqlite3 cursor then
    reads the column as stored, so _check_columns names the odd values exactly as before. (Left
    to ADBC: numbers among text in a column with no text affinity, e.g. DATETIME, read as text.)"""
    import adbc_driver_sqlite.dbapi as adbc
    import pyarrow as pa

    params = [compiled.params[k] for k in compiled.positiontup or ()]
    try:
        with adbc.connect(f"{path.resolve().as_uri()}?mode=ro") as conn, conn.cursor() as cur:
            cur.execute(compiled.string, params or None)
            table = cur.fetch_arrow_table()
    except (adbc.Error, OSError) as exc:  # OSError: pyarrow's, for a value of another type in later rows
        log.debug("sqlite: reading with the sqlite3 cursor (%s)", _first_line(exc))
        return _NOT_READ
    if table.num_rows == 0:
        return None
    columns = []
    for name, column in zip(names, table.columns, strict=True):
        numeric = isinstance(sqltypes[name], (sa.Float, sa.Numeric, sa.Integer))
        if column.null_count == len(column):  # typed as the sqlite3 path types an all-NULL column
            column = pa.nulls(len(column), pa.float64() if numeric else pa.string())
        elif numeric and not (pa.types.is_int64(column.type) or pa.types.is_float64(column.type)):
            log.debug("sqlite: numeric column %s came back as %s; reading with the sqlite3 cursor", name, column.type)
            return _NOT_READ
        elif not numeric and not pa.types.is_string(column.type):
            log.debug("sqlite: text column %s came back as %s; reading with the sqlite3 cursor", name, column.type)
            return _NOT_READ
        columns.append(column)
    table = pa.table(columns, names=names)
    # Strings become objects with None, as the sqlite3 path gives, one object per distinct value.
    return table.to_pandas(split_blocks=True, self_destruct=True)


def _sqlite_fetch(
    dbapi: Any, compiled: Any, names: list[str], chunksize: int, sqltypes: dict[str, Any]
) -> tuple[pd.DataFrame | None, int]:
    params = [compiled.params[k] for k in compiled.positiontup or ()]
    numeric = {n for n in names if isinstance(sqltypes[n], (sa.Float, sa.Numeric, sa.Integer))}
    cur = dbapi.cursor()
    try:
        cur.execute(compiled.string, params)
        parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
        chunks = 0
        while rows := cur.fetchmany(chunksize):
            chunks += 1
            for name, values in zip(names, zip(*rows, strict=True), strict=True):
                parts[name].append(_column(values, name in numeric))
    finally:
        cur.close()
    if not chunks:
        return None, 0
    columns = {}
    for name in names:  # one column's chunks at a time: peak memory is the frame plus one column
        columns[name] = _concat(parts.pop(name))
    return pd.DataFrame(columns), chunks


def _column(values: tuple[Any, ...], numeric: bool) -> np.ndarray:
    """A numeric SQL column as numpy infers it (int64 / float64), with NULLs as nan (float64);
    text in it (SQLite is dynamically typed) and every other column stay objects, as read."""
    if numeric:
        try:
            arr = np.array(values)
        except (ValueError, OverflowError):
            arr = None
        if arr is not None and arr.dtype.kind in "if":
            return arr
        if arr is None or arr.dtype.kind == "O":  # NULLs among numbers
            try:
                return np.array(values, dtype="float64")
            except (TypeError, ValueError):
                pass
    distinct: dict[Any, Any] = {}
    if len(set(values)) * 2 < len(values):  # categories: one object per distinct value, not per row
        values = tuple(distinct.setdefault(v, v) for v in values)
    return np.array(values, dtype=object)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    if len(parts) == 1:
        return parts[0]
    if len({p.dtype for p in parts}) > 1:
        parts = [p.astype(object) for p in parts]
    return np.concatenate(parts)


def _check_columns(
    relation: _Relation, cols: list[_Col], contract: ModelContract, strict: bool
) -> tuple[list[_Col], list[str], set[str]]:
    """Columns to read, problems (lenient mode) and columns to keep as read (bad SQL type)."""
    missing = [c for c in cols if c.name not in relation.columns]
    required_missing = [c for c in missing if c.role in ("timestamp", "id") or c.role.startswith("label")]
    if missing and (strict or required_missing):
        first = (required_missing or missing)[0]
        names = ", ".join(f"{c.what} {c.name!r}" for c in missing)
        raise MissingColumnError(
            f"not found: {names} (columns present: {sorted(relation.columns)})",
            model=contract.name,
            table=relation.label,
            column=first.name,
        )
    problems = [f"column {c.name!r}: {c.what} not found in {relation.label}" for c in missing]
    raw: set[str] = set()
    for c in cols:
        if c in missing:
            continue
        problem = _sql_type_problem(c, relation.columns[c.name])
        if problem is None:
            continue
        if strict or c.role in ("timestamp", "id") or c.role.startswith("label"):
            raise ColumnTypeError(problem, model=contract.name, table=relation.label, column=c.name)
        problems.append(f"column {c.name!r}: {problem}; kept as read")
        raw.add(c.name)
    return [c for c in cols if c not in missing], problems, raw


def _numeric_text_mode(numeric_text: str | None, strict: bool) -> str:
    mode = numeric_text or ("error" if strict else "nan")
    if mode not in NUMERIC_TEXT_MODES:
        raise ValueError(f"numeric_text must be one of {NUMERIC_TEXT_MODES}, got {numeric_text!r}")
    return mode


@_names_interval
def read_window(
    contract: ModelContract,
    start: datetime,
    end: datetime,
    *,
    url: str | None = None,
    chunksize: int = 50_000,
    strict: bool = True,
    allow_empty: bool = False,
    sample_rows: int | None = None,
    seed: int = 0,
    exact_facts: bool = True,
    numeric_text: str | None = None,
) -> tuple[pd.DataFrame, WindowStats]:
    """Rows of the feature log with start <= timestamp < end: id, timestamp, features, prediction.

    The label column is never read here (even when it lives in the log table): labels are
    only trustworthy once matured, which `read_labels` decides.

    With `sample_rows`, the database counts the window first; a window holding more rows is
    read as a seeded sample of about `sample_rows` rows (see "sampled windows" below), `rows`,
    `min_ts` and `max_ts` stay those of the whole window, and WindowStats.facts holds what the
    sample cannot tell exactly (NULLs, duplicate ids), unless `exact_facts` is False (a caller
    that only wants a bounded sample). A window read whole has no facts: the frame is exact.

    `numeric_text`: what values of a numeric feature or of the prediction that are not numbers do
    (see _convert): "error" (the default when strict), "nan" (the default when not: the monitoring
    gate, which fails the column's `types` check from WindowStats.type_problems) or "keep" (left as
    read for the caller to judge row by row, as training does).

    Errors (SourceError) name the model, table, column and this interval."""
    lo, hi = _utc(start, "start", contract), _utc(end, "end", contract)
    text_mode = _numeric_text_mode(numeric_text, strict)
    type_problems: list[TypeProblem] = []
    if lo >= hi:
        raise ValueError(f"model {contract.name}: empty interval, start {lo.isoformat()} >= end {hi.isoformat()}")
    if chunksize < 1:
        raise ValueError("chunksize must be >= 1")
    src = contract.source
    with _connect(contract, url) as conn:
        relation = _log_relation(conn, contract)
        cols, problems, raw = _check_columns(relation, _log_columns(contract), contract, strict)
        rel, dialect = relation.selectable, conn.dialect.name
        window = _Window.of(_event_time(relation, src.timestamp_column, dialect), lo, hi, dialect)
        where = window.where
        counting: AbstractContextManager[_Counted | None] = nullcontext()
        if sample_rows is not None:
            counting = _window_facts(conn, rel, cols, window, contract, relation.label, sample_rows, exact_facts)
        with counting as counted:
            share = None if counted is None else _sample_fraction(counted.rows, sample_rows)
            sample_after_read = share  # unless the database samples it below
            if share is not None:
                keep = _sample_filter(conn, relation, src.id_column, share, seed)
                if keep is not None:
                    where, sample_after_read = sa.and_(where, keep), None
            stmt = sa.select(*(rel.c[c.name] for c in cols)).where(where)
            frame, chunks = _execute(conn, stmt, chunksize, contract, relation.label, relation.columns)
            window_facts = counted.finish() if counted is not None else None
    if frame is not None and sample_after_read is not None:  # no sampling in SQL: a seeded sample of what was read
        log.info(
            "%s: %s cannot sample in SQL; sampling %.2f%% after reading",
            contract.name,
            relation.label,
            100 * sample_after_read,
        )
        frame = frame.sample(frac=sample_after_read, random_state=seed)
    if frame is None:
        if not allow_empty:
            raise EmptyWindowError(
                f"no rows with {src.timestamp_column} in [{lo.isoformat()}, {hi.isoformat()})",
                model=contract.name,
                table=relation.label,
                column=src.timestamp_column,
            )
        frame = _empty_frame(cols, relation.columns)
    else:
        problems += _convert(frame, cols, contract, relation.label, strict, raw, text_mode, type_problems)
        frame, misplaced = _outside_window(frame, contract, relation.label, lo, hi, strict)
        problems += misplaced
        frame = _sorted(frame, src.timestamp_column, src.id_column)
    stats = replace(_stats(contract, lo, hi, frame, chunks, problems), type_problems=tuple(type_problems))
    if counted is not None and share is not None:  # sampled: the whole window's size and bounds
        stats = replace(
            stats,
            rows=counted.rows,
            min_ts=counted.min_ts,
            max_ts=counted.max_ts,
            facts=window_facts,
            read_rows=len(frame),
        )
    log.info(
        "%s: read %s in %d chunks from %s for [%s, %s); timestamps %s .. %s%s",
        contract.name,
        f"a seeded sample of {len(frame)} of {stats.rows} rows" if stats.sampled else f"{stats.rows} rows",
        chunks,
        relation.label,
        lo.isoformat(),
        hi.isoformat(),
        stats.min_ts,
        stats.max_ts,
        f"; schema problems: {problems}" if problems else "",
    )
    return frame, stats


def _outside_window(
    frame: pd.DataFrame, contract: ModelContract, table: str, lo: datetime, hi: datetime, strict: bool
) -> tuple[pd.DataFrame, list[str]]:
    """Rows the database placed in [lo, hi) whose timestamp, read, is outside it: SQLite text with
    an offset SQLite cannot read ('-0500', '+05', beyond +-14:00) is compared by its local time.
    Strict: a ColumnTypeError; lenient: the rows are left out and named as a schema problem, so
    the run's critical `schema` check fails."""
    ts = frame[contract.source.timestamp_column]
    if not pd.api.types.is_datetime64_any_dtype(ts):
        return frame, []
    outside = ts.notna() & ((ts < pd.Timestamp(lo)) | (ts >= pd.Timestamp(hi)))
    if not outside.any():
        return frame, []
    column = contract.source.timestamp_column
    detail = (
        f"{int(outside.sum())} rows have a UTC time outside the interval they were filed in "
        f"(e.g. {', '.join(str(t) for t in ts[outside].head(3))}): their text has a UTC offset the database "
        "compares by local time; write offsets as +hh:mm within +-14:00, or UTC"
    )
    if strict:
        raise ColumnTypeError(detail, model=contract.name, table=table, column=column)
    log.warning("%s: %s in %s: %s; left out", contract.name, column, table, detail)
    return frame[~outside.to_numpy()], [f"column {column!r}: {detail}; left out"]


# --------------------------------------------------------------------------- sampled windows
#
# A window of millions of rows is not read whole. The database answers what must be exact
# (rows, oldest and newest event, NULLs per column, rows sharing an id: two aggregate queries)
# and returns a deterministic sample for what is a share or a distribution (types, ranges,
# domains, drift, proxy metrics). A row is kept when a seeded hash of its id falls below
# fraction x 2^32, so the time-range filter still uses the index, rows sharing an id are kept
# or dropped together, and the same data and seed give the same sample. PostgreSQL hashes in
# SQL (hashint8extended for integer ids, hashtextextended for others). SQLite hashes integer
# ids in SQL (Fibonacci hashing modulo 2^31 - 1) and other ids with the same hash in a
# deterministic Python function registered on the connection.

_HASH_SPACE = 1 << 32  # PostgreSQL: the low 32 bits of its 64-bit hash
_PRIME = 2_147_483_647  # SQLite: 2^31 - 1, so (id mod P) x _WEYL stays below 2^62, inside its integers
_WEYL = 1_327_217_885  # P / golden ratio: consecutive ids land evenly spread over [0, P)


def _sqlite_integer_hash(key: sa.ColumnElement[Any], seed: int) -> sa.ColumnElement[Any]:
    """hash(id) in [0, P) in SQL: multiplicative (Fibonacci) hashing of an integer id, shifted by
    the seed. SQLite evaluates it in its VM: 0.3 s per million rows, where calling a Python
    function per row takes 1.0 s."""
    p = sa.literal(_PRIME)
    return ((key % p + p) % p * sa.literal(_WEYL) + sa.literal(_salt(seed))) % p


def _salt(seed: int) -> int:
    return (seed + 1) * _WEYL % _PRIME


def _sqlite_sample_hash(seed: int) -> Any:
    """The same hash as a Python function on the connection, for ids SQLite does not know to be
    integers (a query's columns, text ids: CRC-32 of the text first)."""
    import zlib

    salt = _salt(seed)

    def sample_hash(value: Any) -> int:
        x = value if type(value) is int else zlib.crc32(str(value).encode())
        return (x % _PRIME * _WEYL + salt) % _PRIME  # Python's % is never negative, as (x % p + p) % p

    return sample_hash


def _sample_fraction(rows: int, sample_rows: int | None) -> float | None:
    """The share of a window of `rows` rows to read; None when it is read whole."""
    return sample_rows / rows if sample_rows is not None and rows > sample_rows else None


def _sample_filter(
    conn: sa.Connection, relation: _Relation, id_column: str, fraction: float, seed: int
) -> sa.ColumnElement[bool] | None:
    """Keep about `fraction` of the rows, deterministically; None when the database cannot."""
    key = relation.selectable.c[id_column]
    integer = isinstance(relation.columns.get(id_column), sa.Integer)
    if conn.dialect.name == "postgresql":
        salt = sa.literal(seed, sa.BigInteger)
        if integer:  # hashing the integer itself: 4 s less per 10M rows than hashing its text
            hashed = sa.func.hashint8extended(sa.cast(key, sa.BigInteger), salt)
        else:
            hashed = sa.func.hashtextextended(sa.cast(key, sa.Text), salt)
        return hashed.op("&")(_HASH_SPACE - 1) < int(fraction * _HASH_SPACE)
    if conn.dialect.name == "sqlite":
        bound = int(fraction * _PRIME)
        if integer:
            return _sqlite_integer_hash(key, seed) < bound
        conn.connection.driver_connection.create_function(
            "dg_sample_hash", 1, _sqlite_sample_hash(seed), deterministic=True
        )
        return sa.func.dg_sample_hash(key) < bound
    return None


def _shareable(conn: sa.Connection) -> bool:
    """Would a second connection of this engine see the same database? (Not an in-memory SQLite.)"""
    if conn.dialect.name == "postgresql":
        return True
    return conn.dialect.name == "sqlite" and _sqlite_file(conn.engine.url)


@dataclass(frozen=True)
class _Counted:
    """The whole window's size and time bounds; `finish` adds the scans, once they are in."""

    rows: int
    min_ts: datetime | None
    max_ts: datetime | None
    finish: Callable[[], WindowFacts | None]


def _query_failed(exc: sa.exc.DBAPIError, contract: ModelContract, table: str) -> SourceError:
    return SourceError(f"query failed: {_first_line(exc)}", model=contract.name, table=table)


@contextmanager
def _meanwhile(
    conn: sa.Connection, stmt: sa.Select[Any], contract: ModelContract, table: str
) -> Iterator[Callable[[], sa.Row[Any]]]:
    """The one row of an aggregate `stmt`, from a callable. Where a second connection sees the
    same data (PostgreSQL, a SQLite file) the query runs there, on another core, while this
    connection reads; otherwise on this connection when the callable is called."""

    def one(on: sa.Connection) -> sa.Row[Any]:
        try:
            return on.execute(stmt).one()
        except sa.exc.DBAPIError as exc:
            raise _query_failed(exc, contract, table) from None

    def on_second_backend() -> sa.Row[Any]:
        with conn.engine.connect() as second:
            return one(second)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dg-aggregate") as pool:  # waits for it on exit
        pending = pool.submit(on_second_backend) if _shareable(conn) else None
        yield pending.result if pending is not None else lambda: one(conn)


def _ts_bounds(
    firsts: list[Any], lasts: list[Any], contract: ModelContract, table: str
) -> tuple[datetime | None, datetime | None]:
    """The earliest of `firsts` and the latest of `lasts` as UTC datetimes (SQLite answers text)."""
    firsts, lasts = [v for v in firsts if v is not None], [v for v in lasts if v is not None]
    if not firsts or not lasts:
        return None, None
    edges = pd.Series(firsts + lasts, dtype=object)
    try:
        times = _to_timestamp(edges)
    except ValueError:
        bad = _unreadable_timestamps(edges)
        raise ColumnTypeError(
            f"the window's oldest or newest event ({_examples(edges, bad)}) is not a UTC timestamp between "
            f"{pd.Timestamp.min:%Y-%m-%d} and {pd.Timestamp.max:%Y-%m-%d} (the range pandas can hold)",
            model=contract.name,
            table=table,
            column=contract.source.timestamp_column,
        ) from None
    return times.iloc[: len(firsts)].min().to_pydatetime(), times.iloc[len(firsts) :].max().to_pydatetime()


def _sqlite_edge_rows(
    conn: sa.Connection,
    window: _Window,
    first: Any,
    last: Any,
    contract: ModelContract,
    table: str,
) -> tuple[datetime | None, datetime | None]:
    """The window's first and last event on SQLite. `first` and `last` are the text MIN and MAX of
    its rows without an offset: text order follows time only within one layout ('2024-02-01 09:00'
    sorts before '2024-02-01T08:00'), but they do find the first and last day; on those days each
    layout's first and last row is one index seek.

    Text with an offset sorts by its local time: a row with an offset is earlier than the first
    row without one only if its text is less than MAX_UTC_OFFSET past that row's time, so only
    those rows are read one by one (likewise at the end); all of them when no row lacks an offset."""
    ts, lo, hi = window.ts, window.lo, window.hi
    plain = sa.not_(_sqlite_offset(ts))

    def layouts(day: str) -> list[sa.ColumnElement[bool]]:
        return [  # the rows whose text starts with the day and the separator, within the window
            sa.and_(ts >= max(_sqlite_text(lo, sep), day + sep), ts < min(_sqlite_text(hi, sep), day + after), plain)
            for sep, after in ((" ", "!"), ("T", "U"))
        ]

    firsts, lasts = [first], [last]
    try:
        if first is not None:
            seeks = [sa.select(sa.func.min(ts)).where(part).scalar_subquery() for part in layouts(str(first)[:10])]
            seeks += [sa.select(sa.func.max(ts)).where(part).scalar_subquery() for part in layouts(str(last)[:10])]
            space_first, t_first, space_last, t_last = conn.execute(sa.select(*seeks)).one()
            firsts, lasts = [first, space_first, t_first], [last, space_last, t_last]
        oldest, newest = _ts_bounds(firsts, lasts, contract, table)
        utc, offset = _sqlite_utc_text(ts), _sqlite_offset(ts)
        in_window = sa.and_(offset, utc >= _sqlite_text(lo, " "), utc < _sqlite_text(hi, " "))
        # An offset row before `oldest` has its local time before oldest + MAX_UTC_OFFSET (after: alike).
        before = _shifted(oldest if oldest is not None else hi, MAX_UTC_OFFSET)
        after = _shifted(newest if newest is not None else lo, -MAX_UTC_OFFSET)
        earliest = sa.select(sa.func.min(utc)).where(
            ts >= _sqlite_text(_shifted(lo, -MAX_UTC_OFFSET), " "), ts < _sqlite_text(before, "T"), in_window
        )
        latest = sa.select(sa.func.max(utc)).where(
            ts >= _sqlite_text(after, " "), ts < _sqlite_text(_shifted(hi, MAX_UTC_OFFSET), "T"), in_window
        )
        offset_first, offset_last = conn.execute(sa.select(earliest.scalar_subquery(), latest.scalar_subquery())).one()
    except sa.exc.DBAPIError as exc:
        raise _query_failed(exc, contract, table) from None
    return _ts_bounds([*firsts, offset_first], [*lasts, offset_last], contract, table)


_NULL_SCAN_SLICES = {"sqlite": 2}  # SQLite steps one aggregate per column per row on one core


def _time_slices(lo: datetime, hi: datetime, dialect: str) -> list[tuple[datetime, datetime]]:
    """[lo, hi) cut into equal spans, one NULL scan each (see _window_facts). SQLite runs a query
    on one core: 27 columns x 10M rows take it 11 s, so two halves on two connections share the
    work with the id scan and the sample read (the extract's queries at 10M rows: 14 s -> 11 s).
    PostgreSQL plans a parallel scan with its own workers: one query."""
    n = _NULL_SCAN_SLICES.get(dialect, 1)
    cuts = [lo + (hi - lo) * i / n for i in range(n)] + [hi]
    return list(itertools.pairwise(cuts))


def _slice_filters(
    ts: sa.ColumnElement[Any], where: sa.ColumnElement[bool], lo: datetime, hi: datetime, dialect: str
) -> list[sa.ColumnElement[bool]]:
    """The window `where` cut at _time_slices' cuts. On SQLite the cuts are made in the stored
    text (at the cut with ' '): every row of the window is in exactly one slice, whatever its
    layout or offset, and the slices add up to one widened index range, not one each."""

    def cut(t: datetime) -> Any:
        return _sqlite_text(t, " ") if dialect == "sqlite" else t

    return [
        sa.and_(where, *([ts >= cut(a)] if a != lo else []), *([ts < cut(b)] if b != hi else []))
        for a, b in _time_slices(lo, hi, dialect)
    ]


@dataclass(frozen=True)
class _Window:
    """One time window [lo, hi) and its filters for counting it: the whole (`where`), its disjoint
    index ranges (`ranges`, counted apart) and its NULL-scan time slices (`slices`, see _time_slices)."""

    ts: sa.ColumnElement[Any]  # the timestamp column as compared (see _event_time)
    lo: datetime
    hi: datetime
    where: sa.ColumnElement[bool]
    ranges: list[sa.ColumnElement[bool]]
    slices: list[sa.ColumnElement[bool]]

    @classmethod
    def of(cls, ts: sa.ColumnElement[Any], lo: datetime, hi: datetime, dialect: str) -> _Window:
        where = _time_filter(ts, lo, hi, dialect)
        return cls(
            ts=ts,
            lo=lo,
            hi=hi,
            where=where,
            ranges=_time_ranges(ts, lo, hi, dialect),
            slices=_slice_filters(ts, where, lo, hi, dialect),
        )


@contextmanager
def _window_facts(
    conn: sa.Connection,
    rel: sa.FromClause,
    cols: list[_Col],
    window: _Window,
    contract: ModelContract,
    table: str,
    sample_rows: int,
    exact: bool,
) -> Iterator[_Counted]:
    """Count the window (rows and time bounds, from the timestamp index) and, when it will be
    sampled (and `exact`), its exact facts too. The rows are counted per index range and the
    bounds in queries of their own, each a seek: MIN and MAX beside COUNT in one query would
    compare every row's text (SQLite, 10M rows: 3.1 s; apart: 0.5 s).

    The NULLs per column and the distinct ids each need a scan of every row, as long as reading
    the sample: they run meanwhile (see _meanwhile), from before the count; the NULLs one scan
    per time slice of `window.slices`. Only when some id repeats does a GROUP BY count the rows
    sharing one (on PostgreSQL at 10M rows that GROUP BY spills to disk: 11 s, where counting
    distinct ids takes 2 s). A window read whole uses none of it: its frame is exact."""
    src = contract.source
    ts, key = window.ts, rel.c[src.id_column]
    where = window.where
    sqlite = conn.dialect.name == "sqlite"
    edge = sa.and_(where, sa.not_(_sqlite_offset(ts))) if sqlite else where  # text rows with an offset: apart
    head = sa.select(
        *(sa.select(sa.func.count()).select_from(rel).where(part).scalar_subquery() for part in window.ranges),
        sa.select(sa.func.min(ts)).where(edge).scalar_subquery(),
        sa.select(sa.func.max(ts)).where(edge).scalar_subquery(),
    )
    scans = [  # apart, so two cores share them: the NULL scans read every column, the ids scan one
        sa.select(sa.func.count(key), sa.func.count(sa.distinct(key))).where(where),
        *(sa.select(*(sa.func.count(rel.c[c.name]) for c in cols)).where(part) for part in window.slices),
    ]
    groups = (
        sa.select(sa.func.count().label("n"))
        .where(where, key.is_not(None))
        .group_by(key)
        .having(sa.func.count() > 1)
        .subquery("dg_duplicates")
    )
    duplicates = sa.select(sa.func.coalesce(sa.func.sum(groups.c.n), 0))
    with ExitStack() as running:
        # Started before the count: a large window needs them anyway, a small one's are cheap.
        pending = [running.enter_context(_meanwhile(conn, scan, contract, table)) for scan in scans] if exact else []
        try:
            *counts, first, last = conn.execute(head).one()
        except sa.exc.DBAPIError as exc:
            raise _query_failed(exc, contract, table) from None
        rows = sum(counts)
        if rows and sqlite:
            oldest, newest = _sqlite_edge_rows(conn, window, first, last, contract, table)
        else:
            oldest, newest = _ts_bounds([first], [last], contract, table)
        if not exact or _sample_fraction(rows, sample_rows) is None:
            yield _Counted(int(rows), oldest, newest, lambda: None)
            return

        def count_duplicates() -> int:
            try:
                return int(conn.execute(duplicates).scalar_one())
            except sa.exc.DBAPIError as exc:
                raise _query_failed(exc, contract, table) from None

        def finish() -> WindowFacts:
            ids_scan, *null_scans = pending  # in the order of `scans`
            ids, distinct = ids_scan()
            filled = [sum(counts) for counts in zip(*(scan() for scan in null_scans), strict=True)]
            return WindowFacts(
                rows=int(rows),
                min_ts=oldest,
                max_ts=newest,
                nulls={c.name: int(rows) - int(n) for c, n in zip(cols, filled, strict=True)},
                duplicate_rows=count_duplicates() if ids > distinct else 0,
            )

        yield _Counted(int(rows), oldest, newest, finish)


def _sorted(frame: pd.DataFrame, ts: str, key: str) -> pd.DataFrame:
    """Sorted by (timestamp, id). Logs are usually read back in time order already; checking
    that is one vectorised pass, while sorting copies the whole frame."""
    t, k = np.asarray(frame[ts].values), np.asarray(frame[key].values)  # tz-aware -> UTC datetime64
    try:
        later = t[1:] > t[:-1]
        tie = (t[1:] == t[:-1]) & (k[1:] > k[:-1])
        if len(frame) < 2 or (not frame[ts].isna().any() and bool((later | tie).all())):
            plain = isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1
            return frame if plain else frame.reset_index(drop=True)
    except TypeError:  # ids of mixed types: let pandas decide
        pass
    return frame.sort_values([ts, key], kind="mergesort", ignore_index=True)


def _stats(
    contract: ModelContract, lo: datetime, hi: datetime, frame: pd.DataFrame, chunks: int, problems: list[str]
) -> WindowStats:
    ts = frame[contract.source.timestamp_column]
    empty = len(frame) == 0
    return WindowStats(
        model=contract.name,
        start=lo,
        end=hi,
        rows=len(frame),
        min_ts=None if empty else ts.min().to_pydatetime(),
        max_ts=None if empty else ts.max().to_pydatetime(),
        chunks=chunks,
        schema_problems=tuple(problems),
    )


def _require_labels(contract: ModelContract) -> LabelSource:
    if contract.source.labels is None:
        raise SourceError(
            "the contract has no source.labels section", model=contract.name, table=_table_label(contract)
        )
    return contract.source.labels


@dataclass(frozen=True)
class _LabelsQuery:
    """The matured-labels SELECT (key, label) over the log joined with its labels, or None when
    nothing in the interval has matured yet."""

    stmt: sa.Select[Any] | None
    log_relation: _Relation
    table: str  # where the labels live, for messages
    key: _Col
    label: _Col

    @property
    def log(self) -> sa.FromClause:
        return self.log_relation.selectable


@dataclass(frozen=True)
class _Labelled:
    """Exact facts of the log rows in a window whose id has a matured label, from the database."""

    rows: int
    min_ts: datetime | None
    max_ts: datetime | None


def _labels_query(
    conn: sa.Connection, contract: ModelContract, lo: datetime, hi: datetime, *, need_id: bool
) -> _LabelsQuery:
    """Matured labels of events with lo <= timestamp < hi; `need_id`: the log's id column is used
    (to sample or count) even when the labels live in the log table."""
    src, key, label = contract.source, contract.source.label_key, _label_col(contract)
    labels = _require_labels(contract)
    key_col = _Col(key, "id", "label join key")
    id_col = _Col(src.id_column, "id", "id column")
    relation = _log_relation(conn, contract)
    log_rel = relation.selectable
    _check_columns(relation, [_Col(src.timestamp_column, "timestamp", "timestamp column")], contract, True)
    if labels.table is None:
        _check_columns(relation, [key_col, label, *([id_col] if need_id else [])], contract, True)
        table_name, lab_rel = relation.label, log_rel
        stmt = sa.select(lab_rel.c[key], lab_rel.c[label.name])
    else:
        lab_relation = _table_relation(conn, contract, labels.table, "label")
        table_name = labels.table
        _check_columns(lab_relation, [key_col, label], contract, True)
        _check_columns(relation, [id_col], contract, True)
        lab_rel = lab_relation.selectable
        stmt = sa.select(lab_rel.c[key], lab_rel.c[label.name]).select_from(
            lab_rel.join(log_rel, log_rel.c[src.id_column] == lab_rel.c[key])
        )
    if lo >= hi:
        return _LabelsQuery(None, relation, table_name, key_col, label)
    dialect = conn.dialect.name
    stmt = stmt.where(
        _time_filter(_event_time(relation, src.timestamp_column, dialect), lo, hi, dialect),
        lab_rel.c[label.name].is_not(None),
    )
    return _LabelsQuery(stmt, relation, table_name, key_col, label)


def _labelled_count(
    conn: sa.Connection, contract: ModelContract, query: _LabelsQuery, lo: datetime, hi: datetime
) -> sa.Select[Any]:
    """COUNT, MIN and MAX timestamp of the log rows in [lo, hi) whose id has a matured label: the
    rows `read_labelled` returns when it reads everything (its inner join, in SQL)."""
    assert query.stmt is not None
    src = contract.source
    keys = query.stmt.with_only_columns(query.stmt.selected_columns[0]).correlate(None)  # its own log, not ours
    dialect = conn.dialect.name
    ts = _event_time(query.log_relation, src.timestamp_column, dialect)
    when = ts  # what MIN and MAX order by: on SQLite, text with an offset by its UTC time (every row is read)
    if dialect == "sqlite":
        when = sa.case((_sqlite_offset(ts), _sqlite_utc_text(ts)), else_=sa.func.replace(ts, "T", " "))
    return sa.select(sa.func.count(), sa.func.min(when), sa.func.max(when)).where(
        _time_filter(ts, lo, hi, dialect), query.log.c[src.id_column].in_(keys)
    )


def read_labels(
    contract: ModelContract,
    start: datetime,
    end: datetime,
    *,
    as_of: datetime,
    url: str | None = None,
    sample_fraction: float | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Labels of events in [start, end) that have matured: event timestamp + labels.delay <= as_of.

    Columns: the join key (labels.join_key, default source.id_column) and the label column.
    Events without a label row or with a NULL label are absent. Maturity is judged on the
    event's timestamp in the log, so a label table needs no time column of its own.

    `sample_fraction`: only the labels of log ids that `read_window`'s seeded id hash keeps at
    this fraction and `seed`, so they line up with a window sampled the same way. Conflicting
    labels are then detected within that sample only."""
    frame, _ = _read_labels(contract, start, end, as_of=as_of, url=url, fraction=sample_fraction, seed=seed)
    return frame


@_names_interval
def _read_labels(
    contract: ModelContract,
    start: datetime,
    end: datetime,
    *,
    as_of: datetime,
    url: str | None,
    fraction: float | None,
    seed: int,
    count: bool = False,
) -> tuple[pd.DataFrame, _Labelled | None]:
    """`read_labels`, and with `count` the exact labelled rows of [start, end)."""
    labels = _require_labels(contract)
    lo, end_utc = _utc(start, "start", contract), _utc(end, "end", contract)
    cutoff = _utc(as_of, "as_of", contract) - labels.delay
    hi = min(end_utc, cutoff + _ONE_MICROSECOND)  # ts <= cutoff  <=>  ts < cutoff + 1us
    with _connect(contract, url) as conn:
        query = _labels_query(conn, contract, lo, hi, need_id=fraction is not None or count)
        frame, exact = _fetch_labels(conn, contract, query, fraction, seed, (lo, end_utc) if count else None)
    frame = _one_label_per_key(frame, query, contract)
    log.info(
        "%s: %d matured labels%s for [%s, %s) as of %s (delay %s)",
        contract.name,
        len(frame),
        "" if fraction is None else f" of the ids sampled at {100 * fraction:.2f}%",
        lo.isoformat(),
        hi.isoformat(),
        as_of.isoformat(),
        labels.delay,
    )
    return frame, exact


def _fetch_labels(
    conn: sa.Connection,
    contract: ModelContract,
    query: _LabelsQuery,
    fraction: float | None,
    seed: int,
    window: tuple[datetime, datetime] | None,
) -> tuple[pd.DataFrame | None, _Labelled | None]:
    """Rows of the labels query (of the sampled ids only, with `fraction`) and, with `window`, the
    exact labelled rows of that window, counted by the database while the labels are read."""
    if query.stmt is None:
        return None, (None if window is None else _Labelled(0, None, None))
    id_column = contract.source.id_column
    keep = None if fraction is None else _sample_filter(conn, query.log_relation, id_column, fraction, seed)
    stmt = query.stmt if keep is None else query.stmt.where(keep)  # no SQL hash: the join with the window samples
    if window is None:
        return _execute(conn, stmt, 50_000, contract, query.table)[0], None
    with _meanwhile(conn, _labelled_count(conn, contract, query, *window), contract, query.table) as counted:
        frame, _ = _execute(conn, stmt, 50_000, contract, query.table)
        rows, first, last = counted()
    return frame, _Labelled(int(rows), *_ts_bounds([first], [last], contract, query.log_relation.label))


def _one_label_per_key(frame: pd.DataFrame | None, query: _LabelsQuery, contract: ModelContract) -> pd.DataFrame:
    """Labels as contract dtypes, one row per key. Keys with different labels are an error; on a
    sampled read only the sampled keys are checked."""
    key, label = query.key.name, query.label.name
    if frame is None:
        return _empty_frame([query.key, query.label], {})
    _convert(frame, [query.label], contract, query.table, True, set())
    conflicts = frame.groupby(key)[label].nunique()
    conflicts = conflicts[conflicts > 1]
    if len(conflicts):
        raise SourceError(
            f"{len(conflicts)} keys have conflicting labels, e.g. {conflicts.index[:3].tolist()}",
            model=contract.name,
            table=query.table,
            column=key,
        )
    return frame.drop_duplicates(subset=[key], ignore_index=True)


@_names_interval
def read_labelled(
    contract: ModelContract,
    start: datetime,
    end: datetime,
    *,
    as_of: datetime,
    url: str | None = None,
    strict: bool = True,
    allow_empty: bool = False,
    sample_rows: int | None = None,
    seed: int = 0,
    numeric_text: str | None = None,
) -> tuple[pd.DataFrame, WindowStats]:
    """`read_window` inner-joined with matured labels: training and realized-performance data.

    Stats describe the joined frame. With `sample_rows`, a window above it is read as
    `read_window`'s seeded sample and only the labels of the sampled ids are read; `rows`,
    `min_ts` and `max_ts` are then the database's exact facts of every row with a matured label,
    `read_rows` the rows returned. Raises EmptyWindowError when no row has a matured label
    (unless allow_empty). `numeric_text` as in read_window; its type problems are the window's."""
    frame, stats = read_window(
        contract,
        start,
        end,
        url=url,
        strict=strict,
        allow_empty=allow_empty,
        sample_rows=sample_rows,
        seed=seed,
        numeric_text=numeric_text,
    )
    fraction = _sample_fraction(stats.rows, sample_rows) if stats.sampled else None  # read_window's share
    labels, exact = _read_labels(
        contract, start, end, as_of=as_of, url=url, fraction=fraction, seed=seed, count=fraction is not None
    )
    src, key = contract.source, contract.source.label_key
    label = _require_labels(contract).column
    labels = labels.rename(columns={key: src.id_column}) if key != src.id_column else labels
    if frame[src.id_column].dtype != labels[src.id_column].dtype:
        labels[src.id_column] = labels[src.id_column].astype(frame[src.id_column].dtype)
    joined = frame.merge(labels[[src.id_column, label]], on=src.id_column, how="inner", validate="many_to_one")
    joined = joined.sort_values([src.timestamp_column, src.id_column], kind="mergesort", ignore_index=True)
    if (joined.empty if exact is None else exact.rows == 0) and not allow_empty:
        raise EmptyWindowError(
            f"none of the {stats.rows} rows in [{stats.start.isoformat()}, {stats.end.isoformat()}) has a matured "
            f"label as of {as_of.isoformat()} (labels.delay {src.labels.delay})",  # type: ignore[union-attr]
            model=contract.name,
            table=src.labels.table or _table_label(contract),
            column=label,  # type: ignore[union-attr]
        )
    out = _stats(contract, stats.start, stats.end, joined, stats.chunks, list(stats.schema_problems))
    out = replace(out, type_problems=stats.type_problems)
    if exact is not None:
        out = replace(out, rows=exact.rows, min_ts=exact.min_ts, max_ts=exact.max_ts, read_rows=len(joined))
    read = f" ({len(joined)} of them in the sample read)" if exact is not None else ""
    log.info("%s: %d of %d rows have matured labels%s", contract.name, out.rows, stats.rows, read)
    return joined, out


# --------------------------------------------------------------------------- checks


def check_source(contract: ModelContract, url: str | None = None) -> list[str]:
    """Problems reaching the log as the contract describes, as `field.path: message` lines:
    connection, missing tables, missing columns, incompatible SQL types. Reads no rows."""
    field = "source.table" if contract.source.table else "source.query"
    try:
        with _connect(contract, url) as conn:
            problems: list[str] = []
            try:
                relation = _log_relation(conn, contract)
            except SourceError as exc:
                return [f"{field}: {exc}"]
            for c in _log_columns(contract):
                if c.name not in relation.columns:
                    problems.append(f"{field}: {c.what} {c.name!r} not found in {relation.label}")
                elif problem := _sql_type_problem(c, relation.columns[c.name]):
                    problems.append(f"{field}: {problem}")
            if contract.source.labels is not None:
                problems += _check_labels(conn, contract, relation)
            return problems
    except SourceConnectionError as exc:
        return [f"{'source.url' if contract.source.url else 'source.conn_id'}: {exc}"]


def _check_labels(conn: sa.Connection, contract: ModelContract, relation: _Relation) -> list[str]:
    labels = contract.source.labels
    assert labels is not None
    label = _label_col(contract)
    key = contract.source.label_key
    if labels.table is None:
        columns, where, field = relation.columns, relation.label, "source.labels.column"
    else:
        try:
            columns = _reflect_table(conn, contract, labels.table, "label")
        except SourceError as exc:
            return [f"source.labels.table: {exc}"]
        where, field = labels.table, "source.labels"
    problems = []
    for col in (_Col(key, "id", "label join key"), label):
        if col.name not in columns:
            problems.append(f"{field}: {col.what} {col.name!r} not found in {where}")
        elif problem := _sql_type_problem(col, columns[col.name]):
            problems.append(f"{field}: {problem}")
    return problems


@dataclass(frozen=True)
class VolumeProfile:
    """What the log holds, as `driftguard check --connect` judges a contract's settings by it."""

    windows: list[tuple[datetime, datetime, int]]  # the last full intervals before the newest event: rows
    labelled_share: float | None  # labelled rows / log rows over those intervals (None: no labels)
    newest: datetime | None


def volume_profile(
    contract: ModelContract, window: timedelta, *, last: int = 8, url: str | None = None
) -> VolumeProfile:
    """Rows per interval over the `last` full intervals before the newest event (one indexed
    count each), and the share of them with a label. Reads no rows."""
    with _connect(contract, url) as conn:
        relation = _log_relation(conn, contract)
        dialect = conn.dialect.name
        ts = _event_time(relation, contract.source.timestamp_column, dialect)
        newest = conn.execute(sa.select(sa.func.max(ts)).select_from(relation.selectable)).scalar_one_or_none()
        if newest is None:
            return VolumeProfile([], None, None)
        end = pd.Timestamp(newest)
        end = (end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")).to_pydatetime()
        windows = []
        for i in range(last, 0, -1):
            hi = end - (i - 1) * window
            lo = hi - window
            n = conn.execute(
                sa.select(sa.func.count()).select_from(relation.selectable).where(_time_filter(ts, lo, hi, dialect))
            ).scalar_one()
            windows.append((lo, hi, int(n)))
        share = None
        if contract.source.labels is not None and windows:
            lo, hi = windows[0][0], windows[-1][1]
            q = _labels_count_query(conn, contract, relation, lo, hi)
            labelled = conn.execute(q).scalar_one() if q is not None else None
            total = sum(n for *_, n in windows)
            share = None if labelled is None or not total else min(float(labelled) / total, 1.0)
        return VolumeProfile(windows, share, end)


def _labels_count_query(
    conn: sa.Connection, contract: ModelContract, relation: _Relation, lo: datetime, hi: datetime
) -> sa.Select[Any] | None:
    """Labelled log rows with an event time in [lo, hi) (label table joined on the key when apart)."""
    labels = contract.source.labels
    assert labels is not None
    log_ts = _event_time(relation, contract.source.timestamp_column, conn.dialect.name)
    in_window = _time_filter(log_ts, lo, hi, conn.dialect.name)
    if labels.table is None:
        col = relation.selectable.c[labels.column]
        return sa.select(sa.func.count()).select_from(relation.selectable).where(in_window, col.is_not(None))
    try:
        table = _table_relation(conn, contract, labels.table, "label").selectable
    except SourceError:
        return None
    key = contract.source.label_key
    joined = relation.selectable.join(table, relation.selectable.c[contract.source.id_column] == table.c[key])
    return sa.select(sa.func.count()).select_from(joined).where(in_window, table.c[labels.column].is_not(None))
