"""The signals issue's scenarios at its own sizes, through the whole loop: `driftguard backtest`.

benchmarks/drift_scenarios.py measures the drift signal alone (verdicts per window, no policy).
This replays the same kinds of logs with the backtest under `policy`, `never` and `always`, so the
triggers, guards, retrains and the gate all take part, at the sizes the issue names: 52 weekly
windows of 5k rows and 36 monthly windows of ~30 rows. Per scenario it reports the windows in
which a drift trigger fired (before the change they are false alarms), the detection delay, the
retrains of each strategy (and how many the drift triggers caused), the serving model's mean
metric per strategy, and how far the label-free estimate was from the realized metric.

    PYTHONPATH=include:. python -m benchmarks.signal_backtests [--only stationary_5k] [--out DIR]

The contracts are the synthetic defaults; only the seasonal scenario declares `seasonality`
(what a user of yearly data would set: its reference covers one full cycle, and retrained models
keep a full cycle). Nothing is tuned per scenario.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from driftguard.backtest import BacktestResult, IntervalRow
from driftguard.testing import Injection

from benchmarks import gate_scenarios as gs
from benchmarks.gate_scenarios import DAY, T0, Scenario

DRIFT_TRIGGERS = ("drift_share", "important_features")
METRIC_TRIGGERS = ("metric_drop", "estimated_metric_drop")
WEEKLY_5K = {"rows_per_day": 714, "interval": 7 * DAY, "intervals": 52}  # 4,998 rows a week
HISTORY = 63  # days of log before the replay: the first champion's 60-day window


def _weekly(name: str, truth: str, injections: Sequence[Injection] = (), change_week: int | None = None,
            checks: tuple[str, ...] = ()) -> Scenario:  # fmt: skip
    change = None if change_week is None else HISTORY + 7 * change_week
    return Scenario(
        name, truth, "binary_classification", days=HISTORY + 7 * 52, start_day=HISTORY,
        injections=tuple(injections), change_day=change, checks=checks, overrides={"schedule": "@weekly"},
        **WEEKLY_5K,  # type: ignore[arg-type]
    )  # fmt: skip


def _monthly(name: str, truth: str, injections: Sequence[Injection] = (), change_month: int | None = None,
             checks: tuple[str, ...] = ()) -> Scenario:  # fmt: skip
    """~30 rows a month (one a day), 36 months replayed after a year of history (the reference)."""
    change = None if change_month is None else 365 + 30 * change_month
    return Scenario(
        name, truth, "binary_classification", days=365 + 30 * 36, rows_per_day=1, start_day=365, intervals=36,
        interval=30 * DAY, injections=tuple(injections), change_day=change, checks=checks,
        overrides={
            "schedule": "@monthly",  # drift thresholds are calibrated on reference chunks of the schedule's size
            "reference": {"start": T0.isoformat(), "end": (T0 + 365 * DAY).isoformat()},
            "training": {"estimator": "logistic_regression", "window": "365d"},
        },
    )  # fmt: skip


YEAR_ONE = {"start": T0.isoformat(), "end": (T0 + 364 * DAY).isoformat()}


def scenarios() -> list[Scenario]:
    week26 = T0 + (HISTORY + 7 * 26) * DAY
    return [
        _weekly("stationary_5k", "nothing changes", checks=("drift_alarms_at_most_1", "estimate_within_0_03")),
        _monthly("stationary_30", "nothing changes, ~30 rows a month", checks=("drift_alarms_at_most_1",)),
        Scenario(  # 280 rows a week: a year of reference without training 52 models on 260k rows each
            "seasonal_3",
            "a yearly cycle (1 sd) in num_2, num_4, num_5; the label rule holds",
            "binary_classification",
            days=364 + 7 * 52,
            rows_per_day=40,
            start_day=364,
            intervals=52,
            interval=7 * DAY,
            checks=("drift_alarms_at_most_2",),
            injections=tuple(Injection("seasonal", T0, column=c, magnitude=1.0) for c in ("num_2", "num_4", "num_5")),
            overrides={"schedule": "@weekly", "seasonality": "364d", "reference": YEAR_ONE},
        ),
        _weekly(
            "shift_1sd_5k",
            "num_0 (the most important feature) shifts by 1 sd at week 26",
            [Injection("mean_shift", week26, column="num_0", magnitude=1.0)],
            26,
            checks=("drift_detected_within_1", "estimate_within_0_03"),
        ),
        _monthly(
            "shift_2sd_30",
            "num_0 shifts by 2 sd at month 18, ~30 rows a month",
            [Injection("mean_shift", T0 + (365 + 30 * 18) * DAY, column="num_0", magnitude=2.0)],
            18,
            checks=("drift_detected_within_1",),
        ),
        _weekly(
            "zero_importance_5k",
            "a new category in cat_b, which the label rule ignores, at week 26",
            [Injection("new_category", week26, column="cat_b", magnitude=1.0)],
            26,
            checks=("drift_recorded_no_drift_retrain", "estimate_within_0_03"),
        ),
        _weekly(
            "concept_5k",
            "the label rule flips at week 26; the features do not change",
            [Injection("concept_drift", week26, magnitude=1.0)],
            26,
            checks=("metric_triggers_within_1",),
        ),
    ]


# --------------------------------------------------------------------------- what each window did


def _fired(row: IntervalRow) -> list[str]:
    """The triggers that fired in a window (blocked or not): the reasons column names them first."""
    return [name.strip() for name in row.reasons.split(" (blocked by")[0].split(",") if name.strip()]


def drift_fired(row: IntervalRow) -> bool:
    return any(t in DRIFT_TRIGGERS for t in _fired(row))


def drift_retrain(row: IntervalRow) -> bool:
    """A retrain the drift triggers caused: decided with a drift trigger and no metric trigger."""
    fired = _fired(row)
    return row.decision and any(t in DRIFT_TRIGGERS for t in fired) and not any(t in METRIC_TRIGGERS for t in fired)


def _change_index(result: BacktestResult, scenario: Scenario) -> int | None:
    return None if scenario.change_day is None else gs._index_of_day(result, scenario, scenario.change_day)


def signal_numbers(result: BacktestResult, scenario: Scenario) -> dict[str, Any]:
    """False alarms, detection delay, drift-caused retrains and estimate agreement (policy rows;
    the estimate on `never`, one champion throughout)."""
    rows = gs._rows(result, "policy")
    change = _change_index(result, scenario)
    before = rows if change is None else rows[:change]
    alarms = [i for i, r in enumerate(rows) if drift_fired(r)]
    delay = next((i - change for i in alarms if change is not None and i >= change), None)
    pairs = [(r.estimated_metric, r.metric) for r in gs._rows(result, "never")]
    pairs = [(e, m) for e, m in pairs if e is not None and m is not None]
    return {
        "windows": len(rows),
        "drift_alarms": len(alarms),
        "false_alarms": sum(1 for r in before if drift_fired(r)),
        "windows_before_change": len(before),
        "detection_delay": delay,
        "drift_recorded_after_change": None if change is None else sum(1 for r in rows[change:] if r.drifted_features),
        "drift_retrains": sum(1 for r in rows if drift_retrain(r)),
        "estimate_within_0_03": round(sum(abs(e - m) <= 0.03 for e, m in pairs) / len(pairs), 3) if pairs else None,
    }


# --------------------------------------------------------------------------- criteria (the targets)


def drift_alarms_at_most_1(result: BacktestResult, scenario: Scenario) -> tuple[bool, str]:
    n = signal_numbers(result, scenario)
    ok = n["drift_alarms"] <= 1 and n["drift_retrains"] == 0
    fired = f"a drift trigger fired in {n['drift_alarms']} of {n['windows']} windows"
    return ok, f"{fired}, {n['drift_retrains']} drift retrains"


def drift_alarms_at_most_2(result: BacktestResult, scenario: Scenario) -> tuple[bool, str]:
    n = signal_numbers(result, scenario)
    return n["drift_alarms"] <= 2, f"a drift trigger fired in {n['drift_alarms']} of {n['windows']} windows"


def drift_detected_within_1(result: BacktestResult, scenario: Scenario) -> tuple[bool, str]:
    n = signal_numbers(result, scenario)
    delay = n["detection_delay"]
    where = "never after the change" if delay is None else f"{delay} window(s) after the change window"
    return delay is not None and delay <= 1, f"first drift trigger {where}; {n['false_alarms']} before it"


def drift_recorded_no_drift_retrain(result: BacktestResult, scenario: Scenario) -> tuple[bool, str]:
    n = signal_numbers(result, scenario)
    ok = bool(n["drift_recorded_after_change"]) and n["drift_retrains"] == 0
    return ok, (
        f"drift recorded in {n['drift_recorded_after_change']} windows after the change; "
        f"{n['drift_alarms']} drift-trigger windows, {n['drift_retrains']} drift retrains"
    )


def metric_triggers_within_1(result: BacktestResult, scenario: Scenario) -> tuple[bool, str]:
    """The realized metric's trigger fires within 1 window after the change window (weekly windows,
    1-day label delay: the change week's labels have matured by the end of the next)."""
    rows = gs._rows(result, "policy")
    change = _change_index(result, scenario) or 0
    first = next((i for i in range(change, len(rows)) if "metric_drop" in _fired(rows[i])), None)
    where = "never" if first is None else f"{first - change} window(s) after the change window"
    return first is not None and first - change <= 1, f"metric_drop fired {where}"


