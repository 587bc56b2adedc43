"""retrain.claim: one retrain per interval, and a claim whose worker died is taken over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from driftguard import retrain
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
