"""driftguard.retraining.reference and driftguard.mlflow_setup against a real MLflow store (SQLite + local
artifacts), real candidates trained by driftguard.retraining.training, and real local HTTP endpoints."""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from driftguard import mlflow_setup
from driftguard.contract import ModelContract
from driftguard.mlflow_setup import MlflowUnavailable
from driftguard.retraining import reference, training
from driftguard.retraining.reference import SCORE_COLUMN, TS_COLUMN, Reference, ReferenceError
from driftguard.retraining.training import Candidate
from driftguard.statistics.profile import profile_frame
from mlflow import MlflowClient
from training_support import (
    AS_OF,
    FEATURES,
    LABEL,
    T0,
    make_contract,
    restore_mlflow_globals,  # noqa: F401 (autouse fixture)
    seeded_log,
    tracking,
)

TASKS = ["binary_classification", "regression"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reference")


@pytest.fixture(scope="module")
def logs(workdir: Path) -> dict[str, str]:
    return {task: seeded_log(workdir, task) for task in TASKS}


@pytest.fixture(scope="module")
def contracts(logs: dict[str, str]) -> dict[str, ModelContract]:
    return {task: make_contract(task, logs[task]) for task in TASKS}


@pytest.fixture(scope="module")
def trained(workdir: Path, contracts: dict[str, ModelContract]) -> dict[str, tuple[training.TrainingData, Candidate]]:
    out = {}
    for task in TASKS:
        data = training.load_training_data(contracts[task], as_of=AS_OF)
        out[task] = (data, training.train_candidate(contracts[task], data, tracking_uri=tracking(workdir)))
    return out


def register_champion(uri: str, name: str, run_id: str) -> str:
    """What the registry step will do: a new model version from the run, aliased champion."""
    client = MlflowClient(uri)
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    return str(version.version)


@pytest.fixture(scope="module")
def champions(workdir: Path, trained: dict[str, tuple[training.TrainingData, Candidate]]) -> dict[str, str]:
    uri = tracking(workdir)
    names = {"binary_classification": "toy_binary", "regression": "toy_regression"}
    return {task: register_champion(uri, names[task], trained[task][1].run_id) for task in TASKS}


def bare_run(uri: str, contract: ModelContract, files: dict[str, str | bytes], tmp: Path) -> str:
    """A run in the model's experiment holding exactly `files` (path -> content)."""
    client = MlflowClient(uri)
    experiment_id = mlflow_setup.ensure_experiment(contract.name, uri)
    run = client.create_run(experiment_id)
    for rel, content in files.items():
        path = tmp / run.info.run_id / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    if files:
        client.log_artifacts(run.info.run_id, str(tmp / run.info.run_id))
    client.set_terminated(run.info.run_id)
    return run.info.run_id


# --------------------------------------------------------------------------- champion


@pytest.mark.parametrize("task", TASKS)
def test_champion_reference_reads_the_runs_artifacts(
    task: str,
    workdir: Path,
    contracts: dict[str, ModelContract],
    trained: dict[str, tuple[training.TrainingData, Candidate]],
    champions: dict[str, str],
) -> None:
    contract = contracts[task]
    data, candidate = trained[task]
    ref = reference.champion_reference(contract, tracking_uri=tracking(workdir))
    assert isinstance(ref, Reference)
    assert ref.source == f"champion v{champions[task]} (run {candidate.run_id})"
    assert (ref.model_version, ref.run_id) == (champions[task], candidate.run_id)
    run = MlflowClient(tracking(workdir)).get_run(candidate.run_id)
    # Model age is data time: the training cut-off (as_of), not when the run happened.
    assert ref.trained_at == datetime.fromisoformat(data.fingerprint["as_of"])
    assert ref.trained_at != datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC)
    assert ref.feature_importance == tuple(candidate.feature_importance)
    assert ref.important_features(2) == list(candidate.feature_importance)[:2]
    assert ref.validation_metrics == pytest.approx(candidate.metrics["holdout"])

    window = pd.concat([data.split.train, data.split.validation, data.split.holdout], ignore_index=True)
    sample = ref.sample
    assert list(sample.columns) == [*FEATURES, LABEL, SCORE_COLUMN, TS_COLUMN]
    assert len(sample) == contract.reference.sample_size < len(window)  # the training window, sampled
    assert set(sample["num_0"]) <= set(window["num_0"]) and sample[TS_COLUMN].is_monotonic_increasing
    # The drift thresholds were calibrated once, at training, and come with the version.
    from driftguard.statistics.calibration import Calibration, settings_key

    calibration = Calibration.from_dict(ref.calibration)
    assert calibration.settings == settings_key(contract) and set(calibration.features) == set(FEATURES)
    assert sample["num_0"].dtype == np.float64 and sample[SCORE_COLUMN].dtype == np.float64
    assert sample["cat_b"].dtype == object
    missing = sample["cat_b"][sample["cat_b"].isna()]
    assert len(missing) > 0 and all(v is np.nan or (isinstance(v, float) and np.isnan(v)) for v in missing)
    assert sample[LABEL].dtype == (np.int64 if task == "binary_classification" else np.float64)
    assert ref.has_score
    assert ref.profile == json.loads(json.dumps(profile_frame(window, contract)))


