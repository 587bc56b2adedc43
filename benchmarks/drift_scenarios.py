"""How often the drift triggers fire on synthetic scenarios with known truth: the signal layer alone.

For each scenario a reference and a sequence of production windows are generated with
driftguard.testing (known injections, known start), and every window is judged twice:

* ``calibrated``: Driftguard's verdicts (drift.run_drift with method `auto`, thresholds
  calibrated once on the reference's time chunks);
* ``fixed``: Evidently's own auto choice per column (K-S / chi-square p < 0.05 up to 1,000
  rows, normed Wasserstein / Jensen-Shannon >= 0.1 above), no minimum effect: what Driftguard
  did before calibration.

A window "fires" when either drift trigger of the default policy would: drift share >= 0.3 of
the judged features, or any of the top-3 important features drifted (the generator's label rule
ranks num_0, num_1, num_2 highest; cat_b has no effect on the label). Persistence, cooldown and
labels are left out: this measures the signal, not the retrain policy.

    PYTHONPATH=include python -m benchmarks.drift_scenarios [--out results/drift_scenarios.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import pandas as pd  # noqa: E402
from driftguard.monitoring import _evidently as ev  # noqa: E402
from driftguard.monitoring.drift import run_drift  # noqa: E402
from driftguard.statistics.calibration import calibrate_for  # noqa: E402
from driftguard.testing import DEFAULT_START, NUMERIC, Injection, generate_log, synthetic_contract  # noqa: E402

TOP = ("num_0", "num_1", "num_2")  # largest |weight| in the generator's label rule
SHARE = 0.3


@dataclass(frozen=True)
class Scenario:
    name: str
    truth: str  # what a good trigger does
    windows: int
    window_days: int
    rows_per_day: float  # may be < 1: rows are then drawn on a daily grid and thinned
    reference_windows: int
    schedule: str
    injections: tuple[Injection, ...] = ()  # driftguard.testing injections, in data time
    change_at: int | None = None  # first changed window


@dataclass
class Outcome:
    scenario: str
    method: str
    windows: int
    fired: int
    fired_before_change: int
    false_alarm_rate: float | None
    detection_delay: int | None  # windows after change_at until the first firing (0 = at once)
    recorded: int  # windows whose verdicts name any drifted feature (drift recorded, trigger or not)
    seconds: float


def _frame(seed: int, start, days: int, rows_per_day: float, injections=()) -> pd.DataFrame:
    per_day = max(round(rows_per_day), 1)
    frame, _ = generate_log(
        "binary_classification", start=start, days=days, rows_per_day=per_day, seed=seed, injections=list(injections)
    )
    if rows_per_day < 1:
        frame = frame.iloc[:: round(1 / rows_per_day)].reset_index(drop=True)
    return frame


def _at(scenario_windows: int, days: int, reference_windows: int) -> datetime:
    """Data time of the start of window `scenario_windows` (after the reference)."""
    return DEFAULT_START + timedelta(days=days * (reference_windows + scenario_windows))


YEAR_CYCLE = tuple(Injection("seasonal", DEFAULT_START, column=c, magnitude=1.0) for c in ("num_2", "num_4", "num_5"))

SCENARIOS = [
    Scenario("stationary, 52 weekly windows of 5k rows", "never fire", 52, 7, 5000 / 7, 8, "@weekly"),
    Scenario("stationary, 36 monthly windows of ~30 rows", "never fire", 36, 30, 1.0, 12, "@monthly"),
    Scenario("yearly cycle (±1 sd) in 3 features, reference = one cycle", "<= 2 fires", 52, 7, 40, 52, "@weekly",
             YEAR_CYCLE),
    Scenario("+1 sd shift of num_0 (most important) at window 26, 5k rows", "fire at 26 or 27", 52, 7, 5000 / 7, 8,
             "@weekly", (Injection("mean_shift", _at(26, 7, 8), column="num_0", magnitude=1.0),), 26),
    Scenario("+2 sd shift of num_0 at month 18, ~30 rows", "fire within 2 windows", 36, 30, 1.0, 12, "@monthly",
             (Injection("mean_shift", _at(18, 30, 12), column="num_0", magnitude=2.0),), 18),
    Scenario("gradual +1 sd of num_0 over 8 weeks from window 26, 5k rows", "fire during the ramp", 52, 7,
             5000 / 7, 8, "@weekly",
             (Injection("gradual_shift", _at(26, 7, 8), column="num_0", magnitude=1.0,
                        duration=timedelta(weeks=8)),), 26),
    Scenario("new category in cat_b (zero importance) at window 26", "record drift, never fire", 52, 7, 5000 / 7, 8,
             "@weekly", (Injection("new_category", _at(26, 7, 8), column="cat_b", magnitude=1.0),), 26),
    Scenario("concept drift (the label rule changes, features do not) at window 26", "never fire (labels catch it)",
             52, 7, 5000 / 7, 8, "@weekly", (Injection("concept_drift", _at(26, 7, 8), magnitude=1.0),), 26),
]  # fmt: skip


def _fixed_fires(contract, ref: pd.DataFrame, cur: pd.DataFrame) -> tuple[bool, bool]:
    """Evidently's own auto verdicts per feature (the pre-calibration behaviour)."""
    drifted = []
    with ev.quiet():
        for f in contract.features:
            numeric = f.name in NUMERIC
            r = ref[f.name].dropna() if numeric else ref[f.name].dropna().astype(str)
            c = cur[f.name].dropna() if numeric else cur[f.name].dropna().astype(str)
            if r.empty or c.empty:
                continue
            drifted.append((f.name, ev.column_drift(r, c, numeric=numeric, method=None, threshold=None).drifted))
    names = [n for n, d in drifted if d]
    return len(names) / max(len(drifted), 1) >= SHARE or bool(set(TOP) & set(names)), bool(names)


