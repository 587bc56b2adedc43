"""What one monitoring run found, as the policy reads it and the history store returns it.

A module of its own (stdlib only) so that `store` and `policy` share the type without either
importing the other: the store records facts, the policy judges them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["DRIFT_TRIGGERS", "RunFacts"]

DRIFT_TRIGGERS = ("drift_share", "important_features")
"""The policy's triggers that read a run's drift (the health board shows them as "drift")."""


@dataclass(frozen=True)
class RunFacts:
    """What one monitoring run found (also what the store returns as history)."""

    model: str
    interval_start: datetime
    interval_end: datetime
    status: str  # "ok" | "degraded" | "no_data" | "quality_failed"
    quality_passed: bool
    drift_share: float | None
    drifted_features: tuple[str, ...]
    metric_value: float | None
    labelled_rows: int
    retrain: bool = False
    drift_share_threshold: float | None = None  # the reference-calibrated share trigger, when known
    weighted_drift_share: float | None = None  # drifted features' share of the champion's importance
    estimated_metric: float | None = None  # the primary metric estimated before labels (CBPE/DLE)
    estimated_band: tuple[float, float] | None = None  # its band (value +- 3 sigma)
    metric_se: float | None = None  # bootstrap standard error of metric_value (its sampling noise)