def test_no_champion_means_none_and_load_reference_falls_back(
    workdir: Path, logs: dict[str, str], trained: dict[str, tuple[training.TrainingData, Candidate]]
) -> None:
    uri = tracking(workdir)
    fresh = make_contract("binary_classification", logs["binary_classification"], name="never_registered")
    assert reference.champion_reference(fresh, tracking_uri=uri) is None
    MlflowClient(uri).create_registered_model("registered_no_alias")
    no_alias = make_contract("binary_classification", logs["binary_classification"], name="registered_no_alias")
    assert reference.champion_reference(no_alias, tracking_uri=uri) is None
    ref = reference.load_reference(no_alias, tracking_uri=uri)
    assert ref.source == "bootstrap window 2024-01-01..2024-01-15"


def test_load_reference_prefers_the_champion(
    workdir: Path, contracts: dict[str, ModelContract], champions: dict[str, str]
) -> None:
    ref = reference.load_reference(contracts["binary_classification"], tracking_uri=tracking(workdir))
    assert ref.source.startswith(f"champion v{champions['binary_classification']} (run ")


def test_missing_artifacts_name_model_version_and_run(
    workdir: Path, logs: dict[str, str], tmp_path: Path, trained: dict[str, tuple[training.TrainingData, Candidate]]
) -> None:
    uri = tracking(workdir)
    contract = make_contract("binary_classification", logs["binary_classification"], name="no_reference")
    run_id = bare_run(uri, contract, {}, tmp_path)
    version = register_champion(uri, contract.name, run_id)
    with pytest.raises(
        ReferenceError,
        match=rf"model 'no_reference' champion version {version} \(run {run_id}\): reference artifacts missing",
    ):
        reference.champion_reference(contract, tracking_uri=uri)
    with pytest.raises(ReferenceError, match="retrain the model"):
        reference.load_reference(contract, tracking_uri=uri)  # never silently falls back to the bootstrap

    partial = make_contract("binary_classification", logs["binary_classification"], name="partial_reference")
    run_id = bare_run(uri, partial, {"reference/profile.json": "{}"}, tmp_path)
    version = register_champion(uri, partial.name, run_id)
    with pytest.raises(
        ReferenceError,
        match=rf"'partial_reference' champion version {version} \(run {run_id}\): reference artifacts missing: "
        r"\['reference/sample.parquet', 'reference/importance.json', 'reference/metrics.json'\]",
    ):
        reference.champion_reference(partial, tracking_uri=uri)


def test_missing_artifacts_fail_the_task_an_unreachable_store_retries_it(
    workdir: Path, logs: dict[str, str], trained: dict[str, tuple[training.TrainingData, Candidate]]
) -> None:
    """A ReferenceError fails the DAG task at once (a data error: retrying cannot recreate the
    artifacts); a champion whose artifacts sit on a store that does not answer is not one: that
    error propagates as a transient one, and Airflow retries the task."""
    from driftguard.airflow.dag_defaults import is_data_error
    from driftguard.mlflow_setup import is_transient

    assert is_data_error(ReferenceError("model 'm': reference artifacts missing"))
    uri = tracking(workdir)
    contract = make_contract("binary_classification", logs["binary_classification"], name="dead_artifact_store")
    client = MlflowClient(uri)
    dead = f"http://127.0.0.1:{_free_port()}/api/2.0/mlflow-artifacts/artifacts"
    experiment = client.create_experiment(mlflow_setup.experiment_name(contract.name), artifact_location=dead)
    run = client.create_run(experiment)
    client.set_terminated(run.info.run_id)
    register_champion(uri, contract.name, run.info.run_id)
    with pytest.raises(Exception) as raised:
        reference.champion_reference(contract, tracking_uri=uri)
    assert not isinstance(raised.value, ReferenceError), raised.value
    assert is_transient(raised.value) and not is_data_error(raised.value)


