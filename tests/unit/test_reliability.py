"""Crash safety of alias moves, recovery and `driftguard doctor`, on a real MLflow SQLite registry.

Every write of promote / rollback passes registry.CHECKPOINT_HOOK first: the matrix below fails
at each one in turn (an MLflow error or a kill), then repairs, and checks that the aliases are
exactly the old or the new state, that dg_promotions agrees and that a later rollback behaves.
One real kill -9 per kind of move runs in a subprocess. See docs/reliability.md.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from driftguard import mlflow_setup
from driftguard import store as store_mod
from driftguard.retraining import recovery, registry
from driftguard.store import HistoryStore, StoreBusyError, retrains_table
from kill_support import kill_when_flagged

# The exact write order: every prefix of it (a fault at the next checkpoint) leaves valid aliases.
PROMOTE_STEPS = ["intent", "set:champion", "set:previous_champion", "delete:challenger", "tag:promoted_at", "record"]
REPROMOTE_STEPS = ["intent", "delete:previous_champion", "set:champion", "set:previous_champion", "tag:promoted_at",
                   "record"]  # fmt: skip
FIRST_STEPS = ["intent", "set:champion", "tag:promoted_at", "record"]
ROLLBACK_STEPS = ["intent", "delete:previous_champion", "set:champion", "tag:rolled_back", "record"]


class Injected(Exception):
    """Stands for an MLflow error or a kill at a checkpoint."""


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow SQLite store for the module (creating one costs seconds); models are per test."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    registry.client(uri).search_registered_models()  # create the schema once
    return uri


@pytest.fixture(autouse=True)
def reset_checkpoint_hook(tracking_uri: str) -> Iterator[None]:
    """The fault hook is cleared around each test (MLflow's globals are restored by tests/conftest.py)."""
    registry.CHECKPOINT_HOOK = None
    yield
    registry.CHECKPOINT_HOOK = None


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    return HistoryStore(f"sqlite:///{tmp_path / 'history.db'}")


_COUNTER = iter(range(10**6))


def new_model(uri: str, prefix: str, n: int = 3) -> tuple[str, list[str]]:
    """A registered model with n versions (no runs needed for alias moves)."""
    c = registry.client(uri)
    name = f"{prefix}_{next(_COUNTER)}_{os.getpid()}"
    c.create_registered_model(name)
    return name, [str(c.create_model_version(name, source=f"/tmp/{name}", run_id=None).version) for _ in range(n)]


def aliases(uri: str, model: str) -> dict[str, str]:
    return {k: str(v) for k, v in registry.client(uri).get_registered_model(model).aliases.items()}


def moves(store: HistoryStore, model: str) -> list[tuple[str, str | None, str | None]]:
    return [(p["action"], p["version"], p["previous_version"]) for p in store.promotions(model)]


def fail_at(step: int, seen: list[str] | None = None) -> None:
    """Raise at the step-th checkpoint (0 = before the intent is recorded)."""
    from mlflow.exceptions import MlflowException

    calls = iter(range(10**6))

    def hook(name: str) -> None:
        if seen is not None:
            seen.append(name)
        if next(calls) == step:
            if name.startswith(("set:", "delete:", "tag:")):
                raise MlflowException(f"injected MLflow error before {name}")
            raise Injected(f"injected kill before {name}")

    registry.CHECKPOINT_HOOK = hook


def record_steps() -> list[str]:
    seen: list[str] = []
    registry.CHECKPOINT_HOOK = seen.append
    return seen


def assert_valid(uri: str, model: str) -> None:
    """The invariant of every intermediate state: @champion and @previous_champion differ."""
    a = aliases(uri, model)
    assert a.get("previous_champion") is None or a.get("previous_champion") != a.get("champion"), a


# --------------------------------------------------------------------------- write order


def test_write_order_of_every_move(tracking_uri: str, store: HistoryStore) -> None:
    uri = tracking_uri
    model, (v1, v2, v3) = new_model(uri, "order")
    seen = record_steps()
    registry.promote(model, v1, expected_champion=None, store=store, actor="t", reason="a", tracking_uri=uri)
    assert seen == FIRST_STEPS
    registry.promote(model, v2, expected_champion=v1, store=store, actor="t", reason="b", tracking_uri=uri)
    registry.mark_challenger(model, v3, tracking_uri=uri)
    seen.clear()
    registry.promote(model, v3, expected_champion=v2, store=store, actor="t", reason="c", tracking_uri=uri)
    assert seen == PROMOTE_STEPS
    seen.clear()
    registry.promote(model, v2, expected_champion=v3, store=store, actor="t", reason="d", tracking_uri=uri)
    assert seen == REPROMOTE_STEPS  # v2 was @previous_champion: deleted before @champion moves onto it
    seen.clear()
    registry.rollback(model, store=store, actor="t", reason="e", tracking_uri=uri)
    assert seen == ROLLBACK_STEPS


# --------------------------------------------------------------------------- fault matrix


def _setup_promote(uri: str, store: HistoryStore, kind: str) -> tuple[str, dict[str, Any]]:
    """A model just before the move under test, and the move's old and new states."""
    model, (v1, v2, v3) = new_model(uri, f"f_{kind}")
    if kind == "first":
        return model, {"version": v1, "expected": None, "old": {}, "new": {"champion": v1},
                       "record": ("first_champion", v1, None)}  # fmt: skip
    registry.promote(model, v1, expected_champion=None, store=store, actor="t", reason="a", tracking_uri=uri)
    registry.promote(model, v2, expected_champion=v1, store=store, actor="t", reason="b", tracking_uri=uri)
    old = {"champion": v2, "previous_champion": v1}
    if kind == "promote":
        registry.mark_challenger(model, v3, tracking_uri=uri)
        return model, {"version": v3, "expected": v2, "old": {**old, "challenger": v3},
                       "new": {"champion": v3, "previous_champion": v2}, "record": ("promote", v3, v2)}  # fmt: skip
    assert kind == "repromote"  # promote the previous champion again
    return model, {"version": v1, "expected": v2, "old": old, "new": {"champion": v1, "previous_champion": v2},
                   "record": ("promote", v1, v2)}  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "step"),
    [("first", k) for k in range(len(FIRST_STEPS) + 1)]
    + [("promote", k) for k in range(len(PROMOTE_STEPS) + 1)]
    + [("repromote", k) for k in range(len(REPROMOTE_STEPS) + 1)],
)
def test_promote_fault_at_every_step_ends_old_or_new(
    tracking_uri: str, store: HistoryStore, kind: str, step: int
) -> None:
    uri = tracking_uri
    model, case = _setup_promote(uri, store, kind)
    before = moves(store, model)
    n_steps = len({"first": FIRST_STEPS, "promote": PROMOTE_STEPS, "repromote": REPROMOTE_STEPS}[kind])
    fail_at(step)
    if step < n_steps:
        with pytest.raises(Exception, match="injected"):
            registry.promote(model, case["version"], expected_champion=case["expected"], store=store, actor="gate",
                             reason="better", tracking_uri=uri)  # fmt: skip
    else:  # no fault: the reference run
        registry.promote(model, case["version"], expected_champion=case["expected"], store=store, actor="gate",
                         reason="better", tracking_uri=uri)  # fmt: skip
    registry.CHECKPOINT_HOOK = None
    assert_valid(uri, model)  # whatever point it stopped at

    result = registry.repair(model, store=store, tracking_uri=uri)

    after = aliases(uri, model)
    if step == 0:  # nothing was written, not even the intent
        assert result is None and after == case["old"] and moves(store, model) == before
    else:
        if step < n_steps:  # the intent was left behind: the repair completes the move
            assert result is not None and result.outcome == "completed", result
        else:
            assert result is None
        assert after == case["new"]
        assert moves(store, model) == [*before, case["record"]]
        last = store.promotions(model)[-1]
        assert (last["actor"], last["reason"]) == ("gate", "better")
    assert store.promotion_intent(model) is None
    # idempotent: a second repair and a retried promote change nothing
    assert registry.repair(model, store=store, tracking_uri=uri) is None
    if step:
        registry.promote(model, case["version"], expected_champion=case["expected"], store=store, actor="gate",
                         reason="better", tracking_uri=uri)  # fmt: skip
        assert aliases(uri, model) == after and moves(store, model) == [*before, case["record"]]

    # a later rollback behaves: back to the state's @previous_champion, or refuses without one
    state = aliases(uri, model)
    if state.get("previous_champion"):
        frm, to = registry.rollback(model, store=store, actor="oncall", reason="check", tracking_uri=uri)
        assert (frm, to) == (state["champion"], state["previous_champion"])
        assert aliases(uri, model).get("champion") == to and "previous_champion" not in aliases(uri, model)
        assert moves(store, model)[-1] == ("rollback", to, frm)
    else:
        why = "no @previous_champion to return to" if state.get("champion") else "the model has no @champion"
        with pytest.raises(registry.RegistryError, match=why):
            registry.rollback(model, store=store, actor="oncall", reason="check", tracking_uri=uri)
        assert aliases(uri, model) == state


