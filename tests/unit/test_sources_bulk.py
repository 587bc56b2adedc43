"""The bulk read paths (PostgreSQL COPY + pyarrow; SQLite through ADBC's Arrow driver, else raw
sqlite3 columns) give exactly the frame and schema problems of streaming through SQLAlchemy, on a
log with every data fault the testing module can inject (text in a numeric column, nulls, unseen
categories) and an unordered insert."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
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


def test_bulk_read_equals_streaming(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    strict = False  # lenient, so the text in num_3 is read as missing and reported rather than raised
    _, contract = _write(db_url)
    start = testing.DEFAULT_START
    bulk, bulk_stats = sources.read_window(
        contract, start, start + timedelta(days=2), sources.ReadOptions(strict=strict)
    )
    monkeypatch.setattr(read_paths, "_bulk_readable", lambda *a: False)
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


def test_bulk_read_is_used_for_tables(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard against the fast path silently switching off (the benchmark's figures depend on it)."""
    _, contract = _write(db_url, rows_per_day=50)
    calls: list[str] = []
    real = read_paths._bulk_read

    def spy(conn, *args):  # type: ignore[no-untyped-def]
        calls.append(conn.dialect.name)
        return real(conn, *args)

    monkeypatch.setattr(read_paths, "_bulk_read", spy)
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
