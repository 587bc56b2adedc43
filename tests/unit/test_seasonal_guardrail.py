"""The gate's seasonal guardrail on synthetic scores (pure, no I/O): the previous cycle's rows of
the coming phase, out of sample for both models, where the challenger must not be clearly worse."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from driftguard.contract import Change, ModelContract
from driftguard.retraining.gate import (
    SeasonalRows,
    evaluate_gate,
    seasonal_guardrail,
    seasonal_horizon,
    seasonal_phase,
)
from driftguard.retraining.servability import ServabilityResult

DAY = timedelta(days=1)
NOW = datetime(2024, 7, 1, tzinfo=UTC)  # end of the retrain's holdout
PHASE = (datetime(2023, 7, 3, tzinfo=UTC), datetime(2023, 8, 2, tzinfo=UTC))  # NOW - 364d, + 30d
SERVABLE = ServabilityResult(ok=True, load_seconds=0.4, ms_per_1k_rows=12.0, error=None, model_uri="models:/m/2")
# Both trained on recent rows, far from last year's phase.
CHALLENGER_WINDOW = (NOW - 60 * DAY, NOW - 14 * DAY)
CHAMPION_WINDOW = (NOW - 90 * DAY, NOW - 44 * DAY)


def make_contract(**overrides: Any) -> ModelContract:
    doc: dict[str, Any] = {
        "name": "seasonal_model",
        "task": "regression",
        "owners": ["a@example.com"],
        "start_date": "2023-01-01",
        "schedule": "@monthly",
        "seasonality": "364d",
        "source": {"url": "sqlite:///x.db", "table": "log", "timestamp_column": "ts", "id_column": "id"},
        "features": [{"name": "x", "kind": "numeric"}],
        "training": {"window": "60d"},
        "promotion": {"metric": "mae", "bootstrap": {"samples": 400, "confidence": 0.95, "seed": 0}},
    }
    doc.update(overrides)
    return ModelContract.model_validate(doc)


def phase_rows(n: int, *, champion_error: float, challenger_error: float, seed: int = 0, **kw: Any) -> SeasonalRows:
    """n labelled rows spread over PHASE; each model's absolute error is about the given size."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(PHASE[0], PHASE[1], periods=n + 1, inclusive="left")
    y = rng.normal(50, 10, n)
    sign = rng.choice([-1.0, 1.0], n)
    champion = y + sign * rng.normal(champion_error, champion_error / 4, n)
    challenger = y + sign * rng.normal(challenger_error, challenger_error / 4, n)
    defaults: dict[str, Any] = {"challenger_window": CHALLENGER_WINDOW, "champion_window": CHAMPION_WINDOW}
    return SeasonalRows(
        PHASE[0], PHASE[1], times=times, y_true=y, champion_scores=champion, challenger_scores=challenger,
        **{**defaults, **kw},
    )  # fmt: skip


def guard(rows: SeasonalRows | None, **kw: Any):
    args: dict[str, Any] = {
        "metric": "mae", "gib": False, "threshold": 0.5, "margin": Change(0.01, relative=True), "confidence": 0.95,
        "samples": 400, "seed": 0, "min_rows": 20, "power": 0.8,
    }  # fmt: skip
    return seasonal_guardrail(rows, **{**args, **kw})


def test_the_phase_is_last_cycles_coming_horizon() -> None:
    monthly = make_contract()
    assert seasonal_horizon(monthly) == timedelta(days=30)  # one @monthly interval (> cooldown, holdout)
    assert seasonal_phase(monthly, NOW) == PHASE
    daily = make_contract(schedule="@daily")
    assert seasonal_horizon(daily) == timedelta(days=7)  # the cooldown / holdout, longer than a day
    weekly_cycle = make_contract(seasonality="7d")
    assert seasonal_horizon(weekly_cycle) == timedelta(days=7) / 4  # at most a quarter of the period
    assert seasonal_phase(make_contract(seasonality=None), NOW) is None


def test_a_challenger_as_good_in_the_coming_season_passes() -> None:
    check = guard(phase_rows(300, champion_error=5.0, challenger_error=4.0))
    assert check.passed and check.numbers["status"] == "passed", check.detail
    assert check.numbers["rows"] == 300 and check.numbers["available"] == 1
    # MAE: lower is better, so the gain (champion - challenger) is positive.
    assert check.numbers["challenger"] < check.numbers["champion"] and check.numbers["diff"] > 0
    assert check.numbers["ci_low"] > check.numbers["bound"]
    assert "not worse than the champion by more than 1% of" in check.detail


