"""The backtest's pure parts: calendar intervals, gate evidence, the row journal, checkpoints and
the resume guard. No feature log, no training: milliseconds (Airflow's timetable in the
cross-check is imported once, about a second)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from driftguard import backtest, testing
from driftguard.backtest import BacktestConfig, BacktestError, Cadence, IntervalRow, schedule_intervals


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_monthly_over_2013_is_twelve_calendar_months() -> None:
    got = schedule_intervals("@monthly", _utc(2013, 1, 1), _utc(2014, 1, 1))
    assert got == [(_utc(2013, m, 1), _utc(2013, m + 1, 1) if m < 12 else _utc(2014, 1, 1)) for m in range(1, 13)]
    assert [(e - s).days for s, e in got] == [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    # A start inside a month begins at the next month, as Airflow's first data interval does.
    assert schedule_intervals("@monthly", _utc(2013, 1, 15), _utc(2013, 4, 1))[0] == (
        _utc(2013, 2, 1),
        _utc(2013, 3, 1),
    )


def test_weekly_cron_and_durations() -> None:
    # @weekly is Sunday midnight to Sunday midnight (Airflow's "0 0 * * 0"); 2013-03-04 is a Monday.
    weekly = schedule_intervals("@weekly", _utc(2013, 3, 4), _utc(2013, 4, 1))
    assert weekly == [(_utc(2013, 3, d), _utc(2013, 3, d + 7)) for d in (10, 17, 24)]
    assert all(s.weekday() == 6 for s, _ in weekly)
    mondays = schedule_intervals("0 6 * * 1", _utc(2013, 3, 4), _utc(2013, 3, 20))
    assert mondays == [(_utc(2013, 3, 4, 6), _utc(2013, 3, 11, 6)), (_utc(2013, 3, 11, 6), _utc(2013, 3, 18, 6))]
    # A duration steps from the start exactly: 30d slides against the months.
    thirty = schedule_intervals("30d", _utc(2013, 1, 1), _utc(2014, 1, 1))
    assert len(thirty) == 12 and thirty[1][0] == _utc(2013, 1, 31) and thirty[-1][1] == _utc(2013, 12, 27)
    assert schedule_intervals(timedelta(days=7), _utc(2013, 3, 4), _utc(2013, 3, 18))[1][0] == _utc(2013, 3, 11)
    assert Cadence.parse("1w").key == Cadence.parse("7d").key != Cadence.parse("@weekly").key
    assert Cadence.parse("@monthly").previous(_utc(2013, 3, 1)) == (_utc(2013, 2, 1), _utc(2013, 3, 1))
    for bad, message in (
        ("@once", "no intervals"),
        ("@fortnightly", "unknown schedule preset"),
        ("61 * * * *", "not a valid cron"),
        ("soon", "neither a schedule"),
    ):
        with pytest.raises(ValueError, match=message):
            Cadence.parse(bad)


@pytest.mark.parametrize(
    ("schedule", "start", "end"),
    [
        ("@monthly", _utc(2013, 1, 1), _utc(2014, 1, 1)),
        ("@weekly", _utc(2013, 3, 4), _utc(2013, 6, 1)),
        ("@daily", _utc(2013, 3, 4, 12), _utc(2013, 3, 20)),
        ("@quarterly", _utc(2013, 2, 1), _utc(2014, 6, 1)),
        ("0 6 * * 1", _utc(2013, 3, 4), _utc(2013, 5, 20)),
    ],
)
def test_intervals_are_airflows_data_intervals(schedule: str, start: datetime, end: datetime) -> None:
    """The DAGs' timetable (dag_defaults.timetable) from the same start, with catchup."""
    interval = pytest.importorskip("airflow.timetables.interval")
    from airflow.timetables.base import TimeRestriction

    timetable = interval.CronDataIntervalTimetable(schedule, timezone="UTC")
    restriction = TimeRestriction(earliest=start, latest=end, catchup=True)
    airflow, last = [], None
    while (info := timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)) is not None:
        if info.data_interval.end > end:
            break
        last = info.data_interval
        airflow.append((last.start.timestamp(), last.end.timestamp()))
    ours = [(s.timestamp(), e.timestamp()) for s, e in schedule_intervals(schedule, start, end)]
    assert ours == airflow and ours


def _contract(url: str = "sqlite:////nonexistent/log.db", **overrides: object) -> object:
    return testing.synthetic_contract(
        task="regression", url=url, name="bt_unit", schedule="@weekly", prediction=False, overrides=overrides
    )


def test_the_contract_schedule_is_the_default_interval() -> None:
    config = BacktestConfig(contract=_contract(), start=_utc(2024, 1, 1), end=_utc(2024, 2, 1), progress=False)
    assert config.cadence.text == "@weekly"
    assert [s.day for s, _ in config.intervals()] == [7, 14, 21]  # Sundays
    with pytest.raises(BacktestError, match=r"bt_unit: .*holds no whole interval of @monthly"):
        BacktestConfig(contract=_contract(), start=_utc(2024, 1, 2), end=_utc(2024, 2, 15), interval="@monthly")
    with pytest.raises(BacktestError, match="resume needs the output folder"):
        BacktestConfig(contract=_contract(), start=_utc(2024, 1, 1), end=_utc(2024, 2, 1), resume=True)


