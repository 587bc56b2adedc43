"""The MLflow model registry, through aliases only (registry stages are deprecated: never used).

Aliases of a registered model (one per contract, named like the contract):

- ``@champion``: the version production scores with;
- ``@previous_champion``: the version it replaced, the rollback target;
- ``@challenger``: the latest candidate the gate did not promote, kept for inspection; when the
  gate could not tell (insufficient evidence) it shadows the next monitoring windows
  (:mod:`driftguard.retraining.shadow`) and may be promoted from there.

Every decision is also written where people look: short version tags (``driftguard.verdict``,
``driftguard.summary``, ``driftguard.reasons``, ...: scalars of at most
``mlflow_setup.MAX_TAG_CHARS`` characters), the version's description (the gate's summary), a JSON
decision record in the candidate's run (``gate/decision.json``: every check's numbers, the whole
trigger and data fingerprint) and the promotion history table of the :class:`HistoryStore`. The
registered model gets a description when it is first registered (what the model is, its owners,
and that Driftguard manages its aliases).

MLflow has no compare-and-swap for aliases. :func:`promote` therefore re-reads ``@champion``
immediately before moving anything and refuses (``ConcurrentPromotionError``) if it is not the
champion the gate compared against; the residual window between that read and the alias write
is a few milliseconds. Keep one promoting DAG run per model (the DAGs use max_active_runs=1)
for a hard guarantee.

MLflow has no transactions across aliases either, so a move is crash-safe by construction: an
intent record (``dg_promotion_intents`` in the history store: action, target version, the
champion and previous champion before) is written before the first alias write, the aliases are
written in an order whose every intermediate state is valid (``@champion`` and
``@previous_champion`` never point at the same version), and the intent is deleted in the
transaction that appends the ``dg_promotions`` row. A kill or an MLflow error at any point
leaves the intent behind; :func:`repair` (run by the next promote or rollback, the next retrain
and ``driftguard doctor``) completes the move from wherever it stopped.

MLflow quirk: ``search_model_versions`` returns ``aliases=[]`` and string versions; only
``get_model_version*`` return real aliases, so versions are always re-read with those.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from driftguard.retraining.gate import GateVerdict
    from driftguard.store import HistoryStore

logger = logging.getLogger(__name__)

CHAMPION, PREVIOUS, CHALLENGER = "champion", "previous_champion", "challenger"

TAG_VERDICT = "driftguard.verdict"
TAG_REASONS = "driftguard.reasons"
TAG_TRIGGER = "driftguard.trigger"
TAG_DATA_SHA = "driftguard.data_sha256"
TAG_SUMMARY = "driftguard.summary"
TAG_ROLLED_BACK = "driftguard.rolled_back"
TAG_PROMOTED_AT = "driftguard.promoted_at"
DECISION_ARTIFACT = "gate/decision.json"
MAX_TAG_CHARS = 250
"""Tags stay one line in the MLflow UI (mlflow_setup.MAX_TAG_CHARS); the full record is in gate/decision.json."""
DESCRIPTION_CHARS = 4000
"""Descriptions (registered model, version) are cut to this many characters."""


class RegistryError(Exception):
    """A registry operation cannot be done as asked (the message says why and what to do)."""


class ConcurrentPromotionError(RegistryError):
    """@champion moved since the gate compared against it; nothing was changed."""


class _TakenOver(Exception):
    """A repair elsewhere took this move's intent over; it finishes the move, this process stops."""


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


def experiment_of(run_id: str, *, tracking_uri: str | None = None) -> str | None:
    """The experiment id of a run (MLflow's UI routes a run under it), or None when it cannot be read."""
    try:
        return str(client(tracking_uri).get_run(run_id).info.experiment_id)
    except Exception as exc:  # only a link is lost
        logger.warning("run %s: experiment id unreadable: %s", run_id, str(exc).splitlines()[:1])
        return None


