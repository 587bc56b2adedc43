"""retraining.registry and retraining.servability against a real MLflow SQLite store in tmp_path."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from driftguard.contract import ModelContract
from driftguard.retraining import registry
from driftguard.retraining.gate import evaluate_gate
from driftguard.retraining.servability import check_servable
from driftguard.store import HistoryStore
from mlflow_support import restored_mlflow_globals

FEATURES = ["x1", "x2"]


@pytest.fixture(scope="module")
def mlflow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One tracking store for the module, with four tiny logged models (runs); tests use their own model names."""
    import mlflow
    import mlflow.sklearn
    from driftguard import mlflow_setup
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 2)), columns=FEATURES)
    y = (X["x1"] + 0.5 * rng.normal(size=200) > 0).astype(int)
    runs = []
    # The runs are logged through MLflow's global tracking URI; the module leaves it as it found it,
    # and each test addresses the store by `uri` only (tests/conftest.py restores globals per test).
    with restored_mlflow_globals():
        mlflow_setup.configure(uri)
        experiment = mlflow_setup.ensure_experiment("registry_tests", uri)
        for c in (0.01, 0.1, 1.0, 10.0, 1.0):
            with mlflow.start_run(experiment_id=experiment) as run:
                mlflow.sklearn.log_model(
                    LogisticRegression(C=c).fit(X, y),
                    name="model",
                    serialization_format="cloudpickle",
                    pip_requirements=["scikit-learn", "cloudpickle"],
                    pyfunc_predict_fn="predict_proba",
                )
            runs.append(run.info.run_id)
    yield {"uri": uri, "runs": runs, "X": X, "y": y.to_numpy(), "root": root}


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    s = HistoryStore(f"sqlite:///{tmp_path / 'history.db'}")
    s.create_all()
    return s


def aliases(uri: str, model: str) -> dict[str, str]:
    return {k: str(v) for k, v in registry.client(uri).get_registered_model(model).aliases.items()}


def register_all(env: dict[str, Any], model: str, n: int = 3) -> list[str]:
    return [
        str(registry.register_candidate(model, r, tracking_uri=env["uri"], tags={}).version) for r in env["runs"][:n]
    ]


def test_register_candidate_is_idempotent(mlflow_env: dict[str, Any]) -> None:
    uri, run = mlflow_env["uri"], mlflow_env["runs"][0]
    first = registry.register_candidate("reg_idem", run, tracking_uri=uri, tags={"driftguard.trigger": "drift"})
    again = registry.register_candidate("reg_idem", run, tracking_uri=uri, tags={"driftguard.trigger": "drift"})
    assert str(first.version) == str(again.version) == "1"
    assert first.tags["driftguard.trigger"] == "drift"
    versions = registry.client(uri).search_model_versions("name = 'reg_idem'")
    assert [str(v.version) for v in versions] == ["1"]
    with pytest.raises(registry.RegistryError, match="reg_idem: cannot register run deadbeef"):
        registry.register_candidate("reg_idem", "deadbeef", tracking_uri=uri, tags={})


def test_promote_moves_champion_and_previous(mlflow_env: dict[str, Any], store: HistoryStore) -> None:
    uri = mlflow_env["uri"]
    v1, v2, _ = register_all(mlflow_env, "reg_promote")
    assert registry.champion_version("reg_promote", tracking_uri=uri) is None
    registry.promote(
        "reg_promote", v1, expected_champion=None, store=store, actor="gate", reason="first", tracking_uri=uri
    )
    assert aliases(uri, "reg_promote") == {"champion": v1}
    registry.mark_challenger("reg_promote", v2, tracking_uri=uri)
    registry.promote(
        "reg_promote", v2, expected_champion=v1, store=store, actor="gate", reason="better", tracking_uri=uri
    )
    assert aliases(uri, "reg_promote") == {"champion": v2, "previous_champion": v1}  # @challenger left v2
    champion = registry.champion_version("reg_promote", tracking_uri=uri)
    assert champion is not None and str(champion.version) == v2 and "driftguard.promoted_at" in champion.tags
    # a retried promote task moves nothing and records nothing twice
    registry.promote(
        "reg_promote", v2, expected_champion=v1, store=store, actor="gate", reason="better", tracking_uri=uri
    )
    history = store.promotions("reg_promote")
    assert [(h["action"], h["version"], h["previous_version"]) for h in history] == [
        ("first_champion", v1, None),
        ("promote", v2, v1),
    ]
    assert history[1]["actor"] == "gate" and history[1]["reason"] == "better"


