"""Reproducible challenger training: time-ordered splits, a contract-driven pipeline, one MLflow run.

Why time-ordered: production scores the future, so a random split leaks tomorrow's patterns into
training and overstates every metric. The holdout is the most recent labelled period and is what
the promotion gate compares champion and challenger on.

Why a content hash: "same data + seed -> same model" is only checkable when the data is named;
the fingerprint (bounds, row counts, sha256 of the canonical frame) is logged with every run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from driftguard import mlflow_setup
from driftguard.contract import ModelContract, Task, format_duration
from driftguard.settings import REPO_ROOT

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "holdout")
MISSING_CATEGORY = "__missing__"
MIN_CATEGORY_FREQUENCY = 10  # rarer categories share one "infrequent" code: no overfitting to one-off values
IMPORTANCE_ROWS = 5_000  # permutation importance sample (bounded: cost grows with rows x features x repeats)
IMPORTANCE_REPEATS = 5
INPUT_EXAMPLE_ROWS = 5
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # start of the "all" training window

LINEAR_ESTIMATORS = frozenset({"logistic_regression", "linear_regression", "ridge"})
_ESTIMATORS: dict[str, dict[Task, type[BaseEstimator]]] = {
    "gradient_boosting": {
        Task.binary_classification: GradientBoostingClassifier,
        Task.regression: GradientBoostingRegressor,
    },
    "hist_gradient_boosting": {
        Task.binary_classification: HistGradientBoostingClassifier,
        Task.regression: HistGradientBoostingRegressor,
    },
    "random_forest": {Task.binary_classification: RandomForestClassifier, Task.regression: RandomForestRegressor},
    "logistic_regression": {Task.binary_classification: LogisticRegression},
    "linear_regression": {Task.regression: LinearRegression},
    "ridge": {Task.regression: Ridge},
}


class TrainingError(ValueError):
    """Training cannot proceed as the contract asks; the message names the model and what to change."""


class InsufficientData(TrainingError):
    """Too few labelled rows (or one class) for the splits: an outcome of the retrain, not a failure.
    The message says what the data lacks and what to change."""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Split:
    """Three consecutive, non-overlapping periods; bounds are half-open [start, end) ISO strings."""

    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame
    bounds: dict[str, dict[str, str]]

    def part(self, name: str) -> pd.DataFrame:
        return {"train": self.train, "validation": self.validation, "holdout": self.holdout}[name]


@dataclass(frozen=True)
class TrainingData:
    frame: pd.DataFrame
    split: Split
    fingerprint: dict[str, Any]


def _label_column(contract: ModelContract) -> str:
    if contract.source.labels is None:
        raise TrainingError(f"model {contract.name!r}: cannot train without labels; add source.labels to the contract")
    return contract.source.labels.column


def _aware(value: datetime, what: str, contract: ModelContract) -> datetime:
    if value.tzinfo is None:
        raise TrainingError(f"model {contract.name!r}: {what} must be timezone-aware (UTC), got {value.isoformat()}")
    return value.astimezone(UTC)


def _iso(value: Any) -> str:
    return pd.Timestamp(value).tz_convert("UTC").isoformat()


def training_columns(contract: ModelContract) -> list[str]:
    """The columns a training frame keeps: key, time, features, label (never the logged prediction)."""
    src = contract.source
    return [src.id_column, src.timestamp_column, *contract.feature_names, _label_column(contract)]


def _check_labels(frame: pd.DataFrame, contract: ModelContract) -> pd.DataFrame:
    label = _label_column(contract)
    missing = int(frame[label].isna().sum())
    if missing:
        log.warning("%s: dropping %d rows without a label in column %s", contract.name, missing, label)
        frame = frame[frame[label].notna()]
    if contract.task is Task.binary_classification:
        bad = sorted(set(pd.unique(frame[label]).tolist()) - {0, 1})
        if bad:
            raise TrainingError(
                f"model {contract.name!r}: label column {label!r} must hold 0/1 for binary_classification, "
                f"found {bad[:5]}"
            )
        return frame.astype({label: "int64"})
    return frame.astype({label: "float64"})


def _drop_intervals(
    frame: pd.DataFrame, contract: ModelContract, intervals: Sequence[tuple[datetime, datetime]]
) -> tuple[pd.DataFrame, int]:
    """Remove rows of intervals whose quality gate failed critically: bad data never feeds a retrain."""
    if not intervals:
        return frame, 0
    ts = frame[contract.source.timestamp_column]
    drop = pd.Series(False, index=frame.index)
    for lo, hi in intervals:
        lo, hi = _aware(lo, "exclude_intervals start", contract), _aware(hi, "exclude_intervals end", contract)
        drop |= (ts >= pd.Timestamp(lo)) & (ts < pd.Timestamp(hi))
    n = int(drop.sum())
    if n:
        log.info(
            "%s: dropped %d rows from %d excluded intervals (failed quality gates)", contract.name, n, len(intervals)
        )
    return frame[~drop], n


def _drop_unusable_rows(frame: pd.DataFrame, contract: ModelContract) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Rows the model cannot take: a numeric feature holding text that is not a number (SQLite stores
    any value in any column) or a non-finite number (+/-inf, or beyond profile.FINITE_LIMIT, which
    scikit-learn's float32 trees read as infinity), or a regression label that is not finite.

    Monitoring fails such an interval's `types` or `finite` check and the retrain excludes it
    before this runs; what is left slipped past the gate (an interval never monitored, a sampled
    window whose sample missed a few rows, the family switched off). Those rows are dropped, not
    imputed, and each column is logged and recorded (rows, first and last event) in the data
    fingerprint, so the retrain neither fails on scikit-learn's "Input X contains infinity", which
    names no column, nor trains on them silently. Numeric features come back as float64."""
    from driftguard.statistics.profile import non_finite

    tcol = contract.source.timestamp_column
    drop = np.zeros(len(frame), dtype=bool)
    dropped: dict[str, Any] = {}
    converted: dict[str, pd.Series] = {}
    columns = [(c, "feature") for c in contract.numeric_features]
    if contract.task is Task.regression:
        columns.append((_label_column(contract), "label"))
    for col, role in columns:
        raw = frame[col]
        values = pd.to_numeric(raw, errors="coerce").astype("float64") if raw.dtype == object else raw.astype("float64")
        converted[col] = values
        for reason, mask in (
            ("text that is not a number", (values.isna() & raw.notna()).to_numpy()),
            ("inf or a magnitude beyond float32", non_finite(values)),
        ):
            if not mask.any():
                continue
            drop |= mask
            ts = frame[tcol][mask]
            examples = list(dict.fromkeys(str(v) for v in raw[mask].head(20)))[:3]
            entry = {"rows": int(mask.sum()), "first": _iso(ts.min()), "last": _iso(ts.max()), "examples": examples}
            dropped[f"{col}: {reason}"] = entry
            log.warning(
                "%s: dropping %d training rows whose %s %s holds %s (e.g. %s), events %s .. %s; their intervals "
                "were not excluded by a failed quality check (types / finite) before",
                contract.name, entry["rows"], role, col, reason, ", ".join(examples), entry["first"], entry["last"],
            )  # fmt: skip
    frame = frame.assign(**converted)
    return (frame[~drop] if drop.any() else frame), dropped


