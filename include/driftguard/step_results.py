"""What each step of a run hands to the next ones, typed, and its one JSON form.

Steps run in separate Airflow processes and meet only through the run's work folder (one JSON
file per step, driftguard.workdir) and XCom (a small summary). Each result below is a frozen
dataclass whose fields are what the other steps read; `dump` and `load` are the only place that
turns them into JSON and back. The file on disk keeps the shape the reports, the UI and the
summary pages read: the fields, flat, plus `extra`, the parts only those pages read (the quality
checks' wording, the drift plots' inputs ...), kept verbatim. A field marked ``omit_none`` is
left out of the JSON while it is None, as the step always did (``"error"`` only on a failed step).
Stdlib only: DAG files may import it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

__all__ = [
    "RETRAIN_OUTCOMES",
    "DecisionResult",
    "DriftResult",
    "Estimate",
    "EvaluationResult",
    "ExtractResult",
    "GateVerdict",
    "QualityResult",
    "ShadowResult",
    "StepResult",
    "dump",
    "load",
]

RETRAIN_OUTCOMES = ("promoted", "rejected", "insufficient_evidence", "insufficient_data", "declined", "aborted")
"""How a retraining run can end (dg_retrains statuses). The retraining DAG ends in the task
``outcome_<outcome>`` so that Airflow's grid says it: Airflow 3's task SDK has no call that sets
the running DagRun's note (its execution API reads notes and sets one only on a triggered run)."""

R = TypeVar("R", bound="StepResult")
OMIT_NONE = {"omit_none": True}  # the field's metadata: absent from the JSON while it is None


@dataclass(frozen=True)
class StepResult:
    """Base of every step result: `FILE` is its name in the run's work folder."""

    FILE: ClassVar[str]
    extra: dict[str, Any] = field(default_factory=dict, kw_only=True)

    def to_json(self) -> dict[str, Any]:
        return dump(self)

    def xcom(self) -> dict[str, Any]:
        """The small summary the step's Airflow task returns (its XCom)."""
        return self.to_json()


def dump(result: StepResult) -> dict[str, Any]:
    """The JSON form: the fields (nested results dumped too), then `extra`'s keys, flat."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(result):
        if f.name == "extra":
            continue
        value = getattr(result, f.name)
        if value is None and f.metadata.get("omit_none"):
            continue
        out[f.name] = dump(value) if isinstance(value, StepResult) else value
    return {**out, **{k: v for k, v in result.extra.items() if k not in out}}


def load(cls: type[R], data: Mapping[str, Any]) -> R:
    """The result `dump` wrote (or an older file of the same shape): known keys to fields, missing
    ones to their defaults, every other key into `extra`."""
    kwargs: dict[str, Any] = {}
    names = set()
    for f in dataclasses.fields(cls):
        if f.name == "extra":
            continue
        names.add(f.name)
        if f.name in data:
            value = data[f.name]
            nested = _NESTED.get((cls.__name__, f.name))
            kwargs[f.name] = load(nested, value) if nested is not None and isinstance(value, Mapping) else value
    return cls(**kwargs, extra={k: v for k, v in data.items() if k not in names})


@dataclass(frozen=True)
class ExtractResult(StepResult):
    """extract: the interval's read (sources.WindowStats) and its matured labels."""

    FILE: ClassVar[str] = "extract.json"
    rows: int
    labelled_rows: int = 0  # exact count of matured labels (the policy's label guard sums it)
    labelled_read_rows: int = 0  # how many of them were read (a sample above source.sample_rows)
    label_problems: list[dict[str, Any]] = field(default_factory=list)
    read_at: str | None = None  # ISO time the read began: publish refuses a record written after it
    schema_problems: list[str] = field(default_factory=list)
    type_problems: list[dict[str, Any]] = field(default_factory=list)
    sampled: bool = False
    facts: dict[str, Any] | None = None  # the database's exact facts of a sampled window


@dataclass(frozen=True)
class QualityResult(StepResult):
    """check_quality: the Great Expectations suite's outcome (quality.QualityResult.to_dict)."""

    FILE: ClassVar[str] = "quality.json"
    passed_critical: bool
    checks: list[dict[str, Any]] = field(default_factory=list)  # family, column, severity, success, ...
    summary: str = ""
    expected_rows: float | None = None

    def failed(self, severity: str) -> list[dict[str, Any]]:
        return [c for c in self.checks if not c["success"] and c["severity"] == severity]

    def xcom(self) -> dict[str, Any]:
        return {
            "passed_critical": self.passed_critical,
            "critical_failures": len(self.failed("critical")),
            "warnings": len(self.failed("warning")),
        }


