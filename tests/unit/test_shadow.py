"""driftguard.retraining.shadow, the accumulation rule of batch shadow scoring, pure: which challenger shadows,
how windows pool (each row once, a rerun replaces its own part), and when the pooled evidence
promotes, keeps shadowing, rejects or expires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from driftguard.contract import Task
from driftguard.retraining import shadow as sh
from driftguard.retraining.gate import Check, GateVerdict
from driftguard.store import ShadowRecord
from driftguard.testing import synthetic_contract

T0 = datetime(2024, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)
HOLDOUT_ROWS, WINDOW_ROWS = 30, 30


def _contract(**promotion: Any):
    settings = {"bootstrap": {"samples": 300}, "mode": "superiority", "margin": "1%", **promotion}
    return synthetic_contract(url="sqlite:///unused.db", prediction=False, overrides={"promotion": settings})


def _rows(n: int, *, seed: int, first_id: int, gain: float) -> pd.DataFrame:
    """Paired rows: the label follows x; the champion sees x through heavy noise, the challenger
    through less (`gain` > 0) or more (`gain` < 0)."""
    r = np.random.default_rng(seed)
    x = r.normal(size=n)
    y = (r.random(n) < 1 / (1 + np.exp(-1.5 * x))).astype(float)
    champion = 1 / (1 + np.exp(-(x + r.normal(scale=1.4, size=n))))
    challenger = 1 / (1 + np.exp(-(x + r.normal(scale=max(0.05, 1.4 - gain), size=n))))
    return pd.DataFrame(
        {
            sh.ID: [f"e{i}" for i in range(first_id, first_id + n)],
            sh.Y: y,
            sh.CHAMPION: champion,
            sh.CHALLENGER: challenger,
            f"{sh.SEGMENT}region": r.choice(["north", "south"], n),
        }
    )


def _session(version: str = "3", champion: str = "2", at: datetime = T0) -> ShadowRecord:
    return ShadowRecord("m", version, champion, sh.HOLDOUT, at - DAY, at, sh.SHADOWING, labelled_rows=HOLDOUT_ROWS)


class Replay:
    """What monitor.shadow and publish do, without I/O: plan, pool the earlier parts with this
    window's rows, judge, decide, record (a rerun of an interval replaces its row and its part)."""

    def __init__(self, contract: Any, holdout: pd.DataFrame, *, max_windows: int = 12) -> None:
        self.contract, self.max_windows = contract, max_windows
        self.records: list[ShadowRecord] = [_session()]
        self.files: dict[str, pd.DataFrame] = {sh.HOLDOUT: holdout}

    def window(self, day: int, rows: pd.DataFrame) -> ShadowRecord:
        start = T0 + day * DAY
        plan = sh.plan(self.records, champion="2", start=start)
        assert plan.action == "shadow", plan.note
        record = ShadowRecord("m", "3", "2", sh.WINDOW, start, start + DAY, sh.SHADOWING, windows=plan.windows)
        parts = {p: self.files[p] for p in plan.parts}
        parts[record.part] = rows
        pooled = sh.pool(parts)
        decision = sh.decide(
            sh.judge(self.contract, pooled),
            windows=plan.windows,
            rows=len(pooled),
            holdout_rows=len(parts[sh.HOLDOUT]),
            max_windows=self.max_windows,
        )
        record.labelled_rows, record.cumulative_rows = len(rows), len(pooled)
        record.outcome, record.reason = decision.outcome, decision.reason
        self.files[record.part] = rows
        same = [i for i, r in enumerate(self.records) if (r.kind, r.interval_start) == (sh.WINDOW, start)]
        if same:
            self.records[same[0]] = record
        else:
            self.records.append(record)
        return record


def test_compare_scores_counts_flipped_classes_and_the_shift() -> None:
    champion, challenger = [0.1, 0.6, 0.4, 0.55, np.nan], [0.6, 0.7, 0.3, 0.45, 0.2]
    got = sh.compare_scores(Task.binary_classification, champion, challenger, threshold=0.5)
    assert got.rows == 4  # the row the champion did not score is left out
    assert got.disagreement == pytest.approx(0.5)  # rows 1 and 4 change class at 0.5
    assert got.prediction_shift == pytest.approx((2.05 - 1.65) / 4)
    assert got.score_distance == pytest.approx(np.mean(np.abs(np.sort([0.1, 0.6, 0.4, 0.55]) - [0.3, 0.45, 0.6, 0.7])))
    reg = sh.compare_scores(Task.regression, [10.0, -20.0], [12.0, -18.0], threshold=0.5)
    assert reg.disagreement == pytest.approx(2.0 / 15.0)  # mean |diff| over the champion's mean |score|
    assert sh.compare_scores(Task.regression, [0.0, 0.0], [1.0, 1.0], threshold=0.5).disagreement is None