def training_start(
    contract: ModelContract, as_of: datetime, *, change_point: datetime | None = None
) -> tuple[datetime, str]:
    """Where the training data starts, and why: the sliding window, or (change-aware) the change
    point when it is later. Rows from before a change teach the old concept."""
    window = contract.training_window
    start = EPOCH if window is None else as_of - window
    why = "training.window `all`" if window is None else f"window {format_duration(window)}"
    if contract.seasonality is not None and window is not None and contract.training.window is None:
        why += f" (at least one seasonal period of {format_duration(contract.seasonality)})"
    elif contract.shorter_than_season:
        why += (
            f" (training.window, shorter than the seasonal period of {format_duration(contract.seasonality)}: "
            "the gate's seasonal guardrail checks the coming phase)"
        )
    if change_point is not None and contract.training.change_aware and change_point > start:
        if contract.seasonality is not None:
            # On seasonal data a metric that moves may be the season turning, not a new concept:
            # a window shorter than one period would forget the phase that comes next.
            return (
                start,
                f"{why}; the change at {change_point.isoformat()} is not used: with seasonality the window "
                "keeps a full period",
            )
        return change_point, f"since the change at {change_point.isoformat()} (change-aware; {why} would start earlier)"
    return start, why


def load_training_data(
    contract: ModelContract,
    *,
    as_of: datetime,
    url: str | None = None,
    exclude_intervals: Sequence[tuple[datetime, datetime]] = (),
    start: datetime | None = None,
    min_holdout_rows: int | None = None,
) -> TrainingData:
    """Labelled rows from `start` (default: the training window) to `as_of` (labels matured by
    then), minus excluded intervals, capped to the most recent `training.max_rows`, split by time
    and rows (:func:`split_by_time`) and fingerprinted. Too few rows raise :class:`InsufficientData`."""
    as_of = _aware(as_of, "as_of", contract)
    if start is None:
        start, _ = training_start(contract, as_of)
    start = _aware(start, "start", contract)
    frame, stats, excluded, unusable = _labelled_rows(contract, start, as_of, as_of, url, exclude_intervals)
    cap = contract.training.max_rows
    if len(frame) > cap:
        log.info(
            "%s: keeping the most recent %d of %d labelled rows (training.max_rows)", contract.name, cap, len(frame)
        )
        frame = frame.iloc[-cap:]
    frame = frame.reset_index(drop=True)
    split = split_by_time(frame, contract, as_of=as_of, min_holdout_rows=min_holdout_rows)
    fingerprint = {
        "model": contract.name,
        "as_of": as_of.isoformat(),
        "window": {"start": start.isoformat(), "end": as_of.isoformat()},
        "bounds": split.bounds,
        "rows": {"total": len(frame), **{name: len(split.part(name)) for name in SPLITS}},
        "rows_read": stats.rows,
        "rows_excluded": excluded,
        "exclude_intervals": [[_iso(lo), _iso(hi)] for lo, hi in exclude_intervals],
        "rows_dropped_unusable": unusable,
        "sha256": frame_hash(frame, contract),
    }
    log.info(
        "%s: training data %s rows (train %s, validation %s, holdout %s), sha256 %s",
        contract.name,
        f"{len(frame):,}",
        *(f"{len(split.part(n)):,}" for n in SPLITS),
        fingerprint["sha256"][:12],
    )
    return TrainingData(frame=frame, split=split, fingerprint=fingerprint)