@pytest.mark.parametrize("step", range(len(ROLLBACK_STEPS) + 1))
def test_rollback_fault_at_every_step_ends_old_or_new(tracking_uri: str, store: HistoryStore, step: int) -> None:
    uri = tracking_uri
    model, (v1, v2, v3) = new_model(uri, "f_rollback")
    for version, expected in ((v1, None), (v2, v1), (v3, v2)):
        registry.promote(model, version, expected_champion=expected, store=store, actor="t", reason="r",
                         tracking_uri=uri)  # fmt: skip
    old, new = {"champion": v3, "previous_champion": v2}, {"champion": v2}
    before = moves(store, model)
    fail_at(step)
    if step < len(ROLLBACK_STEPS):
        with pytest.raises(Exception, match="injected"):
            registry.rollback(model, store=store, actor="oncall", reason="v3 is bad", tracking_uri=uri)
    else:
        assert registry.rollback(model, store=store, actor="oncall", reason="v3 is bad", tracking_uri=uri) == (v3, v2)
    registry.CHECKPOINT_HOOK = None
    assert_valid(uri, model)

    registry.repair(model, store=store, tracking_uri=uri)

    c = registry.client(uri)
    tagged = "driftguard.rolled_back" in c.get_model_version(model, v3).tags
    if step == 0:
        assert aliases(uri, model) == old and moves(store, model) == before and not tagged
        assert registry.rollback(model, store=store, actor="oncall", reason="again", tracking_uri=uri) == (v3, v2)
    else:
        assert aliases(uri, model) == new and moves(store, model) == [*before, ("rollback", v2, v3)]
        assert c.get_model_version(model, v3).tags["driftguard.rolled_back"].endswith("by oncall: v3 is bad")
        assert "driftguard.rolled_back" not in c.get_model_version(model, v2).tags  # never the live champion
        with pytest.raises(registry.RegistryError, match="no @previous_champion to return to"):
            registry.rollback(model, store=store, actor="oncall", reason="again", tracking_uri=uri)
    assert store.promotion_intent(model) is None


