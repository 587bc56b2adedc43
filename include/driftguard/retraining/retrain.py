"""One retraining run: train a candidate, gate it against @champion, register, promote or not.

The steps mirror the retraining DAG's tasks; `run_retraining` chains them in-process for the
backtest. A run is keyed by (model, decided interval): the store's claim makes a second run for
the same interval do nothing new, and MLflow registration is idempotent per training run.

While a step runs, a heartbeat thread refreshes the claim every HEARTBEAT_EVERY; a claim whose
heartbeat stopped for CLAIM_STALE_AFTER lost its worker (a kill -9, a lost machine) and the next
request for the interval takes it over. Every retrain starts by recovering what a dead one left
behind (driftguard.retraining.recovery): an interrupted alias move, MLflow runs left RUNNING.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driftguard import mlflow_setup
from driftguard.settings import Settings, get_settings
from driftguard.step_results import RETRAIN_OUTCOMES, GateVerdict
from driftguard.workdir import WorkDir

if TYPE_CHECKING:  # pragma: no cover
    from driftguard.contract import ModelContract

log = logging.getLogger(__name__)

ACTOR = "driftguard-retraining"


class RetrainError(RuntimeError):
    """A retraining step cannot go on; the message names the model, interval and cause."""


@dataclass(frozen=True)
class RetrainContext:
    contract: ModelContract
    start: datetime  # the decided interval (its end is the training cut-off, `as_of`)
    end: datetime
    settings: Settings
    trigger: dict[str, Any]

    @classmethod
    def create(
        cls,
        model: str | ModelContract,
        start: datetime,
        end: datetime,
        *,
        trigger: dict[str, Any] | None = None,
        settings: Settings | None = None,
    ) -> RetrainContext:
        from driftguard.contract import model_contract  # pydantic: at run time, never at DAG parse

        settings = settings or get_settings()
        return cls(model_contract(model, settings.models_dir), start, end, settings, dict(trigger or {}))

    @property
    def name(self) -> str:
        return self.contract.name

    @property
    def as_of(self) -> datetime:
        return self.end

    @property
    def label(self) -> str:
        return f"retrain {self.name} as of {self.end.isoformat()}"

    @property
    def work_dir(self) -> Path:
        from driftguard.reporting import reports

        return self.settings.home / "work" / f"{self.name}-retrain" / reports.run_dir_name(self.start, self.end)

    @property
    def work(self) -> WorkDir:
        """The run's work folder: the candidate, its holdout and the verdict between tasks."""
        return WorkDir(self.work_dir, self.label, RetrainError, "Clear and rerun the whole DAG run.")

    def store(self) -> Any:
        from driftguard.store import HistoryStore

        return HistoryStore(self.settings.history_url)


# A live retrain step refreshes its claim every HEARTBEAT_EVERY; a "running" claim whose heartbeat
# stopped for CLAIM_STALE_AFTER lost its worker without the failure callback releasing it (a killed
# process, a lost machine), so the next request takes it over. The window also covers the gap
# between two Airflow tasks of one run (queued, starting up), which has no heartbeat.
HEARTBEAT_EVERY = timedelta(seconds=30)
CLAIM_STALE_AFTER = timedelta(minutes=5)


