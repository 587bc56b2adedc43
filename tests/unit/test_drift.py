"""driftguard.monitoring.drift: real Evidently runs on synthetic logs with known injected drift."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from driftguard.monitoring import _evidently
from driftguard.monitoring.drift import DriftError, DriftResult, FeatureDrift, run_drift
from driftguard.testing import (
    CATEGORICAL,
    DEFAULT_START,
    LABEL_COLUMN,
    NUMERIC,
    PREDICTION_COLUMN,
    Injection,
    generate_log,
    synthetic_contract,
)

ROWS = 3000
CURRENT_START = DEFAULT_START + timedelta(days=30)
FEATURES = [*NUMERIC, *CATEGORICAL]


def window(
    seed: int, injections: list[Injection] | None = None, task: str = "binary_classification", start=CURRENT_START
) -> pd.DataFrame:
    log, labels = generate_log(task, start=start, days=1, rows_per_day=ROWS, seed=seed, injections=injections or [])
    return log.merge(labels[["event_id", LABEL_COLUMN]], on="event_id")


def contract(drift: dict[str, Any] | None = None, task: str = "binary_classification"):
    return synthetic_contract(url="sqlite:///unused.db", task=task, overrides={"drift": drift} if drift else None)


def at(kind: str, column: str | None = None, magnitude: float = 1.0) -> Injection:
    return Injection(kind, CURRENT_START, column=column, magnitude=magnitude)


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return window(seed=1, start=DEFAULT_START)


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return window(seed=2)


def by_name(result: DriftResult) -> dict[str, FeatureDrift]:
    return {f.feature: f for f in result.features}


# --------------------------------------------------------------------------- verdicts


def test_no_drift_on_data_from_the_same_process(reference: pd.DataFrame, clean: pd.DataFrame) -> None:
    result = run_drift(contract(), reference, clean, seed=0)
    assert [f.feature for f in result.features] == FEATURES
    assert result.drifted_features == [] and result.drift_share == 0.0 and not result.dataset_drift
    # auto: the effect size (normed Wasserstein / Jensen-Shannon) against a threshold calibrated on
    # the reference, never below drift.min_effect (0.1); without timestamps on random subsamples.
    assert {(f.kind, f.method) for f in result.features} == {
        ("numeric", "wasserstein"),
        ("categorical", "jensenshannon"),
    }
    assert all(f.threshold >= 0.1 and 0 <= f.score < f.threshold for f in result.features)
    assert all("reference subsamples" in f.basis and f.score == f.effect for f in result.features)
    assert all(
        (f.reference_rows, f.current_rows, f.status) == (ROWS, ROWS, "ok")
        for f in result.features
        if f.feature not in ("num_4", "cat_b")
    )  # the two with baseline nulls compare fewer rows
    assert result.calibration["source"] == "random subsamples" and result.calibration["warnings"]
    assert result.prediction is None and result.target is None


@pytest.mark.parametrize(
    ("injection", "column"),
    [
        (at("mean_shift", "num_0"), "num_0"),
        (at("mean_shift", "num_4", magnitude=0.5), "num_4"),
        (at("variance_change", "num_1"), "num_1"),
        (at("new_category", "cat_a", magnitude=0.5), "cat_a"),
        (at("new_category", "region", magnitude=0.6), "region"),
    ],
)
def test_injected_drift_is_flagged_on_that_column_only(
    reference: pd.DataFrame, injection: Injection, column: str
) -> None:
    result = run_drift(contract(), reference, window(seed=2, injections=[injection]))
    assert result.drifted_features == [column]
    drifted = by_name(result)[column]
    assert drifted.drifted and drifted.score >= drifted.threshold
    assert result.drift_share == pytest.approx(1 / 9) and not result.dataset_drift
    assert f"Drifted: {column} " in result.summary()


def test_drifted_features_sorted_by_severity_and_dataset_drift(reference: pd.DataFrame) -> None:
    current = window(seed=2, injections=[at("variance_change", "num_1", 0.6), at("mean_shift", "num_0", 3.0)])
    result = run_drift(contract({"drift_share": 0.2}), reference, current)
    assert result.share_threshold == pytest.approx(0.2)  # the calibration needs less: the contract's share
    assert result.drifted_features == ["num_0", "num_1"]
    features = by_name(result)
    assert features["num_0"].severity > features["num_1"].severity > 1.0
    assert result.drift_share == pytest.approx(2 / 9) and result.dataset_drift
    assert "dataset drift: yes" in result.summary()


# --------------------------------------------------------------------------- methods


METHODS = {  # column -> (method, threshold given in the contract or None = method default)
    "num_0": ("ks", 0.01),
    "num_1": ("psi", None),
    "num_2": ("wasserstein", 0.2),
    "num_3": ("jensenshannon", None),
    "num_4": ("kl_div", 0.15),
    "num_5": ("anderson", None),
    "cat_a": ("chisquare", 0.01),
    "cat_b": ("psi", 0.3),
    "region": ("kl_div", None),
}
DEFAULTS = {
    "ks": 0.05,
    "psi": 0.1,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
    "kl_div": 0.1,
    "anderson": 0.1,
    "chisquare": 0.05,
}


@pytest.fixture(scope="module")
def method_contract():
    overrides = {c: {"method": m, **({"threshold": t} if t else {})} for c, (m, t) in METHODS.items()}
    return contract({"features": overrides})


def test_every_selectable_method_runs_and_records_method_and_threshold(
    method_contract, reference: pd.DataFrame, clean: pd.DataFrame
) -> None:
    result = run_drift(method_contract, reference, clean)
    for column, (method, threshold) in METHODS.items():
        f = by_name(result)[column]
        assert (f.method, f.threshold) == (method, threshold or DEFAULTS[method]), column
        assert not f.drifted, f
    assert {f.method for f in result.features} | {"jensenshannon"} == set(DEFAULTS)


def test_every_selectable_method_detects_a_large_shift(method_contract, reference: pd.DataFrame) -> None:
    injections = [at("mean_shift", c, 2.0) for c in NUMERIC] + [at("new_category", c, 1.0) for c in CATEGORICAL]
    result = run_drift(method_contract, reference, window(seed=2, injections=injections))
    assert sorted(result.drifted_features) == sorted(FEATURES)
    assert result.dataset_drift and result.drift_share == 1.0
    pvalue = by_name(result)["num_0"]  # ks: drift means p below the threshold
    assert pvalue.score < pvalue.threshold and pvalue.severity > 1


def test_jensenshannon_on_categorical_and_global_threshold_scoped_to_its_method(
    reference: pd.DataFrame, clean: pd.DataFrame
) -> None:
    spec = {
        "method": "psi",
        "threshold": 0.25,
        "features": {"cat_a": {"method": "jensenshannon", "threshold": 0.05}, "num_0": {"method": "ks"}},
    }
    result = run_drift(contract(spec), reference, clean)
    f = by_name(result)
    assert (f["cat_a"].method, f["cat_a"].threshold) == ("jensenshannon", 0.05)
    assert (f["num_0"].method, f["num_0"].threshold) == ("ks", 0.05)  # not the psi default 0.25
    assert all((f[c].method, f[c].threshold) == ("psi", 0.25) for c in FEATURES if c not in ("cat_a", "num_0"))


def test_default_method_that_does_not_fit_a_kind_falls_back_to_auto(
    reference: pd.DataFrame, clean: pd.DataFrame
) -> None:
    result = run_drift(contract({"method": "ks", "threshold": 0.01}), reference, clean)
    f = by_name(result)
    assert all((f[c].method, f[c].threshold) == ("ks", 0.01) for c in NUMERIC)
    assert all((f[c].method, f[c].threshold) == ("jensenshannon", 0.1) for c in CATEGORICAL)


def test_explicit_method_that_does_not_fit_the_feature_is_an_error(
    reference: pd.DataFrame, clean: pd.DataFrame
) -> None:
    with pytest.raises(
        DriftError,
        match=r"model synthetic_binary: drift.features.cat_b.method 'wasserstein' "
        r"does not apply to a categorical feature",
    ) as err:
        run_drift(contract({"features": {"cat_b": {"method": "wasserstein"}}}), reference, clean)
    assert err.value.column == "cat_b"


# --------------------------------------------------------------------------- sampling


def test_sample_is_bounded_seeded_and_auto_follows_the_sample_size(
    reference: pd.DataFrame, clean: pd.DataFrame
) -> None:
    small = contract({"sample_size": 1000})
    a = run_drift(small, reference, clean, seed=7)
    assert (a.reference_rows, a.current_rows, a.sample_rows) == (ROWS, ROWS, 1000)
    # auto does not switch tests with the sample size: effect sizes on every size
    assert {(f.kind, f.method) for f in a.features} == {("numeric", "wasserstein"), ("categorical", "jensenshannon")}
    b = run_drift(small, reference, clean, seed=7)
    c = run_drift(small, reference, clean, seed=8)
    assert [f.score for f in a.features] == [f.score for f in b.features]
    assert [f.score for f in a.features] != [f.score for f in c.features]
    full = run_drift(contract(), reference, clean)
    assert full.sample_rows == ROWS


# --------------------------------------------------------------------------- prediction and target


def test_prediction_and_target_drift_reported_but_not_counted(reference: pd.DataFrame, clean: pd.DataFrame) -> None:
    current = clean.copy()
    current[PREDICTION_COLUMN] = np.sqrt(current[PREDICTION_COLUMN])
    current[LABEL_COLUMN] = 1 - current[LABEL_COLUMN]
    result = run_drift(contract(), reference, current, prediction_column=PREDICTION_COLUMN, target_column=LABEL_COLUMN)
    assert result.drift_share == 0.0 and result.drifted_features == []
    assert PREDICTION_COLUMN not in by_name(result) and LABEL_COLUMN not in by_name(result)
    assert result.prediction.drifted and result.prediction.kind == "numeric"
    assert result.target.drifted and result.target.kind == "categorical"  # binary label
    assert (result.target.method, result.target.feature) == ("jensenshannon", LABEL_COLUMN)
    summary = result.summary()
    assert "Prediction drift: yes" in summary and "Target drift: yes" in summary and "0 of 9 features" in summary


def test_no_prediction_or_target_drift_on_clean_data(reference: pd.DataFrame, clean: pd.DataFrame) -> None:
    result = run_drift(contract(), reference, clean, prediction_column=PREDICTION_COLUMN, target_column=LABEL_COLUMN)
    assert not result.prediction.drifted and not result.target.drifted


def test_regression_target_is_numeric() -> None:
    ref = window(seed=1, task="regression", start=DEFAULT_START)
    cur = window(seed=2, task="regression")
    cur[LABEL_COLUMN] = cur[LABEL_COLUMN] + 25
    result = run_drift(contract(task="regression"), ref, cur, target_column=LABEL_COLUMN)
    assert result.target.kind == "numeric" and result.target.method == "wasserstein" and result.target.drifted
    assert result.drifted_features == []


def test_switched_off_prediction_drift_and_all_null_labels(
    reference: pd.DataFrame, clean: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    current = clean.assign(**{LABEL_COLUMN: np.nan})  # labels not matured yet
    with caplog.at_level(logging.WARNING, logger="driftguard.monitoring.drift"):
        result = run_drift(
            contract({"prediction": False}),
            reference,
            current,
            prediction_column=PREDICTION_COLUMN,
            target_column=LABEL_COLUMN,
        )
    assert result.prediction is None and result.target is None
    assert "label is entirely null in the current frame; target drift skipped" in caplog.text


# --------------------------------------------------------------------------- bad input


def test_empty_current_frame(reference: pd.DataFrame, clean: pd.DataFrame) -> None:
    with pytest.raises(DriftError, match="model synthetic_binary: the current frame is empty"):
        run_drift(contract(), reference, clean.iloc[0:0])


def test_entirely_null_feature_names_model_and_column(reference: pd.DataFrame, clean: pd.DataFrame) -> None:
    current = clean.assign(num_3=np.nan)
    with pytest.raises(DriftError, match="model synthetic_binary: feature 'num_3' is entirely null in the current"):
        run_drift(contract(), reference, current)
    with pytest.raises(DriftError, match="feature 'cat_b' is entirely null in the reference frame") as err:
        run_drift(contract(), reference.assign(cat_b=pd.Series(np.nan, index=reference.index, dtype=object)), clean)
    assert (err.value.model, err.value.column) == ("synthetic_binary", "cat_b")


def test_missing_or_non_numeric_feature(reference: pd.DataFrame, clean: pd.DataFrame) -> None:
    with pytest.raises(DriftError, match="feature 'region' is missing from the current frame"):
        run_drift(contract(), reference, clean.drop(columns=["region"]))
    typed = window(seed=2, injections=[at("type_change", "num_3", 0.2)])
    with pytest.raises(DriftError, match=r"feature 'num_3' in the current frame has non-numeric values, e.g. \['"):
        run_drift(contract(), reference, typed)


# --------------------------------------------------------------------------- report


def test_html_report_links_one_shared_bundle(reference: pd.DataFrame, clean: pd.DataFrame, tmp_path: Path) -> None:
    static = tmp_path / "static"
    first = run_drift(
        contract(),
        reference,
        clean,
        out_html=tmp_path / "run1" / "drift.html",
        assets_dir=static,
        prediction_column=PREDICTION_COLUMN,
    )
    page = Path(first.report_path).read_text()
    assert Path(first.report_path).stat().st_size < 1_000_000
    assert f'<script src="../static/{_evidently.BUNDLE}"></script>' in page
    assert "num_0" in page and PREDICTION_COLUMN in page
    bundle = static / _evidently.BUNDLE
    assert bundle.stat().st_size > 1_000_000 and (static / _evidently.FONT).exists()
    stamp = bundle.stat().st_mtime_ns
    second = run_drift(contract(), reference, clean, out_html=tmp_path / "run2" / "drift.html", assets_dir=static)
    assert bundle.stat().st_mtime_ns == stamp and Path(second.report_path).exists()
    assert sorted(p.name for p in static.iterdir()) == sorted([_evidently.BUNDLE, _evidently.FONT])


SCORE_LABEL = f"model score ({PREDICTION_COLUMN})"  # reports.column_label of the prediction column


def _plotted(page: str) -> set[str]:
    """Columns with an Evidently ValueDrift widget in the page (its counter names the column)."""
    return {name for name in [*FEATURES, SCORE_LABEL, LABEL_COLUMN] if f"Drift in column '{name}'" in page}


def test_html_report_tables_every_column_and_plots_the_drifted_ones(reference: pd.DataFrame, tmp_path: Path) -> None:
    current = window(seed=2, injections=[at("mean_shift", "num_0", 1.0)])
    result = run_drift(
        contract(),
        reference,
        current,
        out_html=tmp_path / "drift.html",
        prediction_column=PREDICTION_COLUMN,
        target_column=LABEL_COLUMN,
    )
    page = Path(result.report_path).read_text()
    assert result.drifted_features == ["num_0"]
    assert _plotted(page) == {"num_0", SCORE_LABEL, LABEL_COLUMN}
    f = by_name(result)["num_1"]
    row = (
        '<tr class="verdict verdict-no-drift" data-column="num_1"><td>num_1</td><td>feature</td>'
        f'<td><span class="badge no-drift">no drift</span></td><td class="num">{f.effect:.3g} ({f.effect_method})'
    )
    assert row in page  # the verdict table's row for an undrifted feature (first cells)
    assert result.render_errors == {} and not result.degraded
    assert "1 of 9 features drifted" in page
    # The current window has event times: its plots run over time, not over "Index binned".
    assert "event time (UTC) (" in page and "Index binned" not in page


def test_html_report_without_drift_or_prediction_is_the_table_alone(
    reference: pd.DataFrame, clean: pd.DataFrame, tmp_path: Path
) -> None:
    result = run_drift(contract(), reference, clean, out_html=tmp_path / "drift.html")
    page = Path(result.report_path).read_text()
    assert result.drifted_features == [] and _plotted(page) == set()
    assert "0 of 9 features drifted" in page and all(f'data-column="{name}"' in page for name in FEATURES)
    assert "<script" not in page  # nothing to plot: the header and table alone, no Evidently bundle


def test_html_report_default_assets_next_to_it(reference: pd.DataFrame, clean: pd.DataFrame, tmp_path: Path) -> None:
    result = run_drift(
        contract(), reference, clean, out_html=tmp_path / "drift.html", prediction_column=PREDICTION_COLUMN
    )
    assert f'<script src="./{_evidently.BUNDLE}"></script>' in Path(result.report_path).read_text()
    assert (tmp_path / _evidently.BUNDLE).exists()
    as_dict = result.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert as_dict["report_path"] == str(tmp_path / "drift.html") and len(as_dict["features"]) == 9


def test_skip_unusable_compares_the_other_features_and_names_the_skipped(
    reference: pd.DataFrame, clean: pd.DataFrame
) -> None:
    bad = clean.copy()
    bad["num_3"] = None
    bad["num_1"] = bad["num_1"].astype(object)
    bad.loc[bad.index[:5], "num_1"] = "n/a"
    result = run_drift(contract(), reference, bad, skip_unusable=True)
    assert result.skipped == {
        "num_3": "entirely null in the window",
        "num_1": "non-numeric values in a numeric feature",
    }
    compared = {f.feature for f in result.features}
    assert "num_3" not in compared and "num_1" not in compared and "num_0" in compared
    assert "Not compared" in result.summary() and "num_3: entirely null" in result.summary()