def model_description(name: str, description: str = "", owners: Sequence[str] = ()) -> str:
    """The registered model's description: what the model is and who owns it (from its contract),
    and that Driftguard manages the versions and aliases."""
    what = description.strip() or f"The model of the Driftguard contract {name}."
    who = f"\n\nOwners: {', '.join(owners)}." if owners else ""
    return (
        f"{what}{who}\n\nManaged by Driftguard (contract `{name}`): each version is a candidate trained by the "
        f"retraining DAG `driftguard_retrain__{name}` and judged by the promotion gate (its verdict is in the "
        "version's description, its `driftguard.*` tags and `gate/decision.json` in the version's run). "
        "The aliases `@champion` (what production scores with), `@previous_champion` (the rollback target) "
        "and `@challenger` (the latest candidate not promoted) are moved by Driftguard only: to go back, run "
        f"the DAG `driftguard_rollback__{name}`, do not move an alias by hand."
    )[:DESCRIPTION_CHARS]


def _describe_model(c: MlflowClient, model: str, description: str | None) -> None:
    """Set the registered model's description once: when it has none (a person's edit is kept)."""
    if not description:
        return
    try:
        if not (c.get_registered_model(model).description or "").strip():
            c.update_registered_model(model, description=description[:DESCRIPTION_CHARS])
    except Exception as exc:  # a description is documentation: never fail a registration for it
        logger.warning("%s: registered model description not set: %s", model, str(exc).splitlines()[:1])


def register_candidate(
    model: str,
    run_id: str,
    *,
    tracking_uri: str | None = None,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
) -> ModelVersion:
    """Register the run's ``model`` artifact as a new version; idempotent per run. ``description``:
    the registered model's, set when it has none yet (at its first registration).

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
        _describe_model(c, model, description)
        return c.get_model_version(model, str(first.version))
    try:
        c.get_run(run_id)
    except MlflowException as exc:
        raise RegistryError(f"{model}: cannot register run {run_id}: {str(exc).splitlines()[0]}") from None
    mv = mlflow.register_model(f"runs:/{run_id}/model", model, tags=dict(tags or {}))
    logger.info("%s: registered run %s as version %s", model, run_id, mv.version)
    _describe_model(c, model, description)
    return c.get_model_version(model, str(mv.version))


def _truncate(text: str, limit: int = MAX_TAG_CHARS) -> str:
    from driftguard.mlflow_setup import short_tag

    return short_tag(text, full=DECISION_ARTIFACT, limit=limit)


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
    from driftguard.retraining.training import trigger_summary

    tags = {
        TAG_VERDICT: record["verdict"],
        TAG_SUMMARY: _truncate(verdict.summary()),
        TAG_REASONS: _truncate("; ".join(record["reasons"]) or "all checks passed"),
        TAG_TRIGGER: _truncate(trigger_summary(dict(trigger))),
        TAG_DATA_SHA: _truncate(str(record["fingerprint"].get("sha256", ""))),
    }
    for key, value in tags.items():
        c.set_model_version_tag(model, str(version), key, value)
    # The version page shows its description first: the gate's summary and each failed check's reason.
    text = "\n".join([verdict.summary(), *(f"- {r}" for r in record["reasons"])])
    c.update_model_version(model, str(version), description=text[:DESCRIPTION_CHARS])
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
            reason=_truncate("; ".join(record["reasons"]), 2000),
            details={"summary": record["summary"], "run_id": mv.run_id},
            at=_now(),
        )
    return record


def decision(model: str, version: str | int, *, tracking_uri: str | None = None) -> dict[str, Any] | None:
    """The gate's decision record of a version (``gate/decision.json`` of its run, written by
    :func:`record_verdict`), or None when it has none."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    c = client(tracking_uri)
    run_id = c.get_model_version(model, str(version)).run_id
    if not run_id:
        return None
    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{DECISION_ARTIFACT}")
    except (MlflowException, OSError, ValueError) as exc:
        logger.warning("%s v%s: no decision record in run %s: %s", model, version, run_id, exc)
        return None


