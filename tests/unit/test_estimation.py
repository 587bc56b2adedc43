"""driftguard.statistics.estimation: label-free CBPE / DLE estimates against the realized metric.

The data come from driftguard.testing: `mean_shift` / `variance_change` are covariate shift (the
label rule P(y | x) is kept, so the estimate should follow the realized metric) and
`concept_drift` changes the rule (the estimate cannot see it: the realized value leaves the band).
The regression label is made heteroscedastic (noise grows with |num_0|) so that the realized MAE
really moves under the shift and a constant estimate would fail.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from driftguard.statistics.estimation import (
    Estimate,
    Estimator,
    expected_metric,
    expected_roc_auc,
    fit_estimator,
    isotonic_map,
    needs_calibration,
    side_by_side,
    supported_metrics,
)
from driftguard.statistics.metrics import metric_fn, task_metrics
from driftguard.testing import CATEGORICAL, DEFAULT_START, NUMERIC, Injection, generate_log
from sklearn.isotonic import IsotonicRegression

BINARY, REGRESSION = "binary_classification", "regression"
FEATURES = [*NUMERIC, *CATEGORICAL]
SHIFTS = [0.2 * k for k in range(10)]  # 10 windows, up to 1.8 std
WINDOW_ROWS = 1200


def _frame(task: str, rows: int, seed: int, shift: float = 0.0, concept: float = 0.0) -> pd.DataFrame:
    start = DEFAULT_START + timedelta(days=1)
    inj = []
    if shift:
        inj = [  # the strongest feature's spread shrinks and its mean moves: AUC falls, MAE rises
            Injection("variance_change", start, column="num_0", magnitude=-0.35 * shift),
            Injection("mean_shift", start, column="num_0", magnitude=shift),
        ]
    if concept:
        inj.append(Injection("concept_drift", start, magnitude=concept))
    log, labels = generate_log(task, start=start, days=1, rows_per_day=rows, seed=seed, injections=inj)
    frame = log.assign(label=labels["label"].to_numpy())
    if task == REGRESSION:
        scale = 0.5 + 0.75 * frame["num_0"].abs()
        frame["label"] = frame["prediction"] + (frame["label"] - frame["prediction"]) * scale
    return frame


def _fit(task: str, holdout: pd.DataFrame, metric: str) -> Estimator:
    return fit_estimator(
        task,
        holdout,
        score_column="prediction",
        label_column="label",
        metric=metric,
        features=FEATURES,
        categorical=list(CATEGORICAL),
        seed=0,
    )


def _realized(task: str, frame: pd.DataFrame, metric: str) -> float:
    return task_metrics(task, frame["label"], frame["prediction"])[metric]


@pytest.fixture(scope="module")
def holdouts() -> dict[str, pd.DataFrame]:
    return {task: _frame(task, 8000, seed=0) for task in (BINARY, REGRESSION)}


@pytest.fixture(scope="module")
def windows() -> dict[str, list[pd.DataFrame]]:
    return {
        task: [_frame(task, WINDOW_ROWS, seed=100 + k, shift=s) for k, s in enumerate(SHIFTS)]
        for task in (BINARY, REGRESSION)
    }


@pytest.fixture(scope="module")
def estimators(holdouts: dict[str, pd.DataFrame]) -> dict[str, Estimator]:
    metrics = {"roc_auc": BINARY, "accuracy": BINARY, "f1": BINARY, "mae": REGRESSION, "rmse": REGRESSION}
    return {metric: _fit(task, holdouts[task], metric) for metric, task in metrics.items()}


# --------------------------------------------------------------------------- the target


@pytest.mark.parametrize(
    ("metric", "task", "tolerance", "relative"),
    [
        ("roc_auc", BINARY, 0.03, False),
        ("accuracy", BINARY, 0.03, False),
        ("f1", BINARY, 0.03, False),
        ("mae", REGRESSION, 0.10, True),
        ("rmse", REGRESSION, 0.10, True),
    ],
)
def test_estimates_follow_the_realized_metric_under_covariate_shift(
    estimators: dict[str, Estimator],
    windows: dict[str, list[pd.DataFrame]],
    metric: str,
    task: str,
    tolerance: float,
    relative: bool,
) -> None:
    est = estimators[metric]
    results = [(est.estimate(w.drop(columns=["label"])), _realized(task, w, metric)) for w in windows[task]]
    errors = [abs(e.value - r) / (abs(r) if relative else 1.0) for e, r in results]  # type: ignore[operator]
    within = sum(err <= tolerance for err in errors)
    assert within >= 0.9 * len(results), (metric, np.round(errors, 4))
    covered = sum(e.contains(r) for e, r in results)
    assert covered >= 0.9 * len(results), (metric, [(e.lower, e.upper, r) for e, r in results])
    assert all(e.rows == WINDOW_ROWS and e.reason is None for e, _ in results)
    # Not trivially true: the shift moves the realized metric enough that a constant estimate
    # (the holdout's realized value) would miss the tolerance on more than 10% of the windows.
    constant = [abs(est.reference_realized - r) / (abs(r) if relative else 1.0) for _, r in results]  # type: ignore[operator]
    assert sum(err > tolerance for err in constant) >= 2, (metric, np.round(constant, 4))


def _overconfident(frame: pd.DataFrame) -> pd.DataFrame:
    p = np.clip(frame["prediction"].to_numpy(), 1e-6, 1 - 1e-6)
    return frame.assign(prediction=1 / (1 + np.exp(-(2 * np.log(p / (1 - p)) + 0.5))))


def test_a_miscalibrated_score_is_calibrated_and_still_tracked(
    holdouts: dict[str, pd.DataFrame], windows: dict[str, list[pd.DataFrame]], estimators: dict[str, Estimator]
) -> None:
    # The logged score is the label rule's own probability: the identity map, nothing fitted.
    assert not estimators["accuracy"].calibrated
    assert estimators["accuracy"].calibration_x == (0.0, 1.0) == estimators["accuracy"].calibration_y
    # Overconfident (logit doubled, shifted): the raw score would promise far too much accuracy.
    est = _fit(BINARY, _overconfident(holdouts[BINARY]), "accuracy")
    assert est.calibrated and len(est.calibration_draws) == 30 and len(est.calibration_x) > 10
    errors, covered = [], 0
    for w in map(_overconfident, windows[BINARY]):
        e = est.estimate(w.drop(columns=["label"]))
        realized = _realized(BINARY, w, "accuracy")
        errors.append(abs(e.value - realized))  # type: ignore[operator]
        covered += e.contains(realized)
    assert sum(err <= 0.03 for err in errors) >= 9, np.round(errors, 4)
    assert covered >= 9


def test_needs_calibration_keeps_a_calibrated_score_and_catches_mild_miscalibration() -> None:
    rng = np.random.default_rng(0)
    p = 1 / (1 + np.exp(-rng.normal(0, 1.5, 8000)))
    y = (rng.random(p.size) < p).astype(float)
    logit = np.log(p / (1 - p))
    assert not needs_calibration(p, y)
    assert needs_calibration(1 / (1 + np.exp(-1.2 * logit)), y)  # a little overconfident
    assert needs_calibration(1 / (1 + np.exp(-(logit + 0.2))), y)  # a little too high
    assert needs_calibration(logit, y)  # not a probability at all


# --------------------------------------------------------------------------- the band


def test_band_narrows_as_the_window_grows(estimators: dict[str, Estimator]) -> None:
    for metric, task in (("roc_auc", BINARY), ("mae", REGRESSION)):
        est = estimators[metric]
        frame = _frame(task, 8000, seed=7)
        sigmas = [est.estimate(frame.iloc[:rows]).sigma for rows in (500, 2000, 8000)]
        assert sigmas[0] > sigmas[1] > sigmas[2] > 0, (metric, sigmas)  # type: ignore[operator]
        widths = [e.upper - e.lower for e in (est.estimate(frame.iloc[:500]), est.estimate(frame))]  # type: ignore[operator]
        assert widths[0] > 1.5 * widths[1]
        assert est.sigma_for(4000) == pytest.approx(est.sigma_for(1000) / 2)  # type: ignore[operator]


def test_concept_drift_takes_the_realized_metric_out_of_the_band(estimators: dict[str, Estimator]) -> None:
    # Documented expectation: the estimate cannot see a change of P(y | x); it stays near the
    # reference level while the realized metric drops, and that gap is the concept-drift signal.
    for metric, task in (("roc_auc", BINARY), ("mae", REGRESSION)):
        est = estimators[metric]
        window = _frame(task, 3000, seed=11, concept=1.0)
        e = est.estimate(window.drop(columns=["label"]))
        realized = _realized(task, window, metric)
        record = side_by_side(e, realized)
        assert record["within_band"] is False, record
        ref = est.reference_realized
        if metric == "roc_auc":
            assert abs(e.value - ref) < 0.03 and realized < e.lower - 0.1  # type: ignore[operator]
        else:
            assert abs(e.value - ref) / ref < 0.1 and realized > 1.5 * e.upper  # type: ignore[operator]


# --------------------------------------------------------------------------- the arithmetic


@pytest.mark.parametrize("metric", supported_metrics(BINARY))
def test_expected_metric_equals_the_realized_one_when_labels_are_certain(metric: str) -> None:
    # With p_i equal to the actual labels the expectation is the realized metric itself (ties included).
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300).astype(float)
    s = np.clip(np.round(0.3 * y + 0.7 * rng.random(300), 2), 0.01, 0.99)
    assert expected_metric(metric, y, s, 0.4) == pytest.approx(metric_fn(metric, threshold=0.4)(y, s), abs=1e-12)


def test_expected_auc_matches_a_monte_carlo_of_the_labels() -> None:
    rng = np.random.default_rng(5)
    s = np.round(rng.random(400), 2)
    p = np.clip(s**2 + 0.1, 0, 1)
    draws = rng.random((4000, s.size)) < p
    auc = metric_fn("roc_auc")
    mc = np.mean([auc(d.astype(float), s) for d in draws])
    assert expected_roc_auc(p, s) == pytest.approx(mc, abs=0.002)


def test_the_stored_calibration_map_is_sklearns_isotonic_prediction() -> None:
    rng = np.random.default_rng(1)
    s = rng.random(2000)
    y = (rng.random(2000) < s**1.5).astype(float)
    x_map, y_map = isotonic_map(s, y)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-6, y_max=1 - 1e-6).fit(s, y)
    new = np.r_[-0.5, rng.random(500), 1.5]
    np.testing.assert_allclose(np.interp(new, x_map, y_map), iso.predict(new), atol=1e-12)


# --------------------------------------------------------------------------- degenerate input


def test_r2_is_not_estimable_and_says_why(holdouts: dict[str, pd.DataFrame], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="driftguard.statistics.estimation"):
        est = _fit(REGRESSION, holdouts[REGRESSION].iloc[:500], "r2")
    assert est.reason and "r2" in est.reason
    assert "r2 cannot be estimated" in caplog.text
    e = est.estimate(holdouts[REGRESSION])
    assert e.value is None and e.lower is None and e.reason == est.reason


def test_configuration_errors_raise(holdouts: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(ValueError, match="not a binary_classification metric"):
        _fit(BINARY, holdouts[BINARY], "mae")
    with pytest.raises(ValueError, match="lacks columns"):
        fit_estimator(BINARY, holdouts[BINARY], score_column="nope", label_column="label", metric="roc_auc")
    with pytest.raises(ValueError, match="usable rows"):
        _fit(BINARY, holdouts[BINARY].iloc[:50], "roc_auc")


def test_bad_windows_give_a_reason_not_an_exception(
    estimators: dict[str, Estimator], holdouts: dict[str, pd.DataFrame]
) -> None:
    est = estimators["mae"]
    assert "lacks columns ['num_0']" in est.estimate(holdouts[REGRESSION].drop(columns=["num_0"])).reason  # type: ignore[operator]
    empty = est.estimate(holdouts[REGRESSION].iloc[:0])
    assert empty.value is None and empty.rows == 0 and "too few" in empty.reason  # type: ignore[operator]
    nulls = holdouts[BINARY].head(100).assign(prediction=np.nan)
    assert estimators["roc_auc"].estimate(nulls).value is None


def test_dle_takes_unseen_categories_nulls_and_text_in_numeric_columns(estimators: dict[str, Estimator]) -> None:
    start = DEFAULT_START + timedelta(days=1)
    faults = [
        Injection("new_category", start, column="cat_a", magnitude=1.0),
        Injection("null_spike", start, column="num_2", magnitude=1.0),
        Injection("type_change", start, column="num_3", magnitude=1.0),
    ]
    log, _ = generate_log(REGRESSION, start=start, days=1, rows_per_day=500, seed=3, injections=faults)
    assert (log["cat_a"] == "cat_a_new").any() and log["num_3"].dtype == object
    e = estimators["mae"].estimate(log)
    assert e.value is not None and math.isfinite(e.value) and e.rows == 500


# --------------------------------------------------------------------------- serialisation


@pytest.mark.parametrize("metric", ["roc_auc", "mae"])
def test_estimators_round_trip_and_estimate_the_same(
    estimators: dict[str, Estimator], windows: dict[str, list[pd.DataFrame]], metric: str
) -> None:
    est = estimators[metric]
    window = windows[BINARY if metric == "roc_auc" else REGRESSION][-1]
    as_json = json.loads(json.dumps(est.to_dict()))  # JSON-ready
    for copy in (Estimator.from_dict(as_json), Estimator.from_bytes(est.to_bytes()), pickle.loads(pickle.dumps(est))):
        assert copy == est  # loss models are excluded from equality, their predictions are compared below
        assert copy.estimate(window) == est.estimate(window)
    if metric == "roc_auc":
        assert est.to_bytes().startswith(b"{") and est.loss_models == ()
    e = est.estimate(window)
    assert Estimate(**json.loads(json.dumps(e.to_dict()))) == e
    record = side_by_side(e, None)
    assert record["realized"] is None and record["within_band"] is None and record["estimated"] == e.value
