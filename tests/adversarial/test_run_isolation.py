"""Runs of one interval that overlap, a history write that fails and a label batch that cannot be
read: real monitoring steps on a SQLite and a PostgreSQL feature log (the history store on the same
backend), real GX and Evidently, the bootstrap reference.

Before: two runs of one interval shared one work folder and deleted each other's frames (the loser
blamed "an earlier step"); report files were written before the history write, so a failed run left
reports history did not know; a bad label batch failed the whole run and discarded the feature side.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from driftguard import store as store_mod
from driftguard.contract import ModelContract
from driftguard.monitoring import monitor
from driftguard.settings import get_settings
from driftguard.store import ConcurrentRunError, StoreError
from driftguard.testing import LABEL_COLUMN, generate_log, synthetic_contract, write_log
from home_support import isolated_stores

START = datetime(2024, 1, 1, tzinfo=UTC)
DAY = (START + timedelta(days=2), START + timedelta(days=3))  # its label window is the day before
LABEL_WINDOW = (START + timedelta(days=1), START + timedelta(days=2))
BEFORE_PUBLISH = [s for s in monitor.STEPS if s != "publish"]


@pytest.fixture
def world(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A daily model whose first day is the bootstrap reference, 4 days of log in `db_url`, and the
    history store on the same backend."""
    isolated_stores(monkeypatch, tmp_path / "home")
    if db_url.startswith("postgresql"):
        monkeypatch.setenv("DRIFTGUARD_HISTORY_URL", db_url)
    store_mod.dispose_engines()
    contract = synthetic_contract(
        url=db_url,
        name="isolation",
        overrides={"reference": {"start": "2024-01-01", "end": "2024-01-02"}},
    )
    log, labels = generate_log(contract.task.value, start=START, days=4, rows_per_day=80, seed=3)
    write_log(db_url, contract, log, labels)
    yield {"url": db_url, "contract": contract, "settings": get_settings()}
    store_mod.dispose_engines()


def _steps(ctx: monitor.RunContext, names: list[str]) -> dict[str, Any]:
    return {name: monitor.STEPS[name](ctx) for name in names}


def _context(world: dict[str, Any], run_id: str) -> monitor.RunContext:
    return monitor.RunContext.create(world["contract"], *DAY, world["settings"], run_id=run_id)


def _rows(world: dict[str, Any]) -> list[store_mod.RunRecord]:
    store = monitor.history_store(world["settings"])
    return [r for r in store.runs("isolation") if (r.interval_start, r.interval_end) == DAY]


