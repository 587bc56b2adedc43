"""Properties that must hold for any input, checked with Hypothesis (a few seconds each):

* the contract loader turns any YAML (random text, random documents, a valid contract with one
  field broken) into a contract or a ContractError naming the problem, never another exception;
* the retrain policy is monotone in drift: a higher drift share never turns a retrain off;
* the gate's paired bootstrap is antisymmetric: swapping champion and challenger flips the
  difference and its confidence interval.

Window bucketing with random offsets and DST edges is in test_time_offsets.py."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from driftguard.contract import ContractError, ModelContract, PolicyConfig, parse_contract
from driftguard.monitoring import policy
from driftguard.retraining import gate
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID = yaml.safe_load((Path(__file__).resolve().parents[2] / "include/models/flight_delay.yaml").read_text())

# --------------------------------------------------------------------------- contract loader

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["1d", "-3h", "7x", "10%", "@weekly", "0 0 * * *", "2013-02-30", "${NOT_SET}", "abs", ""]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=12), st.sampled_from(list(VALID))), inner, max_size=5),
    ),
    max_leaves=20,
)


def _parses_or_names_the_problem(text: str) -> None:
    try:
        contract = parse_contract(text, "random.yaml")
    except ContractError as exc:
        assert exc.problems and all(p.file == "random.yaml" and p.message for p in exc.problems)
        assert str(exc)
    else:
        assert isinstance(contract, ModelContract)


@FAST
@given(text=st.text(max_size=300))
def test_any_text_is_a_contract_or_a_contract_error(text: str) -> None:
    _parses_or_names_the_problem(text)


@FAST
@given(doc=documents)
def test_any_yaml_document_is_a_contract_or_a_contract_error(doc: Any) -> None:
    _parses_or_names_the_problem(yaml.safe_dump(doc, allow_unicode=True))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(VALID)


@FAST
@given(path=st.sampled_from(PATHS), value=documents, drop=st.booleans())
def test_a_valid_contract_with_one_field_broken_is_a_contract_or_a_contract_error(
    path: tuple[Any, ...], value: Any, drop: bool
) -> None:
    doc = copy.deepcopy(VALID)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if drop:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    _parses_or_names_the_problem(yaml.safe_dump(doc, allow_unicode=True, default_flow_style=False))


# --------------------------------------------------------------------------- policy

T0 = datetime(2024, 6, 1, tzinfo=UTC)
FEATURES = tuple(f"f{i}" for i in range(6))


@st.composite
def _policies(draw: st.DrawFn) -> PolicyConfig:
    k = draw(st.integers(1, 3))
    return PolicyConfig.model_validate(
        {
            "drift_share": draw(st.one_of(st.none(), st.floats(0.05, 1.0))),
            "drift_share_weighting": draw(st.sampled_from(["importance", "none"])),
            "important_features": draw(st.one_of(st.none(), st.integers(1, 4))),
            "metric_drop": draw(st.sampled_from([None, "5%", "0.02 abs"])),
            "cooldown": draw(st.sampled_from(["0d", "3d", "28d"])),
            "persistence": {"k": k, "n": draw(st.integers(k, 4))},
            "min_new_labels": draw(st.sampled_from([0, 500, "10%"])),
        }
    )


shares = st.one_of(st.none(), st.floats(0.0, 1.0))


@st.composite
def _runs(draw: st.DrawFn, start: datetime) -> policy.RunFacts:
    quality = draw(st.booleans())
    return policy.RunFacts(
        model="m",
        interval_start=start,
        interval_end=start + timedelta(days=1),
        status=draw(st.sampled_from(["ok", "degraded"] if quality else ["quality_failed", "no_data"])),
        quality_passed=quality,
        drift_share=draw(shares),
        drifted_features=tuple(draw(st.lists(st.sampled_from(FEATURES), unique=True, max_size=4))),
        metric_value=draw(st.one_of(st.none(), st.floats(0.5, 0.9))),
        labelled_rows=draw(st.integers(0, 2000)),
        drift_share_threshold=draw(st.one_of(st.none(), st.floats(0.05, 1.0))),
        weighted_drift_share=draw(shares),
    )


@FAST
@given(
    cfg=_policies(),
    current=_runs(T0),
    history=st.lists(st.integers(1, 6).flatmap(lambda d: _runs(T0 - timedelta(days=d))), max_size=4),
    more=st.floats(0.0, 1.0),
    champion_version=st.sampled_from([None, "3"]),
    trained_days_ago=st.integers(0, 200),
    validation=st.one_of(st.none(), st.floats(0.5, 0.95)),
    importance=st.permutations(FEATURES),
    labels=st.integers(0, 5000),
    training_rows=st.one_of(st.none(), st.integers(1000, 50_000)),
)
def test_more_drift_never_turns_a_retrain_off(
    cfg: PolicyConfig,
    current: policy.RunFacts,
    history: list[policy.RunFacts],
    more: float,
    champion_version: str | None,
    trained_days_ago: int,
    validation: float | None,
    importance: list[str],
    labels: int,
    training_rows: int | None,
) -> None:
    trained = T0 - timedelta(days=trained_days_ago)
    champion = policy.ChampionFacts(
        version=champion_version,
        trained_at=trained,
        validation_metric=validation,
        feature_importance=tuple(importance),
        last_retrain_at=trained,
        training_rows=training_rows,
    )

    def retrain(run: policy.RunFacts) -> bool:
        return policy.decide(
            cfg,
            now=run.interval_end,
            current=run,
            history=history,
            champion=champion,
            metric_name="roc_auc",
            greater_is_better=True,
            labelled_rows_since_retrain=labels,
        ).retrain

    higher = min(1.0, (current.drift_share or 0.0) + more)  # from unknown (None) too
    more_drift = policy.RunFacts(**{**current.__dict__, "drift_share": higher})
    if retrain(current):
        assert retrain(more_drift), (current.drift_share, higher)


# --------------------------------------------------------------------------- gate


@st.composite
def _holdouts(draw: st.DrawFn) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(20, 200))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    metric = draw(st.sampled_from(["roc_auc", "log_loss", "brier", "rmse", "mae"]))
    if metric in ("rmse", "mae"):
        y = rng.normal(size=n)
        a, b = (
            y + rng.normal(scale=draw(st.floats(0.1, 2)), size=n),
            y + rng.normal(scale=draw(st.floats(0.1, 2)), size=n),
        )
    else:
        y = (rng.random(n) < draw(st.floats(0.1, 0.9))).astype(float)
        assume(0 < y.sum() < n)
        a, b = rng.uniform(0.01, 0.99, n), np.clip(0.5 * y + rng.uniform(0, 0.5, n), 0.01, 0.99)
        if draw(st.booleans()):
            a, b = b, a
    return metric, y, a, b


@FAST
@given(holdout=_holdouts(), seed=st.integers(0, 1000), confidence=st.sampled_from([0.9, 0.95, 0.99]))
def test_swapping_champion_and_challenger_flips_the_verdict(holdout: Any, seed: int, confidence: float) -> None:
    metric, y, a, b = holdout
    kw = {"samples": 200, "confidence": confidence, "seed": seed}
    ab = gate.paired_bootstrap(metric, y, a, b, **kw)
    ba = gate.paired_bootstrap(metric, y, b, a, **kw)
    assert ab["diff"] == pytest.approx(-ba["diff"], abs=1e-12)
    assert np.sign(ab["diff"]) == -np.sign(ba["diff"]) or ab["diff"] == 0
    assert ab["valid_samples"] == ba["valid_samples"]
    if np.isnan(ab["ci_low"]):
        assert np.isnan(ba["ci_low"]) and np.isnan(ba["ci_high"])
    else:
        assert ab["ci_low"] == pytest.approx(-ba["ci_high"], abs=1e-9)
        assert ab["ci_high"] == pytest.approx(-ba["ci_low"], abs=1e-9)
        # The challenger shown better one way is shown worse the other way.
        assert (ab["ci_low"] > 1e-9) == (ba["ci_high"] < -1e-9)
