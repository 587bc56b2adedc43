"""Finish what a killed or failed Driftguard process left behind.

Run at the start of every retrain (:func:`recover_model`, best effort) and by ``driftguard doctor``
(:func:`doctor`, every model):

- an interrupted alias move (a pending intent) is completed, or reverted when its version is gone
  (:func:`driftguard.retraining.registry.repair`);
- doctor only: @previous_champion == @champion is fixed and dg_promotions is reconciled with the
  MLflow aliases (:func:`driftguard.retraining.registry.reconcile`);
- MLflow runs of Driftguard experiments left RUNNING by a dead retrain are closed as FAILED;
- retrain claims whose heartbeat stopped are reported (the next request for the interval takes
  them over); with ``release_stale`` they are marked failed, as the DAG's failure callback would.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftguard.store import HistoryStore

log = logging.getLogger(__name__)

TAG_ORPHANED = "driftguard.orphaned"


@dataclass(frozen=True)
class Finding:
    """One thing recovery looked at: ``fixed`` when it was repaired, False when it is left for a
    person (or this was a dry run)."""

    model: str
    kind: str  # intent, aliases, orphan_run, stale_claim
    message: str
    fixed: bool


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def live_claims(
    store: HistoryStore, model: str, *, stale_after: timedelta, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Running retrain claims of the model whose heartbeat is younger than ``stale_after``."""
    now = now or _now()
    return [r for r in store.running_retrains(model) if now - r["updated_at"] < stale_after]


def stale_claims(
    store: HistoryStore,
    *,
    stale_after: timedelta,
    model: str | None = None,
    release: bool = False,
    now: datetime | None = None,
) -> list[Finding]:
    """Running claims whose heartbeat stopped more than ``stale_after`` ago: their worker died.
    With ``release`` they are marked "failed" (what the DAG's failure callback does), so the
    history no longer shows them running; the next request for the interval retries either way."""
    now = now or _now()
    found = []
    for r in store.running_retrains(model):
        age = now - r["updated_at"]
        if age < stale_after:
            continue
        where = f"retrain claim for [{r['interval_start'].isoformat()}, {r['interval_end'].isoformat()})"
        if release:
            store.finish_retrain(r["model"], r["interval_start"], r["interval_end"], status="failed",
                                 verdict={"error": f"worker died: no heartbeat for {_age(age)}"})  # fmt: skip
            message = f"{where} had no heartbeat for {_age(age)} (its worker died): released as failed"
            log.warning("%s: %s", r["model"], message)
            found.append(Finding(r["model"], "stale_claim", message, True))
            continue
        message = (
            f"{where} is 'running' but its last heartbeat was {_age(age)} ago: its worker died. The next "
            "retrain request for that interval takes it over (`driftguard doctor --release-stale` marks it failed)"
        )
        found.append(Finding(r["model"], "stale_claim", message, False))
    return found


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"


def close_orphaned_runs(
    model: str,
    *,
    store: HistoryStore,
    tracking_uri: str | None = None,
    stale_after: timedelta,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[Finding]:
    """Close the model's MLflow runs left RUNNING by a dead retrain as FAILED.

    A run counts as orphaned when it is RUNNING in the model's Driftguard experiment, started
    more than ``stale_after`` ago, and no live claim (heartbeat younger than ``stale_after``) can
    own it: none for the run's training cut-off (tag ``driftguard.data_as_of``), or none at all
    when the run has no such tag."""
    from driftguard import mlflow_setup
    from driftguard.retraining import registry

    now = now or _now()
    c = registry.client(tracking_uri)
    experiment = c.get_experiment_by_name(mlflow_setup.experiment_name(model))
    if experiment is None:
        return []
    live = live_claims(store, model, stale_after=stale_after, now=now)
    runs = c.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'", max_results=1000)
    found = []
    for run in runs:
        started = datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC)
        if now - started < stale_after:
            continue
        as_of = _parse_time(run.data.tags.get("driftguard.data_as_of"))
        if live and (as_of is None or any(claim["interval_end"] == as_of for claim in live)):
            continue
        name = run.info.run_name or run.info.run_id
        message = (
            f"MLflow run {run.info.run_id} ({name}, experiment {experiment.name}, started {started.isoformat()}) "
            f"was RUNNING with no live retrain claim: closed as FAILED"
        )
        if not dry_run:
            c.set_tag(run.info.run_id, TAG_ORPHANED, f"closed as FAILED by Driftguard recovery at {now.isoformat()}")
            c.set_terminated(run.info.run_id, status="FAILED", end_time=int(now.timestamp() * 1000))
            log.warning("%s: %s", model, message)
        found.append(Finding(model, "orphan_run", message, not dry_run))
    return found


def _intent_finding(result: Any) -> Finding:
    fixed = result.outcome in ("completed", "reverted")
    return Finding(result.model, "intent", result.message, fixed)


def recover_model(
    model: str,
    *,
    store: HistoryStore,
    tracking_uri: str | None = None,
    stale_after: timedelta,
    registered_model: str | None = None,
    reconcile: bool = False,
    release_stale: bool = False,
    dry_run: bool = False,
) -> list[Finding]:
    """Repair one model: a pending alias move, (with ``reconcile``) the aliases against the
    history, its orphaned MLflow runs, and report (``release_stale``: release) its stale claims."""
    from driftguard.retraining import registry

    name = registered_model or model
    found: list[Finding] = []
    result = registry.repair(name, store=store, tracking_uri=tracking_uri, dry_run=dry_run)
    if result is not None:
        found.append(_intent_finding(result))
    if reconcile and (result is None or result.outcome not in ("pending", "in_progress")):
        for line in registry.reconcile(name, store=store, tracking_uri=tracking_uri, dry_run=dry_run):
            found.append(Finding(name, "aliases", line, not dry_run))
    found += close_orphaned_runs(model, store=store, tracking_uri=tracking_uri, stale_after=stale_after,
                                 dry_run=dry_run)  # fmt: skip
    found += stale_claims(store, stale_after=stale_after, model=model, release=release_stale and not dry_run)
    return found


def known_models(store: HistoryStore, tracking_uri: str | None = None, extra: Iterable[str] = ()) -> list[str]:
    """Every model Driftguard knows of: history, pending intents, claims, and MLflow experiments
    named driftguard/<model>."""
    from driftguard import mlflow_setup
    from driftguard.retraining import registry

    names = set(extra) | set(store.models())
    names |= {i["model"] for i in store.promotion_intents()}
    names |= {r["model"] for r in store.running_retrains()}
    prefix = mlflow_setup.experiment_name("")
    for experiment in registry.client(tracking_uri).search_experiments(filter_string=f"name LIKE '{prefix}%'"):
        names.add(experiment.name.removeprefix(prefix))
    return sorted(n for n in names if n)


def doctor(
    models: Iterable[str] | None = None,
    *,
    store: HistoryStore,
    tracking_uri: str | None = None,
    stale_after: timedelta,
    release_stale: bool = False,
    dry_run: bool = False,
) -> list[Finding]:
    """`driftguard doctor`: recover_model with reconciliation for the given models (default:
    every known model)."""
    names = sorted(set(models)) if models else known_models(store, tracking_uri)
    found: list[Finding] = []
    for name in names:
        found += recover_model(name, store=store, tracking_uri=tracking_uri, stale_after=stale_after,
                               reconcile=True, release_stale=release_stale, dry_run=dry_run)  # fmt: skip
    return found
