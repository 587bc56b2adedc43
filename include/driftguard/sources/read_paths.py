"""Rows of a SELECT into a frame, by the fastest path the database allows. Streaming 1M
rows through SQLAlchemy Row objects and DataFrame.from_records costs far more than the query
(profiled: about 25 s of a 1M-row SQLite window on a loaded 2-core machine), so tables take one
Arrow path: ADBC's driver for the database (SQLite for a database file, PostgreSQL through libpq
for the psycopg2 and psycopg drivers) answers with Arrow columns built in C, one typed array per
column and no Python object per value. The statement is the one SQLAlchemy compiles, with the
driver's placeholders (`?`, `$1`) and its values bound, never written into the SQL text. A
SQLite column Arrow cannot give one type goes to the raw sqlite3 cursor; a column type ADBC does
not map (a PostgreSQL enum, uuid, json) and queries (no reflected types) stream through
SQLAlchemy, as do other databases. Every result still goes through dtypes.convert, so frames and
problems equal the streaming path's."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from driftguard.contract import ModelContract
from driftguard.sources.engine import first_line, is_sqlite_file, mask_url
from driftguard.sources.errors import SourceConnectionError, SourceError

log = logging.getLogger(__name__)


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


def execute(
    conn: sa.Connection,
    stmt: sa.Select[Any],
    chunksize: int,
    contract: ModelContract,
    table: str,
    sqltypes: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame | None, int]:
    """Rows of `stmt` as a frame. With the reflected SQL types of a table, a SQLite file and
    PostgreSQL take the Arrow path (_arrow_read); anything else streams through SQLAlchemy."""
    try:
        if sqltypes is not None and _arrow_readable(conn, stmt, sqltypes):
            frame = _arrow_read(conn, stmt, sqltypes, chunksize)
            if frame is not _NOT_READ:
                return frame, _chunks(frame, chunksize)
            if conn.dialect.name == "sqlite":
                return _sqlite_fetch(conn, stmt, chunksize, sqltypes)
        return _stream(conn, stmt, chunksize)
    except sa.exc.DBAPIError as exc:
        raise SourceError(f"query failed: {first_line(exc)}", model=contract.name, table=table) from None
    except _ConnectFailed as exc:
        raise SourceConnectionError(
            f"cannot connect to {exc.where}: {exc.detail}", model=contract.name, table=table
        ) from None
    except Exception as exc:  # the DBAPI's own errors when the Arrow path bypasses SQLAlchemy
        if type(exc).__module__.split(".")[0] in ("adbc_driver_manager", "sqlite3"):
            raise SourceError(f"query failed: {first_line(exc)}", model=contract.name, table=table) from None
        raise


_NOT_READ: Any = object()  # the Arrow path's "read this another way"
_PG_ARROW_DRIVERS = ("psycopg2", "psycopg")  # libpq's: their URL query options are libpq's too
# Reflected types whose Arrow form _pg_columns turns into what the streaming path gives (enums,
# uuid, json, arrays, oid come back from ADBC as opaque or other types: those tables stream).
_PG_ARROW_SQL = (sa.Integer, sa.Float, sa.Numeric, sa.Boolean, sa.String, sa.DateTime, sa.Date)


def _arrow_readable(conn: sa.Connection, stmt: sa.Select[Any], sqltypes: dict[str, Any]) -> bool:
    """Can the Arrow path read `stmt`? Only a table's columns (a query relation has no reflected
    types to check), of a SQLite file or of PostgreSQL through libpq with mapped types and the
    driver installed (the `postgres` extra; without it, PostgreSQL streams)."""
    types = [sqltypes.get(c.name) for c in stmt.selected_columns]
    if any(t is None for t in types):
        return False
    if conn.dialect.name == "sqlite":
        return True  # a file through ADBC, else (in memory, a URI filename) the sqlite3 cursor
    return (
        conn.dialect.name == "postgresql"
        and conn.dialect.driver in _PG_ARROW_DRIVERS
        and all(isinstance(t, _PG_ARROW_SQL) and not isinstance(t, sa.Enum) for t in types)
        and importlib.util.find_spec("adbc_driver_postgresql") is not None
    )


def _arrow_read(conn: sa.Connection, stmt: sa.Select[Any], sqltypes: dict[str, Any], chunksize: int) -> Any:
    """The frame read through ADBC, None when there are no rows, or _NOT_READ."""
    names = [c.name for c in stmt.selected_columns]
    if conn.dialect.name == "postgresql":
        return _pg_arrow(conn, stmt, names, chunksize)
    if is_sqlite_file(conn.engine.url):
        path = Path(str(conn.engine.url.database))
        return _sqlite_arrow(path, stmt.compile(dialect=conn.dialect), names, sqltypes)
    return _NOT_READ


class _ConnectFailed(Exception):
    """ADBC could not open its own connection: the database is unreachable (retryable)."""

    def __init__(self, where: str, detail: str):
        super().__init__(detail)
        self.where, self.detail = where, detail


def libpq_uri(url: sa.engine.URL) -> str:
    """The SQLAlchemy URL as the libpq connection URI ADBC's PostgreSQL driver takes: the driver
    name dropped, password and query options (sslmode, sslrootcert, options, ...) kept. Each part
    is percent-encoded as libpq decodes it: SQLAlchemy's own rendering writes a space as '+',
    which libpq keeps as '+' (`options=-c a=b -c c=d` would reach the server as one value)."""
    from urllib.parse import quote

    def enc(value: object) -> str:
        return quote(str(value), safe="")

    auth = ""
    if url.username:
        auth = enc(url.username) + (f":{enc(url.password)}" if url.password is not None else "") + "@"
    host = f"[{url.host}]" if url.host and ":" in url.host else (url.host or "")  # an IPv6 address
    port = f":{url.port}" if url.port else ""
    database = f"/{enc(url.database)}" if url.database else ""
    options = [
        f"{enc(key)}={enc(value)}"
        for key, values in url.query.items()
        for value in (values if isinstance(values, tuple) else (values,))
    ]
    return f"postgresql://{auth}{host}{port}{database}" + (f"?{'&'.join(options)}" if options else "")


def _pg_arrow(conn: sa.Connection, stmt: sa.Select[Any], names: list[str], chunksize: int) -> Any:
    """The query through ADBC's PostgreSQL driver, on a connection of its own (same URL; session
    in UTC as engine.connect makes it, which the driver also does). Compiled by this dialect with
    `$1` placeholders; the values are bound as Arrow parameters (an aware datetime as timestamptz).

    Read through a server-side cursor, `chunksize` rows per FETCH: with bound parameters the
    driver cannot use COPY and holds the whole result in libpq before building Arrow arrays
    (1M rows of the benchmark log: 1.3 GB peak, 0.6 GB fetched in 50k-row parts, about as fast)."""
    import adbc_driver_manager
    import adbc_driver_postgresql
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow as pa

    compiled = stmt.compile(dialect=type(conn.dialect)(paramstyle="numeric_dollar"))
    params = [compiled.params[k] for k in compiled.positiontup or ()]
    url = conn.engine.url
    try:
        pg = adbc.connect(libpq_uri(url))
    except adbc_driver_manager.Error as exc:
        raise _ConnectFailed(mask_url(str(url)), first_line(exc)) from None
    parts = []
    with pg, pg.cursor() as cur:  # a transaction (autocommit off), which the cursor needs
        cur.execute("SET TIME ZONE 'UTC'")  # naive timestamps and text cast to timestamptz mean UTC
        cur.execute(f"DECLARE dg_read NO SCROLL CURSOR FOR {compiled.string}", params or None)
        cur.adbc_statement.set_options(**{adbc_driver_postgresql.StatementOptions.USE_COPY.value: "false"})
        while (part := _fetch(cur, chunksize)).num_rows:  # COPY cannot wrap a FETCH
            parts.append(part)
    if not parts:
        return None
    table = pa.concat_tables(parts)  # zero-copy: each part becomes a chunk
    parts.clear()
    columns = _pg_columns(table, names)
    del table  # the columns hold what is still needed: to_pandas can hand each buffer back
    return columns if columns is _NOT_READ else _to_pandas(columns, names)


def _fetch(cur: Any, rows: int) -> Any:
    cur.execute(f"FETCH FORWARD {int(rows)} FROM dg_read")
    return cur.fetch_arrow_table()


def _pg_columns(table: Any, names: list[str]) -> Any:
    """Arrow columns as the streaming path types them (psycopg2's Python values through
    DataFrame.from_records), or _NOT_READ for a type it does not map: integers as int64; real
    (float4) as float64 through its shortest text, the value psycopg2 parses; NUMERIC as float64,
    as from_records' coerce_float gives it, exactly rounded ('NaN' is NaN); timestamps in ns
    where they fit, as pandas makes datetimes; booleans, text and dates as they are."""
    import pyarrow as pa

    columns = []
    for name, column in zip(names, table.columns, strict=True):
        try:
            typed = _pg_column(column)
        except pa.ArrowInvalid as exc:  # a NUMERIC text Arrow does not parse
            log.info("postgresql: column %s: %s; streaming instead", name, first_line(exc))
            return _NOT_READ
        if typed is None:
            log.debug("postgresql: column %s came back as %s; streaming instead", name, column.type)
            return _NOT_READ
        columns.append(typed)
    return columns


def _pg_column(column: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if isinstance(kind, pa.OpaqueType) and kind.type_name == "numeric":  # its text, e.g. '1.5000', 'NaN'
        return pc.cast(pa.chunked_array([c.storage for c in column.chunks], pa.string()), pa.float64())
    if pa.types.is_integer(kind):
        return column.cast(pa.int64())
    if pa.types.is_float32(kind):
        return pc.cast(pc.cast(column, pa.string()), pa.float64())
    if pa.types.is_timestamp(kind):
        with contextlib.suppress(pa.ArrowInvalid):  # a safe cast: raises past 2262, kept in us then
            return column.cast(pa.timestamp("ns", kind.tz))
        return column
    plain = (pa.types.is_float64, pa.types.is_boolean, pa.types.is_string, pa.types.is_large_string, pa.types.is_date32)
    return column if any(test(kind) for test in plain) else None


def _to_pandas(columns: list[Any], names: list[str]) -> pd.DataFrame:
    """Strings become objects with None, as DBAPIs give, one object per distinct value. Takes
    the columns (the list is emptied), so arrow hands each buffer back once it is converted."""
    import pyarrow as pa

    table = pa.table(columns, names=names)
    columns.clear()
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    pa.default_memory_pool().release_unused()
    _release_freed_heap()
    return frame


def _release_freed_heap() -> None:
    """Hand the C heap's freed pages back to the system (glibc's malloc_trim). libpq and the ADBC
    drivers malloc every fetched part and free it once converted; glibc keeps those pages, so a
    1M-row PostgreSQL read held 220 MB more after it than COPY's (peak of the read_window: 920 ->
    806 MB, COPY 829). Elsewhere than glibc there is nothing to call, and nothing is done."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def _chunks(frame: pd.DataFrame | None, chunksize: int) -> int:
    """A frame read in one piece (Arrow), counted in chunksize-row units so stats read the
    same on every path."""
    return 0 if frame is None else -(-len(frame) // chunksize)


def _sqlite_arrow(path: Path, compiled: Any, names: list[str], sqltypes: dict[str, Any]) -> Any:
    """The query through ADBC's SQLite driver: columns come out as Arrow arrays in C, with no
    Python object per value (the sqlite3 cursor builds one per value: 2.7M for a 100k-row
    sample, most of the read's time). Opened read-only.

    Arrow needs one type per column; SQLite stores any value in any column. ADBC infers the type
    from the first rows and fails on a later value of another type, and it reads numbers in a
    column that starts with text as text. Both come back as _NOT_READ: the sqlite3 cursor then
    reads the column as stored, so check_columns names the odd values exactly as before. This
    fallback stays because ADBC cannot serve such a column: an Arrow array has one type, and
    reading it all as text would lose which values were numbers. (Left to ADBC: numbers among
    text in a column with no text affinity, e.g. DATETIME, read as text.)"""
    import adbc_driver_sqlite.dbapi as adbc
    import pyarrow as pa

    params = [compiled.params[k] for k in compiled.positiontup or ()]
    try:
        with adbc.connect(f"{path.resolve().as_uri()}?mode=ro") as conn, conn.cursor() as cur:
            cur.execute(compiled.string, params or None)
            table = cur.fetch_arrow_table()
    except (adbc.Error, OSError) as exc:  # OSError: pyarrow's, for a value of another type in later rows
        log.debug("sqlite: reading with the sqlite3 cursor (%s)", first_line(exc))
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
    del table
    return _to_pandas(columns, names)


def _sqlite_fetch(
    conn: sa.Connection, stmt: sa.Select[Any], chunksize: int, sqltypes: dict[str, Any]
) -> tuple[pd.DataFrame | None, int]:
    """The raw sqlite3 cursor, column by column into numpy: for what ADBC cannot type, a database
    in memory, and functions registered on this connection (the sample hash of text ids)."""
    compiled = stmt.compile(dialect=conn.dialect)
    names = [c.name for c in stmt.selected_columns]
    params = [compiled.params[k] for k in compiled.positiontup or ()]
    numeric = {n for n in names if isinstance(sqltypes[n], (sa.Float, sa.Numeric, sa.Integer))}
    cur = conn.connection.driver_connection.cursor()
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
