"""History store on real SQLite and PostgreSQL: upserts, atomicity, ordering, claims, UTC."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from driftguard.facts import RunFacts
from driftguard.store import HistoryStore, RunRecord, ShadowEvidence, ShadowRecord, StoreError, dispose_engines

T0 = datetime(2013, 3, 4, tzinfo=UTC)
WEEK = timedelta(days=7)


@pytest.fixture(autouse=True)
def _close_pools():
    """Engines are cached per URL; each PostgreSQL test has its own schema URL, so close them."""
    yield
    dispose_engines()


def record(i: int = 0, model: str = "flight_delay", **kw) -> RunRecord:
    start = T0 + i * WEEK
    base = dict(
        model=model,
        interval_start=start,
        interval_end=start + WEEK,
        status="ok",
        rows=5000 + i,
        quality_passed=True,
        critical_failures=0,
        warnings=1,
        drift_share=0.1 * i,
        drifted_features=["carrier", "distance"][: i % 3],
        metric_name="roc_auc",
        metric_value=0.7 + 0.01 * i,
        proxy_metrics={"mean_score": 0.21, "positive_rate": 0.2},
        labelled_rows=1000 * (i + 1),
        retrain=False,
        reasons=[{"rule": "drift_share", "kind": "trigger", "fired": False, "detail": "drift share 0.10 < 0.30"}],
        champion_version="2",
        report_paths={"drift": "drift.html", "quality": "validation.html"},
        summary="no retrain: no trigger fired",
        updated_at=datetime(2026, 1, 1, 12, tzinfo=UTC),
        feature_drift=[
            {
                "feature": "carrier",
                "method": "jensenshannon",
                "threshold": 0.1,
                "score": 0.05,
                "drifted": False,
                "status": "ok",
                "effect": 0.05,
                "reference_rows": 9000,
                "current_rows": 5000,
                "nonfinite": 0,
            },
            {
                "feature": "distance",
                "method": "wasserstein",
                "threshold": 0.1,
                "score": 0.2,
                "drifted": True,
                "status": "drift",
                "effect": 0.2,
                "reference_rows": 9000,
                "current_rows": 4990,
                "nonfinite": 10,
            },
        ],
        quality_checks=[
            {
                "family": "ranges",
                "expectation": "expect_column_values_to_be_between",
                "column": "distance",
                "severity": "warning",
                "success": False,
                "observed": {"unexpected_percent": 2.5, "partial": [5001, 6000]},
                "message": "2.5% of distance outside [0, 5000]",
            }
        ],
    )
    base.update(kw)
    return RunRecord(**base)


def counts(store: HistoryStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            t: conn.execute(sa.text(f"select count(*) from {t}")).scalar_one()
            for t in ("dg_runs", "dg_feature_drift", "dg_quality_checks")
        }


def test_record_run_round_trips_every_field_in_utc(db_url: str) -> None:
    store = HistoryStore(db_url)
    rec = record(1)
    store.record_run(rec)
    got = store.get_run(rec.model, rec.interval_start, rec.interval_end)
    assert got == rec
    assert got.interval_start.tzinfo is not None and got.interval_start.utcoffset() == timedelta(0)
    assert got.updated_at == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_non_utc_input_is_stored_as_the_same_instant(db_url: str) -> None:
    store = HistoryStore(db_url)
    cet = timezone(timedelta(hours=1))
    rec = record(
        0, interval_start=datetime(2013, 3, 4, 1, tzinfo=cet), interval_end=datetime(2013, 3, 11, 1, tzinfo=cet)
    )
    store.record_run(rec)
    (got,) = store.runs("flight_delay")
    assert got.interval_start == T0 and got.interval_start.tzinfo == UTC
    assert got.interval_end == T0 + WEEK


def test_upsert_twice_gives_identical_counts_and_content(db_url: str) -> None:
    store = HistoryStore(db_url)
    for i in range(3):
        store.record_run(record(i))
    first_counts = counts(store)
    first = store.runs("flight_delay", details=True)
    for i in range(3):
        store.record_run(record(i))
    assert counts(store) == first_counts == {"dg_runs": 3, "dg_feature_drift": 6, "dg_quality_checks": 3}
    assert store.runs("flight_delay", details=True) == first


def test_rerun_replaces_the_run_and_its_child_rows(db_url: str) -> None:
    store = HistoryStore(db_url)
    store.record_run(record(0))
    changed = record(
        0,
        drift_share=0.5,
        retrain=True,
        summary="retrain: drift share 0.50 >= 0.30",
        feature_drift=[{"feature": "temp", "method": "ks", "threshold": 0.05, "score": 0.001, "drifted": True}],
        quality_checks=[],
    )
    store.record_run(changed)
    got = store.get_run("flight_delay", T0, T0 + WEEK)
    assert got.drift_share == 0.5 and got.retrain is True
    # Fields a writer left out (here the verdict's evidence) read back as None.
    assert [{k: v for k, v in f.items() if v is not None} for f in got.feature_drift] == changed.feature_drift
    assert got.quality_checks == []
    assert counts(store) == {"dg_runs": 1, "dg_feature_drift": 1, "dg_quality_checks": 0}


def test_failure_mid_write_leaves_the_previous_record_intact(db_url: str) -> None:
    store = HistoryStore(db_url)
    good = record(0)
    store.record_run(good)
    # A NULL feature name passes field validation but the database rejects it, after the run
    # row itself was already upserted in the same transaction.
    bad = record(0, drift_share=0.99, feature_drift=[{"feature": None, "method": "ks", "drifted": True}])
    with pytest.raises(StoreError) as exc:
        store.record_run(bad)
    assert "model 'flight_delay', interval 2013-03-04T00:00:00+00:00" in str(exc.value)
    assert "writing dg_feature_drift failed, nothing was changed" in str(exc.value)
    assert store.get_run("flight_delay", T0, T0 + WEEK) == good
    assert counts(store) == {"dg_runs": 1, "dg_feature_drift": 2, "dg_quality_checks": 1}


def test_bad_records_are_rejected_with_the_model_and_field_named(sqlite_url: str) -> None:
    store = HistoryStore(sqlite_url)
    with pytest.raises(
        ValueError, match=r"model 'flight_delay'.*dg_quality_checks row 0 has unknown field\(s\) \['col'\]"
    ):
        store.record_run(record(0, quality_checks=[{"family": "ranges", "col": "x"}]))
    with pytest.raises(
        ValueError, match=r"RunRecord.status 'done' is not one of \['ok', 'degraded', 'no_data', 'quality_failed'\]"
    ):
        store.record_run(record(0, status="done"))
    with pytest.raises(ValueError, match=r"RunRecord.interval_start must be a tz-aware UTC datetime"):
        store.record_run(record(0, interval_start=datetime(2013, 3, 4)))
    with pytest.raises(ValueError, match="interval_end must be after interval_start"):
        store.record_run(record(0, interval_end=T0))


def test_nan_and_numpy_values_are_stored_as_plain_json(sqlite_url: str) -> None:
    import numpy as np

    store = HistoryStore(sqlite_url)
    rec = record(
        0,
        metric_value=float("nan"),
        proxy_metrics={"mean_score": np.float64(0.25), "n": np.int64(3), "bad": float("inf")},
        quality_checks=[
            {
                "family": "nulls",
                "expectation": "expect_column_values_to_not_be_null",
                "column": "temp",
                "severity": "warning",
                "success": np.bool_(True),
                "observed": {"values": np.array([1.5, np.nan])},
                "message": None,
            }
        ],
    )
    store.record_run(rec)
    got = store.get_run("flight_delay", T0, T0 + WEEK)
    assert got.metric_value is None
    assert got.proxy_metrics == {"mean_score": 0.25, "n": 3, "bad": None}
    assert got.quality_checks[0]["observed"] == {"values": [1.5, None]}
    assert got.quality_checks[0]["success"] is True and got.quality_checks[0]["message"] == ""


def test_runs_are_ordered_by_interval_and_filtered(db_url: str) -> None:
    store = HistoryStore(db_url)
    for i in (3, 0, 2, 1, 4):
        store.record_run(record(i))
    store.record_run(record(0, model="other_model"))
    starts = [r.interval_start for r in store.runs("flight_delay")]
    assert starts == [T0 + i * WEEK for i in range(5)]
    before = store.runs("flight_delay", before=T0 + 3 * WEEK, limit=2)
    assert [r.interval_start for r in before] == [T0 + WEEK, T0 + 2 * WEEK]
    assert before[0].feature_drift == []  # details only when asked
    facts = store.history_facts("flight_delay", before=T0 + 4 * WEEK, n=3)
    assert [f.interval_start for f in facts] == [T0 + WEEK, T0 + 2 * WEEK, T0 + 3 * WEEK]
    assert facts[0] == RunFacts(
        model="flight_delay",
        interval_start=T0 + WEEK,
        interval_end=T0 + 2 * WEEK,
        status="ok",
        quality_passed=True,
        drift_share=0.1,
        drifted_features=("carrier",),
        metric_value=0.71,
        labelled_rows=2000,
        retrain=False,
    )
    assert store.history_facts("flight_delay", before=T0, n=3) == []
    assert store.models() == ["flight_delay", "other_model"]


def test_labelled_rows_since_counts_intervals_ending_after_the_retrain(db_url: str) -> None:
    store = HistoryStore(db_url)
    for i in range(4):  # labelled rows 1000, 2000, 3000, 4000
        store.record_run(record(i))
    assert store.labelled_rows_since("flight_delay", None) == 10_000
    # Retrain minutes after interval 1 ended: intervals 2 and 3 are new.
    retrain_at = T0 + 2 * WEEK + timedelta(minutes=5)
    assert store.labelled_rows_since("flight_delay", retrain_at) == 3000 + 4000
    assert store.labelled_rows_since("nobody", None) == 0


def test_promotions_and_last_retrain_at(db_url: str) -> None:
    store = HistoryStore(db_url)
    assert store.last_retrain_at("flight_delay") is None
    at1, at2, at3 = T0 + WEEK, T0 + 5 * WEEK, T0 + 6 * WEEK
    assert store.record_promotion(
        "flight_delay",
        action="first_champion",
        version="1",
        previous_version=None,
        actor="driftguard",
        reason="floors met",
        details={"roc_auc": 0.74},
        at=at1,
    )
    assert store.record_promotion(
        "flight_delay",
        action="promote",
        version="2",
        previous_version="1",
        actor="driftguard",
        reason="non-inferior",
        details={},
        at=at2,
    )
    # A rerun repeating the same promotion is not recorded twice.
    assert not store.record_promotion(
        "flight_delay",
        action="promote",
        version="2",
        previous_version="1",
        actor="driftguard",
        reason="non-inferior",
        details={},
        at=at2 + timedelta(hours=1),
    )
    assert store.record_promotion(
        "flight_delay",
        action="rollback",
        version="1",
        previous_version="2",
        actor="oncall@example.com",
        reason="unservable",
        details={"error": "load failed"},
        at=at3,
    )
    assert store.last_retrain_at("flight_delay") == at2  # a rollback is not a retrain
    promos = store.promotions("flight_delay")
    assert [(p["action"], p["version"], p["previous_version"]) for p in promos] == [
        ("first_champion", "1", None),
        ("promote", "2", "1"),
        ("rollback", "1", "2"),
    ]
    assert promos[0]["details"] == {"roc_auc": 0.74} and promos[0]["at"] == at1
    assert store.models() == ["flight_delay"]


def test_claim_retrain_is_idempotent(db_url: str) -> None:
    store = HistoryStore(db_url)
    end = T0 + WEEK
    assert store.claim_retrain("flight_delay", T0, end) is None
    again = store.claim_retrain("flight_delay", T0, end)
    assert again is not None and again["status"] == "running"
    store.finish_retrain("flight_delay", T0, end, "rejected", candidate_version="7", verdict={"passed": False})
    done = store.claim_retrain("flight_delay", T0, end)
    assert done["status"] == "rejected" and done["candidate_version"] == "7" and done["verdict"] == {"passed": False}
    assert done["interval_start"] == T0 and done["updated_at"].tzinfo is not None
    assert len(store.retrains("flight_delay")) == 1
    # Another interval is its own claim.
    assert store.claim_retrain("flight_delay", end, end + WEEK) is None
    assert len(store.retrains("flight_delay")) == 2


def test_failed_or_stale_retrains_can_be_reclaimed(db_url: str) -> None:
    store = HistoryStore(db_url)
    end = T0 + WEEK
    assert store.claim_retrain("flight_delay", T0, end) is None
    store.finish_retrain("flight_delay", T0, end, "failed")
    assert store.claim_retrain("flight_delay", T0, end) is None  # a retry retries
    assert store.claim_retrain("flight_delay", T0, end)["status"] == "running"
    # A running claim whose worker died is taken over after stale_after.
    assert store.claim_retrain("flight_delay", T0, end, stale_after=timedelta(0)) is None
    assert store.retrains("flight_delay")[0]["status"] == "running"


def test_finish_without_claim_is_an_error(sqlite_url: str) -> None:
    store = HistoryStore(sqlite_url)
    with pytest.raises(StoreError, match="no dg_retrains row to finish: call claim_retrain first"):
        store.finish_retrain("flight_delay", T0, T0 + WEEK, "promoted")


def test_alert_records(db_url: str) -> None:
    store = HistoryStore(db_url)
    assert store.alert_last_sent("flight_delay", "abc") is None
    store.record_alert("flight_delay", kind="drift", fingerprint="abc", sent_at=T0, severity="warning", title="t")
    store.record_alert("flight_delay", kind="drift", fingerprint="abc", sent_at=T0 + WEEK)
    store.record_alert("flight_delay", kind="drift", fingerprint="other", sent_at=T0 + 2 * WEEK)
    assert store.alert_last_sent("flight_delay", "abc") == T0 + WEEK
    assert store.alert_last_sent("flight_delay", "abc").tzinfo is not None


def test_create_all_is_idempotent_and_one_engine_per_url(sqlite_url: str) -> None:
    a, b = HistoryStore(sqlite_url), HistoryStore(sqlite_url)
    assert a.engine is b.engine
    a.create_all()
    b.create_all()
    with a.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert {"dg_runs", "dg_feature_drift", "dg_quality_checks", "dg_promotions", "dg_alerts", "dg_retrains"} <= tables


def test_unreachable_database_names_the_url_without_password(tmp_path) -> None:
    (tmp_path / "blocked").write_text("a file where the store's folder should be")
    store = HistoryStore(f"sqlite:///{tmp_path}/blocked/history.db")
    with pytest.raises(StoreError, match=r"cannot create the dg_ history tables at HistoryStore\('sqlite:///"):
        store.models()


def test_sqlite_store_creates_its_folder(tmp_path) -> None:
    """A fresh DRIFTGUARD_HOME has no folder yet: the store makes it instead of failing."""
    store = HistoryStore(f"sqlite:///{tmp_path}/new/home/history.db")
    assert store.models() == []
    assert (tmp_path / "new" / "home" / "history.db").exists()


def test_last_retrain_counts_finished_candidates_and_respects_before(db_url: str) -> None:
    store = HistoryStore(db_url)
    store.record_promotion(
        "flight_delay", action="first_champion", version="1", previous_version=None, actor="gate", reason="first", at=T0
    )
    assert store.claim_retrain("flight_delay", T0 + 2 * WEEK, T0 + 3 * WEEK) is None
    store.finish_retrain("flight_delay", T0 + 2 * WEEK, T0 + 3 * WEEK, status="rejected", candidate_version="2")
    assert store.claim_retrain("flight_delay", T0 + 4 * WEEK, T0 + 5 * WEEK) is None  # still running: not counted

    assert store.last_retrain_at("flight_delay") == T0 + 3 * WEEK, "a rejected candidate is a retrain too"
    assert store.last_retrain_at("flight_delay", before=T0 + 2 * WEEK) == T0, "later records are ignored"
    assert store.last_retrain_at("flight_delay", before=T0 - WEEK) is None
    # Label evidence counts from the promotion: the rejected candidate does not reset it.
    assert store.last_retrain_at("flight_delay", promotions_only=True) == T0
    # "Could not tell" decides nothing: no cooldown from too few rows or an inconclusive gate.
    for week, status in ((6, "insufficient_data"), (8, "insufficient_evidence")):
        assert store.claim_retrain("flight_delay", T0 + week * WEEK, T0 + (week + 1) * WEEK) is None
        store.finish_retrain("flight_delay", T0 + week * WEEK, T0 + (week + 1) * WEEK, status=status)
        assert store.claim_retrain("flight_delay", T0 + week * WEEK, T0 + (week + 1) * WEEK)["status"] == status
    assert store.last_retrain_at("flight_delay") == T0 + 3 * WEEK


def _bare_copy(column: sa.Column) -> sa.Column:
    """The column for another table (Column.copy() is deprecated since SQLAlchemy 1.4)."""
    default = column.default.arg if column.default is not None else None
    return sa.Column(
        column.name, column.type, primary_key=column.primary_key, nullable=column.nullable, default=default
    )


def test_signals_round_trip_and_an_older_store_gains_the_column(db_url: str) -> None:
    """A store created before `signals` existed gets the nullable column on first use; old rows read as {}."""
    from driftguard import store as store_mod

    old = HistoryStore(db_url)
    with old.engine.begin() as conn:  # the dg_runs layout of the first release: no signals column
        cols = [_bare_copy(c) for c in store_mod.runs_table.columns if c.name != "signals"]
        unique = sa.UniqueConstraint("model", "interval_start", "interval_end")
        legacy = sa.Table("dg_runs", sa.MetaData(), *cols, unique)
        legacy.create(conn)
        conn.execute(legacy.insert().values(**{**_legacy_row(), "model": "old_model"}))
        evidence = ("status", "effect", "reference_rows", "current_rows", "nonfinite")
        drift_cols = [_bare_copy(c) for c in store_mod.feature_drift_table.columns if c.name not in evidence]
        sa.Table("dg_feature_drift", sa.MetaData(), *drift_cols).create(conn)
    store_mod._CREATED.discard(old.url)
    store = HistoryStore(db_url)
    store.record_run(record(1, signals={"weighted_drift_share": 0.25, "drift_share_threshold": 0.4}))
    assert "signals" in {c["name"] for c in sa.inspect(store.engine).get_columns("dg_runs")}
    assert set(evidence) <= {c["name"] for c in sa.inspect(store.engine).get_columns("dg_feature_drift")}
    assert store.get_run("flight_delay", T0 + WEEK, T0 + 2 * WEEK).feature_drift[1]["nonfinite"] == 10
    got = store.runs("flight_delay")[-1]
    assert got.signals == {"weighted_drift_share": 0.25, "drift_share_threshold": 0.4}
    facts = got.to_facts()
    assert (facts.weighted_drift_share, facts.drift_share_threshold) == (0.25, 0.4)
    assert store.runs("old_model")[-1].signals == {}


def _legacy_row() -> dict:
    return {
        "interval_start": T0,
        "interval_end": T0 + WEEK,
        "status": "ok",
        "rows": 1,
        "quality_passed": True,
        "critical_failures": 0,
        "warnings": 0,
        "drift_share": 0.0,
        "drifted_features": [],
        "proxy_metrics": {},
        "labelled_rows": 0,
        "retrain": False,
        "reasons": [],
        "report_paths": {},
        "summary": "",
        "updated_at": T0 + WEEK,
    }


def test_shadow_parts_round_trip_and_a_rerun_replaces_its_row(db_url: str) -> None:
    store = HistoryStore(db_url)
    at = datetime(2026, 1, 2, 3, tzinfo=UTC)
    opened = ShadowRecord(
        "flight_delay", "3", "2", "holdout", T0, T0 + WEEK, "shadowing", labelled_rows=24, cumulative_rows=24,
        metric_name="roc_auc", champion_metric=0.71, challenger_metric=0.78, ci_low=-0.05, ci_high=0.21,
        bound=0.0071, rows_needed=120, reason="opened at registration", details={"holdout": [1, 2]}, updated_at=at,
    )  # fmt: skip
    window = dataclasses.replace(
        opened, kind="window", interval_start=T0 + WEEK, interval_end=T0 + 2 * WEEK, windows=1, rows=5000,
        labelled_rows=50, cumulative_rows=74, disagreement=0.041, prediction_shift=-0.0123, score_distance=0.02,
        reason="shadowing, 1 shadow window of at most 12", details={"problem": None},
    )  # fmt: skip
    store.record_shadow(window)
    store.record_shadow(opened)
    assert store.shadow_records("flight_delay") == [opened, window]  # oldest first, every field, UTC
    assert store.shadow_records("flight_delay")[1].interval_start.tzinfo == UTC

    decided = dataclasses.replace(window, outcome="promote", reason="promoted after 1 shadow window", ci_low=0.01)
    store.record_shadow(decided)  # a rerun of the interval: replaced, not added
    assert store.shadow_records("flight_delay", version="3") == [opened, decided]
    assert store.set_shadow_action("flight_delay", "3", T0 + WEEK, T0 + 2 * WEEK, action="promoted", note="by shadow")
    last = store.shadow_records("flight_delay")[-1]
    assert (last.outcome, last.action, last.details["action_note"]) == ("promote", "promoted", "by shadow")
    assert not store.set_shadow_action("flight_delay", "9", T0, T0 + WEEK, action="promoted")
    assert store.shadow_records("flight_delay", version="4") == [] and store.shadow_records("other") == []
    with pytest.raises(ValueError, match="shadow kind"):
        store.record_shadow(dataclasses.replace(opened, kind="nope"))


def test_shadow_evidence_files_round_trip_atomically(tmp_path: Path) -> None:
    files = ShadowEvidence(tmp_path / "shadow")
    frame = pd.DataFrame(
        {
            "id": ["a", "b"],
            "ts": pd.to_datetime(["2024-01-01T01:00", "2024-01-02T02:00"], utc=True),
            "y": [1.0, 0.0],
            "champion": [0.4, 0.3],
            "challenger": [0.7, 0.2],
            "segment:region": ["north", None],
        }
    )
    path = files.write("m", "3", "20240101T0000_20240102T0000", frame)
    assert path == tmp_path / "shadow" / "m" / "v3" / "20240101T0000_20240102T0000.parquet"
    got = files.read("m", "3", ["holdout", "20240101T0000_20240102T0000"])
    assert list(got) == ["20240101T0000_20240102T0000"]  # a part without a file is left out
    pd.testing.assert_frame_equal(got["20240101T0000_20240102T0000"], frame)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    with pytest.raises(ValueError, match="not a file name"):
        files.path("m", "3", "../escape")


def test_failed_runs_are_recorded_once_per_task_and_read_in_utc(db_url: str) -> None:
    from driftguard.store import FAILURE_ERROR_CHARS, FailureRecord

    store = HistoryStore(db_url)
    run_id = "scheduled__2013-03-11T00:00:00+00:00"
    first = FailureRecord(
        model="flight_delay",
        dag_id="driftguard_monitor__flight_delay",
        run_id=run_id,
        task_id="extract_window",
        try_number=1,
        interval_start=T0,
        interval_end=T0 + WEEK,
        error="MissingTableError: no table events",
        failed_at=T0 + WEEK + timedelta(hours=1),
    )
    store.record_failure(first)
    # The same task of the same run failing again (cleared): its row is replaced, not added.
    again = dataclasses.replace(
        first, try_number=2, error="x" * (FAILURE_ERROR_CHARS + 50), failed_at=T0 + WEEK + timedelta(hours=2)
    )
    store.record_failure(again)
    other = dataclasses.replace(
        first, dag_id="driftguard_retrain__flight_delay", task_id="train", interval_start=None, interval_end=None,
        failed_at=(T0 + WEEK + timedelta(hours=3)).astimezone(timezone(timedelta(hours=2))),
    )  # fmt: skip
    store.record_failure(other)

    got = store.failures("flight_delay")
    assert [(f.dag_id, f.task_id, f.try_number) for f in got] == [
        ("driftguard_monitor__flight_delay", "extract_window", 2),
        ("driftguard_retrain__flight_delay", "train", 1),
    ]
    assert got[0].error == "x" * FAILURE_ERROR_CHARS  # cut: the traceback belongs in the task log
    assert got[0].interval_start == T0 and got[0].interval_start.tzinfo == UTC
    assert got[1].failed_at == T0 + WEEK + timedelta(hours=3) and got[1].failed_at.tzinfo == UTC
    assert got[1].interval_end is None and got[0].run_id == run_id
    assert [f.task_id for f in store.failures("flight_delay", limit=1)] == ["train"]
    assert store.failures("other") == []
    assert store.models() == ["flight_delay"]  # a model with only a failed run is listed
    with pytest.raises(ValueError, match="tz-aware"):
        store.record_failure(dataclasses.replace(first, failed_at=datetime(2013, 3, 18)))
