"""Synthetic feature logs and contracts shared by the training and reference tests.

Small (a few thousand rows over 60 days) but with real signal, missing values, a rare
category and delayed labels, written to a real SQLite file and read back through sources.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from driftguard.contract import ModelContract

T0 = datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 60
AS_OF = T0 + timedelta(days=DAYS + 1)  # every label (delay 1d) has matured
CAT_EFFECT = {"a": 0.8, "b": -0.8, "c": 0.0, "d": 1.2}


def make_contract(task: str, url: str, *, name: str | None = None, **sections: Any) -> ModelContract:
    """Binary: labels in a separate table. Regression: the label lives in the log table."""
    binary = task == "binary_classification"
    raw: dict[str, Any] = {
        "name": name or ("toy_binary" if binary else "toy_regression"),
        "task": task,
        "owners": ["ml@example.com"],
        "start_date": "2024-01-01",
        "source": {
            "url": url,
            "table": "scoring_log",
            "timestamp_column": "ts",
            "id_column": "event_id",
            "prediction_column": "prediction",
            "labels": {"table": "labels" if binary else None, "column": "y", "delay": "1d"},
        },
        "features": [
            {"name": "x1", "kind": "numeric"},
            {"name": "x2", "kind": "numeric"},
            {"name": "cat", "kind": "categorical"},
            {"name": "region", "kind": "categorical", "segment": True},
        ],
        "reference": {"start": "2024-01-01", "end": "2024-01-15", "sample_size": 1000},
        "training": {
            "estimator": "hist_gradient_boosting" if binary else "ridge",
            "params": {"max_iter": 50} if binary else {"alpha": 1.0},
            "seed": 7,
            "window": "all",
            "validation": "7d",
            "holdout": "7d",
            "max_rows": 100_000,
        },
    }
    for key, value in sections.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) and isinstance(raw.get(key), dict) else value
    return ModelContract.model_validate(raw)


def make_log(task: str, n: int = 3000, *, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scoring log, labels): n events spread evenly over DAYS days from T0."""
    rng = np.random.default_rng(seed)
    step = timedelta(days=DAYS) / n
    ts = pd.to_datetime([T0 + i * step for i in range(n)], utc=True)
    x1 = rng.normal(size=n)
    x2 = rng.uniform(0, 10, size=n)
    cat = rng.choice(list(CAT_EFFECT), size=n).astype(object)
    cat[rng.random(n) < 0.01] = "rare"
    region = rng.choice(["north", "south"], size=n).astype(object)
    effect = np.array([CAT_EFFECT.get(c, 0.0) for c in cat])
    x2_missing = rng.random(n) < 0.05
    cat[rng.random(n) < 0.03] = None
    if task == "binary_classification":
        logit = 1.5 * x1 - 0.3 * (x2 - 5) + effect
        prob = 1 / (1 + np.exp(-logit))
        y: np.ndarray = (rng.random(n) < prob).astype("int64")
        prediction = 1 / (1 + np.exp(-(logit + rng.normal(scale=0.5, size=n))))
    else:
        y = 3 * x1 + 0.5 * x2 + 2 * effect + rng.normal(scale=0.5, size=n)
        prediction = y + rng.normal(scale=1.0, size=n)
    x2 = np.where(x2_missing, np.nan, x2)
    log = pd.DataFrame(
        {
            "event_id": np.arange(1, n + 1),
            "ts": ts,
            "x1": x1,
            "x2": x2,
            "cat": cat,
            "region": region,
            "prediction": prediction,
        }
    )
    labels = pd.DataFrame({"event_id": log["event_id"], "y": y})
    return log, labels


def write_log(url: str, task: str, log: pd.DataFrame, labels: pd.DataFrame) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        if task == "binary_classification":
            log.to_sql("scoring_log", conn, index=False, if_exists="replace")
            labels.to_sql("labels", conn, index=False, if_exists="replace")
        else:
            log.assign(y=labels["y"].to_numpy()).to_sql("scoring_log", conn, index=False, if_exists="replace")
    engine.dispose()


def seeded_log(tmp_dir: Any, task: str, *, n: int = 3000, seed: int = 0) -> str:
    """A SQLite feature log for `task` in tmp_dir; returns its URL."""
    url = f"sqlite:///{tmp_dir}/feature_log_{task}.db"
    log, labels = make_log(task, n, seed=seed)
    write_log(url, task, log, labels)
    return url


def tracking(tmp_dir: Any) -> str:
    return f"sqlite:///{tmp_dir}/mlflow.db"