# --------------------------------------------------------------------------- crash-safe alias moves

CHECKPOINT_HOOK: Callable[[str], None] | None = None
"""Called with a checkpoint name before every write of promote / rollback / repair ("intent",
"set:champion", "delete:previous_champion", "tag:rolled_back", "record", ...). None in production;
tests raise from it (an MLflow error) or block in it (to be killed) to prove every point is safe."""

ALIAS_ACTIONS = ("promote", "first_champion", "rollback", "reconcile")
"""dg_promotions actions that move @champion (a "reject" does not)."""


@dataclass(frozen=True)
class RepairResult:
    """What became of an alias move: completed (the new state), reverted (the old state, its
    version is gone), abandoned (the aliases were moved by someone else since: left alone),
    pending (dry run) or in_progress (another repair holds it)."""

    model: str
    action: str
    outcome: str
    message: str


def _checkpoint(name: str) -> None:
    if CHECKPOINT_HOOK is not None:
        CHECKPOINT_HOOK(name)


def _owner() -> str:
    return f"{socket.gethostname()[:200]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _alias_map(c: MlflowClient, model: str) -> dict[str, str]:
    """alias -> version of the registered model ({} when there is no such model): one read."""
    from mlflow.exceptions import MlflowException

    try:
        aliases = c.get_registered_model(model).aliases
    except MlflowException as exc:
        if _missing(exc):
            return {}
        raise
    return {str(k): str(v) for k, v in (aliases or {}).items()}


def _version_exists(c: MlflowClient, model: str, version: str | None) -> bool:
    from mlflow.exceptions import MlflowException

    if version is None:
        return False
    try:
        c.get_model_version(model, str(version))
    except MlflowException as exc:
        if _missing(exc):
            return False
        raise
    return True


def _describe(intent: Mapping[str, Any]) -> str:
    old, prev = intent["champion_before"], intent["previous_before"]
    return (
        f"{intent['action']} of {intent['model']} to v{intent['version']} (before: @champion "
        f"{'v' + old if old else 'none'}, @previous_champion {'v' + prev if prev else 'none'}) by {intent['actor']}, "
        f"started {intent['created_at'].isoformat()}"
    )


