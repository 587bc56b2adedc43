"""Fault injection into a real retrain: an error at every step boundary and at every MLflow (and
history, and feature log) call the retrain makes, and a real kill -9 at three points.

Everything is real (MLflow on SQLite with local artifacts, the history store, a synthetic feature
log, the gate with its fresh-process servability check); a fault is the real function replaced by
one that raises (before the call, or after it took effect: the answer is lost), once, while the
named step runs. After each fault the promises of docs/reliability.md are checked: the claim is
released (or detectable as stale), the aliases are the old or the new state, no MLflow run is left
RUNNING; then the same interval is rerun and must converge: one registered version for the
interval, one dg_retrains row with a final status, dg_promotions agreeing with the aliases.

Cost: one MLflow store and one trained champion run for the module; every probe model gets that
run as its @champion v1 (a registration, no training). The faults before the gate share one model
and one interval: each attempt is the rerun of the previous one (one training per attempt at most,
one gate at the end).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from driftguard.contract import ModelContract
from driftguard.retraining import recovery, registry, retrain
from driftguard.settings import Settings, get_settings
from driftguard.store import HistoryStore, retrains_table
from driftguard.testing import generate_log, synthetic_contract, write_log
from kill_support import kill_when_flagged
from mlflow.exceptions import MlflowException
from mlflow_support import restored_mlflow_globals

START = datetime(2024, 1, 1, tzinfo=UTC)
DAY0, DAY1 = START + timedelta(days=27), START + timedelta(days=28)  # the interval every probe retrains
INTERVAL_TAG = f"{DAY0.isoformat()}/{DAY1.isoformat()}"
FINAL = ("promoted", "rejected", "insufficient_evidence", "aborted")
OVERRIDES: dict[str, Any] = {
    "training": {"estimator": "logistic_regression", "window": "20d", "validation": "3d", "holdout": "3d",
                 "params": {}},
    # Any sane candidate passes: the probes are about the moves around the gate, not its verdict.
    "promotion": {"bootstrap": {"samples": 100}, "mode": "non_inferiority", "margin": 0.5},
}  # fmt: skip


def mlflow_down(what: str) -> MlflowException:
    return MlflowException(f"API request to {what} failed: Connection refused (injected)")


def db_down(what: str) -> sa.exc.OperationalError:
    return sa.exc.OperationalError(what, {}, ConnectionRefusedError("server closed the connection (injected)"))


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    url: str  # the feature log
    settings: Settings
    base_run: str  # the trained run every probe model's @champion v1 is registered from
    names: Iterator[int]

    @property
    def uri(self) -> str:
        return self.settings.mlflow_tracking_uri

    @property
    def store(self) -> HistoryStore:
        return HistoryStore(self.settings.history_url)

    def contract(self, name: str, **overrides: Any) -> ModelContract:
        merged = {**OVERRIDES, **overrides}
        return synthetic_contract(task="binary_classification", url=self.url, name=name, overrides=merged)

    def model(self, prefix: str, *, champion: bool = True, **overrides: Any) -> ModelContract:
        """A fresh model; with ``champion`` the module's trained run is its @champion v1."""
        contract = self.contract(f"{prefix}_{next(self.names)}", **overrides)
        if champion:
            name = contract.registered_model_name
            registry.register_candidate(name, self.base_run, tracking_uri=self.uri,
                                        tags={"driftguard.interval": "seed"})  # fmt: skip
            registry.promote(name, "1", expected_champion=None, store=self.store, actor="seed", reason="seed",
                             tracking_uri=self.uri, at=START + timedelta(days=7))  # fmt: skip
        return contract

    def run(self, contract: ModelContract) -> dict[str, Any]:
        return retrain.run_retraining(contract, DAY0, DAY1, trigger={"summary": "probe"}, settings=self.settings)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("faults")
    home = root / "home"
    mp = pytest.MonkeyPatch()
    # MLflow's URI is process-wide: put it back as it was set, never as it resolves (unset, that
    # is MLflow's default store in the working directory, which a later test would then write).
    with restored_mlflow_globals():
        mp.setenv("DRIFTGUARD_HOME", str(home))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        mp.setenv("DRIFTGUARD_HISTORY_URL", f"sqlite:///{home / 'history.db'}")
        mp.setenv("DRIFTGUARD_REPORTS_DIR", str(home / "reports"))
        url = f"sqlite:///{root / 'log.db'}"
        log, labels = generate_log("binary_classification", start=START, days=30, rows_per_day=100, seed=5)
        settings = get_settings()
        w = World(url, settings, "", itertools.count())
        base = w.contract("base_model")
        write_log(url, base, log, labels)
        assert w.run(base)["status"] == "promoted"
        w.base_run = registry.client(w.uri).get_model_version("base_model", "1").run_id
        yield w
    mp.undo()


