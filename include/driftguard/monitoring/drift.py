"""Distribution drift of one window against the champion's reference.

Every column gets a verdict with its evidence: the rows compared on each side, the values set
aside (nulls, +-inf, overflowing magnitudes), an effect size (drift_stats: Wasserstein in
reference standard deviations for numeric columns, Jensen-Shannon distance for categorical
ones) and the threshold with where it came from. Three outcomes:

* ``insufficient data``: fewer than ``drift.min_rows`` usable values on a side. Not drift, and
  left out of the drift share's denominator (a 1-row window cannot show 14 of 14 features drifted).
* ``drift``: the test crossed its threshold AND the effect is at least ``drift.min_effect``.
* ``ok``: otherwise.

Method ``auto`` (the default) tests the effect size itself against a threshold calibrated on the
reference (calibration.py): what one production window of normal data scores. An explicit
method (ks, psi, chisquare, ...) runs Evidently's own stattest for the column with the
contract's threshold, or the method's default.

Verdicts are computed and kept before any HTML: the report (Driftguard's header and verdict
table, reports.drift_sections, plus Evidently's ValueDrift plots, drawn with the method the
verdict used, one column at a time) may fail for a column, which is then named in
``render_errors`` and makes the run ``degraded``; it never costs a verdict. The plots name columns
as a reader knows them (reports.column_label: the score column is "model score") and draw the
current window over event time when it has a timestamp column: ValueDrift ignores the data
definition's timestamp, but bins a datetime index by period instead of "Index binned".

Both sides are sampled to at most drift.sample_size rows (seeded) so run time and memory stay
bounded whatever the window size (see NOTES.md for the accuracy of 100k samples).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftguard.contract import FeatureKind, ModelContract, Task
from driftguard.monitoring import _evidently as ev
from driftguard.statistics import drift_stats as ds
from driftguard.statistics.calibration import Calibration, calibrate_for

log = logging.getLogger(__name__)

TEST_THREADS = 2  # an Airflow worker slot shares its machine: two threads, not one per core
P_VALUE_METHODS = frozenset({"ks", "chisquare", "z", "anderson"})  # drift when score < threshold
NUMERIC_ONLY = frozenset({"ks", "wasserstein", "anderson"})
CATEGORICAL_ONLY = frozenset({"chisquare"})


class DriftError(ValueError):
    """Drift cannot be computed for this model and data; the message says what to fix."""

    def __init__(self, message: str, *, model: str, column: str | None = None):
        self.model = model
        self.column = column
        super().__init__(f"model {model}: {message}")


OK = "ok"
DRIFT = "drift"
INSUFFICIENT = "insufficient data"


@dataclass(frozen=True)
class FeatureDrift:
    """Verdict for one column, with its evidence. method/threshold/score: the test applied
    (for `auto` the effect size against its calibrated threshold)."""

    feature: str
    kind: str
    method: str
    threshold: float
    score: float
    drifted: bool
    status: str = OK  # ok | drift | insufficient data
    reference_rows: int = 0  # usable values compared on each side
    current_rows: int = 0
    nonfinite: int = 0  # current-side values set aside as +-inf or overflowing
    effect: float | None = None  # drift_stats.effect: Wasserstein (stds) or Jensen-Shannon
    effect_method: str = ""
    basis: str = ""  # how the threshold was set, for the report

    @property
    def severity(self) -> float:
        """How far past its threshold, comparable across methods: score/threshold for
        distances, log(p)/log(threshold) for p-values (1.0 = on the threshold)."""
        if self.status == INSUFFICIENT or not math.isfinite(self.score):
            return 0.0
        if self.method in P_VALUE_METHODS:
            p = min(max(self.score, 1e-300), 1.0)
            return math.log(p) / math.log(self.threshold) if 0 < self.threshold < 1 else 0.0
        return self.score / self.threshold if self.threshold else 0.0


@dataclass
class DriftResult:
    """Features' verdicts (drift_share counts features with enough data only), prediction/target apart.

    sample_rows: rows used on the larger side after sampling (each side <= drift.sample_size).
    drift_share is None when no feature had enough data for a verdict."""

    features: list[FeatureDrift]
    drift_share: float | None
    dataset_drift: bool
    prediction: FeatureDrift | None
    target: FeatureDrift | None
    reference_rows: int
    current_rows: int
    sample_rows: int
    report_path: str | None = None
    model: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # feature -> why it was not compared
    share_threshold: float | None = None  # dataset drift at this share: drift.drift_share or the calibrated need
    calibration: dict[str, Any] | None = None  # source, window, chunks, warnings (calibration.Calibration)
    render_errors: dict[str, str] = field(default_factory=dict)  # column -> why its plot failed
    weighted_share: float | None = None  # drifted features' share of the champion's importance

    @property
    def drifted_features(self) -> list[str]:
        """Drifted feature names, most severe first (prediction and target excluded)."""
        drifted = sorted((f for f in self.features if f.drifted), key=lambda f: (-f.severity, f.feature))
        return [f.feature for f in drifted]

    @property
    def insufficient(self) -> list[str]:
        return [f.feature for f in self.features if f.status == INSUFFICIENT]

    @property
    def degraded(self) -> bool:
        """Verdicts are complete but the report is not (a plot failed)."""
        return bool(self.render_errors)

    def to_dict(self) -> dict[str, Any]:
        def one(f: FeatureDrift | None) -> dict[str, Any] | None:
            return None if f is None else {**asdict(f), "severity": f.severity}

        return {
            "model": self.model,
            "features": [one(f) for f in self.features],
            "drifted_features": self.drifted_features,
            "insufficient_features": self.insufficient,
            "drift_share": self.drift_share,
            "share_threshold": self.share_threshold,
            "weighted_share": self.weighted_share,
            "dataset_drift": self.dataset_drift,
            "prediction": one(self.prediction),
            "target": one(self.target),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "sample_rows": self.sample_rows,
            "report_path": self.report_path,
            "skipped": dict(self.skipped),
            "calibration": self.calibration,
            "render_errors": dict(self.render_errors),
            "degraded": self.degraded,
        }

    def summary(self) -> str:
        """One paragraph for logs and alerts."""
        who = f"Drift for {self.model}" if self.model else "Drift"
        drifted = self.drifted_features
        compared = len(self.features) - len(self.insufficient)
        if self.drift_share is None:
            text = f"{who}: no feature has enough data for a verdict (drift.min_rows); drift share unknown."
        else:
            text = (
                f"{who}: {len(drifted)} of {compared} features drifted ({self.drift_share:.0%}"
                + ("" if self.weighted_share is None else f"; {self.weighted_share:.0%} of the model's importance")
                + f"); dataset drift: {'yes' if self.dataset_drift else 'no'}."
            )
        if drifted:
            by_name = {f.feature: f for f in self.features}
            text += " Drifted: " + ", ".join(_describe(by_name[name]) for name in drifted) + "."
        if self.insufficient:
            text += f" Insufficient data (not counted): {', '.join(self.insufficient)}."
        nonfinite = [f"{f.feature} ({f.nonfinite:,})" for f in self.features if f.nonfinite]
        if nonfinite:
            text += f" Non-finite values left out: {', '.join(nonfinite)}."
        for label, f in (("Prediction", self.prediction), ("Target", self.target)):
            if f is not None and f.status != INSUFFICIENT:
                text += f" {label} drift: {'yes' if f.drifted else 'no'} ({_describe(f)})."
        if self.skipped:
            text += (
                " Not compared (see the quality report): "
                + "; ".join(f"{name}: {why}" for name, why in sorted(self.skipped.items()))
                + "."
            )
        if self.render_errors:
            text += (
                " Report incomplete, plots failed for: "
                + "; ".join(f"{k}: {v}" for k, v in sorted(self.render_errors.items()))
                + " (verdicts are complete)."
            )
        return text + (
            f" Compared {self.reference_rows:,} reference and {self.current_rows:,} current rows"
            f" (at most {self.sample_rows:,} per side)."
        )


def _describe(f: FeatureDrift) -> str:
    """e.g. "num_0 wasserstein 0.52 >= 0.1" or "num_0 ks 0.003 < 0.05"."""
    if f.status == INSUFFICIENT:
        return f"{f.feature} insufficient data ({f.reference_rows:,} / {f.current_rows:,} rows)"
    past = "<" if f.method in P_VALUE_METHODS else ">="
    within = ">=" if f.method in P_VALUE_METHODS else "<"
    return f"{f.feature} {f.method} {f.score:.3g} {past if f.drifted else within} {f.threshold:g}"


# --------------------------------------------------------------------------- preparation


@dataclass(frozen=True)
class _Column:
    name: str
    kind: str  # "numeric" | "categorical"
    role: str  # "feature" | "prediction" | "target"
    method: str | None  # None = Evidently's choice
    threshold: float | None


def _feature_columns(contract: ModelContract) -> list[_Column]:
    """Per-feature method and threshold; a default method that does not apply to a kind
    falls back to Evidently's choice, an explicit per-feature one is an error."""
    cols = []
    for feature in contract.features:
        spec = contract.drift_spec(feature.name)
        kind = feature.kind.value
        method = None if spec.method == "auto" else spec.method
        threshold = spec.threshold
        if method and not _applies(method, feature.kind):
            override = contract.drift.features.get(feature.name)
            if override is not None and override.method == method:
                raise DriftError(
                    f"drift.features.{feature.name}.method {method!r} does not apply to a {kind} feature "
                    f"(numeric only: {sorted(NUMERIC_ONLY)}; categorical only: {sorted(CATEGORICAL_ONLY)})",
                    model=contract.name,
                    column=feature.name,
                )
            log.info(
                "%s: drift.method %s does not apply to %s feature %s; using Evidently's default",
                contract.name,
                method,
                kind,
                feature.name,
            )
            method, threshold = None, None
        cols.append(_Column(feature.name, kind, "feature", method, threshold))
    return cols


