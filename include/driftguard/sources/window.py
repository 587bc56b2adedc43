"""`read_window`: one ``[start, end)`` interval of the feature log as a contract-typed frame,
read whole or as a seeded sample, and ReadOptions, the one value that says how to read it."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa

from driftguard.contract import ModelContract
from driftguard.sources.dtypes import convert, empty_frame, numeric_text_mode
from driftguard.sources.engine import connect
from driftguard.sources.errors import ColumnTypeError, EmptyWindowError, names_interval
from driftguard.sources.read_paths import execute
from driftguard.sources.sampling import Counted, Window, count_window, sample_filter, sample_fraction
from driftguard.sources.schema import check_columns, log_columns, log_relation
from driftguard.sources.stats import TypeProblem, WindowStats
from driftguard.sources.time_filter import as_utc, event_time

log = logging.getLogger(__name__)


NumericText = Literal["error", "nan", "keep"]


@dataclass(frozen=True)
class ReadOptions:
    """How `read_window` (and `read_labelled`) read a window, as one value instead of a row of
    flags, so a call site says what kind of read it is.

    `strict`: schema problems raise (False: the monitoring gate's lenient read, problems go to
    WindowStats). `allow_empty`: an interval without rows is an empty frame, not EmptyWindowError.
    `sample_rows` and `seed`: read a larger window as a seeded sample (see sampling);
    `exact_facts`: count its exact facts meanwhile. `numeric_text`: what non-numbers in a numeric
    column do (see dtypes.convert; None: "error" when strict, else "nan"). `chunksize`: rows per
    fetch (and per counted chunk in WindowStats)."""

    strict: bool = True
    allow_empty: bool = False
    sample_rows: int | None = None
    seed: int = 0
    exact_facts: bool = True
    numeric_text: NumericText | None = None
    chunksize: int = 50_000


@names_interval
def read_window(
    contract: ModelContract,
    start: datetime,
    end: datetime,
    options: ReadOptions | None = None,
    *,
    url: str | None = None,
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
    (see convert): "error" (the default when strict), "nan" (the default when not: the monitoring
    gate, which fails the column's `types` check from WindowStats.type_problems) or "keep" (left as
    read for the caller to judge row by row, as training does).

    `options`: how to read (None: the defaults, a strict read of the whole window). Its fields
    are not keywords here: `read_window(c, lo, hi, strict=False)` is a TypeError.

    Errors (SourceError) name the model, table, column and this interval."""
    opts = options if options is not None else ReadOptions()
    strict, allow_empty, sample_rows, seed = opts.strict, opts.allow_empty, opts.sample_rows, opts.seed
    exact_facts, numeric_text, chunksize = opts.exact_facts, opts.numeric_text, opts.chunksize
    lo, hi = as_utc(start, "start", contract), as_utc(end, "end", contract)
    text_mode = numeric_text_mode(numeric_text, strict)
    type_problems: list[TypeProblem] = []
    if lo >= hi:
        raise ValueError(f"model {contract.name}: empty interval, start {lo.isoformat()} >= end {hi.isoformat()}")
    if chunksize < 1:
        raise ValueError("chunksize must be >= 1")
    src = contract.source
    with connect(contract, url) as conn:
        relation = log_relation(conn, contract)
        cols, problems, raw = check_columns(relation, log_columns(contract), contract, strict)
        rel, dialect = relation.selectable, conn.dialect.name
        window = Window.of(event_time(relation, src.timestamp_column, dialect), lo, hi, dialect)
        where = window.where
        counting: AbstractContextManager[Counted | None] = nullcontext()
        if sample_rows is not None:
            counting = count_window(conn, rel, cols, window, contract, relation.label, sample_rows, exact_facts)
        with counting as counted:
            share = None if counted is None else sample_fraction(counted.rows, sample_rows)
            sample_after_read = share  # unless the database samples it below
            if share is not None:
                keep = sample_filter(conn, relation, src.id_column, share, seed)
                if keep is not None:
                    where, sample_after_read = sa.and_(where, keep), None
            stmt = sa.select(*(rel.c[c.name] for c in cols)).where(where)
            frame, chunks = execute(conn, stmt, chunksize, contract, relation.label, relation.columns)
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
        frame = empty_frame(cols, relation.columns)
    else:
        problems += convert(frame, cols, contract, relation.label, strict, raw, text_mode, type_problems)
        frame, misplaced = _outside_window(frame, contract, relation.label, lo, hi, strict)
        problems += misplaced
        frame = _sorted(frame, src.timestamp_column, src.id_column)
    stats = replace(frame_stats(contract, lo, hi, frame, chunks, problems), type_problems=tuple(type_problems))
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


def frame_stats(
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
