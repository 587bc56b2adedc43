"""PostgreSQL's former bulk read, kept only for `make bench`'s read comparison: COPY (SELECT ...)
TO STDOUT as CSV through psycopg2, parsed by pyarrow with the reflected column types. Driftguard
reads PostgreSQL through ADBC since it measured as fast or faster (docs/performance.md); this is
the same code as the path it replaced, so the comparison stays measurable in one run."""

from __future__ import annotations

import tempfile
from typing import Any

import sqlalchemy as sa


def _arrow_type(sqltype: Any) -> Any:
    """pyarrow type for a reflected SQL type; text for anything else (as COPY writes it)."""
    import pyarrow as pa

    if isinstance(sqltype, sa.Boolean):
        return pa.bool_()
    if isinstance(sqltype, sa.Integer):
        return pa.int64()
    if isinstance(sqltype, (sa.Float, sa.Numeric)):
        return pa.float64()
    if isinstance(sqltype, sa.DateTime):  # COPY writes '2024-02-01 00:00:03.024+00' (session in UTC)
        return pa.timestamp("us", tz="UTC") if sqltype.timezone else pa.timestamp("us")
    return pa.string()


def copy_read(conn: sa.Connection, stmt: sa.Select[Any], sqltypes: dict[str, Any], chunksize: int) -> Any:
    """read_paths._arrow_read's contract (a frame, or None for no rows) through COPY: the
    statement compiled for psycopg2, its values rendered by psycopg2's mogrify (COPY takes no
    parameters), the CSV spooled to a temporary file and parsed by pyarrow."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    assert conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg2", "COPY needs psycopg2"
    compiled = stmt.compile(dialect=conn.dialect)
    names = [c.name for c in stmt.selected_columns]
    dbapi = conn.connection.driver_connection
    with tempfile.TemporaryFile() as buf:  # on disk: the CSV is larger than the frame
        with dbapi.cursor() as cur:
            query = cur.mogrify(compiled.string, compiled.params).decode()
            cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)", buf)
        if buf.tell() == 0:
            return None
        buf.seek(0)
        table = pacsv.read_csv(
            buf,
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={n: _arrow_type(sqltypes[n]) for n in names},
                null_values=[""],  # COPY writes NULL unquoted and empty; "" (quoted) stays an empty string
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                true_values=["t"],
                false_values=["f"],
            ),
        )
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    pa.default_memory_pool().release_unused()
    return frame
