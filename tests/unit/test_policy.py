"""The retrain decision: every trigger and guard, their numbers, and which guards gate which triggers."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from driftguard.contract import Persistence, PolicyConfig
from driftguard.monitoring.policy import (
    GUARD_SCOPE,
    ChampionFacts,
    Decision,
    RunFacts,
    Shadowing,
    decide,
    drift_detected,
    last_runs,
)

NOW = datetime(2013, 6, 3, 1, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
POLICY = PolicyConfig(
    drift_share=0.3,
    important_features=2,
    metric_drop=0.03,
    max_model_age=timedelta(days=120),
    cooldown=timedelta(days=7),
    persistence=Persistence(k=2, n=3),
    min_new_labels=1000,
)
IMPORTANCE = ("distance", "carrier", "temp", "humid")


def run(
    weeks_back: int = 0,
    *,
    share: float | None = 0.0,
    drifted: tuple[str, ...] = (),
    metric: float | None = None,
    status: str = "ok",
    quality: bool = True,
) -> RunFacts:
    end = datetime(2013, 6, 3, tzinfo=UTC) - weeks_back * WEEK
    return RunFacts(
        model="flight_delay",
        interval_start=end - WEEK,
        interval_end=end,
        status=status,
        quality_passed=quality,
        drift_share=share,
        drifted_features=drifted,
        metric_value=metric,
        labelled_rows=5000,
    )


def champion(**kw) -> ChampionFacts:
    base = {
        "version": "3",
        "trained_at": NOW - timedelta(days=30),
        "validation_metric": 0.74,
        "feature_importance": IMPORTANCE,
        "last_retrain_at": NOW - timedelta(days=30),
    }
    return ChampionFacts(**{**base, **kw})


def decide_(current: RunFacts, history=(), champ: ChampionFacts | None = None, labels: int = 5000, **kw) -> Decision:
    return decide(
        kw.pop("policy", POLICY),
        now=kw.pop("now", NOW),
        current=current,
        history=list(history),
        champion=champ or champion(),
        metric_name="roc_auc",
        greater_is_better=kw.pop("greater_is_better", True),
        labelled_rows_since_retrain=labels,
        shadowing=kw.pop("shadowing", None),
    )


def test_every_trigger_and_guard_yields_a_reason_in_a_fixed_order() -> None:
    d = decide_(run())
    assert [(r.rule, r.kind) for r in d.reasons] == [
        ("no_champion", "trigger"),
        ("drift_share", "trigger"),
        ("important_features", "trigger"),
        ("metric_drop", "trigger"),
        ("estimated_metric_drop", "trigger"),
        ("window_growth", "trigger"),
        ("data_quality", "guard"),
        ("cooldown", "guard"),
        ("persistence", "guard"),
        ("min_new_labels", "guard"),
        ("drift_impact", "guard"),
        ("shadowing", "guard"),
        ("model_age", "review"),
    ]
    assert not d.retrain
    assert d.summary() == "no retrain: no trigger fired"
    assert d.reason("drift_share").detail == "drift share 0.00 < 0.30"
    assert d.reason("model_age").detail == "champion age 30d < 120d"
    assert d.reason("cooldown").detail == "cooldown: last retrain 30d ago >= 1w"
    assert d.reason("metric_drop").detail == "roc_auc not measured yet (no matured labels in this run)"


def test_drift_share_with_persistence_retrains_and_explains() -> None:
    history = [run(2, share=0.1), run(1, share=0.35)]
    d = decide_(run(share=0.42), history)
    assert d.retrain
    assert d.reason("drift_share").fired and d.reason("drift_share").detail == "drift share 0.42 >= 0.30"
    assert d.reason("persistence").detail == "persistence: drift in 2 of the last 3 run(s) >= 2 of 3"
    assert d.reason("persistence").passed
    assert d.summary() == "retrain: drift share 0.42 >= 0.30"


def test_drift_share_exactly_at_threshold_fires() -> None:
    d = decide_(run(share=0.3), [run(1, share=0.3)])
    assert d.reason("drift_share").fired
    assert d.retrain


def test_single_drifted_run_is_blocked_by_persistence() -> None:
    d = decide_(run(share=0.5), [run(2), run(1)])
    assert not d.retrain
    assert d.reason("persistence").fired
    assert d.reason("persistence").detail == "persistence: drift in 1 of the last 3 run(s) < 2 of 3"
    assert d.summary() == ("no retrain: drift_share blocked by persistence: drift in 1 of the last 3 run(s) < 2 of 3")


def test_persistence_window_counts_only_the_last_n_runs_ordered_by_interval() -> None:
    # Old drift four weeks ago falls out of a 3-run window; history order must not matter.
    history = [run(1), run(4, share=0.9), run(2), run(3, share=0.9)]
    d = decide_(run(share=0.5), history)
    assert d.reason("persistence").detail == "persistence: drift in 1 of the last 3 run(s) < 2 of 3"
    window = last_runs(run(), history, 3)
    assert [r.interval_end for r in window] == [run(2).interval_end, run(1).interval_end, run().interval_end]


def test_rerun_of_the_same_interval_replaces_its_history_entry() -> None:
    # The store may already hold this interval from an earlier attempt: it must not count twice.
    history = [run(1), run(0, share=0.9)]
    d = decide_(run(share=0.9), history)
    assert d.reason("persistence").detail == "persistence: drift in 1 of the last 2 run(s) < 2 of 3"


def test_important_feature_drift_fires_even_with_a_low_share() -> None:
    history = [run(1, share=0.1, drifted=("carrier",))]
    d = decide_(run(share=0.1, drifted=("carrier", "dewp")), history)
    assert not d.reason("drift_share").fired
    assert d.reason("important_features").fired
    assert d.reason("important_features").detail == "drift in top-2 important feature(s): carrier"
    assert d.retrain


def test_drift_outside_the_top_k_does_not_fire() -> None:
    d = decide_(run(share=0.1, drifted=("temp",)))
    assert not d.reason("important_features").fired
    assert d.reason("important_features").detail == "no drift in the top-2 features (distance, carrier)"
    assert not drift_detected(POLICY, run(share=0.1, drifted=("temp",)), IMPORTANCE)
    assert drift_detected(POLICY, run(share=0.1, drifted=("distance",)), IMPORTANCE)


@pytest.mark.parametrize(
    ("greater", "realized", "fired", "detail"),
    [
        (True, 0.71, True, "roc_auc 0.7100 vs champion validation 0.7400: worse by 0.0300 (0.0300 >= 0.0300)"),
        (True, 0.72, False, "roc_auc 0.7200 vs champion validation 0.7400: worse by 0.0200 (0.0200 < 0.0300)"),
        (True, 0.80, False, "roc_auc 0.8000 vs champion validation 0.7400: better by 0.0600 (-0.0600 < 0.0300)"),
        # Lower is better (e.g. rmse/log_loss): a rise is the drop.
        (False, 0.78, True, "roc_auc 0.7800 vs champion validation 0.7400: worse by 0.0400 (0.0400 >= 0.0300)"),
        (
            False,
            0.70,
            False,
            "roc_auc 0.7000 vs champion validation 0.7400: better by 0.0400 (-0.0400 < 0.0300)",
        ),
    ],
)
def test_metric_drop_respects_direction(greater: bool, realized: float, fired: bool, detail: str) -> None:
    d = decide_(run(metric=realized), greater_is_better=greater)
    assert d.reason("metric_drop").fired is fired
    assert d.reason("metric_drop").detail == detail
    assert d.retrain is fired


def test_metric_drop_is_not_gated_by_persistence() -> None:
    d = decide_(run(metric=0.60), [run(2), run(1)])
    assert d.reason("persistence").fired  # no drift at all
    assert d.retrain
    assert d.summary().startswith("retrain: roc_auc 0.6000")


def test_model_age_alone_never_retrains_a_healthy_model() -> None:
    """Age is a review reason: 22 of 36 stationary months retrained a healthy model on a calendar."""
    old = champion(trained_at=NOW - timedelta(days=150), last_retrain_at=NOW - timedelta(days=150))
    d = decide_(run(), [run(1)], champ=old)
    assert d.reason("model_age").fired and d.reason("model_age").kind == "review"
    assert d.reason("model_age").detail == "champion age 150d >= 120d (review it; age alone does not retrain)"
    assert not d.retrain and d.reviews == [d.reason("model_age")]
    assert d.summary() == "no retrain: no trigger fired; review: " + d.reason("model_age").detail
    # With real evidence the model retrains, and the review is still reported.
    d = decide_(run(metric=0.60), [run(1)], champ=old)
    assert d.retrain and "review: champion age 150d" in d.summary()


@pytest.mark.parametrize(
    ("greater", "baseline", "realized", "fired"),
    [
        (True, 0.80, 0.761, False),  # ROC AUC: 5% of 0.80 is 0.04
        (True, 0.80, 0.759, True),
        (False, 20.0, 20.9, False),  # MAE 20: 5% is 1.0, and a rise is the worsening
        (False, 20.0, 21.1, True),
        (False, 20.0, 10.0, False),  # a big improvement never fires
    ],
)
def test_relative_metric_drop_scales_with_the_metric_and_its_direction(
    greater: bool, baseline: float, realized: float, fired: bool
) -> None:
    rel = PolicyConfig(**{**POLICY.model_dump(), "metric_drop": "5%"})
    d = decide_(run(metric=realized), champ=champion(validation_metric=baseline), policy=rel, greater_is_better=greater)
    assert d.reason("metric_drop").fired is fired
    assert "5% of" in d.reason("metric_drop").detail


def test_metric_drop_units_parse() -> None:
    assert str(PolicyConfig(metric_drop="0.02 abs").metric_drop) == "0.02 abs"
    assert str(PolicyConfig(metric_drop=0.02).metric_drop) == "0.02 abs"  # a bare number stays absolute
    assert str(PolicyConfig().metric_drop) == "5%"  # the default is relative
    with pytest.raises(ValueError, match="'5%'"):
        PolicyConfig(metric_drop="5 percent")


def test_calibrated_share_raises_the_drift_share_trigger() -> None:
    from dataclasses import replace

    calibrated = replace(run(share=0.34), drift_share_threshold=0.45)
    d = decide_(calibrated)
    assert not d.reason("drift_share").fired
    assert d.reason("drift_share").detail == "drift share 0.34 < 0.45 (calibrated on the reference)"


def test_cooldown_blocks_every_trigger_but_no_champion() -> None:
    recent = champion(last_retrain_at=NOW - timedelta(days=3))
    d = decide_(run(share=0.9, metric=0.5), [run(1, share=0.9)], champ=recent)
    assert d.reason("cooldown").fired
    assert d.reason("cooldown").detail == "cooldown: last retrain 3d ago < 1w"
    assert not d.retrain
    assert d.summary().count("blocked by cooldown: last retrain 3d ago < 1w") == 2


def test_critical_quality_failure_blocks_everything_including_first_champion() -> None:
    none = ChampionFacts(version=None, trained_at=None, validation_metric=None)
    d = decide_(run(share=0.9, status="quality_failed", quality=False), champ=none)
    assert d.reason("no_champion").fired
    assert d.reason("data_quality").fired
    assert d.reason("data_quality").detail == "data quality: critical check failed"
    assert not d.retrain
    d = decide_(run(share=None, status="no_data"), champ=none)
    assert d.reason("data_quality").detail == "data: no rows in this interval"
    assert not d.retrain


def test_no_champion_retrains_without_cooldown_labels_or_persistence() -> None:
    none = ChampionFacts(version=None, trained_at=None, validation_metric=None, last_retrain_at=NOW)
    d = decide_(run(), champ=none, labels=0)
    assert d.retrain
    assert d.reason("no_champion").detail == "no champion yet: train the first model"
    assert d.reason("cooldown").fired and d.reason("min_new_labels").fired  # evaluated, but do not gate it
    assert d.summary() == "retrain: no champion yet: train the first model"
    assert d.reason("important_features").detail == "no feature importance known for the champion"
    assert d.reason("model_age").detail == "champion training time unknown"


def test_triggers_set_to_null_are_off() -> None:
    off = PolicyConfig(
        drift_share=None, important_features=None, metric_drop=None, max_model_age=None, window_growth=None
    )
    old = champion(trained_at=NOW - timedelta(days=999))
    d = decide_(run(share=1.0, drifted=IMPORTANCE, metric=0.1), [run(1, share=1.0)], champ=old, policy=off)
    assert not d.retrain
    assert [r.detail for r in d.reasons if r.kind == "trigger"][1:] == [
        "drift share trigger is off",
        "important-feature trigger is off",
        "metric-drop trigger is off",
        "estimated-metric trigger is off",
        "window-growth trigger is off",
    ]
    assert d.reason("model_age").detail == "model-age review is off"
    assert not drift_detected(off, run(share=1.0, drifted=IMPORTANCE), IMPORTANCE)


def test_guard_scope_is_documented_on_each_guard_reason() -> None:
    d = decide_(run())
    for r in d.reasons:
        if r.kind == "guard":
            assert r.applies_to == GUARD_SCOPE[r.rule]
    assert "model_age" not in GUARD_SCOPE["persistence"]
    assert "no_champion" not in GUARD_SCOPE["cooldown"]


def test_decision_round_trips_through_a_dict() -> None:
    d = decide_(run(share=0.42), [run(1, share=0.5)])
    data = d.to_dict()
    assert data["summary"] == d.summary()
    assert data["reasons"][1] == {
        "rule": "drift_share",
        "kind": "trigger",
        "fired": True,
        "detail": "drift share 0.42 >= 0.30",
        "applies_to": [],
    }
    assert Decision.from_dict(data) == d


def test_nan_metric_and_share_are_treated_as_unknown() -> None:
    d = decide_(run(share=float("nan"), metric=float("nan")))
    assert not d.reason("drift_share").fired
    assert d.reason("drift_share").detail == "drift share unknown (no drift result for this run)"
    assert not d.reason("metric_drop").fired


def test_a_retrain_stamped_after_now_blocks_and_says_so() -> None:
    # e.g. a wall-clock promotion time meeting a logical `now` during a backfill
    future = champion(last_retrain_at=NOW + timedelta(days=1))
    d = decide_(run(metric=0.5), champ=future)
    assert not d.retrain
    assert d.reason("cooldown").detail == (
        "cooldown: last retrain at 2013-06-04T01:00:00+00:00 is after now (2013-06-03T01:00:00+00:00)"
    )


def test_weighted_share_lets_ignored_features_drift_without_a_retrain() -> None:
    """Half the features drifted, but they hold 5% of the model's importance: no drift trigger."""
    from dataclasses import replace

    ignored = replace(run(share=0.5, drifted=("noise_a", "noise_b")), weighted_drift_share=0.05)
    history = [replace(run(1, share=0.5, drifted=("noise_a",)), weighted_drift_share=0.05)]
    d = decide_(ignored, history)
    assert not d.reason("drift_share").fired and not d.retrain
    assert d.reason("drift_share").detail == "importance-weighted drift share 0.05 < 0.30 (plain share 0.50)"
    plain = PolicyConfig(**{**POLICY.model_dump(), "drift_share_weighting": "none"})
    assert decide_(ignored, history, policy=plain).reason("drift_share").fired
    # Without importances (e.g. the bootstrap reference) the plain share is judged.
    assert decide_(run(share=0.5), history).reason("drift_share").fired