def _applies(method: str, kind: FeatureKind) -> bool:
    if kind is FeatureKind.numeric:
        return method not in CATEGORICAL_ONLY
    return method not in NUMERIC_ONLY


def _extra_columns(contract: ModelContract, prediction: str | None, target: str | None) -> list[_Column]:
    cols = []
    if prediction and contract.drift.prediction:
        cols.append(_Column(prediction, "numeric", "prediction", None, None))
    if target and contract.drift.target:
        kind = "categorical" if contract.task is Task.binary_classification else "numeric"
        cols.append(_Column(target, kind, "target", None, None))
    return cols


def _check_frame(contract: ModelContract, df: pd.DataFrame, side: str, cols: list[_Column]) -> list[_Column]:
    """Fail clearly on what Evidently would fail on obscurely; drop unusable prediction/target."""
    if len(df) == 0:
        raise DriftError(f"the {side} frame is empty; drift needs rows on both sides", model=contract.name)
    kept = []
    for col in cols:
        if col.name not in df.columns:
            if col.role == "feature":
                raise DriftError(
                    f"feature {col.name!r} is missing from the {side} frame", model=contract.name, column=col.name
                )
            raise DriftError(
                f"{col.role} column {col.name!r} is missing from the {side} frame", model=contract.name, column=col.name
            )
        if df[col.name].isna().all():
            if col.role == "feature":
                raise DriftError(
                    f"feature {col.name!r} is entirely null in the {side} frame ({len(df):,} rows); "
                    "fix the feature log (the quality report shows it) before comparing distributions",
                    model=contract.name,
                    column=col.name,
                )
            log.warning(
                "%s: %s column %s is entirely null in the %s frame; %s drift skipped",
                contract.name,
                col.role,
                col.name,
                side,
                col.role,
            )
            continue
        kept.append(col)
    return kept


