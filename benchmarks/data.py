"""Benchmark feature logs: 20 numeric + 4 categorical features and a logged prediction.

One table per window size, in PostgreSQL (schema ``dg_bench``) and in one SQLite file. Each table
holds a fixed reference period (REF_ROWS rows, the contract's bootstrap reference window) and the
monitored window (``rows`` rows), where drift is injected in 5 features (DRIFTED). Generation is
vectorised (numpy, 1M-row chunks, seeded per chunk) and written at bulk speed: COPY FROM a CSV
buffer written by pyarrow on PostgreSQL, executemany with journalling off on SQLite. A table is
reused when ``dg_bench_meta`` records the same spec hash and row count, so a 10M-row log is
generated once per machine; ``--drop`` removes the schema and the file.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

SPEC_VERSION = 1
# DRIFTGUARD_BENCH_PG_URL puts the PostgreSQL logs in another database (a psycopg2 URL).
PG_URL = os.environ.get("DRIFTGUARD_BENCH_PG_URL") or "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
PG_SCHEMA = "dg_bench"
# DRIFTGUARD_BENCH_RESULTS moves data, homes and logs elsewhere (the smoke test uses a tmp folder).
RESULTS = Path(os.environ.get("DRIFTGUARD_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")
SQLITE_DIR = RESULTS / "data"
REF_ROWS = 200_000
CHUNK = 1_000_000
REF_START = datetime(2024, 1, 1, tzinfo=UTC)
WINDOW_START = datetime(2024, 2, 1, tzinfo=UTC)
PERIOD = timedelta(days=7)

NUMERIC = tuple(f"f_{i:02d}" for i in range(20))
CATEGORIES: dict[str, list[str]] = {
    "c_0": ["a", "b", "c", "d"],
    "c_1": [f"k{i}" for i in range(10)],
    "c_2": [f"s{i:02d}" for i in range(50)],
    "c_3": ["x", "y", "z"],
}
CATEGORICAL = tuple(CATEGORIES)
FEATURES = NUMERIC + CATEGORICAL
# Injected in the window only: (kind, size). Shifts are in baseline standard deviations, so the
# normed Wasserstein distance Evidently uses for large numeric samples is about |shift|.
DRIFTED: dict[str, tuple[str, float]] = {
    "f_00": ("mean_shift", 0.5),
    "f_01": ("scale", 1.6),
    "f_02": ("mean_shift", 0.25),
    "c_0": ("reweight", 0.0),
    "c_1": ("new_category", 0.2),
}
NULL_SHARE = {"f_05": 0.02, "f_06": 0.01, "c_3": 0.01}


@dataclass(frozen=True)
class Spec:
    """One benchmark log: `rows` window rows after `ref_rows` reference rows."""

    rows: int
    ref_rows: int = REF_ROWS

    @property
    def table(self) -> str:
        suffix = "" if self.ref_rows == REF_ROWS else f"_r{label(self.ref_rows)}"
        return f"log_{label(self.rows)}{suffix}"

    @property
    def total(self) -> int:
        return self.rows + self.ref_rows

    @property
    def digest(self) -> str:
        text = json.dumps(
            [SPEC_VERSION, self.rows, self.ref_rows, NUMERIC, CATEGORIES, DRIFTED, NULL_SHARE], default=str
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def label(rows: int) -> str:
    """100000 -> 100k, 1000000 -> 1m."""
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}m"
    if rows % 1000 == 0:
        return f"{rows // 1000}k"
    return str(rows)


def parse_size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * mult)


def sqlite_path(spec: Spec) -> Path:
    """One file per size: a long write to one log never locks another."""
    return SQLITE_DIR / f"bench_{spec.table.removeprefix('log_')}.db"


def url_for(db: str, spec: Spec) -> str:
    return PG_URL if db == "postgres" else f"sqlite:///{sqlite_path(spec)}"


def qualified(db: str, spec: Spec) -> str:
    return f"{PG_SCHEMA}.{spec.table}" if db == "postgres" else spec.table


# --------------------------------------------------------------------------- generation


def _chunk(
    rng: np.random.Generator, n: int, start: datetime, first_id: int, total: int, offset: int, drifted: bool
) -> pd.DataFrame:
    """Rows offset..offset+n of a period of `total` rows spread evenly over PERIOD."""
    step_us = PERIOD / timedelta(microseconds=1) / total
    us = (np.arange(offset, offset + n, dtype="float64") * step_us).astype("int64")
    ts = np.datetime64(start.replace(tzinfo=None), "us") + us.astype("timedelta64[us]")
    data: dict[str, Any] = {"event_id": np.arange(first_id, first_id + n, dtype="int64"), "event_ts": ts}
    for i, name in enumerate(NUMERIC):
        values = rng.normal(10.0 * i, 1.0 + i % 5, n)
        kind, size = DRIFTED.get(name, ("", 0.0)) if drifted else ("", 0.0)
        if kind == "mean_shift":
            values += size * (1.0 + i % 5)
        elif kind == "scale":
            values = 10.0 * i + (values - 10.0 * i) * size
        data[name] = values
    for name, values in CATEGORIES.items():
        probs = np.linspace(2.0, 1.0, len(values))
        if drifted and DRIFTED.get(name, ("",))[0] == "reweight":
            probs = probs[::-1] ** 3
        chosen = rng.choice(np.array(values, dtype=object), size=n, p=probs / probs.sum())
        if drifted and DRIFTED.get(name, ("",))[0] == "new_category":
            chosen[rng.random(n) < DRIFTED[name][1]] = f"{name}_new"
        data[name] = chosen
    z = sum(data[f"f_{i:02d}"] * w for i, w in ((0, 0.8), (1, -0.1), (3, 0.02))) - 0.6
    data["prediction"] = np.round(1 / (1 + np.exp(-(z - np.mean(z)))), 6)
    frame = pd.DataFrame(data)
    for name, share in NULL_SHARE.items():
        frame.loc[rng.random(n) < share, name] = None if name in CATEGORIES else np.nan
    return frame


def chunks(spec: Spec) -> Iterator[pd.DataFrame]:
    """Reference rows then window rows, in CHUNK-row frames (bounded memory at 10M rows)."""
    next_id = 1
    for period, total, drifted, seed in ((REF_START, spec.ref_rows, False, 1), (WINDOW_START, spec.rows, True, 2)):
        for offset in range(0, total, CHUNK):
            n = min(CHUNK, total - offset)
            rng = np.random.default_rng([seed, offset // CHUNK])
            yield _chunk(rng, n, period, next_id, total, offset, drifted)
            next_id += n


def windows() -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]]:
    """(reference [start, end), monitored window [start, end))."""
    return (REF_START, REF_START + PERIOD), (WINDOW_START, WINDOW_START + PERIOD)


# --------------------------------------------------------------------------- PostgreSQL


def _pg_conn() -> Any:
    import psycopg2
    import sqlalchemy as sa

    url = sa.engine.make_url(PG_URL)
    return psycopg2.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database, **url.query
    )


def _pg_ready(cur: Any, spec: Spec) -> bool:
    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}")
    cur.execute(
        f"CREATE TABLE IF NOT EXISTS {PG_SCHEMA}.dg_bench_meta (name text primary key, digest text, rows bigint)"
    )
    cur.execute(f"SELECT digest, rows FROM {PG_SCHEMA}.dg_bench_meta WHERE name = %s", (spec.table,))
    row = cur.fetchone()
    return row is not None and row[0] == spec.digest and row[1] == spec.total


def _csv(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    table = pa.Table.from_pandas(frame, preserve_index=False)
    ts = table.column("event_ts").cast(pa.timestamp("us", tz="UTC"))
    table = table.set_column(table.schema.get_field_index("event_ts"), "event_ts", ts)
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False))
    return buf.getvalue()


def _ddl(ts_type: str, float_type: str) -> str:
    cols = ["event_id BIGINT", f"event_ts {ts_type}"]
    cols += [f"{n} {float_type}" for n in NUMERIC] + [f"{n} TEXT" for n in CATEGORICAL] + [f"prediction {float_type}"]
    return ", ".join(cols)


def ensure_postgres(spec: Spec) -> float:
    """Create the table unless an identical one exists; seconds spent (0 when reused)."""
    conn = _pg_conn()
    try:
        with conn, conn.cursor() as cur:
            if _pg_ready(cur, spec):
                return 0.0
        started = time.perf_counter()
        name = f"{PG_SCHEMA}.{spec.table}"
        with conn, conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {name}")
            cur.execute(f"CREATE UNLOGGED TABLE {name} ({_ddl('TIMESTAMPTZ', 'DOUBLE PRECISION')})")
            for frame in chunks(spec):
                cur.copy_expert(f"COPY {name} FROM STDIN WITH (FORMAT csv)", io.BytesIO(_csv(frame)))
            cur.execute(f"CREATE INDEX ON {name} (event_ts)")
            cur.execute(f"ANALYZE {name}")
            cur.execute(
                f"INSERT INTO {PG_SCHEMA}.dg_bench_meta VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE "
                "SET digest = excluded.digest, rows = excluded.rows",
                (spec.table, spec.digest, spec.total),
            )
        return time.perf_counter() - started
    finally:
        conn.close()


# --------------------------------------------------------------------------- SQLite


def _sqlite_rows(frame: pd.DataFrame) -> Iterator[tuple[Any, ...]]:
    ts = np.datetime_as_string(frame["event_ts"].to_numpy(), unit="us").astype("U26")
    chars = ts.view("U1").reshape(len(ts), 26)
    chars[:, 10] = " "  # SQLAlchemy's layout: 'YYYY-MM-DD HH:MM:SS.ffffff'
    cols: list[Any] = [frame["event_id"].tolist(), chars.view("U26").ravel().tolist()]
    for name in (*NUMERIC, *CATEGORICAL, "prediction"):
        s = frame[name]
        cols.append([None if v != v else v for v in s.tolist()] if s.isna().any() else s.tolist())
    return zip(*cols, strict=True)


def ensure_sqlite(spec: Spec) -> float:
    SQLITE_DIR.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(sqlite_path(spec))
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS dg_bench_meta (name TEXT PRIMARY KEY, digest TEXT, rows INTEGER)")
        row = conn.execute("SELECT digest, rows FROM dg_bench_meta WHERE name = ?", (spec.table,)).fetchone()
        if row is not None and row[0] == spec.digest and row[1] == spec.total:
            return 0.0
        started = time.perf_counter()
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute(f"DROP TABLE IF EXISTS {spec.table}")
        conn.execute(f"CREATE TABLE {spec.table} ({_ddl('TIMESTAMP', 'FLOAT')})")
        marks = ", ".join("?" * (3 + len(FEATURES)))
        for frame in chunks(spec):
            conn.executemany(f"INSERT INTO {spec.table} VALUES ({marks})", _sqlite_rows(frame))
        conn.execute(f"CREATE INDEX ix_{spec.table}_ts ON {spec.table} (event_ts)")
        conn.execute("INSERT OR REPLACE INTO dg_bench_meta VALUES (?, ?, ?)", (spec.table, spec.digest, spec.total))
        conn.commit()
        return time.perf_counter() - started
    finally:
        conn.close()


def ensure(db: str, spec: Spec) -> float:
    return ensure_postgres(spec) if db == "postgres" else ensure_sqlite(spec)


def drop() -> None:
    """Remove every benchmark table: the PostgreSQL schema and the SQLite file."""
    conn = _pg_conn()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
    finally:
        conn.close()
    for path in SQLITE_DIR.glob("bench_*.db"):
        path.unlink()


# --------------------------------------------------------------------------- contract


def contract(db: str, spec: Spec, *, sample_size: int = 100_000) -> Any:
    """The benchmark model's contract: auto drift methods (Evidently's choice, as the naive preset),
    bootstrap reference = the reference period, no labels (the window has none)."""
    import yaml
    from driftguard.contract import parse_contract

    (ref_lo, ref_hi), _ = windows()
    raw = {
        "name": "bench_log",
        "description": "Driftguard benchmark log",
        "task": "binary_classification",
        "owners": ["bench@example.com"],
        "schedule": "@weekly",
        "start_date": WINDOW_START.date().isoformat(),
        "source": {
            "url": url_for(db, spec),
            "table": qualified(db, spec),
            "timestamp_column": "event_ts",
            "id_column": "event_id",
            "prediction_column": "prediction",
        },
        "features": [{"name": n, "kind": "numeric"} for n in NUMERIC]
        + [{"name": n, "kind": "categorical"} for n in CATEGORICAL],
        "reference": {"start": ref_lo.isoformat(), "end": ref_hi.isoformat(), "sample_size": sample_size},
        "quality": {"freshness": "7d"},
        "drift": {"sample_size": sample_size},
    }
    return parse_contract(yaml.safe_dump(raw, sort_keys=False), file=f"<benchmark {db} {spec.table}>")


def main() -> None:
    parser = argparse.ArgumentParser(description="Create (or drop) the benchmark feature logs.")
    parser.add_argument("--sizes", default="100k")
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--ref-rows", default=label(REF_ROWS))
    parser.add_argument("--drop", action="store_true", help="drop the PostgreSQL schema and the SQLite file")
    args = parser.parse_args()
    if args.drop:
        drop()
        print(f"dropped schema {PG_SCHEMA} and {SQLITE_DIR}/bench_*.db")
        return
    for db in args.db.split(","):
        for size in args.sizes.split(","):
            spec = Spec(parse_size(size), parse_size(args.ref_rows))
            print(f"{db} {spec.table}: {ensure(db, spec):.1f} s")


if __name__ == "__main__":
    main()