@pytest.fixture(autouse=True)
def no_checkpoint_hook() -> Iterator[None]:
    registry.CHECKPOINT_HOOK = None
    yield
    registry.CHECKPOINT_HOOK = None


# --------------------------------------------------------------------------- faults


class Faults:
    """Faults for one retrain attempt. Tracks which retrain step runs; a fault armed for a step
    raises at the nth call of the target made while that step runs (any time: step None), once
    (or ``times`` times), before the real call or, with ``after``, after it (the call took
    effect, its answer was lost)."""

    def __init__(self, mp: pytest.MonkeyPatch) -> None:
        self.mp, self.step, self.fired = mp, None, []
        for name in ("train", "register", "evaluate", "promote"):
            self._track(name)

    def _track(self, name: str) -> None:
        real = getattr(retrain, name)

        def tracked(ctx: Any, *args: Any, **kwargs: Any) -> Any:
            before, self.step = self.step, name
            try:
                return real(ctx, *args, **kwargs)
            finally:
                self.step = before

        self.mp.setattr(retrain, name, tracked)

    def arm(
        self,
        target: Any,
        attr: str,
        exc: BaseException,
        *,
        step: str | None = None,
        nth: int = 1,
        after: bool = False,
        times: int = 1,
        when: Callable[..., bool] | None = None,
    ) -> None:
        real, seen, left = getattr(target, attr), itertools.count(1), [times]

        def faulty(*args: Any, **kwargs: Any) -> Any:
            matching = (step is None or self.step == step) and (when is None or when(*args, **kwargs))
            if left[0] and matching and next(seen) >= nth:
                left[0] -= 1
                if after:
                    real(*args, **kwargs)
                self.fired.append(f"{target.__name__}.{attr}")
                raise exc
            return real(*args, **kwargs)

        self.mp.setattr(target, attr, faulty)


def _mlflow() -> Any:
    import mlflow

    return mlflow


# --------------------------------------------------------------------------- the promises


def aliases(w: World, name: str) -> dict[str, str]:
    return {k: str(v) for k, v in registry.client(w.uri).get_registered_model(name).aliases.items()}


def interval_versions(w: World, name: str) -> list[str]:
    c = registry.client(w.uri)
    found = c.search_model_versions(f"name = '{name}'")
    return sorted(
        str(mv.version) for mv in found
        if c.get_model_version(name, str(mv.version)).tags.get("driftguard.interval") == INTERVAL_TAG
    )  # fmt: skip


def runs(w: World, name: str, status: str) -> list[Any]:
    c = registry.client(w.uri)
    experiment = c.get_experiment_by_name(f"driftguard/{name}")
    if experiment is None:
        return []
    return c.search_runs([experiment.experiment_id], f"attributes.status = '{status}'")


def row(w: World, name: str) -> dict[str, Any] | None:
    rows = [r for r in w.store.retrains(name) if r["interval_end"] == DAY1]
    assert len(rows) <= 1, rows
    return rows[0] if rows else None


def assert_valid_aliases(w: World, name: str, *states: dict[str, str]) -> None:
    a = {k: v for k, v in aliases(w, name).items() if k != "challenger"}
    assert a.get("previous_champion") is None or a["previous_champion"] != a.get("champion"), a
    assert a in states, f"aliases {a} are neither of {states}"


def moved(old: dict[str, str]) -> list[dict[str, str]]:
    """The states an alias move of the next version may leave: the old one, the new one, and the
    valid intermediate (@champion moved, @previous_champion not yet set) the next run completes."""
    new = str(int(old.get("champion", "0")) + 1)
    return [old, {"champion": new}, {"champion": new, **({"previous_champion": old["champion"]} if old else {})}]


def assert_after_fault(w: World, name: str, *, old: dict[str, str], status: str | None = "failed") -> None:
    """Right after an in-process fault: the claim released, aliases old or new, no RUNNING run."""
    r = row(w, name)
    assert (r and r["status"]) == status, r
    assert_valid_aliases(w, name, *moved(old))
    assert runs(w, name, "RUNNING") == []


