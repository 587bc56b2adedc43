"""Label windows above source.sample_rows: the labelled rows are read as the window's seeded
sample (same id hash, seed and share) while their count stays the database's exact count
(real SQLite and PostgreSQL, labels in their own table and in the log table)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from driftguard import sources
from driftguard.contract import ModelContract
from driftguard.sources import EmptyWindowError, ReadOptions, SourceError
from driftguard.statistics import metrics
from events_support import events_contract

T0 = datetime(2024, 3, 1, tzinfo=UTC)
END = T0 + timedelta(days=1)
ROWS = 30_000
SAMPLE = 10_000
SAMPLED = ReadOptions(sample_rows=SAMPLE, seed=3)
OTHER_SEED = replace(SAMPLED, seed=4)
MATURED = END + timedelta(days=1)  # labels.delay 1d: every event of the window has matured
TWICE = (100, ROWS // 2 + 10)  # positions sharing one id: one in each half of the window


def contract_for(url: str, where: str) -> ModelContract:
    labels = {"column": "y", "delay": "1d"} | ({"table": "event_labels"} if where == "table" else {})
    features = [{"name": "num", "kind": "numeric"}]
    return events_contract(url, "sampled_labels", features, source={"labels": labels, "sample_rows": SAMPLE})


def tables(where: str, labelled_share: float = 0.6) -> tuple[dict[str, pd.DataFrame], pd.Series]:
    """ROWS events over one day, y ~ Bernoulli(score) for `labelled_share` of them, one id logged
    twice (TWICE). With a label table it also holds a repeated row and a NULL label, which must
    not count. Returns the tables and the true label per labelled id."""
    rng = np.random.default_rng(11)
    ids = np.arange(1, ROWS + 1)
    ids[TWICE[1]] = ids[TWICE[0]]
    score = rng.random(ROWS)
    y = (rng.random(ROWS) < score).astype(int)
    y[TWICE[1]] = y[TWICE[0]]
    has = rng.random(ROWS) < labelled_share
    has[list(TWICE)] = True
    events = pd.DataFrame(
        {
            "event_id": ids,
            "ts": pd.to_datetime([T0 + timedelta(seconds=2.88 * i) for i in range(ROWS)], utc=True),
            "num": rng.normal(size=ROWS),
            "score": score,
        }
    )
    truth = pd.Series(y[has], index=ids[has], name="y").groupby(level=0).first()
    if where == "log":
        events["y"] = np.where(has, y, np.nan)
        return {"events": events}, truth
    unlabelled = int(ids[~has][0])
    extra = pd.DataFrame({"event_id": [int(truth.index[0]), unlabelled], "y": [float(truth.iloc[0]), np.nan]})
    labels = pd.concat([truth.rename_axis("event_id").reset_index(), extra], ignore_index=True)
    return {"events": events, "event_labels": labels}, truth


def write(url: str, frames: dict[str, pd.DataFrame], if_exists: str = "replace") -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for name, frame in frames.items():
            frame.to_sql(name, conn, index=False, if_exists=if_exists)
    engine.dispose()


@pytest.fixture(params=["table", "log"])
def labelled(db_url: str, request: pytest.FixtureRequest) -> tuple[ModelContract, pd.Series]:
    frames, truth = tables(request.param)
    write(db_url, frames)
    return contract_for(db_url, request.param), truth


def sampled_ids(contract: ModelContract) -> set[int]:
    window, _ = sources.read_window(contract, T0, END, SAMPLED)
    return set(window["event_id"].tolist())


def test_labelled_sample_is_bounded_seeded_and_true(labelled: tuple[ModelContract, pd.Series]) -> None:
    contract, truth = labelled
    full, full_stats = sources.read_labelled(contract, T0, END, as_of=MATURED)
    df, stats = sources.read_labelled(contract, T0, END, SAMPLED, as_of=MATURED)
    again, again_stats = sources.read_labelled(contract, T0, END, SAMPLED, as_of=MATURED)
    other, _ = sources.read_labelled(contract, T0, END, OTHER_SEED, as_of=MATURED)
    window, _ = sources.read_window(contract, T0, END, SAMPLED)

    expected = len(full) * SAMPLE / ROWS  # the window's share of every labelled row
    assert stats.sampled and stats.read_rows == len(df) and 0.9 * expected < len(df) < 1.1 * expected
    assert (stats.rows, stats.min_ts, stats.max_ts) == (len(full), full_stats.min_ts, full_stats.max_ts)
    assert stats.to_dict()["read_rows"] == len(df) and stats.to_dict()["rows"] == len(full)
    pd.testing.assert_frame_equal(df, again)  # same data and seed: same sample
    assert again_stats == stats
    assert not df["event_id"].equals(other["event_id"])  # the seed matters
    # Lines up with the window sample: exactly its labelled rows, each with its true label.
    assert sorted(df["event_id"]) == sorted(window.loc[window["event_id"].isin(truth.index), "event_id"])
    assert (df["y"].to_numpy() == truth.loc[df["event_id"]].to_numpy()).all()
    pd.testing.assert_frame_equal(df, full[full["event_id"].isin(df["event_id"])].reset_index(drop=True))
    # Only the sampled ids' labels leave the database, not every matured label.
    labels = sources.read_labels(contract, T0, END, as_of=MATURED, sample_fraction=SAMPLE / ROWS, seed=3)
    assert set(labels["event_id"]) == set(df["event_id"]) and len(labels) < len(truth) / 2


@pytest.mark.parametrize("hours", [12, 24])
def test_exact_labelled_count_equals_the_full_read(labelled: tuple[ModelContract, pd.Series], hours: int) -> None:
    """12h: only the first half has matured; the id logged in both halves counts twice (the
    unsampled join keeps every window row of a matured id). 24h: everything has matured."""
    contract, _ = labelled
    as_of = END + timedelta(hours=hours)
    full, full_stats = sources.read_labelled(contract, T0, END, as_of=as_of)
    df, stats = sources.read_labelled(contract, T0, END, SAMPLED, as_of=as_of)
    assert stats.sampled and len(df) < len(full) / 2
    assert (stats.rows, stats.min_ts, stats.max_ts) == (len(full), full_stats.min_ts, full_stats.max_ts)
    assert (full["event_id"] == TWICE[0] + 1).sum() == 2


def test_small_labelled_window_is_read_whole(labelled: tuple[ModelContract, pd.Series]) -> None:
    contract, _ = labelled
    full, full_stats = sources.read_labelled(contract, T0, END, as_of=MATURED)
    df, stats = sources.read_labelled(contract, T0, END, ReadOptions(sample_rows=ROWS, seed=3), as_of=MATURED)
    pd.testing.assert_frame_equal(df, full)
    assert stats == full_stats and not stats.sampled


def test_realized_metrics_on_the_sample_are_close(labelled: tuple[ModelContract, pd.Series]) -> None:
    """About 6,000 of 18,000 labelled rows are read. The sample's ROC AUC (about 0.83) has a
    standard error near 0.005 at 6,000 rows and, being a third of the full set, differs from the
    full value by about 0.005 * sqrt(2/3) = 0.004; the Brier score by about 0.002. The tolerances
    (0.02 and 0.01) are about five of those: the sample is seeded, so this is deterministic, and
    labels joined to the wrong rows would give an AUC near 0.5."""
    contract, _ = labelled
    full, _ = sources.read_labelled(contract, T0, END, as_of=MATURED)
    df, _ = sources.read_labelled(contract, T0, END, SAMPLED, as_of=MATURED)
    on_full = metrics.task_metrics("binary_classification", full["y"], full["score"])
    on_sample = metrics.task_metrics("binary_classification", df["y"], df["score"])
    assert on_full["roc_auc"] > 0.8
    assert abs(on_sample["roc_auc"] - on_full["roc_auc"]) < 0.02
    assert abs(on_sample["brier"] - on_full["brier"]) < 0.01


def test_conflicting_labels_are_checked_on_the_sample(db_url: str) -> None:
    frames, truth = tables("table")
    write(db_url, frames)
    contract = contract_for(db_url, "table")
    sample = sampled_ids(contract)
    outside = next(int(i) for i in truth.index if i not in sample)
    inside = next(int(i) for i in truth.index if i in sample)

    def conflict(key: int) -> None:
        write(db_url, {"event_labels": pd.DataFrame({"event_id": [key], "y": [1 - truth[key]]})}, "append")

    conflict(outside)
    with pytest.raises(SourceError, match="1 keys have conflicting labels"):
        sources.read_labelled(contract, T0, END, as_of=MATURED)
    df, _ = sources.read_labelled(contract, T0, END, SAMPLED, as_of=MATURED)
    assert outside not in set(df["event_id"])  # not read, so not checked
    conflict(inside)
    with pytest.raises(SourceError, match=rf"1 keys have conflicting labels, e.g. \[{inside}\]"):
        sources.read_labelled(contract, T0, END, SAMPLED, as_of=MATURED)


def test_labels_missed_by_the_sample_still_count(db_url: str) -> None:
    """Labels on a few ids outside the sample: nothing labelled is read, the count is exact and
    the window is not empty; a window with no matured label still is."""
    frames, _ = tables("table")
    write(db_url, {"events": frames["events"]})
    contract = contract_for(db_url, "table")
    outside = sorted(set(frames["events"]["event_id"].tolist()) - sampled_ids(contract))[:3]
    write(db_url, {"event_labels": pd.DataFrame({"event_id": outside, "y": [1, 0, 1]})})
    df, stats = sources.read_labelled(contract, T0, END, SAMPLED, as_of=MATURED)
    assert df.empty and stats.sampled and (stats.rows, stats.read_rows) == (3, 0)
    with pytest.raises(EmptyWindowError, match="has a matured label"):
        sources.read_labelled(contract, T0, END, SAMPLED, as_of=T0)