def test_evidence_keeps_labelled_scored_rows_after_the_training_cutoff() -> None:
    contract = _contract()
    frame = pd.DataFrame(
        {
            "event_id": [1, 2, 3, 4],
            "event_ts": pd.to_datetime(["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"], utc=True),
            "label": [1, 0, None, 1],
            "region": ["north", None, "south", "east"],
        }
    )
    got = sh.evidence_frame(frame, contract, champion=[0.2, 0.3, 0.4, np.nan], challenger=[0.5] * 4, after=T0)
    # row 1 is at the cut-off (may have been trained on), 3 has no label, 4 no champion score
    assert list(got[sh.ID]) == ["2"] and got[f"{sh.SEGMENT}region"].tolist() == [None]


def test_pool_counts_each_row_once_and_a_rerun_replaces_its_part() -> None:
    holdout = _rows(5, seed=1, first_id=0, gain=1)
    w1 = _rows(4, seed=2, first_id=100, gain=1)
    parts = {"20240302T0000_20240303T0000": w1, sh.HOLDOUT: holdout}
    assert len(sh.pool(parts)) == 9 and sh.pool(parts)[sh.ID].iloc[0] == "e0"  # the holdout first
    parts["20240302T0000_20240303T0000"] = _rows(4, seed=3, first_id=100, gain=1)  # a rerun: same key
    assert len(sh.pool(parts)) == 9
    parts["20240303T0000_20240304T0000"] = pd.concat([w1.iloc[:2], _rows(3, seed=4, first_id=200, gain=1)])
    assert len(sh.pool(parts)) == 12  # two ids seen in an earlier window are not counted again


def test_promoted_after_k_windows_when_the_ci_clears() -> None:
    replay = Replay(_contract(), _rows(HOLDOUT_ROWS, seed=11, first_id=0, gain=0.9))
    first = sh.decide(
        sh.judge(replay.contract, replay.files[sh.HOLDOUT]),
        windows=0,
        rows=HOLDOUT_ROWS,
        holdout_rows=HOLDOUT_ROWS,
        max_windows=12,
    )
    assert first.outcome == sh.SHADOWING, first.reason  # the registration's holdout alone cannot tell
    outcomes = []
    for day in range(1, 6):
        record = replay.window(day, _rows(WINDOW_ROWS, seed=100 + day, first_id=1000 * day, gain=0.9))
        outcomes.append(record.outcome)
        if record.outcome in sh.TERMINAL:
            break
    assert outcomes == [sh.SHADOWING, sh.PROMOTE], [r.reason for r in replay.records]
    promoted = replay.records[-1]
    assert promoted.reason.startswith("promoted after 2 shadow windows: 99.58% CI of the roc_auc gain [+")
    assert f"on {HOLDOUT_ROWS + 2 * WINDOW_ROWS} rows ({HOLDOUT_ROWS} holdout + {2 * WINDOW_ROWS} shadow)" in (
        promoted.reason
    )
    # The session is over: the next window does not shadow, and says why.
    after = sh.plan(replay.records, champion="2", start=T0 + 3 * DAY)
    assert after.action == "none" and "ended before this window (promote" in after.note
    assert sh.plan(replay.records, champion="2", start=T0 + 4 * DAY).note == ""  # said once


def test_a_rerun_of_the_same_interval_does_not_double_count() -> None:
    replay = Replay(_contract(), _rows(HOLDOUT_ROWS, seed=11, first_id=0, gain=0.9))
    rows = _rows(WINDOW_ROWS, seed=101, first_id=1000, gain=0.9)
    once = replay.window(1, rows)
    again = replay.window(1, rows)  # the same interval rerun (a cleared DAG run, a backfill)
    assert once.cumulative_rows == again.cumulative_rows == HOLDOUT_ROWS + WINDOW_ROWS
    assert again.windows == once.windows == 1 and len(replay.records) == 2
    second = replay.window(2, _rows(WINDOW_ROWS, seed=102, first_id=2000, gain=0.9))
    assert second.windows == 2 and second.cumulative_rows == HOLDOUT_ROWS + 2 * WINDOW_ROWS
    # A rerun of window 1 after a window 2 that kept shadowing: pooled from what came before it only.
    kept = ShadowRecord("m", "3", "2", sh.WINDOW, T0 + 2 * DAY, T0 + 3 * DAY, sh.SHADOWING, labelled_rows=30)
    plan = sh.plan([*replay.records[:2], kept], champion="2", start=T0 + DAY)
    assert plan.action == "shadow" and plan.windows == 1 and plan.parts == (sh.HOLDOUT,)


