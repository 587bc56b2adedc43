"""Synthetic feature logs with known, dated drift: the fixtures of every Driftguard test.

`generate_log` draws a deterministic log (per seed) of 6 numeric and 3 categorical features
with a known label rule, then applies `Injection`s from their start timestamp on. Because we
know exactly what changed and when, tests can assert that quality, drift and policy react to
it (and only to it). `synthetic_contract` builds the matching contract through the real
pydantic validation; `write_log` puts both frames into SQLite or PostgreSQL.

Injection kinds and what `magnitude` means:

* ``mean_shift`` (numeric, default ``num_0``): adds ``magnitude`` baseline standard deviations.
* ``variance_change`` (numeric, default ``num_1``): spread around the mean times ``1 + magnitude``.
* ``new_category`` (categorical, default ``cat_a``): share ``min(1, magnitude / 2)`` of rows
  get the unseen value ``"<column>_new"``.
* ``null_spike`` (any, default ``num_2``): share ``min(1, magnitude / 2)`` of values become null.
* ``type_change`` (numeric, default ``num_3``): share ``min(1, magnitude / 2)`` of values are
  written as text such as ``"12.50 units"``; `write_log` stores that column as TEXT.
* ``concept_drift`` (no column): label coefficients change by ``magnitude`` (features unchanged;
  the logged prediction keeps using the old rule, so realized performance drops).
* ``seasonal`` (numeric, default ``num_2``): adds ``magnitude`` baseline standard deviations times
  ``sin(2π t / duration)`` (t from ``start``; default duration 364 days, a yearly cycle).
* ``gradual_shift`` (numeric, default ``num_0``): a mean shift that ramps linearly from 0 at
  ``start`` to ``magnitude`` standard deviations after ``duration`` (default 28 days), then stays.

The label rule uses ``num_0`` most, then ``num_1`` and ``num_2``; ``cat_b`` has no effect on the
label (a zero-importance feature, for "drift that does not matter"). Low volume is just a small
``rows_per_day``. Like covariate shifts, ``seasonal`` and ``gradual_shift`` move features before
the labels are drawn, so P(y|x) is unchanged.

Covariate shifts (mean/variance) happen before labels are drawn, since P(y|x) is unchanged;
data-quality faults (nulls, text, new categories) are applied after, as logging bugs would be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
import yaml

from driftguard.contract import ModelContract, Task, parse_contract, parse_duration

DRIFT_KINDS = (
    "mean_shift", "variance_change", "new_category", "null_spike", "type_change", "concept_drift", "seasonal",
    "gradual_shift", "seasonal_concept",
)  # fmt: skip

DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
ID_COLUMN = "event_id"
TIMESTAMP_COLUMN = "event_ts"
PREDICTION_COLUMN = "prediction"
LABEL_COLUMN = "label"
NUMERIC = ("num_0", "num_1", "num_2", "num_3", "num_4", "num_5")
CATEGORICAL = ("cat_a", "cat_b", "region")

_CATEGORIES: dict[str, tuple[list[str], list[float]]] = {
    "cat_a": (["a0", "a1", "a2", "a3"], [0.4, 0.3, 0.2, 0.1]),
    "cat_b": ([f"b{i}" for i in range(10)], [1 / (i + 1) for i in range(10)]),  # Zipf-like
    "region": (["north", "south", "east", "west"], [0.25, 0.25, 0.3, 0.2]),
}
_DEFAULT_COLUMN = {
    "mean_shift": "num_0",
    "variance_change": "num_1",
    "new_category": "cat_a",
    "null_spike": "num_2",
    "type_change": "num_3",
    "concept_drift": None,
    "seasonal": "num_2",
    "gradual_shift": "num_0",
    "seasonal_concept": "num_3",
}
_DEFAULT_DURATION = {
    "seasonal": timedelta(days=364),
    "gradual_shift": timedelta(days=28),
    "seasonal_concept": timedelta(days=364),
}
# Baseline label rule on standardized numeric features plus category effects.
_WEIGHTS = np.array([1.2, -0.8, 0.6, 0.4, -0.5, 0.3])
_CAT_EFFECT = {"cat_a": {"a0": 0.0, "a1": 0.4, "a2": -0.4, "a3": 0.8}, "region": {"north": 0.3, "south": -0.3}}
_BIAS = -0.5


@dataclass(frozen=True)
class Injection:
    """A change applied to every row at or after `start` (tz-aware UTC)."""

    kind: str
    start: datetime
    column: str | None = None
    magnitude: float = 1.0
    duration: timedelta | None = None  # seasonal: the cycle; gradual_shift: the ramp

    def __post_init__(self) -> None:
        if self.kind not in DRIFT_KINDS:
            raise ValueError(f"unknown injection kind {self.kind!r}; known: {DRIFT_KINDS}")
        if self.start.tzinfo is None:
            raise ValueError("Injection.start must be tz-aware (UTC)")
        col = self.target
        numeric_kinds = (
            "mean_shift",
            "variance_change",
            "type_change",
            "seasonal",
            "gradual_shift",
            "seasonal_concept",
        )
        if self.kind in numeric_kinds and col not in NUMERIC:
            raise ValueError(f"{self.kind} needs a numeric column {NUMERIC}, got {col!r}")
        if self.kind == "new_category" and col not in CATEGORICAL:
            raise ValueError(f"new_category needs a categorical column {CATEGORICAL}, got {col!r}")
        if self.kind == "null_spike" and col not in (*NUMERIC, *CATEGORICAL):
            raise ValueError(f"null_spike needs a feature column, got {col!r}")

    @property
    def target(self) -> str | None:
        """The affected column (the kind's default when none was given)."""
        return self.column or _DEFAULT_COLUMN[self.kind]

    @property
    def period(self) -> timedelta:
        """The cycle (seasonal) or ramp (gradual_shift) length."""
        return self.duration or _DEFAULT_DURATION.get(self.kind, timedelta(days=28))

    @property
    def share(self) -> float:
        return float(min(1.0, self.magnitude / 2))


# --------------------------------------------------------------------------- contract


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def synthetic_contract(
    *,
    task: str = "binary_classification",
    url: str,
    name: str | None = None,
    table: str = "events",
    label_table: str | None = "event_labels",
    label_delay: str = "1d",
    schedule: str = "@daily",
    start_date: date | datetime = DEFAULT_START,
    prediction: bool = True,
    overrides: dict[str, Any] | None = None,
) -> ModelContract:
    """A contract for `generate_log`'s columns, validated like a YAML file would be.

    `label_table=None` keeps labels in the log table. `overrides` is deep-merged into the raw
    document (e.g. ``{"policy": {"cooldown": "0d"}}``); a value of ``None`` sets the field to null."""
    task_value = Task(task).value
    start = start_date.date() if isinstance(start_date, datetime) else start_date
    labels: dict[str, Any] = {"column": LABEL_COLUMN, "delay": label_delay}
    if label_table is not None:
        labels["table"] = label_table
    source: dict[str, Any] = {
        "url": url,
        "table": table,
        "timestamp_column": TIMESTAMP_COLUMN,
        "id_column": ID_COLUMN,
        "labels": labels,
    }
    if prediction:
        source["prediction_column"] = PREDICTION_COLUMN
    raw: dict[str, Any] = {
        "name": name or f"synthetic_{'binary' if task_value == 'binary_classification' else 'regression'}",
        "description": "Synthetic model generated by driftguard.testing",
        "task": task_value,
        "owners": ["tests@example.com"],
        "schedule": schedule,
        "start_date": start.isoformat(),
        "source": source,
        "features": [
            {"name": "num_0", "kind": "numeric", "nullable": False},
            {"name": "num_1", "kind": "numeric"},
            {"name": "num_2", "kind": "numeric", "range": [0, 100]},
            {"name": "num_3", "kind": "numeric"},
            {"name": "num_4", "kind": "numeric"},
            {"name": "num_5", "kind": "numeric"},
            {"name": "cat_a", "kind": "categorical", "nullable": False, "domain": ["a0", "a1", "a2", "a3"]},
            {"name": "cat_b", "kind": "categorical"},
            {"name": "region", "kind": "categorical", "segment": True},
        ],
    }
    if overrides:
        raw = _deep_merge(raw, overrides)
    # Through YAML and parse_contract: the same validation and error messages as a contract file.
    return parse_contract(yaml.safe_dump(raw, sort_keys=False), file=f"<synthetic_contract {raw['name']}>")


# --------------------------------------------------------------------------- data


def _draw_features(rng: np.random.Generator, n: int) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "num_0": rng.normal(0.0, 1.0, n),
            "num_1": rng.lognormal(1.0, 0.5, n),
            "num_2": rng.uniform(0.0, 100.0, n),
            "num_3": rng.poisson(4.0, n).astype("float64"),
            "num_4": rng.normal(50.0, 10.0, n),
            "num_5": rng.exponential(2.0, n),
        }
    )
    for col, (values, probs) in _CATEGORIES.items():
        df[col] = rng.choice(np.array(values, dtype=object), size=n, p=np.array(probs) / np.sum(probs))
    # A little baseline missingness, as in real logs.
    df.loc[rng.random(n) < 0.02, "num_4"] = np.nan
    df.loc[rng.random(n) < 0.01, "cat_b"] = np.nan
    return df