def test_next_promote_repairs_an_interrupted_one_first(tracking_uri: str, store: HistoryStore) -> None:
    """The retried task itself finishes the move (no doctor needed) and records it once."""
    uri = tracking_uri
    model, case = _setup_promote(uri, store, "promote")
    fail_at(PROMOTE_STEPS.index("set:previous_champion"))
    with pytest.raises(Exception, match="injected"):
        registry.promote(model, case["version"], expected_champion=case["expected"], store=store, actor="gate",
                         reason="better", tracking_uri=uri)  # fmt: skip
    registry.CHECKPOINT_HOOK = None
    assert aliases(uri, model)["champion"] == case["version"] and store.promotion_intent(model) is not None
    registry.promote(model, case["version"], expected_champion=case["expected"], store=store, actor="gate",
                     reason="better", tracking_uri=uri)  # fmt: skip
    assert aliases(uri, model) == case["new"]
    assert moves(store, model)[-1] == case["record"] and moves(store, model).count(case["record"]) == 1
    assert store.promotion_intent(model) is None


def test_repair_leaves_aliases_moved_by_someone_else(tracking_uri: str, store: HistoryStore) -> None:
    uri = tracking_uri
    model, case = _setup_promote(uri, store, "promote")
    fail_at(1)  # intent recorded, nothing moved
    with pytest.raises(Exception, match="injected"):
        registry.promote(model, case["version"], expected_champion=case["expected"], store=store, actor="gate",
                         reason="better", tracking_uri=uri)  # fmt: skip
    registry.CHECKPOINT_HOOK = None
    c = registry.client(uri)
    c.delete_registered_model_alias(model, "previous_champion")
    c.set_registered_model_alias(model, "champion", "1")  # by hand, meanwhile
    result = registry.repair(model, store=store, tracking_uri=uri)
    assert result is not None and result.outcome == "abandoned" and "moved by someone else" in result.message
    assert aliases(uri, model) == {"champion": "1", "challenger": case["version"]}
    assert store.promotion_intent(model) is None


