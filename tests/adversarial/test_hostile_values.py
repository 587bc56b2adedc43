"""Hostile values in a feature log become recorded quality failures or clear errors, never raw
crashes or silence: infinities and float32 overflow (the `finite` family), text in a numeric column
(the `types` family), 'NaN' / 'inf' text, timestamps pandas cannot hold. Real SQLite (and one real
PostgreSQL) logs, real Great Expectations."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from driftguard import sources
from driftguard.contract import ModelContract
from driftguard.monitoring import quality
from driftguard.sources import ColumnTypeError
from driftguard.statistics.profile import FINITE_LIMIT, profile_frame
from events_support import events_contract

T0 = datetime(2024, 3, 1, tzinfo=UTC)
FEATURES = [{"name": "num", "kind": "numeric"}, {"name": "amount", "kind": "numeric", "nullable": False}]


def _contract(url: str, **source: object) -> ModelContract:
    return events_contract(url, "hostile", FEATURES, source={"prediction_column": None, **source})


def _frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "event_id": np.arange(1, n + 1),
            "ts": pd.to_datetime([T0 + timedelta(minutes=5 * i) for i in range(n)], utc=True),
            "num": rng.normal(0, 1, n),
            "amount": rng.uniform(1, 100, n),
        }
    )


def _sqlite_log(path: object, rows: list[tuple[int, str, object]] | None = None) -> str:
    """The clean frame as a SQLite table with REAL columns, then `rows` written over by id (any
    value in any column, as SQLite allows)."""
    url = f"sqlite:///{path}"
    frame = _frame()
    frame["ts"] = frame["ts"].dt.strftime("%Y-%m-%d %H:%M:%S")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        frame.to_sql("events", conn, index=False, dtype={"num": sa.Float(), "amount": sa.Float(), "ts": sa.Text()})
    engine.dispose()
    db = sqlite3.connect(str(path))
    for event_id, column, value in rows or []:
        db.execute(f"update events set {column} = ? where event_id = ?", (value, event_id))
    db.commit()
    db.close()
    return url


def _failed(result: quality.QualityResult, family: str) -> dict[str, quality.CheckResult]:
    return {c.column: c for c in result.checks if c.family == family and not c.success}


def _validate(contract: ModelContract, df: pd.DataFrame, **kw: object) -> quality.QualityResult:
    profile = profile_frame(_frame(), contract)
    return quality.validate_window(contract, df, profile, start=T0, end=T0 + timedelta(days=1), **kw)


# --------------------------------------------------------------------------- finite


def test_inf_and_float32_overflow_fail_the_critical_finite_check(sqlite_url: str) -> None:
    """+inf, -inf and 1e308 (finite in float64, infinity in scikit-learn's float32 trees) each fail
    `finite`, critical by default, naming the column and counting rows; NaN is not counted."""
    contract = _contract(sqlite_url)
    df = _frame()
    df.loc[[3, 4], "num"] = [np.inf, -np.inf]
    df.loc[7, "num"] = np.nan
    df.loc[9, "amount"] = 1e308
    result = _validate(contract, df)
    failed = _failed(result, "finite")
    assert set(failed) == {"num", "amount"} and not result.passed_critical
    assert {c.severity for c in failed.values()} == {"critical"}
    assert failed["num"].observed["unexpected_count"] == 2 and failed["amount"].observed["unexpected_count"] == 1
    assert "Column 'num' must hold finite numbers" in failed["num"].message and "2 of 200 rows" in failed["num"].message
    assert "num (finite) 2 of 200" in result.summary() and "amount (finite) 1 of 200" in result.summary()
    # The largest float32 is still finite; the family follows the contract's severity.
    df.loc[:, "num"], df.loc[:, "amount"] = 1.0, FINITE_LIMIT
    assert not _failed(_validate(contract, df), "finite")
    off = events_contract(sqlite_url, "hostile", FEATURES, source={"prediction_column": None},
                          quality={"severity": {"finite": "warning"}})  # fmt: skip
    df.loc[0, "num"] = np.inf
    assert _validate(off, df).passed_critical and set(_failed(_validate(off, df), "finite")) == {"num"}


def test_profile_ignores_non_finite_values() -> None:
    contract = _contract("sqlite://")
    df = _frame()
    df.loc[0, "num"], df.loc[1, "num"] = np.inf, 1e308
    entry = profile_frame(df, contract)["features"]["num"]
    assert np.isfinite([entry["min"], entry["max"], entry["mean"], entry["std"]]).all()
    assert entry["count"] == 200  # the values are there; only the statistics leave them out


# --------------------------------------------------------------------------- text in a numeric column


def test_text_in_a_sqlite_real_column_is_a_failed_types_check(tmp_path) -> None:
    """Text among numbers in a REAL column used to reach Parquet as a mixed object column
    (pyarrow.ArrowInvalid). Now it is read as missing and counted: a failed, critical `types`
    check naming the column, the rows and examples. 'NaN' text is not a number (types); 'inf'
    text spells infinity (finite). The column's null checks are left out (they would count the
    same values again)."""
    url = _sqlite_log(
        tmp_path / "log.db",
        [(5, "num", "abc"), (6, "num", "NaN"), (7, "amount", "inf"), (8, "amount", "12 EUR")],
    )
    contract = _contract(url)
    df, stats = sources.read_window(contract, T0, T0 + timedelta(days=1), sources.ReadOptions(strict=False))
    assert df["num"].dtype == np.float64 and df["amount"].dtype == np.float64
    df.to_parquet(tmp_path / "window.parquet")  # the hand-off that crashed
    problems = {p.column: p for p in stats.type_problems}
    assert (problems["num"].rows, problems["num"].read_rows) == (2, 200)
    assert set(problems["num"].examples) == {"abc", "NaN"} and problems["amount"].rows == 1
    assert stats.schema_problems == ()
    assert np.isinf(df.loc[df["event_id"] == 7, "amount"]).all()

    result = _validate(contract, df, type_problems=stats.to_dict()["type_problems"])
    types = _failed(result, "types")
    assert set(types) == {"num", "amount"} and types["num"].severity == "critical"
    assert types["num"].expectation == quality.SOURCE_TYPES_CHECK
    assert types["num"].observed["unexpected_count"] == 2 and types["num"].observed["element_count"] == 200
    assert "2 of 200 rows hold text that is not a number" in types["num"].message
    assert set(_failed(result, "finite")) == {"amount"}  # the 'inf' text
    assert not _failed(result, "not_null") and not _failed(result, "nulls")  # text is not counted twice
    assert "num (types) 2 of 200" in result.summary()
    # Strict reads (bootstrap reference, `driftguard check`) still refuse, naming all of it.
    with pytest.raises(ColumnTypeError, match=r"model hostile, table events, column num: .* 2 of 200 rows") as exc:
        sources.read_window(contract, T0, T0 + timedelta(days=1))
    assert "[2024-03-01T00:00:00+00:00, 2024-03-02T00:00:00+00:00)" in str(exc.value)


@pytest.mark.postgres
def test_postgres_infinity_and_a_query_producing_text(pg_url: str) -> None:
    """PostgreSQL: a double precision column holds 'Infinity' (ADBC's Arrow read keeps it; the
    former COPY read had to fall back to streaming), and a source.query can hand back text where
    the contract wants a number."""
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        _frame().to_sql("events", conn, index=False)
        conn.execute(sa.text("update events set num = 'Infinity'::float8 where event_id in (3, 4)"))
    engine.dispose()
    table = _contract(pg_url)
    df, stats = sources.read_window(table, T0, T0 + timedelta(days=1), sources.ReadOptions(strict=False))
    assert np.isposinf(df["num"]).sum() == 2 and stats.type_problems == ()
    assert set(_failed(_validate(table, df), "finite")) == {"num"}

    query = "select event_id, ts, num, case when event_id = 9 then 'n/a' else amount::text end as amount from events"
    queried = _contract(pg_url, table=None, query=query)
    df, stats = sources.read_window(queried, T0, T0 + timedelta(days=1), sources.ReadOptions(strict=False))
    assert [(p.column, p.rows, p.examples) for p in stats.type_problems] == [("amount", 1, ("n/a",))]
    assert df["amount"].dtype == np.float64
    result = _validate(queried, df, type_problems=stats.to_dict()["type_problems"])
    assert set(_failed(result, "types")) == {"amount"} and set(_failed(result, "finite")) == {"num"}


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize("sample_rows", [None, 10], ids=["read-whole", "sampled"])
def test_timestamps_pandas_cannot_hold_name_model_table_column_and_interval(tmp_path, sample_rows) -> None:
    """Years 2999 and 1500 are outside pandas' nanosecond range: a window holding them fails with
    a ColumnTypeError naming model, table, column and interval (it was a raw OutOfBoundsDatetime
    on the sampled path), and the windows around them read normally."""
    url = _sqlite_log(tmp_path / "log.db", [(1, "ts", "2999-01-01 00:00:00"), (2, "ts", "1500-06-01")])
    contract = _contract(url)
    lo, hi = datetime(1400, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)
    with pytest.raises(ColumnTypeError) as exc:
        sources.read_window(contract, lo, hi, sources.ReadOptions(strict=False, sample_rows=sample_rows))
    message = str(exc.value)
    assert message.startswith("model hostile, table events, column ts: ")
    assert "2999-01-01" in message and "1677-09-21 and 2262-04-11" in message
    assert "[1400-01-01T00:00:00+00:00, 3000-01-01T00:00:00+00:00)" in message
    assert (exc.value.model, exc.value.table, exc.value.column) == ("hostile", "events", "ts")
    df, _ = sources.read_window(
        contract, T0, T0 + timedelta(days=1), sources.ReadOptions(strict=False, sample_rows=sample_rows)
    )
    assert not df["event_id"].isin([1, 2]).any()
