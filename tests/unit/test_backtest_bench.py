"""The backtest speed table (benchmarks/backtest_speed.py) from a canned measurement: what
`make bench-backtest` prints, without the minute and a half of the real run."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.backtest_speed import summarize, table  # noqa: E402

DATA = {
    "rows_per_interval": 10_000,
    "intervals": 3,
    "threads": 1,
    "reports": False,
    "generate_s": 2.0,
    "process_s": 60.0,
    "per_interval": {"never": [5.0, 1.2, 1.4], "always": [11.0, 9.5, 16.5]},
    "retrains": ["promoted", "rejected", "promoted"],
    "stages": {
        # one call per interval; the first interval's call first
        "always|monitor.extract": [0.9, 0.3, 0.3],
        "always|monitor.check_quality": [2.0, 0.3, 0.3],
        "always|retrain.train": [3.0, 3.0, 3.0],
        "always|fit": [0.5, 0.4, 0.4],
        "always|servability check": [4.0, 4.0, 4.0],
        "always|retrain.evaluate": [5.0, 5.0, 12.0],
        "never|monitor.extract": [0.9, 0.3, 0.3],
    },
    "load_avg": [0.5, 0.5, 0.5],
}


def test_medians_after_the_first_interval_against_the_targets() -> None:
    summary = summarize(DATA)
    never, always = summary["kinds"]["never"], summary["kinds"]["always"]
    assert (never["first_s"], never["median_s"], never["max_s"], never["met"]) == (5.0, 1.3, 1.4, True)
    assert (always["median_s"], always["target_s"], always["met"]) == (13.0, 15.0, True)
    stages = {s["stage"]: s["seconds"] for s in summary["stages"]}
    assert stages["monitoring (run_monitoring, 8 steps)"] == 0.6  # the first interval's imports left out
    assert stages["retrain.evaluate"] == 8.5 and stages["servability check (fresh process)"] == 4.0
    assert stages["other (backtest bookkeeping, checkpoints)"] == round(13.0 - 0.6 - 3.0 - 8.5, 2)
    text = table(DATA, summary)
    assert "monitoring only (never) | 1.30 | 1.40 | 5.00 | <= 3 | met" in text
    assert "retraining (always) | 13.00 | 16.50 | 11.00 | <= 15 | met" in text
    assert "servability check (fresh process)" in text and "10,000-row daily windows" in text
