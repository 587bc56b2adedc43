"""Windows above source.sample_rows: a seeded sample read in the database plus exact facts,
and the quality gate judging counts on those facts (real SQLite and PostgreSQL, real GX)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from driftguard import sources
from driftguard.contract import ModelContract
from driftguard.monitoring import quality
from driftguard.sources import ReadOptions, engine, sampling, schema
from driftguard.statistics.profile import profile_frame
from events_support import events_contract

T0 = datetime(2024, 3, 1, tzinfo=UTC)
ROWS = 30_000
SAMPLE = 10_000
END = T0 + timedelta(days=1)
SAMPLED = ReadOptions(sample_rows=SAMPLE, seed=3)
OTHER_SEED = replace(SAMPLED, seed=4)


def contract_for(url: str, **quality_cfg: Any) -> ModelContract:
    features = [
        {"name": "num", "kind": "numeric", "nullable": False},
        {"name": "opt", "kind": "numeric"},
        {"name": "cat", "kind": "categorical"},
    ]
    return events_contract(
        url, "sampled_model", features, source={"sample_rows": SAMPLE}, quality={"freshness": "1h", **quality_cfg}
    )


def log_frame(duplicate: bool = False, null_num_at: int | None = None) -> pd.DataFrame:
    """ROWS events over one day; `opt` 10% null; optionally one id used twice and one NULL in
    the non-nullable `num` (too rare for a 1-in-3 sample to be sure to see)."""
    rng = np.random.default_rng(7)
    ids = np.arange(1, ROWS + 1)
    if duplicate:
        ids[-1] = ids[-2]
    num = rng.normal(size=ROWS)
    frame = pd.DataFrame(
        {
            "event_id": ids,
            "ts": pd.to_datetime([T0 + timedelta(seconds=2.8 * i) for i in range(ROWS)], utc=True),
            "num": num,
            "opt": np.where(rng.random(ROWS) < 0.1, np.nan, rng.normal(size=ROWS)),
            "cat": rng.choice(["a", "b", "c"], size=ROWS),
            "score": rng.random(ROWS),
        }
    )
    if null_num_at is not None:
        frame.loc[null_num_at, "num"] = np.nan
    return frame


def write(url: str, frame: pd.DataFrame) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        frame.to_sql("events", conn, index=False, if_exists="replace")
    engine.dispose()


@pytest.fixture
def logged(db_url: str) -> tuple[ModelContract, pd.DataFrame]:
    frame = log_frame(duplicate=True, null_num_at=123)
    write(db_url, frame)
    return contract_for(db_url), frame


def test_sample_is_bounded_seeded_and_facts_are_exact(logged: tuple[ModelContract, pd.DataFrame]) -> None:
    contract, full = logged
    df, stats = sources.read_window(contract, T0, END, SAMPLED)
    again, _ = sources.read_window(contract, T0, END, SAMPLED)
    other, _ = sources.read_window(contract, T0, END, OTHER_SEED)

    assert stats.sampled and stats.rows == ROWS and stats.read_rows == len(df)
    assert 0.9 * SAMPLE < len(df) < 1.1 * SAMPLE  # about sample_rows, not ROWS
    pd.testing.assert_frame_equal(df, again)  # same data and seed: same sample
    assert not df["event_id"].equals(other["event_id"])  # the seed matters
    assert df["ts"].is_monotonic_increasing and df["ts"].min() >= pd.Timestamp(T0)
    spread = df["ts"].diff().dt.total_seconds().max()
    assert spread < 120, "the sample must cover the whole window, not a block of it"
    assert abs(df["opt"].isna().mean() - 0.1) < 0.02  # shares survive sampling

    facts = stats.facts
    assert facts is not None
    assert facts.rows == ROWS
    assert facts.nulls["num"] == 1 and facts.nulls["opt"] == int(full["opt"].isna().sum())
    assert facts.duplicate_rows == 2  # both rows sharing the id, as GX counts them
    assert facts.max_ts == full["ts"].max().to_pydatetime() and stats.max_ts == facts.max_ts


def test_null_counts_cover_the_window_once_across_time_slices(db_url: str) -> None:
    """SQLite counts NULLs in two time slices on two connections: rows on the cut (in both of
    SQLite's text layouts) and at the window's ends are counted exactly once."""
    mid = T0 + (END - T0) / 2
    assert sampling._time_slices(T0, END, "sqlite") == [(T0, mid), (mid, END)]
    assert sampling._time_slices(T0, END, "postgresql") == [(T0, END)]
    near = [T0, mid - timedelta(microseconds=1), mid, mid, mid + timedelta(microseconds=1), END - timedelta(seconds=1)]
    stamps = near + [T0 + timedelta(minutes=7 * i) for i in range(1, 200)]
    rng = np.random.default_rng(11)
    frame = pd.DataFrame(
        {
            "event_id": np.arange(1, len(stamps) + 1),
            "ts": pd.to_datetime(stamps, utc=True),
            "num": rng.normal(size=len(stamps)),
            "opt": [np.nan] * len(near) + list(np.where(rng.random(199) < 0.3, np.nan, 1.0)),
            "cat": rng.choice(["a", "b"], size=len(stamps)),
            "score": rng.random(len(stamps)),
        }
    )
    write(db_url, frame)
    if db_url.startswith("sqlite"):  # half the rows in the ISO 'T' layout
        engine = sa.create_engine(db_url)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE events SET ts = replace(ts, ' ', 'T') WHERE event_id % 2 = 0"))
        engine.dispose()
    _, stats = sources.read_window(contract_for(db_url), T0, END, ReadOptions(sample_rows=50, seed=1))
    assert stats.sampled and stats.rows == len(frame)
    assert stats.facts is not None and stats.facts.nulls["opt"] == int(frame["opt"].isna().sum())
    assert stats.facts.nulls["num"] == 0 and stats.facts.nulls["ts"] == 0


def test_small_window_is_read_whole(logged: tuple[ModelContract, pd.DataFrame]) -> None:
    contract, _ = logged
    df, stats = sources.read_window(contract, T0, END, ReadOptions(sample_rows=ROWS))
    assert not stats.sampled and len(df) == ROWS == stats.rows
    assert stats.facts is None, "a window read whole is exact: no extra scans"
    whole, _ = sources.read_window(contract, T0, END)
    pd.testing.assert_frame_equal(df, whole)


def test_sample_without_exact_facts_skips_the_scans(logged: tuple[ModelContract, pd.DataFrame]) -> None:
    contract, full = logged
    df, stats = sources.read_window(contract, T0, END, replace(SAMPLED, exact_facts=False))
    exact, _ = sources.read_window(contract, T0, END, SAMPLED)
    assert stats.sampled and stats.facts is None
    assert stats.rows == ROWS and stats.max_ts == full["ts"].max().to_pydatetime()
    pd.testing.assert_frame_equal(df, exact)  # the same sample, only the scans are skipped


def test_query_relation_is_sampled_too(db_url: str) -> None:
    """source.query has no rowid or reflected types; the sample hashes the id all the same."""
    write(db_url, log_frame())
    table = contract_for(db_url)
    source = {**table.source.model_dump(mode="json"), "table": None, "query": "select * from events"}
    contract = ModelContract.model_validate(table.model_dump(mode="json") | {"source": source})
    df, stats = sources.read_window(contract, T0, END, SAMPLED)
    same, _ = sources.read_window(table, T0, END, SAMPLED)
    assert stats.sampled and stats.rows == ROWS and 0.9 * SAMPLE < len(df) < 1.1 * SAMPLE
    assert df["event_id"].tolist() == same["event_id"].tolist()  # a hash of the id, not of the storage


def test_text_ids_are_sampled_by_their_text(db_url: str) -> None:
    """Integer ids hash as integers (PostgreSQL's hashint8extended), others as text: both bounded
    and seeded, and duplicated text ids still counted exactly."""
    frame = log_frame(duplicate=True)
    frame["event_id"] = [f"evt-{i:07d}" for i in frame["event_id"]]
    write(db_url, frame)
    contract = contract_for(db_url)
    df, stats = sources.read_window(contract, T0, END, SAMPLED)
    again, _ = sources.read_window(contract, T0, END, SAMPLED)
    assert stats.sampled and 0.9 * SAMPLE < len(df) < 1.1 * SAMPLE
    assert df["event_id"].str.startswith("evt-").all() and df["event_id"].tolist() == again["event_id"].tolist()
    assert stats.facts is not None and stats.facts.duplicate_rows == 2


def test_integer_ids_are_hashed_in_sql(db_url: str) -> None:
    """The fast path: no per-row text cast (PostgreSQL) and no per-row Python call (SQLite) for
    integer ids, from a table or from a query. (test_query_relation_is_sampled_too shows SQLite's
    Python function and its SQL expression pick the same rows.)"""
    write(db_url, log_frame())
    table = contract_for(db_url)
    source = {**table.source.model_dump(mode="json"), "table": None, "query": "select * from events"}
    query = ModelContract.model_validate(table.model_dump(mode="json") | {"source": source})
    for contract in (table, query):
        with engine.connect(contract, None) as conn:
            relation = schema.log_relation(conn, contract)
            keep = sampling.sample_filter(conn, relation, "event_id", 0.1, 3)
            assert keep is not None
            sql = str(keep.compile(conn))
        if db_url.startswith("postgresql"):
            assert "hashint8extended" in sql and "hashtextextended" not in sql
        elif contract is table:  # a query's columns have no declared type in SQLite
            assert "dg_sample_hash" not in sql and "%" in sql


def _validate(contract: ModelContract, df: pd.DataFrame, stats: sources.WindowStats, **kw: Any) -> Any:
    profile = profile_frame(log_frame(), contract)
    exact = stats.to_dict()["facts"] if stats.sampled else None
    return quality.validate_window(contract, df, profile, start=T0, end=END, exact=exact, **kw)


def test_counting_checks_are_exact_on_a_sample(logged: tuple[ModelContract, pd.DataFrame]) -> None:
    contract, _ = logged
    df, stats = sources.read_window(contract, T0, END, replace(SAMPLED, strict=False))
    assert df["event_id"].is_unique or df["event_id"].duplicated().sum() == 1
    result = _validate(contract, df, stats, expected_rows=ROWS * 4)
    by = {(c.family, c.column): c for c in result.checks}

    assert result.rows == ROWS and result.sampled_rows == len(df)
    assert "sample" in result.summary()
    dup = by[("duplicates", "event_id")]
    assert not dup.success and dup.observed["unexpected_count"] == 2 and dup.observed["exact"] == "database"
    not_null = by[("not_null", "num")]
    assert not not_null.success and not_null.observed["unexpected_count"] == 1
    volume = by[("volume", None)]
    assert not volume.success and volume.observed["observed_value"] == ROWS and "30,000" in volume.message
    assert by[("freshness", "ts")].success
    nulls = by[("nulls", "opt")]
    assert nulls.success and nulls.observed["element_count"] == ROWS
    assert by[("ranges", "num")].observed["element_count"] == len(df)  # shares: judged on the sample
    assert not result.passed_critical


def test_clean_sampled_window_passes(db_url: str) -> None:
    write(db_url, log_frame())
    contract = contract_for(db_url)
    df, stats = sources.read_window(contract, T0, END, replace(SAMPLED, strict=False))
    result = _validate(contract, df, stats, expected_rows=ROWS)
    assert result.passed_critical and not result.warnings, result.summary()