def test_a_conclusively_worse_challenger_is_rejected_and_stops() -> None:
    replay = Replay(_contract(mode="non_inferiority"), _rows(HOLDOUT_ROWS, seed=21, first_id=0, gain=-2.0))
    record = replay.window(1, _rows(80, seed=22, first_id=1000, gain=-2.0))
    assert record.outcome == sh.REJECTED and record.reason.startswith("rejected after 1 shadow window: significance")
    after = sh.plan(replay.records, champion="2", start=T0 + 2 * DAY)
    assert after.action == "none" and "(rejected:" in after.note


def _inconclusive(rows_needed: int = 500) -> GateVerdict:
    numbers = {"ci_low": -0.02, "ci_high": 0.05, "bound": 0.008, "rows_needed": rows_needed, "confidence": 0.95}
    sig = Check("significance", False, "insufficient evidence", {**numbers, "insufficient_evidence": 1})
    return GateVerdict(promote=False, checks=(Check("output_sanity", True, "ok"), sig), metric="roc_auc")


def test_shadowing_expires_at_the_window_cap() -> None:
    verdict = _inconclusive()
    keep = sh.decide(verdict, windows=2, rows=90, holdout_rows=30, max_windows=3)
    assert keep.outcome == sh.SHADOWING and "2 shadow windows of at most 3" in keep.reason
    assert "about 500 rows needed" in keep.reason and "[-0.020, +0.050]" in keep.reason
    done = sh.decide(verdict, windows=3, rows=120, holdout_rows=30, max_windows=3)
    assert done.outcome == sh.EXPIRED and done.terminal and "promotion.shadow.max_windows" in done.reason
    failed = sh.decide(None, windows=1, rows=30, holdout_rows=30, max_windows=3, problem="v3 could not score")
    assert failed.outcome == sh.SHADOWING and "v3 could not score" in failed.reason


def test_which_challenger_shadows() -> None:
    rejected = {"candidate_version": "4", "status": "rejected", "interval_end": T0}
    none = sh.plan([], champion="2", start=T0, latest_retrain=rejected)
    assert none.action == "none" and none.note == "challenger v4 is not shadowed: its gate rejected it conclusively"
    assert sh.plan([_session()], champion="2", start=T0 - DAY).action == "none"  # opened after this window
    assert sh.plan([_session()], champion="2", start=T0, enabled=False).action == "none"
    stop = sh.plan([_session()], champion="5", start=T0)
    assert stop.action == "stop" and "@champion is v5, not v2" in stop.note
    # A newer session replaces the older one; the retrain that opened it ended the older one.
    ended = ShadowRecord("m", "3", "2", sh.END, T0 + DAY, T0 + 2 * DAY, sh.REPLACED, reason="v6 is the new @challenger")
    records = [_session(), ended, _session("6", "2", T0 + 2 * DAY)]
    newer = sh.plan(records, champion="2", start=T0 + 2 * DAY)
    assert newer.action == "shadow" and newer.version == "6" and newer.windows == 1
    older = sh.plan(records[:2], champion="2", start=T0 + DAY)
    assert older.action == "none" and "ended after this window (replaced" in older.note  # a rerun does not reopen


def test_each_shadow_look_spends_a_share_of_the_gates_error() -> None:
    """Bonferroni over max_windows looks: 95% at the gate becomes 1 - 0.05 / 12 per shadow look."""
    contract = _contract()
    assert sh.look_confidence(contract) == pytest.approx(1 - (1 - 0.95) / contract.promotion.shadow.max_windows)


def test_a_declined_shadow_promotion_is_recorded_once(tmp_path) -> None:
    """`driftguard approve --decline` (driftguard.retraining.shadow_approval) on a real SQLite history store:
    the pending window records the answer, and there is nothing left to answer."""
    from driftguard.retraining import shadow_approval
    from driftguard.store import HistoryStore

    store = HistoryStore(f"sqlite:///{tmp_path / 'history.db'}")
    store.record_shadow(ShadowRecord("m", "3", "2", sh.WINDOW, T0, T0 + DAY, sh.PROMOTE, windows=2, reason="ok"))
    with pytest.raises(shadow_approval.ApprovalError, match="m: no shadow promotion awaits approval"):
        shadow_approval.answer("m", approve=False, actor="ana", reason="r", store=store)
    store.set_shadow_action("m", "3", T0, T0 + DAY, action="awaiting_approval")
    done = shadow_approval.answer("m", approve=False, actor="ana", reason="segment B is thin", store=store)
    assert (done.action, done.version, done.champion) == ("declined", "3", "2")
    (row,) = store.shadow_records("m")
    assert row.action == "declined" and row.details["action_note"] == "declined by ana: segment B is thin"
    with pytest.raises(shadow_approval.ApprovalError, match="the last one was v3: declined"):
        shadow_approval.answer("m", approve=True, actor="ana", reason="r", store=store)
