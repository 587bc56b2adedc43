"""driftguard.testing: every injection shows up from its start date, and only from then."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from driftguard import sources
from driftguard.contract import ContractError
from driftguard.testing import (
    DEFAULT_START,
    DRIFT_KINDS,
    NUMERIC,
    Injection,
    generate_log,
    synthetic_contract,
    write_log,
)
from sklearn.metrics import roc_auc_score

DAYS, PER_DAY = 8, 600
CUT = DEFAULT_START + timedelta(days=4)


def gen(*injections: Injection, task: str = "binary_classification", seed: int = 0):
    return generate_log(task, start=DEFAULT_START, days=DAYS, rows_per_day=PER_DAY, seed=seed, injections=injections)


@pytest.fixture(scope="module")
def clean() -> tuple[pd.DataFrame, pd.DataFrame]:
    return gen()


def halves(log: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    after = log["event_ts"] >= pd.Timestamp(CUT)
    return log[~after], log[after]


def test_shape_dtypes_and_determinism(clean: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    log, labels = clean
    assert len(log) == len(labels) == DAYS * PER_DAY
    assert list(log.columns) == ["event_id", "event_ts", *NUMERIC, "cat_a", "cat_b", "region", "prediction"]
    assert str(log["event_ts"].dtype) == "datetime64[ns, UTC]" and log["event_ts"].is_monotonic_increasing
    assert log["event_ts"].min() >= pd.Timestamp(DEFAULT_START)
    assert log["event_ts"].max() < pd.Timestamp(DEFAULT_START + timedelta(days=DAYS))
    assert log["event_id"].is_unique
    assert set(labels["label"]) == {0, 1} and 0.2 < labels["label"].mean() < 0.6
    assert (labels["labelled_at"] - log["event_ts"] == pd.Timedelta(days=1)).all()
    # The six numeric features have different distributions.
    assert len({round(log[c].mean(), 0) for c in NUMERIC}) >= 5
    again_log, again_labels = gen()
    pd.testing.assert_frame_equal(log, again_log)
    pd.testing.assert_frame_equal(labels, again_labels)
    assert not gen(seed=1)[0]["num_0"].equals(log["num_0"])


@pytest.mark.parametrize("kind", [k for k in DRIFT_KINDS if k != "concept_drift"])
def test_each_feature_injection_only_after_its_start(kind: str, clean: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    injection = Injection(kind, CUT)
    col = injection.target
    log, _ = gen(injection)
    before, after = halves(log)
    clean_before, clean_after = halves(clean[0])
    # Rows before the start are untouched, in every column.
    pd.testing.assert_frame_equal(before, clean_before, check_dtype=kind != "type_change")
    changed = after[col].astype(str) != clean_after[col].astype(str)
    assert changed.mean() > 0.3, f"{kind} changed only {changed.mean():.0%} of {col} after {CUT}"
    other = [c for c in log.columns if c not in (col, "prediction")]
    pd.testing.assert_frame_equal(after[other], clean_after[other])
    if kind == "mean_shift":
        assert after[col].mean() - clean_after[col].mean() == pytest.approx(1.0, abs=1e-9)  # 1 std of N(0, 1)
    elif kind == "variance_change":
        assert after[col].std() / clean_after[col].std() == pytest.approx(2.0, rel=1e-6)
    elif kind == "new_category":
        assert (after[col] == "cat_a_new").mean() == pytest.approx(0.5, abs=0.05)
        assert "cat_a_new" not in set(before[col])
    elif kind == "null_spike":
        assert after[col].isna().mean() == pytest.approx(0.5, abs=0.05) and before[col].notna().all()
    elif kind == "type_change":
        text = after[col].map(lambda v: isinstance(v, str))
        assert text.mean() == pytest.approx(0.5, abs=0.05) and after[col][text].str.endswith(" units").all()


def test_concept_drift_changes_labels_not_features(clean: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    log, labels = gen(Injection("concept_drift", CUT))
    pd.testing.assert_frame_equal(log, clean[0])  # features and logged prediction unchanged
    after = (log["event_ts"] >= pd.Timestamp(CUT)).to_numpy()
    assert (labels["label"][~after] == clean[1]["label"][~after]).all()
    assert (labels["label"][after] != clean[1]["label"][after]).mean() > 0.2
    auc_before = roc_auc_score(labels["label"][~after], log["prediction"][~after])
    auc_after = roc_auc_score(labels["label"][after], log["prediction"][after])
    assert auc_before > 0.75 and auc_after < 0.6


def test_regression_labels() -> None:
    log, labels = gen(task="regression")
    assert labels["label"].dtype == np.float64
    assert np.corrcoef(labels["label"], log["prediction"])[0, 1] > 0.8


def test_injection_validation() -> None:
    with pytest.raises(ValueError, match="unknown injection kind 'spike'"):
        Injection("spike", CUT)
    with pytest.raises(ValueError, match="mean_shift needs a numeric column"):
        Injection("mean_shift", CUT, column="region")
    with pytest.raises(ValueError, match="tz-aware"):
        Injection("null_spike", CUT.replace(tzinfo=None))


def test_synthetic_contract_and_overrides(sqlite_url: str) -> None:
    contract = synthetic_contract(url=sqlite_url, overrides={"policy": {"cooldown": "0d"}, "drift": {"method": "psi"}})
    assert contract.name == "synthetic_binary" and contract.policy.cooldown == timedelta(0)
    assert str(contract.policy.min_new_labels) == "10%"  # untouched defaults survive the merge
    assert contract.drift.method == "psi" and contract.segment_features == ["region"]
    assert contract.source.prediction_column == "prediction" and contract.source.labels.table == "event_labels"
    reg = synthetic_contract(task="regression", url=sqlite_url, name="reg_model", prediction=False, label_table=None)
    assert reg.primary_metric == "rmse" and reg.source.prediction_column is None and reg.source.labels.table is None
    with pytest.raises(ContractError, match=r"<synthetic_contract synthetic_binary>: policy.cooldwn: unknown field"):
        synthetic_contract(url=sqlite_url, overrides={"policy": {"cooldwn": "0d"}})


def test_write_log_round_trip_with_type_change(db_url: str) -> None:
    contract = synthetic_contract(url=db_url)
    log, labels = generate_log(
        "binary_classification",
        start=DEFAULT_START,
        days=4,
        rows_per_day=50,
        injections=[Injection("type_change", CUT - timedelta(days=1))],
    )
    write_log(db_url, contract, log, labels)
    clean, _ = sources.read_window(contract, DEFAULT_START, CUT - timedelta(days=1))
    assert clean["num_3"].dtype == np.float64 and len(clean) == 150
    pd.testing.assert_series_equal(clean["num_0"], log["num_0"][:150].reset_index(drop=True))
    with pytest.raises(sources.ColumnTypeError, match="column num_3"):
        sources.read_window(contract, DEFAULT_START, CUT)
    labelled, _ = sources.read_labelled(
        contract, DEFAULT_START, CUT, sources.ReadOptions(strict=False), as_of=CUT + timedelta(days=1)
    )
    assert labelled["label"].tolist() == labels["label"].tolist()
    write_log(db_url, contract, log, labels)  # replace: no duplicates
    again, _ = sources.read_window(contract, DEFAULT_START, CUT, sources.ReadOptions(strict=False))
    assert len(again) == 200


def test_write_log_labels_in_log_table(db_url: str) -> None:
    contract = synthetic_contract(task="regression", url=db_url, label_table=None, label_delay="2d")
    log, labels = generate_log("regression", start=DEFAULT_START, days=3, rows_per_day=20)
    write_log(db_url, contract, log, labels)
    got = sources.read_labels(contract, DEFAULT_START, CUT, as_of=DEFAULT_START + timedelta(days=3))
    assert len(got) == 20 and got["label"].tolist() == pytest.approx(labels["label"][:20].tolist())


def test_seasonal_and_gradual_injections_follow_their_shape() -> None:
    from datetime import timedelta

    from driftguard.testing import DEFAULT_START, Injection, generate_log

    cycle = Injection("seasonal", DEFAULT_START, column="num_4", magnitude=2.0)
    ramp = Injection("gradual_shift", DEFAULT_START, column="num_0", magnitude=1.0, duration=timedelta(days=20))
    log, _ = generate_log(
        "regression", start=DEFAULT_START, days=364, rows_per_day=40, seed=0, injections=[cycle, ramp]
    )
    base, _ = generate_log("regression", start=DEFAULT_START, days=364, rows_per_day=40, seed=0)
    day = (log["event_ts"] - DEFAULT_START).dt.days
    cycle_gap = (log["num_4"] - base["num_4"]).groupby(day).mean()
    assert cycle_gap.iloc[91] == pytest.approx(20.0, abs=0.5)  # a quarter cycle: +2 sd of num_4 (sd 10)
    assert cycle_gap.iloc[273] == pytest.approx(-20.0, abs=0.5)
    ramp_gap = (log["num_0"] - base["num_0"]).groupby(day).mean()
    assert ramp_gap.iloc[10] == pytest.approx(0.5, abs=0.05) and ramp_gap.iloc[100] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="numeric column"):
        Injection("seasonal", DEFAULT_START, column="cat_a")
