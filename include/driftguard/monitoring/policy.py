"""The retrain decision: a pure function of what the runs found and what the champion is.

Triggers propose a retrain, guards dispose. Every trigger and every guard yields a
`Reason` with its numbers, fired or not, so a decision can always be explained.

Which guards gate which triggers (a trigger counts only if it fired AND all of its guards pass;
retrain = at least one trigger counts):

=====================  ============  ========  ===========  ==============  =============  =========
trigger                data_quality  cooldown  persistence  min_new_labels  drift_impact   shadowing
=====================  ============  ========  ===========  ==============  =============  =========
no_champion            yes           no        no           no              no             no
drift_share            yes           yes       yes          yes             yes            yes
important_features     yes           yes       yes          yes             yes            yes
metric_drop            yes           yes       no           yes             no             yes
estimated_metric_drop  yes           yes       no           yes             no             yes
window_growth          yes           yes       no           no              no             yes
=====================  ============  ========  ===========  ==============  =============  =========

Why: broken or missing data is never a basis to train on (data_quality gates everything).
Persistence is a statement about drift, so it only gates the drift triggers; a realized
metric drop is already evidence from matured labels. Without a champion there is nothing to
cool down from and no "since last retrain": the first model is trained on the bootstrap
window, and the training step checks its own data.

After a change the candidate trains on the rows since the change only (training.change_aware),
often a few weeks of them. `window_growth` lets that window grow: the champion is retrained when
the labelled rows since its promotion reach (growth - 1) x the rows of its window, so each refresh
about triples the data (a model's excess loss falls roughly as 1/n, so each refresh removes about
two thirds of what is left), until its window spans `training.window`. Three refreshes take a
1-week window to 27 weeks; a plain sliding window would retrain every interval to get there.

`drift_impact` (policy.drift_needs_impact, on by default) lets drift retrain only when the
label-free estimate of this window's metric (CBPE/DLE, which models what the covariate shift
does to the champion) is worse than the baseline by the metric_drop limit, or when there is no
estimate. A shift the model handles is reported and alerted, not retrained on: on a synthetic
1-sd shift that left ROC AUC at 0.83, drift alone retrained 7 times in 12 weeks.

`shadowing` holds a retrain while a challenger shadows the champion (driftguard.retraining.shadow): its
evidence is still accumulating, and a new candidate would replace it and start that evidence from
zero, trained on nearly the same rows (a few more windows' labels). On 30 labelled rows a month
that reset is what keeps a small-data challenger from ever being promoted. A challenger promoted
from its shadow evidence this very window holds it too: the signals are the outgoing champion's.
It does not hold when the challenger was trained on the usual window and this decision confirms a
change point that the next candidate would train from (the challenger learned mostly the old
concept; the new candidate is judged against it if it was promoted), nor once shadowing ended.

Model age is a `review` reason, not a trigger: a calendar is no evidence that a model whose
signals are healthy got worse (retraining one on a timer replaced good models 22 times in 36
stationary months). An old champion raises a review alert instead.

The drift-share trigger fires at the larger of `policy.drift_share` and the share the
reference's calibration needs (`RunFacts.drift_share_threshold`), and `metric_drop` is a
relative (`5%`) or absolute (`0.02 abs`) worsening in the metric's own direction.

For a guard, `Reason.fired` means "this guard blocks"; `Reason.passed` reads the other way.
No I/O and no clock here: `now` is a parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import Any

from driftguard.contract import PolicyConfig, format_duration
from driftguard.facts import DRIFT_TRIGGERS, RunFacts

TRIGGER = "trigger"
GUARD = "guard"
REVIEW = "review"  # reported and alerted, never a retrain by itself

# Guard -> the triggers it gates (see the module docstring).
GUARD_SCOPE: Mapping[str, tuple[str, ...]] = {
    "data_quality": ("no_champion", *DRIFT_TRIGGERS, "metric_drop", "estimated_metric_drop", "window_growth"),
    "cooldown": (*DRIFT_TRIGGERS, "metric_drop", "estimated_metric_drop", "window_growth"),
    "persistence": DRIFT_TRIGGERS,
    "min_new_labels": (*DRIFT_TRIGGERS, "metric_drop", "estimated_metric_drop"),
    "drift_impact": DRIFT_TRIGGERS,
    "shadowing": (*DRIFT_TRIGGERS, "metric_drop", "estimated_metric_drop", "window_growth"),
}

CHANGE_CONFIRM_RUNS = 2
"""A change point is named once two consecutive runs show it. Training on the rows since a change
throws away the rest of the window, so one bad run (a stormy week on flights, ROC AUC 0.56 where
it is usually 0.67) must not do that; a second confirms it at the cost of one window's delay."""

