"""Matured labels: `read_labels` (labels of events whose timestamp + labels.delay <= as_of)
and `read_labelled` (a window inner-joined with them, for training and realized metrics).
Maturity is judged on the log's event time, so a label table needs no time column of its own."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from driftguard.contract import ModelContract
from driftguard.sources.dtypes import convert, empty_frame
from driftguard.sources.engine import connect, table_label
from driftguard.sources.errors import EmptyWindowError, SourceError, names_interval
from driftguard.sources.read_paths import execute
from driftguard.sources.sampling import meanwhile, sample_filter, sample_fraction, ts_bounds
from driftguard.sources.schema import (
    Col,
    Relation,
    check_columns,
    label_col,
    log_relation,
    require_labels,
    table_relation,
)
from driftguard.sources.stats import WindowStats
from driftguard.sources.time_filter import as_utc, event_time, sqlite_offset, sqlite_utc_text, window_filter
from driftguard.sources.window import ReadOptions, frame_stats, read_window

log = logging.getLogger(__name__)

_ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class _LabelsQuery:
    """The matured-labels SELECT (key, label) over the log joined with its labels, or None when
    nothing in the interval has matured yet."""

    stmt: sa.Select[Any] | None
    log_relation: Relation
    table: str  # where the labels live, for messages
    key: Col
    label: Col

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
    src, key, label = contract.source, contract.source.label_key, label_col(contract)
    labels = require_labels(contract)
    key_col = Col(key, "id", "label join key")
    id_col = Col(src.id_column, "id", "id column")
    relation = log_relation(conn, contract)
    log_rel = relation.selectable
    check_columns(relation, [Col(src.timestamp_column, "timestamp", "timestamp column")], contract, True)
    if labels.table is None:
        check_columns(relation, [key_col, label, *([id_col] if need_id else [])], contract, True)
        table_name, lab_rel = relation.label, log_rel
        stmt = sa.select(lab_rel.c[key], lab_rel.c[label.name])
    else:
        lab_relation = table_relation(conn, contract, labels.table, "label")
        table_name = labels.table
        check_columns(lab_relation, [key_col, label], contract, True)
        check_columns(relation, [id_col], contract, True)
        lab_rel = lab_relation.selectable
        stmt = sa.select(lab_rel.c[key], lab_rel.c[label.name]).select_from(
            lab_rel.join(log_rel, log_rel.c[src.id_column] == lab_rel.c[key])
        )
    if lo >= hi:
        return _LabelsQuery(None, relation, table_name, key_col, label)
    dialect = conn.dialect.name
    stmt = stmt.where(
        window_filter(event_time(relation, src.timestamp_column, dialect), lo, hi, dialect),
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
    ts = event_time(query.log_relation, src.timestamp_column, dialect)
    when = ts  # what MIN and MAX order by: on SQLite, text with an offset by its UTC time (every row is read)
    if dialect == "sqlite":
        when = sa.case((sqlite_offset(ts), sqlite_utc_text(ts)), else_=sa.func.replace(ts, "T", " "))
    return sa.select(sa.func.count(), sa.func.min(when), sa.func.max(when)).where(
        window_filter(ts, lo, hi, dialect), query.log.c[src.id_column].in_(keys)
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


@names_interval
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
    labels = require_labels(contract)
    lo, end_utc = as_utc(start, "start", contract), as_utc(end, "end", contract)
    cutoff = as_utc(as_of, "as_of", contract) - labels.delay
    hi = min(end_utc, cutoff + _ONE_MICROSECOND)  # ts <= cutoff  <=>  ts < cutoff + 1us
    with connect(contract, url) as conn:
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
    keep = None if fraction is None else sample_filter(conn, query.log_relation, id_column, fraction, seed)
    stmt = query.stmt if keep is None else query.stmt.where(keep)  # no SQL hash: the join with the window samples
    if window is None:
        return execute(conn, stmt, 50_000, contract, query.table)[0], None
    with meanwhile(conn, _labelled_count(conn, contract, query, *window), contract, query.table) as counted:
        frame, _ = execute(conn, stmt, 50_000, contract, query.table)
        rows, first, last = counted()
    return frame, _Labelled(int(rows), *ts_bounds([first], [last], contract, query.log_relation.label))


def _one_label_per_key(frame: pd.DataFrame | None, query: _LabelsQuery, contract: ModelContract) -> pd.DataFrame:
    """Labels as contract dtypes, one row per key. Keys with different labels are an error; on a
    sampled read only the sampled keys are checked."""
    key, label = query.key.name, query.label.name
    if frame is None:
        return empty_frame([query.key, query.label], {})
    convert(frame, [query.label], contract, query.table, True, set())
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


@names_interval
def read_labelled(
    contract: ModelContract,
    start: datetime,
    end: datetime,
    options: ReadOptions | None = None,
    *,
    as_of: datetime,
    url: str | None = None,
) -> tuple[pd.DataFrame, WindowStats]:
    """`read_window` inner-joined with matured labels: training and realized-performance data.

    Stats describe the joined frame. With `sample_rows`, a window above it is read as
    `read_window`'s seeded sample and only the labels of the sampled ids are read; `rows`,
    `min_ts` and `max_ts` are then the database's exact facts of every row with a matured label,
    `read_rows` the rows returned. Raises EmptyWindowError when no row has a matured label
    (unless allow_empty). `options` as in read_window (`numeric_text` applies to
    the window; its type problems are the window's)."""
    opts = options if options is not None else ReadOptions()
    frame, stats = read_window(contract, start, end, opts, url=url)
    fraction = sample_fraction(stats.rows, opts.sample_rows) if stats.sampled else None  # read_window's share
    labels, exact = _read_labels(
        contract, start, end, as_of=as_of, url=url, fraction=fraction, seed=opts.seed, count=fraction is not None
    )
    src, key = contract.source, contract.source.label_key
    label = require_labels(contract).column
    labels = labels.rename(columns={key: src.id_column}) if key != src.id_column else labels
    if frame[src.id_column].dtype != labels[src.id_column].dtype:
        labels[src.id_column] = labels[src.id_column].astype(frame[src.id_column].dtype)
    joined = frame.merge(labels[[src.id_column, label]], on=src.id_column, how="inner", validate="many_to_one")
    joined = joined.sort_values([src.timestamp_column, src.id_column], kind="mergesort", ignore_index=True)
    if (joined.empty if exact is None else exact.rows == 0) and not opts.allow_empty:
        raise EmptyWindowError(
            f"none of the {stats.rows} rows in [{stats.start.isoformat()}, {stats.end.isoformat()}) has a matured "
            f"label as of {as_of.isoformat()} (labels.delay {src.labels.delay})",  # type: ignore[union-attr]
            model=contract.name,
            table=src.labels.table or table_label(contract),
            column=label,  # type: ignore[union-attr]
        )
    out = frame_stats(contract, stats.start, stats.end, joined, stats.chunks, list(stats.schema_problems))
    out = replace(out, type_problems=stats.type_problems)
    if exact is not None:
        out = replace(out, rows=exact.rows, min_ts=exact.min_ts, max_ts=exact.max_ts, read_rows=len(joined))
    read = f" ({len(joined)} of them in the sample read)" if exact is not None else ""
    log.info("%s: %d of %d rows have matured labels%s", contract.name, out.rows, stats.rows, read)
    return joined, out