class _Move:
    """One alias move carried out from its intent record; every step is idempotent, so the same
    code runs the first time and when a repair finishes an interrupted move."""

    def __init__(self, c: MlflowClient, store: HistoryStore, intent: Mapping[str, Any], *, repairing: bool):
        self.c, self.store, self.intent, self.repairing = c, store, dict(intent), repairing
        self.model = self.intent["model"]

    def _guard(self) -> None:
        """The intent must still be ours: a repair elsewhere (doctor, another run) may have taken it over."""
        row = self.store.promotion_intent(self.model)
        if row is None or row["id"] != self.intent["id"] or row["owner"] != self.intent["owner"]:
            raise _TakenOver(
                f"{self.model}: the {self.intent['action']} to v{self.intent['version']} was taken over by a repair "
                "elsewhere (driftguard doctor or another run), which completes it; stopped here"
            )

    def _alias(self, op: str, alias: str, version: str | None = None) -> None:
        from mlflow.exceptions import MlflowException

        _checkpoint(f"{op}:{alias}")
        self._guard()
        if op == "set":
            self.c.set_registered_model_alias(self.model, alias, str(version))
            return
        try:
            self.c.delete_registered_model_alias(self.model, alias)
        except MlflowException as exc:
            if not _missing(exc):
                raise

    def _tag(self, version: str, key: str, value: str) -> None:
        _checkpoint(f"tag:{key.removeprefix('driftguard.')}")
        self._guard()
        self.c.set_model_version_tag(self.model, version, key, value)

    def _finish(self, promotion: Mapping[str, Any] | None) -> None:
        _checkpoint("record")
        if not self.store.finish_promotion_intent(
            self.model, self.intent["id"], owner=self.intent["owner"], promotion=promotion
        ):
            logger.info("%s: the intent was finished by someone else meanwhile", self.model)

    def known_states(self) -> set[tuple[str | None, str | None]]:
        """(@champion, @previous_champion) pairs this move passes through, in its write order."""
        new, old, prev = self.intent["version"], self.intent["champion_before"], self.intent["previous_before"]
        if self.intent["action"] == "rollback":  # delete @previous_champion, then @champion = previous
            return {(old, prev), (old, None), (new, None)}
        states = {(old, prev), (new, prev), (new, old)}  # @champion = new, then @previous_champion = old
        if prev == new:  # @previous_champion on the new version is deleted first
            states |= {(old, None), (new, None)}
        return states

    def run(self) -> RepairResult:
        intent, model = self.intent, self.model
        action, new = intent["action"], intent["version"]
        aliases = _alias_map(self.c, model)
        state = (aliases.get(CHAMPION), aliases.get(PREVIOUS))
        if not _version_exists(self.c, model, new):
            return self._revert(state)
        if state not in self.known_states():
            self._finish(None)
            msg = (
                f"{_describe(intent)}: the aliases were moved by someone else since (@champion "
                f"{state[0] and 'v' + state[0]}, @previous_champion {state[1] and 'v' + state[1]}); left them alone "
                "and dropped the intent"
            )
            logger.error("%s", msg)
            return RepairResult(model, action, "abandoned", msg)
        if action == "rollback":
            self._rollback(state)
        else:
            self._promote(state, aliases)
        verb = "completed the interrupted" if self.repairing else "done:"
        return RepairResult(model, action, "completed", f"{verb} {_describe(intent)}")

    def _promote(self, state: tuple[str | None, str | None], aliases: Mapping[str, str]) -> None:
        intent = self.intent
        new, old = intent["version"], intent["champion_before"]
        champion, previous = state
        if previous == new:  # never let @champion and @previous_champion coincide, not even for a moment
            self._alias("delete", PREVIOUS)
            previous = None
        if champion != new:
            self._alias("set", CHAMPION, new)
        if old is not None and previous != old:
            self._alias("set", PREVIOUS, old)
        if aliases.get(CHALLENGER) == new:
            self._alias("delete", CHALLENGER)
        self._tag(new, TAG_PROMOTED_AT, intent["created_at"].isoformat())
        details: dict[str, Any] = {"aliases": {CHAMPION: new, PREVIOUS: old}, "recorded_at": _now().isoformat()}
        if self.repairing:
            details["repaired"] = True
        self._finish(
            {
                "action": intent["action"],
                "version": new,
                "previous_version": old,
                "actor": intent["actor"],
                "reason": intent["reason"],
                "details": details,
                "at": intent["at"],
            }
        )

    def _rollback(self, state: tuple[str | None, str | None]) -> None:
        intent = self.intent
        good, bad = intent["version"], intent["champion_before"]
        champion, previous = state
        if previous is not None:  # first: (bad, None) is a valid state, (good, good) would not be
            self._alias("delete", PREVIOUS)
        if champion != good:
            self._alias("set", CHAMPION, good)
        stamp = f"{intent['created_at'].isoformat()} by {intent['actor']}: {intent['reason']}"
        self._tag(bad, TAG_ROLLED_BACK, _truncate(stamp))
        details: dict[str, Any] = {"rolled_back": bad, "restored": good}
        if self.repairing:
            details["repaired"] = True
        self._finish(
            {
                "action": "rollback",
                "version": good,
                "previous_version": bad,
                "actor": intent["actor"],
                "reason": intent["reason"],
                "details": details,
                "at": intent["at"],
            }
        )

    def _revert(self, state: tuple[str | None, str | None]) -> RepairResult:
        """The target version was deleted meanwhile: put the aliases back as they were before."""
        intent, c, model = self.intent, self.c, self.model
        old = intent["champion_before"] if _version_exists(c, model, intent["champion_before"]) else None
        prev = intent["previous_before"]
        prev = prev if intent["action"] != "rollback" and _version_exists(c, model, prev) else None
        champion, previous = state
        if previous != prev and prev is None:  # @previous_champion first: never equal to @champion
            self._alias("delete", PREVIOUS)
        elif previous != prev:
            self._alias("set", PREVIOUS, prev)
        if champion != old and old is not None:
            self._alias("set", CHAMPION, old)
        self._finish(None)
        msg = (
            f"{_describe(intent)}: v{intent['version']} no longer exists; reverted to @champion "
            f"{'v' + old if old else 'none'}, @previous_champion {'v' + prev if prev else 'none'}"
        )
        logger.error("%s", msg)
        return RepairResult(model, intent["action"], "reverted", msg)


