"""Retraining decisions on synthetic scenarios with known truth: the whole loop, through the backtest.

Every scenario writes a feature log with driftguard.testing (known injections at known times) into
SQLite and replays it with `driftguard.backtest` (the library behind `driftguard backtest`) under
three strategies: the contract's `policy` (triggers, guards, change-aware training and the gate),
`never` (the first champion forever) and `always` (retrain every interval, promote whatever the
gate says). The tables compare them: retrains, promotions, the serving model's mean realized metric,
degraded intervals, and each scenario's own criterion from the issues (detection and recovery
delays, no single-class training failure, no tie promoted under superiority).

    PYTHONPATH=include:. python -m benchmarks.gate_scenarios [--only concept,stationary] [--out DIR]

The contracts are the defaults plus what a user of such data would set: the estimator (logistic /
ridge on small data), the schedule, `seasonality` for the yearly cycle. Thresholds are never tuned
per scenario: every scenario runs the same policy and gate defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

from driftguard import backtest, testing  # noqa: E402
from driftguard.backtest import BacktestConfig, BacktestResult, IntervalRow  # noqa: E402
from driftguard.testing import DEFAULT_START as T0  # noqa: E402
from driftguard.testing import Injection  # noqa: E402

DAY = timedelta(days=1)
JOBS = int(os.environ.get("SCENARIO_JOBS", "1"))  # strategies in parallel processes (backtest --jobs)
TRAINED = ("promoted", "rejected", "forced", "insufficient_evidence", "declined", "aborted")


@dataclass(frozen=True)
class Scenario:
    name: str
    truth: str
    task: str
    days: int  # length of the log
    rows_per_day: int
    start_day: int  # backtest start (the first champion is trained as of it)
    intervals: int
    interval: timedelta
    injections: tuple[Injection, ...] = ()
    change_day: int | None = None  # when the truth changes (None: never)
    overrides: dict[str, Any] = field(default_factory=dict)
    checks: tuple[str, ...] = ()  # criteria names, see CRITERIA


def _weekly(name: str, truth: str, injections: Sequence[Injection] = (), change_day: int | None = None,
            checks: tuple[str, ...] = (), **overrides: Any) -> Scenario:  # fmt: skip
    """2,000 rows a week, weekly intervals: 9 weeks of history, then 12 weeks replayed."""
    return Scenario(
        name, truth, "binary_classification", days=63 + 84, rows_per_day=286, start_day=63, intervals=12,
        interval=7 * DAY, injections=tuple(injections), change_day=change_day, overrides=overrides, checks=checks,
    )  # fmt: skip


def _yearly(name: str, truth: str, **training: Any) -> Scenario:
    """A regression log with a yearly regime (40 rows a day), monthly intervals in its second year."""
    overrides: dict[str, Any] = {
        "schedule": "@monthly",
        "seasonality": "364d",
        "promotion": {"metric": "mae"},
        "reference": {"start": T0.isoformat(), "end": (T0 + (365 + 35) * DAY).isoformat()},
    }
    if training:
        overrides["training"] = training
    return Scenario(
        name, truth, "regression", days=365 * 2 + 35, rows_per_day=40, start_day=365 + 35, intervals=12,
        interval=30 * DAY, injections=(Injection("seasonal_concept", T0, column="num_3", magnitude=2.0),),
        overrides=overrides, checks=("policy_error_vs_never_and_always",),
    )  # fmt: skip


def scenarios() -> list[Scenario]:
    at = 63 + 21  # the change: three replayed weeks in
    return [
        _weekly(
            "stationary",
            "nothing changes: no retrain is needed",
            checks=("no_tie_promoted",),
            promotion={"mode": "superiority"},
        ),
        _weekly(
            "abrupt_covariate",
            "num_0 shifts by 1 sd; the label rule holds, so the champion stays right",
            [Injection("mean_shift", T0 + at * DAY, column="num_0", magnitude=1.0)],
            change_day=at,
        ),
        _weekly(
            "gradual_covariate",
            "num_0 drifts by 1.5 sd over 4 weeks; the label rule holds",
            [Injection("gradual_shift", T0 + at * DAY, column="num_0", magnitude=1.5, duration=28 * DAY)],
            change_day=at,
        ),
        _weekly(
            "seasonal_covariate",
            "num_2 follows a yearly cycle (1 sd); the label rule holds",
            [Injection("seasonal", T0, column="num_2", magnitude=1.0)],
        ),
        _weekly(
            "concept",
            "the label rule flips (2,000 rows a week): retraining on post-change weeks restores the metric",
            [Injection("concept_drift", T0 + at * DAY, magnitude=1.0)],
            change_day=at,
            checks=("recovers_within_3",),
        ),
        Scenario(
            "low_volume_concept",
            "1 labelled row a day, monthly intervals; the label rule flips: a retrain halves the error",
            "binary_classification",
            days=730,
            rows_per_day=1,
            start_day=365,
            intervals=12,
            interval=30 * DAY,
            injections=(Injection("concept_drift", T0 + (365 + 120) * DAY, magnitude=1.0),),
            change_day=365 + 120,
            overrides={
                "schedule": "@monthly",
                "reference": {"start": T0.isoformat(), "end": (T0 + 365 * DAY).isoformat()},
                "training": {"estimator": "logistic_regression", "window": "365d"},
            },
            checks=("promoted_within_2", "no_single_class_failure"),
        ),
        _yearly("yearly_cycle", "the label rule differs in summer; a model of the last 60 days is wrong next season"),
        _yearly(
            "yearly_cycle_short_window",
            "as yearly_cycle, with training.window 60d set shorter than the period: the gate's seasonal "
            "guardrail judges candidates on last cycle's coming month",
            window="60d",
        ),
    ]


# --------------------------------------------------------------------------- criteria


def _rows(result: BacktestResult, strategy: str) -> list[IntervalRow]:
    return [r for r in result.rows if r.strategy == strategy]


def _index_of_day(result: BacktestResult, scenario: Scenario, day: int) -> int:
    """Index of the replayed interval that holds `day` (data time)."""
    at = T0 + day * DAY
    for i, r in enumerate(_rows(result, "policy")):
        if datetime.fromisoformat(r.interval_start) <= at < datetime.fromisoformat(r.interval_end):
            return i
    return len(_rows(result, "policy"))


def recovers_within_3(result: BacktestResult, scenario: Scenario) -> tuple[bool, str]:
    """After the change the served model's metric is back within 0.05 of its pre-change level
    within 3 windows of the change window."""
    rows = _rows(result, "policy")
    change = _index_of_day(result, scenario, scenario.change_day or 0)
    before = [r.metric for r in rows[:change] if r.metric is not None]
    level = sum(before) / len(before)
    for i in range(change + 1, len(rows)):
        if rows[i].metric is not None and rows[i].metric >= level - 0.05:
            return i - change <= 3, f"back within 0.05 of {level:.3f} {i - change} window(s) after the change"
    return False, f"not back within 0.05 of {level:.3f} in {len(rows) - change - 1} windows after the change"


def promoted_within_2(result: BacktestResult, scenario: Scenario) -> tuple[bool, str]:
    rows = _rows(result, "policy")
    change = _index_of_day(result, scenario, scenario.change_day or 0)
    for i in range(change, len(rows)):
        if rows[i].retrain == "promoted" or rows[i].shadow_promoted:
            delay = i - change
            return delay <= 2, f"promoted {delay} window(s) after the change window"
    return False, "never promoted after the change"


def no_single_class_failure(result: BacktestResult, scenario: Scenario) -> tuple[bool, str]:
    failed = [r for r in result.rows if r.retrain == "failed"]
    return not failed, f"{len(failed)} failed retrains (all strategies)"


def no_tie_promoted(result: BacktestResult, scenario: Scenario) -> tuple[bool, str]:
    """Under superiority no gate verdict whose gain CI reaches 0 promotes (every strategy's gate
    decisions, from the backtest's gate columns; `always` promotes regardless, its gate does not)."""
    gates = [r for r in result.rows if r.gate]
    spans = [r for r in gates if r.gain_ci_low is None or r.gain_ci_low <= 0]
    bad = [r for r in spans if r.gate == "promote"]
    return not bad, f"{len(gates)} gate verdicts, {len(spans)} with the CI reaching 0, {len(bad)} of them promoted"


def policy_error_vs_never_and_always(result: BacktestResult, scenario: Scenario) -> tuple[bool, str]:
    mean = {t.strategy: t.mean_metric for t in result.totals}
    ok = mean["policy"] <= mean["never"] + 1e-9 and mean["policy"] <= 1.05 * mean["always"]
    return ok, f"MAE policy {mean['policy']:.3f}, never {mean['never']:.3f}, always {mean['always']:.3f}"


CRITERIA: dict[str, Callable[[BacktestResult, Scenario], tuple[bool, str]]] = {
    f.__name__: f
    for f in (recovers_within_3, promoted_within_2, no_single_class_failure, no_tie_promoted,
              policy_error_vs_never_and_always)
}  # fmt: skip


# --------------------------------------------------------------------------- running


Criteria = dict[str, Callable[[BacktestResult, Scenario], tuple[bool, str]]]


def run_scenario(
    scenario: Scenario, root: Path, seed: int, criteria: Criteria | None = None
) -> tuple[BacktestResult, dict[str, Any]]:
    root.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{root}/log.db"
    contract = testing.synthetic_contract(
        task=scenario.task,
        url=url,
        name=f"scn_{scenario.name}",
        overrides={"start_date": T0.date().isoformat(), **scenario.overrides},
    )
    log, labels = testing.generate_log(
        scenario.task,
        start=T0,
        days=scenario.days,
        rows_per_day=scenario.rows_per_day,
        seed=seed,
        injections=scenario.injections,
    )
    testing.write_log(url, contract, log, labels)
    start = T0 + scenario.start_day * DAY
    config = BacktestConfig(
        contract=contract,
        start=start,
        end=start + scenario.intervals * scenario.interval,
        interval=scenario.interval,
        work_dir=root / "stores",
        progress=sys.stderr.isatty(),
        jobs=JOBS,
    )
    t0 = time.perf_counter()
    result = backtest.run_backtest(config)
    seconds = time.perf_counter() - t0
    (root / "timeline.svg").write_text(backtest.timeline_svg(result))
    return result, summarize(scenario, result, seconds, criteria)


def summarize(
    scenario: Scenario, result: BacktestResult, seconds: float, criteria: Criteria | None = None
) -> dict[str, Any]:
    totals = {t.strategy: t for t in result.totals}
    trained = {s: sum(1 for r in _rows(result, s) if r.retrain in TRAINED) for s in totals}
    gib = result.greater_is_better
    pol, alw = totals["policy"].mean_metric, totals["always"].mean_metric
    ratio = (pol / alw if gib else alw / pol) if pol and alw else math.nan
    checks = {name: (criteria or CRITERIA)[name](result, scenario) for name in scenario.checks}
    pairs = [(r.estimated_metric, r.metric) for r in _rows(result, "never") if r.estimated_metric is not None]
    pairs = [(e, m) for e, m in pairs if m is not None]
    return {
        "scenario": scenario.name,
        "truth": scenario.truth,
        "metric": result.metric_name,
        "seconds": round(seconds, 1),
        "strategies": {
            s: {
                "retrains": trained[s],
                "promotions": t.promotions,
                "insufficient": sum(1 for r in _rows(result, s) if r.retrain.startswith("insufficient")),
                "mean_metric": t.mean_metric,
                "degraded": t.degraded_intervals,
                "intervals": t.intervals,
            }
            for s, t in totals.items()
        },
        "policy_vs_always_metric": round(ratio, 4),
        # The champion's label-free estimate against what the labels then said (never: one model throughout).
        "estimate_abs_error": round(sum(abs(e - m) for e, m in pairs) / len(pairs), 4) if pairs else None,
        "policy_vs_always_retrains": round(trained["policy"] / trained["always"], 3) if trained["always"] else None,
        "checks": {k: {"passed": ok, "detail": why} for k, (ok, why) in checks.items()},
        "timeline": [
            {
                "strategy": r.strategy,
                "start": r.interval_start[:10],
                "metric": r.metric,
                "estimated": r.estimated_metric,
                "retrain": r.retrain,
                "shadow_promoted": r.shadow_promoted,
                "gate": r.gate,
                "gain_ci": [r.gain_ci_low, r.gain_ci_high],
                "reasons": r.reasons,
            }
            for r in result.rows
        ],
    }


def markdown(summaries: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| scenario | metric | policy retrains | always retrains | policy mean | never mean | always mean "
        "| policy / always | estimate error | criteria |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        st = s["strategies"]
        crit = "; ".join(f"{'PASS' if c['passed'] else 'FAIL'} {k}: {c['detail']}" for k, c in s["checks"].items())
        lines.append(
            f"| {s['scenario']} | {s['metric']} | {st['policy']['retrains']} ({st['policy']['promotions']} promoted"
            f", {st['policy']['insufficient']} insufficient) | {st['always']['retrains']} "
            f"| {st['policy']['mean_metric']:.4f} | {st['never']['mean_metric']:.4f} "
            f"| {st['always']['mean_metric']:.4f} | {s['policy_vs_always_metric']:.3f} metric, "
            f"{s['policy_vs_always_retrains']} retrains | {s['estimate_abs_error']} | {crit or '-'} |"
        )
    return "\n".join(lines)


def run_suite(
    argv: Sequence[str] | None,
    *,
    description: str,
    suite: Sequence[Scenario],
    criteria: Criteria,
    table: Callable[[Sequence[dict[str, Any]]], str],
    out: Path,
    extra: Callable[[BacktestResult, Scenario], dict[str, Any]] | None = None,
) -> int:
    """The command line of a scenario suite: --only, --seed, --out; one JSON summary per scenario
    (plus ``extra``'s numbers under "signals"), its table row as it finishes, the whole table at
    the end; exit 1 when a criterion fails."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--only", help="comma-separated scenario names")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=out)
    args = parser.parse_args(argv)
    chosen = [s for s in suite if not args.only or s.name in args.only.split(",")]
    summaries = []
    for scenario in chosen:
        print(f"== {scenario.name}: {scenario.truth} ({datetime.now():%H:%M})", flush=True)
        result, summary = run_scenario(scenario, args.out / scenario.name, args.seed, criteria)
        if extra is not None:
            summary["signals"] = extra(result, scenario)
        summaries.append(summary)
        (args.out / f"{scenario.name}.json").write_text(json.dumps(summary, indent=1, default=str))
        print(table([summary]), flush=True)
    print(table(summaries))
    return 0 if all(c["passed"] for s in summaries for c in s["checks"].values()) else 1


def main(argv: Sequence[str] | None = None) -> int:
    return run_suite(
        argv,
        description=__doc__.splitlines()[0],
        suite=scenarios(),
        criteria=CRITERIA,
        table=markdown,
        out=Path("benchmarks/results/gate_scenarios"),
    )


if __name__ == "__main__":
    sys.exit(main())
