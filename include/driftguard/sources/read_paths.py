"""Rows of a SELECT into a frame, by the fastest path the database allows. Streaming 1M
rows through SQLAlchemy Row objects and DataFrame.from_records costs far more than the query
(profiled: about 25 s of a 1M-row SQLite window on a loaded 2-core machine), so tables take a
bulk path: PostgreSQL (psycopg2) COPY (SELECT ...) TO STDOUT as CSV parsed by pyarrow with the
reflected column types; a SQLite file through ADBC's Arrow driver, or the raw sqlite3 cursor
with numpy columns when Arrow cannot type a column. Values still bind as parameters and every
result still goes through dtypes.convert, so frames and problems equal the streaming path's."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from driftguard.contract import ModelContract
from driftguard.sources.engine import first_line, is_sqlite_file
from driftguard.sources.errors import SourceError

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
    """Rows of `stmt` as a frame. With the reflected SQL types of a table, PostgreSQL (psycopg2)
    and SQLite take a bulk path (see _bulk_read); anything else streams through SQLAlchemy."""
    try:
        if sqltypes is not None and _bulk_readable(conn, stmt, sqltypes):
            return _bulk_read(conn, stmt, chunksize, sqltypes)
        return _stream(conn, stmt, chunksize)
    except sa.exc.DBAPIError as exc:
        raise SourceError(f"query failed: {first_line(exc)}", model=contract.name, table=table) from None
    except Exception as exc:  # the DBAPI's own errors when the bulk path bypasses SQLAlchemy
        if type(exc).__module__.split(".")[0] in ("psycopg2", "sqlite3"):
            raise SourceError(f"query failed: {first_line(exc)}", model=contract.name, table=table) from None
        raise


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
    return pa.string()  # text, timestamps (parsed by convert), anything else as read


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
            log.info("bulk read fell back to streaming: %s", first_line(exc))
            return _stream(conn, stmt, chunksize)
        return frame, _chunks(frame, chunksize)
    database = conn.engine.url
    if is_sqlite_file(database):
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
    reads the column as stored, so check_columns names the odd values exactly as before. (Left
    to ADBC: numbers among text in a column with no text affinity, e.g. DATETIME, read as text.)"""
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
