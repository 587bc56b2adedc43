"""Checks that read no rows: `check_source` (can the log be read as the contract describes,
for `driftguard check --connect`) and `volume_profile` (rows per recent interval and the
labelled share, which power.py judges the contract's settings by)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from driftguard.contract import ModelContract
from driftguard.sources.engine import connect
from driftguard.sources.errors import SourceConnectionError, SourceError
from driftguard.sources.schema import (
    Col,
    Relation,
    label_col,
    log_columns,
    log_relation,
    reflect_table,
    sql_type_problem,
    table_relation,
)
from driftguard.sources.time_filter import event_time, window_filter


def check_source(contract: ModelContract, url: str | None = None) -> list[str]:
    """Problems reaching the log as the contract describes, as `field.path: message` lines:
    connection, missing tables, missing columns, incompatible SQL types. Reads no rows."""
    field = "source.table" if contract.source.table else "source.query"
    try:
        with connect(contract, url) as conn:
            problems: list[str] = []
            try:
                relation = log_relation(conn, contract)
            except SourceError as exc:
                return [f"{field}: {exc}"]
            for c in log_columns(contract):
                if c.name not in relation.columns:
                    problems.append(f"{field}: {c.what} {c.name!r} not found in {relation.label}")
                elif problem := sql_type_problem(c, relation.columns[c.name]):
                    problems.append(f"{field}: {problem}")
            if contract.source.labels is not None:
                problems += _check_labels(conn, contract, relation)
            return problems
    except SourceConnectionError as exc:
        return [f"{'source.url' if contract.source.url else 'source.conn_id'}: {exc}"]


def _check_labels(conn: sa.Connection, contract: ModelContract, relation: Relation) -> list[str]:
    labels = contract.source.labels
    assert labels is not None
    label = label_col(contract)
    key = contract.source.label_key
    if labels.table is None:
        columns, where, field = relation.columns, relation.label, "source.labels.column"
    else:
        try:
            columns = reflect_table(conn, contract, labels.table, "label")
        except SourceError as exc:
            return [f"source.labels.table: {exc}"]
        where, field = labels.table, "source.labels"
    problems = []
    for col in (Col(key, "id", "label join key"), label):
        if col.name not in columns:
            problems.append(f"{field}: {col.what} {col.name!r} not found in {where}")
        elif problem := sql_type_problem(col, columns[col.name]):
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
    with connect(contract, url) as conn:
        relation = log_relation(conn, contract)
        dialect = conn.dialect.name
        ts = event_time(relation, contract.source.timestamp_column, dialect)
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
                sa.select(sa.func.count()).select_from(relation.selectable).where(window_filter(ts, lo, hi, dialect))
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
    conn: sa.Connection, contract: ModelContract, relation: Relation, lo: datetime, hi: datetime
) -> sa.Select[Any] | None:
    """Labelled log rows with an event time in [lo, hi) (label table joined on the key when apart)."""
    labels = contract.source.labels
    assert labels is not None
    log_ts = event_time(relation, contract.source.timestamp_column, conn.dialect.name)
    in_window = window_filter(log_ts, lo, hi, conn.dialect.name)
    if labels.table is None:
        col = relation.selectable.c[labels.column]
        return sa.select(sa.func.count()).select_from(relation.selectable).where(in_window, col.is_not(None))
    try:
        table = table_relation(conn, contract, labels.table, "label").selectable
    except SourceError:
        return None
    key = contract.source.label_key
    joined = relation.selectable.join(table, relation.selectable.c[contract.source.id_column] == table.c[key])
    return sa.select(sa.func.count()).select_from(joined).where(in_window, table.c[labels.column].is_not(None))
