"""The Arrow read path (ADBC for a SQLite file and for PostgreSQL; on SQLite the raw sqlite3
cursor for columns Arrow cannot type) gives exactly the frame and schema problems of streaming
through SQLAlchemy: on a log with every data fault the testing module can inject (text in a
numeric column, nulls, unseen categories) and an unordered insert, on every column type a log
holds, with hostile text, under session time zones; values stay bound; errors name model and
table, and ADBC failing to connect is retried. The PostgreSQL tables are real, reached through
the URL's libpq options (search_path), so a lost option fails the read."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from driftguard import sources, testing
from driftguard.sources import read_paths
from driftguard.testing import Injection
from sqlalchemy.dialects import sqlite


def _write(url: str, rows_per_day: int = 400, *, text_in_numbers: bool = True) -> tuple[str, object]:
    start = testing.DEFAULT_START
    faults = [
        Injection("type_change", start + timedelta(days=1), magnitude=0.2),
        Injection("null_spike", start + timedelta(days=1), magnitude=0.5),
        Injection("new_category", start + timedelta(days=1), magnitude=0.4),
        Injection("mean_shift", start + timedelta(days=1)),
    ][0 if text_in_numbers else 1 :]
    log, labels = testing.generate_log(
        "binary_classification", start=start, days=2, rows_per_day=rows_per_day, seed=3, injections=faults
    )
    contract = testing.synthetic_contract(url=url)
    testing.write_log(url, contract, log.sample(frac=1.0, random_state=0), labels)  # stored out of time order
    return url, contract


def _no_examples(problem: str) -> str:
    return problem.split(", e.g.")[0]


def test_arrow_read_equals_streaming(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    strict = False  # lenient, so the text in num_3 is read as missing and reported rather than raised
    _, contract = _write(db_url)
    start = testing.DEFAULT_START
    bulk, bulk_stats = sources.read_window(
        contract, start, start + timedelta(days=2), sources.ReadOptions(strict=strict)
    )
    monkeypatch.setattr(read_paths, "_arrow_readable", lambda *a: False)
    streamed, streamed_stats = sources.read_window(
        contract, start, start + timedelta(days=2), sources.ReadOptions(strict=strict)
    )
    pd.testing.assert_frame_equal(bulk, streamed)
    # Examples are the first bad values in the database's row order, which SQL leaves undefined.
    assert [_no_examples(p) for p in bulk_stats.schema_problems] == [
        _no_examples(p) for p in streamed_stats.schema_problems
    ]
    assert [(p.column, p.rows) for p in bulk_stats.type_problems] == [
        (p.column, p.rows) for p in streamed_stats.type_problems
    ]
    assert [p.column for p in bulk_stats.type_problems] == ["num_3"], bulk_stats.type_problems
    assert (bulk_stats.rows, bulk_stats.min_ts, bulk_stats.max_ts) == (
        streamed_stats.rows,
        streamed_stats.min_ts,
        streamed_stats.max_ts,
    )
    assert bulk["event_ts"].is_monotonic_increasing and len(bulk) == 800
    assert bulk["cat_a"].isin(["a0", "a1", "a2", "a3", "cat_a_new"]).all()
    assert bulk["num_2"].isna().sum() > 100  # the null spike survived as NaN


def test_arrow_read_is_used_for_tables(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard against the fast path silently switching off (the benchmark's figures depend on it)."""
    _, contract = _write(db_url, rows_per_day=50)
    calls: list[str] = []
    real = read_paths._arrow_read

    def spy(conn, *args):  # type: ignore[no-untyped-def]
        got = real(conn, *args)
        calls.append(conn.dialect.name if isinstance(got, pd.DataFrame) else "not read")
        return got

    monkeypatch.setattr(read_paths, "_arrow_read", spy)
    start = testing.DEFAULT_START
    frame, _ = sources.read_window(contract, start, start + timedelta(days=2), sources.ReadOptions(strict=False))
    assert len(frame) == 100
    assert calls == [db_url.split(":")[0].split("+")[0]]


