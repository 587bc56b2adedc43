"""What monitoring compares against: the champion's reference, else a bootstrap window.

A model is only as comparable as the data it was validated on, so every trained candidate
carries its reference as run artifacts (`reference/sample.parquet`, `profile.json`,
`importance.json`, `metrics.json`). When the candidate becomes champion, drift, quality and
the retrain policy switch to its reference with no extra step. Before any champion exists,
the contract's `reference.start/end` window of the feature log stands in.
"""

from __future__ import annotations

import json
import logging
import posixpath
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftguard.contract import FeatureKind, ModelContract, Task

log = logging.getLogger(__name__)

SCORE_COLUMN = "__score__"
TS_COLUMN = "__ts__"  # the reference rows' event times: drift thresholds are calibrated on time chunks
ARTIFACT_DIR = "reference"
CHAMPION_ALIAS = "champion"
FILES = ("sample.parquet", "profile.json", "importance.json", "metrics.json")
CALIBRATION_FILE = "calibration.json"  # optional: versions trained before it are calibrated at run time
ESTIMATOR_FILE = "estimator.json"  # optional: label-free performance estimator (driftguard.statistics.estimation)


class ReferenceError(ValueError):
    """No usable reference: the message names the model (and version/run, or the window).

    A ValueError, so a DAG task fails at once (``dag_defaults.is_data_error``): missing or damaged
    artifacts, a contract the champion's reference no longer matches, or no bootstrap window do
    not fix themselves on a retry. A store that cannot be reached is never one: that error
    propagates as raised and the task is retried."""


@dataclass(frozen=True)
class Reference:
    """Features (+ label when known, + `__score__` when a model score exists) and their profile.

    validation_metrics: the out-of-time holdout metrics of the champion (what it is expected to
    reach on fresh data), or the logged model's realized metrics on the bootstrap window."""

    sample: pd.DataFrame
    profile: dict[str, Any]
    feature_importance: tuple[str, ...]
    validation_metrics: dict[str, float]
    source: str
    model_version: str | None = None
    run_id: str | None = None
    trained_at: datetime | None = None
    importance: dict[str, float] = field(default_factory=dict)  # permutation importance on the holdout
    training_rows: int | None = None  # rows the champion was fitted on (its run's data.rows.train)
    calibration: dict[str, Any] | None = None  # drift thresholds logged with it (calibration.Calibration)
    estimator: bytes | None = None  # estimation.Estimator.to_bytes(): CBPE/DLE fitted on its holdout
    metric_baseline: float | None = None  # pre-change level carried over (tag driftguard.metric_baseline)
    change_point: str | None = None  # the change its training was told of (tag driftguard.change_point)
    window_start: str | None = None  # where its training data began (tag driftguard.window_start)
    window_rows: int | None = None  # labelled rows of its whole training window (train+validation+holdout)

    @property
    def has_score(self) -> bool:
        return SCORE_COLUMN in self.sample.columns and bool(self.sample[SCORE_COLUMN].notna().any())

    def important_features(self, k: int) -> list[str]:
        return list(self.feature_importance[:k])


def _label(contract: ModelContract) -> str | None:
    return contract.source.labels.column if contract.source.labels else None


def reference_columns(contract: ModelContract) -> list[str]:
    label = _label(contract)
    return [*contract.feature_names, *([label] if label else []), SCORE_COLUMN, TS_COLUMN]


def with_times(frame: pd.DataFrame, contract: ModelContract) -> pd.DataFrame:
    """The frame with its event times as TS_COLUMN (kept through `canonical`), when it has them."""
    ts = contract.source.timestamp_column
    if ts in frame.columns and TS_COLUMN not in frame.columns:
        frame = frame.assign(**{TS_COLUMN: pd.to_datetime(frame[ts], utc=True, errors="coerce")})
    return frame


def canonical(frame: pd.DataFrame, contract: ModelContract) -> pd.DataFrame:
    """Reference columns in contract order with the dtypes sources produces (parquet returns None
    for missing strings; quality and drift expect np.nan)."""
    cols = [c for c in reference_columns(contract) if c in frame.columns]
    out = frame[cols].copy()
    for feature in contract.features:
        col = out[feature.name]
        if feature.kind is FeatureKind.numeric:
            out[feature.name] = pd.to_numeric(col, errors="coerce").astype("float64")
        else:
            out[feature.name] = col.astype(object).where(col.notna(), np.nan)
    label = _label(contract)
    if label and label in out.columns:
        if contract.task is Task.binary_classification and not out[label].isna().any():
            out[label] = out[label].astype("int64")
        else:
            out[label] = out[label].astype("float64")
    if SCORE_COLUMN in out.columns:
        out[SCORE_COLUMN] = out[SCORE_COLUMN].astype("float64")
    return out.reset_index(drop=True)