def test_min_new_labels_as_a_share_of_the_champions_training_rows() -> None:
    rel = PolicyConfig(**{**POLICY.model_dump(), "min_new_labels": "10%"})
    small = champion(training_rows=365)
    d = decide_(run(metric=0.60), champ=small, policy=rel, labels=36)
    assert d.reason("min_new_labels").fired and not d.retrain
    assert d.reason("min_new_labels").detail == (
        "labels: 36 labelled rows since the last promotion < 37 (10% of the champion's 365 training rows)"
    )
    assert decide_(run(metric=0.60), champ=small, policy=rel, labels=37).retrain
    unknown = decide_(run(metric=0.60), champ=champion(), policy=rel, labels=0)
    assert (
        not unknown.reason("min_new_labels").fired
        and "training rows unknown" in unknown.reason("min_new_labels").detail
    )


def test_estimated_metric_drop_fires_only_when_the_whole_band_is_past_the_baseline() -> None:
    from dataclasses import replace

    est = PolicyConfig(**{**POLICY.model_dump(), "estimated_metric_drop": "5%"})  # 5% of 0.74 = 0.037
    clear = replace(run(), estimated_metric=0.69, estimated_band=(0.66, 0.72))
    d = decide_(clear, policy=est)
    assert d.reason("estimated_metric_drop").fired and d.retrain
    assert d.reason("estimated_metric_drop").detail == (
        "estimated roc_auc 0.6900, band [0.6600, 0.7200] vs champion validation 0.7400: worse by 0.0500 "
        "(0.0500 >= 0.0370)"
    )
    wide = replace(run(), estimated_metric=0.69, estimated_band=(0.60, 0.78))  # a small, noisy window
    assert not decide_(wide, policy=est).reason("estimated_metric_drop").fired
    assert "but the band reaches the baseline" in decide_(wide, policy=est).reason("estimated_metric_drop").detail
    assert not decide_(clear).reason("estimated_metric_drop").fired  # off by default
    assert decide_(clear, policy=est, labels=10).reason("min_new_labels").fired  # gated like metric_drop
    assert not decide_(clear, policy=est, labels=10).retrain