_MEANS = np.array([0.0, np.exp(1.125), 50.0, 4.0, 50.0, 2.0])
_STDS = np.array([1.0, np.sqrt((np.exp(0.25) - 1) * np.exp(2.25)), 100 / np.sqrt(12), 2.0, 10.0, 2.0])


def _linear(df: pd.DataFrame, weights: np.ndarray, cat_effect: dict[str, dict[str, float]]) -> np.ndarray:
    z = (df[list(NUMERIC)].to_numpy(dtype="float64") - _MEANS) / _STDS
    z = np.nan_to_num(z, nan=0.0)
    out = _BIAS + z @ weights
    for col, effects in cat_effect.items():
        out = out + df[col].map(effects).fillna(0.0).to_numpy(dtype="float64")
    return out


def _drifted_rule(magnitude: float) -> tuple[np.ndarray, dict[str, dict[str, float]]]:
    """Concept drift: the strongest effects reverse and a weak one grows."""
    w = _WEIGHTS.copy()
    w[0] -= 2 * magnitude * _WEIGHTS[0]
    w[1] -= 2 * magnitude * _WEIGHTS[1]
    w[5] += magnitude
    cat = {"cat_a": {k: -v * magnitude for k, v in _CAT_EFFECT["cat_a"].items()}, "region": _CAT_EFFECT["region"]}
    return w, cat


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def generate_log(
    task: str,
    *,
    start: datetime,
    days: int,
    rows_per_day: int,
    seed: int = 0,
    injections: Sequence[Injection] = (),
    label_delay: str | timedelta = "1d",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(log, labels) for `days` days from `start`, deterministic for a seed.

    log: event_id, event_ts (datetime64[ns, UTC], sorted), num_0..num_5, cat_a, cat_b, region,
    prediction. labels: event_id, label (int 0/1 or float), labelled_at = event_ts + label_delay."""
    task_value = Task(task)
    if start.tzinfo is None:
        raise ValueError("start must be tz-aware (UTC)")
    rng = np.random.default_rng(seed)
    n = days * rows_per_day
    day_index = np.repeat(np.arange(days), rows_per_day)
    seconds = np.sort(rng.integers(0, 86_400, size=(days, rows_per_day)), axis=1).ravel()
    ts = pd.Timestamp(start.astimezone(UTC)) + pd.to_timedelta(day_index * 86_400 + seconds, unit="s")
    log = pd.DataFrame({ID_COLUMN: np.arange(1, n + 1, dtype="int64"), TIMESTAMP_COLUMN: ts})
    log = pd.concat([log, _draw_features(rng, n)], axis=1)
    log[TIMESTAMP_COLUMN] = log[TIMESTAMP_COLUMN].astype("datetime64[ns, UTC]")

    def after(inj: Injection) -> np.ndarray:
        return (log[TIMESTAMP_COLUMN] >= pd.Timestamp(inj.start)).to_numpy()

    # Covariate shift first: labels follow the same rule on the shifted features.
    for inj in injections:
        col, mask = inj.target, after(inj)
        if inj.kind == "mean_shift":
            log.loc[mask, col] = log.loc[mask, col] + inj.magnitude * _STDS[NUMERIC.index(col)]
        elif inj.kind == "variance_change":
            mean = _MEANS[NUMERIC.index(col)]
            log.loc[mask, col] = mean + (log.loc[mask, col] - mean) * (1 + inj.magnitude)
        elif inj.kind in ("seasonal", "gradual_shift", "seasonal_concept"):
            elapsed = (log.loc[mask, TIMESTAMP_COLUMN] - pd.Timestamp(inj.start)) / pd.Timedelta(inj.period)
            phase = np.minimum(elapsed, 1.0) if inj.kind == "gradual_shift" else np.sin(2 * np.pi * elapsed)
            log.loc[mask, col] = log.loc[mask, col] + inj.magnitude * _STDS[NUMERIC.index(col)] * phase.to_numpy()

    base = _linear(log, _WEIGHTS, _CAT_EFFECT)
    truth = base.copy()
    for inj in injections:
        if inj.kind == "concept_drift":
            mask = after(inj)
            weights, cat = _drifted_rule(inj.magnitude)
            truth[mask] = _linear(log.loc[mask], weights, cat)
        elif inj.kind == "seasonal_concept":
            # A yearly regime: in the first half of each cycle ("summer") the label follows the
            # drifted rule, else the base one. The season shows in `column` (its mean follows the
            # cycle), so a model that has seen a whole cycle can learn both regimes, and one trained
            # on the last weeks of one season is wrong in the next.
            elapsed = (log[TIMESTAMP_COLUMN] - pd.Timestamp(inj.start)) / pd.Timedelta(inj.period)
            summer = after(inj) & (np.sin(2 * np.pi * elapsed.to_numpy()) > 0)
            weights, cat = _drifted_rule(1.0)
            truth[summer] = _linear(log.loc[summer], weights, cat)
    if task_value is Task.binary_classification:
        label = (rng.random(n) < _sigmoid(truth)).astype("int64")
        log[PREDICTION_COLUMN] = np.round(_sigmoid(base), 6)
    else:
        label = truth * 10 + rng.normal(0.0, 2.0, n)
        log[PREDICTION_COLUMN] = np.round(base * 10, 6)

    # Data-quality faults last, as logging bugs would be.
    for inj in injections:
        col, mask = inj.target, after(inj)
        hit = mask & (rng.random(n) < inj.share)
        if inj.kind == "new_category":
            log.loc[hit, col] = f"{col}_new"
        elif inj.kind == "null_spike":
            log.loc[hit, col] = np.nan
        elif inj.kind == "type_change":
            values = log[col].astype(object)
            values[hit] = [f"{v:.2f} units" if pd.notna(v) else np.nan for v in log.loc[hit, col]]
            log[col] = values

    delay = parse_duration(label_delay)
    labels = pd.DataFrame(
        {ID_COLUMN: log[ID_COLUMN], LABEL_COLUMN: label, "labelled_at": log[TIMESTAMP_COLUMN] + delay}
    )
    return log, labels


# --------------------------------------------------------------------------- writing


def _sql_types(frame: pd.DataFrame) -> dict[str, Any]:
    """Column SQL types: tz-aware timestamps, TEXT for categoricals and for numeric columns
    holding text (a type_change injection), FLOAT for the rest."""
    types: dict[str, Any] = {}
    for col in frame.columns:
        s = frame[col]
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            types[col] = sa.DateTime(timezone=True)
        elif s.dtype == object:
            types[col] = sa.Text()
        elif pd.api.types.is_integer_dtype(s):
            types[col] = sa.BigInteger()
        else:
            types[col] = sa.Float()
    return types


def _textify(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns mixing numbers and text are written as text throughout (NULL stays NULL)."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = [None if pd.isna(v) else str(v) for v in out[col]]
    return out


def _write(conn: sa.Connection, frame: pd.DataFrame, table: str, if_exists: str) -> None:
    schema, _, name = table.rpartition(".")
    frame = _textify(frame)
    frame.to_sql(
        name,
        conn,
        schema=schema or None,
        if_exists=if_exists,  # type: ignore[arg-type]
        index=False,
        chunksize=10_000,
        dtype=_sql_types(frame),
    )


def _index(conn: sa.Connection, table: str, column: str) -> None:
    schema, _, name = table.rpartition(".")
    tbl = sa.Table(name, sa.MetaData(), sa.Column(column), schema=schema or None)
    sa.Index(f"ix_{name}_{column}", tbl.c[column]).create(conn, checkfirst=True)


def write_log(
    url: str, contract: ModelContract, log: pd.DataFrame, labels: pd.DataFrame, *, if_exists: str = "replace"
) -> None:
    """Write the log (and labels) where the contract reads them, with indexes on time and key.

    With ``labels.table`` null the label column is merged into the log table (NULL when absent)."""
    src = contract.source
    if src.table is None:
        raise ValueError(f"{contract.name}: write_log needs source.table (the contract uses a query)")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            if src.labels is not None and src.labels.table is None:
                key = src.label_key
                lab = labels[[key, LABEL_COLUMN]].rename(columns={LABEL_COLUMN: src.labels.column})
                log = log.merge(lab, left_on=src.id_column, right_on=key, how="left")
            _write(conn, log, src.table, if_exists)
            _index(conn, src.table, src.timestamp_column)
            if src.labels is not None and src.labels.table is not None:
                lab = labels.rename(columns={LABEL_COLUMN: src.labels.column, ID_COLUMN: src.label_key})
                _write(conn, lab, src.labels.table, if_exists)
                _index(conn, src.labels.table, src.label_key)
    finally:
        engine.dispose()
