"""The promotion gate: champion vs challenger on the same out-of-time holdout. Pure decisions.

Nothing here does I/O: the caller scores both models on the *same* holdout rows and passes the
arrays (plus the servability result of the fresh-process check); the gate returns a
:class:`GateVerdict` whose checks each carry a verdict, a human reason and the numbers behind
it. ``promote`` is True only if every check passed.

Checks with a champion:

- ``loads_and_scores``: the challenger loads and scores, in a fresh process and on the holdout.
  If it fails, it is the only check: there are no scores or timings to judge.
- ``output_sanity``: challenger (and champion) scores are finite, in [0, 1] for binary tasks,
  and not collapsed to one value. If it fails, the metric checks are not run (their numbers
  would be meaningless) and the verdict is a reject.
- ``primary_metric_threshold``: MLflow MetricThreshold semantics: the challenger must improve
  the primary metric by at least ``min_absolute_change`` and by ``min_relative_change`` x
  |champion|; a threshold of 0 is "not set" and not checked (so ties are left to the
  significance check).
- ``significance``: paired bootstrap of the metric difference (challenger - champion, oriented
  so positive = challenger better). superiority: the CI's lower bound > +margin (ties never
  promote); non_inferiority: lower bound > -margin. The margin is relative to the champion's
  holdout metric (`1%`) or absolute (`0.005 abs`). A CI that contains the bound on fewer rows
  than the planned power needs is *insufficient evidence*: the verdict's ``outcome`` is then
  ``insufficient_evidence``, which does not start a cooldown.
- ``segment_guardrails``: see :func:`segment_guardrails` for the exact rule.
- ``calibration`` (binary): Brier or ECE of the challenger not worse than the champion's by
  more than ``tolerance``.
- ``seasonal_guardrail`` (contracts with ``seasonality``): on the previous cycle's rows of the
  coming phase, out of sample for both models, the challenger must not be worse than the
  champion by more than ``promotion.margin``; see :func:`seasonal_guardrail`. When those rows are
  in a model's training window or too few, the check passes as *not available*, saying why.
- ``servability``: predict cost on a fixed 1,000-row batch in a fresh process, in CPU time: at
  most ``latency_ratio`` times the champion's (timed in the same process) and at most the
  ceiling ``latency_budget_ms`` per 1,000 rows; see :func:`servability_check` for why machine
  load does not move it. No servability result at all is a failure: no evidence, no promotion.

First champion (no champion scores): ``loads_and_scores``, ``output_sanity``,
``first_champion_floors`` (every ``promotion.floors`` metric at or beyond its floor, in the
metric's direction; a floor for a lower-is-better metric is a ceiling) and ``servability``
(the ceiling only).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from driftguard.contract import Change, ModelContract, Task
from driftguard.statistics.metrics import expected_calibration_error, metric_fn, weighted_metric_fn
from driftguard.statistics.metrics import greater_is_better as metric_greater_is_better

if TYPE_CHECKING:
    from driftguard.retraining.servability import ServabilityResult

logger = logging.getLogger(__name__)

Number = float | int | str | None

COLLAPSED_STD = 1e-9
"""Scores whose standard deviation is below this are one constant: the model learned nothing."""

_MAX_CELLS = 2_000_000
"""Resampling indices are drawn in chunks of at most this many cells (B x n), bounding memory."""


# --------------------------------------------------------------------------- verdict types


def _clean(value: Any) -> Number:
    """JSON-safe numbers: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    numbers: dict[str, Number] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "detail": self.detail,
            "numbers": {k: _clean(v) for k, v in self.numbers.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        return cls(data["name"], bool(data["passed"]), data["detail"], dict(data.get("numbers") or {}))


@dataclass(frozen=True)
class GateVerdict:
    promote: bool
    checks: tuple[Check, ...]
    metric: str | None = None
    first_champion: bool = False

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check {name!r} in this verdict; checks: {[c.name for c in self.checks]}")

    @property
    def outcome(self) -> str:
        """`promote`, `insufficient_evidence` (the only failure is an inconclusive CI on too few
        rows: not a rejection, the next attempt is not blocked) or `reject`."""
        if self.promote:
            return "promote"
        failed = self.failed
        if failed and all(c.name == "significance" and c.numbers.get("insufficient_evidence") for c in failed):
            return "insufficient_evidence"
        return "reject"

    def reasons(self) -> list[str]:
        """One line per failed check (empty when promoted)."""
        return [f"{c.name}: {c.detail}" for c in self.failed]

    def summary(self) -> str:
        what = "first champion" if self.first_champion else f"challenger vs champion on {self.metric}"
        if self.promote:
            return f"PROMOTE ({what}): all {len(self.checks)} checks passed"
        if self.outcome == "insufficient_evidence":
            return f"NOT PROMOTED, insufficient evidence ({what}): " + "; ".join(self.reasons())
        return f"REJECT ({what}): " + "; ".join(self.reasons())

    def to_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "outcome": self.outcome,
            "metric": self.metric,
            "first_champion": self.first_champion,
            "summary": self.summary(),
            "checks": [c.to_dict() for c in self.checks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateVerdict:
        return cls(
            promote=bool(data["promote"]),
            checks=tuple(Check.from_dict(c) for c in data["checks"]),
            metric=data.get("metric"),
            first_champion=bool(data.get("first_champion", False)),
        )


# --------------------------------------------------------------------------- statistics


Batched = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(y[n], scores[n], idx[B, n], counts[B, n]) -> metric per resample[B]."""


def _metric_callables(metric: str | Callable[[np.ndarray, np.ndarray], float], threshold: float) -> tuple[str, Batched]:
    """Names use the vectorised weighted kernels (counts); a scalar callable is looped over idx (slow path)."""
    if isinstance(metric, str):
        weighted = weighted_metric_fn(metric, threshold=threshold)
        return metric, lambda y, s, idx, counts: weighted(y, s, counts)
    scalar = metric

    def looped(y: np.ndarray, s: np.ndarray, idx: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return np.array([scalar(y[i], s[i]) for i in idx], dtype=float)

    return getattr(metric, "__name__", "custom"), looped


def _paired_diffs(
    batch: Batched,
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    *,
    sign: float,
    samples: int,
    seed: int,
) -> tuple[float, float, np.ndarray]:
    """Point metrics of a and b, and ``sign * (m(b*) - m(a*))`` for each paired resample.

    The same row indices are used for both models in every resample (paired), which removes
    the shared holdout noise from the difference. Indices are drawn as a (chunk x n) int array
    and turned into per-row counts for the vectorised kernels."""
    n = y.size
    full_idx = np.arange(n)[None, :]
    ones = np.ones((1, n))
    point_a = float(batch(y, a, full_idx, ones)[0])
    point_b = float(batch(y, b, full_idx, ones)[0])
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_CELLS // max(n, 1))
    diffs = np.empty(samples, dtype=float)
    for start in range(0, samples, chunk):
        rows = min(chunk, samples - start)
        idx = rng.integers(0, n, size=(rows, n))
        offsets = (np.arange(rows) * n)[:, None]
        counts = np.bincount((idx + offsets).ravel(), minlength=rows * n).reshape(rows, n).astype(float)
        diffs[start : start + rows] = sign * (batch(y, b, idx, counts) - batch(y, a, idx, counts))
    return point_a, point_b, diffs


def paired_bootstrap(
    metric: str | Callable[[np.ndarray, np.ndarray], float],
    y_true: Any,
    a_scores: Any,
    b_scores: Any,
    *,
    samples: int,
    confidence: float,
    seed: int,
    greater_is_better: bool | None = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Percentile CI of the oriented difference ``b - a`` (positive = b, the challenger, better).

    ``metric`` is a metric name (vectorised) or a scalar callable (y, score) -> float. Resamples
    where the metric is undefined (e.g. one class drawn) are dropped and counted; with fewer
    than half valid, the CI is NaN (inconclusive)."""
    y, a, b = (np.asarray(v, dtype=float).ravel() for v in (y_true, a_scores, b_scores))
    if not (y.size == a.size == b.size):
        raise ValueError(f"paired bootstrap needs equal lengths; got y={y.size}, a={a.size}, b={b.size}")
    if y.size == 0:
        raise ValueError("paired bootstrap needs at least one row")
    if samples < 1 or not 0 < confidence < 1:
        raise ValueError(f"need samples >= 1 and 0 < confidence < 1; got {samples}, {confidence}")
    name, batch = _metric_callables(metric, threshold)
    gib = metric_greater_is_better(name) if greater_is_better is None else greater_is_better
    point_a, point_b, diffs = _paired_diffs(batch, y, a, b, sign=1.0 if gib else -1.0, samples=samples, seed=seed)
    valid = diffs[np.isfinite(diffs)]
    tail = (1.0 - confidence) / 2.0
    if valid.size * 2 >= samples:
        low, high = (float(q) for q in np.quantile(valid, [tail, 1.0 - tail]))
    else:
        low = high = float("nan")
    return {
        "metric": name,
        "greater_is_better": gib,
        "champion": point_a,
        "challenger": point_b,
        "diff": (point_b - point_a) * (1.0 if gib else -1.0),
        "ci_low": low,
        "ci_high": high,
        "confidence": confidence,
        "samples": samples,
        "valid_samples": int(valid.size),
        "se": float(valid.std(ddof=1)) if valid.size > 1 else float("nan"),
        "seed": seed,
    }


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm-Bonferroni step-down: which hypotheses are rejected at family-wise error ``alpha``.

    Sort p ascending; reject the k-th smallest (k = 0..m-1) while p <= alpha / (m - k); stop at
    the first that is not rejected. NaN p-values are never rejected (but count in m)."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    reject = [False] * m
    order = np.argsort(np.where(np.isnan(p), np.inf, p), kind="stable")
    for k, i in enumerate(order):
        if not (p[i] <= alpha / (m - k)):
            break
        reject[int(i)] = True
    return reject


def _one_sided_p(loss: float, boot_losses: np.ndarray, margin: float) -> tuple[float, float]:
    """p-value of H0: loss <= margin vs H1: loss > margin, with the paired-bootstrap standard error.

    Wald test z = (loss - margin) / se(bootstrap); p = 1 - Phi(z). Continuous p-values keep Holm
    usable however many segments there are (a percentile-count p-value bottoms out at 1/(B+1))."""
    valid = boot_losses[np.isfinite(boot_losses)]
    se = float(valid.std(ddof=1)) if valid.size > 1 else float("nan")
    if not math.isfinite(loss) or not math.isfinite(se):
        return float("nan"), se
    if se == 0.0:
        return (0.0 if loss > margin else 1.0), se
    z = (loss - margin) / se
    return 0.5 * math.erfc(z / math.sqrt(2.0)), se


# --------------------------------------------------------------------------- checks


def _score_problems(scores: np.ndarray, task: Task) -> list[str]:
    problems = []
    bad = int((~np.isfinite(scores)).sum())
    if bad:
        problems.append(f"{bad} of {scores.size} scores are NaN/inf")
    finite = scores[np.isfinite(scores)]
    if task is Task.binary_classification and finite.size:
        out = int(((finite < 0) | (finite > 1)).sum())
        if out:
            problems.append(f"{out} probabilities outside [0, 1] (min {finite.min():.4g}, max {finite.max():.4g})")
    if finite.size and float(finite.std()) <= COLLAPSED_STD:
        problems.append(f"predictions collapsed to one value ({finite[0]:.6g})")
    return problems


def output_sanity(task: Task, challenger: np.ndarray, champion: np.ndarray | None) -> Check:
    """Scores must be finite, probabilities in [0, 1], and not one constant."""
    numbers: dict[str, Number] = {"rows": int(challenger.size)}
    issues = []
    for who, scores in (("challenger", challenger), ("champion", champion)):
        if scores is None:
            continue
        finite = scores[np.isfinite(scores)]
        numbers[f"{who}_non_finite"] = int(scores.size - finite.size)
        numbers[f"{who}_min"] = float(finite.min()) if finite.size else None
        numbers[f"{who}_max"] = float(finite.max()) if finite.size else None
        numbers[f"{who}_std"] = float(finite.std()) if finite.size else None
        issues += [f"{who}: {p}" for p in _score_problems(scores, task)]
    if issues:
        return Check("output_sanity", False, "; ".join(issues), numbers)
    return Check("output_sanity", True, "scores finite, in range and not collapsed", numbers)


def primary_metric_threshold(
    metric: str, champion: float, challenger: float, *, gib: bool, min_absolute: float, min_relative: float
) -> Check:
    """MLflow MetricThreshold: improvement >= min_absolute_change and >= min_relative_change x |champion|."""
    improvement = (challenger - champion) if gib else (champion - challenger)
    relative = improvement / abs(champion) if champion else float("nan")
    numbers: dict[str, Number] = {
        "metric": metric,
        "champion": champion,
        "challenger": challenger,
        "improvement": improvement,
        "relative_improvement": relative,
        "min_absolute_change": min_absolute,
        "min_relative_change": min_relative,
    }
    if not (math.isfinite(champion) and math.isfinite(challenger)):
        return Check(
            "primary_metric_threshold",
            False,
            f"{metric} is undefined on the holdout (champion {champion}, challenger {challenger}): "
            "e.g. only one class in the labels",
            numbers,
        )
    failures = []
    if min_absolute > 0 and not improvement >= min_absolute:
        failures.append(f"improvement {improvement:+.4f} < min_absolute_change {min_absolute:g}")
    if min_relative > 0 and not (math.isfinite(relative) and relative >= min_relative):
        failures.append(f"relative improvement {relative:+.2%} < min_relative_change {min_relative:.2%}")
    head = f"{metric} champion {champion:.4f} -> challenger {challenger:.4f}"
    if failures:
        return Check("primary_metric_threshold", False, f"{head}: " + "; ".join(failures), numbers)
    if min_absolute == 0 and min_relative == 0:
        return Check("primary_metric_threshold", True, f"{head} (no minimum change configured)", numbers)
    return Check("primary_metric_threshold", True, f"{head}: meets the minimum change", numbers)


def rows_needed(rows: int, se: float, margin: float, *, confidence: float, power: float) -> int | None:
    """Rows for which a true gain of one margin beyond the decision bound is shown with ``power``.

    The paired difference's standard error shrinks as 1/sqrt(n), so from ``se`` measured on
    ``rows`` rows: n* = rows x ((z_(1+c)/2 + z_power) x se / margin)^2. None when the margin is 0
    (nothing to plan for) or the standard error is unknown."""
    if not (margin > 0 and math.isfinite(se) and se > 0 and rows > 0):
        return None
    z = NormalDist().inv_cdf((1.0 + confidence) / 2.0) + NormalDist().inv_cdf(power)
    return max(rows, math.ceil(rows * (z * se / margin) ** 2))


def significance(boot: dict[str, Any], *, mode: str, margin: Change, rows: int, power: float) -> Check:
    """Where the gain CI lies against the decision bound: +margin (superiority) or -margin
    (non-inferiority), the margin in the metric's units against the champion's holdout metric.

    - lower bound > bound: passed (superiority: better by more than the margin, so a tie never
      promotes; non-inferiority: at most ``margin`` worse, which the detail says);
    - upper bound <= bound: a conclusive rejection;
    - the CI contains the bound: with fewer rows than a gain of one margin needs at ``power``
      (:func:`rows_needed`) it is *insufficient evidence*, not a rejection (``numbers
      ["insufficient_evidence"]`` is 1, and the verdict's outcome says so); with enough rows it is
      a rejection (a tie, measured well enough)."""
    champion = boot["champion"]
    margin_abs = margin.of(champion) if math.isfinite(champion) else float("nan")
    bound = margin_abs if mode == "superiority" else -margin_abs
    low, high, se = boot["ci_low"], boot["ci_high"], boot.get("se", float("nan"))
    needed = rows_needed(rows, se, margin_abs, confidence=boot["confidence"], power=power)
    numbers: dict[str, Number] = {
        "metric": boot["metric"],
        "mode": mode,
        "margin": str(margin),
        "margin_abs": margin_abs,
        "bound": bound,
        "diff": boot["diff"],
        "ci_low": low,
        "ci_high": high,
        "se": se,
        "rows": rows,
        "rows_needed": needed,
        "power": power,
        "confidence": boot["confidence"],
        "samples": boot["samples"],
        "valid_samples": boot["valid_samples"],
        "seed": boot["seed"],
        "insufficient_evidence": 0,
    }
    unit = f"{margin} of {champion:.4f} = {margin_abs:.4f}" if margin.relative else f"{margin_abs:g}"
    ci = f"{boot['confidence'] * 100:.4g}% CI of the {boot['metric']} gain [{low:+.4f}, {high:+.4f}] on {rows:,} rows"
    if not (math.isfinite(low) and math.isfinite(bound)):
        numbers["insufficient_evidence"] = 1
        return Check(
            "significance",
            False,
            f"insufficient evidence: only {boot['valid_samples']}/{boot['samples']} bootstrap resamples had a "
            f"defined {boot['metric']} on {rows:,} rows",
            numbers,
        )
    if low > bound:
        if mode == "superiority":
            return Check("significance", True, f"{ci}: better than the champion by more than {unit}", numbers)
        return Check(
            "significance",
            True,
            f"{ci}: non-inferiority accepted: the challenger is at most {unit} worse than the champion "
            f"(lower bound {low:+.4f} > {bound:+.4f})",
            numbers,
        )
    if high > bound and needed is not None and rows < needed:
        numbers["insufficient_evidence"] = 1
        return Check(
            "significance",
            False,
            f"insufficient evidence: {ci} contains the bound {bound:+.4f} (margin {unit}); about {needed:,} rows "
            f"would show a gain of one margin with {power:.0%} power",
            numbers,
        )
    if mode == "superiority":
        what = "tie" if low <= 0 <= high else "not better"
        return Check("significance", False, f"{ci}: {what}, not better than the champion by more than {unit}", numbers)
    return Check(
        "significance",
        False,
        f"{ci}: lower bound <= {bound:+.4f}, worse than the champion by more than {unit}",
        numbers,
    )


def _segment_keys(values: np.ndarray) -> np.ndarray:
    keys = np.array(["<null>" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values])
    return keys.astype(object)


def segment_guardrails(
    metric: str,
    y: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    segments: Mapping[str, Any],
    *,
    gib: bool,
    threshold: float,
    min_rows: int,
    margin: Change,
    alpha: float,
    samples: int,
    seed: int,
) -> Check:
    """No segment may lose more than ``margin`` of the primary metric, significantly.

    A relative margin (`2.5%`) is taken of the champion's metric in that segment.

    Exact rule. For every segment column and every value with >= ``min_rows`` rows, the loss is
    ``champion - challenger`` oriented so that positive = challenger worse. Each segment tests
    H0: loss <= margin against H1: loss > margin with a one-sided Wald test whose standard error
    is the paired bootstrap's (``samples`` resamples inside the segment, same indices for both
    models). Holm's step-down corrects the p-values over *all* segments of all columns at
    family-wise level ``alpha``. The check fails iff at least one segment's H0 is rejected.
    Segments where the metric is undefined (e.g. one class) are counted as untestable and
    skipped; smaller segments are skipped as noise. A segment whose point loss exceeds the
    margin without significance passes, and is named in the detail as a warning."""
    _, batch = _metric_callables(metric, threshold)
    sign = 1.0 if gib else -1.0
    tested: list[tuple[str, float, float, int, float]] = []  # (label, loss, p, rows, margin in units)
    numbers: dict[str, Number] = {"metric": metric, "margin": str(margin), "alpha": alpha, "min_rows": min_rows}
    untestable = small = 0
    for col_i, (col, raw) in enumerate(segments.items()):
        values = _segment_keys(np.asarray(raw, dtype=object).ravel())
        if values.size != y.size:
            raise ValueError(f"segment column {col!r} has {values.size} values for {y.size} holdout rows")
        for val_i, value in enumerate(sorted(set(values.tolist()))):
            mask = values == value
            rows = int(mask.sum())
            if rows < min_rows:
                small += 1
                continue
            a, b, diffs = _paired_diffs(
                batch,
                y[mask],
                champion[mask],
                challenger[mask],
                sign=sign,
                samples=samples,
                seed=seed + 1009 * col_i + val_i,
            )
            loss = -sign * (b - a)
            if not math.isfinite(loss):
                untestable += 1
                continue
            allowed = margin.of(a)
            p, se = _one_sided_p(loss, -diffs, allowed)
            label = f"{col}={value}"
            tested.append((label, loss, p, rows, allowed))
            numbers[f"loss[{label}]"] = loss
            numbers[f"p[{label}]"] = p
            numbers[f"se[{label}]"] = se
            numbers[f"rows[{label}]"] = rows
    numbers.update(segments_tested=len(tested), segments_untestable=untestable, segments_below_min_rows=small)
    if not tested:
        return Check("segment_guardrails", True, f"no segment with >= {min_rows} rows to test", numbers)
    rejected = holm([t[2] for t in tested], alpha)
    worst = max(tested, key=lambda t: t[1])
    numbers.update(worst_segment=worst[0], worst_loss=worst[1], worst_p=worst[2])
    failing = [t for t, r in zip(tested, rejected, strict=True) if r]
    if failing:
        listed = ", ".join(f"{lbl} loses {loss:.4f} > {m:.4f} (p={p:.2g}, {n} rows)" for lbl, loss, p, n, m in failing)
        numbers["failing_segments"] = ", ".join(t[0] for t in failing)
        return Check(
            "segment_guardrails",
            False,
            f"challenger significantly worse than the champion by more than {margin} {metric} in: {listed} "
            f"(Holm, alpha {alpha:g}, {len(tested)} segments tested)",
            numbers,
        )
    note = ""
    over = [t for t in tested if t[1] > t[4]]
    if over:
        note = "; not significant but above the margin: " + ", ".join(f"{t[0]} ({t[1]:.4f})" for t in over)
    return Check(
        "segment_guardrails",
        True,
        f"{len(tested)} segments tested, none significantly worse than the margin {margin}; "
        f"worst {worst[0]} loses {worst[1]:.4f}{note}",
        numbers,
    )


def calibration(
    task: Task, y: np.ndarray, champion: np.ndarray, challenger: np.ndarray, *, metric: str, tolerance: float
) -> Check:
    """Binary only: Brier or ECE of the challenger at most ``tolerance`` worse than the champion's."""
    if task is not Task.binary_classification:
        return Check("calibration", True, "not applicable to regression", {"metric": None})
    if metric == "ece":
        champ, chall = expected_calibration_error(y, champion), expected_calibration_error(y, challenger)
    else:
        brier = metric_fn("brier")
        champ, chall = brier(y, champion), brier(y, challenger)
    worse = chall - champ
    numbers: dict[str, Number] = {
        "metric": metric,
        "champion": champ,
        "challenger": chall,
        "worsening": worse,
        "tolerance": tolerance,
    }
    head = f"{metric} champion {champ:.4f} -> challenger {chall:.4f}"
    if not worse <= tolerance:
        return Check("calibration", False, f"{head}: worse by {worse:.4f} > tolerance {tolerance:g}", numbers)
    return Check("calibration", True, f"{head}: within tolerance {tolerance:g}", numbers)


LATENCY_RATIO_FLOOR_MS = 5.0
"""The latency ratio's denominator is at least this many ms per 1,000 rows: below 5 µs a row a
predict is per-call overhead, and a challenger 3x as slow as a near-free champion is still cheap
to serve (the ceiling still applies to it)."""


def _last_line(text: str | None) -> str:
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "unknown error"


def loads_and_scores(result: ServabilityResult | None, in_process_error: str | None = None) -> Check:
    """The challenger loads and scores: in a fresh process (``result``, see
    :mod:`driftguard.retraining.servability`) and in the evaluating process, on the holdout
    (``in_process_error`` is that failure, if any). A model that fails either way fails this
    check, named with the error's last line, and the gate runs no other check on it: there are
    no scores to judge (NaN scores would otherwise be reported as ``output_sanity`` failures).
    No fresh-process result at all is left to ``servability`` to fail."""
    uri = result.model_uri if result is not None else None
    numbers: dict[str, Number] = {
        "model_uri": uri,
        "load_seconds": None if result is None else result.load_seconds,
        "rows": None if result is None else result.rows,
    }
    if result is not None and not result.ok:
        return Check(
            "loads_and_scores",
            False,
            f"{uri} does not load or score in a fresh process: {_last_line(result.error)}",
            {**numbers, "error": result.error},
        )
    if in_process_error:
        return Check(
            "loads_and_scores",
            False,
            f"{uri or 'the challenger'} does not load or score the holdout: {_last_line(in_process_error)}",
            {**numbers, "error": in_process_error},
        )
    if result is None:
        return Check("loads_and_scores", True, "scores the holdout (no fresh-process result)", numbers)
    load = f" (load {result.load_seconds:.2f}s)" if result.load_seconds is not None else ""
    return Check("loads_and_scores", True, f"loads and scores in a fresh process{load} and on the holdout", numbers)


def servability_check(result: ServabilityResult | None, budget_ms: float, max_ratio: float | None = None) -> Check:
    """Predict cost, judged so that the verdict does not move with machine load.

    The numbers are the median CPU time of one thread predicting a fixed 1,000-row batch in a
    fresh process, the challenger and the champion interleaved (:mod:`driftguard.retraining.servability`).
    Rule: fail when the challenger takes more than ``budget_ms`` per 1,000 rows (the ceiling,
    ``promotion.latency_budget_ms``, also with no champion), or when it takes more than
    ``max_ratio`` (``promotion.latency_ratio``) times the champion's time, the champion's
    floored at :data:`LATENCY_RATIO_FLOOR_MS`. Without a champion timing (first champion, or
    the champion failed in the child) only the ceiling is judged.

    Why load does not move the verdict: CPU time leaves out waiting for a core, which is most
    of what load does (beside two CPU hogs on its core the wall time tripled, the CPU time rose
    about 10%); what load does to CPU time (caches, memory bandwidth, clock) it does to both
    models of the ratio alike (measured: 2.41x idle, 2.28x beside two hogs). What remains: a
    ratio within ~10% of ``max_ratio``, or a time within ~20% under the ceiling, can still flip.
    The defaults keep real models far from both: retrains of one contract differ in cost by well
    under 3x (MLflow's per-call input checks and the encoders are a fixed part of every predict:
    50 vs 200 boosting iterations measured 2.4x), and 2,000 ms per 1,000 rows is 2 ms a row,
    100x what the tabular models here take (8-20 ms), and over half an hour of CPU for a
    million-row daily batch. A model that is not
    compute-bound (e.g. one waiting on the network) is under-timed by CPU time: its wall-clock
    medians are in the numbers."""
    if result is None:
        return Check("servability", False, "not checked: no fresh-process load/predict result was given", {})
    ms, champ = result.ms_per_1k_rows, result.champion_ms_per_1k_rows
    ratio = None if ms is None or champ is None else ms / max(champ, LATENCY_RATIO_FLOOR_MS)
    numbers: dict[str, Number] = {
        "model_uri": result.model_uri,
        "champion_uri": result.champion_uri,
        "ms_per_1k_rows": ms,
        "champion_ms_per_1k_rows": champ,
        "ratio": ratio,
        "latency_ratio": max_ratio,
        "ratio_floor_ms": LATENCY_RATIO_FLOOR_MS,
        "latency_budget_ms": budget_ms,
        "wall_ms_per_1k_rows": result.wall_ms_per_1k_rows,
        "champion_wall_ms_per_1k_rows": result.champion_wall_ms_per_1k_rows,
        "repeats": result.repeats,
        "rows": result.rows,
        "load_seconds": result.load_seconds,
        "champion_load_seconds": result.champion_load_seconds,
        "process_seconds": result.process_seconds,
    }
    if result.champion_error:
        numbers["champion_error"] = result.champion_error
    if not result.ok:
        return Check(
            "servability",
            False,
            f"not timed: {result.model_uri} does not load or score: {_last_line(result.error)}",
            {**numbers, "error": result.error},
        )
    if ms is None:
        return Check("servability", False, f"not timed: no predict time recorded for {result.model_uri}", numbers)
    failures = []
    if ms > budget_ms:
        failures.append(f"too slow: {ms:.1f} ms per 1k rows > latency_budget_ms {budget_ms:g}")
    champion = ""
    if champ is not None:
        floored = f", counted as {LATENCY_RATIO_FLOOR_MS:g}" if champ < LATENCY_RATIO_FLOOR_MS else ""
        champion = f"the champion's {champ:.1f}{floored}"
    if ratio is not None and max_ratio is not None and ratio > max_ratio:
        failures.append(f"{ratio:.2f}x {champion} ms per 1k rows > latency_ratio {max_ratio:g}")
    if failures:
        return Check("servability", False, "; ".join(failures), numbers)
    if ratio is not None and max_ratio is not None:
        judged = f"{ratio:.2f}x {champion} (limits {max_ratio:g}x and {budget_ms:g} ms)"
    elif result.champion_error:
        judged = f"ceiling {budget_ms:g} ms; champion not timed: {_last_line(result.champion_error)}"
    else:
        judged = f"ceiling {budget_ms:g} ms; no champion timing to compare"
    load = f"; loads in {result.load_seconds:.2f}s" if result.load_seconds is not None else ""
    return Check("servability", True, f"{ms:.1f} ms per 1k rows, {judged}{load}", numbers)


def first_champion_floors(metrics: Mapping[str, float], floors: Mapping[str, float]) -> Check:
    """Absolute floors for a first champion (a ceiling for lower-is-better metrics)."""
    numbers: dict[str, Number] = {}
    failures = []
    for name, floor in sorted(floors.items()):
        value = metrics.get(name, float("nan"))
        gib = metric_greater_is_better(name)
        ok = value >= floor if gib else value <= floor  # False for NaN
        numbers[name] = value
        numbers[f"{name}_floor"] = floor
        if not ok:
            failures.append(f"{name} {value:.4f} {'<' if gib else '>'} floor {floor:g}")
    if not floors:
        return Check("first_champion_floors", True, "first champion: no floors configured", numbers)
    if failures:
        return Check("first_champion_floors", False, "first champion below floor: " + "; ".join(failures), numbers)
    met = ", ".join(f"{n} {metrics[n]:.4f}" for n in sorted(floors))
    return Check("first_champion_floors", True, f"first champion meets every floor: {met}", numbers)


# --------------------------------------------------------------------------- seasonal guardrail


SEASONAL_HORIZON_SHARE = 0.25
"""The guardrail's horizon is at most this share of the seasonal period (a season of four)."""

SEASONAL_SEED_OFFSET = 7919
"""Added to ``promotion.bootstrap.seed`` for the guardrail's resamples (other rows, other draws)."""


def seasonal_horizon(contract: ModelContract) -> timedelta:
    """How far ahead of the retrain the guardrail looks: the time the new model serves at least
    before the next decision can replace it, i.e. the longest of one schedule interval (the next
    monitoring run), ``policy.cooldown`` (no retrain before it) and ``training.holdout`` (the span
    the gate judged the recent past on), at most :data:`SEASONAL_HORIZON_SHARE` of the period."""
    from driftguard.statistics.calibration import schedule_length

    period = contract.seasonality
    if period is None:
        raise ValueError(f"model {contract.name!r} declares no seasonality")
    ahead = max(schedule_length(contract.schedule), contract.policy.cooldown, contract.training.holdout)
    return min(ahead, period * SEASONAL_HORIZON_SHARE)


def seasonal_phase(contract: ModelContract, now: datetime) -> tuple[datetime, datetime] | None:
    """[now - P, now - P + H): the previous cycle's rows of the phase the new model serves next
    (``now`` is the end of the retrain's holdout, H :func:`seasonal_horizon`); None without
    ``seasonality``."""
    if contract.seasonality is None:
        return None
    lo = now - contract.seasonality
    return lo, lo + seasonal_horizon(contract)


Window = tuple[datetime, datetime]


@dataclass(frozen=True)
class SeasonalRows:
    """The previous cycle's same phase, read and scored by the caller (:func:`seasonal_guardrail`).

    ``challenger_window`` and ``champion_window`` are the rows each model was fitted on,
    half-open [start, end) in event time (None: unknown). ``times``, ``y_true`` and the scores
    are the labelled rows of [start, end) as read; ``unavailable`` says why there are none
    (nothing was read: in sample, a read or score failure)."""

    start: datetime
    end: datetime
    challenger_window: Window | None
    champion_window: Window | None
    times: Any = None
    y_true: Any = None
    champion_scores: Any = None
    challenger_scores: Any = None
    unavailable: str | None = None


def _day_or_minute(at: datetime) -> str:
    return (
        f"{at:%Y-%m-%d}" if (at.hour, at.minute, at.second, at.microsecond) == (0, 0, 0, 0) else f"{at:%Y-%m-%d %H:%M}"
    )


def _span(lo: datetime, hi: datetime) -> str:
    return f"{_day_or_minute(lo)}..{_day_or_minute(hi)}"


def seasonal_in_sample(phase: Window, challenger: Window | None, champion: Window | None) -> str | None:
    """Why the phase cannot be judged before reading a row: it lies wholly inside a model's
    training window, or the champion's is unknown. None: some rows may be out of sample for both."""
    lo, hi = phase
    span = _span(lo, hi)
    for who, window in (("challenger", challenger), ("champion", champion)):
        if window is None:
            return f"the {who}'s training window is unknown (no driftguard.window_start / train_end tags)"
        if window[0] <= lo and hi <= window[1]:
            return f"rows of {span} are in the {who}'s training window ({_span(*window)})"
    return None


def _not_available(reason: str, numbers: dict[str, Number]) -> Check:
    numbers.update(available=0, status="not_available", reason=reason)
    return Check("seasonal_guardrail", True, f"not available: {reason}", numbers)


def seasonal_guardrail(
    rows: SeasonalRows | None,
    *,
    metric: str,
    gib: bool,
    threshold: float,
    margin: Change,
    confidence: float,
    samples: int,
    seed: int,
    min_rows: int,
    power: float,
) -> Check:
    """The challenger must not be clearly worse than the champion in the coming season.

    Rule. Of the previous cycle's rows of the coming phase (:func:`seasonal_phase`), only those
    outside both models' training windows count. Both models' scores on them give a paired
    bootstrap CI ``[lo, hi]`` of the gain (positive = challenger better, in the metric's
    direction); the bound is ``-m``, ``m`` = ``promotion.margin`` against the champion's metric
    on these rows (non-inferiority, whatever ``promotion.mode``: the guardrail protects, it does
    not select).

    - ``lo > -m``: passed (not worse by more than the margin);
    - the CI contains ``-m`` on fewer rows than :func:`rows_needed` (power ``power``): passed as
      *inconclusive* (too few rows to tell), the detail and numbers say so;
    - else (the CI lies below ``-m``, or contains it on enough rows): failed, a rejection.

    *Not available* (passes, never silently): no rows given, the phase is in a model's training
    window, fewer than ``min_rows`` rows out of sample for both, or the metric is undefined on
    them. The numbers always carry the phase, the rows and, once computed, the CI."""
    if rows is None:
        return _not_available("not evaluated: no same-phase rows were given to the gate", {})
    span = _span(rows.start, rows.end)
    numbers: dict[str, Number] = {
        "metric": metric,
        "start": rows.start.isoformat(),
        "end": rows.end.isoformat(),
        "challenger_window": None if rows.challenger_window is None else _span(*rows.challenger_window),
        "champion_window": None if rows.champion_window is None else _span(*rows.champion_window),
        "margin": str(margin),
        "min_rows": min_rows,
    }
    reason = rows.unavailable or seasonal_in_sample(
        (rows.start, rows.end), rows.challenger_window, rows.champion_window
    )
    if reason is not None:
        return _not_available(reason, numbers)
    import pandas as pd

    times = pd.to_datetime(pd.Series(np.asarray(rows.times).ravel()), utc=True)
    y, champ, chall = _as_float(rows.y_true), _as_float(rows.champion_scores), _as_float(rows.challenger_scores)
    if not (len(times) == y.size == champ.size == chall.size):
        raise ValueError(
            f"seasonal guardrail: times, labels and both models' scores must be the same rows "
            f"({len(times)}, {y.size}, {champ.size}, {chall.size})"
        )
    keep = np.ones(y.size, dtype=bool)
    inside: dict[str, int] = {}
    for who, (lo, hi) in (("challenger", rows.challenger_window), ("champion", rows.champion_window)):
        mask = ((times >= pd.Timestamp(lo)) & (times < pd.Timestamp(hi))).to_numpy()
        inside[who] = int(mask.sum())
        keep &= ~mask
    n = int(keep.sum())
    numbers.update(
        rows_read=int(y.size),
        rows_in_challenger_window=inside["challenger"],
        rows_in_champion_window=inside["champion"],
        rows=n,
    )
    if n < min_rows:
        seen = [f"{k} in the {who}'s training window" for who, k in inside.items() if k]
        why = f" ({', '.join(seen)})" if seen else ""
        return _not_available(
            f"{n:,} of {y.size:,} labelled rows of {span} are out of sample for both models{why}, fewer than "
            f"{min_rows} (training.min_holdout_rows)",
            numbers,
        )
    boot = paired_bootstrap(
        metric,
        y[keep],
        champ[keep],
        chall[keep],
        samples=samples,
        confidence=confidence,
        seed=seed,
        greater_is_better=gib,
        threshold=threshold,
    )
    champion, challenger, low, high = boot["champion"], boot["challenger"], boot["ci_low"], boot["ci_high"]
    margin_abs = margin.of(champion) if math.isfinite(champion) else float("nan")
    bound = -margin_abs
    needed = rows_needed(n, boot["se"], margin_abs, confidence=confidence, power=power)
    numbers.update(
        champion=champion,
        challenger=challenger,
        diff=boot["diff"],
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        margin_abs=margin_abs,
        bound=bound,
        se=boot["se"],
        rows_needed=needed,
        samples=samples,
        seed=seed,
    )
    if not (math.isfinite(low) and math.isfinite(bound)):
        return _not_available(
            f"{metric} is undefined on the {n:,} rows of {span} (champion {champion:.4g}, challenger "
            f"{challenger:.4g}, {boot['valid_samples']}/{samples} resamples defined)",
            numbers,
        )
    head = (
        f"challenger {metric} {challenger:.4g} vs champion {champion:.4g} on {span} (same phase last cycle, "
        f"n={n:,}), {confidence * 100:.4g}% CI of the gain [{low:+.4g}, {high:+.4g}]"
    )
    unit = f"{margin} of {champion:.4g} = {margin_abs:.4g}" if margin.relative else f"{margin_abs:g}"
    numbers["available"] = 1
    if low > bound:
        numbers["status"] = "passed"
        return Check("seasonal_guardrail", True, f"{head}: not worse than the champion by more than {unit}", numbers)
    if high > bound and needed is not None and n < needed:
        numbers["status"] = "inconclusive"
        return Check(
            "seasonal_guardrail",
            True,
            f"inconclusive, does not block: {head} contains the bound {bound:+.4g} (margin {unit}); about "
            f"{needed:,} rows would tell",
            numbers,
        )
    numbers["status"] = "failed"
    return Check(
        "seasonal_guardrail",
        False,
        f"{head}: worse than the champion by more than {unit} in the coming season (lower bound {low:+.4g} "
        f"<= {bound:+.4g})",
        numbers,
    )


# --------------------------------------------------------------------------- the gate


def _as_float(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=float).ravel()


def evaluate_gate(
    contract: ModelContract,
    *,
    y_true: Any,
    champion_scores: Any | None,
    challenger_scores: Any,
    segments: Mapping[str, Any] | None = None,
    servability: ServabilityResult | None = None,
    challenger_error: str | None = None,
    seasonal: SeasonalRows | None = None,
) -> GateVerdict:
    """Decide promotion from scores on the same holdout rows. Pure: same input, same verdict.

    ``challenger_error`` is why the challenger could not be loaded or scored in the caller's
    process (then ``challenger_scores`` may be None); it, or a fresh-process ``servability``
    result that is not ok, makes ``loads_and_scores`` the verdict's only check. ``seasonal``:
    the previous cycle's same-phase rows for ``seasonal_guardrail`` (contracts with
    ``seasonality`` and a champion; without it the check says it was not evaluated)."""
    task, promo = contract.task, contract.promotion
    metric, threshold = contract.primary_metric, contract.decision_threshold
    loads = loads_and_scores(servability, challenger_error)
    if not loads.passed:  # nothing to judge: no scores, no timing
        return _verdict(contract, [loads], metric, first=champion_scores is None)
    y = _as_float(y_true)
    chall = _as_float(challenger_scores)
    champ = None if champion_scores is None else _as_float(champion_scores)
    _validate_inputs(contract, y, chall, champ)

    sanity = output_sanity(task, chall, champ)
    serve = servability_check(servability, promo.latency_budget_ms, promo.latency_ratio)
    if champ is None:
        checks: list[Check] = [loads, sanity]
        if sanity.passed:
            metrics = {n: metric_fn(n, threshold=threshold)(y, chall) for n in promo.floors}
            checks.append(first_champion_floors(metrics, promo.floors))
        checks.append(serve)
        return _verdict(contract, checks, metric, first=True)

    checks = [loads, sanity]
    if sanity.passed:
        checks += _paired_checks(contract, y, champ, chall, segments or {})
        if contract.seasonality is not None:
            checks.append(_seasonal_check(contract, seasonal))
    checks.append(serve)
    return _verdict(contract, checks, metric, first=False)


def _seasonal_check(contract: ModelContract, rows: SeasonalRows | None) -> Check:
    promo = contract.promotion
    return seasonal_guardrail(
        rows,
        metric=contract.primary_metric,
        gib=contract.greater_is_better,
        threshold=contract.decision_threshold,
        margin=promo.margin,
        confidence=promo.bootstrap.confidence,
        samples=promo.bootstrap.samples,
        seed=promo.bootstrap.seed + SEASONAL_SEED_OFFSET,
        min_rows=contract.training.min_holdout_rows,
        power=promo.power,
    )


def evaluate_paired(
    contract: ModelContract,
    *,
    y_true: Any,
    champion_scores: Any,
    challenger_scores: Any,
    segments: Mapping[str, Any] | None = None,
) -> GateVerdict:
    """The gate's judgement of paired scores alone: ``output_sanity``, then
    ``primary_metric_threshold``, ``significance``, ``segment_guardrails`` and ``calibration``,
    with the contract's promotion settings. For evidence gathered after registration (batch
    shadow scoring, :mod:`driftguard.retraining.shadow`): ``loads_and_scores`` and ``servability`` were
    judged when the challenger was registered and are not repeated. Pure, like evaluate_gate."""
    y, chall, champ = _as_float(y_true), _as_float(challenger_scores), _as_float(champion_scores)
    _validate_inputs(contract, y, chall, champ)
    sanity = output_sanity(contract.task, chall, champ)
    checks = [sanity]
    if sanity.passed:
        checks += _paired_checks(contract, y, champ, chall, segments or {})
    return _verdict(contract, checks, contract.primary_metric, first=False)


def _paired_checks(
    contract: ModelContract, y: np.ndarray, champ: np.ndarray, chall: np.ndarray, segments: Mapping[str, Any]
) -> list[Check]:
    """The checks on the metric (sane scores of both models on the same rows)."""
    task, promo = contract.task, contract.promotion
    metric, gib, threshold = contract.primary_metric, contract.greater_is_better, contract.decision_threshold
    boot = paired_bootstrap(
        metric,
        y,
        champ,
        chall,
        samples=promo.bootstrap.samples,
        confidence=promo.bootstrap.confidence,
        seed=promo.bootstrap.seed,
        greater_is_better=gib,
        threshold=threshold,
    )
    return [
        primary_metric_threshold(
            metric,
            boot["champion"],
            boot["challenger"],
            gib=gib,
            min_absolute=promo.min_absolute_change,
            min_relative=promo.min_relative_change,
        ),
        significance(boot, mode=promo.mode, margin=promo.margin, rows=int(y.size), power=promo.power),
        segment_guardrails(
            metric,
            y,
            champ,
            chall,
            segments,
            gib=gib,
            threshold=threshold,
            min_rows=promo.segments.min_rows,
            margin=promo.segments.margin,
            alpha=promo.segments.alpha,
            samples=promo.bootstrap.samples,
            seed=promo.bootstrap.seed,
        ),
        calibration(task, y, champ, chall, metric=promo.calibration.metric, tolerance=promo.calibration.tolerance),
    ]


def _validate_inputs(contract: ModelContract, y: np.ndarray, chall: np.ndarray, champ: np.ndarray | None) -> None:
    """Caller bugs (not model quality) raise, naming the model and the array."""
    name = contract.name
    if y.size == 0:
        raise ValueError(f"gate for model {name!r}: the holdout has no labelled rows")
    if chall.size != y.size or (champ is not None and champ.size != y.size):
        sizes = f"y_true={y.size}, challenger_scores={chall.size}"
        if champ is not None:
            sizes += f", champion_scores={champ.size}"
        raise ValueError(f"gate for model {name!r}: both models must be scored on the same holdout rows ({sizes})")
    if not np.isfinite(y).all():
        raise ValueError(f"gate for model {name!r}: y_true has {int((~np.isfinite(y)).sum())} missing labels")
    if contract.task is Task.binary_classification and not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"gate for model {name!r}: binary labels must be 0 or 1")


def _verdict(contract: ModelContract, checks: list[Check], metric: str, *, first: bool) -> GateVerdict:
    verdict = GateVerdict(
        promote=all(c.passed for c in checks), checks=tuple(checks), metric=metric, first_champion=first
    )
    log = logger.info if verdict.promote else logger.warning
    log("gate for model %s: %s", contract.name, verdict.summary())
    return verdict