def test_change_point_is_the_first_run_of_the_breach_streak() -> None:
    """metric_drop fires now; the streak of runs 0.03 below 0.74 began 3 runs back (a run without
    labels neither extends nor breaks it), so the candidate trains on data from there."""
    history = [
        run(5, metric=0.75),
        run(4, metric=0.73),  # within the limit: breaks any earlier streak
        run(3, metric=0.60),
        run(2, metric=None),  # no matured labels: skipped
        run(1, metric=0.58),
    ]
    d = decide_(run(0, metric=0.59), history)
    assert d.retrain and d.reason("metric_drop").fired
    assert d.change is not None and d.change.basis == "metric" and d.change.runs == 3
    assert d.change.at == run(3).interval_start and d.change.baseline == 0.74
    assert Decision.from_dict(d.to_dict()).change == d.change
    assert decide_(run(0, metric=0.74), history).change is None  # no retrain: no change point


def test_drift_change_point_and_no_change_without_a_champion() -> None:
    drifted = [run(2, share=0.1), run(1, share=0.5), run(0, share=0.6)]
    d = decide_(drifted[-1], drifted[:-1], policy=POLICY.model_copy(update={"metric_drop": None}))
    assert d.retrain and d.change is not None and d.change.basis == "drift" and d.change.at == run(1).interval_start
    first = decide_(run(0, metric=0.5), champ=champion(version=None, validation_metric=None))
    assert first.retrain and first.change is None