def repair(
    model: str, *, store: HistoryStore, tracking_uri: str | None = None, dry_run: bool = False
) -> RepairResult | None:
    """Finish an alias move a killed or failed process left half done (None: there was none).

    The intent record names the move; its steps are idempotent, so the repair completes it from
    whatever point it stopped at and records it in dg_promotions. If the target version was
    deleted meanwhile, the old aliases are restored instead; if someone moved the aliases since,
    they are left alone and the intent is dropped (both said loudly). Called by promote and
    rollback before they move anything, at the start of every retrain, and by `driftguard doctor`."""
    intent = store.promotion_intent(model)
    if intent is None:
        return None
    if dry_run:
        return RepairResult(model, intent["action"], "pending", f"interrupted {_describe(intent)}")
    owner = _owner()
    if not store.take_over_promotion_intent(model, intent["id"], seen_owner=intent["owner"], owner=owner):
        msg = f"{_describe(intent)}: another process is repairing it"
        return RepairResult(model, intent["action"], "in_progress", msg)
    logger.warning("%s: repairing an interrupted %s", model, _describe(intent))
    try:
        result = _Move(client(tracking_uri), store, {**intent, "owner": owner}, repairing=True).run()
    except _TakenOver as exc:
        return RepairResult(model, intent["action"], "in_progress", str(exc))
    logger.warning("%s: %s", model, result.message)
    return result