def sample_frame(frame: pd.DataFrame, contract: ModelContract) -> pd.DataFrame:
    """At most reference.sample_size rows, seeded by training.seed; original (time) order kept."""
    n = contract.reference.sample_size
    if len(frame) > n:
        frame = frame.sample(n=n, random_state=contract.training.seed).sort_index()
    return frame


def _calibrate(stored: pd.DataFrame, contract: ModelContract) -> Any:
    """Drift thresholds for this reference, logged with it: calibration costs once per version."""
    from driftguard.statistics.calibration import calibrate_for

    ts = stored[TS_COLUMN] if TS_COLUMN in stored.columns else None
    cal = calibrate_for(contract, stored, timestamps=ts, seed=contract.training.seed)
    log.info("%s: drift thresholds calibrated on %s (%s)", contract.name, f"{len(stored):,} rows", cal.source)
    return cal


def _read_calibration(directory: Path) -> dict[str, Any] | None:
    """The version's calibration.json, or None (versions trained before it existed, or unreadable)."""
    path = directory / ARTIFACT_DIR / CALIBRATION_FILE
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _importance_values(raw: Any) -> dict[str, float]:
    """{feature: importance} from importance.json, finite numbers only (older artifacts: {})."""
    if not isinstance(raw, dict):
        return {}
    out = {}
    for k, v in raw.items():
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if np.isfinite(x):
            out[str(k)] = x
    return out


def _ranked(importance: dict[str, float]) -> list[str]:
    return [k for k, _ in sorted(importance.items(), key=lambda kv: (-kv[1], kv[0]))]


def fit_estimator(frame: pd.DataFrame, contract: ModelContract) -> bytes | None:
    """CBPE (binary) or DLE (regression) for the primary metric, fitted on scored, labelled rows
    (the champion's holdout, or the bootstrap window's logged predictions); None, logged, when the
    metric is not estimable or the rows are too few."""
    from driftguard.statistics import estimation

    label = _label(contract)
    metric = contract.primary_metric
    if not label or label not in frame.columns or SCORE_COLUMN not in frame.columns:
        return None
    if metric not in estimation.supported_metrics(contract.task):
        log.info("%s: %s cannot be estimated without labels; no estimator", contract.name, metric)
        return None
    scored = frame[frame[label].notna() & frame[SCORE_COLUMN].notna()]
    try:
        estimator = estimation.fit_estimator(
            contract.task,
            scored,
            score_column=SCORE_COLUMN,
            label_column=label,
            metric=metric,
            features=contract.feature_names,
            categorical=[f.name for f in contract.features if f.kind is FeatureKind.categorical],
            decision_threshold=contract.decision_threshold,
            seed=contract.training.seed,
        )
    except ValueError as exc:  # e.g. fewer than 100 scored, labelled rows
        log.warning("%s: no label-free %s estimator: %s", contract.name, metric, exc)
        return None
    return estimator.to_bytes()


def log_reference(
    sample: pd.DataFrame,
    contract: ModelContract,
    *,
    importance: dict[str, float],
    metrics: dict[str, float],
    estimator: bytes | None = None,
) -> None:
    """Write the reference artifacts into the active MLflow run. The profile describes all rows
    given; the stored sample is bounded by reference.sample_size."""
    import mlflow

    from driftguard.statistics.profile import profile_frame

    run = mlflow.active_run()
    if run is None:
        raise ReferenceError(f"model {contract.name!r}: log_reference needs an active MLflow run")
    missing = [f for f in contract.feature_names if f not in sample.columns]
    if missing:
        raise ReferenceError(f"model {contract.name!r}: reference sample lacks feature columns {missing}")
    frame = canonical(sample, contract)
    profile = profile_frame(frame, contract)
    stored = sample_frame(frame, contract)
    calibration = _calibrate(stored, contract)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        stored.to_parquet(d / "sample.parquet", index=False)
        (d / "profile.json").write_text(json.dumps(profile, indent=1))
        (d / "importance.json").write_text(
            json.dumps({"method": "permutation", "ranked": _ranked(importance), "importance": importance}, indent=1)
        )
        (d / "metrics.json").write_text(json.dumps({k: float(v) for k, v in metrics.items()}, indent=1))
        (d / CALIBRATION_FILE).write_text(json.dumps(calibration.to_dict(), indent=1))
        if estimator is not None:
            (d / ESTIMATOR_FILE).write_bytes(estimator)
        mlflow.log_artifacts(str(d), artifact_path=ARTIFACT_DIR)
    log.info(
        "%s: reference logged to run %s: %d of %d rows sampled, score %s",
        contract.name,
        run.info.run_id,
        len(stored),
        len(frame),
        "included" if SCORE_COLUMN in stored.columns else "absent",
    )