def test_concurrent_alias_move_refuses_and_moves_nothing(mlflow_env: dict[str, Any], store: HistoryStore) -> None:
    uri = mlflow_env["uri"]
    v1, v2, v3 = register_all(mlflow_env, "reg_race")
    registry.promote(
        "reg_race", v1, expected_champion=None, store=store, actor="gate", reason="first", tracking_uri=uri
    )
    expected = str(registry.champion_version("reg_race", tracking_uri=uri).version)  # what the gate compared with
    registry.client(uri).set_registered_model_alias("reg_race", "champion", v3)  # someone else, meanwhile
    with pytest.raises(registry.ConcurrentPromotionError, match=r"@champion is v3 but the gate compared v2 against v1"):
        registry.promote(
            "reg_race", v2, expected_champion=expected, store=store, actor="gate", reason="x", tracking_uri=uri
        )
    assert aliases(uri, "reg_race") == {"champion": v3}
    assert [h["action"] for h in store.promotions("reg_race")] == ["first_champion"]
    with pytest.raises(registry.ConcurrentPromotionError, match="against no champion"):
        registry.promote(
            "reg_race", v2, expected_champion=None, store=store, actor="gate", reason="x", tracking_uri=uri
        )


def test_rollback_restores_previous_champion(mlflow_env: dict[str, Any], store: HistoryStore) -> None:
    uri = mlflow_env["uri"]
    v1, v2, _ = register_all(mlflow_env, "reg_rollback")
    with pytest.raises(registry.RegistryError, match="reg_rollback: cannot roll back: the model has no @champion"):
        registry.rollback("reg_rollback", store=store, actor="oncall", reason="x", tracking_uri=uri)
    registry.promote(
        "reg_rollback", v1, expected_champion=None, store=store, actor="gate", reason="a", tracking_uri=uri
    )
    registry.promote("reg_rollback", v2, expected_champion=v1, store=store, actor="gate", reason="b", tracking_uri=uri)
    moved = registry.rollback("reg_rollback", store=store, actor="oncall", reason="bad scores", tracking_uri=uri)
    assert moved == (v2, v1)
    assert aliases(uri, "reg_rollback") == {"champion": v1}
    bad = registry.client(uri).get_model_version("reg_rollback", v2)
    assert bad.tags["driftguard.rolled_back"].endswith("by oncall: bad scores")
    last = store.promotions("reg_rollback")[-1]
    assert (last["action"], last["version"], last["previous_version"], last["actor"]) == ("rollback", v1, v2, "oncall")
    with pytest.raises(registry.RegistryError, match="no @previous_champion to return to"):
        registry.rollback("reg_rollback", store=store, actor="oncall", reason="again", tracking_uri=uri)


def test_rollback_refuses_when_previous_champion_is_the_champion(
    mlflow_env: dict[str, Any], store: HistoryStore
) -> None:
    """The state an interrupted alias move of an older Driftguard left: @previous_champion ==
    @champion. Rolling back must change nothing (it used to answer "v2 -> v2", delete
    @previous_champion and tag the live champion rolled_back)."""
    uri = mlflow_env["uri"]
    v1, v2, _ = register_all(mlflow_env, "reg_rollback_same")
    registry.promote("reg_rollback_same", v1, expected_champion=None, store=store, actor="g", reason="a",
                     tracking_uri=uri)  # fmt: skip
    registry.promote("reg_rollback_same", v2, expected_champion=v1, store=store, actor="g", reason="b",
                     tracking_uri=uri)  # fmt: skip
    registry.client(uri).set_registered_model_alias("reg_rollback_same", "previous_champion", v2)
    history = store.promotions("reg_rollback_same")
    with pytest.raises(
        registry.RegistryError,
        match=rf"reg_rollback_same: cannot roll back v{v2}: @previous_champion is v{v2}, the same version as "
        r"@champion .* Nothing was changed. Run `driftguard doctor reg_rollback_same`",
    ):
        registry.rollback("reg_rollback_same", store=store, actor="oncall", reason="x", tracking_uri=uri)
    assert aliases(uri, "reg_rollback_same") == {"champion": v2, "previous_champion": v2}
    assert "driftguard.rolled_back" not in registry.client(uri).get_model_version("reg_rollback_same", v2).tags
    assert store.promotions("reg_rollback_same") == history and store.promotion_intent("reg_rollback_same") is None


def test_mark_challenger_moves_alias(mlflow_env: dict[str, Any]) -> None:
    uri = mlflow_env["uri"]
    _, v2, v3 = register_all(mlflow_env, "reg_challenger")
    registry.mark_challenger("reg_challenger", v2, tracking_uri=uri)
    assert aliases(uri, "reg_challenger") == {"challenger": v2}
    registry.mark_challenger("reg_challenger", v3, tracking_uri=uri)
    assert aliases(uri, "reg_challenger") == {"challenger": v3}