def test_repair_reverts_when_the_target_version_is_gone(tracking_uri: str, store: HistoryStore) -> None:
    uri = tracking_uri
    model, case = _setup_promote(uri, store, "promote")
    before = moves(store, model)
    fail_at(PROMOTE_STEPS.index("set:previous_champion"))
    with pytest.raises(Exception, match="injected"):
        registry.promote(model, case["version"], expected_champion=case["expected"], store=store, actor="gate",
                         reason="better", tracking_uri=uri)  # fmt: skip
    registry.CHECKPOINT_HOOK = None
    registry.client(uri).delete_model_version(model, case["version"])  # someone deleted the new version
    result = registry.repair(model, store=store, tracking_uri=uri)
    assert result is not None and result.outcome == "reverted"
    assert aliases(uri, model) == {"champion": "2", "previous_champion": "1"} and moves(store, model) == before


def test_a_second_move_while_one_is_pending_refuses(tracking_uri: str, store: HistoryStore) -> None:
    uri = tracking_uri
    model, (v1, v2, _) = new_model(uri, "pending")
    registry.promote(model, v1, expected_champion=None, store=store, actor="t", reason="a", tracking_uri=uri)
    intent = store.begin_promotion_intent(model, action="promote", version=v2, champion_before=v1,
                                          previous_before=None, actor="other", reason="r",
                                          at=datetime.now(UTC), owner="elsewhere:1")  # fmt: skip
    assert intent is not None
    assert store.begin_promotion_intent(model, action="promote", version=v2, champion_before=v1,
                                        previous_before=None, actor="x", reason="r", at=datetime.now(UTC),
                                        owner="me") is None  # fmt: skip
    # The owner checks before each write: once a repair took the intent over, the original stops.
    assert store.take_over_promotion_intent(model, intent["id"], seen_owner="elsewhere:1", owner="doctor")
    assert not store.take_over_promotion_intent(model, intent["id"], seen_owner="elsewhere:1", owner="again")
    assert not store.finish_promotion_intent(model, intent["id"], owner="elsewhere:1", promotion=None)
    assert store.finish_promotion_intent(model, intent["id"], owner="doctor", promotion=None)
    assert store.promotion_intent(model) is None


