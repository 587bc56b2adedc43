"""A person's answer to a shadow promotion that awaits approval (`promotion.require_approval`).

When a challenger's shadow evidence clears the gate and the contract requires approval, the
monitoring run's `promote_shadow` step moves nothing: it records `awaiting_approval` on the
deciding window's row and alerts. `driftguard approve <model>` (or `--decline`) answers it here:
approve promotes through the same guarded path as every promotion (`registry.promote` with the
champion the evidence was gathered against, so nothing moves if `@champion` moved meanwhile:
`aborted`); decline records it and leaves the challenger as it is. Either way the answer, its
author and reason are kept on the window's row, and the answer is given once.

The monitoring DAG does not wait in a human-in-the-loop task for this: it runs with
`max_active_runs=1`, so a pending approval would stop the model's monitoring until answered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from driftguard.retraining import registry
from driftguard.retraining import shadow as sh
from driftguard.store import HistoryStore, ShadowRecord

log = logging.getLogger(__name__)

AWAITING = "awaiting_approval"


class ApprovalError(RuntimeError):
    """Nothing to answer (no pending shadow promotion), said with what there is instead."""


@dataclass(frozen=True)
class Answer:
    model: str
    version: str
    champion: str  # the champion the evidence was gathered against
    action: str  # promoted | aborted | declined
    note: str


def pending(store: HistoryStore, model: str) -> ShadowRecord | None:
    """The model's latest shadow promotion, if it awaits a person (a champion that moved since
    makes the approval abort, changing nothing)."""
    rows = [r for r in store.shadow_records(model) if r.kind == sh.WINDOW and r.outcome == sh.PROMOTE]
    if not rows:
        return None
    last = max(rows, key=lambda r: r.interval_end)
    return last if last.action == AWAITING else None


def answer(
    model: str,
    *,
    approve: bool,
    actor: str,
    reason: str,
    store: HistoryStore,
    tracking_uri: str | None = None,
) -> Answer:
    """Approve or decline the pending shadow promotion of ``model``; raises ApprovalError when
    there is none (the message says what was found)."""
    row = pending(store, model)
    if row is None:
        answered = [
            r for r in store.shadow_records(model) if r.kind == sh.WINDOW and r.outcome == sh.PROMOTE and r.action
        ]
        seen = f"; the last one was v{answered[-1].challenger_version}: {answered[-1].action}" if answered else ""
        raise ApprovalError(f"{model}: no shadow promotion awaits approval{seen}")
    version, champion = row.challenger_version, row.champion_version
    note = f"{'approved' if approve else 'declined'} by {actor}: {reason}"
    if not approve:
        action = "declined"
    else:
        try:
            registry.promote(
                model,
                version,
                expected_champion=champion,
                store=store,
                actor=actor,
                reason=f"{row.reason}; {note}",
                tracking_uri=tracking_uri,
            )
            action = "promoted"
        except registry.ConcurrentPromotionError as exc:
            action, note = "aborted", f"{note}; aborted: {exc}"
    store.set_shadow_action(model, version, row.interval_start, row.interval_end, action=action, note=note)
    log.info("%s: shadow promotion of v%s %s (%s)", model, version, action, note)
    return Answer(model, version, champion, action, note)
