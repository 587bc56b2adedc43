"""One monitoring run: one model, one data interval, as the steps the monitoring DAG wires.

Each step reads what the previous ones left in the run's work folder and returns a small
JSON-able summary (XCom-sized). `run_monitoring` chains them in-process for the backtest and
the benchmarks, so the DAG and those tools share one code path.

Time is data time: "now" for the policy is the interval's end, so a backfill or a backtest
decides exactly as the scheduled run at that moment would have.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driftguard.facts import RunFacts
from driftguard.settings import Settings, get_settings
from driftguard.step_results import (
    DecisionResult,
    DriftResult,
    EvaluationResult,
    ExtractResult,
    QualityResult,
    ShadowResult,
    load,
)
from driftguard.workdir import WorkDir

if TYPE_CHECKING:  # pragma: no cover
    from driftguard.contract import ModelContract

log = logging.getLogger(__name__)

SCORE = "__score__"
ESTIMATOR = "estimator.json"  # the reference's label-free estimator, copied by load_reference


class MonitorError(RuntimeError):
    """A monitoring step cannot go on; the message names the model, interval and the cause."""


@dataclass(frozen=True)
class RunContext:
    """Where one run keeps its files; rebuilt identically by every step.

    `run_id` names the run (the DAG passes Airflow's run id; in-process runs get a fresh one): its
    work folder and its report draft are its own, so two runs of one interval never share or
    delete each other's files, and history can tell a retried publish from another run."""

    contract: ModelContract
    start: datetime
    end: datetime
    settings: Settings
    run_id: str = field(default_factory=lambda: f"inprocess__{uuid.uuid4().hex}")

    @classmethod
    def create(
        cls,
        model: str | ModelContract,
        start: datetime,
        end: datetime,
        settings: Settings | None = None,
        run_id: str | None = None,
    ) -> RunContext:
        from driftguard.contract import model_contract  # pydantic: at run time, never at DAG parse

        settings = settings or get_settings()
        extra = {} if run_id is None else {"run_id": run_id}
        return cls(model_contract(model, settings.models_dir), start, end, settings, **extra)

    @property
    def name(self) -> str:
        return self.contract.name

    @property
    def label(self) -> str:
        return f"{self.name} [{self.start.isoformat()}, {self.end.isoformat()})"

    @property
    def report_dir(self) -> Path:
        """Where the run's reports are published (publish moves the draft there after history)."""
        from driftguard.reporting import reports

        return reports.run_dir(self.settings.reports_dir, self.name, self.start, self.end)

    @property
    def draft_dir(self) -> Path:
        """The run's reports before publish: a hidden folder beside report_dir (same depth, so the
        reports' relative links hold once it is moved into place)."""
        from driftguard.reporting import reports

        return self.report_dir.parent / f".draft-{reports.run_dir_name(self.start, self.end)}-{self.run_key}"

    @property
    def run_key(self) -> str:
        """`run_id` as a folder name (Airflow's holds ':' and '+'), with a hash to keep it unique."""
        digest = hashlib.sha256(self.run_id.encode()).hexdigest()[:10]
        return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', self.run_id)[:80]}-{digest}"

    @property
    def work_dir(self) -> Path:
        """Intermediate frames between steps, one folder per run; removed when the run is published."""
        from driftguard.reporting import reports

        return self.settings.home / "work" / self.name / reports.run_dir_name(self.start, self.end) / self.run_key

    @property
    def work(self) -> WorkDir:
        """The run's work folder: step results and frames, read and written atomically."""
        rerun = f"Run {self.run_id}: clear and rerun the whole DAG run, not a single task."
        return WorkDir(self.work_dir, self.label, MonitorError, rerun)


def non_finite_rows(frame: Any, columns: list[str]) -> Any:
    """Rows where any of `columns` (numeric) holds +/-inf or a value beyond profile.FINITE_LIMIT."""
    import numpy as np
    import pandas as pd

    from driftguard.statistics.profile import non_finite

    mask = np.zeros(len(frame), dtype=bool)
    for col in columns:
        if col in frame.columns:
            mask |= non_finite(pd.to_numeric(frame[col], errors="coerce"))
    return mask


def label_window(contract: ModelContract, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """Events whose labels are final by `end`, shifted back by the label delay so that
    consecutive runs evaluate each event exactly once."""
    delay = contract.source.labels.delay if contract.source.labels else timedelta(0)
    return start - delay, end - delay


# --------------------------------------------------------------------------- steps


def extract(ctx: RunContext) -> dict[str, Any]:
    """Read the interval's log (lenient: schema problems go to the quality gate) and the
    matured labels of the label window. A window above source.sample_rows is read as a seeded
    sample plus the database's exact facts (counts, nulls, duplicates, newest event); so is the
    label window, whose `labelled_rows` stays the exact count (the retrain policy's label guard
    sums it) and `labelled_read_rows` is what was read."""
    from driftguard import sources

    read_at = datetime.now(UTC)  # the run's results are newer than any recorded before it (see publish)
    shutil.rmtree(ctx.draft_dir, ignore_errors=True)  # reports of an earlier attempt of this run
    frame, stats = sources.read_window(
        ctx.contract,
        ctx.start,
        ctx.end,
        sources.ReadOptions(
            strict=False,
            allow_empty=True,
            sample_rows=ctx.contract.source.sample_rows,
            seed=ctx.contract.training.seed,
        ),
    )
    ctx.work.write_frame("window.parquet", frame)
    labelled_rows = labelled_read_rows = 0
    label_problems: list[dict[str, Any]] = []
    if ctx.contract.source.labels is not None:
        lo, hi = label_window(ctx.contract, ctx.start, ctx.end)
        try:
            labelled, labelled_stats = sources.read_labelled(
                ctx.contract,
                lo,
                hi,
                sources.ReadOptions(
                    strict=False,
                    allow_empty=True,
                    sample_rows=ctx.contract.source.sample_rows,
                    seed=ctx.contract.training.seed,
                ),
                as_of=ctx.end,
            )
        except sources.SourceConnectionError:
            raise  # transient: the task is retried
        except sources.SourceError as exc:  # a bad label batch: a failed `labels` check, the features go on
            label_problems.append(label_problem(ctx, exc, lo, hi))
            log.error("%s: the label batch cannot be read, recorded as a failed labels check: %s", ctx.label, exc)
        else:
            ctx.work.write_frame("labelled.parquet", labelled)
            labelled_rows, labelled_read_rows = labelled_stats.rows, len(labelled)
    extracted = load(
        ExtractResult,
        {
            **stats.to_dict(),
            "labelled_rows": labelled_rows,
            "labelled_read_rows": labelled_read_rows,
            "label_problems": label_problems,
            "read_at": read_at.isoformat(),
        },
    )
    ctx.work.write_result(extracted)
    for problem in stats.type_problems:
        log.warning(
            "%s: %s %s holds text that is not a number in %s of %s rows read (e.g. %s); read as missing, "
            "the quality gate fails its types check", ctx.label, problem.what, problem.column, f"{problem.rows:,}",
            f"{problem.read_rows:,}", ", ".join(problem.examples),
        )  # fmt: skip
    sampled = f" (a seeded sample of {len(frame):,} rows read)" if stats.sampled else ""
    labels_read = f" ({labelled_read_rows:,} read)" if labelled_read_rows < labelled_rows else ""
    log.info(
        "%s: %s rows%s (%s .. %s) in %s chunks, %s matured labels%s; schema problems: %s",
        ctx.label,
        f"{stats.rows:,}",
        sampled,
        stats.min_ts,
        stats.max_ts,
        stats.chunks,
        f"{labelled_rows:,}",
        labels_read,
        "; ".join(stats.schema_problems) or "none",
    )
    return extracted.xcom()


def label_problem(ctx: RunContext, exc: Any, lo: datetime, hi: datetime) -> dict[str, Any]:
    """A label batch read_labelled could not read, for the quality step's `labels` check."""
    labels = ctx.contract.source.labels
    return {
        "table": exc.table or (labels.table if labels else None),
        "column": exc.column or (labels.column if labels else None),
        "interval": [lo.isoformat(), hi.isoformat()],
        "as_of": ctx.end.isoformat(),
        "error": str(exc),
        "kind": type(exc).__name__,
    }


def load_reference(ctx: RunContext) -> dict[str, Any]:
    """The champion's training reference (or the contract's bootstrap window before one exists)."""
    from driftguard.retraining import reference

    ref = reference.load_reference(ctx.contract, tracking_uri=ctx.settings.mlflow_tracking_uri)
    ctx.work.write_frame("reference.parquet", ref.sample)
    calibration = reference_calibration(ctx, ref)
    ctx.work.write_json("calibration.json", calibration.to_dict())
    meta = {
        "source": ref.source,
        "model_version": ref.model_version,
        "run_id": ref.run_id,
        "trained_at": ref.trained_at.isoformat() if ref.trained_at else None,
        "validation_metrics": ref.validation_metrics,
        "feature_importance": list(ref.feature_importance),
        "importance": dict(ref.importance),
        "training_rows": ref.training_rows,
        "metric_baseline": ref.metric_baseline,
        "change_point": ref.change_point,
        "window_start": ref.window_start,
        "window_rows": ref.window_rows,
        "profile": ref.profile,
        "rows": len(ref.sample),
    }
    ctx.work.write_json("reference.json", meta)
    estimator = ref.estimator if ref.estimator is not None else bootstrap_estimator(ctx, ref)
    if estimator is not None:
        ctx.work.write_bytes(ESTIMATOR, estimator)
    log.info("%s: reference is %s (%s rows)", ctx.label, ref.source, f"{len(ref.sample):,}")
    return {k: meta[k] for k in ("source", "model_version", "rows")}


def _cached(ctx: RunContext, ref: Any, what: str, build: Callable[[], bytes | None]) -> bytes | None:
    """`build()` once per reference (source, run, rows) and drift settings, then from a file under
    DRIFTGUARD_HOME: what a bootstrap window (or an older champion) lacks is computed once."""
    from driftguard.statistics.calibration import settings_key

    key_text = json.dumps([ref.source, ref.run_id, len(ref.sample), settings_key(ctx.contract), what], default=str)
    key = hashlib.sha256(key_text.encode()).hexdigest()[:20]
    cache = ctx.settings.home / "calibration" / f"{ctx.name}-{what}-{key}"
    if cache.is_file():
        return cache.read_bytes()
    data = build()
    if data is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(cache)  # atomic: parallel runs of one model never read half a file
    return data


def bootstrap_estimator(ctx: RunContext, ref: Any) -> bytes | None:
    """A label-free estimator for a reference without one (the bootstrap window, whose logged
    predictions and matured labels stand in for a holdout): fitted once, then cached."""
    from driftguard.retraining import reference

    return _cached(ctx, ref, "estimator", lambda: reference.fit_estimator(ref.sample, ctx.contract))


def reference_calibration(ctx: RunContext, ref: Any) -> Any:
    """The drift thresholds calibrated on this reference: the champion's own (logged with its
    reference artifacts when it was trained) while the drift settings are unchanged, else computed
    once per reference and settings and cached under DRIFTGUARD_HOME."""
    from driftguard.retraining import reference
    from driftguard.statistics.calibration import Calibration, calibrate_for, settings_key

    c = ctx.contract
    if ref.calibration and ref.calibration.get("settings") == settings_key(c):
        return Calibration.from_dict(ref.calibration)

    def build() -> bytes:
        ts = ref.sample[reference.TS_COLUMN] if reference.TS_COLUMN in ref.sample.columns else None
        started = time.monotonic()
        cal = calibrate_for(c, ref.sample, timestamps=ts, seed=c.training.seed)
        log.info(
            "%s: drift thresholds calibrated on %s (%s, %d chunk(s) of ~%s rows, share trigger %.2f) in %.1f s",
            ctx.label, ref.source, cal.source, max((t.chunks for t in cal.features.values()), default=0),
            f"{cal.chunk_rows:,}", cal.share_threshold, time.monotonic() - started,
        )  # fmt: skip
        for warning in cal.warnings:
            log.warning("%s: drift calibration: %s", ctx.label, warning)
        return json.dumps(cal.to_dict(), indent=1).encode()

    data = _cached(ctx, ref, "calibration", build)
    assert data is not None
    return Calibration.from_dict(json.loads(data))


def score(ctx: RunContext) -> dict[str, Any]:
    """Scores for the window and the labelled rows: the logged prediction when the log has one,
    else the @champion's scores. Without either, prediction drift and metrics are skipped."""
    contract = ctx.contract
    meta = ctx.work.read_json("reference.json")
    frames = {
        name: ctx.work.read_frame(name) for name in ("window.parquet", "labelled.parquet") if ctx.work.exists(name)
    }
    source = "none"
    if contract.source.prediction_column:
        source = f"logged column {contract.source.prediction_column}"
        for frame in frames.values():
            frame[SCORE] = frame.get(contract.source.prediction_column)
    elif meta.get("model_version"):
        import numpy as np

        from driftguard.retraining import registry, training  # MLflow and scikit-learn only when scoring here

        loaded = registry.load_champion(contract.registered_model_name, tracking_uri=ctx.settings.mlflow_tracking_uri)
        if loaded is not None:
            model, version = loaded
            source = f"champion v{version}"
            for name, frame in frames.items():
                if not (len(frame) and set(contract.feature_names) <= set(frame.columns)):
                    continue
                # A row with an infinite (or float32-overflowing) feature gets no score: the model
                # cannot take it, and the quality gate's `finite` check already names the column.
                skip = non_finite_rows(frame, contract.numeric_features)
                if skip.any():
                    log.warning(
                        "%s: %s of %s rows of %s have non-finite numeric features; they are not scored",
                        ctx.label, f"{int(skip.sum()):,}", f"{len(frame):,}", name,
                    )  # fmt: skip
                scores = np.full(len(frame), np.nan)
                try:
                    if not skip.all():
                        usable = frame.loc[~skip, contract.feature_names]
                        scores[~skip] = training.score(model, usable, contract.task)
                    frame[SCORE] = scores
                except Exception as exc:  # bad data must not hide the quality report: score-less run
                    log.error("%s: champion v%s could not score %s: %s", ctx.label, version, name, exc)
                    source = f"champion v{version} (failed on {name})"
    for name, frame in frames.items():
        ctx.work.write_frame(name, frame)
    log.info("%s: scores from %s", ctx.label, source)
    ctx.work.write_json("score.json", {"source": source})
    return {"source": source}


def check_quality(ctx: RunContext, *, expected_rows: float | None = None) -> dict[str, Any]:
    """Great Expectations suite from the contract and the reference profile."""
    from driftguard.monitoring import quality

    extracted = ctx.work.read_result(ExtractResult)
    meta = ctx.work.read_json("reference.json")
    if expected_rows is None:
        expected_rows = usual_volume(ctx)
    result = quality.validate_window(
        ctx.contract,
        ctx.work.read_frame("window.parquet"),
        meta["profile"],
        start=ctx.start,
        end=ctx.end,
        expected_rows=expected_rows,
        schema_problems=extracted.schema_problems,
        type_problems=extracted.type_problems,
        label_problems=extracted.label_problems,
        out_dir=ctx.draft_dir if ctx.settings.reports else None,  # Settings.reports: the HTML pages
        exact=extracted.facts if extracted.sampled else None,
    )
    checked = load(QualityResult, {**result.to_dict(), "summary": result.summary(), "expected_rows": expected_rows})
    ctx.work.write_result(checked)
    log.info("%s", result.summary())
    return checked.xcom()


def usual_volume(ctx: RunContext) -> float | None:
    """Mean rows of the last recorded runs with data; None on the first runs (volume unchecked)."""
    store = history_store(ctx.settings)
    rows = [r.rows for r in store.runs(ctx.name, before=ctx.start, limit=8) if r.status != "no_data" and r.rows]
    if len(rows) < 2:
        log.info("%s: fewer than 2 earlier runs with data, volume is not checked yet", ctx.label)
        return None
    return sum(rows) / len(rows)


def detect_drift(ctx: RunContext) -> dict[str, Any]:
    """Evidently drift of the window against the reference sample (features, prediction, target)."""
    from driftguard.monitoring import drift

    current = ctx.work.read_frame("window.parquet")
    if current.empty:
        skipped = DriftResult(skipped="no rows in the interval")
        ctx.work.write_result(skipped)
        return skipped.xcom()
    ref = ctx.work.read_frame("reference.parquet")
    prediction = SCORE if SCORE in current.columns and SCORE in ref.columns and ref[SCORE].notna().any() else None
    target = None
    label_col = ctx.contract.source.labels.column if ctx.contract.source.labels else None
    if ctx.contract.drift.target and label_col and label_col in ref.columns and ctx.work.exists("labelled.parquet"):
        labelled = ctx.work.read_frame("labelled.parquet")
        if len(labelled) and label_col in labelled.columns:
            # Target drift compares label distributions; the labelled rows are the newest labels.
            current = current.merge(
                labelled[[ctx.contract.source.id_column, label_col]], on=ctx.contract.source.id_column, how="left"
            )
            if current[label_col].notna().sum() >= 30:
                target = label_col
            else:
                current = current.drop(columns=[label_col])
    if not ctx.contract.drift.prediction:
        prediction = None
    from driftguard.statistics.calibration import Calibration

    calibration = (
        Calibration.from_dict(ctx.work.read_json("calibration.json")) if ctx.work.exists("calibration.json") else None
    )
    meta = ctx.work.read_json("reference.json")
    try:
        result = drift.run_drift(
            ctx.contract,
            ref,
            current,
            prediction_column=prediction,
            target_column=target,
            out_html=ctx.draft_dir / "drift.html" if ctx.settings.reports else None,
            assets_dir=ctx.settings.reports_dir / "_assets",
            skip_unusable=True,
            calibration=calibration,
            importance=meta.get("importance") or None,
            interval=(ctx.start, ctx.end),
            reference_label=reference_label(meta),
        )
    except drift.DriftError as exc:
        log.error("%s: drift not computed: %s", ctx.label, exc)
        failed = DriftResult(error=str(exc))
        ctx.work.write_result(failed)
        return failed.xcom()
    found = load(DriftResult, {**result.to_dict(), "summary": result.summary()})
    ctx.work.write_result(found)
    log.info("%s", result.summary())
    return found.xcom()


def reference_label(meta: dict[str, Any]) -> str:
    """What the drift report compares against, in words (reference.json of load_reference)."""
    text = str(meta.get("source") or "reference")
    if meta.get("window_start"):
        text += f", trained on data from {meta['window_start']}"
    if isinstance(meta.get("rows"), int):
        text += f"; a {meta['rows']:,}-row sample"
    return text


def evaluate_model(ctx: RunContext) -> dict[str, Any]:
    """Realized metrics on matured labels (overall and per segment) and proxy metrics on scores.

    On a sampled label window the metrics come from the labelled sample (`metric_rows` rows) while
    `labelled_rows` stays extract's exact count: history and the retrain policy's label guard sum it.
    Rows without a finite score (not scored, or an infinite logged prediction) are left out."""
    import numpy as np

    from driftguard.statistics import metrics

    contract = ctx.contract
    out: dict[str, Any] = {
        "metric_name": contract.primary_metric,
        "metric_value": None,
        "labelled_rows": int(ctx.work.read_result(ExtractResult).labelled_rows or 0),
        "metric_rows": 0,
    }
    window = ctx.work.read_frame("window.parquet")
    if SCORE in window.columns and ctx.work.exists(ESTIMATOR):
        out["estimated"] = estimated_metric(ctx, window)
    if SCORE in window.columns and window[SCORE].notna().any():
        out["proxy"] = metrics.proxy_metrics(
            contract.task, window[SCORE].dropna().to_numpy(), threshold=contract.decision_threshold
        )
    if ctx.work.exists("labelled.parquet"):
        labelled = ctx.work.read_frame("labelled.parquet")
        label = contract.source.labels.column if contract.source.labels else None
        if label and SCORE in labelled.columns and len(labelled):
            scored = labelled[np.isfinite(labelled[SCORE].to_numpy(dtype="float64"))]  # NaN: not scored
            out["metric_rows"] = len(scored)
            values = metrics.task_metrics(
                contract.task, scored[label].to_numpy(), scored[SCORE].to_numpy(), threshold=contract.decision_threshold
            )
            out["metrics"] = values
            out["metric_value"] = values.get(contract.primary_metric)
            out["metric_se"] = metrics.metric_se(
                contract.primary_metric,
                scored[label].to_numpy(),
                scored[SCORE].to_numpy(),
                threshold=contract.decision_threshold,
                seed=contract.training.seed,
            )
            if contract.segment_features:
                out["segments"] = metrics.segment_metrics(
                    contract.task,
                    scored,
                    label=label,
                    score=SCORE,
                    segments=contract.segment_features,
                    threshold=contract.decision_threshold,
                    min_rows=contract.promotion.segments.min_rows,
                )
    meta = ctx.work.read_json("reference.json")
    out["champion_metric"] = (meta.get("validation_metrics") or {}).get(contract.primary_metric)
    evaluated = load(EvaluationResult, out)
    ctx.work.write_result(evaluated)
    log.info(
        "%s: %s = %s on %s of %s matured labels (champion validation: %s)",
        ctx.label,
        contract.primary_metric,
        _fmt(out["metric_value"]),
        f"{out['metric_rows']:,}",
        f"{out['labelled_rows']:,}",
        _fmt(out["champion_metric"]),
    )
    return evaluated.xcom()


def estimated_metric(ctx: RunContext, window: Any) -> dict[str, Any]:
    """The primary metric estimated on this window's scores, before its labels exist (CBPE for
    classifiers, DLE for regression; docs/estimation.md), with its band (value +- 3 sigma)."""
    from driftguard.statistics import estimation

    estimator = estimation.Estimator.from_bytes(ctx.work.file(ESTIMATOR).read_bytes())
    est = estimation.estimate(estimator, window)
    if est.value is None:
        log.warning("%s: %s not estimated: %s", ctx.label, est.metric, est.reason)
    else:
        log.info(
            "%s: estimated %s %.4f [%.4f, %.4f] on %s rows, before labels", ctx.label, est.metric, est.value,
            est.lower if est.lower is not None else float("nan"), est.upper if est.upper is not None else float("nan"),
            f"{est.rows:,}",
        )  # fmt: skip
    return est.to_dict()


SHADOW_PART = "shadow_part.parquet"  # this window's paired rows, for publish to add to the evidence
SHADOW_ACTOR = "driftguard-shadow"


def shadow(ctx: RunContext) -> dict[str, Any]:
    """Batch shadow scoring (driftguard.retraining.shadow): the challenger whose gate could not tell scores
    this window's rows beside the champion, on features only (disagreement, prediction shift),
    and the window's matured labelled rows join its paired evidence, which the gate judges
    again. Writes shadow.json (and the window's evidence) for publish to record; promote_shadow
    acts on the outcome. Never fails the run: a challenger that cannot load or score is recorded
    as such, any other problem is logged and the run goes on without shadow scoring."""
    try:
        result = _shadow_window(ctx)
    except Exception as exc:
        log.exception("%s: shadow scoring failed; the run goes on without it", ctx.label)
        result = ShadowResult("error", error=f"{type(exc).__name__}: {exc}")
    ctx.work.write_result(result)
    return result.xcom()


def _shadow_window(ctx: RunContext) -> ShadowResult:
    from driftguard.retraining import shadow as sh
    from driftguard.store import FINISHED_RETRAIN_STATUSES, ShadowEvidence, ShadowRecord

    c = ctx.contract
    store = history_store(ctx.settings)
    champion = ctx.work.read_json("reference.json").get("model_version")
    decided = [
        r
        for r in store.retrains(ctx.name)
        if r.get("interval_end") is not None
        and r["interval_end"] <= ctx.start
        and r["status"] in FINISHED_RETRAIN_STATUSES
    ]
    plan = sh.plan(
        store.shadow_records(ctx.name),
        champion=champion,
        start=ctx.start,
        enabled=c.promotion.shadow.enabled,
        latest_retrain=max(decided, key=lambda r: r["interval_end"], default=None),
    )
    if plan.note:
        log.info("%s: %s", ctx.label, plan.note)
    if plan.session is None or plan.action == "none":
        return ShadowResult("none", note=plan.note)
    session, version = plan.session, plan.session.challenger_version
    record = ShadowRecord(
        ctx.name, version, session.champion_version, sh.WINDOW, ctx.start, ctx.end, sh.SHADOWING,
        windows=plan.windows, metric_name=c.primary_metric,
    )  # fmt: skip
    if plan.action == "stop":
        record.outcome, record.reason = sh.STOPPED, plan.note
        return ShadowResult("stopped", record=record.to_dict())

    comparison, evidence, problem = _score_challenger(ctx, version, after=session.interval_end)
    parts = ShadowEvidence.under(ctx.settings.home).read(ctx.name, version, plan.parts)
    missing = [part for part in plan.parts if part not in parts]
    if missing:
        log.warning("%s: shadow evidence of v%s lost (files missing): %s", ctx.label, version, ", ".join(missing))
    if evidence is not None and len(evidence):
        parts[record.part] = evidence
        ctx.work.write_frame(SHADOW_PART, evidence)
    pooled = sh.pool(parts)
    holdout_rows = len(parts[sh.HOLDOUT]) if sh.HOLDOUT in parts else 0
    verdict = sh.judge(c, pooled) if problem is None and len(pooled) else None
    decision = sh.decide(
        verdict,
        windows=plan.windows,
        rows=len(pooled),
        holdout_rows=holdout_rows,
        max_windows=c.promotion.shadow.max_windows,
        problem=problem or (None if len(pooled) else "no paired rows yet"),
    )
    n = decision.numbers
    metrics = verdict.check("primary_metric_threshold").numbers if verdict and len(verdict.checks) > 1 else {}
    record.rows, record.labelled_rows = comparison.rows, 0 if evidence is None else len(evidence)
    record.cumulative_rows = len(pooled)
    record.disagreement, record.prediction_shift = comparison.disagreement, comparison.prediction_shift
    record.score_distance = comparison.score_distance
    record.champion_metric, record.challenger_metric = metrics.get("champion"), metrics.get("challenger")
    record.ci_low, record.ci_high, record.bound = n.get("ci_low"), n.get("ci_high"), n.get("bound")
    record.rows_needed = n.get("rows_needed")
    record.outcome, record.reason = decision.outcome, decision.reason
    record.details = {
        "holdout_rows": holdout_rows,
        "champion_mean": comparison.champion_mean,
        "challenger_mean": comparison.challenger_mean,
        "verdict": verdict.summary() if verdict else None,
        "problem": problem,
        "missing_parts": missing,
    }
    log.info(
        "%s: shadow v%s beside champion v%s: %s rows scored, disagreement %s, prediction shift %s; %s",
        ctx.label, version, session.champion_version, f"{comparison.rows:,}", _fmt(comparison.disagreement),
        _fmt(comparison.prediction_shift), decision.reason,
    )  # fmt: skip
    return ShadowResult(
        "shadow",
        record=record.to_dict(),
        part=bool(evidence is not None and len(evidence)),
        # For the policy's shadowing guard (decide reads this file): the challenger's training window.
        since_change=bool(session.details.get("since_change")),
    )


def _score_challenger(ctx: RunContext, version: str, *, after: datetime) -> tuple[Any, Any, str | None]:
    """(comparison on the window, the labelled rows' evidence frame, the problem if it failed).
    The challenger scores the features only; the evidence keeps the labelled rows whose events came
    after the challenger's training cut-off (`after`, its retrain's as_of, less the label delay)."""
    from driftguard.retraining import registry
    from driftguard.retraining import shadow as sh

    c = ctx.contract
    none = sh.Comparison(0, None, None, None)
    window = ctx.work.read_frame("window.parquet")
    labelled = ctx.work.read_frame("labelled.parquet") if ctx.work.exists("labelled.parquet") else None
    if SCORE not in window.columns:
        return none, None, "the champion has no scores for this window"
    try:
        model = registry.load_version(c.registered_model_name, version, tracking_uri=ctx.settings.mlflow_tracking_uri)
        comparison = sh.compare_scores(
            c.task, window[SCORE], _model_scores(c, model, window), threshold=c.decision_threshold
        )
        evidence = None
        label = c.source.labels.column if c.source.labels else None
        if labelled is not None and len(labelled) and SCORE in labelled.columns and label in labelled.columns:
            delay = c.source.labels.delay if c.source.labels else timedelta(0)
            scores = _model_scores(c, model, labelled)
            evidence = sh.evidence_frame(labelled, c, champion=labelled[SCORE], challenger=scores, after=after - delay)
    except Exception as exc:  # a challenger that cannot load or score: recorded, the run goes on
        log.error("%s: challenger v%s could not load or score: %s: %s", ctx.label, version, type(exc).__name__, exc)
        return none, None, f"challenger v{version} could not load or score: {type(exc).__name__}: {exc}"
    return comparison, evidence, None


def _model_scores(contract: ModelContract, model: Any, frame: Any) -> Any:
    """A model's scores on a frame's features; NaN where a row has a non-finite numeric feature."""
    import numpy as np

    from driftguard.retraining import training

    scores = np.full(len(frame), np.nan)
    if not len(frame) or not set(contract.feature_names) <= set(frame.columns):
        return scores
    skip = non_finite_rows(frame, contract.numeric_features)
    if not skip.all():
        scores[~skip] = training.score(model, frame.loc[~skip, contract.feature_names], contract.task)
    return scores


def shadow_signal(shadowed: ShadowResult) -> dict[str, Any]:
    """The run's shadow facts for its history row (signals["shadow"]) and the runs tables."""
    record = shadowed.record or {}
    keys = (
        "challenger_version", "champion_version", "windows", "rows", "labelled_rows", "cumulative_rows",
        "disagreement", "prediction_shift", "ci_low", "ci_high", "rows_needed", "outcome", "reason",
    )  # fmt: skip
    out = {"state": shadowed.state, **{k: record.get(k) for k in keys}}
    for key in ("note", "error"):
        if getattr(shadowed, key):
            out[key] = getattr(shadowed, key)
    return {k: v for k, v in out.items() if v is not None and v != ""}


def record_shadow(ctx: RunContext, store: Any, shadowed: ShadowResult) -> None:
    """Add the window's evidence file, then its dg_shadow row (the row is the commit: a file
    without its row is never read). A rerun of the interval replaces both."""
    from driftguard.store import ShadowEvidence, ShadowRecord

    if not shadowed.record:
        return
    record = ShadowRecord.from_dict(shadowed.record)
    if shadowed.part:
        ShadowEvidence.under(ctx.settings.home).write(
            ctx.name, record.challenger_version, record.part, ctx.work.read_frame(SHADOW_PART)
        )
    store.record_shadow(record)


def promote_shadow(ctx: RunContext) -> dict[str, Any]:
    """The last step: when this window's shadow evidence cleared the gate (publish recorded the
    `promote` outcome), promote the challenger through the guarded path: registry.promote with
    the champion it was compared with, so nothing moves if @champion moved meanwhile (`aborted`).
    With `promotion.require_approval` nothing moves: the outcome waits for a person
    (`awaiting_approval`, alerted). Reads history, not the work folder: a retry redoes exactly this."""
    from driftguard.retraining import registry
    from driftguard.retraining import shadow as sh

    store = history_store(ctx.settings)
    rows = [
        r
        for r in store.shadow_records(ctx.name)
        if r.kind == sh.WINDOW
        and (r.interval_start, r.interval_end) == (ctx.start, ctx.end)
        and r.outcome == sh.PROMOTE
    ]
    if not rows:
        return {"promoted": False}
    row = rows[-1]
    version, name = row.challenger_version, ctx.contract.registered_model_name
    out = {"promoted": False, "version": version, "previous": row.champion_version, "reason": row.reason}
    if row.action in ("promoted", "aborted", "awaiting_approval"):
        return {**out, "promoted": row.action == "promoted", "action": row.action}  # a retried task
    note = None
    if ctx.contract.promotion.require_approval:
        action = "awaiting_approval"
        note = (
            f"promotion.require_approval: a person answers with `driftguard approve {ctx.name} --reason ...` "
            "(or --decline); the challenger stays @challenger"
        )
    else:
        try:
            registry.promote(
                name,
                version,
                expected_champion=row.champion_version,
                store=store,
                actor=SHADOW_ACTOR,
                reason=row.reason,
                tracking_uri=ctx.settings.mlflow_tracking_uri,
                at=ctx.end,
            )
            action = "promoted"
        except registry.ConcurrentPromotionError as exc:
            action, note = "aborted", str(exc)
            log.error("%s: shadow promotion of v%s aborted: %s", ctx.label, version, exc)
    store.set_shadow_action(ctx.name, version, ctx.start, ctx.end, action=action, note=note)
    title = {
        "promoted": f"v{version} promoted to @champion from shadow scoring",
        "aborted": f"shadow promotion of v{version} aborted",
        "awaiting_approval": f"v{version} cleared the gate in shadow scoring: promotion awaits approval",
    }[action]
    _shadow_alert(ctx, title, f"{row.reason}{'. ' + note if note else ''}", action, version, store)
    if action == "promoted":
        log.info("%s: v%s is now @champion (was v%s): %s", ctx.label, version, row.champion_version, row.reason)
        write_indexes(ctx, store)
    return {**out, "promoted": action == "promoted", "action": action}


def _shadow_alert(ctx: RunContext, title: str, body: str, action: str, version: str, store: Any) -> None:
    from driftguard.reporting.alerts import Alert, dispatch

    severity = "warning" if action == "aborted" else "info"
    alert = Alert(
        model=ctx.name, kind="promotion", severity=severity, title=title, body=body,
        runbook_url=ctx.contract.alerts.runbook_url, state=f"shadow:{version}:{action}",
    )  # fmt: skip
    dispatch(alert, ctx.contract.alerts, store=store, now=ctx.end)


def decide(ctx: RunContext) -> dict[str, Any]:
    """The retrain policy on this run's results, the recent history and the champion's facts."""
    from driftguard.monitoring import policy

    facts = current_facts(ctx)
    meta = ctx.work.read_json("reference.json")
    store = history_store(ctx.settings)
    cfg = ctx.contract.policy
    # Enough runs for persistence and to find where a degradation began (the change point).
    history = store.history_facts(ctx.name, before=ctx.start, n=max(cfg.persistence.n - 1, CHANGE_LOOKBACK_RUNS))
    last_retrain = store.last_retrain_at(ctx.name, before=ctx.start)
    last_promotion = store.last_retrain_at(ctx.name, before=ctx.start, promotions_only=True)
    trained_at = datetime.fromisoformat(meta["trained_at"]) if meta.get("trained_at") else None
    champion = policy.ChampionFacts(
        version=meta.get("model_version"),
        trained_at=trained_at,
        validation_metric=(meta.get("validation_metrics") or {}).get(ctx.contract.primary_metric),
        feature_importance=important_first(meta),
        last_retrain_at=last_retrain or trained_at,
        training_rows=meta.get("training_rows"),
        baseline_metric=meta.get("metric_baseline"),
        trained_since_change=trained_since_change(ctx.contract, meta, trained_at),
        window_rows=meta.get("window_rows"),
        validation_se=(meta.get("validation_metrics") or {}).get(f"{ctx.contract.primary_metric}_se"),
    )
    # Label evidence counts from the champion's promotion: a rejected attempt (which does start
    # the cooldown) must not throw away the labels gathered since.
    since = facts.labelled_rows + store.labelled_rows_since(ctx.name, last_promotion or trained_at, before=ctx.start)
    decision = policy.decide(
        cfg,
        now=ctx.end,
        current=facts,
        history=history,
        champion=champion,
        metric_name=ctx.contract.primary_metric,
        greater_is_better=ctx.contract.greater_is_better,
        labelled_rows_since_retrain=since,
        shadowing=shadowing_facts(ctx),
    )
    decided = load(
        DecisionResult,
        {**decision.to_dict(), "summary": decision.summary(), "retrain_request": retrain_request(ctx, decision)},
    )
    ctx.work.write_result(decided)
    log.info("%s: %s", ctx.label, decision.summary())
    return decided.xcom()


def shadowing_facts(ctx: RunContext) -> Any:
    """The challenger shadowing the champion in this window (the shadow step's outcome), for the
    policy's shadowing guard; None when nothing shadows or its shadowing ended this window."""
    from driftguard.monitoring import policy
    from driftguard.retraining import shadow as sh

    shadowed = ctx.work.read_result(ShadowResult)
    record = shadowed.record or {}
    if record.get("outcome") not in (sh.SHADOWING, sh.PROMOTE):
        return None
    c = ctx.contract
    return policy.Shadowing(
        version=str(record["challenger_version"]),
        outcome=record["outcome"],
        windows=int(record.get("windows") or 1),
        max_windows=c.promotion.shadow.max_windows,
        since_change=bool(shadowed.since_change),
        retrain_follows_change=c.training.change_aware and c.seasonality is None,
    )


def trained_since_change(contract: ModelContract, meta: dict[str, Any], trained_at: datetime | None) -> datetime | None:
    """The change point the champion's training window began at, while that window is shorter than
    the contract's (the window_growth trigger lets it grow); None otherwise."""
    change, start = meta.get("change_point"), meta.get("window_start")
    if not (change and start and trained_at):
        return None
    at = datetime.fromisoformat(change)
    if datetime.fromisoformat(start) < at:
        return None
    window = contract.training_window
    return at if window is None or trained_at - at < window else None


CHANGE_LOOKBACK_RUNS = 26  # half a year of weekly runs: how far back a degradation's start is looked for


def retrain_request(ctx: RunContext, decision: Any) -> dict[str, Any]:
    """What the retraining needs to know of this decision: where the degradation began, in event
    time. A metric measured in a run is on the labels that matured in it, so its change point is
    that run's label window start (shifted back by the label delay). ``triggers``: the rules that
    counted (the candidate's MLflow run is named after them)."""
    counted = [r.rule for r in decision.counted_triggers]
    triggers: dict[str, Any] = {"triggers": counted} if decision.retrain and counted else {}
    change = decision.change
    if change is None:
        return triggers
    at = (
        label_window(ctx.contract, change.at, change.at + (ctx.end - ctx.start))[0]
        if change.basis == "metric"
        else change.at
    )
    request: dict[str, Any] = {
        **triggers,
        "change_point": at.isoformat(),
        "change_basis": change.basis,
        "change_runs": change.runs,
    }
    if change.baseline is not None:
        request["baseline_metric"] = change.baseline
    return request


def important_first(meta: dict[str, Any]) -> tuple[str, ...]:
    """The champion's features by importance, without those its permutation importance puts at
    or below 0: a feature the model ignores can drift without making the important-feature
    trigger fire (its drift is still reported)."""
    values = meta.get("importance") or {}
    ranked = meta.get("feature_importance") or ()
    return tuple(f for f in ranked if not values or float(values.get(f, 0.0)) > 0)


@dataclass(frozen=True)
class Checked:
    """What extract and the three checks wrote, read once by decide and by publish."""

    extract: ExtractResult
    quality: QualityResult
    drift: DriftResult
    evaluation: EvaluationResult

    @classmethod
    def read(cls, ctx: RunContext) -> Checked:
        w = ctx.work
        return cls(
            w.read_result(ExtractResult),
            w.read_result(QualityResult),
            w.read_result(DriftResult),
            w.read_result(EvaluationResult),
        )


def current_facts(ctx: RunContext, checked: Checked | None = None) -> RunFacts:
    checked = checked or Checked.read(ctx)
    q, d, e = checked.quality, checked.drift, checked.evaluation
    rows = checked.extract.rows
    status = "no_data" if rows == 0 else ("ok" if q.passed_critical else "quality_failed")
    if status == "ok" and d.lost:
        status = "degraded"  # a signal is missing or incomplete: never recorded as plain ok
    return RunFacts(
        model=ctx.name,
        interval_start=ctx.start,
        interval_end=ctx.end,
        status=status,
        quality_passed=bool(q.passed_critical) and rows > 0,
        drift_share=d.drift_share,
        drifted_features=tuple(d.drifted_features or ()),
        metric_value=e.metric_value,
        labelled_rows=int(e.labelled_rows or 0),
        drift_share_threshold=d.share_threshold,
        weighted_drift_share=d.weighted_share,
        estimated_metric=e.estimated.value if e.estimated else None,
        estimated_band=e.estimated.band if e.estimated else None,
        metric_se=e.metric_se,
    )


@dataclass(frozen=True)
class Finished:
    """What a run's steps left in its work folder, read once by publish and its parts."""

    checked: Checked
    facts: RunFacts
    decision: DecisionResult
    reference: dict[str, Any]  # reference.json of load_reference
    shadow: ShadowResult

    @classmethod
    def read(cls, ctx: RunContext) -> Finished:
        checked = Checked.read(ctx)
        return cls(
            checked,
            current_facts(ctx, checked),
            ctx.work.read_result(DecisionResult),
            ctx.work.read_json("reference.json"),
            ctx.work.read_result(ShadowResult),
        )

    @property
    def summary(self) -> str:
        q, d = self.checked.quality, self.checked.drift
        parts = (q.summary, d.summary or d.error or d.skipped, self.decision.summary)
        return " ".join(s for s in parts if s)


def publish(ctx: RunContext) -> dict[str, Any]:
    """Record history (one upsert), then move the run's reports into place with the index pages,
    then alert and clean up. Only this step writes history, so a run whose steps did not all
    finish leaves no partial record; the reports stay in the run's hidden draft folder until
    history has the run, so a failed run leaves no reports history does not know.

    Two runs of one interval at once: the first to publish wins. The other finds a record written
    after it read its data, by another run, and fails with ConcurrentRunError naming that run;
    its draft is removed (see HistoryStore.record_run). A later rerun replaces the record."""
    done = Finished.read(ctx)
    store = history_store(ctx.settings)
    report_draft(ctx, done)
    record = record_history(ctx, store, done)
    report(ctx, store)
    sent = alert(ctx, store, done)
    cleanup(ctx)
    log.info("%s: published. %s", ctx.label, done.summary)
    return {
        "status": done.facts.status,
        "rows": record.rows,
        "quality_passed": done.facts.quality_passed,
        "drift_share": done.facts.drift_share,
        "drifted_features": list(done.facts.drifted_features),
        "metric": done.checked.evaluation.metric_value,
        "retrain": record.retrain,
        "alerts": sent,
        "report": record.report_paths.get("drift") or record.report_paths["summary"],
        "summary": done.summary,
        "retrain_request": done.decision.retrain_request or {},
        "shadow": record.signals["shadow"],
    }


def report_paths(ctx: RunContext) -> dict[str, str]:
    """Where the run's pages will be once published: those in its draft, and summary.json."""
    paths = {
        key: str(ctx.report_dir / name)
        for key, name in (("drift", "drift.html"), ("quality", "validation.html"), ("suite", "suite.json"))
        if (ctx.draft_dir / name).exists()
    }
    paths["summary"] = str(ctx.report_dir / "summary.json")
    return paths


def run_record(ctx: RunContext, done: Finished) -> Any:
    """The run's history row (store.RunRecord), with its per-feature drift and quality checks."""
    from driftguard import store as store_mod

    facts, q, d, e = done.facts, done.checked.quality, done.checked.drift, done.checked.evaluation
    return store_mod.RunRecord(
        model=ctx.name,
        interval_start=ctx.start,
        interval_end=ctx.end,
        status=facts.status,
        rows=done.checked.extract.rows,
        quality_passed=facts.quality_passed,
        critical_failures=len(q.failed("critical")),
        warnings=len(q.failed("warning")),
        drift_share=facts.drift_share,
        drifted_features=list(facts.drifted_features),
        metric_name=e.metric_name,
        metric_value=e.metric_value,
        proxy_metrics=e.proxy or {},
        labelled_rows=facts.labelled_rows,
        retrain=bool(done.decision.retrain),
        reasons=done.decision.reasons,
        champion_version=done.reference.get("model_version"),
        report_paths=report_paths(ctx),
        run_id=ctx.run_id,
        summary=done.summary,
        feature_drift=[{k: f.get(k) for k in store_mod.FEATURE_DRIFT_FIELDS} for f in d.features or []],
        quality_checks=[{k: c.get(k) for k in store_mod.QUALITY_CHECK_FIELDS} for c in q.checks],
        signals={
            "weighted_drift_share": facts.weighted_drift_share,
            "drift_share_threshold": facts.drift_share_threshold,
            "insufficient_features": d.insufficient_features or [],
            "drift_degraded": sorted(d.render_errors or {}) or bool(d.error),
            "estimated_metric": e.estimated.to_json() if e.estimated else None,
            "metric_se": e.metric_se,
            "shadow": shadow_signal(done.shadow),
        },
    )


def report_draft(ctx: RunContext, done: Finished) -> None:
    """The run's summary.json, into its draft folder beside the HTML pages the steps wrote."""
    from driftguard.reporting import reports

    meta = done.reference
    reports.write_summary(
        ctx.draft_dir,
        {
            "model": ctx.name,
            "interval": [ctx.start.isoformat(), ctx.end.isoformat()],
            "run_id": ctx.run_id,
            "extract": done.checked.extract.to_json(),
            "reference": {k: meta[k] for k in ("source", "model_version", "run_id", "rows")},
            "quality": done.checked.quality.to_json(),
            "drift": done.checked.drift.to_json(),
            "evaluation": done.checked.evaluation.to_json(),
            "decision": done.decision.to_json(),
            "shadow": done.shadow.to_json(),
        },
    )


def record_history(ctx: RunContext, store: Any, done: Finished) -> Any:
    """The run's history row (unless another run of the interval recorded since this one read its
    data: then its draft and work folder go and ConcurrentRunError is raised), then its shadow
    evidence. Returns the RunRecord."""
    from driftguard import store as store_mod

    record = run_record(ctx, done)
    read_at = done.checked.extract.read_at
    try:
        store.record_run(record, unless_recorded_since=datetime.fromisoformat(read_at) if read_at else None)
    except store_mod.ConcurrentRunError as exc:
        shutil.rmtree(ctx.draft_dir, ignore_errors=True)
        ctx.work.remove()
        log.error("%s: %s", ctx.label, exc)
        raise
    record_shadow(ctx, store, done.shadow)
    return record


def report(ctx: RunContext, store: Any) -> None:
    """Move the run's draft into place, then (with Settings.reports) the index pages."""
    from driftguard.reporting import reports

    reports.publish_run_dir(ctx.draft_dir, ctx.report_dir)
    if ctx.settings.reports:
        write_indexes(ctx, store)


def alert(ctx: RunContext, store: Any, done: Finished) -> list[str]:
    """Send the run's alerts (routed and de-duplicated by driftguard.reporting.alerts); the kinds sent."""
    from driftguard.reporting import alerts

    raised = run_alerts(ctx, done.facts, done.checked.quality, done.checked.drift, done.decision)
    return [a.kind for a in raised if alerts.dispatch(a, ctx.contract.alerts, store=store, now=ctx.end)]


def cleanup(ctx: RunContext) -> None:
    """Remove the run's work folder: everything in it is recorded or published now."""
    ctx.work.remove()


def write_indexes(ctx: RunContext, store: Any) -> None:
    """The model's index page (trend, runs, shadow state, promotions) and the reports home."""
    from driftguard.reporting import reports

    reports.write_model_index(
        ctx.settings.reports_dir,
        ctx.name,
        store.runs(ctx.name),
        promotions=store.promotions(ctx.name),
        shadow=store.shadow_records(ctx.name),
        drift_threshold=ctx.contract.policy.drift_share,
        description=ctx.contract.description,
    )
    # Each model's latest runs, read after this run was recorded (so it is among them).
    models = store.models()
    recent = {m: store.runs(m, limit=reports.HOME_RUNS) for m in models}
    reports.write_home(ctx.settings.reports_dir, models, recent=recent)


def run_alerts(
    ctx: RunContext, facts: RunFacts, q: QualityResult, d: DriftResult, decision: DecisionResult
) -> list[Any]:
    from driftguard.reporting.alerts import Alert

    c, report = (
        ctx.contract,
        str(ctx.report_dir / ("drift.html" if (ctx.report_dir / "drift.html").exists() else "summary.json")),
    )
    common = {"model": ctx.name, "report_path": report, "runbook_url": c.alerts.runbook_url}
    out = []
    if facts.status == "no_data" and c.quality.volume.required:
        out.append(
            Alert(
                kind="no_data",
                severity="critical",
                title="no rows in the interval",
                body=f"{ctx.label}: the feature log has no rows.",
                state="no_data",
                **common,
            )
        )
    failed = sorted({f"{x['family']}:{x['column']}" for x in q.failed("critical")})
    if failed and facts.status != "no_data":
        out.append(
            Alert(
                kind="quality_critical",
                severity="critical",
                title="critical data quality failure",
                body=q.summary,
                state=",".join(failed),
                **common,
            )
        )
    if d.error:
        out.append(
            Alert(
                kind="drift_failed",
                severity="critical",
                title="drift not computed",
                body=f"{ctx.label}: {d.error}",
                state="error",
                **common,
            )
        )
    elif d.render_errors:
        cols = sorted(d.render_errors)
        out.append(
            Alert(
                kind="drift_degraded",
                severity="warning",
                title=f"drift report incomplete: plots failed for {', '.join(cols)}",
                body=d.summary or "",
                state=",".join(cols),
                **common,
            )
        )
    trigger = max(c.policy.drift_share or 1.0, d.share_threshold or 0.0)
    if d.dataset_drift or (d.drift_share or 0) >= trigger:
        out.append(
            Alert(
                kind="drift",
                severity="warning",
                title=f"drift in {len(facts.drifted_features)} features",
                body=d.summary or "",
                state=",".join(sorted(facts.drifted_features)),
                **common,
            )
        )
    for review in decision.fired("review"):
        out.append(
            Alert(
                kind="model_review",
                severity="info",
                title=f"review the champion: {review['rule']}",
                body=review["detail"],
                state=str(meta_version(ctx)),
                **common,
            )
        )
    if decision.retrain:
        fired = sorted(r["rule"] for r in decision.fired("trigger"))
        out.append(
            Alert(
                kind="retrain",
                severity="info",
                title="retraining requested",
                body=decision.summary,
                state=",".join(fired),
                **common,
            )
        )
    return out


def meta_version(ctx: RunContext) -> str | None:
    """The champion version this run compared against (an alert's state: one review per version)."""
    return ctx.work.read_json("reference.json").get("model_version")


def history_store(settings: Settings) -> Any:
    from driftguard.store import HistoryStore

    return HistoryStore(settings.history_url)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


@dataclass(frozen=True)
class Step:
    """One step of the monitoring flow: its function, the Airflow task that runs it, the steps
    whose work-folder files it reads (its upstream tasks) and the task's one-line doc."""

    run: Callable[[RunContext], Any]
    task_id: str
    upstream: tuple[Callable[[RunContext], Any], ...]
    doc: str

    @property
    def name(self) -> str:
        return self.run.__name__


# The monitoring flow, written once: the DAG's tasks and edges, UPSTREAM and STEPS derive from it.
# The window and the reference are independent reads; score adds its column to the window's file,
# so the three checks and shadow scoring wait for it and then read it side by side; decide reads
# shadow scoring's outcome too (the policy holds a retrain while a challenger shadows).
# promote_shadow reads what publish recorded (history, not files). In an order that respects the
# edges: the in-process run's.
FLOW: tuple[Step, ...] = (
    Step(extract, "extract_window", (), "The interval (lenient: schema problems fail quality)."),
    Step(load_reference, "load_reference", (), "The champion's reference, or the bootstrap."),
    Step(score, "score_window", (extract, load_reference), "Logged predictions, else @champion's scores."),
    Step(check_quality, "check_quality", (score,), "The GX suite from the contract."),
    Step(detect_drift, "detect_drift", (score,), "Evidently per feature, prediction and target."),
    Step(evaluate_model, "evaluate_model", (score,), "Realized and proxy metrics."),
    Step(shadow, "shadow_challenger", (score,), "An undecided challenger scores beside the champion."),
    Step(
        decide, "decide_retrain", (check_quality, detect_drift, evaluate_model, shadow),
        "The retrain policy, every rule with its numbers.",
    ),
    Step(publish, "publish_results", (decide, shadow), "History, reports and alerts; the log ends with the summary."),
    Step(promote_shadow, "promote_shadow", (publish,), "Promote a challenger whose shadow evidence passed."),
)  # fmt: skip
# What each step reads from the steps before it, by step name (the benchmarks' task scheduler).
UPSTREAM: dict[str, tuple[str, ...]] = {s.name: tuple(u.__name__ for u in s.upstream) for s in FLOW}
# The step functions by name, in FLOW order (tests and benchmarks wrap or run them one by one).
STEPS: dict[str, Callable[[RunContext], Any]] = {s.name: s.run for s in FLOW}


def run_monitoring(
    model: str | ModelContract, start: datetime, end: datetime, *, settings: Settings | None = None
) -> dict[str, Any]:
    """All steps in-process, one after the other in STEPS order; returns publish's summary with
    promote_shadow's result as `shadow_promotion` (`promoted`, `version`, `reason`, ...)."""
    ctx = RunContext.create(model, start, end, settings)
    results = {name: step(ctx) for name, step in STEPS.items()}
    return {**results["publish"], "shadow_promotion": results["promote_shadow"]}