def test_two_runs_of_one_interval_keep_their_own_frames_and_one_wins(world: dict[str, Any]) -> None:
    """Both runs read and check the interval, step by step in turn, then publish at the same time:
    each had its own work folder, exactly one records its result and moves its reports into place,
    the other fails naming the winner and leaves no files. A later rerun replaces the record."""
    a, b = _context(world, "manual__2024-01-03T00:00:00+00:00"), _context(world, "backfill__2024-01-03T00:00:00+00:00")
    assert a.work_dir != b.work_dir and a.draft_dir != b.draft_dir and a.report_dir == b.report_dir
    for name in BEFORE_PUBLISH:  # interleaved: neither deletes or overwrites the other's frames
        monitor.STEPS[name](a)
        monitor.STEPS[name](b)
    assert (a.work_dir / "window.parquet").exists() and (b.work_dir / "window.parquet").exists()

    outcomes: dict[str, Any] = {}
    barrier = threading.Barrier(2)

    def publish(ctx: monitor.RunContext) -> None:
        barrier.wait()
        try:
            outcomes[ctx.run_id] = monitor.publish(ctx)
        except ConcurrentRunError as exc:
            outcomes[ctx.run_id] = exc

    threads = [threading.Thread(target=publish, args=(ctx,)) for ctx in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lost = [ctx for ctx in (a, b) if isinstance(outcomes[ctx.run_id], ConcurrentRunError)]
    won = [ctx for ctx in (a, b) if isinstance(outcomes[ctx.run_id], dict)]
    assert len(lost) == 1 and len(won) == 1, outcomes
    (loser,), (winner,) = lost, won
    message = str(outcomes[loser.run_id])
    assert f"another run ({winner.run_id}) recorded its result at" in message
    assert f"after this run ({loser.run_id}) read its data at" in message
    assert "model 'isolation', interval 2024-01-03T00:00:00+00:00" in message

    (row,) = _rows(world)
    assert row.run_id == winner.run_id
    summary = (winner.report_dir / "summary.json").read_text()
    assert f'"run_id": "{winner.run_id}"' in summary
    assert {p.name for p in winner.report_dir.iterdir()} >= {"drift.html", "validation.html", "summary.json"}
    leftovers = [p.name for p in winner.report_dir.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == [] and not loser.work_dir.exists() and not winner.work_dir.exists()

    rerun = _context(world, "manual__rerun")
    assert _steps(rerun, list(monitor.STEPS))["publish"]["status"] in ("ok", "degraded", "quality_failed")
    (row,) = _rows(world)
    assert row.run_id == "manual__rerun"


def test_a_retried_publish_is_not_another_run(world: dict[str, Any]) -> None:
    """The same run recording again (a publish retried after its history write) replaces its own
    row; another run's newer row refuses it."""
    store = monitor.history_store(world["settings"])
    since = datetime.now(UTC)
    record = store_mod.RunRecord("isolation", *DAY, run_id="run_a")
    store.record_run(record, unless_recorded_since=since)
    store.record_run(record, unless_recorded_since=since)
    store.record_run(store_mod.RunRecord("isolation", *DAY, run_id="run_b"), unless_recorded_since=datetime.now(UTC))
    with pytest.raises(ConcurrentRunError, match=r"another run \(run_b\)"):
        store.record_run(record, unless_recorded_since=since)
    (row,) = _rows(world)
    assert row.run_id == "run_b"


def test_a_failed_history_write_leaves_no_reports(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The reports wait in the run's hidden draft folder until history has the run: a failed write
    leaves neither a record nor a report folder; the retried publish records and moves them."""
    ctx = _context(world, "scheduled__2024-01-03")
    _steps(ctx, BEFORE_PUBLISH)
    assert (ctx.draft_dir / "validation.html").exists() and (ctx.draft_dir / "drift.html").exists()
    real = store_mod.HistoryStore.record_run

    def failing(self: store_mod.HistoryStore, record: store_mod.RunRecord, **kw: Any) -> None:
        raise StoreError("dg_runs: writing failed (injected)")

    monkeypatch.setattr(store_mod.HistoryStore, "record_run", failing)
    with pytest.raises(StoreError, match="injected"):
        monitor.publish(ctx)
    assert not ctx.report_dir.exists() and _rows(world) == []
    assert not ctx.report_dir.parent.joinpath("index.html").exists()
    monkeypatch.setattr(store_mod.HistoryStore, "record_run", real)
    published = monitor.publish(ctx)  # the task's retry
    (row,) = _rows(world)
    assert (
        row.report_paths["quality"]
        == str(ctx.report_dir / "validation.html")
        == published["report"].replace("drift.html", "validation.html")
    )
    assert all(Path(p).exists() for p in row.report_paths.values()) and not ctx.draft_dir.exists()


def _break_labels(url: str, contract: ModelContract, how: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        if how == "text labels":
            if url.startswith("postgresql"):
                conn.execute(sa.text(f"ALTER TABLE event_labels ALTER COLUMN {LABEL_COLUMN} TYPE text"))
            ids = sa.text(
                "SELECT event_id FROM events WHERE event_ts >= :lo AND event_ts < :hi ORDER BY event_id LIMIT 5"
            )
            lo, hi = LABEL_WINDOW
            bind = {"lo": lo, "hi": hi} if url.startswith("postgresql") else {"lo": str(lo)[:19], "hi": str(hi)[:19]}
            for (event_id,) in conn.execute(ids, bind).all():
                conn.execute(sa.text(f"UPDATE event_labels SET {LABEL_COLUMN} = 'yes' WHERE event_id = {event_id}"))
        else:
            conn.execute(sa.text("DROP TABLE event_labels"))
    engine.dispose()


@pytest.mark.parametrize("how", ["text labels", "missing label table"])
def test_a_bad_label_batch_is_a_failed_check_and_the_features_are_still_judged(world: dict[str, Any], how: str) -> None:
    contract = world["contract"]
    _break_labels(world["url"], contract, how)
    published = monitor.run_monitoring(contract, *DAY, settings=world["settings"])
    assert published["status"] == "quality_failed" and published["quality_passed"] is False
    record = monitor.history_store(world["settings"]).get_run("isolation", *DAY)
    (check,) = [c for c in record.quality_checks if c["family"] == "labels"]
    assert not check["success"] and check["severity"] == "critical" and check["column"] == LABEL_COLUMN
    observed = check["observed"]
    assert observed["table"] == "event_labels"
    assert observed["interval"] == [LABEL_WINDOW[0].isoformat(), LABEL_WINDOW[1].isoformat()]
    assert "model isolation" in observed["error"] and "event_labels" in observed["error"]
    assert "2024-01-02T00:00:00+00:00, 2024-01-03T00:00:00+00:00" in observed["error"]  # the label read's interval
    if how == "text labels":
        assert "'yes'" in observed["error"] and f"column {LABEL_COLUMN}" in observed["error"]
    # The feature side: every other check ran and passed, drift was computed and recorded.
    others = [c for c in record.quality_checks if c["family"] != "labels"]
    assert len(others) > 20 and all(c["success"] for c in others if c["severity"] == "critical")
    assert record.rows == 80 and record.drift_share is not None and len(record.feature_drift) >= 9
    assert record.labelled_rows == 0 and record.metric_value is None
    assert "1 critical failure (labels on label)" in record.summary
    assert "quality_critical" in published["alerts"]