def test_a_repair_taking_over_a_live_move_finishes_it_once(tracking_uri: str, store: HistoryStore) -> None:
    """`driftguard doctor` runs while a promote sits between its alias writes: the doctor
    finishes the move, the promote notices at its next write, stops, and still succeeds."""
    uri = tracking_uri
    model, case = _setup_promote(uri, store, "promote")
    before = moves(store, model)
    results = []

    def doctor_meanwhile(name: str) -> None:
        if name == "set:previous_champion":
            registry.CHECKPOINT_HOOK = None
            results.append(registry.repair(model, store=store, tracking_uri=uri))

    registry.CHECKPOINT_HOOK = doctor_meanwhile
    registry.promote(model, case["version"], expected_champion=case["expected"], store=store, actor="gate",
                     reason="better", tracking_uri=uri)  # fmt: skip
    assert results[0] is not None and results[0].outcome == "completed"
    assert aliases(uri, model) == case["new"] and store.promotion_intent(model) is None
    assert moves(store, model) == [*before, case["record"]]
    assert store.promotions(model)[-1]["details"]["repaired"] is True


def test_intent_store_on_both_databases(db_url: str) -> None:
    s = HistoryStore(db_url)
    now = datetime.now(UTC)
    row = s.begin_promotion_intent("m", action="rollback", version="2", champion_before="3", previous_before="2",
                                   actor="a", reason="r", at=now, owner="o1")  # fmt: skip
    assert row is not None and row["created_at"].tzinfo is not None
    assert s.begin_promotion_intent("m", action="promote", version="4", champion_before="3", previous_before="2",
                                    actor="a", reason="r", at=now, owner="o2") is None  # fmt: skip
    assert [i["model"] for i in s.promotion_intents()] == ["m"]
    promotion = {"action": "rollback", "version": "2", "previous_version": "3", "actor": "a", "reason": "r",
                 "details": {}, "at": now}  # fmt: skip
    assert s.finish_promotion_intent("m", row["id"], owner="o1", promotion=promotion)
    assert not s.finish_promotion_intent("m", row["id"], owner="o1", promotion=promotion)  # done once only
    assert [p["action"] for p in s.promotions("m")] == ["rollback"] and s.promotion_intent("m") is None
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
    assert not s.heartbeat_retrain("m", start, end)
    assert s.claim_retrain("m", start, end) is None
    assert s.heartbeat_retrain("m", start, end)
    assert [r["status"] for r in s.running_retrains()] == ["running"]
    store_mod.dispose_engines()


# --------------------------------------------------------------------------- kill -9

