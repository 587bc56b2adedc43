"""Drift thresholds calibrated on the reference: what "normal" variation looks like for a window
of production size, so that an alarm means something.

The reference period is cut into time-contiguous chunks the length of one production interval
(so seasonality and autocorrelation inside the reference count as normal) and every feature's
effect size (drift_stats) is computed for each chunk against the rest of the reference. Those
K values are the feature's null distribution. The alarm threshold is a one-sided prediction
bound for one more draw from it: on the log scale (distances are positive and right-skewed),
``exp(mean + t(K-1, 1-alpha) * sd * sqrt(1 + 1/K))``. With K chunks the mean and sd are
estimates, so the Student t quantile and the sqrt(1 + 1/K) term widen the bound as K shrinks;
the bound's false-alarm rate per feature and window is about `alpha` if the log-effects are
roughly normal. The threshold is never below the largest chunk value (a reference chunk is by
definition normal) nor below `drift.min_effect` (a million-row window must not flag a shift too
small to matter).

Dataset level: each chunk's drifted share is counted with thresholds calibrated without that
chunk (leave-one-out, so the count is out of sample). `share_threshold` is one feature more than
the largest such share: a share that normal reference chunks reached is no evidence. The
report's dataset-drift flag and the policy's drift-share trigger use the larger of it and their
configured share, so correlated features cannot multiply false alarms.

Fallbacks, each recorded in `Calibration.source` and warned about:
* "random subsamples": the reference spans fewer than `drift.calibration.min_chunks` intervals;
  the chunks are random row subsets of a window's size instead. That calibrates sampling noise
  but not seasonality.
* "default": too few reference rows even for that; thresholds are `drift.min_effect`.

Pure: no I/O, no clock. `Calibration` round-trips through JSON (it is cached per reference).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from driftguard.contract import FeatureKind, ModelContract, format_duration
from driftguard.statistics.drift_stats import MAX_MAGNITUDE, ChunkEffects, effective_rows, usable

TIME_CHUNKS = "time chunks"
RANDOM_SUBSAMPLES = "random subsamples"
DEFAULT = "default"
RANDOM_DRAWS = 50  # random subsamples drawn when the reference is too short for time chunks
_LOG_FLOOR = 1e-6  # an effect of exactly 0 (identical shares) must not become log(0)


@dataclass(frozen=True)
class FeatureThreshold:
    """One feature's calibrated alarm threshold on its effect size, and where it came from."""

    feature: str
    method: str  # wasserstein | jensenshannon (drift_stats.effect_method)
    threshold: float
    chunks: int  # null draws behind it (0 for the default)
    null_max: float | None  # the largest reference-chunk effect
    null_median: float | None
    effective_rows: float  # n_eff of a calibration comparison (thresholds scale with 1/sqrt of it)

    def describe(self, source: str, alpha: float) -> str:
        if self.chunks == 0:
            return f"threshold {self.threshold:.3g}: default (drift.min_effect), not calibrated"
        bound = f"{1 - alpha:.1%} prediction bound of {self.chunks} reference {_unit(source)}"
        return f"threshold {self.threshold:.3g}: {bound} (largest seen {self.null_max:.3g})"

    def at(self, rows: float) -> float:
        """The threshold for a comparison of `rows` effective rows: a smaller window is noisier,
        so its threshold grows with sqrt(n_eff_cal / n_eff); a larger one keeps the calibrated
        value (the seasonal part of the null does not shrink with more rows)."""
        if self.chunks == 0 or rows <= 0 or rows >= self.effective_rows:
            return self.threshold
        return self.threshold * math.sqrt(self.effective_rows / rows)


def _unit(source: str) -> str:
    return "chunks" if source == TIME_CHUNKS else "subsamples"


@dataclass(frozen=True)
class Calibration:
    """Per-feature thresholds and the dataset-level share threshold for one reference."""

    source: str  # TIME_CHUNKS | RANDOM_SUBSAMPLES | DEFAULT
    window: str  # the production interval the chunks stand for, e.g. "7d"
    chunk_rows: int  # median rows per chunk
    alpha: float
    features: dict[str, FeatureThreshold]
    share_threshold: float  # the drifted share normal chunks never reached (0: no calibration)
    chunk_shares: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    settings: str = ""  # settings_key of the contract it was calibrated for (stale when it changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["features"] = {k: asdict(v) for k, v in self.features.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        features = {k: FeatureThreshold(**v) for k, v in (d.get("features") or {}).items()}
        return cls(**{**dict(d), "features": features})


