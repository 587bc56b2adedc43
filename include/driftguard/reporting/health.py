"""The health board's verdict on one model: one status from its history and the clock.

Pure (no database, no Airflow, no clock of its own): `assess` takes a model's recorded runs,
failed runs and promotions, its schedule and `now`, and returns a `Health`. driftguard.ui.app draws
the board at ``/driftguard/`` from it; docs/runbook.md ("The health board") explains each status.

Statuses, worst first (the board shows the worst that applies and lists the others as flags):

- ``run_failed``: the most recent thing that happened to the model is a failed task (a run
  recorded after the failure, of any interval, clears it; the model page keeps the failure).
- ``overdue``: the interval after the last recorded one should have finished (its end plus the
  grace period has passed) and no run of it is recorded. The schedule's end
  (DRIFTGUARD_SCHEDULE_END) stops expecting runs.
- ``paused``: the model's monitoring DAG is paused in Airflow (when the caller knows): no run is
  expected, so it is never ``overdue``; grey, because someone chose it.
- ``quality_failed``, ``no_data``, ``degraded``, ``drift``: the last recorded run's verdict (a
  critical data-quality failure; an empty interval; a lost signal or a fired metric trigger;
  a fired drift trigger).
- ``no_champion``: no promotion on record and no champion version in the last run.
- ``no_runs``: nothing recorded yet, and nothing due yet.
- ``ok``: none of the above.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from driftguard.contract import CRON_PRESETS
from driftguard.facts import DRIFT_TRIGGERS
from driftguard.store import FailureRecord, RunRecord

STATUSES: dict[str, tuple[str, str]] = {
    "run_failed": ("run failed", "bad"),
    "overdue": ("overdue", "bad"),
    "paused": ("paused", "muted"),
    "quality_failed": ("quality failed", "bad"),
    "no_data": ("no data", "warn"),
    "degraded": ("degraded", "warn"),
    "drift": ("drift", "warn"),
    "no_champion": ("no champion", "warn"),
    "no_runs": ("no runs yet", "muted"),
    "ok": ("ok", "good"),
}
"""status -> (text shown, CSS class), worst first."""
CHAMPION_ACTIONS = ("promote", "first_champion", "rollback", "reconcile")
"""Promotion-history actions whose `version` is @champion afterwards (driftguard.retraining.registry)."""
METRIC_TRIGGERS = ("metric_drop", "estimated_metric_drop")
DEFAULT_GRACE = timedelta(hours=6)
ENV_GRACE = "DRIFTGUARD_OVERDUE_GRACE"
"""How long after an interval's end its run may take before the model shows overdue (e.g. `12h`)."""


@dataclass(frozen=True)
class Champion:
    version: str
    since: datetime | None  # when it became @champion (None: only seen in a run record)


@dataclass(frozen=True)
class Health:
    model: str
    status: str
    flags: tuple[str, ...]  # every status that applies, worst first (status is flags[0])
    detail: str  # why, in one line
    last_run: RunRecord | None
    failure: FailureRecord | None  # the open failure (status run_failed), else None
    champion: Champion | None
    due: datetime | None  # when the next interval's run is overdue (its end + grace); None: none expected

    @property
    def label(self) -> str:
        return STATUSES[self.status][0]

    @property
    def css(self) -> str:
        return STATUSES[self.status][1]


def grace_from_env(env: Mapping[str, str] | None = None) -> timedelta:
    """DRIFTGUARD_OVERDUE_GRACE (`6h`, `1d`, ...), default 6 hours."""
    raw = (os.environ if env is None else env).get(ENV_GRACE, "").strip()
    if not raw:
        return DEFAULT_GRACE
    from driftguard.contract import parse_duration

    return parse_duration(raw)


def age(now: datetime, then: datetime | None) -> str:
    """`3d 4h`, `5h 10m`, `12m`, `<1m`; '—' without a time."""
    if then is None:
        return "—"
    seconds = int((now - then).total_seconds())
    if seconds < 0:
        return "in the future"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else "<1m"