def estimate_within_0_03(result: BacktestResult, scenario: Scenario) -> tuple[bool, str]:
    share = signal_numbers(result, scenario)["estimate_within_0_03"]
    return share is not None and share >= 0.9, f"estimate within 0.03 ROC AUC of the realized in {share} of windows"


CRITERIA: dict[str, Callable[[BacktestResult, Scenario], tuple[bool, str]]] = {
    f.__name__: f
    for f in (drift_alarms_at_most_1, drift_alarms_at_most_2, drift_detected_within_1,
              drift_recorded_no_drift_retrain, metric_triggers_within_1, estimate_within_0_03)
}  # fmt: skip


# --------------------------------------------------------------------------- table


def markdown(summaries: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| scenario | windows | drift-trigger windows | false alarms | detection delay | retrains policy / always "
        "(policy from drift) | mean metric policy / never / always | estimate within 0.03 | criteria |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        n, st = s["signals"], s["strategies"]
        rate = f"{n['false_alarms']} of {n['windows_before_change']}"
        crit = "; ".join(f"{'PASS' if c['passed'] else 'FAIL'} {c['detail']}" for c in s["checks"].values())
        delay = "—" if n["detection_delay"] is None else str(n["detection_delay"])
        means = " / ".join(f"{st[k]['mean_metric']:.4f}" for k in ("policy", "never", "always"))
        lines.append(
            f"| {s['scenario']} | {n['windows']} | {n['drift_alarms']} | {rate} | {delay} "
            f"| {st['policy']['retrains']} / {st['always']['retrains']} ({n['drift_retrains']}) | {means} "
            f"| {n['estimate_within_0_03'] if n['estimate_within_0_03'] is not None else '—'} | {crit} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    return gs.run_suite(
        argv,
        description=__doc__.splitlines()[0],
        suite=scenarios(),
        criteria=CRITERIA,
        table=markdown,
        out=Path("benchmarks/results/signal_backtests"),
        extra=signal_numbers,
    )


if __name__ == "__main__":
    sys.exit(main())