def _labelled_rows(
    contract: ModelContract,
    start: datetime,
    end: datetime,
    as_of: datetime,
    url: str | None,
    exclude_intervals: Sequence[tuple[datetime, datetime]],
    sample_rows: int | None = None,
) -> tuple[pd.DataFrame, Any, int, dict[str, Any]]:
    """(rows, read stats, rows excluded, unusable rows dropped): the labelled rows of [start, end)
    whose labels matured by `as_of`, read through the source (SQL pushdown), cleaned as training is;
    with `sample_rows`, a seeded sample of about that many (sources.read_labelled)."""
    from driftguard import sources

    _label_column(contract)
    # Text in a numeric feature is kept as read, so an excluded interval's text cannot stop the
    # read; whatever is left after the exclusion is dropped row by row below.
    frame, stats = sources.read_labelled(
        contract,
        start,
        end,
        sources.ReadOptions(numeric_text="keep", sample_rows=sample_rows, seed=contract.training.seed),
        as_of=as_of,
        url=url,
    )
    frame = _check_labels(frame[training_columns(contract)], contract)
    frame, excluded = _drop_intervals(frame, contract, exclude_intervals)
    frame, unusable = _drop_unusable_rows(frame, contract)
    return frame, stats, excluded, unusable


def load_labelled_rows(
    contract: ModelContract,
    start: datetime,
    end: datetime,
    *,
    as_of: datetime,
    url: str | None = None,
    exclude_intervals: Sequence[tuple[datetime, datetime]] = (),
) -> pd.DataFrame:
    """Labelled rows of [start, end) as training reads them (same source path, same cleaning; no
    split): the gate's seasonal guardrail scores both models on them. More than
    `training.max_rows` are read as a seeded sample of about that many. No row with a matured
    label is an empty frame, not an error."""
    from driftguard import sources

    start, end, as_of = (_aware(v, what, contract) for v, what in ((start, "start"), (end, "end"), (as_of, "as_of")))
    try:
        frame, _, _, _ = _labelled_rows(
            contract, start, end, as_of, url, exclude_intervals, sample_rows=contract.training.max_rows
        )
    except sources.EmptyWindowError:
        return pd.DataFrame(columns=training_columns(contract))
    return frame.sort_values(contract.source.timestamp_column, kind="mergesort").reset_index(drop=True)


def _column_bytes(col: pd.Series) -> bytes:
    """Canonical bytes of one column, independent of driver dtypes and pandas version."""
    if isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(col):
        values = pd.to_datetime(col, utc=True).dt.as_unit("ns")
        return b"T" + values.astype("int64").to_numpy().tobytes()
    if pd.api.types.is_integer_dtype(col) or pd.api.types.is_bool_dtype(col):
        return b"I" + col.astype("int64").to_numpy().tobytes()
    if pd.api.types.is_float_dtype(col):
        arr = col.to_numpy(dtype="float64", copy=True)
        arr[np.isnan(arr)] = np.nan  # one NaN bit pattern
        arr[arr == 0] = 0.0  # -0.0 == 0.0
        return b"F" + arr.tobytes()
    text = "\x1f".join("\x00" if pd.isna(v) else str(v) for v in col.tolist())
    return b"S" + text.encode("utf-8")


def frame_hash(frame: pd.DataFrame, contract: ModelContract) -> str:
    """sha256 of the frame's content: rows sorted by (timestamp, id), columns by name."""
    src = contract.source
    ordered = frame.sort_values([src.timestamp_column, src.id_column], kind="mergesort")
    digest = hashlib.sha256()
    for name in sorted(ordered.columns):
        digest.update(name.encode("utf-8") + b"\x1e")
        digest.update(_column_bytes(ordered[name]) + b"\x1d")
    return digest.hexdigest()


def _rows_for_both_classes(labels: np.ndarray, need: int) -> int | None:
    """How many of the newest rows hold at least ``need`` rows of each class (None: never)."""
    newest_first = labels[::-1]
    ones = np.cumsum(newest_first == 1)
    zeros = np.cumsum(newest_first == 0)
    enough = np.flatnonzero((ones >= need) & (zeros >= need))
    return int(enough[0]) + 1 if enough.size else None


def _class_counts(part: pd.DataFrame, label: str) -> dict[int, int]:
    counts = part[label].value_counts()
    return {c: int(counts.get(c, 0)) for c in (0, 1)}