def prediction_bound(null: Sequence[float], alpha: float) -> float:
    """One-sided (1 - alpha) prediction bound for a new draw, log-normal model of the null."""
    logs = np.log(np.maximum(np.asarray(null, dtype="float64"), _LOG_FLOOR))
    k = len(logs)
    if k < 3:
        return float(np.max(null))
    sd = float(np.std(logs, ddof=1))
    t = float(stats.t.ppf(1 - alpha, df=k - 1))
    return float(math.exp(float(np.mean(logs)) + t * sd * math.sqrt(1 + 1 / k)))


def _loo_shares(nulls: Mapping[str, np.ndarray], n_features: int, alpha: float, min_effect: float) -> list[float]:
    """Each chunk's drifted share, every feature judged by a threshold calibrated without that chunk."""
    if not nulls:
        return []
    k = min(len(v) for v in nulls.values())
    if k < 4:
        return []
    drifted = np.zeros(k)
    for arr in nulls.values():
        for j in range(k):
            rest = np.delete(arr[:k], j)
            thr = max(prediction_bound(rest, alpha), float(rest.max()), min_effect)
            drifted[j] += arr[j] >= thr
    return [float(x) for x in drifted / max(n_features, 1)]


def _time_chunks(ts: pd.Series, window: timedelta, min_rows: int) -> list[np.ndarray]:
    """Row positions per contiguous interval of `window` length from the first timestamp;
    intervals with fewer than min_rows rows are left out (a gap is not a window)."""
    t = pd.to_datetime(ts, utc=True, errors="coerce")
    ok = t.notna().to_numpy()
    start = t[ok].min()
    bucket = np.full(len(t), -1, dtype="int64")
    bucket[ok] = ((t[ok] - start) // pd.Timedelta(window)).to_numpy(dtype="int64")
    chunks = []
    for b in np.unique(bucket[bucket >= 0]):
        idx = np.flatnonzero(bucket == b)
        if len(idx) >= min_rows:
            chunks.append(idx)
    if len(chunks) > 1 and len(chunks[-1]) < 0.5 * np.median([len(c) for c in chunks]):
        chunks = chunks[:-1]  # a partial last interval is noisier than a production window
    return chunks


def _random_chunks(n: int, size: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(n, size=size, replace=False)) for _ in range(RANDOM_DRAWS)]