def assert_converged(w: World, name: str, *, old: dict[str, str], status: str = "promoted") -> str:
    """After the rerun: one version for the interval, one final row naming it, aliases agreeing
    with it and with dg_promotions, nothing for `driftguard doctor` to do. Returns the version."""
    versions = interval_versions(w, name)
    assert len(versions) == 1, f"duplicate versions for the interval: {versions}"
    (version,) = versions
    r = row(w, name)
    assert r is not None and r["status"] == status and r["candidate_version"] == version, r
    a = aliases(w, name)
    if status == "promoted":
        expected = {"champion": version, **({"previous_champion": old["champion"]} if old else {})}
        assert {k: v for k, v in a.items() if k != "challenger"} == expected, a
        promotions = [p for p in w.store.promotions(name) if p["version"] == version]
        assert [(p["action"], p["previous_version"]) for p in promotions] == [
            ("promote" if old else "first_champion", old.get("champion"))
        ], promotions
    else:
        assert {k: v for k, v in a.items() if k != "challenger"} == old and a.get("challenger") == version, a
    found = recovery.doctor([name], store=w.store, tracking_uri=w.uri, stale_after=timedelta(0), dry_run=True)
    assert found == [], found
    assert runs(w, name, "RUNNING") == []
    return version


def rerun(w: World, contract: ModelContract, *, old: dict[str, str], status: str = "promoted") -> str:
    """Rerun the interval; it converges (assert_converged). A promotion's recorded verdict is the
    gate's against the old champion, never the candidate against itself; a further rerun is skipped."""
    result = w.run(contract)
    assert result["status"] in (status, "skipped"), result
    name = contract.name
    version = assert_converged(w, name, old=old, status=status)
    if status == "promoted":
        checks = {c["name"]: c for c in row(w, name)["verdict"]["checks"]}
        champion_uri = checks["servability"]["numbers"]["champion_uri"]
        assert champion_uri == (f"models:/{name}/{old['champion']}" if old else None), champion_uri
        assert registry.client(w.uri).get_model_version(name, version).tags[registry.TAG_VERDICT] == "promote"
    assert w.run(contract)["status"] == "skipped"  # and again: nothing new
    return version


# --------------------------------------------------------------------------- before the gate: one chain


def _training_fault(attr: str) -> Callable[[Faults], None]:
    return lambda f: f.arm(_mlflow(), attr, mlflow_down(f"mlflow.{attr}"), step="train")


def _arm_register_model_lost(f: Faults) -> None:
    f.arm(_mlflow(), "register_model", mlflow_down("create_model_version (answer lost)"), step="register",
          after=True)  # fmt: skip


def _client_fault(attr: str, step: str, **kw: Any) -> Callable[[Faults], None]:
    from mlflow import MlflowClient

    return lambda f: f.arm(MlflowClient, attr, mlflow_down(f"MlflowClient.{attr}"), step=step, **kw)


def _boundary(step: str) -> Callable[[Faults], None]:
    return lambda f: f.arm(retrain, step, OSError(f"worker lost before {step} (injected)"))


def _store_fault(attr: str, **kw: Any) -> Callable[[Faults], None]:
    return lambda f: f.arm(HistoryStore, attr, db_down(f"HistoryStore.{attr}"), **kw)


def _module_fault(module: str, attr: str, exc: BaseException, **kw: Any) -> Callable[[Faults], None]:
    import importlib

    return lambda f: f.arm(importlib.import_module(module), attr, exc, **kw)


