"""retrain.claim: one retrain per interval, and a claim whose worker died is taken over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from driftguard.retraining import retrain
from driftguard.settings import get_settings
from driftguard.store import HistoryStore, retrains_table
from driftguard.testing import synthetic_contract

START, END = datetime(2024, 1, 8, tzinfo=UTC), datetime(2024, 1, 9, tzinfo=UTC)


def test_a_running_claim_blocks_until_it_is_stale(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DRIFTGUARD_HOME", str(tmp_path))
    monkeypatch.setenv("DRIFTGUARD_HISTORY_URL", f"sqlite:///{tmp_path / 'history.db'}")
    contract = synthetic_contract(url=f"sqlite:///{tmp_path / 'log.db'}", name="claims")
    ctx = retrain.RetrainContext.create(contract, START, END, settings=get_settings())
    assert retrain.claim(ctx) == {"proceed": True}
    assert retrain.claim(ctx)["proceed"] is False  # running: a second request does nothing new

    store = HistoryStore(ctx.settings.history_url)
    died = datetime.now(UTC) - retrain.CLAIM_STALE_AFTER - timedelta(minutes=1)
    with store.engine.begin() as conn:  # the worker died long ago without releasing its claim
        conn.execute(sa.update(retrains_table).values(updated_at=died))
    assert retrain.claim(ctx) == {"proceed": True}
    assert [r["status"] for r in store.retrains("claims")] == ["running"]


def test_stale_window_is_minutes_not_hours() -> None:
    assert timedelta(minutes=1) <= retrain.CLAIM_STALE_AFTER <= timedelta(minutes=10)
    assert retrain.HEARTBEAT_EVERY * 5 <= retrain.CLAIM_STALE_AFTER  # several missed beats before "dead"


def test_a_live_heartbeat_keeps_the_claim_and_a_stopped_one_loses_it(tmp_path, monkeypatch) -> None:
    """Scaled down: heartbeat every 0.1 s, stale after 0.8 s (production: 30 s and 5 min)."""
    import time

    monkeypatch.setenv("DRIFTGUARD_HOME", str(tmp_path))
    monkeypatch.setenv("DRIFTGUARD_HISTORY_URL", f"sqlite:///{tmp_path / 'history.db'}")
    monkeypatch.setattr(retrain, "CLAIM_STALE_AFTER", timedelta(seconds=0.8))
    monkeypatch.setattr(retrain, "recover", lambda ctx: [])  # MLflow side: tests/unit/test_reliability.py
    contract = synthetic_contract(url=f"sqlite:///{tmp_path / 'log.db'}", name="beats")
    ctx = retrain.RetrainContext.create(contract, START, END, settings=get_settings())
    assert retrain.claim(ctx) == {"proceed": True}

    with retrain.heartbeat(ctx, every=timedelta(seconds=0.1)):  # a retrain step working for a while
        time.sleep(1.5)
        assert retrain.claim(ctx)["proceed"] is False  # older than the window, but its heartbeat is live
    time.sleep(1.0)  # the worker died: no heartbeat any more
    assert retrain.claim(ctx) == {"proceed": True}

    store = HistoryStore(ctx.settings.history_url)
    assert [r["status"] for r in store.retrains("beats")] == ["running"]


def test_retrain_steps_beat_while_they_run(tmp_path, monkeypatch) -> None:
    import time

    monkeypatch.setenv("DRIFTGUARD_HOME", str(tmp_path))
    monkeypatch.setenv("DRIFTGUARD_HISTORY_URL", f"sqlite:///{tmp_path / 'history.db'}")
    monkeypatch.setattr(retrain, "HEARTBEAT_EVERY", timedelta(seconds=0.05))
    contract = synthetic_contract(url=f"sqlite:///{tmp_path / 'log.db'}", name="stepbeat")
    ctx = retrain.RetrainContext.create(contract, START, END, settings=get_settings())
    store = HistoryStore(ctx.settings.history_url)
    assert store.claim_retrain("stepbeat", START, END) is None
    claimed_at = store.retrains("stepbeat")[0]["updated_at"]
    seen = []

    @retrain._beating
    def slow_step(c: retrain.RetrainContext) -> dict:
        time.sleep(0.3)
        seen.append(store.retrains("stepbeat")[0]["updated_at"])
        return {}

    slow_step(ctx)
    assert seen[0] > claimed_at
    assert all(getattr(retrain, s).__wrapped__ for s in ("train", "register", "evaluate", "promote"))
