"""Per-feature statistics of a frame: the reference profile.

Written next to the champion's reference sample when a model is trained, and read by the
quality suite (learned ranges, domains, null shares) and by the drift report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from driftguard.contract import FeatureKind, ModelContract

QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
MAX_CATEGORIES = 500
# The largest magnitude a numeric value may have: float32's largest finite value. scikit-learn's
# tree models compute in float32, where anything larger (1e308 is a valid float64) becomes infinity
# ("Input X contains infinity or a value too large for dtype('float32')"), and scaling it overflows.
# Beyond it, a value is "non-finite" for Driftguard: the `finite` quality check fails it, scoring
# and drift leave it out, training drops its row.
FINITE_LIMIT = float(np.finfo(np.float32).max)


def non_finite(values: Any) -> np.ndarray:
    """Mask of values that are numbers but not usable ones: +/-inf or |x| > FINITE_LIMIT (NaN is
    missing, not non-finite)."""
    arr = np.asarray(values, dtype="float64")
    with np.errstate(invalid="ignore"):
        return ~np.isnan(arr) & ~(np.abs(arr) <= FINITE_LIMIT)


def _num(x: Any) -> float | None:
    return None if x is None or pd.isna(x) else float(x)


def profile_frame(df: pd.DataFrame, contract: ModelContract) -> dict[str, Any]:
    """JSON-able profile: row count, then per feature its null share and either numeric
    moments and quantiles or category shares (of non-null values, most frequent first)."""
    features: dict[str, Any] = {}
    for feature in contract.features:
        col = df[feature.name]
        entry: dict[str, Any] = {
            "kind": feature.kind.value,
            "count": int(col.notna().sum()),
            "null_share": float(col.isna().mean()) if len(col) else 0.0,
        }
        if feature.kind is FeatureKind.numeric:
            values = pd.to_numeric(col, errors="coerce").dropna()
            values = values[~non_finite(values)]  # an inf would make the learned range and moments inf
            qs = values.quantile(list(QUANTILES)) if len(values) else pd.Series(dtype=float)
            entry.update(
                mean=_num(values.mean()),
                std=_num(values.std()),
                min=_num(values.min()),
                max=_num(values.max()),
                quantiles={f"{q:g}": _num(qs.get(q, np.nan)) for q in QUANTILES},
            )
        else:
            shares = col.dropna().astype(str).value_counts(normalize=True)
            entry["categories"] = {str(k): float(v) for k, v in shares.head(MAX_CATEGORIES).items()}
            entry["distinct"] = len(shares)
        features[feature.name] = entry
    return {"rows": len(df), "features": features}