_EPS = 1e-9  # float comparisons: 0.74 - 0.71 must count as a drop of 0.03


@dataclass(frozen=True)
class ChampionFacts:
    version: str | None
    trained_at: datetime | None
    validation_metric: float | None
    feature_importance: tuple[str, ...] = ()  # most important first
    last_retrain_at: datetime | None = None
    training_rows: int | None = None  # what a relative min_new_labels ("10%") is a share of
    # The pre-change level carried over from the champion it replaced, when this one was trained
    # on data from both sides of a change: its own validation metric must not become the new normal.
    baseline_metric: float | None = None
    # The change point its training window began at, while that window is shorter than the
    # contract's training.window (None otherwise): the window_growth trigger lets it grow.
    trained_since_change: datetime | None = None
    window_rows: int | None = None  # labelled rows of its whole training window (what window_growth grows)
    validation_se: float | None = None  # standard error of validation_metric (its holdout's sampling noise)


def metric_baseline(champion: ChampionFacts, greater_is_better: bool) -> tuple[float | None, str]:
    """What the metric triggers compare with: the champion's validation metric, or the carried
    pre-change level when that is better."""
    own, carried = champion.validation_metric, champion.baseline_metric
    if not _valid(carried) or (
        _valid(own) and _drop(carried, own, greater_is_better) <= 0  # type: ignore[arg-type]
    ):
        return own, "champion validation"
    return carried, "pre-change level"


@dataclass(frozen=True)
class Shadowing:
    """The challenger shadowing the champion in this window (driftguard.retraining.shadow), if any."""

    version: str
    outcome: str  # this window's shadow outcome: "shadowing" (evidence still growing) or "promote"
    windows: int  # shadow windows so far, this one included
    max_windows: int
    since_change: bool  # it was trained on the rows since a change point (change-aware training)
    # A retrain now would train from a confirmed change point (training.change_aware, no seasonality).
    retrain_follows_change: bool = True


@dataclass(frozen=True)
class Reason:
    rule: str
    kind: str  # "trigger" | "guard" | "review"
    fired: bool  # trigger: proposes a retrain; guard: blocks
    detail: str
    applies_to: tuple[str, ...] = field(default=())  # guards: the triggers they gate
    baseline: float | None = None  # metric triggers: the level the run was compared with (the trend draws it)

    @property
    def passed(self) -> bool:
        """A guard passes when it does not fire; for a trigger this is simply `not fired`."""
        return not self.fired

    def to_dict(self) -> dict[str, Any]:
        out = {
            "rule": self.rule,
            "kind": self.kind,
            "fired": self.fired,
            "detail": self.detail,
            "applies_to": list(self.applies_to),
        }
        if self.baseline is not None:
            out["baseline"] = self.baseline
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Reason:
        return cls(
            rule=str(d["rule"]),
            kind=str(d["kind"]),
            fired=bool(d["fired"]),
            detail=str(d.get("detail", "")),
            applies_to=tuple(d.get("applies_to") or ()),
            baseline=None if d.get("baseline") is None else float(d["baseline"]),
        )