def test_a_carried_pre_change_level_keeps_the_metric_trigger_armed() -> None:
    """A champion trained across a change validates at 0.52 on post-change rows; compared with its
    own 0.52, an AUC of 0.52 looks normal. The carried pre-change level (0.85) keeps it armed."""
    weak = champion(validation_metric=0.52)
    assert not decide_(run(0, metric=0.52), champ=weak).retrain
    carried = decide_(run(0, metric=0.52), champ=champion(validation_metric=0.52, baseline_metric=0.85))
    assert carried.retrain and "vs pre-change level 0.8500" in carried.reason("metric_drop").detail
    # A champion that reaches the old level again uses its own metric.
    good = decide_(run(0, metric=0.86), champ=champion(validation_metric=0.87, baseline_metric=0.85))
    assert "vs champion validation 0.8700" in good.reason("metric_drop").detail
    assert good.reason("metric_drop").baseline == 0.87  # structured, for the model page's trend


def test_a_post_change_window_grows_by_the_growth_factor() -> None:
    """A champion trained on 1,000 rows since a change retrains once 2,000 more labelled rows have
    arrived (x3), and the new candidate trains from the same change point on."""
    since = NOW - timedelta(days=14)
    young = champion(window_rows=1000, trained_since_change=since)
    assert not decide_(run(0, metric=0.74), champ=young, labels=1999).retrain
    d = decide_(run(0, metric=0.74), champ=young, labels=2000)
    assert d.retrain and d.reason("window_growth").fired
    assert "window held 1,000 rows since the change" in d.reason("window_growth").detail
    assert d.change is not None and d.change.basis == "window" and d.change.at == since
    assert not decide_(run(0, metric=0.74), champ=champion(window_rows=1000), labels=10**6).retrain


