"""driftguard.statistics.metrics against scikit-learn's own functions on known values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from driftguard.contract import Task
from driftguard.statistics.metrics import (
    expected_calibration_error,
    metric_fn,
    proxy_metrics,
    segment_metrics,
    task_metrics,
    weighted_metric_fn,
)
from sklearn import metrics as skm


@pytest.fixture(scope="module")
def binary() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 400)
    # rounded scores create many ties, which is where AUC implementations usually differ
    s = np.clip(np.round(0.35 * y + 0.65 * rng.random(400), 2), 0, 1)
    return y, s


def test_binary_metrics_equal_sklearn(binary: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = binary
    got = task_metrics(Task.binary_classification, y, s, threshold=0.4)
    pred = (s >= 0.4).astype(int)
    expected = {
        "roc_auc": skm.roc_auc_score(y, s),
        "log_loss": skm.log_loss(y, s),
        "f1": skm.f1_score(y, pred),
        "brier": skm.brier_score_loss(y, s),
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred),
        "recall": skm.recall_score(y, pred),
    }
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name


def test_hand_worked_auc_with_ties() -> None:
    # positives 0.8, 0.5; negatives 0.5, 0.2: pairs (0.8>0.5)=1, (0.8>0.2)=1, (0.5=0.5)=0.5, (0.5>0.2)=1
    assert task_metrics("binary_classification", [1, 1, 0, 0], [0.8, 0.5, 0.5, 0.2])["roc_auc"] == 3.5 / 4


def test_regression_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(10, 3, 300)
    p = y + rng.normal(0, 1, 300)
    got = task_metrics("regression", y, p)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-12)
    assert got["rmse"] == pytest.approx(skm.root_mean_squared_error(y, p), rel=1e-12)
    assert got["r2"] == pytest.approx(skm.r2_score(y, p), rel=1e-12)


def test_degenerate_input_gives_nan_not_error() -> None:
    one_class = task_metrics("binary_classification", [1, 1, 1], [0.2, 0.7, 0.9])
    assert math.isnan(one_class["roc_auc"])
    assert one_class["recall"] == pytest.approx(2 / 3)  # still defined
    assert one_class["log_loss"] == pytest.approx(skm.log_loss([1, 1, 1], [0.2, 0.7, 0.9], labels=[0, 1]))
    empty = task_metrics("binary_classification", [], [])
    assert all(math.isnan(v) for v in empty.values())
    no_pred_pos = task_metrics("binary_classification", [0, 1], [0.1, 0.2], threshold=0.5)
    assert math.isnan(no_pred_pos["precision"]) and no_pred_pos["recall"] == 0.0
    single = task_metrics("regression", [1.0], [2.0])
    assert single["mae"] == 1.0 and math.isnan(single["r2"])
    assert math.isnan(task_metrics("regression", [3.0, 3.0], [3.0, 2.0])["r2"])  # constant target


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match=r"binary labels must be 0 or 1; found \[2.0\]"):
        task_metrics("binary_classification", [0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="y_true has 2 rows but y_score has 3"):
        task_metrics("regression", [0, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        task_metrics("ranking", [0], [0])
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        metric_fn("auc")


def test_metric_fn_and_batched_agree(binary: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = binary
    f1 = metric_fn("f1", threshold=0.4)
    assert f1(y, s) == pytest.approx(skm.f1_score(y, (s >= 0.4).astype(int)))
    idx = np.random.default_rng(0).integers(0, y.size, size=(5, y.size))
    counts = np.stack([np.bincount(i, minlength=y.size) for i in idx]).astype(float)
    yf = y.astype(float)
    for name, ref in [
        ("roc_auc", skm.roc_auc_score),
        ("log_loss", skm.log_loss),
        ("f1", lambda t, p: skm.f1_score(t, p >= 0.5)),
    ]:
        weighted = weighted_metric_fn(name)(yf, s, counts)  # counts of a resample == the resample itself
        np.testing.assert_allclose(weighted, [ref(y[i], s[i]) for i in idx], rtol=1e-10, err_msg=name)
    rng = np.random.default_rng(1)
    yr = rng.normal(1e6, 2.0, 300)  # large mean: r2 must not cancel
    pr = yr + rng.normal(0, 1.0, 300)
    idx_r = rng.integers(0, 300, size=(5, 300))
    counts_r = np.stack([np.bincount(i, minlength=300) for i in idx_r]).astype(float)
    r2 = weighted_metric_fn("r2")(yr, pr, counts_r)
    np.testing.assert_allclose(r2, [skm.r2_score(yr[i], pr[i]) for i in idx_r], rtol=1e-8)


def test_expected_calibration_error_hand_worked() -> None:
    # bin (0.1, 0.2]: scores 0.2, 0.2, observed 0/2 -> gap 0.2; bin (0.7, 0.8]: 0.8, 0.8, observed 2/2 -> gap 0.2
    # bin (0.9, 1.0]: score 1.0 observed 1 -> gap 0 ; weighted: (2*0.2 + 2*0.2 + 0) / 5
    assert expected_calibration_error([0, 0, 1, 1, 1], [0.2, 0.2, 0.8, 0.8, 1.0]) == pytest.approx(0.16)
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0


def test_segment_metrics_respect_min_rows() -> None:
    frame = pd.DataFrame(
        {
            "y": [0, 1, 0, 1, 1, 0, 1],
            "p": [0.1, 0.9, 0.4, 0.6, 0.8, 0.3, 0.2],
            "origin": ["EWR", "EWR", "EWR", "JFK", "JFK", "JFK", None],
        }
    )
    out = segment_metrics("binary_classification", frame, label="y", score="p", segments=["origin"], min_rows=3)
    assert set(out["origin"]) == {"EWR", "JFK"}  # the single null row is below min_rows
    assert out["origin"]["EWR"]["rows"] == 3
    assert out["origin"]["EWR"]["roc_auc"] == 1.0
    assert out["origin"]["JFK"]["accuracy"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"columns \['carrier'\] not in the frame"):
        segment_metrics("binary_classification", frame, label="y", score="p", segments=["carrier"], min_rows=1)


def test_proxy_metrics() -> None:
    got = proxy_metrics("binary_classification", [0.1, 0.35, 0.45, 0.9, np.nan], threshold=0.4)
    assert got == {"mean_score": pytest.approx(0.45), "positive_rate": 0.5, "low_confidence_share": 0.5}
    reg = proxy_metrics(Task.regression, [1.0, 3.0])
    assert reg == {"mean_prediction": 2.0, "std_prediction": 1.0}


def test_metric_se_matches_the_analytic_standard_error() -> None:
    """For MAE (a mean of |errors|) the bootstrap SE must match std(|e|) / sqrt(n); above
    SE_MAX_ROWS it is measured on a sample and scaled by sqrt(sample / n)."""
    from driftguard.statistics.metrics import SE_MAX_ROWS, metric_se

    rng = np.random.default_rng(7)
    for n in (200, SE_MAX_ROWS * 8):
        y = rng.normal(0, 1, n)
        pred = y + rng.normal(0, 2, n)
        analytic = np.abs(pred - y).std(ddof=1) / np.sqrt(n)
        assert metric_se("mae", y, pred) == pytest.approx(analytic, rel=0.15)
    assert metric_se("roc_auc", np.ones(50), rng.random(50)) is None  # one class: no AUC, no SE


def test_a_perfect_score_on_few_rows_keeps_an_honest_standard_error() -> None:
    """ROC AUC 1.0 on 20 rows (8 positives): every bootstrap resample is 1.0 too, yet the score
    only says the error rate is below ~3/8. The SE is floored there, and left alone on many rows."""
    from driftguard.statistics.metrics import metric_se, se_floor

    y = np.array([1] * 8 + [0] * 12, dtype=float)
    perfect = y * 0.8 + 0.1  # every positive above every negative
    floor = se_floor("roc_auc", y)
    assert floor == pytest.approx((1 - 0.05 ** (1 / 8)) / 1.6449, rel=1e-3) and floor > 0.18
    assert metric_se("roc_auc", y, perfect) == pytest.approx(floor)
    assert se_floor("mae", y) == 0.0  # unbounded: the bootstrap says it
    flipped = perfect.copy()
    flipped[[0, 8]] = flipped[[8, 0]]  # one pair out of order: not perfect, the bootstrap decides
    assert metric_se("roc_auc", y, flipped) < floor
    rng = np.random.default_rng(0)
    big_y = rng.integers(0, 2, 4000).astype(float)
    noisy = big_y * 0.3 + rng.random(4000)
    assert metric_se("roc_auc", big_y, noisy) > 5 * se_floor("roc_auc", big_y)
