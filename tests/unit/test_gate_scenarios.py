"""The scenario suite's criteria (benchmarks/gate_scenarios.py) on hand-made backtest rows: the
tables in docs/gate.md are only as good as these judgements."""

from __future__ import annotations

import dataclasses
import sys
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from driftguard.backtest import BacktestResult, IntervalRow  # noqa: E402
from driftguard.testing import DEFAULT_START as T0  # noqa: E402

from benchmarks import gate_scenarios as gs  # noqa: E402

WEEK = timedelta(days=7)


def _row(strategy: str, week: int, metric: float, **kw: object) -> IntervalRow:
    base = {f.name: None for f in dataclasses.fields(IntervalRow)}
    start = T0 + week * WEEK
    base.update(
        strategy=strategy, interval_start=start.isoformat(), interval_end=(start + WEEK).isoformat(), rows=100,
        status="ok", quality_passed=True, drifted_features=0, decision=False, reasons="", retrain="", gate="",
        gate_failed="", metric=metric, seconds=0.0,
    )  # fmt: skip
    base.update(kw)
    return IntervalRow(**base)


def _result(rows: list[IntervalRow]) -> BacktestResult:
    res = BacktestResult("m", "roc_auc", True, "5%", "", "", "7d")
    res.rows = rows
    return res


SCENARIO = gs.Scenario("s", "", "binary_classification", 70, 10, 0, 6, WEEK, change_day=14)


def test_recovery_is_counted_in_windows_after_the_change_window() -> None:
    metrics = [0.83, 0.84, 0.45, 0.50, 0.70, 0.80]  # change in week 2; 0.80 >= 0.835 - 0.05 in week 5
    ok, why = gs.recovers_within_3(_result([_row("policy", i, m) for i, m in enumerate(metrics)]), SCENARIO)
    assert ok and why == "back within 0.05 of 0.835 3 window(s) after the change"
    late = [0.83, 0.84, 0.45, 0.50, 0.70, 0.75]
    assert not gs.recovers_within_3(_result([_row("policy", i, m) for i, m in enumerate(late)]), SCENARIO)[0]


def test_a_promoted_tie_fails_and_shadow_promotions_count_as_promotions() -> None:
    rows = [_row("always", 0, 0.8, gate="promote", gain_ci_low=-0.01), _row("always", 1, 0.8, gate="reject")]
    ok, why = gs.no_tie_promoted(_result(rows), SCENARIO)
    assert not ok and why == "2 gate verdicts, 2 with the CI reaching 0, 1 of them promoted"
    shadowed = [_row("policy", i, 0.8) for i in range(3)] + [_row("policy", 3, 0.8, shadow_promoted="4")]
    ok, why = gs.promoted_within_2(_result(shadowed), SCENARIO)
    assert ok and why == "promoted 1 window(s) after the change window"


def test_signal_criteria_count_drift_alarms_delays_and_drift_caused_retrains() -> None:
    """benchmarks/signal_backtests.py: a drift trigger that fired counts whether or not a guard
    blocked it; a retrain counts as drift-caused only when no metric trigger fired with it."""
    from benchmarks import signal_backtests as sb

    scenario = gs.Scenario("s", "", "binary_classification", 70, 10, 0, 6, WEEK, change_day=14)
    reasons = ["no trigger", "drift_share (blocked by persistence)", "no trigger", "important_features",
               "drift_share, metric_drop", "no trigger"]  # fmt: skip
    decided = {3: True, 4: True}
    rows = [_row("policy", i, 0.8, reasons=r, decision=decided.get(i, False)) for i, r in enumerate(reasons)]
    rows += [_row("never", i, 0.8, estimated_metric=0.8 + 0.02 * i) for i in range(6)]
    n = sb.signal_numbers(_result(rows), scenario)
    assert (n["drift_alarms"], n["false_alarms"], n["windows_before_change"]) == (3, 1, 2)
    assert n["detection_delay"] == 1 and n["drift_retrains"] == 1  # week 4's retrain had a metric trigger too
    assert n["estimate_within_0_03"] == 0.333  # only |0.0| and |0.02| are within
    ok, why = sb.drift_detected_within_1(_result(rows), scenario)
    assert ok and why == "first drift trigger 1 window(s) after the change window; 1 before it"
    assert not sb.drift_alarms_at_most_1(_result(rows), scenario)[0]