def _cron(schedule: str) -> str | None:
    if schedule == "@once":
        return None
    return CRON_PRESETS.get(schedule, schedule)


def _next_fire(cron: str, after: datetime) -> datetime:
    from croniter import croniter

    naive = after.astimezone(UTC).replace(tzinfo=None)  # the DAGs' timezone is UTC
    return croniter(cron, naive).get_next(datetime).replace(tzinfo=UTC)


def next_interval(
    schedule: str, last_end: datetime | None, start_date: date | None
) -> tuple[datetime, datetime] | None:
    """The data interval whose run comes next: the one after `last_end`, or the first one from
    `start_date` when nothing is recorded. None for `@once` or without a start."""
    cron = _cron(schedule)
    if cron is None:
        return None
    if last_end is None:
        if start_date is None:
            return None
        start = datetime(start_date.year, start_date.month, start_date.day, tzinfo=UTC)
        first = _next_fire(cron, start - timedelta(seconds=1))  # the first schedule time at or after the start
        return first, _next_fire(cron, first)
    return last_end, _next_fire(cron, last_end)


def champion_of(promotions: Sequence[Mapping[str, Any]], runs: Sequence[RunRecord]) -> Champion | None:
    """@champion from the promotion history (its last alias move), else the last run's champion."""
    for p in reversed(promotions):  # oldest first, as HistoryStore.promotions returns them
        if p.get("action") in CHAMPION_ACTIONS and p.get("version"):
            return Champion(str(p["version"]), p.get("at"))
    for rec in reversed(runs):
        if rec.champion_version:
            return Champion(str(rec.champion_version), None)
    return None


def _fired(rec: RunRecord, kind: str) -> list[str]:
    return [str(r.get("rule")) for r in rec.reasons if r.get("kind") == kind and r.get("fired")]


DECISION_LINE_MAX = 160


def _clause(reason: Mapping[str, Any]) -> str:
    """`cooldown, last retrain 7d ago < 4w` from a reason whose detail repeats its rule name."""
    rule, detail = str(reason.get("rule") or ""), str(reason.get("detail") or "").strip()
    head, sep, rest = detail.partition(":")
    if sep and head and rule.startswith(head.strip().replace(" ", "_")):
        detail = rest.strip()
    return f"{rule}, {detail}" if detail else rule


def _first(rec: RunRecord, kind: str) -> Mapping[str, Any] | None:
    return next((r for r in rec.reasons if r.get("kind") == kind and r.get("fired")), None)


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0]


def decision_line(rec: RunRecord) -> str:
    """The run's decision in one short line, the deciding reason first:
    `no retrain: cooldown, last retrain 7d ago < 4w (blocked: drift_share)`,
    `retrain: drift_share, drift share 0.45 >= 0.30`. Display only: the decision is the policy's."""
    triggers, guards, reviews = _fired(rec, "trigger"), _fired(rec, "guard"), _fired(rec, "review")
    trigger, guard = _first(rec, "trigger"), _first(rec, "guard")
    if rec.retrain:
        line = f"retrain: {_clause(trigger)}" if trigger else (_first_line(rec.summary) or "retrain")
        if len(triggers) > 1:
            line += f" (also: {', '.join(triggers[1:])})"
    elif trigger and guard:
        line = f"no retrain: {_clause(guard)} (blocked: {', '.join(triggers)})"
        if len(guards) > 1:
            line = line[:-1] + f"; also blocked by {', '.join(guards[1:])})"
    elif not rec.reasons and rec.summary:
        line = _first_line(rec.summary)
    elif rec.reasons and not triggers:
        line = "no retrain: no trigger fired"
    else:
        line = "no retrain"
    if reviews:
        line += f"; review: {', '.join(reviews)}"
    return line if len(line) <= DECISION_LINE_MAX else line[: DECISION_LINE_MAX - 1] + "…"