def _arrow_reads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Spy on the SQLite Arrow read: True per query it answered, False per query it handed back."""
    answered: list[bool] = []
    real = read_paths._sqlite_arrow

    def spy(*args):  # type: ignore[no-untyped-def]
        got = real(*args)
        answered.append(got is not read_paths._NOT_READ)
        return got

    monkeypatch.setattr(read_paths, "_sqlite_arrow", spy)
    return answered


@pytest.mark.parametrize("text_in_numbers", [False, True], ids=["clean", "a-number-column-stored-as-text"])
def test_sqlite_arrow_read_equals_the_cursor_read(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, text_in_numbers: bool
) -> None:
    """ADBC answers with the sqlite3 cursor's exact frame and problems: nulls, new categories, and a
    feature whose column holds text (a type problem names it)."""
    _, contract = _write(sqlite_url, text_in_numbers=text_in_numbers)
    start, end = testing.DEFAULT_START, testing.DEFAULT_START + timedelta(days=2)
    answered = _arrow_reads(monkeypatch)
    arrow, arrow_stats = sources.read_window(contract, start, end, sources.ReadOptions(strict=False))
    assert answered == [True]
    monkeypatch.setattr(read_paths, "_sqlite_arrow", lambda *a: read_paths._NOT_READ)
    cursor, cursor_stats = sources.read_window(contract, start, end, sources.ReadOptions(strict=False))
    pd.testing.assert_frame_equal(arrow, cursor)
    assert arrow_stats.schema_problems == cursor_stats.schema_problems
    assert [p.column for p in arrow_stats.type_problems] == (["num_3"] if text_in_numbers else [])
    assert arrow_stats.to_dict() == cursor_stats.to_dict()


def _table(path: Path, rows: list[tuple[object, ...]]) -> sa.Table:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id BIGINT, x FLOAT, label TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    return sa.Table(
        "t", sa.MetaData(), sa.Column("id", sa.BigInteger), sa.Column("x", sa.Float), sa.Column("label", sa.Text)
    )


def _arrow(path: Path, table: sa.Table) -> object:
    stmt = sa.select(table).where(table.c.id >= 0)
    types = {c.name: c.type for c in table.columns}
    return read_paths._sqlite_arrow(path, stmt.compile(dialect=sqlite.dialect()), list(types), types)


@pytest.mark.parametrize(
    "rows",
    [
        [(0, "n/a", "a")] + [(i, float(i), "a") for i in range(1, 3000)],  # ADBC would read the numbers as text
        [(i, float(i), None) for i in range(3000)] + [(3000, 1.0, "late")],  # NULL-typed first rows, then text
        [(i, float(i), "a") for i in range(3000)] + [(3000.5, 1.0, "a")],  # a real among integers, batches later
    ],
    ids=["text-then-numbers", "nulls-then-text", "real-after-integers"],
)
def test_sqlite_arrow_hands_mixed_columns_back(tmp_path: Path, rows: list[tuple[object, ...]]) -> None:
    path = tmp_path / "mixed.db"
    assert _arrow(path, _table(path, rows)) is read_paths._NOT_READ


def test_sqlite_arrow_types_all_null_columns_as_the_cursor_does(tmp_path: Path) -> None:
    path = tmp_path / "nulls.db"
    frame = _arrow(path, _table(path, [(i, None, None) for i in range(5)]))
    assert isinstance(frame, pd.DataFrame)
    assert (str(frame["id"].dtype), str(frame["x"].dtype), str(frame["label"].dtype)) == ("int64", "float64", "object")
    assert frame["x"].isna().all() and frame["label"].map(lambda v: v is None).all()
    empty = tmp_path / "empty.db"
    assert _arrow(empty, _table(empty, [])) is None


# --------------------------------------------------------------------------- every column type

T0 = datetime(2024, 3, 1, tzinfo=UTC)
HOSTILE_TEXT = [
    "a,b", 'say "hi"', "line\nbreak", "crlf\r\nend", "", None, "\\N", "NULL", "tab\there", "it's", "ünïcødé ✓",
    " padded ", ",", '"', "'); drop table events; --",
]  # fmt: skip
TYPED_FEATURES = [
    *({"name": n, "kind": "numeric"} for n in ("n_small", "n_int", "n_big", "n_real", "n_double", "n_numeric")),
    *({"name": n, "kind": "numeric"} for n in ("n_free", "n_bool", "n_text", "n_date")),
    *({"name": n, "kind": "categorical"} for n in ("c_text", "c_varchar", "c_char", "c_int", "c_numeric", "c_bool")),
    {"name": "c_stamp", "kind": "categorical"},
]


def _typed_table() -> sa.Table:
    """One column per SQL type a feature log holds; n_date and c_stamp are of a type their kind
    cannot hold, so a lenient read keeps them as read (a schema problem)."""
    t = sa.Table(
        "events",
        sa.MetaData(),
        sa.Column("event_id", sa.BigInteger),
        sa.Column("ts", sa.DateTime(timezone=True)),
        sa.Column("score", sa.Float(53)),
        sa.Column("n_small", sa.SmallInteger),
        sa.Column("n_int", sa.Integer),
        sa.Column("n_big", sa.BigInteger),
        sa.Column("n_real", sa.REAL),
        sa.Column("n_double", sa.Float(53)),
        sa.Column("n_numeric", sa.Numeric(14, 4)),
        sa.Column("n_free", sa.Numeric()),
        sa.Column("n_bool", sa.Boolean),
        sa.Column("n_text", sa.Text),
        sa.Column("n_date", sa.Date),
        sa.Column("c_text", sa.Text),
        sa.Column("c_varchar", sa.String(40)),
        sa.Column("c_char", sa.CHAR(3)),
        sa.Column("c_int", sa.Integer),
        sa.Column("c_numeric", sa.Numeric(8, 2)),
        sa.Column("c_bool", sa.Boolean),
        sa.Column("c_stamp", sa.DateTime(timezone=True)),
    )
    return t


def _typed_rows(n: int) -> list[dict[str, object]]:
    from decimal import Decimal

    reals = [0.1, 1.1, 3.4028235e38, 1e-45, 123456.79, -0.0, None]
    doubles = [0.1, float("inf"), float("-inf"), 1e308, -2.5, None, 5e-324]
    numerics = [Decimal("1.5000"), Decimal("-12345678.1234"), Decimal("0.0001"), None, Decimal("3")]
    free = [Decimal("1.50"), Decimal("0.1000000000000000055511151231257827"), Decimal("12345678901234567890"), None]
    rows = []
    for i in range(n):
        rows.append(
            {
                "event_id": i,
                "ts": T0 + timedelta(minutes=7 * i, microseconds=i),
                "score": (i % 10) / 10,
                "n_small": [-32768, 32767, None, 5][i % 4],
                "n_int": [2**31 - 1, -(2**31), None, 0][i % 4],
                "n_big": [2**62, -(2**62), None, 7][i % 4],
                "n_real": reals[i % len(reals)],
                "n_double": doubles[i % len(doubles)],
                "n_numeric": numerics[i % len(numerics)],
                "n_free": free[i % len(free)],
                "n_bool": [True, False, None][i % 3],
                "n_text": ["1.5", "n/a", None, "inf", " 2 "][i % 5],
                "n_date": [T0.date(), None][i % 2],
                "c_text": HOSTILE_TEXT[i % len(HOSTILE_TEXT)],
                "c_varchar": HOSTILE_TEXT[(i + 3) % len(HOSTILE_TEXT)],
                "c_char": ["a", "ab", "abc", None][i % 4],
                "c_int": [1, 2, None][i % 3],
                "c_numeric": [Decimal("1.50"), Decimal("2.00"), None][i % 3],
                "c_bool": [True, False, None][i % 3],
                "c_stamp": [T0, None][i % 2],
            }
        )
    return rows


def _typed_log(url: str, n: int = 60) -> object:
    from events_support import events_contract

    table = _typed_table()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(table.insert(), _typed_rows(n))
    engine.dispose()
    return events_contract(url, "typed", TYPED_FEATURES)


def _read_both(
    contract: object, monkeypatch: pytest.MonkeyPatch, end: datetime | None = None
) -> tuple[tuple[pd.DataFrame, object], tuple[pd.DataFrame, object], list[bool]]:
    """(the Arrow path's read, the streaming path's read, whether ADBC answered each Arrow read)."""
    answered = []
    real = read_paths._arrow_read

    def spy(*args):  # type: ignore[no-untyped-def]
        got = real(*args)
        answered.append(got is not read_paths._NOT_READ)
        return got

    options = sources.ReadOptions(strict=False)
    end = end or T0 + timedelta(days=1)
    with monkeypatch.context() as m:
        m.setattr(read_paths, "_arrow_read", spy)
        arrow = sources.read_window(contract, T0, end, options)  # type: ignore[arg-type]
    with monkeypatch.context() as m:
        m.setattr(read_paths, "_arrow_readable", lambda *a: False)
        streamed = sources.read_window(contract, T0, end, options)  # type: ignore[arg-type]
    return arrow, streamed, answered


def test_every_column_type_and_hostile_text_read_as_streaming_does(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Integers of every width, real (float4), double with infinities, NUMERIC (scaled, free, past
    float precision), booleans, text with commas, quotes, newlines, NULL-looking words and SQL,
    char(n), and columns kept as read: the Arrow path's frame and problems are the stream's, value
    for value. On PostgreSQL ADBC answers (COPY's CSV had to get every quote and newline right)."""
    contract = _typed_log(db_url)
    (frame, stats), (streamed, streamed_stats), answered = _read_both(contract, monkeypatch)
    pd.testing.assert_frame_equal(frame, streamed)
    assert stats.to_dict() == streamed_stats.to_dict()
    assert [p.column for p in stats.type_problems] == ["n_text"]
    assert {p.split("'")[1] for p in stats.schema_problems} == {"n_date", "c_stamp"}  # kept as read
    hostile = frame["c_text"].head(len(HOSTILE_TEXT)).fillna("<missing>").tolist()
    assert hostile == ["<missing>" if v is None else v for v in HOSTILE_TEXT]
    if db_url.startswith("postgresql"):
        assert answered == [True]
        assert frame["n_real"].head(6).tolist() == [0.1, 1.1, 3.4028235e38, 1e-45, 123456.79, -0.0]  # as text says
        assert frame["c_numeric"].head(3).fillna("-").tolist() == ["1.5", "2.0", "-"]  # NUMERIC read as a float
        assert frame["c_char"].head(2).tolist() == ["a  ", "ab "]  # char(n) padded, as PostgreSQL sends it