@contextmanager
def heartbeat(ctx: RetrainContext, *, every: timedelta | None = None) -> Iterator[None]:
    """Refresh the interval's running claim now and every ``every`` (default HEARTBEAT_EVERY)
    until the block ends, from a daemon thread; a failed beat is logged, never raised."""
    store, stop = ctx.store(), threading.Event()
    period = (every or HEARTBEAT_EVERY).total_seconds()

    def beat() -> None:
        while True:
            try:
                store.heartbeat_retrain(ctx.name, ctx.start, ctx.end)
            except Exception as exc:  # a missed beat only makes the claim look older
                log.warning("%s: claim heartbeat failed: %s: %s", ctx.label, type(exc).__name__, exc)
            if stop.wait(period):
                return

    thread = threading.Thread(target=beat, name=f"driftguard-heartbeat-{ctx.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def _beating(step: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Run a retrain step under the claim's heartbeat."""

    @functools.wraps(step)
    def run(ctx: RetrainContext, *args: Any, **kwargs: Any) -> dict[str, Any]:
        with heartbeat(ctx):
            return step(ctx, *args, **kwargs)

    return run


def recover(ctx: RetrainContext) -> list[Any]:
    """Before claiming: finish an alias move a dead run left half done, close the model's MLflow
    runs left RUNNING, report stale claims. Best effort: a failure is logged, and promote and
    rollback repair again before they move anything."""
    from driftguard.retraining import recovery

    try:
        found = recovery.recover_model(
            ctx.name, store=ctx.store(), tracking_uri=ctx.settings.mlflow_tracking_uri,
            stale_after=CLAIM_STALE_AFTER, registered_model=ctx.contract.registered_model_name,
        )  # fmt: skip
    except Exception as exc:
        log.error("%s: recovery before the retrain failed: %s: %s", ctx.label, type(exc).__name__, exc)
        return []
    for f in found:
        (log.info if f.fixed else log.warning)("%s: recovery: %s: %s", ctx.label, f.kind, f.message)
    return found


def claim(ctx: RetrainContext) -> dict[str, Any]:
    """Claim the interval; a retrain already decided (or running) for it means: do nothing new.
    Recovers what a dead retrain of the model left behind first (:func:`recover`). When an earlier
    attempt for the interval promoted its candidate and died before recording the outcome (the
    alias move completed, by itself or by the recovery), the outcome is recorded now and nothing
    is trained, registered or gated again (:func:`_promoted_earlier`)."""
    recover(ctx)
    earlier = _promoted_earlier(ctx)  # before claiming: a failure here leaves no claim behind
    existing = ctx.store().claim_retrain(ctx.name, ctx.start, ctx.end, stale_after=CLAIM_STALE_AFTER)
    if existing is not None:
        log.info(
            "%s: already %s (candidate v%s); nothing new to do",
            ctx.label,
            existing.get("status"),
            existing.get("candidate_version"),
        )
        return {"proceed": False, "status": existing.get("status"), "version": existing.get("candidate_version")}
    if earlier is not None:
        try:
            return _record_earlier_promotion(ctx, *earlier)
        except Exception as exc:
            fail(ctx, f"{type(exc).__name__}: {exc}")
            raise
    log.info("%s: claimed; trigger: %s", ctx.label, ctx.trigger.get("summary") or ctx.trigger or "manual")
    return {"proceed": True}


def _interval_tag(ctx: RetrainContext) -> str:
    """The ``driftguard.interval`` tag register puts on the interval's candidate version."""
    return f"{ctx.start.isoformat()}/{ctx.end.isoformat()}"


def _promoted_earlier(ctx: RetrainContext) -> tuple[str, dict[str, Any] | None] | None:
    """(version, its decision record) when @champion is this interval's candidate, promoted by
    the gate, and no alias move is pending: an earlier attempt promoted it. Else None."""
    from driftguard.retraining import registry

    name, uri = ctx.contract.registered_model_name, ctx.settings.mlflow_tracking_uri
    mv = registry.champion_version(name, tracking_uri=uri)
    if mv is None or (mv.tags or {}).get("driftguard.interval") != _interval_tag(ctx):
        return None
    if (mv.tags or {}).get(registry.TAG_VERDICT) != "promote" or ctx.store().promotion_intent(name) is not None:
        return None
    return str(mv.version), registry.decision(name, mv.version, tracking_uri=uri)


def _record_earlier_promotion(ctx: RetrainContext, version: str, record: dict[str, Any] | None) -> dict[str, Any]:
    """Record the outcome an earlier attempt could not: the interval's candidate is @champion."""
    from driftguard.retraining import registry

    verdict = (record or {}).get("gate") or {"outcome": "promote", "summary": "promoted by an earlier attempt"}
    summary = (record or {}).get("summary") or verdict.get("summary", "")
    last = ctx.store().latest_promotion(ctx.contract.registered_model_name, registry.ALIAS_ACTIONS)
    champion = last["previous_version"] if last is not None and last["version"] == version else None
    log.warning(
        "%s: v%s, this interval's candidate, already is @champion: an earlier attempt promoted it and died "
        "before recording the outcome; recording it now, nothing is trained or gated again",
        ctx.label,
        version,
    )
    ctx.store().finish_retrain(
        ctx.name, ctx.start, ctx.end, status="promoted", candidate_version=version, verdict=verdict
    )
    shadow_handover(ctx, status="promoted", version=version, verdict=verdict, champion=champion)
    _alert(ctx, "promotion", "info", f"v{version} promoted to @champion", summary, state=str(version))
    ctx.work.remove()
    return {"proceed": False, "status": "promoted", "version": version}


def quality_failed_intervals(ctx: RetrainContext) -> list[tuple[datetime, datetime]]:
    """Intervals whose critical quality checks failed: their rows never feed a retrain."""
    return [
        (r.interval_start, r.interval_end)
        for r in ctx.store().runs(ctx.name)
        if not r.quality_passed and r.status != "no_data"
    ]


def _evidence_request(ctx: RetrainContext) -> int | None:
    """Holdout rows the last gate of this model asked for, when it could not tell (insufficient
    evidence): the next candidate's holdout is sized from that gate's variance and margin."""
    for row in reversed(ctx.store().retrains(ctx.name)):
        if row.get("interval_end") is not None and row["interval_end"] >= ctx.end:
            continue
        if row.get("status") != "insufficient_evidence":
            return None
        for check in (row.get("verdict") or {}).get("checks", []):
            if check.get("name") == "significance":
                needed = (check.get("numbers") or {}).get("rows_needed")
                return int(needed) if needed else None
        return None
    return None


def training_plan(ctx: RetrainContext) -> dict[str, Any]:
    """Where the candidate's data starts and ends, and why: the first champion trains on the
    contract's `reference` period when one is given; after a change point (the trigger's) on the
    rows since the change; else on the sliding window."""
    from driftguard.retraining import registry, training

    contract, as_of = ctx.contract, ctx.as_of
    ref = contract.reference
    first = registry.champion_version(contract.registered_model_name, tracking_uri=ctx.settings.mlflow_tracking_uri)
    if first is None and ref.start is not None and ref.start < as_of:
        end = min(as_of, ref.end) if ref.end is not None else as_of
        why = "first champion: the contract's reference period"
        return {"start": ref.start, "as_of": end, "why": why, "since_change": False}
    change = ctx.trigger.get("change_point")
    change_at = datetime.fromisoformat(change) if isinstance(change, str) else None
    start, why = training.training_start(contract, as_of, change_point=change_at)
    return {"start": start, "as_of": as_of, "why": why, "since_change": change_at is not None and start == change_at}


@_beating
def train(ctx: RetrainContext) -> dict[str, Any]:
    from driftguard.retraining import servability, training

    excluded = quality_failed_intervals(ctx)
    if excluded:
        log.info("%s: excluding %d intervals that failed critical quality checks", ctx.label, len(excluded))
    plan = training_plan(ctx)
    evidence = _evidence_request(ctx)
    log.info(
        "%s: training data %s..%s (%s)%s",
        ctx.label,
        plan["start"].isoformat(),
        plan["as_of"].isoformat(),
        plan["why"],
        f"; holdout sized to {evidence:,} rows, as the last gate asked" if evidence else "",
    )
    try:
        data = training.load_training_data(
            ctx.contract,
            as_of=plan["as_of"],
            exclude_intervals=excluded,
            start=plan["start"],
            min_holdout_rows=evidence,
        )
    except training.InsufficientData as exc:
        # An outcome, not a failure: recorded, the interval is done, the next one may try again.
        log.warning("%s: INSUFFICIENT DATA: %s", ctx.label, exc)
        verdict = {"outcome": "insufficient_data", "summary": f"insufficient data: {exc}", "why": plan["why"]}
        ctx.store().finish_retrain(ctx.name, ctx.start, ctx.end, status="insufficient_data", verdict=verdict)
        return {"status": "insufficient_data", "summary": verdict["summary"]}
    candidate = training.train_candidate(
        ctx.contract, data, tracking_uri=ctx.settings.mlflow_tracking_uri, trigger=ctx.trigger
    )
    ctx.work.write_frame("holdout.parquet", data.split.holdout)
    # The batch evaluate times predict on: fixed size and seeded, so the same data gives the same batch.
    sample = servability.serving_sample(data.split.train, ctx.contract.feature_names, seed=ctx.contract.training.seed)
    ctx.work.write_frame(SERVING_SAMPLE, sample)
    out = {
        "run_id": candidate.run_id,
        "model_uri": candidate.model_uri,
        "metrics": candidate.metrics,
        "fingerprint": candidate.fingerprint,
        "excluded_intervals": [[a.isoformat(), b.isoformat()] for a, b in excluded],
        # Read by the shadowing guard of the retrain policy, when this candidate shadows.
        "window_start": plan["start"].isoformat(),
        "since_change": plan["since_change"],
    }
    ctx.work.write_json("candidate.json", out)
    metric = ctx.contract.primary_metric
    log.info(
        "%s: candidate run %s, holdout %s %.4f on %s rows",
        ctx.label,
        candidate.run_id,
        metric,
        candidate.metric(metric),
        f"{len(data.split.holdout):,}",
    )
    return {"status": "trained", "run_id": candidate.run_id, f"holdout_{metric}": candidate.metric(metric)}


SERVING_SAMPLE = "serving_sample.parquet"
"""In the work dir: the fixed-size batch (resampled from the train split) servability times."""
PAIRED_HOLDOUT = "paired_holdout.parquet"
"""In the work dir: label, champion and candidate scores of the gate's holdout (driftguard.retraining.shadow)."""


@_beating
def register(ctx: RetrainContext) -> dict[str, Any]:
    from driftguard.retraining import registry

    cand = ctx.work.read_json("candidate.json")
    mv = registry.register_candidate(
        ctx.contract.registered_model_name,
        cand["run_id"],
        tracking_uri=ctx.settings.mlflow_tracking_uri,
        tags={"driftguard.interval": _interval_tag(ctx)},
        description=registry.model_description(ctx.name, ctx.contract.description, ctx.contract.owners),
    )
    ctx.work.write_json("registered.json", {"version": str(mv.version)})
    log.info("%s: registered as %s v%s", ctx.label, ctx.contract.registered_model_name, mv.version)
    return {"version": str(mv.version)}


def _champion_scores(ctx: RetrainContext, holdout: Any) -> tuple[str | None, Any]:
    """(@champion version, its holdout scores). An unloadable champion is said loudly and, when the
    contract allows, rolled back to @previous_champion before the comparison. An unreachable store
    (mlflow_setup.is_transient) says nothing about the champion: no alert, no rollback, the step
    raises ServabilityUnavailable and is retried."""
    from driftguard.retraining import registry, servability, training

    name, uri = ctx.contract.registered_model_name, ctx.settings.mlflow_tracking_uri
    for attempt in (1, 2):
        mv = registry.champion_version(name, tracking_uri=uri)
        if mv is None:
            return None, None
        try:
            loaded = registry.load_champion(name, tracking_uri=uri)
            if loaded is None:
                return None, None
            model, version = loaded
            return version, training.score(model, holdout[ctx.contract.feature_names], ctx.contract.task)
        except Exception as exc:  # any other load or predict failure makes the champion unservable
            if mlflow_setup.is_transient(exc):
                raise servability.ServabilityUnavailable(
                    f"{ctx.label}: champion v{mv.version} could not be loaded, the store is unreachable "
                    f"({type(exc).__name__}: {exc}); no verdict, no rollback: the step is retried"
                ) from exc
            log.error("%s: CHAMPION v%s IS NOT SERVABLE: %s", ctx.label, mv.version, exc)
            _alert(
                ctx,
                "unservable",
                "critical",
                f"champion v{mv.version} cannot be loaded or scored",
                f"{type(exc).__name__}: {exc}",
                state=str(mv.version),
            )
            if attempt == 2 or not ctx.contract.promotion.rollback_on_unservable:
                raise RetrainError(f"{ctx.label}: champion v{mv.version} is not servable: {exc}") from exc
            frm, to = registry.rollback(
                name,
                store=ctx.store(),
                actor=ACTOR,
                reason=f"champion v{mv.version} not servable: {exc}",
                tracking_uri=uri,
            )
            log.error("%s: rolled @champion back from v%s to v%s", ctx.label, frm, to)
    return None, None


@_beating
def evaluate(ctx: RetrainContext) -> dict[str, Any]:
    """Score champion and challenger on the same out-of-time holdout rows; time both in a fresh
    process on the serving sample; run the gate.

    Infrastructure trouble while checking the candidate (a store unreachable, a machine too busy
    to finish the fresh-process check) raises ``servability.ServabilityUnavailable`` before
    anything is recorded: the step fails, the claim is released (``fail``) and a retry or the next
    run evaluates again. Only a defect of the model is a rejection (docs/gate.md, servability)."""

    from driftguard.retraining import gate, registry, servability

    contract = ctx.contract
    cand, reg = ctx.work.read_json("candidate.json"), ctx.work.read_json("registered.json")
    holdout = ctx.work.read_frame("holdout.parquet")
    label = contract.source.labels.column if contract.source.labels else None
    if label is None:
        raise RetrainError(f"{ctx.label}: the contract has no labels; a candidate cannot be evaluated")
    version = reg["version"]
    model_uri = f"models:/{contract.registered_model_name}/{version}"
    # The champion first: an unservable one is rolled back before it is timed and compared.
    champion_version, champion_scores = _champion_scores(ctx, holdout)
    servable = servability.check_servable(
        model_uri,
        _serving_sample(ctx, holdout),
        tracking_uri=ctx.settings.mlflow_tracking_uri,
        champion_uri=f"models:/{contract.registered_model_name}/{champion_version}" if champion_version else None,
    )
    challenger_scores, challenger_error = _challenger_scores(ctx, model_uri if servable.ok else None, holdout)
    seasonal = None
    if challenger_scores is not None and champion_version is not None and contract.seasonality is not None:
        seasonal = seasonal_rows(ctx, cand["fingerprint"], champion_version, model_uri)
    verdict = gate.evaluate_gate(
        contract,
        y_true=holdout[label].to_numpy(),
        champion_scores=champion_scores,
        challenger_scores=challenger_scores,
        segments={c: holdout[c].to_numpy() for c in contract.segment_features},
        servability=servable,
        challenger_error=challenger_error,
        seasonal=seasonal,
    )
    if champion_scores is not None and challenger_scores is not None:
        from driftguard.retraining import shadow

        # The gate's paired holdout rows: a candidate it cannot judge starts shadowing with them.
        paired = shadow.evidence_frame(holdout, contract, champion=champion_scores, challenger=challenger_scores)
        ctx.work.write_frame(PAIRED_HOLDOUT, paired)
    registry.record_verdict(
        contract.registered_model_name,
        version,
        verdict,
        trigger=ctx.trigger,
        fingerprint=cand["fingerprint"],
        tracking_uri=ctx.settings.mlflow_tracking_uri,
    )
    out = GateVerdict(
        version,
        champion_version,
        verdict.promote,
        verdict.summary(),
        # Stored in dg_retrains with the verdict: what the candidate page links and names.
        {**verdict.to_dict(), "candidate": candidate_facts(ctx, cand["run_id"], version, champion_version)},
    )
    ctx.work.write_result(out)
    log.info(
        "%s: v%s vs champion %s -> %s",
        ctx.label,
        version,
        f"v{champion_version}" if champion_version else "(none)",
        verdict.summary(),
    )
    return out.xcom()


def candidate_facts(ctx: RetrainContext, run_id: str, version: str, champion_version: str | None) -> dict[str, Any]:
    """Who the candidate is, for the champion-vs-challenger page (driftguard.ui.candidate_page): its
    MLflow run and experiment (the run link needs both), registered model, version, the champion
    it was compared with and the trigger in one line."""
    from driftguard.retraining import registry, training

    return {
        "registered_model": ctx.contract.registered_model_name,
        "version": str(version),
        "champion_version": champion_version,
        "run_id": run_id,
        "experiment_id": registry.experiment_of(run_id, tracking_uri=ctx.settings.mlflow_tracking_uri),
        "trigger": training.trigger_summary(ctx.trigger)[: training.MAX_TAG_CHARS],
    }


def seasonal_rows(ctx: RetrainContext, fingerprint: dict[str, Any], champion_version: str, model_uri: str) -> Any:
    """The gate's seasonal guardrail evidence (:class:`driftguard.retraining.gate.SeasonalRows`): the previous
    cycle's labelled rows of the coming phase (:func:`driftguard.retraining.gate.seasonal_phase`, ending at
    the holdout's end), read like the training data (same source, pushdown and cleaning, minus the
    quality-failed intervals) and scored by both models, with each model's training window: the
    challenger's from its split, the champion's from its run's tags. Nothing is read when the
    phase lies wholly in a model's training window (the usual case: the default seasonal window
    covers a full period); the gate then records why."""
    from dataclasses import replace

    import mlflow.pyfunc

    from driftguard.retraining import gate, registry, training

    contract, uri = ctx.contract, ctx.settings.mlflow_tracking_uri
    phase = gate.seasonal_phase(contract, ctx.as_of)
    if phase is None:
        return None
    start, train_end = fingerprint.get("window", {}).get("start"), fingerprint.get("bounds", {}).get("train", {})
    challenger_window = (
        (datetime.fromisoformat(start), datetime.fromisoformat(train_end["end"]))
        if start and train_end.get("end")
        else None
    )
    champion_window = registry.training_window(contract.registered_model_name, champion_version, tracking_uri=uri)
    rows = gate.SeasonalRows(*phase, challenger_window=challenger_window, champion_window=champion_window)
    why = gate.seasonal_in_sample(phase, challenger_window, champion_window)
    if why is not None:
        log.info("%s: seasonal guardrail not available: %s", ctx.label, why)
        return rows
    frame = training.load_labelled_rows(
        contract, *phase, as_of=ctx.as_of, exclude_intervals=quality_failed_intervals(ctx)
    )
    label = contract.source.labels.column  # type: ignore[union-attr]  # evaluate checked it
    features = frame[contract.feature_names]
    scored: dict[str, Any] = {"champion_scores": [], "challenger_scores": []}
    if len(frame):
        champion = registry.load_version(contract.registered_model_name, champion_version, tracking_uri=uri)
        scored["champion_scores"] = training.score(champion, features, contract.task)
        scored["challenger_scores"] = training.score(mlflow.pyfunc.load_model(model_uri), features, contract.task)
    log.info(
        "%s: seasonal guardrail: %d labelled rows of %s..%s (same phase last cycle)",
        ctx.label,
        len(frame),
        phase[0].isoformat(),
        phase[1].isoformat(),
    )
    return replace(rows, times=frame[contract.source.timestamp_column], y_true=frame[label], **scored)


def _serving_sample(ctx: RetrainContext, holdout: Any) -> Any:
    """The train step's serving sample; a work dir written before there was one gets the same
    kind of batch resampled from the holdout."""
    from driftguard.retraining import servability

    if ctx.work.exists(SERVING_SAMPLE):
        return ctx.work.read_frame(SERVING_SAMPLE)
    log.warning("%s: %s missing in %s; resampling the holdout instead", ctx.label, SERVING_SAMPLE, ctx.work_dir)
    return servability.serving_sample(holdout, ctx.contract.feature_names, seed=ctx.contract.training.seed)


def _challenger_scores(ctx: RetrainContext, model_uri: str | None, holdout: Any) -> tuple[Any, str | None]:
    """(scores of the registered version on the holdout, None), or (None, the error) when it
    cannot be loaded or scored here: the gate then fails ``loads_and_scores`` with that error
    and judges nothing else. None for ``model_uri`` (it already failed in the fresh process)
    skips loading it again. An unreachable store (:func:`driftguard.mlflow_setup.is_transient`)
    is no verdict: it raises :class:`~driftguard.retraining.servability.ServabilityUnavailable`."""
    from driftguard.retraining import servability, training

    if model_uri is None:
        return None, None
    try:
        import mlflow.pyfunc

        model = mlflow.pyfunc.load_model(model_uri)
        return training.score(model, holdout[ctx.contract.feature_names], ctx.contract.task), None
    except Exception as exc:  # any other load or predict failure: the challenger is not servable
        if mlflow_setup.is_transient(exc):
            raise servability.ServabilityUnavailable(
                f"{ctx.label}: candidate {model_uri} cannot be loaded here, a store is unreachable: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        log.error("%s: candidate %s cannot be loaded or scored: %s: %s", ctx.label, model_uri, type(exc).__name__, exc)
        return None, f"{type(exc).__name__}: {exc}"


@_beating
def promote(ctx: RetrainContext, *, approved_by: str | None = None) -> dict[str, Any]:
    """The last step: move the aliases (guarded) or keep the rejected candidate as @challenger."""
    from driftguard.retraining import registry

    v = ctx.work.read_result(GateVerdict)
    name, uri, store = ctx.contract.registered_model_name, ctx.settings.mlflow_tracking_uri, ctx.store()
    version = v.version
    if not v.promote:
        registry.mark_challenger(name, version, tracking_uri=uri)
        # Insufficient evidence is not a rejection: it starts no cooldown (store.UNDECIDED_RETRAIN_STATUSES).
        status = "insufficient_evidence" if v.outcome == "insufficient_evidence" else "rejected"
        log.info("%s: v%s %s, kept as @challenger. %s", ctx.label, version, status, v.summary)
    else:
        actor = approved_by or ACTOR
        try:
            registry.promote(
                name,
                version,
                expected_champion=v.champion_version,
                store=store,
                actor=actor,
                reason=v.summary,
                tracking_uri=uri,
                at=ctx.as_of,
            )
            status = "promoted"
            log.info("%s: v%s is now @champion (was %s)", ctx.label, version, v.champion_version or "none")
        except registry.ConcurrentPromotionError as exc:
            status = "aborted"
            log.error("%s: promotion aborted: %s", ctx.label, exc)
            _alert(ctx, "promotion", "warning", f"promotion of v{version} aborted", str(exc), state=str(version))
    store.finish_retrain(ctx.name, ctx.start, ctx.end, status=status, candidate_version=version, verdict=v.verdict)
    shadow_handover(ctx, status=status, version=version, verdict=v.verdict, champion=v.champion_version)
    if status == "promoted":
        _alert(ctx, "promotion", "info", f"v{version} promoted to @champion", v.summary, state=str(version))
    ctx.work.remove()
    return {"status": status, "version": version, "summary": v.summary}


def reject_unapproved(ctx: RetrainContext, *, by: str | None = None) -> dict[str, Any]:
    """A person declined the promotion in the approval step."""
    from driftguard.retraining import registry

    v = ctx.work.read_result(GateVerdict)
    registry.mark_challenger(
        ctx.contract.registered_model_name, v.version, tracking_uri=ctx.settings.mlflow_tracking_uri
    )
    ctx.store().finish_retrain(
        ctx.name, ctx.start, ctx.end, status="declined", candidate_version=v.version, verdict=v.verdict
    )
    shadow_handover(ctx, status="declined", version=v.version, verdict=v.verdict, champion=v.champion_version)
    log.info("%s: promotion of v%s declined by %s", ctx.label, v.version, by or "a reviewer")
    return {"status": "declined", "version": v.version}


def shadow_handover(
    ctx: RetrainContext, *, status: str, version: str, verdict: dict[str, Any], champion: str | None
) -> None:
    """Shadowing follows the retrains (driftguard.retraining.shadow, one challenger at a time): an open
    session of another version ends, `stopped` when this candidate was promoted (the champion
    changed) and `replaced` when it became @challenger; a candidate whose gate could not tell
    (`insufficient_evidence`) opens its own session, the gate's holdout rows its first evidence.
    A `rejected` candidate was conclusively worse and never shadows. Never fails the retrain (its
    outcome is recorded already): a problem is logged, and the candidate then does not shadow."""

    from driftguard.retraining import shadow
    from driftguard.store import ShadowEvidence, ShadowRecord

    if status not in ("promoted", "rejected", "insufficient_evidence", "declined"):
        return  # aborted: @challenger did not move, and the champion check ends a stale session
    try:
        store = ctx.store()
        latest: dict[str, ShadowRecord] = {}
        for record in store.shadow_records(ctx.name):
            latest[record.challenger_version] = record
        ending = shadow.STOPPED if status == "promoted" else shadow.REPLACED
        for other, last in latest.items():
            if other == str(version) or last.outcome in shadow.TERMINAL:
                continue
            why = "was promoted: the champion changed" if status == "promoted" else f"is the new @challenger ({status})"
            reason = f"retrain as of {ctx.as_of.isoformat()}: v{version} {why}"
            store.record_shadow(
                ShadowRecord(
                    ctx.name, other, last.champion_version, shadow.END, ctx.start, ctx.end, ending,
                    windows=last.windows, cumulative_rows=last.cumulative_rows, metric_name=last.metric_name,
                    champion_metric=last.champion_metric, challenger_metric=last.challenger_metric,
                    ci_low=last.ci_low, ci_high=last.ci_high, bound=last.bound, rows_needed=last.rows_needed,
                    reason=reason,
                )
            )  # fmt: skip
            log.info("%s: shadowing of v%s ended (%s): %s", ctx.label, other, ending, reason)
        if status != "insufficient_evidence":
            return
        if not ctx.contract.promotion.shadow.enabled:
            log.info("%s: v%s does not shadow: promotion.shadow.enabled is off", ctx.label, version)
            return
        if champion is None or not ctx.work.exists(PAIRED_HOLDOUT):
            log.warning("%s: v%s cannot shadow: no paired holdout scores in %s", ctx.label, version, ctx.work_dir)
            return
        frame = ctx.work.read_frame(PAIRED_HOLDOUT)
        ShadowEvidence.under(ctx.settings.home).write(ctx.name, str(version), shadow.HOLDOUT, frame)
        trained = ctx.work.read_json("candidate.json") if ctx.work.exists("candidate.json") else {}
        checks = {c.get("name"): c for c in verdict.get("checks", [])}
        sig = checks.get("significance") or {}
        numbers = sig.get("numbers") or {}
        metrics = (checks.get("primary_metric_threshold") or {}).get("numbers") or {}
        store.record_shadow(
            ShadowRecord(
                ctx.name, str(version), str(champion), shadow.HOLDOUT, ctx.start, ctx.end, shadow.SHADOWING,
                labelled_rows=len(frame), cumulative_rows=len(frame), metric_name=numbers.get("metric"),
                champion_metric=metrics.get("champion"), challenger_metric=metrics.get("challenger"),
                ci_low=numbers.get("ci_low"), ci_high=numbers.get("ci_high"), bound=numbers.get("bound"),
                rows_needed=numbers.get("rows_needed"),
                reason=f"opened at registration, gate holdout of {len(frame):,} rows: {sig.get('detail', '')}",
                details={key: trained.get(key) for key in ("window_start", "since_change")},
            )
        )  # fmt: skip
        log.info("%s: v%s shadows the next windows beside champion v%s", ctx.label, version, champion)
    except Exception:
        log.exception("%s: shadow handover of v%s (%s) failed; it does not shadow", ctx.label, version, status)


OUTCOMES = RETRAIN_OUTCOMES
"""How a retraining run can end (step_results.RETRAIN_OUTCOMES, which the DAG reads at parse time)."""


def outcome_task_id(results: Sequence[Mapping[str, Any] | None]) -> str | None:
    """``outcome_<status>`` of the first step result whose status is one of OUTCOMES (the DAG
    passes the deciding steps' results, the last step first); None when none has one (logged:
    the grid then shows no outcome task, and the decided retrain's record is left as it is)."""
    for result in results:
        status = result.get("status") if isinstance(result, Mapping) else None
        if status in OUTCOMES:
            return f"outcome_{status}"
    log.warning("no retraining outcome in the step results %r", list(results))
    return None


def fail(ctx: RetrainContext, error: str) -> None:
    """Release the claim so a later run can retry this interval. An outcome already recorded
    (the step failed after promote recorded it) stays: the retrain did end that way."""
    released = ctx.store().finish_retrain(
        ctx.name, ctx.start, ctx.end, status="failed", candidate_version=None, verdict={"error": error},
        only_running=True,
    )  # fmt: skip
    if not released:
        log.warning("%s: not marked failed (%s): not running (an outcome is recorded, or no claim)", ctx.label, error)


def _alert(ctx: RetrainContext, kind: str, severity: str, title: str, body: str, *, state: str) -> None:
    from driftguard.reporting.alerts import Alert, dispatch

    alert = Alert(
        model=ctx.name,
        kind=kind,
        severity=severity,
        title=title,
        body=body,
        runbook_url=ctx.contract.alerts.runbook_url,
        state=state,
    )
    dispatch(alert, ctx.contract.alerts, store=ctx.store(), now=ctx.as_of)


def run_retraining(
    model: str | ModelContract,
    start: datetime,
    end: datetime,
    *,
    trigger: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """All steps in-process (no human approval step); returns promote's summary."""
    ctx = RetrainContext.create(model, start, end, trigger=trigger, settings=settings)
    claimed = claim(ctx)
    if not claimed["proceed"]:
        return {"status": "skipped", "previous_status": claimed["status"], "version": claimed["version"]}
    try:
        trained = train(ctx)
        if trained["status"] == "insufficient_data":
            return {"status": "insufficient_data", "version": None, "summary": trained["summary"]}
        register(ctx)
        evaluate(ctx)
        return promote(ctx)
    except Exception as exc:
        fail(ctx, f"{type(exc).__name__}: {exc}")
        raise