def test_corrupt_artifacts_are_reported(
    workdir: Path, logs: dict[str, str], tmp_path: Path, trained: dict[str, tuple[training.TrainingData, Candidate]]
) -> None:
    uri = tracking(workdir)
    contract = make_contract("binary_classification", logs["binary_classification"], name="corrupt_reference")
    good = {f: "{}" for f in ("reference/profile.json", "reference/importance.json", "reference/metrics.json")}
    run_id = bare_run(uri, contract, {**good, "reference/sample.parquet": b"not parquet"}, tmp_path)
    register_champion(uri, contract.name, run_id)
    with pytest.raises(ReferenceError, match=r"'corrupt_reference' .*reference/sample.parquet is unreadable"):
        reference.champion_reference(contract, tracking_uri=uri)

    frame = pd.DataFrame({f: [1.0] for f in FEATURES})
    buf = tmp_path / "ok.parquet"
    frame.to_parquet(buf)
    run_id = bare_run(
        uri,
        contract,
        {**good, "reference/sample.parquet": buf.read_bytes(), "reference/metrics.json": "{oops"},
        tmp_path,
    )
    register_champion(uri, contract.name, run_id)
    with pytest.raises(ReferenceError, match=rf"\(run {run_id}\): reference/metrics.json is not valid JSON"):
        reference.champion_reference(contract, tracking_uri=uri)

    frame.drop(columns=["cat_b"]).to_parquet(buf)
    run_id = bare_run(uri, contract, {**good, "reference/sample.parquet": buf.read_bytes()}, tmp_path)
    register_champion(uri, contract.name, run_id)
    with pytest.raises(ReferenceError, match=r"lacks features \['cat_b'\] \(the contract changed"):
        reference.champion_reference(contract, tracking_uri=uri)


def test_log_reference_needs_an_active_run(contracts: dict[str, ModelContract]) -> None:
    frame = pd.DataFrame({f: [1.0] for f in FEATURES})
    with pytest.raises(ReferenceError, match="'toy_binary': log_reference needs an active MLflow run"):
        reference.log_reference(frame, contracts["binary_classification"], importance={}, metrics={})


# --------------------------------------------------------------------------- bootstrap


@pytest.mark.parametrize("task", TASKS)
def test_bootstrap_reference_uses_the_configured_window(task: str, contracts: dict[str, ModelContract]) -> None:
    contract = contracts[task]
    ref = reference.bootstrap_reference(contract)
    assert ref.source == "bootstrap window 2024-01-01..2024-01-15"
    assert (ref.model_version, ref.run_id, ref.trained_at, ref.feature_importance) == (None, None, None, ())
    assert len(ref.sample) == 14 * 50 and ref.profile["rows"] == 700
    assert list(ref.sample.columns) == [*FEATURES, LABEL, SCORE_COLUMN, TS_COLUMN]
    assert ref.sample[LABEL].notna().all()  # labels matured long ago
    assert ref.has_score
    expected = {"binary_classification": {"roc_auc", "log_loss", "f1", "brier", "accuracy", "precision", "recall"}}
    assert set(ref.validation_metrics) == expected.get(task, {"mae", "rmse", "r2"})
    if task == "binary_classification":
        assert 0.6 < ref.validation_metrics["roc_auc"] < 1.0  # the logged score follows the label rule


def test_bootstrap_sample_is_bounded_seeded_and_time_ordered(logs: dict[str, str]) -> None:
    contract = make_contract(
        "binary_classification",
        logs["binary_classification"],
        reference={"start": "2024-01-01", "end": "2024-02-01", "sample_size": 1000},
    )
    first = reference.bootstrap_reference(contract)
    again = reference.bootstrap_reference(contract)
    assert len(first.sample) == 1000 and first.profile["rows"] == 31 * 50
    pd.testing.assert_frame_equal(first.sample, again.sample)


