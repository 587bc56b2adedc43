"""A monitoring run over an interval full of hostile values, then retraining over it: real steps,
a real champion (MLflow on SQLite), real GX and history.

The interval holds infinities, a 1e308, text and 'NaN' / 'inf' text in REAL columns. The run
records both families' critical failures with column and row counts, scores the rows it can,
and the retrain leaves the interval out. Before: `status ok` and a retrain failing for 60 days
on scikit-learn's "Input X contains infinity"; or a raw pyarrow.ArrowInvalid in extract and no
record at all. load_reference runs before extract here, as the DAG may order them."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from driftguard.monitoring import monitor
from driftguard.retraining import retrain, training
from driftguard.settings import get_settings
from driftguard.statistics.profile import non_finite
from driftguard.testing import generate_log, synthetic_contract, write_log
from home_support import isolated_stores

START = datetime(2024, 1, 1, tzinfo=UTC)
HOSTILE_DAY = 7
# event ids of the hostile day (300 rows a day, ids from 1) -> (column, stored value)
HOSTILE = {
    2101: ("num_4", float("inf")),
    2102: ("num_4", float("-inf")),
    2103: ("num_5", 1e308),
    2104: ("num_1", "abc"),
    2105: ("num_1", "n/a"),
    2106: ("num_0", "NaN"),
    2107: ("num_3", "inf"),
}
FINITE = {"num_4": 2, "num_5": 1, "num_3": 1}  # column -> rows failing `finite`
TYPES = {"num_1": 2, "num_0": 1}  # column -> rows failing `types`


def _day(n: int) -> datetime:
    return START + timedelta(days=n)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("hostile")
    mp = pytest.MonkeyPatch()
    home = tmp / "home"
    isolated_stores(mp, home)
    url = f"sqlite:///{tmp / 'log.db'}"
    contract = synthetic_contract(
        url=url,
        name="hostile",
        prediction=False,  # the champion scores the window: its step must survive the infinities
        overrides={"training": {"window": "6d", "validation": "1d", "holdout": "1d", "params": {"max_iter": 30}}},
    )
    log, labels = generate_log("binary_classification", start=START, days=9, rows_per_day=300, seed=5)
    write_log(url, contract, log, labels)
    db = sqlite3.connect(str(tmp / "log.db"))
    for event_id, (column, value) in HOSTILE.items():
        db.execute(f"update events set {column} = ? where event_id = ?", (value, event_id))
    db.commit()
    db.close()
    settings = get_settings()
    # A champion trained before the hostile day.
    assert (
        retrain.run_retraining(contract, _day(HOSTILE_DAY - 1), _day(HOSTILE_DAY), settings=settings)["status"]
        == "promoted"
    )
    ctx = monitor.RunContext.create(contract, _day(HOSTILE_DAY), _day(HOSTILE_DAY + 1), settings)
    order = ["load_reference", "extract", *[s for s in monitor.STEPS if s not in ("extract", "load_reference")]]
    steps = {name: monitor.STEPS[name](ctx) for name in order}
    store = monitor.history_store(settings)
    record = store.get_run(contract.name, ctx.start, ctx.end)
    retrain_ctx = retrain.RetrainContext.create(contract, _day(8), _day(9), settings=settings)
    yield {"contract": contract, "steps": steps, "record": record, "excluded": retrain.quality_failed_intervals(
        retrain_ctx
    )}  # fmt: skip
    mp.undo()


@pytest.mark.slow
def test_the_run_records_finite_and_types_failures_with_columns_and_rows(world: dict[str, Any]) -> None:
    published, record = world["steps"]["publish"], world["record"]
    assert published["status"] == "quality_failed" and published["quality_passed"] is False
    assert record is not None and record.status == "quality_failed"
    checks = record.quality_checks
    for family, expected in (("finite", FINITE), ("types", TYPES)):
        failed = {c["column"]: c for c in checks if c["family"] == family and not c["success"]}
        assert {k: v["observed"]["unexpected_count"] for k, v in failed.items()} == expected, family
        assert {v["severity"] for v in failed.values()} == {"critical"}
    summary = published["summary"]
    for column, rows in FINITE.items():
        assert f"{column} (finite) {rows} of 300" in summary, summary
    for column, rows in TYPES.items():
        assert f"{column} (types) {rows} of 300" in summary, summary
    assert "quality_critical" in published["alerts"]


@pytest.mark.slow
def test_the_champion_scores_the_rows_it_can(world: dict[str, Any]) -> None:
    assert world["steps"]["score"]["source"] == "champion v1"  # not "(failed on window.parquet)"
    evaluated = world["steps"]["evaluate_model"]
    assert evaluated["metric_value"] is not None and np.isfinite(evaluated["metric_value"])


@pytest.mark.slow
def test_the_interval_is_excluded_from_training(world: dict[str, Any]) -> None:
    contract, excluded = world["contract"], world["excluded"]
    assert (_day(HOSTILE_DAY), _day(HOSTILE_DAY + 1)) in excluded
    data = training.load_training_data(contract, as_of=_day(9), exclude_intervals=excluded)
    ts = data.frame[contract.source.timestamp_column]
    assert not ((ts >= _day(HOSTILE_DAY)) & (ts < _day(HOSTILE_DAY + 1))).any()
    assert data.fingerprint["rows_dropped_unusable"] == {}
    training.fit(training.build_pipeline(contract), data.split.train, contract)


@pytest.mark.slow
def test_rows_that_slip_past_the_gate_are_dropped_naming_column_and_events(world: dict[str, Any]) -> None:
    """Without the exclusion (an interval never monitored, a sample that missed the rows) training
    drops exactly the hostile rows, records them by column with their first and last event, and
    fits: no scikit-learn "Input X contains infinity"."""
    contract = world["contract"]
    data = training.load_training_data(contract, as_of=_day(9))
    dropped = data.fingerprint["rows_dropped_unusable"]
    assert {key.split(":")[0]: entry["rows"] for key, entry in dropped.items()} == {**FINITE, **TYPES}
    assert all(entry["first"].startswith(f"2024-01-0{HOSTILE_DAY + 1}") for entry in dropped.values())
    assert not data.frame["event_id"].isin(list(HOSTILE)).any()
    numeric = data.frame[contract.numeric_features]
    assert (numeric.dtypes == np.float64).all() and not non_finite(numeric.to_numpy()).any()
    training.fit(training.build_pipeline(contract), data.split.train, contract)