def _begin(
    c: MlflowClient,
    store: HistoryStore,
    model: str,
    *,
    action: str,
    version: str,
    champion: str | None,
    previous: str | None,
    actor: str,
    reason: str,
    at: datetime,
) -> RepairResult:
    """Record the intent, then carry the move out."""
    _checkpoint("intent")
    intent = store.begin_promotion_intent(
        model, action=action, version=version, champion_before=champion, previous_before=previous, actor=actor,
        reason=reason, at=at, owner=_owner(),
    )  # fmt: skip
    if intent is None:
        pending = store.promotion_intent(model)
        what = _describe(pending) if pending else "another alias move"
        raise ConcurrentPromotionError(
            f"{model}: {what} is in flight; nothing was moved. If no process is doing it, run "
            f"`driftguard doctor {model}` (or just retry: the next promote or rollback completes it first)"
        )
    try:
        result = _Move(c, store, intent, repairing=False).run()
    except _TakenOver as exc:  # the repair moves the aliases exactly as this process would have
        logger.warning("%s", exc)
        return RepairResult(model, action, "completed", str(exc))
    if result.outcome == "abandoned":
        raise ConcurrentPromotionError(f"{model}: @champion moved meanwhile; nothing was moved. {result.message}")
    if result.outcome != "completed":
        raise RegistryError(result.message)
    return result


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
    """Make ``version`` the champion: the LAST step of a promotion, guarded and crash-safe.

    ``at`` is the data time the decision was made for (a backfill's or backtest's interval end);
    the retrain policy's cooldown compares against it. Default: now.

    First repairs an interrupted alias move of the model (:func:`repair`). Re-reads @champion;
    if it is not ``expected_champion`` (the version the gate compared against, None for a first
    champion) it raises ConcurrentPromotionError and moves nothing. Then records an intent and
    moves: ``version`` -> @champion, then old champion -> @previous_champion (a @previous_champion
    on ``version`` itself is deleted first), so @champion and @previous_champion never coincide;
    @challenger is removed if it pointed at ``version``. Recorded in the store as "promote" (or
    "first_champion") in the transaction that clears the intent. If ``version`` already is the
    champion (a retried task) nothing moves and the store records it at most once."""
    c = client(tracking_uri)
    version = str(version)
    expected = None if expected_champion is None else str(expected_champion)
    c.get_model_version(model, version)  # fails loudly for an unknown version
    repair(model, store=store, tracking_uri=tracking_uri)
    aliases = _alias_map(c, model)
    current, previous = aliases.get(CHAMPION), aliases.get(PREVIOUS)
    if current == version:
        logger.info("%s: v%s already is @champion: nothing to move", model, version)
        _record(store, model, "promote" if previous else "first_champion", version, previous, actor, reason, at)
        return
    if current != expected:
        raise ConcurrentPromotionError(
            f"{model}: @champion is v{current} but the gate compared v{version} against "
            f"{'v' + expected if expected else 'no champion'}; someone else promoted meanwhile. Nothing was "
            "moved: rerun the gate against the new champion."
        )
    action = "promote" if current is not None else "first_champion"
    _begin(
        c, store, model, action=action, version=version, champion=current, previous=previous, actor=actor,
        reason=reason, at=at or _now(),
    )  # fmt: skip
    logger.info("%s: %s v%s -> @champion (was %s) by %s: %s", model, action, version, current, actor, reason)


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
    logger.info("%s: v%s is @challenger (not promoted by the gate, kept for inspection)", model, version)


def rollback(
    model: str, *, store: HistoryStore, actor: str, reason: str, tracking_uri: str | None = None
) -> tuple[str, str]:
    """Put @previous_champion back as @champion; returns (from_version, to_version).

    First repairs an interrupted alias move. Afterwards @previous_champion is removed (a second
    rollback must not flip back to the bad version) and the rolled-back version is tagged
    ``driftguard.rolled_back`` with the reason. Crash-safe like :func:`promote`: an intent first,
    then @previous_champion deleted, then @champion moved. Recorded in the store as "rollback".
    RegistryError, with nothing changed, if there is no champion, no previous champion, or the
    previous champion is the champion itself."""
    c = client(tracking_uri)
    repair(model, store=store, tracking_uri=tracking_uri)
    aliases = _alias_map(c, model)
    current, previous = aliases.get(CHAMPION), aliases.get(PREVIOUS)
    if current is None:
        raise RegistryError(f"{model}: cannot roll back: the model has no @champion")
    if previous is None:
        raise RegistryError(
            f"{model}: cannot roll back v{current}: no @previous_champion to return to "
            "(only one version was ever promoted, or a rollback already used it)"
        )
    if previous == current:
        raise RegistryError(
            f"{model}: cannot roll back v{current}: @previous_champion is v{previous}, the same version as "
            "@champion (left by an interrupted alias move), so there is nothing to return to. Nothing was changed. "
            f"Run `driftguard doctor {model}` to restore @previous_champion from the promotion history, or promote "
            "the version to return to explicitly."
        )
    _begin(
        c, store, model, action="rollback", version=previous, champion=current, previous=previous, actor=actor,
        reason=reason, at=_now(),
    )  # fmt: skip
    logger.warning("%s: rolled back @champion v%s -> v%s by %s: %s", model, current, previous, actor, reason)
    return current, previous