def _verdict(rec: RunRecord) -> list[tuple[str, str]]:
    """(status, why) of the last run's findings, worst first."""
    out: list[tuple[str, str]] = []
    if rec.status == "quality_failed" or not rec.quality_passed:
        out.append(("quality_failed", f"{rec.critical_failures} critical data-quality failure(s)"))
    if rec.status == "no_data":
        out.append(("no_data", "no rows in the last interval"))
    metric = [r for r in _fired(rec, "trigger") if r in METRIC_TRIGGERS]
    if rec.status == "degraded" or metric:
        why = "a signal was lost or incomplete" if rec.status == "degraded" else ""
        if metric:
            why = ", ".join(filter(None, [why, f"{', '.join(metric)} fired"]))
        out.append(("degraded", why))
    drift = [r for r in _fired(rec, "trigger") if r in DRIFT_TRIGGERS]
    threshold = rec.signals.get("drift_share_threshold") if rec.signals else None
    if not drift and not rec.reasons and rec.drift_share is not None and isinstance(threshold, (int, float)):
        drift = ["drift_share"] if rec.drift_share >= threshold else []
    if drift:
        share = "" if rec.drift_share is None else f" (drift share {rec.drift_share:.2f})"
        out.append(("drift", f"{', '.join(drift)} fired{share}"))
    return out


def assess(
    model: str,
    *,
    runs: Sequence[RunRecord],
    failures: Sequence[FailureRecord] = (),
    promotions: Sequence[Mapping[str, Any]] = (),
    now: datetime,
    schedule: str | None = None,
    start_date: date | None = None,
    schedule_end: datetime | None = None,
    grace: timedelta = DEFAULT_GRACE,
    paused: bool | None = None,
) -> Health:
    """One model's status. `runs` oldest first by interval (HistoryStore.runs), `failures` oldest
    first (HistoryStore.failures); `schedule`/`start_date` from the contract (None: no overdue check);
    `paused`: whether Airflow has the monitoring DAG paused (None: not known, e.g. no Airflow DB)."""
    last = max(runs, key=lambda r: (r.interval_end, r.interval_start)) if runs else None
    found: list[tuple[str, str]] = []

    failure = max(failures, key=lambda f: f.failed_at) if failures else None
    latest_update = max((r.updated_at for r in runs if r.updated_at is not None), default=None)
    if failure is not None and (latest_update is None or failure.failed_at > latest_update):
        error = (failure.error.strip().splitlines() or ["no error text"])[0]
        found.append(("run_failed", f"{failure.step} failed {age(now, failure.failed_at)} ago: {error[:160]}"))
    else:
        failure = None

    due = None
    if paused:
        found.append(("paused", "monitoring DAG paused in Airflow: no run is expected until it is unpaused"))
    expected = None
    if schedule and not paused:
        expected = next_interval(schedule, last.interval_end if last else None, start_date)
    if expected is not None and (schedule_end is None or expected[0] <= schedule_end):
        due = expected[1] + grace
        if now >= due:
            start, end = (_when(t) for t in expected)
            found.append(("overdue", f"no run recorded for {start} → {end}, due by {_when(due)} UTC"))

    if last is not None:
        found.extend(_verdict(last))
    champion = champion_of(promotions, runs)
    if champion is None:
        found.append(("no_champion", "no champion yet: monitoring compares with the bootstrap reference"))
    if last is None:
        found.append(("no_runs", "no monitoring run recorded yet"))
    if not found:
        found.append(("ok", decision_line(last) if last is not None else ""))

    order = list(STATUSES)
    found.sort(key=lambda f: order.index(f[0]))
    status, why = found[0]
    return Health(
        model=model,
        status=status,
        flags=tuple(s for s, _ in found),
        detail=why,
        last_run=last,
        failure=failure,
        champion=champion,
        due=due,
    )


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
