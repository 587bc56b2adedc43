"""The promotion gate on synthetic score arrays with known properties (pure, no I/O)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from driftguard.contract import ModelContract
from driftguard.retraining.gate import Check, GateVerdict, evaluate_gate, holm, paired_bootstrap
from driftguard.retraining.servability import ServabilityResult
from sklearn.metrics import roc_auc_score

N = 3000
SERVABLE = ServabilityResult(ok=True, load_seconds=0.4, ms_per_1k_rows=12.0, error=None, model_uri="models:/m/2")


def make_contract(task: str = "binary_classification", **promotion: Any) -> ModelContract:
    promo = {"bootstrap": {"samples": 400, "confidence": 0.95, "seed": 0}, **promotion}
    return ModelContract.model_validate(
        {
            "name": "gate_model",
            "task": task,
            "owners": ["a@example.com"],
            "start_date": "2024-01-01",
            "source": {"url": "sqlite:///x.db", "table": "log", "timestamp_column": "ts", "id_column": "id"},
            "features": [{"name": "origin", "kind": "categorical", "segment": True}],
            "promotion": promo,
        }
    )


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    """Labels, a shared noise draw and three segments of 1,000 rows."""
    rng = np.random.default_rng(123)
    y = rng.binomial(1, 0.35, N).astype(float)
    return {
        "y": y,
        "noise_a": rng.normal(0, 1, N),
        "noise_b": rng.normal(0, 1, N),
        "origin": np.repeat(np.array(["EWR", "JFK", "LGA"], dtype=object), N // 3),
    }


def scores(data: dict[str, np.ndarray], strength: float | np.ndarray, noise: str = "noise_a") -> np.ndarray:
    """Probabilities whose separation grows with ``strength`` (0 = pure noise)."""
    return sigmoid(strength * (2 * data["y"] - 1) + data[noise] - 0.6)


def gate(contract: ModelContract, data: dict[str, np.ndarray], champion: Any, challenger: Any, **kw: Any):
    kw.setdefault("servability", SERVABLE)
    kw.setdefault("segments", {"origin": data["origin"]})
    return evaluate_gate(contract, y_true=data["y"], champion_scores=champion, challenger_scores=challenger, **kw)


def test_clearly_better_challenger_is_promoted(data: dict[str, np.ndarray]) -> None:
    for mode in ("superiority", "non_inferiority"):
        verdict = gate(make_contract(mode=mode), data, scores(data, 0.6), scores(data, 1.5, "noise_b"))
        assert verdict.promote, verdict.summary()
        assert [c.name for c in verdict.checks] == [
            "loads_and_scores",
            "output_sanity",
            "primary_metric_threshold",
            "significance",
            "segment_guardrails",
            "calibration",
            "servability",
        ]
        sig = verdict.check("significance").numbers
        assert sig["ci_low"] > 0.05 and sig["diff"] > sig["ci_low"]
        assert verdict.summary() == "PROMOTE (challenger vs champion on roc_auc): all 7 checks passed"


def test_clearly_worse_challenger_is_rejected(data: dict[str, np.ndarray]) -> None:
    verdict = gate(make_contract(), data, scores(data, 1.5), scores(data, 0.6, "noise_b"))
    assert not verdict.promote
    sig = verdict.check("significance")
    assert not sig.passed and "worse than the champion by more than 1% of" in sig.detail
    assert verdict.outcome == "reject" and sig.numbers["insufficient_evidence"] == 0
    assert sig.numbers["ci_high"] < -0.05
    assert verdict.summary().startswith("REJECT (challenger vs champion on roc_auc): ")


def test_overall_winner_that_loses_one_segment_is_rejected(data: dict[str, np.ndarray]) -> None:
    lga = data["origin"] == "LGA"
    champion = scores(data, 0.8)
    challenger = scores(data, np.where(lga, 0.0, 2.0), "noise_b")  # great at EWR/JFK, useless at LGA
    assert roc_auc_score(data["y"], challenger) > roc_auc_score(data["y"], champion) + 0.03
    verdict = gate(make_contract(mode="superiority"), data, champion, challenger)
    assert verdict.check("significance").passed
    seg = verdict.check("segment_guardrails")
    assert not seg.passed
    assert seg.numbers["failing_segments"] == "origin=LGA"
    assert seg.numbers["segments_tested"] == 3
    assert "origin=LGA loses" in seg.detail and "Holm" in seg.detail
    assert not verdict.promote
    assert any(r.startswith("segment_guardrails: ") for r in verdict.reasons())


def test_small_segments_are_not_tested(data: dict[str, np.ndarray]) -> None:
    lga = data["origin"] == "LGA"
    challenger = scores(data, np.where(lga, 0.0, 2.0), "noise_b")
    verdict = gate(make_contract(segments={"min_rows": 1001}), data, scores(data, 0.8), challenger)
    seg = verdict.check("segment_guardrails")
    assert seg.passed and seg.numbers["segments_below_min_rows"] == 3 and seg.numbers["segments_tested"] == 0


def test_tie_rejected_under_superiority_accepted_under_non_inferiority(data: dict[str, np.ndarray]) -> None:
    champion = scores(data, 1.0)
    rng = np.random.default_rng(5)
    tie = sigmoid(np.log(champion / (1 - champion)) + rng.normal(0, 0.02, N))  # same model, tiny jitter
    sup = gate(make_contract(mode="superiority"), data, champion, tie)
    non = gate(make_contract(mode="non_inferiority", margin="0.005 abs"), data, champion, tie)
    assert not sup.promote and sup.outcome == "reject"  # 3,000 rows measure the tie well: a rejection
    assert [c.name for c in sup.failed] == ["significance"]
    assert "tie, not better than the champion by more than 1% of" in sup.check("significance").detail
    assert non.promote, non.summary()
    nums = non.check("significance").numbers
    assert -0.005 < nums["ci_low"] <= 0 < nums["ci_high"] and nums["bound"] == -0.005
    assert "non-inferiority accepted: the challenger is at most 0.005 worse" in non.check("significance").detail


def test_superiority_never_promotes_a_gain_ci_that_spans_zero() -> None:
    """The tie rule, over many small and large ties: a CI reaching 0 never promotes under superiority;
    on few rows the outcome is insufficient evidence (no cooldown), on many a rejection."""
    outcomes = set()
    for seed in range(12):
        rng = np.random.default_rng(seed)
        n = (40, 4000)[seed % 2]
        y = rng.binomial(1, 0.4, n).astype(float)
        champion = sigmoid(1.0 * (2 * y - 1) + rng.normal(0, 1, n))
        challenger = sigmoid(np.log(champion / (1 - champion)) + rng.normal(0, 0.3, n))
        v = evaluate_gate(
            make_contract(mode="superiority", margin=0),
            y_true=y,
            champion_scores=champion,
            challenger_scores=challenger,
            servability=SERVABLE,
        )
        sig = v.check("significance").numbers
        if sig["ci_low"] <= 0:
            assert not v.promote, v.summary()
        outcomes.add((n, v.outcome))
    assert (4000, "reject") in outcomes


def test_inconclusive_ci_on_few_rows_is_insufficient_evidence(data: dict[str, np.ndarray]) -> None:
    """A better challenger on 40 rows: the CI contains the bound, and the gate says how many rows
    would tell (not a rejection); on all 3,000 rows the same models are promoted."""
    champion, challenger = scores(data, 0.8), scores(data, 1.0, "noise_b")
    few = slice(0, 40)
    small = {k: v[few] for k, v in data.items()}
    v = gate(make_contract(mode="superiority"), small, champion[few], challenger[few])
    sig = v.check("significance")
    assert v.outcome == "insufficient_evidence" and not v.promote, v.summary()
    assert sig.numbers["rows"] == 40 and sig.numbers["rows_needed"] > 40
    assert sig.numbers["ci_low"] <= sig.numbers["bound"] < sig.numbers["ci_high"]
    assert v.summary().startswith("NOT PROMOTED, insufficient evidence")
    assert f"about {sig.numbers['rows_needed']:,} rows" in sig.detail
    assert gate(make_contract(mode="superiority"), data, champion, challenger).promote


def test_rows_needed_hand_worked() -> None:
    from driftguard.retraining.gate import rows_needed

    # (z_0.975 + z_0.8)^2 = (1.95996 + 0.84162)^2 = 7.8489; x (se / margin)^2 = 4 -> 31.40 x 100 rows
    assert rows_needed(100, 0.02, 0.01, confidence=0.95, power=0.8) == 3140
    assert rows_needed(100, 0.001, 0.01, confidence=0.95, power=0.8) == 100  # never fewer than measured
    assert rows_needed(100, 0.02, 0.0, confidence=0.95, power=0.8) is None  # margin 0: nothing to plan for


def test_margins_take_relative_and_absolute_units_in_the_metrics_direction() -> None:
    """`1%` of the champion's metric, `0.5 abs` in its units; for a lower-is-better metric the
    bound is still a gain (a lower RMSE), whatever the scale."""
    y, weak, strong = _regression_data()
    rel = make_contract("regression", mode="superiority", margin="1%")
    v = evaluate_gate(rel, y_true=y, champion_scores=weak, challenger_scores=strong, servability=SERVABLE)
    nums = v.check("significance").numbers
    champion_rmse = float(np.sqrt(np.mean((weak - y) ** 2)))
    assert nums["margin"] == "1%" and nums["margin_abs"] == pytest.approx(0.01 * champion_rmse)
    assert nums["bound"] == pytest.approx(0.01 * champion_rmse) and v.promote
    big = make_contract("regression", mode="superiority", margin="5 abs")  # a gain of 5 RMSE units: not shown
    v = evaluate_gate(big, y_true=y, champion_scores=weak, challenger_scores=strong, servability=SERVABLE)
    assert not v.promote and v.check("significance").numbers["bound"] == 5.0
    assert make_contract(margin=0.005).promotion.margin.relative is False  # a bare number: absolute, as before
    assert str(make_contract().promotion.margin) == "1%" and str(make_contract().promotion.segments.margin) == "2.5%"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: np.where(np.arange(s.size) < 7, np.nan, s), "challenger: 7 of 3000 scores are NaN/inf"),
        (lambda s: s * 1.5, "probabilities outside [0, 1]"),
        (lambda s: np.full_like(s, 0.3), "predictions collapsed to one value (0.3)"),
    ],
    ids=["nan", "out_of_range", "collapsed"],
)
def test_insane_outputs_are_rejected(data: dict[str, np.ndarray], mutate: Any, message: str) -> None:
    verdict = gate(make_contract(), data, scores(data, 0.6), mutate(scores(data, 1.5, "noise_b")))
    assert not verdict.promote
    sanity = verdict.check("output_sanity")
    assert not sanity.passed and message in sanity.detail
    # metric checks are not run on broken scores
    assert [c.name for c in verdict.checks] == ["loads_and_scores", "output_sanity", "servability"]


def test_broken_champion_scores_are_named(data: dict[str, np.ndarray]) -> None:
    champion = scores(data, 0.6)
    champion[0] = np.inf
    verdict = gate(make_contract(), data, champion, scores(data, 1.5, "noise_b"))
    assert "champion: 1 of 3000 scores are NaN/inf" in verdict.check("output_sanity").detail


@pytest.mark.parametrize("metric", ["brier", "ece"])
def test_worse_calibration_is_rejected(data: dict[str, np.ndarray], metric: str) -> None:
    champion = scores(data, 1.0)
    distorted = champion**3  # same ranking (identical AUC), badly calibrated
    verdict = gate(make_contract(calibration={"metric": metric, "tolerance": 0.01}), data, champion, distorted)
    assert [c.name for c in verdict.failed] == ["calibration"]
    cal = verdict.check("calibration")
    assert cal.numbers["worsening"] > 0.01 and f"{metric} champion" in cal.detail
    assert verdict.check("significance").numbers["diff"] == pytest.approx(0.0, abs=1e-12)


def test_unservable_or_slow_or_unchecked_is_rejected(data: dict[str, np.ndarray]) -> None:
    champion, challenger = scores(data, 0.6), scores(data, 1.5, "noise_b")
    broken = ServabilityResult(False, None, None, "Traceback...\nOSError: No such file model.pkl", "models:/m/3")
    verdict = gate(make_contract(), data, champion, challenger, servability=broken)
    assert [c.name for c in verdict.checks] == ["loads_and_scores"]  # nothing else is judged
    assert verdict.reasons() == [
        "loads_and_scores: models:/m/3 does not load or score in a fresh process: OSError: No such file model.pkl"
    ]
    slow = ServabilityResult(True, 0.5, 2500.0, None, "models:/m/3")
    verdict = gate(make_contract(latency_budget_ms=2000), data, champion, challenger, servability=slow)
    assert verdict.reasons() == ["servability: too slow: 2500.0 ms per 1k rows > latency_budget_ms 2000"]
    verdict = gate(make_contract(), data, champion, challenger, servability=None)
    assert verdict.reasons() == ["servability: not checked: no fresh-process load/predict result was given"]


def test_challenger_that_fails_in_process_gets_its_own_check(data: dict[str, np.ndarray]) -> None:
    """No scores to judge: one failed ``loads_and_scores`` with the error's last line, never a
    NaN array reported as ``output_sanity``; with or without a champion."""
    for champion in (scores(data, 0.6), None):
        verdict = gate(
            make_contract(),
            data,
            champion,
            None,
            challenger_error="Traceback (most recent call last):\n  ...\nValueError: feature 'x' missing",
        )
        assert not verdict.promote and verdict.first_champion is (champion is None)
        assert [c.name for c in verdict.checks] == ["loads_and_scores"]
        assert verdict.reasons() == [
            "loads_and_scores: models:/m/2 does not load or score the holdout: ValueError: feature 'x' missing"
        ]


@pytest.mark.parametrize(
    ("ms", "champion_ms", "passed", "detail"),
    [
        (12.0, 10.0, True, "12.0 ms per 1k rows, 1.20x the champion's 10.0 (limits 3x and 2000 ms)"),
        (40.0, 10.0, False, "4.00x the champion's 10.0 ms per 1k rows > latency_ratio 3"),
        (9.0, 1.0, True, "9.0 ms per 1k rows, 1.80x the champion's 1.0, counted as 5 (limits"),
        (2500.0, 2000.0, False, "too slow: 2500.0 ms per 1k rows > latency_budget_ms 2000"),
        (2500.0, 500.0, False, "too slow: 2500.0 ms per 1k rows > latency_budget_ms 2000; 5.00x the champion's"),
    ],
    ids=["within", "ratio", "ratio_floor", "ceiling", "both"],
)
def test_latency_is_judged_by_ratio_to_the_champion_and_a_ceiling(
    data: dict[str, np.ndarray], ms: float, champion_ms: float, passed: bool, detail: str
) -> None:
    timed = ServabilityResult(
        True, 0.4, ms, None, "models:/m/3", champion_uri="models:/m/2", champion_ms_per_1k_rows=champion_ms,
        champion_load_seconds=0.3, wall_ms_per_1k_rows=3 * ms, champion_wall_ms_per_1k_rows=3 * champion_ms,
        rows=1000, repeats=15, process_seconds=2.5,
    )  # fmt: skip
    verdict = gate(make_contract(), data, scores(data, 0.6), scores(data, 1.5, "noise_b"), servability=timed)
    serve = verdict.check("servability")
    assert serve.passed is passed and serve.detail.startswith(detail), serve.detail
    assert serve.numbers["ratio"] == pytest.approx(ms / max(champion_ms, 5.0))
    assert serve.numbers["latency_ratio"] == 3.0 and serve.numbers["latency_budget_ms"] == 2000.0
    assert (serve.numbers["repeats"], serve.numbers["wall_ms_per_1k_rows"]) == (15, 3 * ms)
    json.dumps(verdict.to_dict())  # the numbers stay JSON-safe


def test_without_champion_timing_only_the_ceiling_applies(data: dict[str, np.ndarray]) -> None:
    failed_champion = ServabilityResult(
        True, 0.4, 900.0, None, "models:/m/3", champion_uri="models:/m/2", champion_error="OSError: gone"
    )
    verdict = gate(make_contract(), data, scores(data, 0.6), scores(data, 1.5, "noise_b"), servability=failed_champion)
    serve = verdict.check("servability")
    assert serve.passed and "champion not timed: OSError: gone" in serve.detail
    assert serve.numbers["ratio"] is None and serve.numbers["champion_error"] == "OSError: gone"
    first = gate(make_contract(), data, None, scores(data, 1.5), servability=SERVABLE)
    assert first.check("servability").detail.startswith("12.0 ms per 1k rows, ceiling 2000 ms; no champion timing")


def test_servability_result_reads_old_and_new_records() -> None:
    old_slow = {"ok": False, "load_seconds": 2.9, "ms_per_1k_rows": 7311.0, "model_uri": "models:/m/4",
                "error": "too slow: 7311.0 ms per 1k rows > budget 2000 ms"}  # fmt: skip
    result = ServabilityResult.from_dict(old_slow)
    assert result.ok and result.error is None and result.ms_per_1k_rows == 7311.0  # it loaded and scored
    assert result.champion_ms_per_1k_rows is None and result.ratio is None
    broken = ServabilityResult.from_dict({"ok": False, "error": "fresh process failed (exit 1)", "model_uri": "m"})
    assert not broken.ok and broken.load_seconds is None
    full = ServabilityResult(True, 0.4, 12.0, None, "models:/m/3", champion_ms_per_1k_rows=8.0, repeats=15)
    assert ServabilityResult.from_dict({**full.to_dict(), "from_a_newer_version": 1}) == full
    assert full.ratio == pytest.approx(1.5)


def test_first_champion_floors(data: dict[str, np.ndarray]) -> None:
    contract = make_contract(floors={"roc_auc": 0.6, "brier": 0.25})
    good = gate(contract, data, None, scores(data, 1.5))
    assert good.promote and good.first_champion
    assert [c.name for c in good.checks] == [
        "loads_and_scores",
        "output_sanity",
        "first_champion_floors",
        "servability",
    ]
    assert good.check("first_champion_floors").detail.startswith("first champion meets every floor: brier 0.")
    bad = gate(contract, data, None, scores(data, 0.0))
    assert not bad.promote
    assert bad.reasons()[0].startswith("first_champion_floors: first champion below floor: ")
    assert "brier 0.26" in bad.reasons()[0] and "> floor 0.25" in bad.reasons()[0]  # a ceiling for brier
    assert "roc_auc 0.49" in bad.reasons()[0] and "< floor 0.6" in bad.reasons()[0]
    assert bad.check("first_champion_floors").numbers["roc_auc_floor"] == 0.6
    assert bad.summary().startswith("REJECT (first champion): ")


def _regression_data(seed: int = 9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.normal(50, 10, 2000)
    return y, y + rng.normal(0, 6, y.size), y + rng.normal(0, 3, y.size)


def test_regression_rmse_lower_is_better_both_directions() -> None:
    y, weak, strong = _regression_data()
    contract = make_contract("regression", mode="superiority")
    assert contract.primary_metric == "rmse" and not contract.greater_is_better
    better = evaluate_gate(contract, y_true=y, champion_scores=weak, challenger_scores=strong, servability=SERVABLE)
    assert better.promote, better.summary()
    assert better.check("significance").numbers["diff"] == pytest.approx(
        np.sqrt(np.mean((weak - y) ** 2)) - np.sqrt(np.mean((strong - y) ** 2))
    )
    assert better.check("calibration").detail == "not applicable to regression"
    worse = evaluate_gate(contract, y_true=y, champion_scores=strong, challenger_scores=weak, servability=SERVABLE)
    assert not worse.promote and worse.check("significance").numbers["ci_high"] < 0
    ceiling = make_contract("regression", floors={"rmse": 4.0})
    first = evaluate_gate(ceiling, y_true=y, champion_scores=None, challenger_scores=weak, servability=SERVABLE)
    assert not first.promote and "rmse 6." in first.reasons()[0] and "> floor 4" in first.reasons()[0]


def test_min_absolute_and_relative_change(data: dict[str, np.ndarray]) -> None:
    champion, challenger = scores(data, 0.6), scores(data, 1.5, "noise_b")
    strict = gate(make_contract(min_absolute_change=0.5), data, champion, challenger)
    thr = strict.check("primary_metric_threshold")
    assert not thr.passed and "< min_absolute_change 0.5" in thr.detail
    rel = gate(make_contract(min_relative_change=0.01), data, champion, challenger)
    assert rel.check("primary_metric_threshold").passed
    assert rel.check("primary_metric_threshold").numbers["relative_improvement"] > 0.01


def test_holm_hand_worked() -> None:
    # sorted: 0.005 <= .05/4 reject; 0.01 <= .05/3 reject; 0.03 > .05/2 stop -> 0.04 kept too
    assert holm([0.01, 0.04, 0.03, 0.005], 0.05) == [True, False, False, True]
    # Bonferroni (0.025 each) would keep 0.03; Holm's second step compares it with 0.05
    assert holm([0.02, 0.03], 0.05) == [True, True]
    assert holm([0.03, 0.02], 0.05) == [True, True]
    assert holm([0.026, 0.03], 0.05) == [False, False]  # first step fails, nothing rejected
    assert holm([float("nan"), 0.001], 0.05) == [False, True]
    assert holm([], 0.05) == []


def test_bootstrap_is_deterministic_and_paired(data: dict[str, np.ndarray]) -> None:
    a, b = scores(data, 0.8), scores(data, 1.0, "noise_b")
    kw = {"samples": 200, "confidence": 0.9}
    one = paired_bootstrap("roc_auc", data["y"], a, b, seed=1, **kw)
    two = paired_bootstrap("roc_auc", data["y"], a, b, seed=1, **kw)
    other = paired_bootstrap("roc_auc", data["y"], a, b, seed=2, **kw)
    assert one == two
    assert (one["ci_low"], one["ci_high"]) != (other["ci_low"], other["ci_high"])
    assert one["diff"] == pytest.approx(roc_auc_score(data["y"], b) - roc_auc_score(data["y"], a))
    # the vectorised kernel equals sklearn on the very same resamples
    slow = paired_bootstrap(roc_auc_score, data["y"], a, b, seed=1, greater_is_better=True, **kw)
    assert slow["ci_low"] == pytest.approx(one["ci_low"], abs=1e-12)
    assert slow["ci_high"] == pytest.approx(one["ci_high"], abs=1e-12)


def test_bootstrap_lower_is_better_orientation() -> None:
    y, weak, strong = _regression_data()
    boot = paired_bootstrap("mae", y, weak, strong, samples=100, confidence=0.95, seed=0)
    assert boot["greater_is_better"] is False and boot["diff"] > 0 and boot["ci_low"] > 0


def test_verdict_round_trips_through_json(data: dict[str, np.ndarray]) -> None:
    verdict = gate(make_contract(), data, scores(data, 0.6), scores(data, 1.5, "noise_b"))
    text = json.dumps(verdict.to_dict(), allow_nan=False)
    back = GateVerdict.from_dict(json.loads(text))
    assert back.promote == verdict.promote and back.summary() == verdict.summary()
    assert [c.name for c in back.checks] == [c.name for c in verdict.checks]
    assert isinstance(back.checks[0], Check)


def test_caller_errors_name_the_model(data: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match=r"model 'gate_model'.*same holdout rows \(y_true=3000, challenger_scores=2"):
        gate(make_contract(), data, scores(data, 0.6), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="segment column 'origin' has 2 values for 3000 holdout rows"):
        gate(make_contract(), data, scores(data, 0.6), scores(data, 1.0), segments={"origin": ["a", "b"]})