# (probe id, arm the fault, the dg_retrains status right after it). In this order: each attempt
# is the rerun of the one before; the training faults come before any run finished (a finished
# run is reused, so later attempts never reach those calls).
BEFORE_GATE: list[tuple[str, Callable[[Faults], None], str | None]] = [
    ("claim: history database down", _store_fault("claim_retrain"), None),
    ("boundary: after claim", _boundary("train"), "failed"),
    ("train: feature log down", _module_fault("driftguard.retraining.training", "load_training_data",
                                              db_down("SELECT events")), "failed"),
    ("train: ensure_experiment", _module_fault("driftguard.mlflow_setup", "ensure_experiment",
                                               mlflow_down("get_experiment_by_name"), step="train"), "failed"),
    ("train: search for a reusable run", _module_fault("driftguard.retraining.training", "find_candidate",
                                                       mlflow_down("search_runs")), "failed"),
    ("train: start_run", _training_fault("start_run"), "failed"),
    ("train: set_tags", _training_fault("set_tags"), "failed"),
    ("train: log_params", _training_fault("log_params"), "failed"),
    ("train: log_metrics", _training_fault("log_metrics"), "failed"),
    ("train: log_model (artifact store down)", _module_fault("mlflow.sklearn", "log_model",
                                                             OSError("artifact store: Connection refused"),
                                                             step="train"), "failed"),
    ("train: log_dict", _training_fault("log_dict"), "failed"),
    ("train: log_reference (reference artifacts)", _module_fault("driftguard.retraining.reference", "log_reference",
                                                                 mlflow_down("log_artifact")), "failed"),
    ("boundary: after train", _boundary("register"), "failed"),
    ("register: search_model_versions", _client_fault("search_model_versions", "register"), "failed"),
    ("register: get_run", _client_fault("get_run", "register"), "failed"),
    ("register: register_model before the version exists", lambda f: f.arm(
        _mlflow(), "register_model", mlflow_down("create_registered_model"), step="register"), "failed"),
    ("register: register_model created the version, answer lost", _arm_register_model_lost, "failed"),
    ("boundary: after register", _boundary("evaluate"), "failed"),
    # The champion cannot be loaded because the store is unreachable: an outage, not a verdict on the
    # champion (no rollback, no alert); the step fails and is retried.
    ("evaluate: champion load, store unreachable", lambda f: f.arm(
        _mlflow().pyfunc, "load_model", OSError("artifact store: Connection refused (injected)"), step="evaluate"),
     "failed"),
    ("evaluate: verdict tags (set_model_version_tag)", _client_fault("set_model_version_tag", "evaluate"), "failed"),
    ("evaluate: decision record (log_dict)", _client_fault("log_dict", "evaluate"), "failed"),
]  # fmt: skip


def test_faults_before_the_gate_each_leave_a_state_the_next_attempt_repairs(world: World) -> None:
    w = world
    contract = w.model("chain")
    name, old = contract.name, {"champion": "1"}
    for probe, arm, status in BEFORE_GATE:
        with pytest.MonkeyPatch.context() as mp:
            faults = Faults(mp)
            arm(faults)
            with pytest.raises(Exception, match=r"injected|Connection refused|no @previous_champion") as err:
                w.run(contract)
        assert faults.fired, f"{probe}: the fault never fired"
        if "store unreachable" in probe:  # an outage, not a broken champion: no rollback attempted
            assert type(err.value).__name__ == "ServabilityUnavailable", err.value
        try:
            assert_after_fault(w, name, old=old, status=status)
            assert len(interval_versions(w, name)) <= 1
            assert len(runs(w, name, "FINISHED")) <= 1  # a finished run is reused, never trained again
        except AssertionError as exc:
            raise AssertionError(f"after the fault '{probe}' ({err.value!r}): {exc}") from exc
    assert len(interval_versions(w, name)) == 1 and len(runs(w, name, "FINISHED")) == 1

    # The last attempt: recovery itself fails (MLflow down at the start) and every heartbeat fails
    # (history database down): both are logged, neither stops the retrain.
    with pytest.MonkeyPatch.context() as mp:
        faults = Faults(mp)
        faults.arm(recovery, "recover_model", mlflow_down("search_runs (recovery)"))
        faults.arm(HistoryStore, "heartbeat_retrain", db_down("UPDATE dg_retrains (heartbeat)"), times=100)
        rerun(w, contract, old=old)
    assert (
        faults.fired.count("HistoryStore.heartbeat_retrain") >= 4
        and "driftguard.retraining.recovery.recover_model" in faults.fired
    )
    assert len(runs(w, name, "FINISHED")) == 1


# --------------------------------------------------------------------------- the gate and the alias move


@pytest.fixture(scope="module")
def gated(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelContract]:
    """The state just before promote, built once: @champion v1, the interval's candidate v2
    trained, registered and passed by the gate, its claim running, verdict.json in the work
    folder. Saved as copies of the two databases and the work folder (MLflow artifacts stay where
    they are; a probe only reads them, or rewrites the same decision record)."""
    w = world
    contract = w.model("gated")
    ctx = retrain.RetrainContext.create(contract, DAY0, DAY1, trigger={"summary": "probe"}, settings=w.settings)
    assert retrain.claim(ctx)["proceed"]
    retrain.train(ctx)
    retrain.register(ctx)
    assert retrain.evaluate(ctx)["promote"]
    snap = tmp_path_factory.mktemp("gated")
    for url, file in ((w.uri, "mlflow.db"), (w.settings.history_url, "history.db")):
        source = sqlite3.connect(url.removeprefix("sqlite:///"))
        target = sqlite3.connect(snap / file)
        source.backup(target)
        source.close()
        target.close()
    shutil.copytree(w.settings.home / "work", snap / "work")
    return snap, contract