def test_psycopg3_urls_take_the_arrow_path_too(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`postgresql+psycopg://` (libpq too): that dialect's compiled `$1` (with its bind casts) reads the same."""
    contract = _typed_log(pg_url.replace("+psycopg2://", "+psycopg://"), n=20)
    (frame, stats), (streamed, streamed_stats), answered = _read_both(contract, monkeypatch)
    assert answered == [True]
    pd.testing.assert_frame_equal(frame, streamed)
    assert stats.to_dict() == streamed_stats.to_dict()


@pytest.mark.parametrize("ts_type", ["timestamptz", "timestamp", "text"])
def test_postgres_timestamps_are_utc_whatever_the_session_time_zone(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, ts_type: str
) -> None:
    """The URL's options set the session's TimeZone to Kolkata (+05:30): ADBC's own connection still
    reads naive timestamps and naive text as UTC and files each row by its UTC time, as the stream
    does; the URL's options reach libpq (the schema is chosen by them too)."""
    url = pg_url.replace("options=-csearch_path%3D", "options=-ctimezone%3DAsia/Kolkata%20-csearch_path%3D")
    day, us = timedelta(days=1), timedelta(microseconds=1)
    instants = {1: T0 - us, 2: T0, 3: T0 + timedelta(minutes=1), 4: T0 + day / 2, 5: T0 + day - us, 6: T0 + day}

    def stored(event_id: int, t: datetime) -> str:
        """As the type stores it: naive text is UTC; ids 3 and 6 as Kolkata's local time where an offset fits."""
        if ts_type != "timestamp" and event_id in (3, 6):
            return (t + timedelta(hours=5, minutes=30)).strftime("%Y-%m-%d %H:%M:%S.%f+05:30")
        return t.strftime("%Y-%m-%d %H:%M:%S.%f") + ("+00" if ts_type == "timestamptz" else "")

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        assert conn.execute(sa.text("show timezone")).scalar_one() == "Asia/Kolkata"
        conn.execute(sa.text(f"create table events (event_id bigint, ts {ts_type}, score float8, x float8)"))
        for event_id, t in instants.items():
            conn.execute(
                sa.text(f"insert into events values (:i, cast(:t as {ts_type}), 0.5, 1)"),
                {"i": event_id, "t": stored(event_id, t)},
            )
    engine.dispose()
    from events_support import events_contract

    contract = events_contract(url, "tz", ONE_FEATURE)
    (frame, stats), (streamed, streamed_stats), answered = _read_both(contract, monkeypatch)
    assert answered == [True]
    pd.testing.assert_frame_equal(frame, streamed)
    assert stats.to_dict() == streamed_stats.to_dict()
    assert frame["event_id"].tolist() == [2, 3, 4, 5]
    assert str(frame["ts"].dtype) == "datetime64[ns, UTC]"
    assert frame["ts"].tolist() == [pd.Timestamp(instants[i]) for i in (2, 3, 4, 5)]


# --------------------------------------------------------------------------- bound values and errors

ONE_FEATURE = [{"name": "x", "kind": "numeric"}]


def test_values_are_bound_not_written_into_the_sql(db_url: str) -> None:
    """A value that is SQL when interpolated is only a value: one row matches it, the table stays."""
    from driftguard.sources.engine import connect

    contract = _typed_log(db_url, n=20)
    table = _typed_table()
    hostile = "'); drop table events; --"
    stmt = sa.select(table.c.event_id, table.c.c_text).where(table.c.c_text == hostile)
    with connect(contract, None) as conn:  # type: ignore[arg-type]
        frame, _ = read_paths.execute(conn, stmt, 100, contract, "events", {c.name: c.type for c in table.columns})
        assert frame is not None and frame["c_text"].tolist() == [hostile]
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 20


def test_a_failing_query_names_model_and_table_and_is_not_retried(pg_url: str) -> None:
    from driftguard.airflow.dag_defaults import is_data_error
    from driftguard.sources.engine import connect
    from events_support import events_contract

    contract = events_contract(pg_url, "broken", ONE_FEATURE)
    missing = sa.table("no_such_log", sa.column("event_id"))
    with connect(contract, None) as conn, pytest.raises(sources.SourceError) as exc:
        read_paths.execute(
            conn, sa.select(missing.c.event_id), 100, contract, "no_such_log", {"event_id": sa.Integer()}
        )
    assert str(exc.value).startswith("model broken, table no_such_log: query failed: ")
    assert "no_such_log" in str(exc.value).split("query failed: ")[1]  # the database's own words
    assert not isinstance(exc.value, sources.SourceConnectionError) and is_data_error(exc.value)


def test_adbc_failing_to_connect_is_a_retryable_connection_error(
    pg_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLAlchemy's connection is open when the database stops taking new connections: ADBC's own
    connection fails, and that is a SourceConnectionError (Airflow retries it), password masked."""
    import uuid

    from driftguard.airflow.dag_defaults import is_data_error
    from driftguard.sources.engine import connect
    from events_support import events_contract

    name = f"dg_test_adbc_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    url = sa.engine.make_url(pg_server).set(database=name, password="s3cret")  # trust: the password is unused
    try:
        monkeypatch.setenv("DG_TEST_ADBC_URL", url.render_as_string(hide_password=False))
        contract = events_contract("${DG_TEST_ADBC_URL}", "cut", ONE_FEATURE)
        table = sa.table("events", sa.column("event_id"))
        with connect(contract, None) as conn:
            conn.execute(sa.text("create table events (event_id bigint)"))  # what the read below selects
            conn.commit()
            with admin.connect() as a:
                a.execute(sa.text(f'alter database "{name}" allow_connections false'))
            with pytest.raises(sources.SourceConnectionError) as exc:
                read_paths.execute(
                    conn, sa.select(table.c.event_id), 100, contract, "events", {"event_id": sa.Integer()}
                )
    finally:
        with admin.connect() as a:
            a.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()
    message = str(exc.value)
    assert message.startswith("model cut, table events: cannot connect to postgresql+psycopg2://postgres:***@")
    assert "s3cret" not in message and "not currently accepting connections" in message
    assert not is_data_error(exc.value)


def test_the_libpq_uri_keeps_password_and_options() -> None:
    """libpq itself (psycopg2's parse_dsn) reads back what the SQLAlchemy URL said, spaces too."""
    from psycopg2.extensions import parse_dsn

    url = sa.engine.make_url(
        "postgresql+psycopg2://dg:p%40ss%3Aw%2Frd%25@db.example:6543/feat?sslmode=require"
        "&sslrootcert=/etc/ca.pem&options=-csearch_path%3Dlogs%20-ctimezone%3DUTC&application_name=drift+guard"
    )
    assert parse_dsn(read_paths.libpq_uri(url)) == {
        "user": "dg",
        "password": "p@ss:w/rd%",
        "host": "db.example",
        "port": "6543",
        "dbname": "feat",
        "sslmode": "require",
        "sslrootcert": "/etc/ca.pem",
        "options": "-csearch_path=logs -ctimezone=UTC",
        "application_name": "drift guard",
    }