def split_by_time(
    frame: pd.DataFrame, contract: ModelContract, *, as_of: datetime, min_holdout_rows: int | None = None
) -> Split:
    """Out-of-time splits defined by time *and* rows. Never random across time.

    - holdout: the last `training.holdout` of labelled data, widened back in time until it holds
      `training.min_holdout_rows` rows (or ``min_holdout_rows``, the evidence an earlier gate asked
      for) and, for binary tasks, `training.min_class_rows` of each class. Widening stops at
      `training.max_holdout_share` of the rows; a holdout that still falls short makes the retrain
      `insufficient data` (:class:`InsufficientData`).
    - validation: the `training.validation` before the holdout. It is reported, never decided on,
      so one too small to mean anything (under `min_holdout_rows`, or a class short) is folded
      into train instead of failing the retrain.
    - train: everything earlier; under `training.min_train_rows` (or a class short) it is
      `insufficient data` too.

    Cuts fall between distinct timestamps, so rows of one instant never straddle two splits."""
    as_of = _aware(as_of, "as_of", contract)
    tcol, label = contract.source.timestamp_column, _label_column(contract)
    late = frame[tcol] >= pd.Timestamp(as_of)
    if late.any():
        log.warning("%s: ignoring %d rows at or after as_of %s", contract.name, int(late.sum()), as_of.isoformat())
        frame = frame[~late]
    if frame.empty:
        raise InsufficientData(
            f"model {contract.name!r}: no labelled rows before {as_of.isoformat()}; nothing to train on "
            "(check the feature log, labels.delay and training.window)"
        )
    frame = frame.sort_values(tcol, kind="mergesort").reset_index(drop=True)
    cfg, ts, n = contract.training, frame[tcol], len(frame)
    binary = contract.task is Task.binary_classification
    span = f"labelled data spans {_iso(ts.iloc[0])}..{_iso(ts.iloc[-1])} ({n:,} rows)"
    fix = (
        "Widen training.window (or wait for more labels), or lower training.min_holdout_rows / "
        "training.min_train_rows / training.min_class_rows"
    )

    # Holdout: by time, then widened to the rows (and classes) it needs, within the bound.
    by_time = int((ts >= ts.iloc[-1] - pd.Timedelta(cfg.holdout)).sum())
    for_classes = _rows_for_both_classes(frame[label].to_numpy(), cfg.min_class_rows) if binary else 0
    cap = int(n * cfg.max_holdout_share)
    # At least what the gate needs (and an earlier gate's request for more evidence, as far as the
    # bound allows); at most the bound, so that a short window (e.g. the weeks since a change) still
    # leaves rows to train on.
    need = max(cfg.min_holdout_rows, for_classes or 0)
    classes_short = for_classes is None or for_classes > cap
    if classes_short or cfg.min_holdout_rows > cap:
        classes = _class_counts(frame, label) if binary else {}
        short = (
            f"{cfg.min_class_rows} rows of each class (the window has {classes.get(0, 0)} of class 0 and "
            f"{classes.get(1, 0)} of class 1)"
            if classes_short
            else f"{cfg.min_holdout_rows} rows"
        )
        raise InsufficientData(
            f"model {contract.name!r}: the holdout needs {short}, and it may take at most "
            f"{cfg.max_holdout_share:.0%} of the {n:,} labelled rows; {span}. {fix}"
        )
    k = min(max(by_time, need, min(min_holdout_rows or 0, cap)), cap)
    resized = k != by_time
    hold_start = ts.iloc[n - k] if resized else ts.iloc[-1] - pd.Timedelta(cfg.holdout)
    holdout_mask = ts >= hold_start

    # Validation: by time only; folded into train when too small to report on.
    val_start = hold_start - pd.Timedelta(cfg.validation)
    val_mask = (ts >= val_start) & ~holdout_mask
    validation = frame[val_mask]
    folded = ""
    left = n - int(holdout_mask.sum()) - len(validation)
    if len(validation) and left < max(cfg.min_train_rows, len(validation)):
        folded = f"{len(validation)} rows, more than the {left} it would leave to train on"
    elif len(validation) and (
        len(validation) < cfg.min_holdout_rows
        or (binary and min(_class_counts(validation, label).values()) < cfg.min_class_rows)
    ):
        folded = f"{len(validation)} rows, fewer than {cfg.min_holdout_rows} or a class short"
    if folded:
        val_mask = pd.Series(False, index=frame.index)
        val_start = hold_start
        validation = frame[val_mask]
    train = frame[~holdout_mask & ~val_mask]
    train_short = len(train) < cfg.min_train_rows
    if binary and not train_short:
        train_short = min(_class_counts(train, label).values()) < cfg.min_class_rows
    if train_short:
        counts = f", classes {_class_counts(train, label)}" if binary else ""
        raise InsufficientData(
            f"model {contract.name!r}: {len(train):,} rows are left to train on{counts} after a holdout of "
            f"{int(holdout_mask.sum()):,} rows; training needs {cfg.min_train_rows} rows"
            + (f" and {cfg.min_class_rows} of each class" if binary else "")
            + f"; {span}. {fix}"
        )
    edges = {
        "train": (ts.iloc[0], val_start),
        "validation": (val_start, hold_start),
        "holdout": (hold_start, pd.Timestamp(as_of)),
    }
    bounds: dict[str, dict[str, Any]] = {name: {"start": _iso(lo), "end": _iso(hi)} for name, (lo, hi) in edges.items()}
    if resized:
        how = "widened" if k > by_time else "narrowed"
        bounds["holdout"][how] = f"{k:,} rows instead of {by_time:,} in {format_duration(cfg.holdout)}"
    if folded:
        bounds["validation"]["folded_into_train"] = folded
    for note in (bounds["holdout"].get("widened"), bounds["holdout"].get("narrowed"), folded):
        if note:
            log.info("%s: split: %s", contract.name, note)
    return Split(
        train=train.reset_index(drop=True),
        validation=validation.reset_index(drop=True),
        holdout=frame[holdout_mask].reset_index(drop=True),
        bounds=bounds,
    )


