"""Effect sizes for drift, computed the way Evidently computes them, plus the fast chunk forms
that calibration needs. Pure numpy: no I/O, no Evidently import.

* numeric: the first Wasserstein distance in reference standard deviations (Evidently's
  ``wasserstein``: ``W1(ref, cur) / max(std(ref), 0.001)``). A mean shift of d standard
  deviations scores d, whatever the window size, so it reads as an effect size.
* categorical: the Jensen-Shannon distance of the category shares (Evidently's
  ``jensenshannon`` for categorical columns, natural log: 0 = same shares, 0.83 = disjoint).

Calibration compares every reference chunk with the rest of the reference. Both statistics
have exact shortcuts for that: a chunk c is part of the full reference R, so
``F_R = w F_c + (1 - w) F_rest`` (w = c's share of R's rows) and therefore
``W1(c, rest) = W1(c, R) / (1 - w)``; category counts of the rest are R's minus c's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from driftguard.statistics.profile import FINITE_LIMIT

STD_FLOOR = 0.001  # Evidently's floor for the reference std (a constant column)
WASSERSTEIN = "wasserstein"
JENSENSHANNON = "jensenshannon"


@dataclass(frozen=True)
class Values:
    """One side of a column: the usable values and what was set aside."""

    values: np.ndarray  # float64 (numeric) or object (categorical), nulls and non-finite removed
    nulls: int
    nonfinite: int  # +-inf, or magnitudes too large to compute with (numeric only)

    @property
    def rows(self) -> int:
        return len(self.values)


# Values beyond this magnitude are what the `finite` quality check fails (profile.FINITE_LIMIT,
# float32's largest value): treated like inf, reported and left out, so that 1e308 can neither
# turn a score into NaN (its square overflows) nor count as a value.
MAX_MAGNITUDE = FINITE_LIMIT


def usable(series: pd.Series, *, numeric: bool) -> Values:
    """The column's comparable values: nulls dropped; for numeric columns +-inf and
    magnitudes above MAX_MAGNITUDE dropped and counted (text must be coerced before)."""
    nulls = int(series.isna().sum())
    if not numeric:
        return Values(series.dropna().astype(str).to_numpy(dtype=object), nulls, 0)
    arr = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    arr = arr[~np.isnan(arr)]
    ok = np.isfinite(arr) & (np.abs(arr) <= MAX_MAGNITUDE)
    return Values(arr[ok], nulls, int((~ok).sum()))


def effect_method(numeric: bool) -> str:
    return WASSERSTEIN if numeric else JENSENSHANNON


def effect(reference: np.ndarray, current: np.ndarray, *, numeric: bool) -> float:
    """Normed Wasserstein (numeric) or Jensen-Shannon distance (categorical) of two samples."""
    if numeric:
        scale = max(float(np.std(reference)), STD_FLOOR)
        return float(stats.wasserstein_distance(reference, current)) / scale
    ref_keys, ref_counts = np.unique(reference, return_counts=True)
    cur_keys, cur_counts = np.unique(current, return_counts=True)
    keys = np.union1d(ref_keys, cur_keys)
    p = np.zeros(len(keys))
    q = np.zeros(len(keys))
    p[np.searchsorted(keys, ref_keys)] = ref_counts
    q[np.searchsorted(keys, cur_keys)] = cur_counts
    return _js(p, q)


def _js(p: np.ndarray, q: np.ndarray) -> float:
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    return float(distance.jensenshannon(p / p.sum(), q / q.sum()))


class ChunkEffects:
    """Effect of any subset of the reference against the rest of it, without re-sorting the reference.

    Built once per column; `of(index)` takes the positions of the subset's rows in `values`."""

    def __init__(self, values: np.ndarray, *, numeric: bool):
        self.numeric = numeric
        self.n = len(values)
        self._values = values
        if numeric:
            order = np.argsort(values, kind="stable")
            self._sorted = values[order]
            self._steps = np.diff(self._sorted)
            # F_R just right of each sorted point but the last (the integral's pieces).
            self._cdf = np.searchsorted(self._sorted, self._sorted[:-1], side="right") / self.n
            self._scale = max(float(np.std(values)), STD_FLOOR)
        else:
            self._keys, self._codes = np.unique(values, return_inverse=True)
            self._counts = np.bincount(self._codes, minlength=len(self._keys)).astype("float64")

    def of(self, index: np.ndarray) -> float:
        k = len(index)
        if k == 0 or k >= self.n:
            return float("nan")
        w = k / self.n
        if self.numeric:
            chunk = np.sort(self._values[index])
            cdf_c = np.searchsorted(chunk, self._sorted[:-1], side="right") / k
            w1 = float(np.sum(np.abs(cdf_c - self._cdf) * self._steps)) / (1 - w)
            return w1 / self._scale
        c = np.bincount(self._codes[index], minlength=len(self._keys)).astype("float64")
        return _js(self._counts - c, c)


def effective_rows(n: int, m: int) -> float:
    """n*m/(n+m): the size that sets a two-sample statistic's noise (noise ~ 1/sqrt of it)."""
    return n * m / (n + m) if n > 0 and m > 0 else 0.0
