"""The bulk read paths (PostgreSQL COPY + pyarrow, raw sqlite3 columns) give exactly the frame and
schema problems of streaming through SQLAlchemy, on a log with every data fault the testing
module can inject (text in a numeric column, nulls, unseen categories) and an unordered insert."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from driftguard import sources, testing
from driftguard.testing import Injection


def _write(url: str, rows_per_day: int = 400) -> tuple[str, object]:
    start = testing.DEFAULT_START
    faults = [
        Injection("type_change", start + timedelta(days=1), magnitude=0.2),
        Injection("null_spike", start + timedelta(days=1), magnitude=0.5),
        Injection("new_category", start + timedelta(days=1), magnitude=0.4),
        Injection("mean_shift", start + timedelta(days=1)),
    ]
    log, labels = testing.generate_log(
        "binary_classification", start=start, days=2, rows_per_day=rows_per_day, seed=3, injections=faults
    )
    contract = testing.synthetic_contract(url=url)
    testing.write_log(url, contract, log.sample(frac=1.0, random_state=0), labels)  # stored out of time order
    return url, contract


def _no_examples(problem: str) -> str:
    return problem.split(", e.g.")[0]


def test_bulk_read_equals_streaming(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    strict = False  # lenient, so the text in num_3 is kept and reported rather than raised
    _, contract = _write(db_url)
    start = testing.DEFAULT_START
    bulk, bulk_stats = sources.read_window(contract, start, start + timedelta(days=2), strict=strict)
    monkeypatch.setattr(sources, "_bulk_readable", lambda *a: False)
    streamed, streamed_stats = sources.read_window(contract, start, start + timedelta(days=2), strict=strict)
    pd.testing.assert_frame_equal(bulk, streamed)
    # Examples are the first bad values in the database's row order, which SQL leaves undefined.
    assert [_no_examples(p) for p in bulk_stats.schema_problems] == [
        _no_examples(p) for p in streamed_stats.schema_problems
    ]
    assert any("num_3" in p for p in bulk_stats.schema_problems), bulk_stats.schema_problems
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
    real = sources._bulk_read

    def spy(conn, *args):  # type: ignore[no-untyped-def]
        calls.append(conn.dialect.name)
        return real(conn, *args)

    monkeypatch.setattr(sources, "_bulk_read", spy)
    start = testing.DEFAULT_START
    frame, _ = sources.read_window(contract, start, start + timedelta(days=2), strict=False)
    assert len(frame) == 100
    assert calls == [db_url.split(":")[0].split("+")[0]]
