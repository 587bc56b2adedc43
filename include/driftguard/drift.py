"""Distribution drift of one window against the champion's reference, with Evidently 0.7.

Each column is tested with the contract's method and threshold for that column. That is
deliberate: DataDriftPreset's num/cat thresholds apply to every column whatever its method,
and a p-value threshold (drift when below) is meaningless for a distance (drift when above).
The verdict and score per column are Evidently's own test, run as its ValueDrift metric runs
it (for `auto`, the method and threshold Evidently picked). The HTML report tabulates every
column's verdict and draws ValueDrift's distribution plots for the drifted features and for
prediction and target only: plots cost two thirds of the drift time and most of the page.

Both sides are sampled to at most drift.sample_size rows (seeded) so run time and memory
stay bounded whatever the window size (see NOTES.md for the accuracy of 100k samples).
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftguard import _evidently as ev
from driftguard.contract import FeatureKind, ModelContract, Task

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


@dataclass(frozen=True)
class FeatureDrift:
    """Drift verdict for one column; method and threshold are the ones Evidently applied."""

    feature: str
    kind: str
    method: str
    threshold: float
    score: float
    drifted: bool

    @property
    def severity(self) -> float:
        """How far past its threshold, comparable across methods: score/threshold for
        distances, log(p)/log(threshold) for p-values (1.0 = on the threshold)."""
        if self.method in P_VALUE_METHODS:
            p = min(max(self.score, 1e-300), 1.0)
            return math.log(p) / math.log(self.threshold) if 0 < self.threshold < 1 else 0.0
        return self.score / self.threshold if self.threshold else 0.0


@dataclass
class DriftResult:
    """Features' verdicts (drift_share counts features only), prediction/target apart.

    sample_rows: rows used on the larger side after sampling (each side <= drift.sample_size)."""

    features: list[FeatureDrift]
    drift_share: float
    dataset_drift: bool
    prediction: FeatureDrift | None
    target: FeatureDrift | None
    reference_rows: int
    current_rows: int
    sample_rows: int
    report_path: str | None = None
    model: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # feature -> why it was not compared

    @property
    def drifted_features(self) -> list[str]:
        """Drifted feature names, most severe first (prediction and target excluded)."""
        drifted = sorted((f for f in self.features if f.drifted), key=lambda f: (-f.severity, f.feature))
        return [f.feature for f in drifted]

    def to_dict(self) -> dict[str, Any]:
        def one(f: FeatureDrift | None) -> dict[str, Any] | None:
            return None if f is None else {**asdict(f), "severity": f.severity}

        return {
            "model": self.model,
            "features": [one(f) for f in self.features],
            "drifted_features": self.drifted_features,
            "drift_share": self.drift_share,
            "dataset_drift": self.dataset_drift,
            "prediction": one(self.prediction),
            "target": one(self.target),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "sample_rows": self.sample_rows,
            "report_path": self.report_path,
            "skipped": dict(self.skipped),
        }

    def summary(self) -> str:
        """One paragraph for logs and alerts."""
        who = f"Drift for {self.model}" if self.model else "Drift"
        n, drifted = len(self.features), self.drifted_features
        text = (
            f"{who}: {len(drifted)} of {n} features drifted ({self.drift_share:.0%}); "
            f"dataset drift: {'yes' if self.dataset_drift else 'no'}."
        )
        if drifted:
            by_name = {f.feature: f for f in self.features}
            text += " Drifted: " + ", ".join(_describe(by_name[name]) for name in drifted) + "."
        for label, f in (("Prediction", self.prediction), ("Target", self.target)):
            if f is not None:
                text += f" {label} drift: {'yes' if f.drifted else 'no'} ({_describe(f)})."
        if self.skipped:
            text += (
                " Not compared (see the quality report): "
                + "; ".join(f"{name}: {why}" for name, why in sorted(self.skipped.items()))
                + "."
            )
        return text + (
            f" Compared {self.reference_rows:,} reference and {self.current_rows:,} current rows"
            f" (at most {self.sample_rows:,} per side)."
        )


def _describe(f: FeatureDrift) -> str:
    """e.g. "num_0 wasserstein 0.52 >= 0.1" or "num_0 ks 0.003 < 0.05"."""
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
    if len(df) > n:
        df = df.sample(n=n, random_state=seed)
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
) -> DriftResult:
    """Per-feature drift with the contract's methods; prediction/target drift reported apart.

    skip_unusable: a feature the current window cannot compare (missing, entirely null, text in a
    numeric column) is left out and named in `skipped` instead of failing the whole report; the
    monitoring run uses this because its quality gate already fails those columns.

    assets_dir: where the shared Evidently JS bundle is kept (default: next to out_html)."""
    cols = _feature_columns(contract) + _extra_columns(contract, prediction_column, target_column)
    skipped = _unusable(contract, current, cols) if skip_unusable and len(current) else {}
    cols = [c for c in cols if c.name not in skipped]
    if not any(c.role == "feature" for c in cols):
        raise DriftError("no feature of the current frame can be compared: " + str(skipped), model=contract.name)
    cols = _check_frame(contract, reference, "reference", cols)
    cols = _check_frame(contract, current, "current", cols)
    n = contract.drift.sample_size
    ref = _prepare(contract, reference, "reference", cols, n, seed)
    cur = _prepare(contract, current, "current", cols, n, seed + 1)
    verdicts = _verdicts(contract, cols, ref, cur)

    features = [verdicts[c.name] for c in cols if c.role == "feature"]
    share = sum(f.drifted for f in features) / len(features)
    result = DriftResult(
        features=features,
        drift_share=share,
        dataset_drift=share >= contract.drift.drift_share,
        prediction=next((verdicts[c.name] for c in cols if c.role == "prediction"), None),
        target=next((verdicts[c.name] for c in cols if c.role == "target"), None),
        reference_rows=len(reference),
        current_rows=len(current),
        sample_rows=max(len(ref), len(cur)),
        model=contract.name,
        skipped=skipped,
    )
    if out_html is not None:
        result.report_path = str(_save_report(contract, result, cols, ref, cur, Path(out_html), assets_dir))
    log.info("%s", result.summary())
    return result


def _verdicts(
    contract: ModelContract, cols: list[_Column], ref: pd.DataFrame, cur: pd.DataFrame
) -> dict[str, FeatureDrift]:
    """Columns are independent and their tests mostly sort arrays, which numpy does without the
    GIL: TEST_THREADS threads test them side by side."""
    jobs = [(c, ref[c.name], cur[c.name]) for c in cols]  # pandas column access stays on this thread
    with ev.quiet(), ThreadPoolExecutor(max_workers=TEST_THREADS, thread_name_prefix="dg-drift") as pool:
        found = list(pool.map(lambda job: _verdict(contract, *job), jobs))
    return {f.feature: f for f in found}


def _verdict(contract: ModelContract, col: _Column, ref: pd.Series, cur: pd.Series) -> FeatureDrift:
    try:
        found = ev.column_drift(ref, cur, numeric=col.kind == "numeric", method=col.method, threshold=col.threshold)
    except ValueError as exc:  # Evidently's own input errors, e.g. a method it cannot apply
        raise DriftError(
            f"Evidently could not compute drift of {col.name!r}: {exc}", model=contract.name, column=col.name
        ) from exc
    return FeatureDrift(col.name, col.kind, found.method, found.threshold, found.score, found.drifted)


def _save_report(
    contract: ModelContract,
    result: DriftResult,
    cols: list[_Column],
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    out_html: Path,
    assets_dir: Path | None,
) -> Path:
    """Every column's verdict in a table, then Evidently's ValueDrift plots for the drifted
    features and for prediction and target: what a reader acts on, in a bounded page whatever
    the number of features."""
    verdicts = [*result.features, *(f for f in (result.prediction, result.target) if f is not None)]
    roles = {c.name: c.role for c in cols}
    table = ev.Table(
        title=f"Drift per column: {len(result.drifted_features)} of {len(result.features)} features drifted",
        header=["column", "role", "method", "score", "threshold", "drift"],
        rows=[
            [
                f.feature,
                roles[f.feature],
                f.method,
                f"{f.score:.4g}",
                f"{f.threshold:g}",
                "DRIFT" if f.drifted else "ok",
            ]
            for f in verdicts
        ],
    )
    drifted = set(result.drifted_features)
    plotted = [f for f in verdicts if f.feature in drifted or roles[f.feature] != "feature"]
    snapshot = None
    if plotted:
        definition = ev.DataDefinition(
            numerical_columns=[f.feature for f in plotted if f.kind == "numeric"],
            categorical_columns=[f.feature for f in plotted if f.kind == "categorical"],
        )
        metrics = [ev.ValueDrift(column=f.feature, method=f.method, threshold=f.threshold) for f in plotted]
        names = [f.feature for f in plotted]
        try:
            snapshot = ev.run_report(metrics, ref[names], cur[names], definition)
        except ValueError as exc:
            raise DriftError(f"Evidently could not plot drift: {exc}", model=contract.name) from exc
    return ev.save_html(snapshot, out_html, assets_dir, table=table)
