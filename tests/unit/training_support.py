"""Contracts and feature logs shared by the training and reference tests.

Thin layer over driftguard.testing: a small (3,000 rows, 60 days) synthetic log with real
signal, missing values and delayed labels, written to a real SQLite file. Binary models keep
labels in a separate table; regression models in the log table itself (both layouts covered).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from driftguard import testing
from driftguard.contract import ModelContract
from driftguard.testing import DEFAULT_START as T0
from driftguard.testing import ID_COLUMN, LABEL_COLUMN, TIMESTAMP_COLUMN
from mlflow_support import restored_mlflow_globals

DAYS = 60
ROWS_PER_DAY = 50
AS_OF = T0 + timedelta(days=DAYS + 1)  # every label (delay 1d) has matured
TS, ID, LABEL = TIMESTAMP_COLUMN, ID_COLUMN, LABEL_COLUMN
FEATURES = ["num_0", "num_1", "num_2", "num_3", "num_4", "num_5", "cat_a", "cat_b", "region"]


def make_contract(task: str, url: str, *, name: str | None = None, **sections: Any) -> ModelContract:
    """Small, fast training settings; `sections` are deep-merged into the contract document."""
    binary = task == "binary_classification"
    overrides: dict[str, Any] = {
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
        if isinstance(value, dict) and isinstance(overrides.get(key), dict):
            overrides[key] = {**overrides[key], **value}
        else:
            overrides[key] = value
    return testing.synthetic_contract(
        task=task,
        url=url,
        name=name or ("toy_binary" if binary else "toy_regression"),
        label_table="event_labels" if binary else None,
        overrides=overrides,
    )


def make_log(task: str, *, days: int = DAYS, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    return testing.generate_log(task, start=T0, days=days, rows_per_day=ROWS_PER_DAY, seed=seed)


def seeded_log(tmp_dir: Path, task: str, *, seed: int = 0) -> str:
    """A SQLite feature log for `task` in tmp_dir; returns its URL."""
    url = f"sqlite:///{tmp_dir}/feature_log_{task}.db"
    log, labels = make_log(task, seed=seed)
    testing.write_log(url, make_contract(task, url), log, labels)
    return url


def labelled_frame(task: str, *, days: int = 20, seed: int = 1) -> pd.DataFrame:
    """A training-shaped frame built in memory with sources' dtypes (no database)."""
    log, labels = make_log(task, days=days, seed=seed)
    frame = log.drop(columns=["prediction"]).merge(labels[[ID, LABEL]], on=ID)
    for col in ("cat_a", "cat_b", "region"):
        frame[col] = frame[col].astype(object).where(frame[col].notna(), np.nan)
    return frame


def tracking(tmp_dir: Path) -> str:
    return f"sqlite:///{tmp_dir}/mlflow.db"


@pytest.fixture(scope="module", autouse=True)
def restore_mlflow_globals() -> Iterator[None]:
    """mlflow_setup.configure points MLflow (and MLFLOW_TRACKING_URI) at a test's store for the
    whole process; put the previous state back when the module ends (tests/mlflow_support.py)."""
    with restored_mlflow_globals():
        yield