def test_a_challenger_clearly_worse_in_the_coming_season_blocks_promotion() -> None:
    rows = phase_rows(30, champion_error=28.0, challenger_error=62.0)
    check = guard(rows)
    assert not check.passed and check.numbers["status"] == "failed"
    assert check.numbers["diff"] < 0 and check.numbers["ci_high"] < check.numbers["bound"]
    assert check.detail.startswith("challenger mae 6") and "vs champion 2" in check.detail
    assert "on 2023-07-03..2023-08-02 (same phase last cycle, n=30)" in check.detail
    assert "95% CI of the gain [" in check.detail
    # The same arrays read as higher-is-better would make the challenger the better model.
    assert guard(rows, metric="r2", gib=True).numbers["diff"] != check.numbers["diff"]

    # Through the gate: every other check passes on the holdout, the guardrail rejects.
    contract = make_contract()
    rng = np.random.default_rng(1)
    y = rng.normal(50, 10, 500)
    holdout_champion, holdout_challenger = y + rng.normal(0, 6, 500), y + rng.normal(0, 3, 500)
    verdict = evaluate_gate(
        contract, y_true=y, champion_scores=holdout_champion, challenger_scores=holdout_challenger,
        servability=SERVABLE, seasonal=rows,
    )  # fmt: skip
    assert not verdict.promote and verdict.outcome == "reject"
    assert [c.name for c in verdict.failed] == ["seasonal_guardrail"]
    assert verdict.check("significance").passed
    assert verdict.reasons()[0].startswith("seasonal_guardrail: challenger mae")
    record = json.loads(json.dumps(verdict.to_dict()))  # the decision JSON carries the numbers
    numbers = next(c for c in record["checks"] if c["name"] == "seasonal_guardrail")["numbers"]
    assert numbers["rows"] == 30 and numbers["ci_low"] < numbers["ci_high"] < 0 and numbers["status"] == "failed"


def test_rows_in_a_models_training_window_make_it_not_available() -> None:
    # The default seasonal window covers the whole period: last cycle's phase is in sample.
    full = (NOW - 378 * DAY, NOW - 14 * DAY)
    check = guard(phase_rows(300, champion_error=5.0, challenger_error=60.0, challenger_window=full))
    assert check.passed and check.numbers["status"] == "not_available" and check.numbers["available"] == 0
    assert check.detail == (
        "not available: rows of 2023-07-03..2023-08-02 are in the challenger's training window (2023-06-19..2024-06-17)"
    )
    unknown = guard(phase_rows(300, champion_error=5.0, challenger_error=60.0, champion_window=None))
    assert unknown.passed and "champion's training window is unknown" in unknown.detail
    # Given no rows at all, the check still says so.
    missing = guard(None)
    assert (
        missing.passed and missing.detail == "not available: not evaluated: no same-phase rows were given to the gate"
    )


def test_too_few_rows_out_of_sample_for_both_make_it_not_available() -> None:
    # The champion was fitted on most of the phase: 10 of 300 rows are left.
    overlap = (PHASE[0] - 300 * DAY, PHASE[0] + 29 * DAY)
    check = guard(phase_rows(300, champion_error=5.0, challenger_error=60.0, champion_window=overlap))
    assert check.passed and check.numbers["status"] == "not_available"
    assert check.numbers["rows"] == 10 and check.numbers["rows_in_champion_window"] == 290
    assert check.detail == (
        "not available: 10 of 300 labelled rows of 2023-07-03..2023-08-02 are out of sample for both models "
        "(290 in the champion's training window), fewer than 20 (training.min_holdout_rows)"
    )


def test_an_inconclusive_ci_on_few_rows_does_not_block() -> None:
    check = guard(phase_rows(25, champion_error=10.0, challenger_error=10.3, seed=3))
    assert check.passed and check.numbers["status"] == "inconclusive", check.detail
    assert check.numbers["ci_low"] < check.numbers["bound"] < check.numbers["ci_high"]
    assert check.numbers["rows_needed"] > 25 and check.detail.startswith("inconclusive, does not block")


def test_the_gate_records_the_guardrail_only_for_seasonal_contracts() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(50, 10, 300)
    args = {"y_true": y, "champion_scores": y + rng.normal(0, 6, 300), "challenger_scores": y + rng.normal(0, 3, 300)}
    seasonal = evaluate_gate(make_contract(), servability=SERVABLE, **args)
    assert seasonal.promote and seasonal.check("seasonal_guardrail").detail.startswith("not available: not evaluated")
    plain = evaluate_gate(make_contract(seasonality=None), servability=SERVABLE, **args)
    with pytest.raises(KeyError):
        plain.check("seasonal_guardrail")
    first = evaluate_gate(make_contract(), y_true=y, champion_scores=None, challenger_scores=y, servability=SERVABLE)
    assert "seasonal_guardrail" not in [c.name for c in first.checks]  # a first champion has no one to compare