# --------------------------------------------------------------------------- pipeline


def estimator_class(contract: ModelContract) -> type[BaseEstimator]:
    name = contract.training.estimator
    by_task = _ESTIMATORS.get(name)
    if by_task is None:
        raise TrainingError(
            f"model {contract.name!r}: training.estimator {name!r} is unknown; known: {sorted(_ESTIMATORS)}"
        )
    if contract.task not in by_task:
        fits = sorted(n for n, t in _ESTIMATORS.items() if contract.task in t)
        raise TrainingError(
            f"model {contract.name!r}: training.estimator {name!r} does not fit task {contract.task.value}; "
            f"use one of {fits}"
        )
    return by_task[contract.task]


def _estimator(contract: ModelContract) -> BaseEstimator:
    cls = estimator_class(contract)
    valid = cls().get_params()
    params = dict(contract.training.params)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise TrainingError(
            f"model {contract.name!r}: training.params {unknown} are not parameters of {cls.__name__} "
            f"(training.estimator {contract.training.estimator!r}); valid: {sorted(valid)}"
        )
    if "random_state" in valid:
        params.setdefault("random_state", contract.training.seed)
    return cls(**params)


def build_pipeline(contract: ModelContract) -> Pipeline:
    """Preprocessing from the contract's feature kinds, then the contract's estimator (seeded).

    Linear models get scaled numerics and one-hot categories; tree models ordinal codes. Unseen
    and rare categories map to a shared code, so production data never breaks prediction."""
    linear = contract.training.estimator in LINEAR_ESTIMATORS
    estimator = _estimator(contract)
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
    if linear:
        numeric_steps.append(("scale", StandardScaler()))
    if linear:
        encoder: Any = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=MIN_CATEGORY_FREQUENCY)
    else:
        encoder = OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=-1, min_frequency=MIN_CATEGORY_FREQUENCY
        )
    transformers: list[tuple[str, Any, list[str]]] = []
    if contract.numeric_features:
        transformers.append(("numeric", Pipeline(numeric_steps), contract.numeric_features))
    if contract.categorical_features:
        categorical = Pipeline(
            [("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)), ("encode", encoder)]
        )
        transformers.append(("categorical", categorical, contract.categorical_features))
    pre = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.3 if linear else 0.0)
    return Pipeline([("preprocess", pre), ("model", estimator)])


def _xy(frame: pd.DataFrame, contract: ModelContract) -> tuple[pd.DataFrame, np.ndarray]:
    return frame[contract.feature_names], frame[_label_column(contract)].to_numpy()


def fit(pipeline: Pipeline, frame: pd.DataFrame, contract: ModelContract) -> Pipeline:
    """Fit, turning scikit-learn's parameter errors into errors naming the contract field."""
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = _xy(frame, contract)
    try:
        return pipeline.fit(X, y)
    except InvalidParameterError as exc:
        raise TrainingError(
            f"model {contract.name!r}: training.params for {contract.training.estimator!r} are invalid: {exc}"
        ) from None


# --------------------------------------------------------------------------- scoring


def _input_columns(model: Any) -> list[str] | None:
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return list(names)
    metadata = getattr(model, "metadata", None)
    schema = metadata.get_input_schema() if metadata is not None else None
    return list(schema.input_names()) if schema is not None else None


def _string_columns(model: Any) -> list[str]:
    metadata = getattr(model, "metadata", None)
    schema = metadata.get_input_schema() if metadata is not None else None
    if schema is None:
        return []
    return [c.name for c in schema.inputs if str(getattr(c.type, "name", c.type)) == "string"]


def score(model: Any, frame: pd.DataFrame, task: Task | str) -> np.ndarray:
    """The model's score per row: P(class 1) for binary classification, the estimate for regression.

    Accepts a fitted scikit-learn pipeline or an MLflow pyfunc model logged by `train_candidate`
    (whose pyfunc predict is predict_proba for classifiers)."""
    task = Task(task)
    cols = _input_columns(model)
    X = frame[cols] if cols else frame
    if hasattr(model, "predict_proba") and task is Task.binary_classification:
        proba = model.predict_proba(X)
        return np.asarray(proba[:, list(model.classes_).index(1)], dtype="float64")
    strings = [c for c in _string_columns(model) if c in X.columns and X[c].dtype != object]
    if strings:  # an all-missing categorical column arrives as float; the pyfunc schema wants strings
        X = X.astype({c: object for c in strings})
    out = model.predict(X)
    out = np.asarray(out.to_numpy() if isinstance(out, pd.DataFrame | pd.Series) else out, dtype="float64")
    if task is Task.binary_classification:
        if out.ndim != 2 or out.shape[1] != 2:
            raise TrainingError(
                f"expected class probabilities of shape (n, 2) from the model, got shape {out.shape}; a "
                "classifier must be logged with pyfunc_predict_fn='predict_proba' (as train_candidate does)"
            )
        return out[:, 1]
    return out.reshape(-1)


# --------------------------------------------------------------------------- training run


@dataclass(frozen=True)
class Candidate:
    run_id: str
    model_uri: str
    metrics: dict[str, dict[str, float]]
    fingerprint: dict[str, Any]
    trained_at: datetime
    feature_importance: dict[str, float] = field(default_factory=dict)

    def metric(self, name: str, split: str = "holdout") -> float:
        return self.metrics[split][name]


def permutation_importances(pipeline: Pipeline, frame: pd.DataFrame, contract: ModelContract) -> dict[str, float]:
    """Mean drop in the score when a feature is shuffled, on a seeded bounded sample; ranked."""
    from sklearn.inspection import permutation_importance

    seed = contract.training.seed
    sample = frame.sample(n=IMPORTANCE_ROWS, random_state=seed) if len(frame) > IMPORTANCE_ROWS else frame
    X, y = _xy(sample, contract)
    if contract.task is Task.regression:
        scoring = "neg_root_mean_squared_error"
    else:
        scoring = "roc_auc" if len(np.unique(y)) == 2 else "neg_brier_score"
    result = permutation_importance(
        pipeline, X, y, scoring=scoring, n_repeats=IMPORTANCE_REPEATS, random_state=seed, n_jobs=1
    )
    values = {name: float(result.importances_mean[i]) for i, name in enumerate(X.columns)}
    return dict(sorted(values.items(), key=lambda kv: (-kv[1], kv[0])))


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def package_versions() -> dict[str, str]:
    import cloudpickle
    import mlflow
    import sklearn

    import driftguard

    return {
        "scikit-learn": sklearn.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "cloudpickle": cloudpickle.__version__,
        "mlflow": mlflow.__version__,
        "driftguard": driftguard.__version__,
    }


def pip_requirements() -> list[str]:
    """Pinned, so log_model skips its 3-4 s requirement inference and serving matches training."""
    versions = package_versions()
    return [f"{pkg}=={versions[pkg]}" for pkg in ("mlflow", "scikit-learn", "pandas", "numpy", "cloudpickle")]


MAX_TAG_CHARS = mlflow_setup.MAX_TAG_CHARS
TRIGGER_ARTIFACT = "trigger.json"
"""In the candidate's run: the whole trigger (the tag holds its first MAX_TAG_CHARS characters)."""


def trigger_kind(trigger: dict[str, Any] | None) -> str:
    """What asked for the candidate, in a word or two: the triggers that counted
    (``metric_drop+drift_share``), else the request's source (``monitoring``, ``manual``)."""
    triggers = (trigger or {}).get("triggers")
    if isinstance(triggers, list | tuple) and triggers:
        return "+".join(str(t) for t in triggers)
    source = (trigger or {}).get("source")
    return str(source) if source else "manual"


def run_name(contract: ModelContract, as_of: Any, trigger: dict[str, Any] | None) -> str:
    """The candidate's MLflow run name: model, data cut-off and trigger, e.g.
    ``flight_delay 2013-06-03 metric_drop`` (a cut-off within a day keeps its time)."""
    try:
        at = datetime.fromisoformat(str(as_of))
        when = f"{at:%Y-%m-%d}" if (at.hour, at.minute, at.second) == (0, 0, 0) else f"{at:%Y-%m-%d %H:%M}"
    except ValueError:
        when = str(as_of or "")
    return mlflow_setup.short_tag(f"{contract.name} {when} {trigger_kind(trigger)}")


def trigger_summary(trigger: dict[str, Any] | None) -> str:
    """One line for the run tag: the trigger's summary, else its reasons, else its JSON."""
    if not trigger:
        return "manual"
    reasons = trigger.get("reasons")
    if isinstance(trigger.get("summary"), str) and trigger["summary"]:
        text = trigger["summary"]
    elif isinstance(reasons, list | tuple) and reasons:
        text = "; ".join(str(r) for r in reasons)
    else:
        text = json.dumps(trigger, sort_keys=True, default=str)
    return text[:500]


def model_signature(contract: ModelContract, output: np.ndarray) -> Any:
    """Declared from the contract (not inferred from a few rows, where an all-missing categorical
    column would look numeric): numeric -> double, categorical -> string, all optional."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import ColSpec, Schema

    inputs = Schema(
        [
            ColSpec("double" if f.kind.value == "numeric" else "string", f.name, required=False)
            for f in contract.features
        ]
    )
    return ModelSignature(inputs=inputs, outputs=infer_signature(model_output=output).outputs)


def _params(contract: ModelContract, data: TrainingData) -> dict[str, Any]:
    cfg = contract.training
    window = contract.training_window
    params: dict[str, Any] = {
        "estimator": cfg.estimator,
        "seed": cfg.seed,
        "task": contract.task.value,
        "decision_threshold": contract.decision_threshold,
        "training.window": "all" if window is None else format_duration(window),
        "training.validation": format_duration(cfg.validation),
        "training.holdout": format_duration(cfg.holdout),
        "training.max_rows": cfg.max_rows,
        "data.as_of": data.fingerprint.get("as_of"),
        **{f"data.rows.{k}": v for k, v in data.fingerprint.get("rows", {}).items()},
    }
    params.update({f"params.{k}": json.dumps(v) if isinstance(v, dict | list) else v for k, v in cfg.params.items()})
    return params


def _tags(contract: ModelContract, data: TrainingData, trigger: dict[str, Any] | None) -> dict[str, str]:
    tags = {
        "driftguard.model": contract.name,
        "driftguard.kind": "candidate",
        "driftguard.task": contract.task.value,
        "driftguard.trigger": mlflow_setup.short_tag(trigger_summary(trigger), full=TRIGGER_ARTIFACT),
        "driftguard.trigger_kind": mlflow_setup.short_tag(trigger_kind(trigger)),
        "driftguard.data_sha256": str(data.fingerprint.get("sha256", "")),
        "driftguard.config_sha256": config_hash(contract),
        # Data time of the training cut-off: the policy's model age counts from it, so backfills
        # and backtests age models the way production does (the run's start time is wall clock).
        "driftguard.data_as_of": str(data.fingerprint.get("as_of", "")),
        "driftguard.window_start": str(data.fingerprint.get("window", {}).get("start", "")),
        # The end of the rows the model was fitted on (validation and holdout come after): with
        # window_start, what is in sample for it (the gate's seasonal guardrail).
        "driftguard.train_end": str(data.split.bounds.get("train", {}).get("end", "")),
        **{f"driftguard.version.{k}": v for k, v in package_versions().items()},
    }
    tags.update(_change_tags(data, trigger))
    commit = _git_commit()
    if commit:
        tags["driftguard.git_commit"] = commit
        tags["mlflow.source.git.commit"] = commit
    return tags


def _change_tags(data: TrainingData, trigger: dict[str, Any] | None) -> dict[str, str]:
    """The change point the trigger named and, when this candidate still trains on rows from
    before it (training.change_aware off), the pre-change metric level it carries: as champion its
    own validation metric, measured on a mix of old and new, must not become the new normal."""
    change = (trigger or {}).get("change_point")
    if not change:
        return {}
    tags = {"driftguard.change_point": str(change)}
    baseline = (trigger or {}).get("baseline_metric")
    start = data.fingerprint.get("window", {}).get("start")
    if baseline is not None and start and datetime.fromisoformat(start) < datetime.fromisoformat(str(change)):
        tags["driftguard.metric_baseline"] = str(float(baseline))
    return tags


def config_hash(contract: ModelContract) -> str:
    """sha256 of everything besides the data that determines a candidate: task, feature names and
    kinds, training section, decision threshold, reference sample size, library versions."""
    doc = {
        "task": contract.task.value,
        "decision_threshold": contract.decision_threshold,
        "features": [[f.name, f.kind.value] for f in contract.features],
        "training": contract.training.model_dump(mode="json"),
        "reference_sample_size": contract.reference.sample_size,
        "versions": package_versions(),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _split_metrics(run_metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {name: {} for name in SPLITS}
    for key, value in run_metrics.items():
        split, _, metric = key.partition("_")
        if split in out and metric:
            out[split][metric] = float(value)
    return out


def find_candidate(contract: ModelContract, data: TrainingData, tracking_uri: str) -> Candidate | None:
    """A finished run of this model with the same data hash and config hash, rebuilt as a Candidate:
    an Airflow retry (or a rerun of the same interval) must not log a duplicate candidate."""
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    from driftguard import mlflow_setup

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(mlflow_setup.experiment_name(contract.name))
    if experiment is None:
        return None
    query = (
        f"tags.`driftguard.data_sha256` = '{data.fingerprint.get('sha256', '')}' and "
        f"tags.`driftguard.config_sha256` = '{config_hash(contract)}' and attributes.status = 'FINISHED'"
    )
    runs = client.search_runs([experiment.experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        return None
    run = runs[0]
    metrics = _split_metrics(run.data.metrics)
    try:
        text = download_artifacts(
            run_id=run.info.run_id, artifact_path="reference/importance.json", tracking_uri=tracking_uri
        )
        importance = json.loads(Path(text).read_text())["importance"]
    except (MlflowException, OSError, ValueError, KeyError) as exc:
        log.warning("%s: run %s matches but cannot be reused (%s); training anew", contract.name, run.info.run_id, exc)
        return None
    if not (metrics["train"] and metrics["holdout"]):
        return None
    return Candidate(
        run_id=run.info.run_id,
        model_uri=f"runs:/{run.info.run_id}/model",
        metrics=metrics,
        fingerprint=data.fingerprint,
        trained_at=datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC),
        feature_importance=dict(sorted(importance.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


def train_candidate(
    contract: ModelContract,
    data: TrainingData,
    *,
    tracking_uri: str | None = None,
    trigger: dict[str, Any] | None = None,
    reuse: bool = True,
) -> Candidate:
    """Fit on train, evaluate on all three splits, log one MLflow run in "driftguard/<model>" with
    params, metrics, tags, the model (pyfunc returns scores), importances, the data fingerprint
    and the reference artifacts monitoring compares against once this model is champion.

    With `reuse`, an existing finished run for the same data and config is returned instead of
    training a duplicate (the result would be identical: training is deterministic)."""
    import mlflow
    import mlflow.sklearn

    from driftguard import mlflow_setup
    from driftguard.retraining.reference import SCORE_COLUMN, fit_estimator, log_reference, with_times
    from driftguard.statistics.metrics import metric_se, task_metrics

    uri = mlflow_setup.configure(tracking_uri)
    experiment_id = mlflow_setup.ensure_experiment(contract.name, uri)
    if reuse:
        existing = find_candidate(contract, data, uri)
        if existing is not None:
            log.info(
                "%s: reusing candidate run %s: same data (sha256 %s) and config already trained",
                contract.name,
                existing.run_id,
                str(data.fingerprint.get("sha256", ""))[:12],
            )
            return existing
    split = data.split
    trained_at = datetime.now(UTC)
    log.info(
        "%s: training %s (%s) on %s rows (%s..%s), seed %d; trigger: %s",
        contract.name,
        contract.training.estimator,
        contract.task.value,
        f"{len(split.train):,}",
        split.bounds["train"]["start"],
        split.bounds["train"]["end"],
        contract.training.seed,
        trigger_summary(trigger),
    )
    name = run_name(contract, data.fingerprint.get("as_of"), trigger)
    with mlflow.start_run(experiment_id=experiment_id, run_name=name) as run:
        mlflow.set_tags(_tags(contract, data, trigger))
        mlflow.log_dict(dict(trigger or {"source": "manual"}), TRIGGER_ARTIFACT)
        mlflow.log_params(_params(contract, data))
        pipeline = fit(build_pipeline(contract), split.train, contract)
        metrics: dict[str, dict[str, float]] = {}
        for name in SPLITS:
            part = split.part(name)
            if part.empty:  # a validation folded into train (split_by_time) has nothing to report
                metrics[name] = {}
                continue
            y_score = score(pipeline, part, contract.task)
            metrics[name] = task_metrics(
                contract.task, part[_label_column(contract)].to_numpy(), y_score, threshold=contract.decision_threshold
            )
            if name == "holdout":  # the baseline's own noise, for the metric_drop trigger (policy.drop_noise)
                se = metric_se(
                    contract.primary_metric,
                    part[_label_column(contract)].to_numpy(),
                    y_score,
                    threshold=contract.decision_threshold,
                    seed=contract.training.seed,
                )
                if se is not None:
                    metrics[name][f"{contract.primary_metric}_se"] = se
            mlflow.log_metrics({f"{name}_{k}": float(v) for k, v in metrics[name].items()})
        primary = contract.primary_metric
        log.info(
            "%s: holdout %s %.4f (validation %s, train %.4f)",
            contract.name,
            primary,
            metrics["holdout"][primary],
            f"{metrics['validation'][primary]:.4f}" if metrics["validation"] else "folded into train",
            metrics["train"][primary],
        )
        # On the out-of-time holdout: the importance monitoring weighs drift by (drift that matters).
        importance = permutation_importances(pipeline, split.holdout, contract)
        log.info("%s: most important features %s", contract.name, list(importance)[:5])

        example = split.train[contract.feature_names].head(INPUT_EXAMPLE_ROWS)
        raw_output = (
            pipeline.predict_proba(example)
            if contract.task is Task.binary_classification
            else (pipeline.predict(example))
        )
        mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=model_signature(contract, raw_output),
            input_example=example,
            serialization_format="cloudpickle",
            pip_requirements=pip_requirements(),
            pyfunc_predict_fn="predict_proba" if contract.task is Task.binary_classification else "predict",
        )
        mlflow.log_dict(data.fingerprint, "data/fingerprint.json")
        mlflow.log_dict({"metrics": metrics, "primary_metric": primary}, "metrics.json")

        # The reference is the whole training window in time order, so drift thresholds can be
        # calibrated on time chunks of it (a 2-week validation + holdout is 2 weekly chunks). Its
        # scores are out of sample only: the model's scores on rows it was fitted on do not look like
        # its production scores, so train rows carry none and prediction drift compares against the
        # validation and holdout scores.
        sample = with_times(pd.concat([split.train, split.validation, split.holdout], ignore_index=True), contract)
        scored = len(split.train)
        sample[SCORE_COLUMN] = np.nan
        sample.loc[scored:, SCORE_COLUMN] = score(pipeline, sample.iloc[scored:], contract.task)
        # Label-free estimation (CBPE/DLE) learns from the holdout: the model's scores and labels
        # on the out-of-time rows it will next be judged against.
        holdout = split.holdout.assign(**{SCORE_COLUMN: score(pipeline, split.holdout, contract.task)})
        estimator = fit_estimator(holdout, contract)
        log_reference(sample, contract, importance=importance, metrics=metrics["holdout"], estimator=estimator)
        run_id = run.info.run_id
    log.info("%s: candidate run %s logged to %s", contract.name, run_id, uri)
    return Candidate(
        run_id=run_id,
        model_uri=f"runs:/{run_id}/model",
        metrics=metrics,
        fingerprint=data.fingerprint,
        trained_at=trained_at,
        feature_importance=importance,
    )


__all__ = [
    "EPOCH",
    "SPLITS",
    "Candidate",
    "Split",
    "TrainingData",
    "TrainingError",
    "build_pipeline",
    "frame_hash",
    "load_training_data",
    "permutation_importances",
    "score",
    "split_by_time",
    "train_candidate",
]