def test_load_champion(mlflow_env: dict[str, Any], store: HistoryStore) -> None:
    uri = mlflow_env["uri"]
    assert registry.load_champion("reg_load_none", tracking_uri=uri) is None  # no such registered model
    (v1,) = register_all(mlflow_env, "reg_load", n=1)
    assert registry.load_champion("reg_load", tracking_uri=uri) is None  # registered, no champion
    registry.promote("reg_load", v1, expected_champion=None, store=store, actor="t", reason="r", tracking_uri=uri)
    loaded = registry.load_champion("reg_load", tracking_uri=uri)
    assert loaded is not None
    model, version = loaded
    proba = np.asarray(model.predict(mlflow_env["X"].head(5)))
    assert version == v1 and proba.shape == (5, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def _verdict(promote: bool):  # a real verdict from the gate on tiny arrays
    contract = ModelContract.model_validate(
        {
            "name": "reg_verdict",
            "task": "binary_classification",
            "owners": ["a@example.com"],
            "start_date": "2024-01-01",
            "source": {"url": "sqlite:///x.db", "table": "log", "timestamp_column": "ts", "id_column": "id"},
            "features": [{"name": "x1", "kind": "numeric"}],
            "promotion": {"floors": {"roc_auc": 0.99 if not promote else 0.5}, "bootstrap": {"samples": 100}},
        }
    )
    from driftguard.retraining.servability import ServabilityResult

    ok = ServabilityResult(True, 0.1, 1.0, None, "models:/reg_verdict/1")
    y = np.array([0, 1] * 50, dtype=float)
    scores = np.clip(0.3 * y + np.linspace(0.1, 0.6, 100), 0, 1)
    return evaluate_gate(contract, y_true=y, champion_scores=None, challenger_scores=scores, servability=ok)


def test_record_verdict_tags_artifact_and_history(mlflow_env: dict[str, Any], store: HistoryStore) -> None:
    uri = mlflow_env["uri"]
    v1, v2 = register_all(mlflow_env, "reg_verdict", n=2)
    rejected = _verdict(promote=False)
    assert not rejected.promote
    reasons = [f"drift_share 0.4 >= 0.3 in segment {i}" for i in range(40)]  # a long trigger: 1,400 chars
    trigger = {"reasons": reasons, "interval": "2013-03-04"}
    fingerprint = {"rows": 100, "sha256": "ab" * 32, "bounds": {"train": {"end": "2013-03-01"}}}
    record = registry.record_verdict(
        "reg_verdict", v2, rejected, trigger=trigger, fingerprint=fingerprint, tracking_uri=uri, store=store
    )
    c = registry.client(uri)
    mv = c.get_model_version("reg_verdict", v2)
    assert mv.tags["driftguard.verdict"] == "reject"
    assert mv.tags["driftguard.reasons"].startswith("first_champion_floors: first champion below floor: roc_auc")
    assert mv.tags["driftguard.trigger"].startswith("drift_share 0.4 >= 0.3 in segment 0; drift_share")
    assert mv.tags["driftguard.data_sha256"] == "ab" * 32
    # Tags are short scalars, never JSON: the whole trigger and fingerprint are in gate/decision.json.
    assert all(len(v) <= 250 for v in mv.tags.values()), {k: len(v) for k, v in mv.tags.items()}
    assert not any(v.lstrip().startswith(("{", "[")) for v in mv.tags.values()), mv.tags
    assert mv.description.startswith("REJECT (first champion): first_champion_floors")
    path = c.download_artifacts(mv.run_id, "gate/decision.json", str(mlflow_env["root"] / "dl"))
    saved = json.loads(Path(path).read_text())
    assert saved["verdict"] == "reject" and saved["version"] == v2 and saved["gate"]["first_champion"] is True
    assert saved["reasons"] == record["reasons"] == rejected.reasons()
    assert saved["trigger"] == trigger and saved["fingerprint"] == fingerprint
    last = store.promotions("reg_verdict")[-1]
    assert (last["action"], last["version"]) == ("reject", v2)
    accepted = _verdict(promote=True)
    registry.record_verdict("reg_verdict", v1, accepted, trigger={}, fingerprint={}, tracking_uri=uri, store=store)
    assert c.get_model_version("reg_verdict", v1).tags["driftguard.reasons"] == "all checks passed"
    assert len(store.promotions("reg_verdict")) == 1  # promotions are recorded by promote(), not here


def test_reasons_tag_is_truncated() -> None:
    text = registry._truncate("x" * 5000)
    assert len(text) == registry.MAX_TAG_CHARS == 250 and text.endswith("… (full text in gate/decision.json)")


def test_registered_model_description_is_set_once(mlflow_env: dict[str, Any]) -> None:
    uri, runs = mlflow_env["uri"], mlflow_env["runs"]
    text = registry.model_description("reg_desc", "Flight delay risk at booking.", ["ops@example.com"])
    registry.register_candidate("reg_desc", runs[0], tracking_uri=uri, description=text)
    c = registry.client(uri)
    described = c.get_registered_model("reg_desc").description
    assert described.startswith("Flight delay risk at booking.\n\nOwners: ops@example.com.")
    assert "Managed by Driftguard" in described and "@champion" in described
    assert "driftguard_rollback__reg_desc" in described
    c.update_registered_model("reg_desc", description="edited by a person")  # kept: set once, not overwritten
    registry.register_candidate("reg_desc", runs[1], tracking_uri=uri, description=text)
    assert c.get_registered_model("reg_desc").description == "edited by a person"
    assert registry.experiment_of(runs[0], tracking_uri=uri) == c.get_run(runs[0]).info.experiment_id
    assert registry.experiment_of("deadbeef", tracking_uri=uri) is None


def test_servability_ok_and_broken_artifact_rejected(mlflow_env: dict[str, Any]) -> None:
    uri, X = mlflow_env["uri"], mlflow_env["X"]
    v1, v2 = register_all(mlflow_env, "reg_serve", n=2)
    ok = check_servable(
        f"models:/reg_serve/{v2}", X.head(100), tracking_uri=uri, champion_uri=f"models:/reg_serve/{v1}"
    )
    assert ok.ok, ok.error
    assert ok.error is None and ok.load_seconds is not None and ok.ms_per_1k_rows is not None
    assert ok.champion_ms_per_1k_rows is not None and ok.champion_error is None and ok.rows == 100

    # a dedicated run whose pickled model is then deleted from the artifact store
    broken_run = mlflow_env["runs"][4]
    mv = registry.register_candidate("reg_serve_broken", broken_run, tracking_uri=uri, tags={})
    model_id = mv.source.removeprefix("models:/")
    location = registry.client(uri).get_logged_model(model_id).artifact_location
    pkl = Path(location.removeprefix("file://")) / "model.pkl"
    pkl.unlink()
    broken_uri = f"models:/reg_serve_broken/{mv.version}"
    bad = check_servable(broken_uri, X.head(100), tracking_uri=uri)
    assert not bad.ok
    assert bad.error is not None and "fresh process failed (exit 1)" in bad.error and "model.pkl" in bad.error

    # a champion that no longer loads only loses its timing: the challenger is on trial
    no_champion = check_servable(f"models:/reg_serve/{v2}", X.head(100), tracking_uri=uri, champion_uri=broken_uri)
    assert no_champion.ok and no_champion.champion_ms_per_1k_rows is None and no_champion.ratio is None
    assert "model.pkl" in (no_champion.champion_error or "")

    contract = ModelContract.model_validate(
        {
            "name": "reg_serve_broken",
            "task": "binary_classification",
            "owners": ["a@example.com"],
            "start_date": "2024-01-01",
            "source": {"url": "sqlite:///x.db", "table": "log", "timestamp_column": "ts", "id_column": "id"},
            "features": [{"name": "x1", "kind": "numeric"}],
        }
    )
    y = mlflow_env["y"].astype(float)
    # the caller has no scores for a model that does not load: the gate needs none
    verdict = evaluate_gate(contract, y_true=y, champion_scores=None, challenger_scores=None, servability=bad)
    assert not verdict.promote
    assert [c.name for c in verdict.checks] == ["loads_and_scores"]
    detail = verdict.check("loads_and_scores").detail
    assert detail.startswith(f"{broken_uri} does not load or score in a fresh process: ") and "model.pkl" in detail


def test_servability_parses_the_child_line_and_empty_sample(mlflow_env: dict[str, Any]) -> None:
    """The child's real JSON line format (a real fresh process is exercised above): times are
    CPU time scaled to 1,000 rows; latency is the gate's to judge, not the parser's."""
    import subprocess

    from driftguard.retraining.servability import _MARKER, _parse

    line = _MARKER + json.dumps(
        {"rows": 100, "load_seconds": 0.5, "predict_seconds": 0.3, "wall_predict_seconds": 0.9, "repeats": 15,
         "champion_load_seconds": 0.1, "champion_predict_seconds": 0.1, "champion_wall_predict_seconds": 0.3}
    )  # fmt: skip
    done = subprocess.CompletedProcess(args=[], returncode=0, stdout=f"noise\n{line}\n", stderr="")
    slow = _parse("models:/m/2", done, champion_uri="models:/m/1")
    assert slow.ok and slow.error is None and slow.load_seconds == 0.5 and slow.repeats == 15
    assert slow.ms_per_1k_rows == pytest.approx(3000.0) and slow.wall_ms_per_1k_rows == pytest.approx(9000.0)
    assert slow.champion_ms_per_1k_rows == pytest.approx(1000.0) and slow.ratio == pytest.approx(3.0)
    crashed = subprocess.CompletedProcess(
        args=[], returncode=1, stdout="", stderr="Traceback\nImportError: no sklearn\n"
    )
    err = _parse("models:/m/1", crashed)
    assert not err.ok and err.error.endswith("Traceback\nImportError: no sklearn")
    empty = check_servable("models:/m/1", mlflow_env["X"].head(0), tracking_uri=mlflow_env["uri"])
    assert not empty.ok and empty.error == "servability sample has no rows"


def test_cli_rollback_restores_previous_champion_and_records_it(
    mlflow_env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from driftguard.cli import main

    uri = mlflow_env["uri"]
    history = f"sqlite:///{tmp_path / 'history.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("DRIFTGUARD_HISTORY_URL", history)
    cli_store = HistoryStore(history)
    v1, v2, _ = register_all(mlflow_env, "reg_cli_rollback")
    assert main(["rollback", "reg_cli_rollback", "--reason", "no champion yet"]) == 1
    assert "has no @champion" in capsys.readouterr().err
    registry.promote(
        "reg_cli_rollback", v1, expected_champion=None, store=cli_store, actor="g", reason="a", tracking_uri=uri
    )
    registry.promote(
        "reg_cli_rollback", v2, expected_champion=v1, store=cli_store, actor="g", reason="b", tracking_uri=uri
    )

    assert main(["rollback", "reg_cli_rollback", "--reason", "alerts on v2", "--actor", "oncall"]) == 0

    assert f"@champion v{v2} -> v{v1}" in capsys.readouterr().out
    assert aliases(uri, "reg_cli_rollback") == {"champion": v1}
    last = cli_store.promotions("reg_cli_rollback")[-1]
    assert (last["action"], last["actor"], last["reason"]) == ("rollback", "oncall", "alerts on v2")


def test_cli_rollback_refuses_without_a_distinct_previous_champion(
    mlflow_env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from driftguard.cli import main

    uri = mlflow_env["uri"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("DRIFTGUARD_HISTORY_URL", f"sqlite:///{tmp_path / 'history.db'}")
    (v1,) = register_all(mlflow_env, "reg_cli_same", n=1)
    registry.client(uri).set_registered_model_alias("reg_cli_same", "champion", v1)
    registry.client(uri).set_registered_model_alias("reg_cli_same", "previous_champion", v1)
    assert main(["rollback", "reg_cli_same", "--reason", "alerts"]) == 1
    err = capsys.readouterr().err
    assert f"rollback failed: reg_cli_same: cannot roll back v{v1}: @previous_champion is v{v1}" in err
    assert aliases(uri, "reg_cli_same") == {"champion": v1, "previous_champion": v1}


def test_mlflow_globals_are_put_back_after_a_test(mlflow_env: dict[str, Any], tmp_path: Path) -> None:
    """What tests/conftest.py wraps every test in: a configured URI, an open run and MLFLOW_* variables
    set inside do not outlive it (they once sent a later test's store to ./mlflow.db)."""
    import mlflow
    from driftguard import mlflow_setup
    from mlflow.tracking._tracking_service import utils as tracking_utils

    before_uri, before_env = tracking_utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    uri = f"sqlite:///{tmp_path / 'other.db'}"
    with restored_mlflow_globals():
        mlflow_setup.configure(uri)
        mlflow.set_registry_uri(uri)
        os.environ["MLFLOW_EXPERIMENT_NAME"] = "leak"
        mlflow.start_run(experiment_id=mlflow_setup.ensure_experiment("leaky", uri))
        assert mlflow.get_tracking_uri() == uri and os.environ["MLFLOW_TRACKING_URI"] == uri
    assert mlflow.active_run() is None
    assert (tracking_utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")) == (before_uri, before_env)
    assert "MLFLOW_EXPERIMENT_NAME" not in os.environ and os.environ.get("MLFLOW_REGISTRY_URI") != uri
