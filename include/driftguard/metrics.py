"""Task metrics, shared by training, monitoring and the promotion gate.

Every metric is implemented once, in numpy, in a *batched* form: it takes 2-D arrays of shape
(replicates, rows) and returns one value per replicate. The paired bootstrap of the gate
evaluates thousands of resamples, and one vectorised call is orders of magnitude faster than
thousands of scikit-learn calls. The results equal scikit-learn's on ordinary input (the unit
tests compare them); the differences are deliberate and only concern degenerate input.

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
from typing import Any

import numpy as np

from driftguard.contract import BINARY_METRICS, GREATER_IS_BETTER, REGRESSION_METRICS, Task

BatchMetric = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(y_true[B, n], y_score[B, n]) -> values[B]."""

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


# --------------------------------------------------------------------------- batched kernels


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _no_rows(y: np.ndarray) -> np.ndarray | None:
    """NaN per replicate when there are no rows (a mean over nothing is undefined)."""
    return np.full(y.shape[0], np.nan) if y.shape[1] == 0 else None


def _rank_rows(s: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) per row, ties share their mean rank (like scipy's rankdata)."""
    b, n = s.shape
    order = np.argsort(s, axis=1, kind="mergesort")
    ss = np.take_along_axis(s, order, axis=1)
    # Tie groups: a new group starts wherever the sorted value changes.
    new = np.ones((b, n), dtype=bool)
    new[:, 1:] = ss[:, 1:] != ss[:, :-1]
    group = np.cumsum(new, axis=1) - 1  # group id per sorted position, per row
    pos = np.broadcast_to(np.arange(1, n + 1, dtype=float), (b, n))
    flat = group + (np.arange(b)[:, None] * n)  # unique group ids across rows
    sums = np.bincount(flat.ravel(), weights=pos.ravel(), minlength=b * n)
    counts = np.bincount(flat.ravel(), minlength=b * n)
    avg = _safe_div(sums, counts)[flat]
    ranks = np.empty_like(avg)
    np.put_along_axis(ranks, order, avg, axis=1)
    return ranks


def _roc_auc(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Mann-Whitney form of the ROC AUC: exact, tie-aware, one sort per row."""
    if (empty := _no_rows(y)) is not None:
        return empty
    n1 = y.sum(axis=1)
    n0 = y.shape[1] - n1
    rank_sum = (_rank_rows(s) * y).sum(axis=1)
    return _safe_div(rank_sum - n1 * (n1 + 1) / 2.0, n1 * n0)


def _log_loss(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    if (empty := _no_rows(y)) is not None:
        return empty
    p = np.clip(s, _EPS, 1 - _EPS)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p)).mean(axis=1)


def _brier(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    if (empty := _no_rows(y)) is not None:
        return empty
    return ((s - y) ** 2).mean(axis=1)


def _confusion(y: np.ndarray, s: np.ndarray, threshold: float) -> tuple[np.ndarray, ...]:
    pred = s >= threshold
    pos = y == 1
    tp = (pred & pos).sum(axis=1)
    fp = (pred & ~pos).sum(axis=1)
    fn = (~pred & pos).sum(axis=1)
    tn = (~pred & ~pos).sum(axis=1)
    return tp, fp, fn, tn


def _accuracy(y: np.ndarray, s: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    tp, fp, fn, tn = _confusion(y, s, threshold)
    return _safe_div(tp + tn, tp + fp + fn + tn)


def _precision(y: np.ndarray, s: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    tp, fp, _, _ = _confusion(y, s, threshold)
    return _safe_div(tp, tp + fp)


def _recall(y: np.ndarray, s: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    tp, _, fn, _ = _confusion(y, s, threshold)
    return _safe_div(tp, tp + fn)


def _f1(y: np.ndarray, s: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    tp, fp, fn, _ = _confusion(y, s, threshold)
    return _safe_div(2 * tp, 2 * tp + fp + fn)


def _mae(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    if (empty := _no_rows(y)) is not None:
        return empty
    return np.abs(s - y).mean(axis=1)


def _rmse(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    if (empty := _no_rows(y)) is not None:
        return empty
    return np.sqrt(((s - y) ** 2).mean(axis=1))


def _r2(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    if y.shape[1] < 2:
        return np.full(y.shape[0], np.nan)
    ss_res = ((y - s) ** 2).sum(axis=1)
    ss_tot = ((y - y.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    return 1.0 - _safe_div(ss_res, ss_tot)


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


def batch_metric_fn(name: str, *, threshold: float = 0.5) -> BatchMetric:
    """Vectorised metric over resamples: (y[B, n], score[B, n]) -> values[B]."""
    greater_is_better(name)  # validates the name
    kernel = _KERNELS[name]
    return partial(kernel, threshold=threshold) if name in _THRESHOLDED else kernel


def metric_fn(name: str, *, threshold: float = 0.5) -> Callable[[np.ndarray, np.ndarray], float]:
    """Scalar metric (y_true, y_score) -> float, e.g. for a custom bootstrap.

    The threshold for f1/accuracy/precision/recall is bound here (or with functools.partial)."""
    batch = batch_metric_fn(name, threshold=threshold)

    def fn(y_true: np.ndarray, y_score: np.ndarray) -> float:
        y, s = _as_pair(y_true, y_score)
        return float(batch(y[None, :], s[None, :])[0])

    fn.__name__ = name
    return fn


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
    yb, sb = y[None, :], s[None, :]
    return {name: float(batch_metric_fn(name, threshold=threshold)(yb, sb)[0]) for name in metric_names(t)}


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