@dataclass(frozen=True)
class DriftResult(StepResult):
    """detect_drift: per-feature verdicts (drift.DriftResult.to_dict), or why there are none:
    `skipped` (no rows) or `error` (the step failed; the run is degraded)."""

    FILE: ClassVar[str] = "drift.json"
    drift_share: float | None = field(default=None, metadata=OMIT_NONE)
    drifted_features: list[str] | None = field(default=None, metadata=OMIT_NONE)
    features: list[dict[str, Any] | None] | None = field(default=None, metadata=OMIT_NONE)
    weighted_share: float | None = field(default=None, metadata=OMIT_NONE)
    dataset_drift: bool | None = field(default=None, metadata=OMIT_NONE)
    calibration: dict[str, Any] | None = field(default=None, metadata=OMIT_NONE)
    insufficient_features: list[str] | None = field(default=None, metadata=OMIT_NONE)
    render_errors: dict[str, str] | None = field(default=None, metadata=OMIT_NONE)
    degraded: bool | None = field(default=None, metadata=OMIT_NONE)
    summary: str | None = field(default=None, metadata=OMIT_NONE)
    skipped: Any = field(
        default=None, metadata=OMIT_NONE
    )  # the reason (text) when no drift was computed; per column otherwise
    error: str | None = field(default=None, metadata=OMIT_NONE)

    @property
    def lost(self) -> bool:
        """The step failed, or its report is incomplete (verdicts kept): the run is degraded."""
        return bool(self.error or self.render_errors)

    @property
    def share_threshold(self) -> float | None:
        """The reference-calibrated share trigger, when known."""
        return (self.calibration or {}).get("share_threshold")

    def xcom(self) -> dict[str, Any]:
        if self.error:
            return {"error": self.error}
        if isinstance(self.skipped, str):
            return {"skipped": self.skipped}
        return {"drift_share": self.drift_share, "drifted_features": self.drifted_features, "degraded": self.degraded}


@dataclass(frozen=True)
class Estimate(StepResult):
    """The primary metric estimated before labels (estimation.Estimate.to_dict)."""

    FILE: ClassVar[str] = ""  # part of evaluate.json
    value: float | None = None
    lower: float | None = None
    upper: float | None = None

    @property
    def band(self) -> tuple[float, float] | None:
        return None if self.lower is None or self.upper is None else (float(self.lower), float(self.upper))


@dataclass(frozen=True)
class EvaluationResult(StepResult):
    """evaluate_model: realized metrics on matured labels, proxy metrics, the label-free estimate."""

    FILE: ClassVar[str] = "evaluate.json"
    metric_name: str
    metric_value: float | None = None
    labelled_rows: int = 0
    metric_rows: int = 0
    estimated: Estimate | None = field(default=None, metadata=OMIT_NONE)
    proxy: dict[str, Any] | None = field(default=None, metadata=OMIT_NONE)
    metrics: dict[str, Any] | None = field(default=None, metadata=OMIT_NONE)
    metric_se: float | None = field(default=None, metadata=OMIT_NONE)
    segments: Any = field(default=None, metadata=OMIT_NONE)
    champion_metric: float | None = None

    def xcom(self) -> dict[str, Any]:
        return {
            "metric_name": self.metric_name,
            "metric_value": self.metric_value,
            "metric_se": self.metric_se,
            "labelled_rows": self.labelled_rows,
        }


@dataclass(frozen=True)
class ShadowResult(StepResult):
    """shadow: the challenger's batch shadow scoring in this window (state none, stopped, shadow
    or error); `record` is its dg_shadow row (store.ShadowRecord.to_dict) for publish to record."""

    FILE: ClassVar[str] = "shadow.json"
    state: str
    record: dict[str, Any] | None = field(default=None, metadata=OMIT_NONE)
    note: str | None = field(default=None, metadata=OMIT_NONE)
    error: str | None = field(default=None, metadata=OMIT_NONE)
    part: bool | None = field(default=None, metadata=OMIT_NONE)  # this window's paired rows were written (SHADOW_PART)
    since_change: bool | None = field(default=None, metadata=OMIT_NONE)  # the challenger trained since a change point

    def xcom(self) -> dict[str, Any]:
        record = self.record or {}
        return {"state": self.state, "version": record.get("challenger_version"), "outcome": record.get("outcome")}


@dataclass(frozen=True)
class DecisionResult(StepResult):
    """decide: the retrain policy's decision (policy.Decision.to_dict), its summary and what the
    retraining run needs to know of it (`retrain_request`)."""

    FILE: ClassVar[str] = "decision.json"
    retrain: bool
    reasons: list[dict[str, Any]] = field(default_factory=list)  # rule, kind, fired, detail, applies_to
    summary: str = ""
    retrain_request: dict[str, Any] = field(default_factory=dict)

    def fired(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.reasons if r["kind"] == kind and r["fired"]]

    def xcom(self) -> dict[str, Any]:
        return {"retrain": self.retrain, "summary": self.summary}


@dataclass(frozen=True)
class GateVerdict(StepResult):
    """The retraining's evaluate: the gate's verdict on the candidate against the champion;
    `verdict` is gate.Verdict.to_dict with the candidate's facts (stored in dg_retrains)."""

    FILE: ClassVar[str] = "verdict.json"
    version: str
    champion_version: str | None
    promote: bool
    summary: str
    verdict: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str | None:
        return self.verdict.get("outcome")

    def xcom(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_json().items() if k != "verdict"}


# Fields holding a nested result: (result class, field) -> its class.
_NESTED: dict[tuple[str, str], type[StepResult]] = {("EvaluationResult", "estimated"): Estimate}
