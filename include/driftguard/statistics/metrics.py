"""Task metrics, shared by training, monitoring and the promotion gate.

Every metric is implemented once, in numpy, in a *weighted* form: it takes the rows plus a
matrix of per-row bootstrap counts (replicates x rows) and returns one value per replicate.
The paired bootstrap of the gate evaluates thousands of resamples, and one vectorised call is
orders of magnitude faster than thousands of scikit-learn calls (and sorts the scores once).
The results equal scikit-learn's on ordinary input (the unit tests compare them); the
differences are deliberate and only concern degenerate input.

Degenerate input never raises, the undefined metric is NaN instead (callers decide what a NaN
means; the gate treats it as "not testable"):

- no rows: every metric is NaN;
- ``roc_auc``: NaN unless both classes are present;
- ``precision``: NaN when nothing is predicted positive, ``recall`` NaN when nothing is
  positive, ``f1`` NaN when both (scikit-learn's ``zero_division=np.nan``);
- ``r2``: NaN with fewer than 2 rows or a constant target (scikit-learn would return 0 or 1);
- ``log_loss`` clips probabilities to ``[eps, 1 - eps]`` like scikit-learn and is defined even
  when only one class is present.

A binary score is P(class 1); the predicted class is 1 when ``score >= threshold``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from statistics import NormalDist
from typing import Any

import numpy as np

from driftguard.contract import BINARY_METRICS, GREATER_IS_BETTER, REGRESSION_METRICS, Task

WeightedMetric = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(y_true[n], y_score[n], weights[B, n]) -> values[B]; weights are bootstrap counts (ones = plain metric)."""

_EPS = float(np.finfo(np.float64).eps)


def as_task(task: Task | str) -> Task:
    """Accept the enum or its string value; a typo names the allowed values."""
    try:
        return Task(task.value if isinstance(task, Task) else task)
    except ValueError:
        raise ValueError(f"unknown task {task!r}; expected one of {[t.value for t in Task]}") from None


def metric_names(task: Task | str) -> list[str]:
    """Metric names of a task, in a stable order."""
    if as_task(task) is Task.binary_classification:
        return ["roc_auc", "log_loss", "f1", "brier", "accuracy", "precision", "recall"]
    return ["mae", "rmse", "r2"]


def greater_is_better(name: str) -> bool:
    """Direction of a metric (the contract's vocabulary)."""
    if name not in BINARY_METRICS | REGRESSION_METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {sorted(BINARY_METRICS | REGRESSION_METRICS)}")
    return name in GREATER_IS_BETTER


