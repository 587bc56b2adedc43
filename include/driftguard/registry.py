"""The MLflow model registry, through aliases only (registry stages are deprecated: never used).

Aliases of a registered model (one per contract, named like the contract):

- ``@champion``: the version production scores with;
- ``@previous_champion``: the version it replaced, the rollback target;
- ``@challenger``: the latest candidate the gate rejected, kept for inspection.

Every decision is also written where people look: version tags (``driftguard.verdict``,
``driftguard.reasons``, ...), a JSON decision record in the candidate's run
(``gate/decision.json``) and the promotion history table of the :class:`HistoryStore`.

MLflow has no compare-and-swap for aliases. :func:`promote` therefore re-reads ``@champion``
immediately before moving anything and refuses (``ConcurrentPromotionError``) if it is not the
champion the gate compared against; the residual window between that read and the alias write
is a few milliseconds. Keep one promoting DAG run per model (the DAGs use max_active_runs=1)
for a hard guarantee.

MLflow quirk: ``search_model_versions`` returns ``aliases=[]`` and string versions; only
``get_model_version*`` return real aliases, so versions are always re-read with those.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from driftguard.gate import GateVerdict
    from driftguard.store import HistoryStore

logger = logging.getLogger(__name__)

CHAMPION, PREVIOUS, CHALLENGER = "champion", "previous_champion", "challenger"

TAG_VERDICT = "driftguard.verdict"
TAG_REASONS = "driftguard.reasons"
TAG_TRIGGER = "driftguard.trigger"
TAG_FINGERPRINT = "driftguard.fingerprint"
TAG_SUMMARY = "driftguard.summary"
TAG_ROLLED_BACK = "driftguard.rolled_back"
TAG_PROMOTED_AT = "driftguard.promoted_at"
DECISION_ARTIFACT = "gate/decision.json"
MAX_TAG_CHARS = 2000
"""Tags stay readable in the MLflow UI; the full record is always in gate/decision.json."""


class RegistryError(Exception):
    """A registry operation cannot be done as asked (the message says why and what to do)."""


class ConcurrentPromotionError(RegistryError):
    """@champion moved since the gate compared against it; nothing was changed."""


def _now() -> datetime:
    return datetime.now(UTC)


def client(tracking_uri: str | None = None) -> MlflowClient:
    """An MlflowClient on the configured tracking + registry URI (fails fast when unreachable)."""
    from mlflow import MlflowClient

    from driftguard import mlflow_setup

    uri = mlflow_setup.configure(tracking_uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _missing(exc: Exception) -> bool:
    """True for MLflow's "no such registered model" and "no such alias" errors."""
    code = getattr(exc, "error_code", "")
    text = str(exc).lower()
    return code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and "alias" in text and "not found" in text
    )


