"""driftguard.reporting.health: every board status from history rows and a clock (pure, no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from driftguard.reporting import health
from driftguard.store import FailureRecord, RunRecord

T0 = datetime(2013, 3, 3, tzinfo=UTC)  # a Sunday: @weekly intervals end on Sundays 00:00 UTC
WEEK = timedelta(days=7)
PROMOTED = [{"action": "first_champion", "version": "1", "at": T0 - WEEK}]


def run(i: int = 0, **kw) -> RunRecord:
    """The run of the i-th weekly interval after T0, recorded an hour after the interval ended."""
    base = dict(
        model="m",
        interval_start=T0 + i * WEEK,
        interval_end=T0 + (i + 1) * WEEK,
        updated_at=T0 + (i + 1) * WEEK + timedelta(hours=1),
        drift_share=0.1,
        reasons=[{"kind": "trigger", "rule": "drift_share", "fired": False, "detail": "0.10 < 0.30"}],
    )
    return RunRecord(**{**base, **kw})


def failure(at: datetime, task_id: str = "extract_window") -> FailureRecord:
    return FailureRecord(
        model="m",
        dag_id="driftguard_monitor__m",
        run_id="scheduled__x",
        task_id=task_id,
        failed_at=at,
        error="MissingTableError: no table events\nTraceback ...",
    )


def assess(runs, *, now=None, failures=(), promotions=PROMOTED, **kw) -> health.Health:
    now = now or runs[-1].interval_end + timedelta(hours=2)
    return health.assess("m", runs=runs, failures=failures, promotions=promotions, now=now, schedule="@weekly",
                         start_date=date(2013, 3, 3), **kw)  # fmt: skip


def test_ok_when_the_last_run_found_nothing() -> None:
    h = assess([run(0), run(1)])
    assert (h.status, h.label, h.css, h.flags) == ("ok", "ok", "good", ("ok",))
    assert h.champion == health.Champion("1", T0 - WEEK)
    assert h.last_run.interval_end == T0 + 2 * WEEK and h.failure is None
    assert h.due == T0 + 3 * WEEK + health.DEFAULT_GRACE  # the next interval's end plus the grace


@pytest.mark.parametrize(
    ("changes", "status", "why"),
    [
        ({"retrain": True, "reasons": [{"kind": "trigger", "rule": "drift_share", "fired": True}],
          "drift_share": 0.6}, "drift", "drift_share fired (drift share 0.60)"),
        ({"reasons": [], "drift_share": 0.5, "signals": {"drift_share_threshold": 0.3}}, "drift", "drift_share"),
        ({"status": "degraded"}, "degraded", "a signal was lost"),
        ({"reasons": [{"kind": "trigger", "rule": "metric_drop", "fired": True}]}, "degraded", "metric_drop fired"),
        ({"status": "no_data", "rows": 0}, "no_data", "no rows"),
        ({"status": "quality_failed", "quality_passed": False, "critical_failures": 2}, "quality_failed",
         "2 critical"),
    ],
)  # fmt: skip
def test_the_last_runs_verdict(changes: dict, status: str, why: str) -> None:
    h = assess([run(0), run(1, **changes)])
    assert h.status == status and why in h.detail
    assert h.label == health.STATUSES[status][0]


def test_quality_failure_outranks_drift_which_is_kept_as_a_flag() -> None:
    h = assess([run(0, status="quality_failed", quality_passed=False, drift_share=0.9, reasons=[],
                    signals={"drift_share_threshold": 0.3})])  # fmt: skip
    assert h.flags == ("quality_failed", "drift")


def test_a_failed_run_after_the_last_record_is_run_failed_until_a_run_is_recorded() -> None:
    runs = [run(0), run(1)]
    failed_at = runs[-1].updated_at + WEEK  # the next week's run failed
    h = assess(runs, failures=[failure(failed_at - WEEK * 2), failure(failed_at)], now=failed_at + timedelta(hours=1))
    assert (h.status, h.css) == ("run_failed", "bad")
    assert h.failure is not None and h.failure.failed_at == failed_at
    assert h.detail.startswith("extract_window failed 1h 0m ago: MissingTableError: no table events")
    # a rerun recorded after the failure (of any interval) clears it
    rerun = run(2, updated_at=failed_at + timedelta(minutes=30))
    later = assess([*runs, rerun], failures=[failure(failed_at)], now=failed_at + timedelta(hours=1))
    assert later.status == "ok" and later.failure is None


def test_overdue_after_the_next_intervals_end_plus_grace() -> None:
    runs = [run(0)]  # [T0, T0+1w): the next interval ends T0+2w
    due = T0 + 2 * WEEK + timedelta(hours=6)
    assert assess(runs, now=due - timedelta(minutes=1)).status == "ok"
    h = assess(runs, now=due)
    assert h.status == "overdue" and "2013-03-10 00:00 → 2013-03-17 00:00" in h.detail
    assert assess(runs, now=due + timedelta(hours=1), grace=timedelta(hours=12)).status == "ok"
    # the schedule's end stops expecting runs; a failed run outranks overdue, which stays a flag
    assert assess(runs, now=due + 10 * WEEK, schedule_end=T0 + WEEK - timedelta(days=1)).status == "ok"
    both = assess(runs, now=due, failures=[failure(due - timedelta(hours=3))])
    assert both.flags[:2] == ("run_failed", "overdue")


def test_a_model_without_runs_is_due_one_interval_after_its_start() -> None:
    start = date(2013, 3, 5)  # a Tuesday: the first interval is [Sun 03-10, Sun 03-17)
    fresh = health.assess("m", runs=[], now=datetime(2013, 3, 12, tzinfo=UTC), schedule="@weekly", start_date=start)
    assert fresh.flags == ("no_champion", "no_runs") and fresh.due == datetime(2013, 3, 17, 6, tzinfo=UTC)
    late = health.assess("m", runs=[], now=datetime(2013, 3, 18, tzinfo=UTC), schedule="0 0 * * 0", start_date=start)
    assert late.status == "overdue"
    once = health.assess("m", runs=[], now=datetime(2020, 1, 1, tzinfo=UTC), schedule="@once", start_date=start)
    assert "overdue" not in once.flags and once.due is None


def test_no_champion_and_where_the_champion_comes_from() -> None:
    assert assess([run(0)], promotions=[]).status == "no_champion"
    from_run = assess([run(0, champion_version="7")], promotions=[])
    assert from_run.status == "ok" and from_run.champion == health.Champion("7", None)
    moves = [*PROMOTED, {"action": "promote", "version": "3", "at": T0}, {"action": "reject", "version": "4"},
             {"action": "rollback", "version": "1", "at": T0 + WEEK}]  # fmt: skip
    assert assess([run(0)], promotions=moves).champion == health.Champion("1", T0 + WEEK)


def test_decision_line_puts_the_deciding_reason_first() -> None:
    fired = {"kind": "trigger", "rule": "drift_share", "fired": True, "detail": "drift share 0.45 >= 0.30"}
    assert health.decision_line(run(0)) == "no retrain: no trigger fired"
    assert health.decision_line(run(0, reasons=[])) == "no retrain"
    assert health.decision_line(run(0, retrain=True, reasons=[], summary="retrain: drift\nmore")) == "retrain: drift"
    assert (
        health.decision_line(run(0, retrain=True, reasons=[fired])) == "retrain: drift_share, drift share 0.45 >= 0.30"
    )
    cooldown = {"kind": "guard", "rule": "cooldown", "fired": True, "detail": "cooldown: last retrain 7d ago < 4w"}
    blocked = [fired, cooldown, {"kind": "review", "rule": "model_age", "fired": True}]
    assert health.decision_line(run(0, reasons=blocked)) == (
        "no retrain: cooldown, last retrain 7d ago < 4w (blocked: drift_share); review: model_age"
    )
    quality = {"kind": "guard", "rule": "data_quality", "fired": True, "detail": "data quality: critical check failed"}
    assert health.decision_line(run(0, reasons=[fired, quality, cooldown])) == (
        "no retrain: data_quality, critical check failed (blocked: drift_share; also blocked by cooldown)"
    )
    assert health.decision_line(run(0, reasons=[], summary="x" * 300)).endswith("…")
    assert len(health.decision_line(run(0, reasons=[], summary="x" * 300))) == health.DECISION_LINE_MAX


def test_a_paused_dag_is_paused_not_overdue() -> None:
    runs = [run(0)]
    late = T0 + 5 * WEEK
    h = assess(runs, now=late, paused=True)
    assert (h.status, h.label, h.css, h.due) == ("paused", "paused", "muted", None)
    assert "overdue" not in h.flags and "paused" in h.detail
    assert assess(runs, now=late, paused=False).status == "overdue"
    assert assess(runs, now=late, paused=None).status == "overdue"  # unknown: the schedule decides
    failed = assess(runs, now=late, paused=True, failures=[failure(late - timedelta(hours=1))])
    assert failed.flags[:2] == ("run_failed", "paused")