def _unusable(contract: ModelContract, df: pd.DataFrame, cols: list[_Column]) -> dict[str, str]:
    """Features of the current frame that cannot be compared, with the reason."""
    out: dict[str, str] = {}
    for col in cols:
        if col.role != "feature":
            continue
        if col.name not in df.columns:
            out[col.name] = "missing from the window"
        elif df[col.name].isna().all():
            out[col.name] = "entirely null in the window"
        elif col.kind == "numeric":
            s = df[col.name]
            if pd.to_numeric(s, errors="coerce").isna().sum() > s.isna().sum():
                out[col.name] = "non-numeric values in a numeric feature"
    for name, why in out.items():
        log.warning("%s: feature %s not compared for drift: %s", contract.name, name, why)
    return out


def _prepare(
    contract: ModelContract, df: pd.DataFrame, side: str, cols: list[_Column], n: int, seed: int
) -> pd.DataFrame:
    """Bounded seeded sample with the columns typed the way Evidently reads them."""
    df = _sample(df, n, seed)
    out = {}
    for col in cols:
        s = df[col.name]
        if col.kind == "numeric":
            values = pd.to_numeric(s, errors="coerce")
            if values.isna().sum() > s.isna().sum():
                bad = s[values.isna() & s.notna()].head(3).tolist()
                raise DriftError(
                    f"{col.role} {col.name!r} in the {side} frame has non-numeric values, e.g. {bad!r}",
                    model=contract.name,
                    column=col.name,
                )
            out[col.name] = values.astype("float64")
        else:
            out[col.name] = _categories(s)
    return pd.DataFrame(out).reset_index(drop=True)