def restore(world: World, snap: Path, home: Path, mp: pytest.MonkeyPatch) -> World:
    """A copy of the `gated` state under `home`: the world as seen through its own stores."""
    home.mkdir()
    for file in ("mlflow.db", "history.db"):
        shutil.copy(snap / file, home / file)
    shutil.copytree(snap / "work", home / "work")
    mp.setenv("DRIFTGUARD_HOME", str(home))
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    mp.setenv("DRIFTGUARD_HISTORY_URL", f"sqlite:///{home / 'history.db'}")
    mp.setenv("DRIFTGUARD_REPORTS_DIR", str(home / "reports"))
    return replace(world, settings=get_settings())


def promote_step(w: World, contract: ModelContract) -> dict[str, Any]:
    """The retrain's last step, as run_retraining runs it (and the DAG: its failure callback fails)."""
    ctx = retrain.RetrainContext.create(contract, DAY0, DAY1, trigger={"summary": "probe"}, settings=w.settings)
    try:
        return retrain.promote(ctx)
    except Exception as exc:
        retrain.fail(ctx, f"{type(exc).__name__}: {exc}")
        raise


@dataclass(frozen=True)
class Probe:
    arm: Callable[[Faults], None]
    after: str | None = "failed"  # the dg_retrains status right after the fault
    raises: bool | None = None  # the retrain raises (default: when `after` is failed or running)
    final: str = "promoted"  # after the rerun
    champion: bool = True  # a @champion v1 exists before the retrain (fresh models only)
    overrides: dict[str, Any] | None = None
    detail: str | None = None  # in the dg_retrains verdict right after the fault: says why

    @property
    def raising(self) -> bool:
        return self.raises if self.raises is not None else self.after in ("failed", "running")


def _checkpoint(name: str, exc: BaseException | None = None) -> Callable[[Faults], None]:
    def arm(f: Faults) -> None:
        def hook(point: str) -> None:
            if point == name and f.step == "promote" and not f.fired:
                f.fired.append(point)
                raise exc or mlflow_down(f"alias write {point}")

        f.mp.setattr(registry, "CHECKPOINT_HOOK", hook)

    return arm


def _store_fault_in(attr: str, step: str, *, and_release: bool = False) -> Callable[[Faults], None]:
    def arm(f: Faults) -> None:
        f.arm(HistoryStore, attr, db_down(f"HistoryStore.{attr}"), step=step)
        if and_release:  # and fail() after it: the claim stays 'running'
            f.arm(HistoryStore, attr, db_down("HistoryStore.finish_retrain (fail)"),
                  when=lambda *a, **k: k.get("status") == "failed")  # fmt: skip

    return arm


# From the `gated` state: the fault hits promote, the last step.
AT_PROMOTE: dict[str, Probe] = {
    "boundary: after evaluate": Probe(_boundary("promote")),
    "promote: before the intent": Probe(_checkpoint("intent", db_down("INSERT dg_promotion_intents"))),
    "promote: intent written, before @champion": Probe(_checkpoint("set:champion")),
    "promote: between @champion and @previous_champion": Probe(_checkpoint("set:previous_champion")),
    "promote: aliases moved, before the promoted_at tag": Probe(_checkpoint("tag:promoted_at")),
    "promote: before the dg_promotions record": Probe(_checkpoint("record", db_down("DELETE dg_promotion_intents"))),
    "promote: outcome write after the alias move": Probe(_store_fault_in("finish_retrain", "promote")),
    "promote: outcome write and the claim release both fail": Probe(
        _store_fault_in("finish_retrain", "promote", and_release=True), after="running"),
    "promote: shadow handover reads a dead history database": Probe(
        _store_fault_in("shadow_records", "promote"), after="promoted"),
    "promote: after the outcome is recorded (alert)": Probe(
        _module_fault("driftguard.retraining.retrain", "_alert", OSError("notifier: Connection refused (injected)"),
                      step="promote"), after="promoted", raises=True),
}  # fmt: skip