# --------------------------------------------------------------------------- weighted kernels
# A bootstrap resample only changes how often each original row counts, so every metric is a
# function of per-row counts W[B, n]: means become W @ per_row / W.sum(1), and the AUC needs
# one sort of the original scores instead of one per resample.


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _weighted_mean(per_row: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Row-weighted mean per replicate; NaN for a replicate without rows."""
    return _safe_div(w @ per_row, w.sum(axis=1))


def _roc_auc(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted Mann-Whitney AUC: P(score_pos > score_neg) + 0.5 P(tie), exact and tie-aware."""
    if y.size == 0:
        return np.full(w.shape[0], np.nan)
    order = np.argsort(s, kind="mergesort")
    ss = s[order]
    pos = w[:, order]
    pos *= y[order]
    neg = w[:, order]
    neg -= pos
    if ss.size > 1 and (ss[1:] == ss[:-1]).any():  # tied scores: one group per distinct score
        starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
        pos = np.add.reduceat(pos, starts, axis=1)
        neg = np.add.reduceat(neg, starts, axis=1)
    below = np.cumsum(neg, axis=1)
    below -= 0.5 * neg  # negatives strictly below, plus half of the tied ones
    wins = np.einsum("ij,ij->i", pos, below)
    return _safe_div(wins, pos.sum(axis=1) * neg.sum(axis=1))


def _log_loss(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    p = np.clip(s, _EPS, 1 - _EPS)
    return _weighted_mean(-(y * np.log(p) + (1 - y) * np.log1p(-p)), w)


def _brier(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    return _weighted_mean((s - y) ** 2, w)


def _confusion(y: np.ndarray, s: np.ndarray, w: np.ndarray, threshold: float) -> tuple[np.ndarray, ...]:
    pred = s >= threshold
    pos = y == 1
    return tuple(w @ (m.astype(float)) for m in (pred & pos, pred & ~pos, ~pred & pos, ~pred & ~pos))


def _accuracy(y: np.ndarray, s: np.ndarray, w: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    tp, fp, fn, tn = _confusion(y, s, w, threshold)
    return _safe_div(tp + tn, tp + fp + fn + tn)


def _precision(y: np.ndarray, s: np.ndarray, w: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    tp, fp, _, _ = _confusion(y, s, w, threshold)
    return _safe_div(tp, tp + fp)


def _recall(y: np.ndarray, s: np.ndarray, w: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    tp, _, fn, _ = _confusion(y, s, w, threshold)
    return _safe_div(tp, tp + fn)


def _f1(y: np.ndarray, s: np.ndarray, w: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    tp, fp, fn, _ = _confusion(y, s, w, threshold)
    return _safe_div(2 * tp, 2 * tp + fp + fn)


def _mae(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    return _weighted_mean(np.abs(s - y), w)


def _rmse(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.sqrt(_weighted_mean((s - y) ** 2, w))


def _r2(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    total = w.sum(axis=1)
    yc = y - (y.mean() if y.size else 0.0)  # centre first: no cancellation for large-mean targets
    mean_c = _safe_div(w @ yc, total)
    ss_tot = np.maximum(w @ (yc**2) - total * mean_c**2, 0.0)  # sum w (y - weighted mean)^2
    out = 1.0 - _safe_div(w @ ((y - s) ** 2), ss_tot)
    return np.where(total < 2, np.nan, out)


_KERNELS: dict[str, Callable[..., np.ndarray]] = {
    "roc_auc": _roc_auc,
    "log_loss": _log_loss,
    "brier": _brier,
    "accuracy": _accuracy,
    "precision": _precision,
    "recall": _recall,
    "f1": _f1,
    "mae": _mae,
    "rmse": _rmse,
    "r2": _r2,
}
_THRESHOLDED = {"accuracy", "precision", "recall", "f1"}


def weighted_metric_fn(name: str, *, threshold: float = 0.5) -> WeightedMetric:
    """Vectorised metric over bootstrap count matrices: (y[n], score[n], W[B, n]) -> values[B]."""
    greater_is_better(name)  # validates the name
    kernel = _KERNELS[name]
    return partial(kernel, threshold=threshold) if name in _THRESHOLDED else kernel


def metric_fn(name: str, *, threshold: float = 0.5) -> Callable[[np.ndarray, np.ndarray], float]:
    """Scalar metric (y_true, y_score) -> float, e.g. for a custom bootstrap.

    The threshold for f1/accuracy/precision/recall is bound here (or with functools.partial)."""
    weighted = weighted_metric_fn(name, threshold=threshold)

    def fn(y_true: np.ndarray, y_score: np.ndarray) -> float:
        y, s = _as_pair(y_true, y_score)
        return float(weighted(y, s, np.ones((1, y.size)))[0])

    fn.__name__ = name
    return fn


SE_SAMPLES = 200  # bootstrap resamples for a metric's standard error (relative error of the SE ~5%)
SE_MAX_ROWS = 5_000  # above: measured on a seeded sample and scaled by sqrt(sample / n) (SE ~ 1/sqrt(n))


def metric_se(name: str, y_true: Any, y_score: Any, *, threshold: float = 0.5, seed: int = 0) -> float | None:
    """Bootstrap standard error of a metric on these rows (None when it cannot be measured).

    What a realized metric on n rows would scatter by if the model did not change: the noise a
    metric-drop trigger must see past before it calls a worse number a drop. SE ~ 1/sqrt(n), so
    a large window is measured on a sample and scaled."""
    y, s = _as_pair(y_true, y_score)
    keep = np.isfinite(y) & np.isfinite(s)
    y, s = y[keep], s[keep]
    n = y.size
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    scale = 1.0
    if n > SE_MAX_ROWS:
        pick = rng.choice(n, SE_MAX_ROWS, replace=False)
        y, s, scale = y[pick], s[pick], float(np.sqrt(SE_MAX_ROWS / n))
    m = y.size
    idx = rng.integers(0, m, size=(SE_SAMPLES, m)) + (np.arange(SE_SAMPLES) * m)[:, None]
    counts = np.bincount(idx.ravel(), minlength=SE_SAMPLES * m).reshape(SE_SAMPLES, m).astype(float)
    fn = weighted_metric_fn(name, threshold=threshold)
    values = fn(y, s, counts)
    values = values[np.isfinite(values)]
    if values.size < SE_SAMPLES // 2:
        return None
    se = float(values.std(ddof=1) * scale)
    if name in _BOUNDED and fn(y, s, np.ones((1, m)))[0] >= 1.0 - 1e-12:
        return max(se, se_floor(name, y))  # a perfect score: the bootstrap cannot spread
    return se


_BOUNDED = {"roc_auc", "accuracy", "precision", "recall", "f1"}  # a perfect score sits on the bound


def se_floor(name: str, y_true: np.ndarray) -> float:
    """The least standard error a perfect score of a bounded metric on these rows can claim.

    On a few rows a model often scores perfectly (ROC AUC 1.0 on a 20-row holdout), and then every
    bootstrap resample scores 1.0 too: SE 0, as if the score were exact, and every later window
    looks like a significant drop. A perfect score on n independent cases only says the error rate
    is below 1 - 0.05^(1/n) (95% one-sided, the "rule of three" ~3/n), so the SE is at least that
    distance over z(0.95). n is the minority class's count for classification metrics (ROC AUC
    rests on positive-negative pairs), the rows for accuracy. 0.19 at 8 positives, 0.018 at 100.
    Below a perfect score the bootstrap spreads and its SE stands: a floor there would hide real
    collapses (ROC AUC 0.77 -> 0.3 on 30 rows a month went unseen with it)."""
    if name not in _BOUNDED or y_true.size == 0:
        return 0.0
    if name == "accuracy":
        n = int(y_true.size)
    else:
        positives = int((y_true == 1).sum())
        n = min(positives, int(y_true.size) - positives)
    if n < 1:
        return 0.0
    return (1.0 - 0.05 ** (1.0 / n)) / NormalDist().inv_cdf(0.95)


def _as_pair(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=float).ravel()
    s = np.asarray(y_score, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.size} rows but y_score has {s.size}")
    return y, s


# --------------------------------------------------------------------------- public helpers


def task_metrics(task: Task | str, y_true: Any, y_score: Any, *, threshold: float = 0.5) -> dict[str, float]:
    """All metrics of the task on one scored set (NaN for undefined ones, see the module docstring).

    Binary classification expects labels in {0, 1} and ``y_score`` = P(class 1)."""
    t = as_task(task)
    y, s = _as_pair(y_true, y_score)
    if t is Task.binary_classification:
        bad = ~np.isin(y, (0.0, 1.0))
        if bad.any():
            raise ValueError(f"binary labels must be 0 or 1; found {np.unique(y[bad])[:5].tolist()}")
    ones = np.ones((1, y.size))
    return {name: float(weighted_metric_fn(name, threshold=threshold)(y, s, ones)[0]) for name in metric_names(t)}


def expected_calibration_error(y_true: Any, y_prob: Any, bins: int = 10) -> float:
    """ECE with equal-width bins on [0, 1]: the row-weighted mean |observed rate - mean score|.

    Bins are right-closed except the first ([0, 0.1], (0.1, 0.2], ...), so a score of exactly 1
    falls in the last bin. NaN with no rows."""
    y, p = _as_pair(y_true, y_prob)
    if y.size == 0:
        return float("nan")
    if bins < 1:
        raise ValueError("bins must be >= 1")
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.searchsorted(edges, p, side="left") - 1, 0, bins - 1)
    counts = np.bincount(idx, minlength=bins)
    rate = np.bincount(idx, weights=y, minlength=bins)
    conf = np.bincount(idx, weights=p, minlength=bins)
    used = counts > 0
    gap = np.abs(rate[used] - conf[used]) / counts[used]
    return float((gap * counts[used]).sum() / y.size)


def segment_metrics(
    task: Task | str,
    frame: Any,
    *,
    label: str,
    score: str,
    segments: Sequence[str],
    threshold: float = 0.5,
    min_rows: int = 1,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Metrics per segment value: {segment_col: {value: {"rows": n, metric: v, ...}}}.

    Only segments with at least ``min_rows`` labelled rows are reported (small slices are noise).
    Missing segment values are grouped under ``"<null>"``; values are stringified so the result
    is JSON-ready."""
    missing = [c for c in (label, score, *segments) if c not in frame.columns]
    if missing:
        raise ValueError(f"segment_metrics: columns {missing} not in the frame (has {list(frame.columns)})")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for col in segments:
        keys = frame[col].astype("object").where(frame[col].notna(), "<null>").astype(str)
        per: dict[str, dict[str, Any]] = {}
        for value, idx in keys.groupby(keys, sort=True).groups.items():
            if len(idx) < min_rows:
                continue
            part = frame.loc[idx]
            per[str(value)] = {
                "rows": len(idx),
                **task_metrics(task, part[label].to_numpy(), part[score].to_numpy(), threshold=threshold),
            }
        out[col] = per
    return out


LOW_CONFIDENCE_BAND = 0.1


def proxy_metrics(task: Task | str, scores: Any, *, threshold: float = 0.5) -> dict[str, float]:
    """Label-free health of the scores, usable before labels arrive.

    Binary: mean score, share predicted positive, and the share of scores within 0.1 of the
    decision threshold (low confidence). Regression: mean and standard deviation of predictions."""
    s = np.asarray(scores, dtype=float).ravel()
    s = s[np.isfinite(s)]
    nan = float("nan")
    if as_task(task) is Task.binary_classification:
        if s.size == 0:
            return {"mean_score": nan, "positive_rate": nan, "low_confidence_share": nan}
        return {
            "mean_score": float(s.mean()),
            "positive_rate": float((s >= threshold).mean()),
            "low_confidence_share": float((np.abs(s - threshold) < LOW_CONFIDENCE_BAND).mean()),
        }
    if s.size == 0:
        return {"mean_prediction": nan, "std_prediction": nan}
    return {"mean_prediction": float(s.mean()), "std_prediction": float(s.std(ddof=0))}