def reconcile(
    model: str,
    *,
    store: HistoryStore,
    tracking_uri: str | None = None,
    dry_run: bool = False,
    actor: str = "driftguard-doctor",
) -> list[str]:
    """Make the aliases valid and dg_promotions agree with them; returns what was (or, with
    ``dry_run``, would be) done. Run after :func:`repair` (no intent pending).

    - @previous_champion == @champion (an interrupted move of an older Driftguard, or by hand):
      @previous_champion is restored from the last "promote" on record, else deleted.
    - The last alias-moving event on record names another champion than MLflow (aliases moved
      outside Driftguard, or a record lost): a "reconcile" event records what MLflow says."""
    c = client(tracking_uri)
    aliases = _alias_map(c, model)
    champion, previous = aliases.get(CHAMPION), aliases.get(PREVIOUS)
    last = store.latest_promotion(model, ALIAS_ACTIONS)
    done: list[str] = []
    if champion is not None and previous == champion:
        on_record = last is not None and last["action"] == "promote" and last["version"] == champion
        target = last["previous_version"] if on_record else None
        if target and target != champion and _version_exists(c, model, target):
            done.append(f"@previous_champion was @champion v{champion} too: set to v{target}, from dg_promotions")
            if not dry_run:
                c.set_registered_model_alias(model, PREVIOUS, target)
            previous = target
        else:
            done.append(f"@previous_champion was @champion v{champion} too: deleted (no other rollback target known)")
            if not dry_run:
                c.delete_registered_model_alias(model, PREVIOUS)
            previous = None
    recorded = None if last is None else last["version"]
    if (champion is not None or last is not None) and recorded != champion:
        said = f"v{recorded}" if recorded else "no champion"
        done.append(
            f"dg_promotions said {said} but MLflow @champion is {'v' + champion if champion else 'none'}: "
            "recorded a 'reconcile' event"
        )
        if not dry_run:
            store.record_promotion(
                model,
                action="reconcile",
                version=champion,
                previous_version=previous,
                actor=actor,
                reason=f"MLflow aliases disagreed with the promotion history (it said {said})",
                details={"aliases": aliases, "history_said": recorded},
                at=_now(),
            )
    for line in done:
        logger.warning("%s: %s%s", model, "(dry run) " if dry_run else "", line)
    return done


def training_window(
    model: str, version: str | int, *, tracking_uri: str | None = None
) -> tuple[datetime, datetime] | None:
    """[start, end) of the rows a registered version was fitted on, from its run's tags:
    ``driftguard.window_start`` to ``driftguard.train_end`` (a run logged before that tag: to
    ``driftguard.data_as_of``, its whole window, validation and holdout included). None when the
    run carries neither (a model not trained by Driftguard)."""
    c = client(tracking_uri)
    run_id = c.get_model_version(model, str(version)).run_id
    if not run_id:
        return None
    tags = c.get_run(run_id).data.tags
    start, end = (
        tags.get("driftguard.window_start"),
        tags.get("driftguard.train_end") or tags.get("driftguard.data_as_of"),
    )
    if not (start and end):
        return None
    return datetime.fromisoformat(start), datetime.fromisoformat(end)


def load_version(model: str, version: str | int, *, tracking_uri: str | None = None) -> Any:
    """The pyfunc model of one registered version, by number (a shadowing challenger)."""
    import mlflow.pyfunc

    client(tracking_uri)  # configures the URIs
    return mlflow.pyfunc.load_model(f"models:/{model}/{version}")


def load_champion(model: str, *, tracking_uri: str | None = None) -> tuple[Any, str] | None:
    """(pyfunc model, version) of @champion, or None when there is none.

    Loaded by version number, not by alias, so the model and the version returned always agree
    even if the alias moves during the load."""
    import mlflow.pyfunc

    mv = champion_version(model, tracking_uri=tracking_uri)  # configures the URIs as well
    if mv is None:
        return None
    return mlflow.pyfunc.load_model(f"models:/{model}/{mv.version}"), str(mv.version)