def test_gate_evidence_from_a_recorded_verdict() -> None:
    verdict = {
        "promote": False,
        "outcome": "reject",
        "first_champion": False,
        "checks": [
            {"name": "output_sanity", "passed": True, "numbers": {}},
            {
                "name": "significance",
                "passed": False,
                "numbers": {"diff": 0.0123456789, "ci_low": -0.01, "ci_high": 0.03},
            },
            {"name": "segment_guardrails", "passed": False, "numbers": {}},
        ],
    }
    assert backtest.gate_evidence(verdict) == {
        "gate": "reject",
        "gate_failed": "significance, segment_guardrails",
        "gain": 0.012346,
        "gain_ci_low": -0.01,
        "gain_ci_high": 0.03,
    }
    first = {"promote": True, "first_champion": True, "checks": [{"name": "floors", "passed": True}]}
    assert backtest.gate_evidence(first)["gate"] == "first_champion"
    assert backtest.gate_evidence(first)["gain"] is None
    # No gate ran: too little data for a candidate, a failed retrain.
    for none in (None, {"outcome": "insufficient_data", "summary": "insufficient data: 12 rows"}, {"error": "boom"}):
        assert backtest.gate_evidence(none)["gate"] == ""


def _row(strategy: str, day: int, **values: object) -> IntervalRow:
    base = {f: None for f in IntervalRow.columns()}
    base.update(
        strategy=strategy,
        interval_start=_utc(2024, 1, day).isoformat(),
        interval_end=_utc(2024, 1, day + 1).isoformat(),
        rows=10,
        status="ok",
        quality_passed=True,
        drifted_features=0,
        decision=False,
        reasons="no trigger, comma",
        retrain="",
        gate="",
        gate_failed="",
        metric=0.7 + day / 1000,
    )
    base.update(values)
    return IntervalRow(**base, seconds=1.5)


def test_journal_appends_rows_and_drops_a_torn_last_line(tmp_path: Path) -> None:
    journal = backtest.Journal(tmp_path)
    rows = [_row("policy", 1), _row("never", 1), _row("policy", 2)]
    for row in rows:
        journal.append(row)
    lines = journal.csv.read_text().splitlines()
    assert lines[0] == ",".join(IntervalRow.columns()) and len(lines) == 4 and "seconds" not in lines[0]
    assert journal.read() == rows
    with journal.jsonl.open("a") as fh:
        fh.write('{"strategy": "policy", "interval_st')  # a kill in the middle of a write
    assert journal.read() == rows
    journal.rewrite(backtest._ordered(rows, ("policy", "never")))
    assert [(r.strategy, r.interval_start[8:10]) for r in journal.read()] == [
        ("policy", "01"),
        ("policy", "02"),
        ("never", "01"),
    ]


def test_checkpoints_restore_the_databases(tmp_path: Path) -> None:
    home = tmp_path / "policy"
    home.mkdir()

    def write(value: int) -> None:
        for name in backtest.Checkpoints.DATABASES:
            with sqlite3.connect(home / name) as db:
                db.execute("create table if not exists t (v integer)")
                db.execute("insert into t values (?)", (value,))
            db.close()

    def read(name: str) -> list[int]:
        db = sqlite3.connect(home / name)
        try:
            return [v for (v,) in db.execute("select v from t order by v")]
        finally:
            db.close()

    points = backtest.Checkpoints(home)
    write(1)
    points.save(0, {"initial": {"version": "1"}})
    write(2)
    points.save(1, {"initial": {"version": "1"}})
    points.prune(1)
    write(3)  # an interval that was cut short
    assert points.available() == [1]
    assert points.restore(1) == {"initial": {"version": "1"}, "intervals": 1}
    assert read("history.db") == read("mlflow.db") == [1, 2]


def test_resume_refuses_another_backtest(tmp_path: Path) -> None:
    contract = _contract()
    config = BacktestConfig(
        contract=contract, start=_utc(2024, 1, 1), end=_utc(2024, 2, 1), out_dir=tmp_path, progress=False
    )
    root = config.stores_dir
    _, rows = backtest._prepare_out(config, "sqlite:////log.db", root)
    assert rows == [] and json.loads((tmp_path / backtest.MANIFEST).read_text())["interval"] == "cron 0 0 * * 0"
    # Same settings: resumable. An unfinished run is not silently overwritten by a fresh one.
    backtest._prepare_out(dataclasses.replace(config, resume=True), "sqlite:////log.db", root)
    with pytest.raises(BacktestError, match=r"unfinished backtest .*--resume"):
        backtest._prepare_out(config, "sqlite:////log.db", root)
    other = backtest.apply_overrides(contract, ["policy.cooldown=3d"])
    changed = {
        "contract (after --set and --seed)": {"contract": other},
        "--end": {"end": _utc(2024, 1, 29)},
        "--interval": {"interval": "7d"},
        "--strategies": {"strategies": ("policy",)},
    }
    for what, change in changed.items():
        resumed = dataclasses.replace(config, resume=True, **change)
        with pytest.raises(BacktestError, match=f"cannot resume .*{what.split()[0]}"):
            backtest._prepare_out(resumed, "sqlite:////log.db", root)
    with pytest.raises(BacktestError, match="the feature log"):
        backtest._prepare_out(dataclasses.replace(config, resume=True), "sqlite:////other.db", root)


PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", (
    "import os, time; from driftguard.backtest import exit_with_parent; "
    "exit_with_parent(os.getppid(), every=0.1); print('ready', flush=True); time.sleep(120)")],
    stdout=subprocess.PIPE, text=True)
assert child.stdout.readline().strip() == "ready"
print(child.pid, flush=True)
time.sleep(120)
"""


def test_a_worker_ends_when_the_backtest_that_started_it_is_killed() -> None:
    """--jobs workers replay whole strategies: SIGTERM on the backtest must not leave them running."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        child = psutil.Process(int(parent.stdout.readline()))
        parent.send_signal(signal.SIGTERM)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.1)
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    finally:
        parent.kill()