_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from driftguard.retraining import registry
    from driftguard.store import HistoryStore

    uri, history, model, action, stop_at, flag = sys.argv[1:7]

    def hook(name):
        if name == stop_at:
            Path(flag).write_text(name)
            time.sleep(120)  # killed here

    registry.CHECKPOINT_HOOK = hook
    store = HistoryStore(history)
    if action == "promote":
        registry.promote(model, "3", expected_champion="2", store=store, actor="gate", reason="kill test",
                         tracking_uri=uri)
    else:
        registry.rollback(model, store=store, actor="oncall", reason="kill test", tracking_uri=uri)
    """
)


@pytest.mark.parametrize(
    ("action", "stop_at", "new"),
    [
        ("promote", "set:previous_champion", {"champion": "3", "previous_champion": "2"}),
        ("rollback", "set:champion", {"champion": "2"}),
    ],
)
def test_kill_9_between_alias_writes(
    tracking_uri: str, store: HistoryStore, tmp_path: Path, action: str, stop_at: str, new: dict[str, str]
) -> None:
    """A real SIGKILL while the process sits between two alias writes; the repair completes the move."""
    uri = tracking_uri
    model, (v1, v2, _v3) = new_model(uri, f"kill_{action}")
    registry.promote(model, v1, expected_champion=None, store=store, actor="t", reason="a", tracking_uri=uri)
    registry.promote(model, v2, expected_champion=v1, store=store, actor="t", reason="b", tracking_uri=uri)
    if action == "rollback":
        registry.promote(model, "3", expected_champion=v2, store=store, actor="t", reason="c", tracking_uri=uri)
    flag = tmp_path / "reached"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, uri, store.url, model, action, stop_at, str(flag)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    kill_when_flagged(child, flag, limit_s=60, what="the checkpoint")
    assert_valid(uri, model)
    assert store.promotion_intent(model) is not None
    before = moves(store, model)

    found = recovery.recover_model(model, store=store, tracking_uri=uri, stale_after=timedelta(minutes=5))

    assert [(f.kind, f.fixed) for f in found] == [("intent", True)]
    assert aliases(uri, model) == new and store.promotion_intent(model) is None
    expected = ("promote", "3", "2") if action == "promote" else ("rollback", "2", "3")
    assert moves(store, model) == [*before, expected]


# --------------------------------------------------------------------------- orphaned runs, doctor


def _run(c: Any, experiment_id: str, *, age: timedelta, as_of: datetime | None) -> str:
    start = int((datetime.now(UTC) - age).timestamp() * 1000)
    tags = {"driftguard.model": "x", **({"driftguard.data_as_of": as_of.isoformat()} if as_of else {})}
    return c.create_run(experiment_id, start_time=start, tags=tags, run_name=f"run-{next(_COUNTER)}").info.run_id


def test_orphaned_runs_are_closed_as_failed_unless_a_live_claim_owns_them(
    tracking_uri: str, store: HistoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    uri, model = tracking_uri, f"orphans_{os.getpid()}"
    c = registry.client(uri)
    exp = mlflow_setup.ensure_experiment(model, uri)
    live_end, dead_end = datetime(2024, 1, 9, tzinfo=UTC), datetime(2024, 1, 10, tzinfo=UTC)
    assert store.claim_retrain(model, live_end - timedelta(days=1), live_end) is None  # alive: fresh heartbeat
    assert store.claim_retrain(model, dead_end - timedelta(days=1), dead_end) is None
    with store.engine.begin() as conn:  # its worker died 20 minutes ago
        conn.execute(sa.update(retrains_table).where(retrains_table.c.interval_end == dead_end)
                     .values(updated_at=datetime.now(UTC) - timedelta(minutes=20)))  # fmt: skip
    live_run = _run(c, exp, age=timedelta(hours=1), as_of=live_end)  # a long training, still running
    dead_run = _run(c, exp, age=timedelta(hours=1), as_of=dead_end)
    young_run = _run(c, exp, age=timedelta(seconds=10), as_of=dead_end)
    done_run = _run(c, exp, age=timedelta(hours=2), as_of=None)
    c.set_terminated(done_run, status="FINISHED")

    dry = recovery.close_orphaned_runs(model, store=store, tracking_uri=uri, stale_after=timedelta(minutes=5),
                                       dry_run=True)  # fmt: skip
    assert [f.fixed for f in dry] == [False] and c.get_run(dead_run).info.status == "RUNNING"
    with caplog.at_level("WARNING", logger="driftguard.retraining.recovery"):
        found = recovery.close_orphaned_runs(model, store=store, tracking_uri=uri, stale_after=timedelta(minutes=5))

    assert [f.kind for f in found] == ["orphan_run"] and dead_run in found[0].message
    assert c.get_run(dead_run).info.status == "FAILED"
    assert c.get_run(dead_run).data.tags[recovery.TAG_ORPHANED].startswith("closed as FAILED")
    assert dead_run in caplog.text and "closed as FAILED" in caplog.text
    statuses = {r: c.get_run(r).info.status for r in (live_run, young_run, done_run)}
    assert statuses == {live_run: "RUNNING", young_run: "RUNNING", done_run: "FINISHED"}
    stale = recovery.stale_claims(store, stale_after=timedelta(minutes=5), model=model)
    assert len(stale) == 1 and "2024-01-10T00:00:00+00:00" in stale[0].message and "20 min ago" in stale[0].message


def test_doctor_command_repairs_reconciles_and_reports(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from driftguard.cli import main

    uri, history = tracking_uri, f"sqlite:///{tmp_path / 'doctor.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("DRIFTGUARD_HISTORY_URL", history)
    store = HistoryStore(history)
    # 1: a promotion killed between its alias writes
    killed, case = _setup_promote(uri, store, "promote")
    fail_at(PROMOTE_STEPS.index("set:previous_champion"))
    with pytest.raises(Exception, match="injected"):
        registry.promote(killed, case["version"], expected_champion=case["expected"], store=store, actor="gate",
                         reason="better", tracking_uri=uri)  # fmt: skip
    registry.CHECKPOINT_HOOK = None
    # 2: the state an older Driftguard left (champion == previous), and aliases moved by hand
    legacy, (v1, v2, _) = new_model(uri, "legacy")
    registry.promote(legacy, v1, expected_champion=None, store=store, actor="t", reason="a", tracking_uri=uri)
    registry.promote(legacy, v2, expected_champion=v1, store=store, actor="t", reason="b", tracking_uri=uri)
    registry.client(uri).set_registered_model_alias(legacy, "previous_champion", v2)
    by_hand, (w1, w2, _) = new_model(uri, "by_hand")
    registry.promote(by_hand, w1, expected_champion=None, store=store, actor="t", reason="a", tracking_uri=uri)
    registry.client(uri).set_registered_model_alias(by_hand, "champion", w2)
    models = [killed, legacy, by_hand]

    assert main(["doctor", "--dry-run", *models]) == 1
    out = capsys.readouterr().out
    assert f"would fix {killed} intent: interrupted promote of {killed} to v3" in out
    assert f"would fix {legacy} aliases: @previous_champion was @champion v2 too: set to v1" in out
    assert f"would fix {by_hand} aliases: dg_promotions said v1 but MLflow @champion is v2" in out
    assert aliases(uri, killed) == {"champion": "3", "previous_champion": "1", "challenger": "3"}  # untouched

    assert main(["doctor", *models]) == 0
    out = capsys.readouterr().out
    assert f"fixed {killed} intent: completed the interrupted promote" in out
    assert out.splitlines()[-1] == "3 finding(s), 3 fixed, 0 left"
    assert aliases(uri, killed) == case["new"] and moves(store, killed)[-1] == case["record"]
    assert aliases(uri, legacy) == {"champion": v2, "previous_champion": v1}
    assert moves(store, by_hand)[-1] == ("reconcile", w2, None)
    assert main(["doctor", *models]) == 0
    assert capsys.readouterr().out.strip() == "all consistent"
    # the legacy model rolls back properly now
    assert registry.rollback(legacy, store=store, actor="oncall", reason="r", tracking_uri=uri) == (v2, v1)


def test_doctor_releases_stale_claims_on_request(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from driftguard.cli import main

    history = f"sqlite:///{tmp_path / 'claims.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("DRIFTGUARD_HISTORY_URL", history)
    store = HistoryStore(history)
    start, end = datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 2, 2, tzinfo=UTC)
    assert store.claim_retrain("stale_m", start, end) is None
    with store.engine.begin() as conn:
        conn.execute(sa.update(retrains_table).values(updated_at=datetime.now(UTC) - timedelta(minutes=30)))
    assert main(["doctor", "stale_m"]) == 1
    assert "ATTENTION stale_m stale_claim: retrain claim for [2024-02-01" in capsys.readouterr().out
    assert main(["doctor", "stale_m", "--release-stale"]) == 0
    assert "fixed stale_m stale_claim:" in capsys.readouterr().out
    assert [r["status"] for r in store.retrains("stale_m")] == ["failed"]  # the next request retries it


# --------------------------------------------------------------------------- locked history database


def test_locked_history_db_says_locked_and_retryable(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    url = f"sqlite:///{path}"
    store_mod._ENGINES[url] = sa.create_engine(url, connect_args={"timeout": 0.2})  # no 30 s wait in a test
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreBusyError, match=r"the database is locked \(busy\).*transient: retry") as err:
            HistoryStore(url).create_all()
        assert err.value.retryable and "cannot create the dg_ history tables" in str(err.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    HistoryStore(url).create_all()  # the lock is gone: works
    assert "dg_promotion_intents" in sa.inspect(store_mod._ENGINES[url]).get_table_names()
    store_mod.dispose_engines()