@dataclass(frozen=True)
class ChangePoint:
    """Where the current degradation began (the first run of the streak that fired the trigger):
    the candidate trains on data since then (training.change_aware)."""

    at: datetime  # interval start of the streak's first run
    basis: str  # "metric" (realized or estimated metric) or "drift"
    runs: int  # runs in the streak, this one included
    baseline: float | None = None  # the metric level before the change (metric basis)

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "basis": self.basis, "runs": self.runs, "baseline": self.baseline}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ChangePoint:
        return cls(datetime.fromisoformat(d["at"]), str(d["basis"]), int(d["runs"]), d.get("baseline"))


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reasons: tuple[Reason, ...]
    change: ChangePoint | None = None

    @property
    def fired_triggers(self) -> list[Reason]:
        return [r for r in self.reasons if r.kind == TRIGGER and r.fired]

    @property
    def counted_triggers(self) -> list[Reason]:
        """Fired triggers that no guard blocked: why a retrain was decided."""
        return [r for r in self.fired_triggers if not _blockers(r.rule, self.reasons)]

    @property
    def blocking_guards(self) -> list[Reason]:
        return [r for r in self.reasons if r.kind == GUARD and r.fired]

    @property
    def reviews(self) -> list[Reason]:
        """Fired review reasons (e.g. an old champion): alerts, never retrains."""
        return [r for r in self.reasons if r.kind == REVIEW and r.fired]

    def reason(self, rule: str) -> Reason:
        return next(r for r in self.reasons if r.rule == rule)

    def summary(self) -> str:
        """One line for logs, alerts and the index page."""
        fired = self.fired_triggers
        review = "".join(f"; review: {r.detail}" for r in self.reviews)
        if not fired:
            return "no retrain: no trigger fired" + review
        if self.retrain:
            counted = [r for r in fired if not _blockers(r.rule, self.reasons)]
            return "retrain: " + "; ".join(r.detail for r in counted) + review
        parts = []
        for trig in fired:
            blockers = _blockers(trig.rule, self.reasons)
            parts.append(f"{trig.rule} blocked by " + ", ".join(b.detail for b in blockers))
        return "no retrain: " + "; ".join(parts) + review

    def to_dict(self) -> dict[str, Any]:
        return {
            "retrain": self.retrain,
            "summary": self.summary(),
            "reasons": [r.to_dict() for r in self.reasons],
            "change": self.change.to_dict() if self.change else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Decision:
        change = d.get("change")
        return cls(
            retrain=bool(d["retrain"]),
            reasons=tuple(Reason.from_dict(r) for r in d.get("reasons", ())),
            change=ChangePoint.from_dict(change) if change else None,
        )


def _blockers(trigger: str, reasons: Sequence[Reason]) -> list[Reason]:
    return [r for r in reasons if r.kind == GUARD and r.fired and trigger in r.applies_to]


# --------------------------------------------------------------------------- formatting


def _ago(td: timedelta) -> str:
    """`3d`, `5h`, `3d 4h`: coarse enough to read, precise enough to check."""
    seconds = max(int(td.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m"


def _f(x: float) -> str:
    return f"{x:.2f}" if abs(x) >= 0.1 or x == 0 else f"{x:.3g}"


def _drop(baseline: float, value: float, greater_is_better: bool) -> float:
    """How much worse ``value`` is than ``baseline`` in the metric's direction (> 0: worse)."""
    return baseline - value if greater_is_better else value - baseline


def _drop_limit(policy: PolicyConfig, baseline: float) -> float:
    """The metric-drop limit in the metric's units (the estimated one when metric_drop is off)."""
    limit = policy.metric_drop or policy.estimated_metric_drop
    return limit.of(baseline) if limit else 0.0


def _valid(x: float | None) -> bool:
    return x is not None and not math.isnan(x)


# --------------------------------------------------------------------------- drift


def top_features(policy: PolicyConfig, importance: Sequence[str]) -> tuple[str, ...]:
    if policy.important_features is None:
        return ()
    return tuple(importance[: policy.important_features])


def share_threshold(policy: PolicyConfig, run: RunFacts) -> float | None:
    """The drift-share trigger's threshold for this run: the policy's, raised to what the
    reference's calibration needs when that is higher."""
    if policy.drift_share is None:
        return None
    return max(policy.drift_share, run.drift_share_threshold or 0.0)


def trigger_share(policy: PolicyConfig, run: RunFacts) -> tuple[float | None, str]:
    """The share the drift-share trigger judges, and its name: the importance-weighted share
    when the policy asks for it and the run has one, else the plain share."""
    if policy.drift_share_weighting == "importance" and _valid(run.weighted_drift_share):
        return run.weighted_drift_share, "importance-weighted drift share"
    return run.drift_share, "drift share"


def drift_detected(policy: PolicyConfig, run: RunFacts, importance: Sequence[str]) -> bool:
    """Drift as the drift triggers see it: share over threshold, or a top-k feature drifted.

    With both drift triggers off nothing counts as drift."""
    threshold = share_threshold(policy, run)
    share, _ = trigger_share(policy, run)
    if threshold is not None and _valid(share) and share >= threshold - _EPS:  # type: ignore[operator]
        return True
    top = set(top_features(policy, importance))
    return bool(top & set(run.drifted_features))


def _trigger_drift_share(policy: PolicyConfig, run: RunFacts) -> Reason:
    if policy.drift_share is None:
        return Reason("drift_share", TRIGGER, False, "drift share trigger is off")
    value, name = trigger_share(policy, run)
    if not _valid(value):
        return Reason("drift_share", TRIGGER, False, "drift share unknown (no drift result for this run)")
    share = float(value)  # type: ignore[arg-type]
    threshold = share_threshold(policy, run)
    assert threshold is not None
    fired = share >= threshold - _EPS
    op = ">=" if fired else "<"
    basis = " (calibrated on the reference)" if threshold > policy.drift_share + _EPS else ""
    plain = f" (plain share {_f(run.drift_share)})" if name != "drift share" and _valid(run.drift_share) else ""
    return Reason("drift_share", TRIGGER, fired, f"{name} {_f(share)} {op} {_f(threshold)}{basis}{plain}")


def _trigger_important(policy: PolicyConfig, run: RunFacts, importance: Sequence[str]) -> Reason:
    k = policy.important_features
    if k is None:
        return Reason("important_features", TRIGGER, False, "important-feature trigger is off")
    top = top_features(policy, importance)
    if not top:
        return Reason("important_features", TRIGGER, False, "no feature importance known for the champion")
    hit = [f for f in top if f in set(run.drifted_features)]
    if hit:
        return Reason("important_features", TRIGGER, True, f"drift in top-{k} important feature(s): {', '.join(hit)}")
    return Reason("important_features", TRIGGER, False, f"no drift in the top-{k} features ({', '.join(top)})")


def _trigger_metric(
    policy: PolicyConfig,
    run: RunFacts,
    champion: ChampionFacts,
    metric: str,
    greater_is_better: bool,
    history: Sequence[RunFacts] = (),
) -> Reason:
    if policy.metric_drop is None:
        return Reason("metric_drop", TRIGGER, False, "metric-drop trigger is off")
    if not _valid(run.metric_value):
        return Reason("metric_drop", TRIGGER, False, f"{metric} not measured yet (no matured labels in this run)")
    base, basis = metric_baseline(champion, greater_is_better)
    if not _valid(base):
        return Reason("metric_drop", TRIGGER, False, f"champion has no validation {metric} to compare with")
    realized, baseline = float(run.metric_value), float(base)  # type: ignore[arg-type]
    drop = _drop(baseline, realized, greater_is_better)
    limit = policy.metric_drop.of(baseline)
    big = drop >= limit - _EPS
    word = "worse" if drop > 0 else "better"
    unit = f" = {policy.metric_drop} of {baseline:.4f}" if policy.metric_drop.relative else ""
    head = f"{metric} {realized:.4f} vs {basis} {baseline:.4f}: {word} by {abs(drop):.4f}"
    if not big:
        return Reason("metric_drop", TRIGGER, False, f"{head} ({drop:.4f} < {limit:.4f}{unit})", baseline=baseline)
    # Past the limit: is it past the noise too? Consecutive runs past the limit are pooled (their
    # mean drop has a smaller standard error), so a persistent drop on small windows is not missed.
    streak = [
        r
        for r in breach_streak(run, history, lambda r: _worse(policy, r.metric_value, baseline, greater_is_better))
        if _valid(r.metric_value)
    ]
    drops = [_drop(baseline, float(r.metric_value), greater_is_better) for r in streak]  # type: ignore[arg-type]
    mean_drop = sum(drops) / len(drops)
    ses = [float(r.metric_se) for r in streak if _valid(r.metric_se)]  # type: ignore[arg-type]
    pooled = replace(run, metric_se=math.sqrt(sum(x * x for x in ses)) / len(ses) if ses else None)
    noise = drop_noise(policy, pooled, champion if basis == "champion validation" else None)
    fired = mean_drop >= noise - _EPS
    runs = f" (mean of {len(streak)} runs past the limit: {mean_drop:.4f})" if len(streak) > 1 else ""
    tail = "" if fired else f", within noise ({mean_drop:.4f} < {noise:.4f})"
    detail = f"{head} ({drop:.4f} >= {limit:.4f}{unit}){runs}{tail}"
    return Reason("metric_drop", TRIGGER, fired, detail, baseline=baseline)


def breach_streak(
    current: RunFacts, history: Sequence[RunFacts], breach: Callable[[RunFacts], bool | None]
) -> list[RunFacts]:
    """The runs, newest first, of the streak ending with ``current`` for which ``breach`` holds;
    runs where it is None (nothing measured) neither extend nor break the streak."""
    out = []
    for r in reversed(last_runs(current, history, len(history) + 1)):
        seen = breach(r)
        if seen is None:
            continue
        if not seen:
            break
        out.append(r)
    return out


def drop_noise(policy: PolicyConfig, run: RunFacts, champion: ChampionFacts | None) -> float:
    """The drop a stable model shows with probability `policy.metric_drop_alpha`: z x the standard
    error of (baseline - realized), from the run's bootstrap SE and the baseline's (its holdout).

    A realized metric on 30 labelled rows scatters by ~0.08 ROC AUC: a 5% limit alone fired on
    every third stable month. 0 when no SE is known (large windows, older records)."""
    parts = [x for x in (run.metric_se, champion.validation_se if champion else None) if _valid(x)]
    if not parts:
        return 0.0
    z = NormalDist().inv_cdf(1.0 - policy.metric_drop_alpha)
    return z * math.sqrt(sum(float(x) ** 2 for x in parts))  # type: ignore[arg-type]


def _trigger_estimated(
    policy: PolicyConfig, run: RunFacts, champion: ChampionFacts, metric: str, greater_is_better: bool
) -> Reason:
    """The label-free estimate worse than the champion's validation metric by the limit, with the
    whole band on the worse side of the baseline (so the estimate's own noise cannot fire it)."""
    rule = "estimated_metric_drop"
    if policy.estimated_metric_drop is None:
        return Reason(rule, TRIGGER, False, "estimated-metric trigger is off")
    if not _valid(run.estimated_metric):
        return Reason(rule, TRIGGER, False, f"{metric} not estimated for this run (no estimator or no scores)")
    base, _ = metric_baseline(champion, greater_is_better)
    if not _valid(base):
        return Reason(rule, TRIGGER, False, f"champion has no validation {metric} to compare with")
    est, baseline = float(run.estimated_metric), float(base)  # type: ignore[arg-type]
    drop = _drop(baseline, est, greater_is_better)
    limit = policy.estimated_metric_drop.of(baseline)
    band = run.estimated_band
    clear = band is not None and (band[1] < baseline if greater_is_better else band[0] > baseline)
    fired = drop >= limit - _EPS and clear
    where = "" if band is None else f", band [{band[0]:.4f}, {band[1]:.4f}]"
    why = "" if fired or drop < limit - _EPS else " but the band reaches the baseline"
    op = ">=" if drop >= limit - _EPS else "<"
    return Reason(
        rule,
        TRIGGER,
        fired,
        f"estimated {metric} {est:.4f}{where} vs champion validation {baseline:.4f}: "
        f"{'worse' if drop > 0 else 'better'} by {abs(drop):.4f} ({drop:.4f} {op} {limit:.4f}){why}",
    )


def _trigger_growth(policy: PolicyConfig, champion: ChampionFacts, labelled_rows: int) -> Reason:
    rule = "window_growth"
    if policy.window_growth is None:
        return Reason(rule, TRIGGER, False, "window-growth trigger is off")
    if champion.trained_since_change is None:
        return Reason(rule, TRIGGER, False, "champion's window is not a shortened post-change one")
    if not champion.window_rows:
        return Reason(rule, TRIGGER, False, "champion's training window rows unknown")
    need = math.ceil((policy.window_growth - 1) * champion.window_rows)
    fired = labelled_rows >= need
    op = ">=" if fired else "<"
    return Reason(
        rule,
        TRIGGER,
        fired,
        f"champion's window held {champion.window_rows:,} rows since the change at "
        f"{champion.trained_since_change.isoformat()}; {labelled_rows:,} labelled rows since {op} {need:,} "
        f"(x{policy.window_growth:g} growth)",
    )


def _review_age(policy: PolicyConfig, now: datetime, champion: ChampionFacts) -> Reason:
    if policy.max_model_age is None:
        return Reason("model_age", REVIEW, False, "model-age review is off")
    if champion.trained_at is None:
        return Reason("model_age", REVIEW, False, "champion training time unknown")
    age = now - champion.trained_at
    fired = age >= policy.max_model_age
    op = ">=" if fired else "<"
    detail = f"champion age {_ago(age)} {op} {format_duration(policy.max_model_age)}"
    return Reason("model_age", REVIEW, fired, detail + (" (review it; age alone does not retrain)" if fired else ""))


# --------------------------------------------------------------------------- guards


def _guard(rule: str, blocks: bool, detail: str) -> Reason:
    return Reason(rule, GUARD, blocks, detail, GUARD_SCOPE[rule])


def _guard_quality(run: RunFacts) -> Reason:
    if run.status == "no_data":
        return _guard("data_quality", True, "data: no rows in this interval")
    if not run.quality_passed or run.status == "quality_failed":
        return _guard("data_quality", True, "data quality: critical check failed")
    return _guard("data_quality", False, "data quality: no critical failure")


def _guard_cooldown(policy: PolicyConfig, now: datetime, champion: ChampionFacts) -> Reason:
    cooldown = format_duration(policy.cooldown)
    if champion.last_retrain_at is None:
        return _guard("cooldown", False, f"cooldown: no earlier retrain ({cooldown})")
    since = now - champion.last_retrain_at
    if since < timedelta(0):
        # A retrain stamped after `now`: wall-clock stamps meeting a logical (data-interval) `now`.
        return _guard(
            "cooldown",
            True,
            f"cooldown: last retrain at {champion.last_retrain_at.isoformat()} is after now ({now.isoformat()})",
        )
    blocks = since < policy.cooldown
    op = "<" if blocks else ">="
    return _guard("cooldown", blocks, f"cooldown: last retrain {_ago(since)} ago {op} {cooldown}")


def _guard_persistence(
    policy: PolicyConfig, current: RunFacts, history: Sequence[RunFacts], importance: Sequence[str]
) -> Reason:
    k, n = policy.persistence.k, policy.persistence.n
    window = last_runs(current, history, n)
    seen = sum(drift_detected(policy, r, importance) for r in window)
    blocks = seen < k
    op = "<" if blocks else ">="
    detail = f"persistence: drift in {seen} of the last {len(window)} run(s) {op} {k} of {n}"
    return _guard("persistence", blocks, detail)


def last_runs(current: RunFacts, history: Sequence[RunFacts], n: int) -> list[RunFacts]:
    """The last n runs ordered by interval, this run included; a rerun of the current
    interval in the history is replaced by the current facts, later intervals are ignored."""
    key = (current.interval_start, current.interval_end)
    earlier = [
        h for h in history if (h.interval_start, h.interval_end) != key and h.interval_end <= current.interval_end
    ]
    earlier.sort(key=lambda r: (r.interval_end, r.interval_start))
    return [*earlier[-(n - 1) :], current] if n > 1 else [current]


def _guard_impact(policy: PolicyConfig, run: RunFacts, champion: ChampionFacts, greater_is_better: bool) -> Reason:
    rule = "drift_impact"
    if not policy.drift_needs_impact:
        return _guard(rule, False, "drift impact: not required (policy.drift_needs_impact is off)")
    base, _ = metric_baseline(champion, greater_is_better)
    if not (_valid(run.estimated_metric) and _valid(base)):
        return _guard(rule, False, "drift impact: no label-free estimate for this window; drift counts as is")
    est, baseline = float(run.estimated_metric), float(base)  # type: ignore[arg-type]
    drop, limit = _drop(baseline, est, greater_is_better), _drop_limit(policy, baseline)
    blocks = drop < limit - _EPS
    op = "<" if blocks else ">="
    what = "the shift does not hurt the model" if blocks else "the shift hurts the model"
    return _guard(
        rule,
        blocks,
        f"drift impact: estimated metric {est:.4f} vs {baseline:.4f}, drop {drop:.4f} {op} {limit:.4f}: {what}",
    )


def _guard_shadowing(shadowing: Shadowing | None, change: ChangePoint | None) -> Reason:
    rule = "shadowing"
    if shadowing is None:
        return _guard(rule, False, "shadowing: no challenger is shadowing the champion")
    v = f"challenger v{shadowing.version}"
    if change is not None and shadowing.retrain_follows_change and not shadowing.since_change:
        why = f"the change at {change.at.isoformat()} is now confirmed: a candidate trained since it comes next"
        return _guard(rule, False, f"shadowing: {v} was trained on the usual window and {why}")
    if shadowing.outcome == "promote":
        why = "these signals are the outgoing champion's"
        return _guard(rule, True, f"shadowing: {v} is promoted from its shadow evidence this window; {why}")
    when = f"{shadowing.windows} of at most {shadowing.max_windows} windows"
    why = "its evidence decides first; a retrain now would replace it and restart that evidence"
    return _guard(rule, True, f"shadowing: {v} is shadowing ({when}); {why}")


def _guard_labels(policy: PolicyConfig, labelled_rows: int, training_rows: int | None) -> Reason:
    amount = policy.min_new_labels
    need = amount.rows(training_rows)
    if need is None:
        return _guard(
            "min_new_labels",
            False,
            f"labels: {labelled_rows:,} labelled rows since the last promotion; {amount} of the champion's "
            "training rows cannot be judged (training rows unknown)",
        )
    blocks = labelled_rows < need
    op = "<" if blocks else ">="
    of = f" ({amount} of the champion's {training_rows:,} training rows)" if amount.relative else ""
    return _guard(
        "min_new_labels", blocks, f"labels: {labelled_rows:,} labelled rows since the last promotion {op} {need:,}{of}"
    )


# --------------------------------------------------------------------------- decide


def decide(
    policy: PolicyConfig,
    *,
    now: datetime,
    current: RunFacts,
    history: Sequence[RunFacts],
    champion: ChampionFacts,
    metric_name: str,
    greater_is_better: bool,
    labelled_rows_since_retrain: int,
    shadowing: Shadowing | None = None,
) -> Decision:
    """Evaluate every trigger and guard; retrain if any trigger fired with all of its guards passing.

    `history` holds earlier runs of the same model (any order; later intervals are ignored);
    `labelled_rows_since_retrain` must include the current run's labelled rows; `shadowing` is the
    challenger shadowing the champion in this window, if any."""
    importance = champion.feature_importance
    if champion.version is None:
        first = Reason("no_champion", TRIGGER, True, "no champion yet: train the first model")
    else:
        first = Reason("no_champion", TRIGGER, False, f"champion is version {champion.version}")
    triggers = [
        first,
        _trigger_drift_share(policy, current),
        _trigger_important(policy, current, importance),
        _trigger_metric(policy, current, champion, metric_name, greater_is_better, history),
        _trigger_estimated(policy, current, champion, metric_name, greater_is_better),
        _trigger_growth(policy, champion, labelled_rows_since_retrain),
    ]
    fired = {t.rule for t in triggers if t.fired}
    # Where the degradation began, if what fired shows a streak (the shadowing guard needs it too).
    change = None
    if fired - {"no_champion"} and champion.version is not None:
        change = change_point(policy, current, history, champion, fired, greater_is_better)
    guards = [
        _guard_quality(current),
        _guard_cooldown(policy, now, champion),
        _guard_persistence(policy, current, history, importance),
        _guard_labels(policy, labelled_rows_since_retrain, champion.training_rows),
        _guard_impact(policy, current, champion, greater_is_better),
        _guard_shadowing(shadowing, change),
    ]
    reasons = (*triggers, *guards, _review_age(policy, now, champion))
    retrain = any(t.fired and not _blockers(t.rule, reasons) for t in triggers)
    return Decision(retrain=retrain, reasons=reasons, change=change if retrain else None)


def _worse(policy: PolicyConfig, value: float | None, baseline: float, greater_is_better: bool) -> bool | None:
    """Is ``value`` worse than ``baseline`` by the metric-drop limit? None when not measured."""
    if not _valid(value):
        return None
    return _drop(baseline, value, greater_is_better) >= _drop_limit(policy, baseline) - _EPS  # type: ignore[arg-type]


def change_point(
    policy: PolicyConfig,
    current: RunFacts,
    history: Sequence[RunFacts],
    champion: ChampionFacts,
    fired: set[str],
    greater_is_better: bool,
) -> ChangePoint | None:
    """The first run of the streak of runs, ending with this one, that show what fired: a metric
    worse than the baseline by the limit (realized, else estimated), or drift. Runs that measured
    nothing (no matured labels, no estimate) neither extend nor break the streak. A detector on
    the error stream in its simplest, explainable form: consecutive breaches of the same limit."""
    base, _ = metric_baseline(champion, greater_is_better)
    if fired == {"window_growth"} and champion.trained_since_change is not None:
        return ChangePoint(champion.trained_since_change, "window", 0)  # the same change, more rows since
    if fired & {"metric_drop", "estimated_metric_drop"} and _valid(base):
        basis = "metric"

        def breach(r: RunFacts) -> bool | None:
            realized = _worse(policy, r.metric_value, float(base), greater_is_better)  # type: ignore[arg-type]
            if realized is not None:
                return realized
            return _worse(policy, r.estimated_metric, float(base), greater_is_better)  # type: ignore[arg-type]

    elif fired & set(DRIFT_TRIGGERS):
        basis = "drift"

        def breach(r: RunFacts) -> bool | None:
            return drift_detected(policy, r, champion.feature_importance) if _valid(r.drift_share) else None

    else:
        return None
    streak = breach_streak(current, history, breach)
    if len(streak) < CHANGE_CONFIRM_RUNS:
        return None
    first = streak[-1]
    return ChangePoint(
        first.interval_start, basis, len(streak), float(base) if basis == "metric" and _valid(base) else None
    )
