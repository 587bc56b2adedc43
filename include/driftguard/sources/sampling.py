"""Sampled windows: a window of millions of rows is not read whole. The database answers what
must be exact (rows, oldest and newest event, NULLs per column, rows sharing an id) and returns
a deterministic sample for what is a share or a distribution (types, ranges, domains, drift,
proxy metrics). A row is kept when a seeded hash of its id falls below fraction x 2^32, so the
time-range filter still uses the index, rows sharing an id are kept or dropped together, and the
same data and seed give the same sample. PostgreSQL hashes in SQL (hashint8extended for integer
ids, hashtextextended for others). SQLite hashes integer ids in SQL (Fibonacci hashing modulo
2^31 - 1) and other ids with the same hash in a deterministic Python function registered on the
connection. The exact scans run on other connections beside the sample read (two cores)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from driftguard.contract import ModelContract
from driftguard.sources.dtypes import to_timestamp, unreadable_timestamps, value_examples
from driftguard.sources.engine import first_line, is_sqlite_file
from driftguard.sources.errors import ColumnTypeError, SourceError
from driftguard.sources.schema import Col, Relation
from driftguard.sources.stats import WindowFacts
from driftguard.sources.time_filter import (
    MAX_UTC_OFFSET,
    shifted,
    sqlite_offset,
    sqlite_text,
    sqlite_utc_text,
    time_ranges,
    window_filter,
)

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


def sample_fraction(rows: int, sample_rows: int | None) -> float | None:
    """The share of a window of `rows` rows to read; None when it is read whole."""
    return sample_rows / rows if sample_rows is not None and rows > sample_rows else None


def sample_filter(
    conn: sa.Connection, relation: Relation, id_column: str, fraction: float, seed: int
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
    return conn.dialect.name == "sqlite" and is_sqlite_file(conn.engine.url)


@dataclass(frozen=True)
class Counted:
    """The whole window's size and time bounds; `finish` adds the scans, once they are in."""

    rows: int
    min_ts: datetime | None
    max_ts: datetime | None
    finish: Callable[[], WindowFacts | None]


def _query_failed(exc: sa.exc.DBAPIError, contract: ModelContract, table: str) -> SourceError:
    return SourceError(f"query failed: {first_line(exc)}", model=contract.name, table=table)