def _sample(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return df.sample(n=n, random_state=seed) if len(df) > n else df


def _times(df: pd.DataFrame, column: str | None) -> pd.DatetimeIndex | None:
    """Event times (naive UTC) of the rows of `df`, for the plots' time axis; None without them."""
    if not column or column not in df.columns:
        return None
    times = pd.to_datetime(df[column], utc=True, errors="coerce")
    if times.isna().all():
        return None
    return pd.DatetimeIndex(times.dt.tz_convert(None).to_numpy(), name="event time (UTC)")


def _categories(s: pd.Series) -> pd.Series:
    """Each distinct value named once (a window has 100k rows and a handful of categories)."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    names = np.array([_category(v) for v in uniques] + [np.nan], dtype=object)
    return pd.Series(names[codes], index=s.index, name=s.name)  # code -1 (null) takes the trailing NaN


def _category(value: Any) -> str:
    """0/1 labels read as 0.0/1.0 must still be the categories "0" and "1"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --------------------------------------------------------------------------- run


def run_drift(
    contract: ModelContract,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    prediction_column: str | None = None,
    target_column: str | None = None,
    out_html: Path | None = None,
    seed: int = 0,
    assets_dir: Path | None = None,
    skip_unusable: bool = False,
    calibration: Calibration | None = None,
    importance: Mapping[str, float] | None = None,
    interval: tuple[datetime, datetime] | None = None,
    reference_label: str | None = None,
) -> DriftResult:
    """Per-feature verdicts with the contract's methods; prediction/target drift reported apart.

    skip_unusable: a feature the current window cannot compare (missing, entirely null, text in a
    numeric column) is left out and named in `skipped` instead of failing the whole report; the
    monitoring run uses this because its quality gate already fails those columns.

    calibration: thresholds for method `auto` (monitoring passes the reference's cached one);
    None calibrates here on random subsamples of the current window's size.

    importance: the champion's permutation importance per feature; gives `weighted_share`, the
    drifted features' share of the total (negative importances count 0).

    assets_dir: where the shared Evidently JS bundle is kept (default: next to out_html).
    interval, reference_label: the monitored interval and what the reference is, for the
    report's header (presentation only)."""
    cols = _feature_columns(contract) + _extra_columns(contract, prediction_column, target_column)
    skipped = _unusable(contract, current, cols) if skip_unusable and len(current) else {}
    cols = [c for c in cols if c.name not in skipped]
    if not any(c.role == "feature" for c in cols):
        raise DriftError("no feature of the current frame can be compared: " + str(skipped), model=contract.name)
    cols = _check_frame(contract, reference, "reference", cols)
    cols = _check_frame(contract, current, "current", cols)
    n = contract.drift.sample_size
    ref = _prepare(contract, reference, "reference", cols, n, seed)
    sampled = _sample(current, n, seed + 1)  # the rows compared, and plotted over their event times
    cur = _prepare(contract, sampled, "current", cols, n, seed + 1)
    if calibration is None and any(c.role == "feature" and c.method is None for c in cols):
        calibration = calibrate_for(contract, ref, window_rows=len(cur), seed=seed)
    verdicts = _verdicts(contract, cols, ref, cur, calibration)

    features = [verdicts[c.name] for c in cols if c.role == "feature"]
    judged = [f for f in features if f.status != INSUFFICIENT]
    share = sum(f.drifted for f in judged) / len(judged) if judged else None
    calibrated_share = calibration.share_threshold if calibration is not None else 0.0
    share_threshold = max(calibrated_share, contract.drift.drift_share)
    result = DriftResult(
        features=features,
        drift_share=share,
        dataset_drift=share is not None and share >= share_threshold - 1e-9,
        prediction=next((verdicts[c.name] for c in cols if c.role == "prediction"), None),
        target=next((verdicts[c.name] for c in cols if c.role == "target"), None),
        reference_rows=len(reference),
        current_rows=len(current),
        sample_rows=max(len(ref), len(cur)),
        model=contract.name,
        skipped=skipped,
        share_threshold=share_threshold,
        calibration=None if calibration is None else _calibration_summary(calibration),
        weighted_share=weighted_share(judged, importance),
    )
    for warning in calibration.warnings if calibration is not None else []:
        log.warning("%s: drift calibration: %s", contract.name, warning)
    if out_html is not None:
        page = _Page(_times(sampled, contract.source.timestamp_column), interval, reference_label)
        path, result.render_errors = _save_report(contract, result, cols, ref, cur, Path(out_html), assets_dir, page)
        result.report_path = str(path)
        for column, why in result.render_errors.items():
            log.error("%s: drift plot of %r failed (verdicts kept, run degraded): %s", contract.name, column, why)
    log.info("%s", result.summary())
    return result


def weighted_share(judged: list[FeatureDrift], importance: Mapping[str, float] | None) -> float | None:
    """Drifted features' share of the judged features' total importance (None without importances)."""
    if not importance or not judged:
        return None
    weights = {f.feature: max(float(importance.get(f.feature, 0.0)), 0.0) for f in judged}
    total = sum(weights.values())
    if total <= 0:
        return None
    return sum(weights[f.feature] for f in judged if f.drifted) / total


def _calibration_summary(cal: Calibration) -> dict[str, Any]:
    return {
        "source": cal.source,
        "window": cal.window,
        "chunk_rows": cal.chunk_rows,
        "chunks": max((t.chunks for t in cal.features.values()), default=0),
        "alpha": cal.alpha,
        "share_threshold": cal.share_threshold,
        "warnings": list(cal.warnings),
    }


def _verdicts(
    contract: ModelContract,
    cols: list[_Column],
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    calibration: Calibration | None,
) -> dict[str, FeatureDrift]:
    """Columns are independent and their tests mostly sort arrays, which numpy does without the
    GIL: TEST_THREADS threads test them side by side."""
    jobs = [(c, ref[c.name], cur[c.name]) for c in cols]  # pandas column access stays on this thread
    with ev.quiet(), ThreadPoolExecutor(max_workers=TEST_THREADS, thread_name_prefix="dg-drift") as pool:
        found = list(pool.map(lambda job: _verdict(contract, *job, calibration), jobs))
    return {f.feature: f for f in found}


def _verdict(
    contract: ModelContract, col: _Column, ref: pd.Series, cur: pd.Series, calibration: Calibration | None
) -> FeatureDrift:
    cfg = contract.drift
    numeric = col.kind == "numeric"
    r, c = ds.usable(ref, numeric=numeric), ds.usable(cur, numeric=numeric)
    effect_method = ds.effect_method(numeric)
    base = {"feature": col.name, "kind": col.kind, "reference_rows": r.rows, "current_rows": c.rows}
    base |= {"nonfinite": c.nonfinite, "effect_method": effect_method}
    if r.rows < cfg.min_rows or c.rows < cfg.min_rows:
        method = col.method or effect_method
        why = f"{r.rows:,} reference and {c.rows:,} current usable values, fewer than drift.min_rows={cfg.min_rows}"
        threshold = col.threshold if col.threshold is not None else cfg.min_effect
        return FeatureDrift(
            **base,
            method=method,
            threshold=threshold,
            score=float("nan"),
            drifted=False,
            status=INSUFFICIENT,
            basis=why,
        )
    effect = ds.effect(r.values, c.values, numeric=numeric)
    min_effect = cfg.min_effect
    if col.method is None:
        # `auto`: the effect size is the statistic; its threshold is fixed by the contract or calibrated.
        if col.threshold is not None:
            threshold, basis = col.threshold, "threshold set in the contract"
        elif calibration is not None and col.name in calibration.features:
            cal = calibration.features[col.name]
            threshold = max(cal.at(ds.effective_rows(r.rows, c.rows)), min_effect)
            basis = cal.describe(calibration.source, calibration.alpha)
            if threshold > cal.threshold * 1.001:
                basis += f"; widened to {threshold:.3g} for this smaller window"
        else:  # prediction/target: not calibrated, Evidently's default distance threshold
            threshold, basis = max(min_effect, 0.1), "default 0.1 (not calibrated)"
        drifted = effect >= threshold
        return FeatureDrift(
            **base,
            method=effect_method,
            threshold=threshold,
            score=effect,
            drifted=drifted,
            status=DRIFT if drifted else OK,
            effect=effect,
            basis=basis,
        )
    ref_values = pd.Series(r.values, name=col.name)
    cur_values = pd.Series(c.values, name=col.name)
    try:
        found = ev.column_drift(ref_values, cur_values, numeric=numeric, method=col.method, threshold=col.threshold)
    except ValueError as exc:  # Evidently's own input errors, e.g. a method it cannot apply
        raise DriftError(
            f"Evidently could not compute drift of {col.name!r}: {exc}", model=contract.name, column=col.name
        ) from exc
    drifted = found.drifted and effect >= min_effect
    basis = "threshold set in the contract" if col.threshold is not None else f"{found.method}'s default threshold"
    if found.drifted and not drifted:
        basis += f"; test crossed it but effect {effect:.3g} < drift.min_effect {min_effect:g}"
    return FeatureDrift(
        **base,
        method=found.method,
        threshold=found.threshold,
        score=found.score,
        drifted=drifted,
        status=DRIFT if drifted else OK,
        effect=effect,
        basis=basis,
    )


@dataclass(frozen=True)
class _Page:
    """What the report shows beyond the verdicts: the current rows' event times (aligned with
    the prepared current frame) and the header's interval and reference."""

    times: pd.DatetimeIndex | None = None
    interval: tuple[datetime, datetime] | None = None
    reference: str | None = None


def _save_report(
    contract: ModelContract,
    result: DriftResult,
    cols: list[_Column],
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    out_html: Path,
    assets_dir: Path | None,
    page: _Page = _Page(),
) -> tuple[Path, dict[str, str]]:
    """Driftguard's header and every column's verdict (reports.drift_sections), then Evidently's
    ValueDrift plots for the drifted features and for prediction and target: what a reader acts
    on, in a bounded page whatever the number of features. Each plot is its own Evidently run, so
    a column Evidently cannot plot is named (returned) and the others are still drawn."""
    from driftguard.reporting import reports

    verdicts = [*result.features, *(f for f in (result.prediction, result.target) if f is not None)]
    roles = {c.name: c.role for c in cols}
    drifted = set(result.drifted_features)
    plotted = [
        f for f in verdicts if f.status != INSUFFICIENT and (f.feature in drifted or roles[f.feature] != "feature")
    ]
    plotted.sort(key=lambda f: (not f.drifted, -(f.effect or 0.0)))  # the table's order
    snapshots, errors = [], {}
    for f in plotted:
        label = reports.column_label(f.feature, roles[f.feature])
        finite_ref = _finite(ref[f.feature], f.kind).rename(label)
        current = cur[f.feature]
        if page.times is not None and f.kind == "numeric":
            current = current.set_axis(page.times)  # a time axis, not "Index binned"
        finite_cur = _finite(current, f.kind).rename(label)
        definition = ev.DataDefinition(
            numerical_columns=[label] if f.kind == "numeric" else [],
            categorical_columns=[label] if f.kind != "numeric" else [],
        )
        metric = ev.ValueDrift(column=label, method=f.method, threshold=f.threshold)
        try:
            snapshots.append(ev.run_report([metric], finite_ref.to_frame(), finite_cur.to_frame(), definition))
        except Exception as exc:  # a plot must never cost the verdicts
            errors[f.feature] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    start, end = page.interval or (None, None)
    data = {**result.to_dict(), "render_errors": errors}
    header = reports.drift_sections(
        data, model=contract.name, start=start, end=end, reference=page.reference, plotted=bool(snapshots)
    )
    try:
        path = ev.save_html(
            snapshots, out_html, assets_dir, title=reports.drift_title(contract.name, start, end), header=header
        )
    except Exception as exc:
        errors["<page>"] = f"{type(exc).__name__}: {exc}"
        path = out_html
    return path, errors


def _finite(s: pd.Series, kind: str) -> pd.Series:
    """What the plot may draw: the values the verdict compared (inf and overflow left out)."""
    if kind != "numeric":
        return s
    keep = s.isna() | (np.isfinite(s) & (s.abs() <= ds.MAX_MAGNITUDE))
    return s[keep.to_numpy()]