REJECTING = {"promotion": {"bootstrap": {"samples": 100}, "mode": "superiority", "margin": 0.3}}


def _arm_model_file_gone(f: Faults) -> None:
    """The challenger's artifacts download without their MLmodel file (a corrupt artifact): a
    defect of the model, which the fresh process finds."""
    from driftguard.retraining import servability

    real = servability._download

    def download(model_uri: str, tracking_uri: str, into: Path) -> str:
        local = real(model_uri, tracking_uri, into)
        if f.step == "evaluate" and into.name == "challenger" and not f.fired:
            (Path(local) / "MLmodel").unlink()
            f.fired.append("servability._download (MLmodel removed)")
        return local

    f.mp.setattr(servability, "_download", download)


# On a fresh model: the whole retrain runs, the fault hits the gate or a move of its own kind.
FRESH: dict[str, Probe] = {
    "evaluate: candidate artifacts cannot be downloaded for servability": Probe(
        _module_fault("driftguard.retraining.servability", "_download",
                      OSError("artifact store: Connection refused (injected)"), step="evaluate"),
        detail="ServabilityUnavailable"),
    "evaluate: candidate load fails in-process": Probe(
        lambda f: f.arm(_mlflow().pyfunc, "load_model", OSError("artifact store: Connection refused (injected)"),
                        step="evaluate", nth=2), detail="ServabilityUnavailable"),
    "evaluate: candidate artifacts without the model (corrupt)": Probe(
        _arm_model_file_gone, after="rejected", final="rejected", detail="fresh process failed (exit 1)"),
    "first champion: between @champion and its tag": Probe(
        _checkpoint("tag:promoted_at"), champion=False,
        overrides={"reference": {"start": "2024-01-01", "end": "2024-01-22"}}),
    "reject: @challenger alias write": Probe(
        _client_fault("set_registered_model_alias", "promote"), final="rejected", overrides=REJECTING),
}  # fmt: skip


def _probe(w: World, contract: ModelContract, p: Probe, attempt: Callable[[], Any], mp: pytest.MonkeyPatch) -> None:
    name, old = contract.name, ({"champion": "1"} if p.champion else {})
    with pytest.MonkeyPatch.context() as faulty:
        faults = Faults(faulty)
        p.arm(faults)
        if p.raising:
            with pytest.raises(Exception):  # noqa: B017 (whatever the fault became)
                attempt()
        else:
            assert attempt()["status"] == p.after
    assert faults.fired, "the fault never fired"
    assert_after_fault(w, name, old=old, status=p.after)
    if p.detail is not None:
        assert p.detail in json.dumps(row(w, name)["verdict"]), row(w, name)
    if p.after == "running":  # the worker could not even release its claim: detectable as stale
        stale = recovery.stale_claims(w.store, stale_after=timedelta(0), model=name)
        assert len(stale) == 1 and "its worker died" in stale[0].message
        mp.setattr(retrain, "CLAIM_STALE_AFTER", timedelta(0))  # its heartbeat stopped long ago

    rerun(w, contract, old=old, status=p.final)

    if p.final == "promoted" and p.after != "promoted":  # (a step failing after the outcome keeps it: Limits)
        assert not retrain.RetrainContext.create(contract, DAY0, DAY1, settings=w.settings).work_dir.exists()


