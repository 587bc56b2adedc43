"""What the two backtest test files share: synthetic logs with a concept drift at a known date,
their contracts, and the checks every strategy's rows must pass.

Small and linear (logistic regression, ridge) so a retrain takes seconds: 300 rows a day, daily
intervals, the drift a few days in; labels mature a day late, so the first interval that can
measure the drift starts the day after it. With training.window 4d (train 2d, validation 1d,
holdout 1d) a retrain four days after the drift trains on post-drift rows only.

Two files, one per module fixture: tests/integration/test_backtest.py (binary, fast tier) and
tests/adversarial/test_backtest_determinism.py (regression, and the runs that must reproduce it
after a kill, in parallel processes and beside a CPU hog: CI tier).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from driftguard import backtest, mlflow_setup, testing
from driftguard.backtest import BacktestResult, IntervalRow
from driftguard.contract import ModelContract
from driftguard.testing import DEFAULT_START as T0
from driftguard.testing import Injection

ROWS_PER_DAY = 300
LOG_DAYS = 34


def contract(task: str, url: str) -> ModelContract:
    binary = task == "binary_classification"
    return testing.synthetic_contract(
        task=task,
        url=url,
        name="bt_binary" if binary else "bt_regression",
        prediction=False,  # monitoring scores with the serving @champion, as the backtest needs
        label_table="event_labels" if binary else None,
        overrides={
            "reference": {"start": "2024-01-01", "end": "2024-01-15", "sample_size": 1000},
            "training": {
                "estimator": "logistic_regression" if binary else "ridge",
                "params": {} if binary else {"alpha": 1.0},
                "seed": 7,
                "window": "4d",
                "validation": "1d",
                "holdout": "1d",
            },
            # Concept drift moves labels, not features: the metric trigger is the one that matters.
            "policy": {
                "metric_drop": 0.1 if binary else 2.0,
                "drift_share": 0.5,
                "important_features": None,
                "max_model_age": None,
                "cooldown": "1d",
                "min_new_labels": 100,
            },
            # Regression: a challenger fitted on pre-drift rows can be a hair better than the champion on
            # the drifted holdout; promoted, its poor holdout RMSE would become the metric_drop baseline and
            # hide the degradation. Requiring a 20% gain keeps the gate from promoting it.
            "promotion": {
                "mode": "superiority",
                "margin": 0.0,
                "bootstrap": {"samples": 200},
                "segments": {"min_rows": 50},
                "min_relative_change": 0.0 if binary else 0.2,
            },
        },
    )


def seed_log(tmp: Path, task: str, drift_day: int) -> tuple[ModelContract, str]:
    url = f"sqlite:///{tmp}/log_{task}.db"
    made = contract(task, url)
    log, labels = testing.generate_log(
        task,
        start=T0,
        days=LOG_DAYS,
        rows_per_day=ROWS_PER_DAY,
        seed=3,
        injections=[Injection("concept_drift", T0 + timedelta(days=drift_day), magnitude=1.0)],
    )
    testing.write_log(url, made, log, labels)
    return made, url


@pytest.fixture(scope="module", autouse=True)
def restore_mlflow_globals() -> Iterator[None]:
    """The backtest points MLflow at each strategy's store; the module's fixtures outlive one test."""
    import mlflow

    keys = ["MLFLOW_TRACKING_URI", *mlflow_setup.HTTP_ENV_DEFAULTS]
    saved = {key: os.environ.get(key) for key in keys}
    yield
    mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def rows(result: BacktestResult, strategy: str) -> list[IntervalRow]:
    return [r for r in result.rows if r.strategy == strategy]


def day(row: IntervalRow) -> int:
    return (backtest.utc(row.interval_start) - T0).days


def totals(result: BacktestResult) -> dict[str, Any]:
    return {t.strategy: t for t in result.totals}


def check_strategies(result: BacktestResult, *, first_measured_drift_day: int, intervals: int) -> None:
    """policy quiet before the drift and retraining after it; never degraded; always promoting every interval."""
    policy, never, always = (rows(result, s) for s in ("policy", "never", "always"))
    assert len(policy) == len(never) == len(always) == intervals
    assert all(r.metric is not None for r in result.rows), [r for r in result.rows if r.metric is None]
    stable = [r for r in policy if day(r) < first_measured_drift_day]
    assert stable and not any(r.decision or r.retrain for r in stable), [(r.interval_start, r.reasons) for r in stable]
    assert not any(r.degraded for r in stable)
    after = [r for r in policy if day(r) >= first_measured_drift_day]
    assert after[0].decision and "metric_drop" in after[0].reasons, after[0]
    assert any(r.retrain == "promoted" for r in after), [(r.interval_start, r.retrain) for r in after]
    # never: the initial champion throughout, degraded once the drift is measurable
    assert {r.champion_version for r in never} == {"1"}
    assert not any(r.retrain for r in never)
    assert all(r.degraded for r in never if day(r) >= first_measured_drift_day)
    # always: a retrain and a promotion (forced when the gate rejects) every interval
    assert all(r.retrain in ("promoted", "forced") for r in always), [r.retrain for r in always]
    assert [r.champion_version for r in always] == [str(v) for v in range(1, intervals + 1)]
    t = totals(result)
    assert t["always"].retrains == t["always"].promotions == intervals
    assert t["never"].retrains == 0 and t["never"].degraded_intervals >= 3
    assert 1 <= t["policy"].retrains <= intervals // 2
    assert t["policy"].degraded_intervals < t["never"].degraded_intervals


def decision_csv(written: list[IntervalRow], folder: Path) -> str:
    """backtest.csv as a run that wrote these rows would have it."""
    backtest.Journal(folder).rewrite(written)
    return (folder / "backtest.csv").read_text()