def _by_alias(c: MlflowClient, model: str, alias: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return c.get_model_version_by_alias(model, alias)
    except MlflowException as exc:
        if _missing(exc):
            return None
        raise


def alias_version(model: str, alias: str, *, tracking_uri: str | None = None) -> ModelVersion | None:
    """The version an alias points at, or None (no such alias or model)."""
    return _by_alias(client(tracking_uri), model, alias)


def champion_version(model: str, *, tracking_uri: str | None = None) -> ModelVersion | None:
    """The current @champion version, or None when the model has none yet."""
    return alias_version(model, CHAMPION, tracking_uri=tracking_uri)


def _version_str(mv: ModelVersion | None) -> str | None:
    return None if mv is None else str(mv.version)


def register_candidate(
    model: str, run_id: str, *, tracking_uri: str | None = None, tags: Mapping[str, str] | None = None
) -> ModelVersion:
    """Register the run's ``model`` artifact as a new version; idempotent per run.

    A rerun for a run that already has a version returns that version (never a second one)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    c = client(tracking_uri)
    try:
        existing = c.search_model_versions(f"name = '{model}' and run_id = '{run_id}'")
    except MlflowException as exc:
        if not _missing(exc):
            raise
        existing = []
    if existing:
        first = min(existing, key=lambda mv: int(mv.version))
        logger.info(
            "%s: run %s is already registered as version %s: not registering again", model, run_id, first.version
        )
        return c.get_model_version(model, str(first.version))
    try:
        c.get_run(run_id)
    except MlflowException as exc:
        raise RegistryError(f"{model}: cannot register run {run_id}: {str(exc).splitlines()[0]}") from None
    mv = mlflow.register_model(f"runs:/{run_id}/model", model, tags=dict(tags or {}))
    logger.info("%s: registered run %s as version %s", model, run_id, mv.version)
    return c.get_model_version(model, str(mv.version))


def _truncate(text: str, limit: int = MAX_TAG_CHARS) -> str:
    if len(text) <= limit:
        return text
    suffix = f" ... (+{len(text) - limit} chars; full record in {DECISION_ARTIFACT})"
    return text[: max(0, limit - len(suffix))] + suffix


def _compact_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def decision_record(
    model: str, version: str, verdict: GateVerdict, *, trigger: Mapping[str, Any], fingerprint: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON document that explains one gate decision, self-contained."""
    return {
        "model": model,
        "version": str(version),
        "decided_at": _now().isoformat(),
        "verdict": "promote" if verdict.promote else "reject",
        "summary": verdict.summary(),
        "reasons": verdict.reasons(),
        "gate": verdict.to_dict(),
        "trigger": dict(trigger),
        "fingerprint": dict(fingerprint),
    }


def record_verdict(
    model: str,
    version: str | int,
    verdict: GateVerdict,
    *,
    trigger: Mapping[str, Any],
    fingerprint: Mapping[str, Any],
    tracking_uri: str | None = None,
    store: HistoryStore | None = None,
    actor: str = "driftguard",
) -> dict[str, Any]:
    """Write the gate's verdict onto the candidate version (tags) and its run (gate/decision.json).

    With a ``store``, a rejection is also appended to the promotion history (action "reject");
    promotions are recorded by :func:`promote`. Returns the decision record. Rerunning rewrites
    the same tags and artifact (idempotent)."""
    c = client(tracking_uri)
    mv = c.get_model_version(model, str(version))
    record = decision_record(model, str(version), verdict, trigger=trigger, fingerprint=fingerprint)
    tags = {
        TAG_VERDICT: record["verdict"],
        TAG_SUMMARY: _truncate(verdict.summary(), 500),
        TAG_REASONS: _truncate("; ".join(record["reasons"]) or "all checks passed"),
        TAG_TRIGGER: _truncate(_compact_json(record["trigger"])),
        TAG_FINGERPRINT: _truncate(_compact_json(record["fingerprint"])),
    }
    for key, value in tags.items():
        c.set_model_version_tag(model, str(version), key, value)
    if mv.run_id:
        c.log_dict(mv.run_id, record, DECISION_ARTIFACT)
    logger.info("%s v%s: verdict %s recorded (%s)", model, version, record["verdict"], verdict.summary())
    if store is not None and not verdict.promote:
        store.record_promotion(
            model,
            action="reject",
            version=str(version),
            previous_version=None,
            actor=actor,
            reason=_truncate("; ".join(record["reasons"])),
            details={"summary": record["summary"], "run_id": mv.run_id},
            at=_now(),
        )
    return record


def promote(
    model: str,
    version: str | int,
    *,
    expected_champion: str | int | None,
    store: HistoryStore,
    actor: str,
    reason: str,
    tracking_uri: str | None = None,
    at: datetime | None = None,
) -> None:
    """Make ``version`` the champion: the LAST step of a promotion, guarded.

    ``at`` is the data time the decision was made for (a backfill's or backtest's interval end);
    the retrain policy's cooldown compares against it. Default: now.

    Re-reads @champion first; if it is not ``expected_champion`` (the version the gate compared
    against, None for a first champion) it raises ConcurrentPromotionError and moves nothing.
    Then: old champion -> @previous_champion, ``version`` -> @champion, and @challenger is
    removed if it pointed at ``version``. Recorded in the store as "promote" (or
    "first_champion"). If ``version`` already is the champion (a retried task) nothing moves
    and the store records it at most once."""
    c = client(tracking_uri)
    version = str(version)
    expected = None if expected_champion is None else str(expected_champion)
    c.get_model_version(model, version)  # fails loudly for an unknown version
    current = _version_str(_by_alias(c, model, CHAMPION))
    if current == version:
        logger.info("%s: v%s already is @champion: nothing to move", model, version)
        previous = _version_str(_by_alias(c, model, PREVIOUS))
        _record(store, model, "promote" if previous else "first_champion", version, previous, actor, reason, at)
        return
    if current != expected:
        raise ConcurrentPromotionError(
            f"{model}: @champion is v{current} but the gate compared v{version} against "
            f"{'v' + expected if expected else 'no champion'}; someone else promoted meanwhile. Nothing was "
            "moved: rerun the gate against the new champion."
        )
    if current is not None:
        c.set_registered_model_alias(model, PREVIOUS, current)
    c.set_registered_model_alias(model, CHAMPION, version)
    challenger = _by_alias(c, model, CHALLENGER)
    if challenger is not None and str(challenger.version) == version:
        c.delete_registered_model_alias(model, CHALLENGER)
    c.set_model_version_tag(model, version, TAG_PROMOTED_AT, _now().isoformat())
    action = "promote" if current is not None else "first_champion"
    logger.info("%s: %s v%s -> @champion (was %s) by %s: %s", model, action, version, current, actor, reason)
    _record(store, model, action, version, current, actor, reason, at)


def _record(
    store: HistoryStore,
    model: str,
    action: str,
    version: str,
    previous: str | None,
    actor: str,
    reason: str,
    at: datetime | None = None,
) -> None:
    now = _now()
    store.record_promotion(
        model,
        action=action,
        version=version,
        previous_version=previous,
        actor=actor,
        reason=reason,
        details={"aliases": {CHAMPION: version, PREVIOUS: previous}, "recorded_at": now.isoformat()},
        at=at or now,
    )


def mark_challenger(model: str, version: str | int, *, tracking_uri: str | None = None) -> None:
    """Point @challenger at a rejected candidate (the alias moves off any older one)."""
    client(tracking_uri).set_registered_model_alias(model, CHALLENGER, str(version))
    logger.info("%s: v%s is @challenger (rejected by the gate, kept for inspection)", model, version)


def rollback(
    model: str, *, store: HistoryStore, actor: str, reason: str, tracking_uri: str | None = None
) -> tuple[str, str]:
    """Put @previous_champion back as @champion; returns (from_version, to_version).

    Afterwards @previous_champion is removed (a second rollback must not flip back to the bad
    version) and the rolled-back version is tagged ``driftguard.rolled_back`` with the reason.
    Recorded in the store as "rollback". RegistryError if there is no champion or no previous
    champion to return to."""
    c = client(tracking_uri)
    current = _by_alias(c, model, CHAMPION)
    if current is None:
        raise RegistryError(f"{model}: cannot roll back: the model has no @champion")
    previous = _by_alias(c, model, PREVIOUS)
    if previous is None:
        raise RegistryError(
            f"{model}: cannot roll back v{current.version}: no @previous_champion to return to "
            "(only one version was ever promoted, or a rollback already used it)"
        )
    bad, good = str(current.version), str(previous.version)
    c.set_registered_model_alias(model, CHAMPION, good)
    c.delete_registered_model_alias(model, PREVIOUS)
    c.set_model_version_tag(model, bad, TAG_ROLLED_BACK, _truncate(f"{_now().isoformat()} by {actor}: {reason}"))
    logger.warning("%s: rolled back @champion v%s -> v%s by %s: %s", model, bad, good, actor, reason)
    store.record_promotion(
        model,
        action="rollback",
        version=good,
        previous_version=bad,
        actor=actor,
        reason=reason,
        details={"rolled_back": bad, "restored": good},
        at=_now(),
    )
    return bad, good


def load_champion(model: str, *, tracking_uri: str | None = None) -> tuple[Any, str] | None:
    """(pyfunc model, version) of @champion, or None when there is none.

    Loaded by version number, not by alias, so the model and the version returned always agree
    even if the alias moves during the load."""
    import mlflow.pyfunc

    mv = champion_version(model, tracking_uri=tracking_uri)  # configures the URIs as well
    if mv is None:
        return None
    return mlflow.pyfunc.load_model(f"models:/{model}/{mv.version}"), str(mv.version)