def calibrate(
    reference: pd.DataFrame,
    features: Mapping[str, bool],
    *,
    timestamps: pd.Series | None,
    window: timedelta,
    window_rows: int | None,
    alpha: float,
    min_chunks: int,
    min_rows: int,
    min_effect: float,
    seed: int = 0,
) -> Calibration:
    """Thresholds for `features` (name -> numeric?) from the reference frame.

    timestamps: the reference rows' event times (None: no time order known).
    window_rows: the expected rows of a production window (for random subsamples when the
    reference is too short; default: the median time chunk, else a tenth of the reference)."""
    n = len(reference)
    warnings: list[str] = []
    chunks: list[np.ndarray] = []
    if timestamps is not None and n:
        chunks = _time_chunks(timestamps.reset_index(drop=True), window, min_rows)
    source = TIME_CHUNKS
    if len(chunks) < min_chunks:
        size = window_rows or (int(np.median([len(c) for c in chunks])) if chunks else n // 10)
        size = min(max(size, min_rows), n // 2)
        spans = f"{len(chunks)} interval(s) of {_fmt(window)}" if timestamps is not None else "no time order"
        if size >= min_rows and n - size >= min_rows:
            source = RANDOM_SUBSAMPLES
            chunks = _random_chunks(n, size, seed)
            warnings.append(
                f"reference spans {spans}, fewer than drift.calibration.min_chunks={min_chunks}: thresholds come "
                f"from {RANDOM_DRAWS} random subsamples of {size:,} rows, which calibrate sampling noise but not "
                "seasonality; give the model a longer reference to calibrate that"
            )
        else:
            source, chunks = DEFAULT, []
            warnings.append(
                f"reference has {n:,} rows ({spans}), too few to calibrate: thresholds are drift.min_effect "
                f"({min_effect:g}); give the model a longer reference"
            )
    thresholds: dict[str, FeatureThreshold] = {}
    null_by_feature: dict[str, np.ndarray] = {}
    for name, numeric in features.items():
        method = "wasserstein" if numeric else "jensenshannon"
        col = reference[name] if name in reference.columns else pd.Series([], dtype="float64")
        keep = col.notna().to_numpy()
        if numeric:
            as_num = pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            keep = keep & np.isfinite(as_num) & (np.abs(np.nan_to_num(as_num)) <= MAX_MAGNITUDE)
        positions = np.flatnonzero(keep)
        values = usable(col, numeric=numeric).values
        nulls = []
        if chunks and len(values) >= 2 * min_rows:
            # Map each chunk's row positions to positions among the usable values.
            rank = np.full(n, -1, dtype="int64")
            rank[positions] = np.arange(len(positions))
            effects = ChunkEffects(values, numeric=numeric)
            sizes = []
            for idx in chunks:
                sub = rank[idx]
                sub = sub[sub >= 0]
                if len(sub) >= min_rows and len(values) - len(sub) >= min_rows:
                    nulls.append(effects.of(sub))
                    sizes.append(effective_rows(len(sub), len(values) - len(sub)))
            nulls = [x for x in nulls if np.isfinite(x)]
        if len(nulls) >= 3:
            arr = np.asarray(nulls)
            null_by_feature[name] = arr
            thr = max(prediction_bound(arr, alpha), float(arr.max()), min_effect)
            thresholds[name] = FeatureThreshold(
                name, method, thr, len(arr), float(arr.max()), float(np.median(arr)), float(np.median(sizes))
            )
        else:
            thresholds[name] = FeatureThreshold(name, method, min_effect, 0, None, None, 0.0)
    shares = _loo_shares(null_by_feature, len(features), alpha, min_effect)
    share = (max(shares) + 1 / max(len(features), 1)) if shares else 0.0
    chunk_rows = int(np.median([len(c) for c in chunks])) if chunks else 0
    return Calibration(
        source=source,
        window=_fmt(window),
        chunk_rows=chunk_rows,
        alpha=alpha,
        features=thresholds,
        share_threshold=float(min(share, 1.0)),
        chunk_shares=shares,
        warnings=warnings,
    )


def _fmt(td: timedelta) -> str:
    return format_duration(td)


def settings_key(contract: ModelContract) -> str:
    """What a calibration depends on besides the reference: a stored one is reused only while this
    is unchanged (drift settings, schedule, features, the policy's share)."""
    parts = [contract.drift.model_dump(mode="json"), contract.schedule, contract.feature_names]
    text = json.dumps([*parts, contract.policy.drift_share], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def calibrate_for(
    contract: ModelContract,
    reference: pd.DataFrame,
    *,
    timestamps: pd.Series | None = None,
    window: timedelta | None = None,
    window_rows: int | None = None,
    seed: int = 0,
) -> Calibration:
    """The contract's calibration of its features on this reference.

    window: the production interval (default: the contract's schedule). Without timestamps the
    reference is calibrated on random subsamples of window_rows rows."""
    cfg = contract.drift
    cal = calibrate(
        reference,
        {f.name: f.kind is FeatureKind.numeric for f in contract.features},
        timestamps=timestamps,
        window=window or schedule_length(contract.schedule),
        window_rows=window_rows,
        alpha=cfg.calibration.alpha,
        min_chunks=cfg.calibration.min_chunks,
        min_rows=cfg.min_rows,
        min_effect=cfg.min_effect,
        seed=seed,
    )
    return Calibration(**{**cal.__dict__, "settings": settings_key(contract)})


def schedule_length(schedule: str) -> timedelta:
    """One interval of a preset or cron schedule (the gap between two consecutive fires)."""
    presets = {
        "@hourly": timedelta(hours=1),
        "@daily": timedelta(days=1),
        "@weekly": timedelta(days=7),
        "@monthly": timedelta(days=30),
        "@quarterly": timedelta(days=91),
        "@yearly": timedelta(days=365),
        "@annually": timedelta(days=365),
        "@once": timedelta(days=7),
    }
    if schedule in presets:
        return presets[schedule]
    from croniter import croniter

    it = croniter(schedule, datetime(2024, 1, 1, tzinfo=UTC))
    first = it.get_next(datetime)
    return it.get_next(datetime) - first