def test_metric_drop_must_exceed_the_sampling_noise() -> None:
    """0.70 vs 0.74 is past the 0.03 limit, but on 30 labelled rows (SE 0.08, the baseline's 0.05)
    a stable model falls that far often: z_0.99 x sqrt(0.08^2 + 0.05^2) = 0.219. A real collapse
    to 0.40 fires; so does 0.70 measured on thousands of rows (SE 0.005)."""
    noisy = dataclasses.replace(run(0, metric=0.70), metric_se=0.08)
    champ = champion(validation_se=0.05)
    d = decide_(noisy, champ=champ)
    assert not d.reason("metric_drop").fired
    assert d.reason("metric_drop").detail.endswith("within noise (0.0400 < 0.2195)")
    assert decide_(dataclasses.replace(noisy, metric_value=0.40), champ=champ).reason("metric_drop").fired
    assert (
        decide_(dataclasses.replace(noisy, metric_se=0.005), champ=champion(validation_se=0.003))
        .reason("metric_drop")
        .fired
    )


def test_drift_the_estimate_says_is_harmless_is_reported_not_retrained_on() -> None:
    """Drift in 2 of the last 3 runs, guards open; the label-free estimate for the window (0.73 vs
    0.74, a drop below the 0.03 limit) says the shift does not hurt: no retrain. An estimate that
    drops past the limit, or no estimate at all, lets the drift trigger count."""
    history = [run(1, share=0.5)]
    harmless = dataclasses.replace(run(0, share=0.6), estimated_metric=0.73)
    d = decide_(harmless, history)
    assert d.reason("drift_share").fired and not d.retrain
    assert d.reason("drift_impact").fired and "the shift does not hurt the model" in d.reason("drift_impact").detail
    assert decide_(dataclasses.replace(harmless, estimated_metric=0.70), history).retrain
    assert decide_(run(0, share=0.6), history).retrain  # no estimate: drift counts as is
    off = POLICY.model_copy(update={"drift_needs_impact": False})
    assert decide_(harmless, history, policy=off).retrain