@pytest.mark.parametrize("probe", list(AT_PROMOTE))
def test_fault_at_the_alias_move_is_repaired_by_the_rerun(
    world: World, gated: tuple[Path, ModelContract], probe: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap, contract = gated
    w = restore(world, snap, tmp_path / "home", monkeypatch)
    _probe(w, contract, AT_PROMOTE[probe], lambda: promote_step(w, contract), monkeypatch)


@pytest.mark.parametrize("probe", list(FRESH))
def test_fault_in_the_gate_or_a_first_or_rejecting_move_is_repaired_by_the_rerun(
    world: World, probe: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = FRESH[probe]
    contract = world.model("fresh", champion=p.champion, **(p.overrides or {}))
    _probe(world, contract, p, lambda: world.run(contract), monkeypatch)


# --------------------------------------------------------------------------- kill -9

_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from datetime import datetime, timedelta
    from pathlib import Path

    import mlflow
    from driftguard.retraining import registry, retrain
    from driftguard import testing

    point, flag, url, name, overrides, start, end, stale = sys.argv[1:9]

    def block(*_args, **_kwargs):
        Path(flag).write_text(point)
        time.sleep(120)  # killed here

    def block_in(target, attr, *, after):
        real = getattr(target, attr)

        def blocking(*args, **kwargs):
            if after:
                real(*args, **kwargs)
            block()

        setattr(target, attr, blocking)

    retrain.CLAIM_STALE_AFTER = timedelta(seconds=float(stale))
    contract = testing.synthetic_contract(
        task="binary_classification", url=url, name=name, overrides=json.loads(overrides)
    )
    start, end = datetime.fromisoformat(start), datetime.fromisoformat(end)
    if point == "train":  # inside the MLflow run: tags and params logged, no metrics yet
        block_in(mlflow, "log_metrics", after=False)
    elif point == "register":  # the version exists; registered.json is not written
        block_in(mlflow, "register_model", after=True)
    if point == "promote":  # the last step only: @champion moved, @previous_champion not yet
        registry.CHECKPOINT_HOOK = lambda at: block() if at == "set:previous_champion" else None
        retrain.promote(retrain.RetrainContext.create(contract, start, end))
    else:
        retrain.run_retraining(contract, start, end)
    """
)


def kill_at(w: World, point: str, name: str, flag: Path, *, stale_seconds: float = 300) -> None:
    """Run the retrain (or its promote step) in a child process and SIGKILL it at `point`."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, point, str(flag), w.url, name, json.dumps(OVERRIDES), DAY0.isoformat(),
         DAY1.isoformat(), str(stale_seconds)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    kill_when_flagged(child, flag, limit_s=180, what="the kill point")


def heartbeat_stopped(w: World, name: str, mp: pytest.MonkeyPatch) -> None:
    """The dead worker's claim is older than the stale window (shortened to 1 s here)."""
    with w.store.engine.begin() as conn:
        conn.execute(sa.update(retrains_table).where(retrains_table.c.model == name)
                     .values(updated_at=datetime.now(UTC) - timedelta(minutes=10)))  # fmt: skip
    mp.setattr(retrain, "CLAIM_STALE_AFTER", timedelta(seconds=1))
    time.sleep(1.1)  # and so are the MLflow runs it left


def test_kill_9_in_training_then_after_registering_is_repaired_by_the_next_retrain(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers die in a row on one interval: the first inside its MLflow run, the second (which
    takes the stale claim over) right after MLflow created its version. The third converges."""
    w = world
    contract = w.model("kill")
    name, old = contract.name, {"champion": "1"}
    kill_at(w, "train", name, tmp_path / "train")
    assert row(w, name)["status"] == "running" and aliases(w, name) == old
    (orphan,) = runs(w, name, "RUNNING")
    assert w.run(contract)["status"] == "skipped"  # within the stale window the claim is the dead worker's
    assert runs(w, name, "RUNNING") != []  # and so is its run

    heartbeat_stopped(w, name, monkeypatch)
    kill_at(w, "register", name, tmp_path / "register", stale_seconds=1)
    c = registry.client(w.uri)
    closed = c.get_run(orphan.info.run_id)  # the second worker's recovery closed the first one's run
    assert closed.info.status == "FAILED" and closed.data.tags[recovery.TAG_ORPHANED].startswith("closed")
    assert row(w, name)["status"] == "running" and aliases(w, name) == old
    assert interval_versions(w, name) == ["2"] and runs(w, name, "RUNNING") == []

    heartbeat_stopped(w, name, monkeypatch)
    rerun(w, contract, old=old)
    assert len(runs(w, name, "FINISHED")) == 1  # the second worker's run, reused


def test_kill_9_between_the_alias_writes_of_a_retrain_is_repaired_by_the_next_one(
    world: World, gated: tuple[Path, ModelContract], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap, contract = gated
    w = restore(world, snap, tmp_path / "home", monkeypatch)
    name, old = contract.name, {"champion": "1"}
    kill_at(w, "promote", name, tmp_path / "promote")
    assert aliases(w, name) == {"champion": "2"} and w.store.promotion_intent(name) is not None
    assert row(w, name)["status"] == "running"
    # A retry within the stale window: its recovery completes the move; the claim is still the dead worker's.
    assert w.run(contract)["status"] == "skipped"
    assert aliases(w, name) == {"champion": "2", "previous_champion": "1"} and w.store.promotion_intent(name) is None

    heartbeat_stopped(w, name, monkeypatch)
    rerun(w, contract, old=old)