# --------------------------------------------------------------------------- champion


def _champion_version(client: Any, contract: ModelContract) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(contract.registered_model_name, CHAMPION_ALIAS)
    except MlflowException as exc:
        # no registered model: RESOURCE_DOES_NOT_EXIST; model without the alias: INVALID_PARAMETER_VALUE "not found"
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or (
            exc.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc)
        ):
            return None
        raise


def _read_artifacts(directory: Path, contract: ModelContract, where: str) -> tuple[pd.DataFrame, dict, dict, dict]:
    base = directory / ARTIFACT_DIR
    absent = [f"{ARTIFACT_DIR}/{f}" for f in FILES if not (base / f).is_file()]
    if absent:
        raise ReferenceError(f"{where}: reference artifacts missing: {absent}; retrain the model to recreate them")
    try:
        sample = pd.read_parquet(base / "sample.parquet")
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ReferenceError(f"{where}: {ARTIFACT_DIR}/sample.parquet is unreadable: {exc}") from None
    parsed: list[dict] = []
    for name in FILES[1:]:
        try:
            value = json.loads((base / name).read_text())
        except (OSError, ValueError) as exc:
            raise ReferenceError(f"{where}: {ARTIFACT_DIR}/{name} is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ReferenceError(f"{where}: {ARTIFACT_DIR}/{name} must hold a JSON object")
        parsed.append(value)
    missing = [f for f in contract.feature_names if f not in sample.columns]
    if missing:
        raise ReferenceError(
            f"{where}: {ARTIFACT_DIR}/sample.parquet lacks features {missing} (the contract changed since this "
            "model was trained); retrain so the champion's reference matches the contract"
        )
    return sample, parsed[0], parsed[1], parsed[2]


def champion_reference(contract: ModelContract, *, tracking_uri: str | None = None) -> Reference | None:
    """The @champion version's reference artifacts; None when the model has no champion yet."""
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    from driftguard import mlflow_setup

    uri = mlflow_setup.configure(tracking_uri)
    client = MlflowClient(uri)
    version = _champion_version(client, contract)
    if version is None:
        log.info(
            "%s: no @%s alias on registered model %r", contract.name, CHAMPION_ALIAS, contract.registered_model_name
        )
        return None
    run_id = version.run_id
    where = f"model {contract.name!r} champion version {version.version} (run {run_id})"
    if not run_id:
        raise ReferenceError(f"{where}: the model version has no run, so no reference artifacts")
    run = client.get_run(run_id)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            # From the run's artifact URI, not `runs:/`: that repository swallows every error and
            # says RESOURCE_DOES_NOT_EXIST, so a store that does not answer looked like missing files.
            source = posixpath.join(run.info.artifact_uri, ARTIFACT_DIR)
            download_artifacts(artifact_uri=source, dst_path=tmp, tracking_uri=uri)  # -> tmp/reference
        except (MlflowException, OSError) as exc:
            if mlflow_setup.is_transient(exc):  # the artifact store is down, not the artifacts missing: retry
                raise
            raise ReferenceError(
                f"{where}: reference artifacts missing or unreadable ({str(exc).splitlines()[0]}); retrain the "
                "model to recreate them"
            ) from None
        sample, profile, importance, metrics = _read_artifacts(Path(tmp), contract, where)
        calibration = _read_calibration(Path(tmp))
        estimator_path = Path(tmp) / ARTIFACT_DIR / ESTIMATOR_FILE
        estimator = estimator_path.read_bytes() if estimator_path.is_file() else None
    trained_at = _trained_at(run)
    ranked = importance.get("ranked") or _ranked(importance.get("importance", {}))
    ref = Reference(
        sample=canonical(sample, contract),
        profile=profile,
        feature_importance=tuple(str(f) for f in ranked),
        validation_metrics={k: float(v) for k, v in metrics.items()},
        source=f"champion v{version.version} (run {run_id})",
        model_version=str(version.version),
        run_id=run_id,
        trained_at=trained_at,
        importance=_importance_values(importance.get("importance")),
        training_rows=_int(run.data.params.get("data.rows.train")),
        window_rows=_int(run.data.params.get("data.rows.total")),
        calibration=calibration,
        estimator=estimator,
        metric_baseline=_float(run.data.tags.get("driftguard.metric_baseline")),
        change_point=run.data.tags.get("driftguard.change_point") or None,
        window_start=run.data.tags.get("driftguard.window_start") or None,
    )
    log.info("%s: reference is %s, %d rows", contract.name, ref.source, len(ref.sample))
    return ref


# --------------------------------------------------------------------------- bootstrap


def _bootstrap_metrics(frame: pd.DataFrame, contract: ModelContract) -> dict[str, float]:
    """Realized metrics of the logged production score on the window's matured labels, if any."""
    from driftguard.statistics.metrics import task_metrics

    label = _label(contract)
    if not label or label not in frame.columns or SCORE_COLUMN not in frame.columns:
        return {}
    known = frame[frame[label].notna() & frame[SCORE_COLUMN].notna()]
    if known.empty:
        return {}
    return task_metrics(
        contract.task, known[label].to_numpy(), known[SCORE_COLUMN].to_numpy(), threshold=contract.decision_threshold
    )


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _trained_at(run: Any) -> datetime | None:
    """The training data's cut-off (data time) when the run recorded it, else the run's start."""
    as_of = run.data.tags.get("driftguard.data_as_of")
    if as_of:
        return datetime.fromisoformat(as_of)
    return datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC) if run.info.start_time else None