def test_sampled_bootstrap_reads_the_labels_of_its_sample(logs: dict[str, str]) -> None:
    """A bootstrap window above source.sample_rows is sampled in the database, and only the
    sampled ids' labels are read: every sampled row still finds its (long matured) label."""
    full = make_contract(
        "binary_classification", logs["binary_classification"], reference={"start": "2024-01-01", "end": "2024-02-01"}
    )
    # Below the contract's minimums (10,000 / 1,000 rows), so that this small log is sampled.
    contract = full.model_copy(
        update={
            "source": full.source.model_copy(update={"sample_rows": 300}),
            "reference": full.reference.model_copy(update={"sample_size": 300}),
        }
    )
    ref = reference.bootstrap_reference(contract)
    assert ref.profile["rows"] == 31 * 50 and 0.8 * 300 < ref.profile["sampled_rows"] < 1.2 * 300
    assert ref.sample[LABEL].notna().all()
    assert 0.6 < ref.validation_metrics["roc_auc"] < 1.0


def test_bootstrap_before_labels_mature(logs: dict[str, str]) -> None:
    contract = make_contract("binary_classification", logs["binary_classification"])
    ref = reference.bootstrap_reference(contract, as_of=T0 + timedelta(days=3))
    labelled = ref.sample[LABEL].notna()
    assert 0 < labelled.sum() < len(ref.sample)  # only the first two days have matured labels
    assert ref.sample[LABEL].dtype == np.float64
    assert "roc_auc" in ref.validation_metrics


def test_bootstrap_errors(logs: dict[str, str]) -> None:
    url = logs["binary_classification"]
    unset = make_contract("binary_classification", url, reference={"start": None, "end": None})
    with pytest.raises(ReferenceError, match=r"'toy_binary' has no champion and no bootstrap window: set reference"):
        reference.bootstrap_reference(unset)
    empty = make_contract("binary_classification", url, reference={"start": "2025-01-01", "end": "2025-02-01"})
    with pytest.raises(ReferenceError, match=r"bootstrap window 2025-01-01..2025-02-01 .* has no rows"):
        reference.bootstrap_reference(empty)


# --------------------------------------------------------------------------- mlflow_setup


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_server() -> Iterator[tuple[str, dict[str, int]]]:
    """A local HTTP endpoint whose /health status the test chooses."""
    state = {"status": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(state["status"] if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()
    server.server_close()


def test_dead_server_is_a_fast_clear_error(
    monkeypatch: pytest.MonkeyPatch, contracts: dict[str, ModelContract]
) -> None:
    for key in mlflow_setup.HTTP_ENV_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    dead = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(MlflowUnavailable, match=rf"MLflow tracking server {dead} is unreachable .*Connection refused"):
        mlflow_setup.configure(dead)
    assert {k: os.environ[k] for k in mlflow_setup.HTTP_ENV_DEFAULTS} == mlflow_setup.HTTP_ENV_DEFAULTS
    with pytest.raises(MlflowUnavailable, match=rf"{dead} is unreachable"):
        reference.champion_reference(contracts["binary_classification"], tracking_uri=dead)
    with pytest.raises(MlflowUnavailable, match=rf"{dead} is unreachable"):
        reference.load_reference(contracts["binary_classification"], tracking_uri=dead)


def test_http_health_check(http_server: tuple[str, dict[str, int]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, state = http_server
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")  # an operator's choice is kept
    assert mlflow_setup.configure(url) == url
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "7"
    state["status"] = 403
    with pytest.raises(MlflowUnavailable, match=rf"{url} answered HTTP 403 on /health.*--allowed-hosts"):
        mlflow_setup.configure(url)


def test_sqlite_paths_and_artifact_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRIFTGUARD_MLFLOW_ARTIFACTS", raising=False)
    uri = f"sqlite:///{tmp_path}/deep/er/mlflow.db"
    assert mlflow_setup.sqlite_path(uri) == tmp_path / "deep/er/mlflow.db"
    assert mlflow_setup.sqlite_path("sqlite:///relative.db") == Path("relative.db")
    assert mlflow_setup.sqlite_path("http://x") is None
    assert mlflow_setup.configure(uri) == uri
    assert (tmp_path / "deep/er/mlartifacts").is_dir()
    experiment_id = mlflow_setup.ensure_experiment("some_model", uri)
    assert mlflow_setup.ensure_experiment("some_model", uri) == experiment_id  # idempotent
    experiment = MlflowClient(uri).get_experiment(experiment_id)
    assert experiment.name == "driftguard/some_model"
    assert experiment.artifact_location == (tmp_path / "deep/er/mlartifacts/driftguard_some_model").as_uri()

    monkeypatch.setenv("DRIFTGUARD_MLFLOW_ARTIFACTS", str(tmp_path / "elsewhere"))
    assert mlflow_setup.artifacts_dir(uri) == tmp_path / "elsewhere"