@contextmanager
def meanwhile(
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


def ts_bounds(
    firsts: list[Any], lasts: list[Any], contract: ModelContract, table: str
) -> tuple[datetime | None, datetime | None]:
    """The earliest of `firsts` and the latest of `lasts` as UTC datetimes (SQLite answers text)."""
    firsts, lasts = [v for v in firsts if v is not None], [v for v in lasts if v is not None]
    if not firsts or not lasts:
        return None, None
    edges = pd.Series(firsts + lasts, dtype=object)
    try:
        times = to_timestamp(edges)
    except ValueError:
        bad = unreadable_timestamps(edges)
        raise ColumnTypeError(
            f"the window's oldest or newest event ({value_examples(edges, bad)}) is not a UTC timestamp between "
            f"{pd.Timestamp.min:%Y-%m-%d} and {pd.Timestamp.max:%Y-%m-%d} (the range pandas can hold)",
            model=contract.name,
            table=table,
            column=contract.source.timestamp_column,
        ) from None
    return times.iloc[: len(firsts)].min().to_pydatetime(), times.iloc[len(firsts) :].max().to_pydatetime()


def _sqlite_edge_rows(
    conn: sa.Connection,
    window: Window,
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
    plain = sa.not_(sqlite_offset(ts))

    def layouts(day: str) -> list[sa.ColumnElement[bool]]:
        return [  # the rows whose text starts with the day and the separator, within the window
            sa.and_(ts >= max(sqlite_text(lo, sep), day + sep), ts < min(sqlite_text(hi, sep), day + after), plain)
            for sep, after in ((" ", "!"), ("T", "U"))
        ]

    firsts, lasts = [first], [last]
    try:
        if first is not None:
            seeks = [sa.select(sa.func.min(ts)).where(part).scalar_subquery() for part in layouts(str(first)[:10])]
            seeks += [sa.select(sa.func.max(ts)).where(part).scalar_subquery() for part in layouts(str(last)[:10])]
            space_first, t_first, space_last, t_last = conn.execute(sa.select(*seeks)).one()
            firsts, lasts = [first, space_first, t_first], [last, space_last, t_last]
        oldest, newest = ts_bounds(firsts, lasts, contract, table)
        utc, offset = sqlite_utc_text(ts), sqlite_offset(ts)
        in_window = sa.and_(offset, utc >= sqlite_text(lo, " "), utc < sqlite_text(hi, " "))
        # An offset row before `oldest` has its local time before oldest + MAX_UTC_OFFSET (after: alike).
        before = shifted(oldest if oldest is not None else hi, MAX_UTC_OFFSET)
        after = shifted(newest if newest is not None else lo, -MAX_UTC_OFFSET)
        earliest = sa.select(sa.func.min(utc)).where(
            ts >= sqlite_text(shifted(lo, -MAX_UTC_OFFSET), " "), ts < sqlite_text(before, "T"), in_window
        )
        latest = sa.select(sa.func.max(utc)).where(
            ts >= sqlite_text(after, " "), ts < sqlite_text(shifted(hi, MAX_UTC_OFFSET), "T"), in_window
        )
        offset_first, offset_last = conn.execute(sa.select(earliest.scalar_subquery(), latest.scalar_subquery())).one()
    except sa.exc.DBAPIError as exc:
        raise _query_failed(exc, contract, table) from None
    return ts_bounds([*firsts, offset_first], [*lasts, offset_last], contract, table)


_NULL_SCAN_SLICES = {"sqlite": 2}  # SQLite steps one aggregate per column per row on one core


def _time_slices(lo: datetime, hi: datetime, dialect: str) -> list[tuple[datetime, datetime]]:
    """[lo, hi) cut into equal spans, one NULL scan each (see count_window). SQLite runs a query
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
        return sqlite_text(t, " ") if dialect == "sqlite" else t

    return [
        sa.and_(where, *([ts >= cut(a)] if a != lo else []), *([ts < cut(b)] if b != hi else []))
        for a, b in _time_slices(lo, hi, dialect)
    ]


@dataclass(frozen=True)
class Window:
    """One time window [lo, hi) and its filters for counting it: the whole (`where`), its disjoint
    index ranges (`ranges`, counted apart) and its NULL-scan time slices (`slices`, see _time_slices)."""

    ts: sa.ColumnElement[Any]  # the timestamp column as compared (see event_time)
    lo: datetime
    hi: datetime
    where: sa.ColumnElement[bool]
    ranges: list[sa.ColumnElement[bool]]
    slices: list[sa.ColumnElement[bool]]

    @classmethod
    def of(cls, ts: sa.ColumnElement[Any], lo: datetime, hi: datetime, dialect: str) -> Window:
        where = window_filter(ts, lo, hi, dialect)
        return cls(
            ts=ts,
            lo=lo,
            hi=hi,
            where=where,
            ranges=time_ranges(ts, lo, hi, dialect),
            slices=_slice_filters(ts, where, lo, hi, dialect),
        )


@contextmanager
def count_window(
    conn: sa.Connection,
    rel: sa.FromClause,
    cols: list[Col],
    window: Window,
    contract: ModelContract,
    table: str,
    sample_rows: int,
    exact: bool,
) -> Iterator[Counted]:
    """Count the window (rows and time bounds, from the timestamp index) and, when it will be
    sampled (and `exact`), its exact facts too. The rows are counted per index range and the
    bounds in queries of their own, each a seek: MIN and MAX beside COUNT in one query would
    compare every row's text (SQLite, 10M rows: 3.1 s; apart: 0.5 s).

    The NULLs per column and the distinct ids each need a scan of every row, as long as reading
    the sample: they run meanwhile (see meanwhile), from before the count; the NULLs one scan
    per time slice of `window.slices`. Only when some id repeats does a GROUP BY count the rows
    sharing one (on PostgreSQL at 10M rows that GROUP BY spills to disk: 11 s, where counting
    distinct ids takes 2 s). A window read whole uses none of it: its frame is exact."""
    src = contract.source
    ts, key = window.ts, rel.c[src.id_column]
    where = window.where
    sqlite = conn.dialect.name == "sqlite"
    edge = sa.and_(where, sa.not_(sqlite_offset(ts))) if sqlite else where  # text rows with an offset: apart
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
        pending = [running.enter_context(meanwhile(conn, scan, contract, table)) for scan in scans] if exact else []
        try:
            *counts, first, last = conn.execute(head).one()
        except sa.exc.DBAPIError as exc:
            raise _query_failed(exc, contract, table) from None
        rows = sum(counts)
        if rows and sqlite:
            oldest, newest = _sqlite_edge_rows(conn, window, first, last, contract, table)
        else:
            oldest, newest = ts_bounds([first], [last], contract, table)
        if not exact or sample_fraction(rows, sample_rows) is None:
            yield Counted(int(rows), oldest, newest, lambda: None)
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

        yield Counted(int(rows), oldest, newest, finish)