def bootstrap_reference(contract: ModelContract, *, url: str | None = None, as_of: datetime | None = None) -> Reference:
    """The contract's reference.start..end window of the feature log, sampled. Labels matured by
    `as_of` (default now) are joined where they exist; the logged prediction becomes the score."""
    from driftguard import sources

    start, end = contract.reference.start, contract.reference.end
    if start is None or end is None:
        raise ReferenceError(
            f"model {contract.name!r} has no champion and no bootstrap window: set reference.start and "
            f"reference.end in its contract (include/models/{contract.name}.yaml) or register a champion"
        )
    window = f"{start:%Y-%m-%d}..{end:%Y-%m-%d}"
    try:
        # A bootstrap window of millions of rows is sampled in the database like a monitored
        # window (source.sample_rows); the profile then describes that seeded sample, and no
        # exact NULL or duplicate counts are needed.
        read_rows = contract.source.sample_rows and max(contract.source.sample_rows, contract.reference.sample_size)
        frame, stats = sources.read_window(
            contract,
            start,
            end,
            sources.ReadOptions(sample_rows=read_rows, seed=contract.training.seed, exact_facts=False),
            url=url,
        )
    except sources.EmptyWindowError:
        raise ReferenceError(
            f"model {contract.name!r}: bootstrap window {window} (reference.start/reference.end) has no rows in the "
            "feature log; move the window to a period with data"
        ) from None
    pred = contract.source.prediction_column
    if pred and pred in frame.columns:
        frame[SCORE_COLUMN] = frame[pred]
    label = _label(contract)
    labels = None
    if label:
        share = read_rows / stats.rows if stats.sampled and read_rows else None  # only the sampled ids' labels
        try:
            labels = sources.read_labels(
                contract,
                start,
                end,
                as_of=as_of or datetime.now(UTC),
                url=url,
                sample_fraction=share,
                seed=contract.training.seed,
            )
        except sources.SourceConnectionError:
            raise
        except sources.SourceError as exc:  # the run's own label read fails its `labels` check
            log.warning("%s: bootstrap reference without labels (no target drift, no metrics): %s", contract.name, exc)
    if labels is not None:
        key = contract.source.label_key
        labels = labels.rename(columns={key: contract.source.id_column})
        if len(labels):
            labels[contract.source.id_column] = labels[contract.source.id_column].astype(
                frame[contract.source.id_column].dtype
            )
        frame = frame.merge(labels, on=contract.source.id_column, how="left", validate="one_to_one")
    frame = canonical(with_times(frame, contract), contract)
    from driftguard.statistics.profile import profile_frame

    profile = profile_frame(frame, contract)
    if stats.sampled:
        profile.update(rows=stats.rows, sampled_rows=len(frame))
    ref = Reference(
        sample=sample_frame(frame, contract).reset_index(drop=True),
        profile=profile,
        feature_importance=(),
        validation_metrics=_bootstrap_metrics(frame, contract),
        source=f"bootstrap window {window}",
    )
    log.info("%s: reference is %s, %d of %d rows", contract.name, ref.source, len(ref.sample), len(frame))
    return ref


def load_reference(contract: ModelContract, *, tracking_uri: str | None = None, url: str | None = None) -> Reference:
    """The champion's reference when a champion exists, else the bootstrap window."""
    ref = champion_reference(contract, tracking_uri=tracking_uri)
    if ref is not None:
        return ref
    log.info("%s: no champion yet, using the bootstrap window", contract.name)
    return bootstrap_reference(contract, url=url)