def run(scenario: Scenario, seed: int = 0) -> list[Outcome]:
    contract = synthetic_contract(url="sqlite:///unused.db", schedule=scenario.schedule)
    days = scenario.window_days
    ref_days = days * scenario.reference_windows
    reference = _frame(seed, DEFAULT_START, ref_days, scenario.rows_per_day, scenario.injections)
    started = time.perf_counter()
    calibration = calibrate_for(contract, reference, timestamps=reference["event_ts"], seed=seed)
    cal_seconds = time.perf_counter() - started
    fires: dict[str, list[bool]] = {"calibrated": [], "fixed": []}
    recorded = {"calibrated": 0, "fixed": 0}
    seconds = {"calibrated": cal_seconds, "fixed": 0.0}
    for i in range(scenario.windows):
        start = DEFAULT_START + timedelta(days=ref_days + i * days)
        cur = _frame(seed + 1000 + i, start, days, scenario.rows_per_day, scenario.injections)
        t = time.perf_counter()
        result = run_drift(contract, reference, cur, calibration=calibration, seed=seed)
        share = result.drift_share or 0.0
        fires["calibrated"].append(
            share >= max(SHARE, calibration.share_threshold) or bool(set(TOP) & set(result.drifted_features))
        )
        recorded["calibrated"] += bool(result.drifted_features)
        seconds["calibrated"] += time.perf_counter() - t
        t = time.perf_counter()
        fired, any_drift = _fixed_fires(contract, reference, cur)
        fires["fixed"].append(fired)
        recorded["fixed"] += any_drift
        seconds["fixed"] += time.perf_counter() - t
    out = []
    for method, fired in fires.items():
        at = scenario.change_at
        before = fired[:at] if at is not None else fired
        delay = next((i - at for i in range(at, len(fired)) if fired[i]), None) if at is not None else None
        out.append(
            Outcome(
                scenario=scenario.name,
                method=method,
                windows=len(fired),
                fired=sum(fired),
                fired_before_change=sum(before),
                false_alarm_rate=round(sum(before) / len(before), 4) if before else None,
                detection_delay=delay,
                recorded=recorded[method],
                seconds=round(seconds[method], 2),
            )
        )
    return out


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| scenario | thresholds | windows | fired | false alarms (before change) | detection delay | "
        "drift recorded | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        rate = "—" if o.false_alarm_rate is None else f"{o.fired_before_change} ({o.false_alarm_rate:.1%})"
        delay = "—" if o.detection_delay is None else str(o.detection_delay)
        lines.append(
            f"| {o.scenario} | {o.method} | {o.windows} | {o.fired} | {rate} | {delay} | {o.recorded} | {o.seconds} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/drift_scenarios.json"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    outcomes: list[Outcome] = []
    for scenario in SCENARIOS:
        print(f"running: {scenario.name} ...", file=sys.stderr, flush=True)
        outcomes += run(scenario, args.seed)
    print(table(outcomes))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