def test_a_persistent_drop_on_small_windows_is_pooled_past_the_noise() -> None:
    """0.62 on 30 rows (SE 0.08) alone is within the noise (0.12 < 2.33 x sqrt(0.08^2 + 0.03^2) =
    0.199). With the two runs before it at 0.60, also past the limit, the mean drop of the three
    (0.133) has SE 0.08 / sqrt(3) = 0.046, so the noise is 2.33 x sqrt(0.046^2 + 0.03^2) = 0.128."""
    champ = champion(validation_se=0.03)
    now = dataclasses.replace(run(0, metric=0.62), metric_se=0.08)
    alone = decide_(now, champ=champ).reason("metric_drop")
    assert not alone.fired and "within noise" in alone.detail
    history = [dataclasses.replace(run(k, metric=0.60), metric_se=0.08) for k in (2, 1)]
    pooled = decide_(now, history, champ=champ).reason("metric_drop")
    assert pooled.fired and "(mean of 3 runs past the limit: 0.1333)" in pooled.detail
    broken = [dataclasses.replace(run(2, metric=0.60), metric_se=0.08), run(1, metric=0.75)]  # 0.75 ends the streak
    assert not decide_(now, broken, champ=champ).reason("metric_drop").fired


def test_one_bad_run_is_not_a_change_point() -> None:
    """A single run past the limit retrains on the usual window; the second in a row names the change."""
    d = decide_(run(0, metric=0.59), [run(1, metric=0.74)])
    assert d.retrain and d.change is None
    d = decide_(run(0, metric=0.59), [run(1, metric=0.60)])
    assert d.change is not None and d.change.runs == 2 and d.change.at == run(1).interval_start


def test_a_shadowing_challenger_holds_a_retrain_until_its_evidence_decides() -> None:
    """A challenger trained since the change shadows: another retrain would replace it and restart
    its evidence, so the metric drop waits (also when it is promoted this very window). One trained
    on the usual window gives way once the change is confirmed; none shadowing holds nothing."""
    bad = [run(1, metric=0.60)]  # with this run: a streak of two, the change is confirmed
    fresh = Shadowing("4", "shadowing", windows=2, max_windows=6, since_change=True)
    held = decide_(run(0, metric=0.59), bad, shadowing=fresh)
    assert not held.retrain and held.change is None
    assert (
        held.reason("shadowing").fired and "v4 is shadowing (2 of at most 6 windows)" in held.reason("shadowing").detail
    )
    assert "metric_drop blocked by shadowing" in held.summary()
    promoting = dataclasses.replace(fresh, outcome="promote")
    assert (
        "the outgoing champion's" in decide_(run(0, metric=0.59), bad, shadowing=promoting).reason("shadowing").detail
    )
    assert not decide_(run(0, metric=0.59), bad, shadowing=promoting).retrain
    usual = dataclasses.replace(fresh, since_change=False)
    for challenger in (usual, dataclasses.replace(usual, outcome="promote")):
        gives_way = decide_(run(0, metric=0.59), bad, shadowing=challenger)
        assert gives_way.retrain and gives_way.change is not None and gives_way.reason("shadowing").passed
    # ... but not before the change is confirmed, nor when the next candidate ignores it (seasonality).
    assert not decide_(run(0, metric=0.59), [run(1, metric=0.74)], shadowing=usual).retrain
    seasonal = dataclasses.replace(usual, retrain_follows_change=False)
    assert not decide_(run(0, metric=0.59), bad, shadowing=seasonal).retrain
    assert decide_(run(0, metric=0.59), bad).reason("shadowing").passed
    # The first champion is never held.
    first = decide_(run(0), champ=champion(version=None, validation_metric=None), shadowing=fresh)
    assert first.retrain
