"""The model contract: one validated YAML document per monitored model.

Everything Driftguard does for a model is read from its contract, so the schema is
strict (unknown keys are errors) and every section has documented defaults. This
module must stay light: DAG files import it at parse time, so no pandas, no GX,
no MLflow here.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema

# --------------------------------------------------------------------------- durations

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: Any) -> timedelta:
    """Accept `90d`, `12h`, `1w`, `30m`, `45s`, a number of seconds, or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration like '2d', '12h' or '1w'")
    if isinstance(value, (int, float)):
        return timedelta(seconds=value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
    raise ValueError(f"expected a duration like '2d', '12h' or '1w', got {value!r}")


def format_duration(td: timedelta) -> str:
    seconds = int(td.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _duration_json_schema(schema: dict[str, Any]) -> None:
    # Contracts write '7d', not ISO 8601 'P7D': drop pydantic's timedelta format.
    schema.pop("format", None)
    schema.update(type="string", pattern=_DURATION.pattern)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    Field(json_schema_extra=_duration_json_schema),
]

_SHARE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


@dataclass(frozen=True)
class LabelAmount:
    """A number of labelled rows (`1000`) or a share of the champion's training rows (`10%`)."""

    amount: float
    relative: bool

    def rows(self, training_rows: int | None) -> int | None:
        """Rows needed; None when relative and the champion's training rows are unknown."""
        if not self.relative:
            return int(self.amount)
        return None if training_rows is None else math.ceil(round(self.amount * training_rows, 6))

    def __str__(self) -> str:
        return f"{self.amount * 100:g}%" if self.relative else f"{int(self.amount)}"


def parse_label_amount(value: Any) -> LabelAmount:
    if isinstance(value, LabelAmount):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a row count like 1000 or a share like '10%'")
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        if value < 0:
            raise ValueError(f"a row count must be >= 0, got {value!r}")
        return LabelAmount(float(value), relative=False)
    if isinstance(value, str):
        if value.strip().isdigit():
            return LabelAmount(float(value), relative=False)
        m = _SHARE.match(value)
        if m:
            return LabelAmount(float(m.group(1)) / 100, relative=True)
    raise ValueError(f"expected a row count like 1000 or a share of the training rows like '10%', got {value!r}")


def _label_amount_json_schema(schema: dict[str, Any]) -> None:
    schema.clear()
    schema.update(anyOf=[{"type": "integer", "minimum": 0}, {"type": "string", "pattern": _SHARE.pattern}])


LabelCount = Annotated[
    LabelAmount,
    BeforeValidator(parse_label_amount),
    PlainSerializer(lambda v: str(v) if v.relative else int(v.amount), return_type=Any),
    Field(json_schema_extra=_label_amount_json_schema),
]

_CHANGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|abs)\s*$")


@dataclass(frozen=True)
class Change:
    """A metric change threshold: relative (`5%` of the baseline) or absolute (`0.02 abs`, in
    the metric's units). Direction comes from the metric (worse = lower for ROC AUC, higher
    for MAE), never from the sign."""

    amount: float
    relative: bool

    def of(self, baseline: float) -> float:
        """The threshold in the metric's units against this baseline."""
        return self.amount * abs(baseline) if self.relative else self.amount

    def __str__(self) -> str:
        return f"{self.amount * 100:g}%" if self.relative else f"{self.amount:g} abs"


def parse_change(value: Any, *, allow_zero: bool = False) -> Change:
    """`5%` (relative), `0.02 abs` (absolute) or a bare number (absolute, as before units existed).

    A change must be > 0; a gate margin (`allow_zero`) may be 0."""
    if isinstance(value, Change):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a change like '5%' or '0.02 abs'")
    smallest = "0" if allow_zero else "> 0"
    if isinstance(value, (int, float)):
        if value < 0 or (value == 0 and not allow_zero):
            raise ValueError(f"a change must be {smallest}, got {value!r}")
        return Change(float(value), relative=False)
    if isinstance(value, str):
        m = _CHANGE.match(value)
        if m and (float(m.group(1)) > 0 or allow_zero):
            relative = m.group(2) == "%"
            return Change(float(m.group(1)) / (100 if relative else 1), relative)
    raise ValueError(f"expected a change like '5%' (relative) or '0.02 abs' (absolute), got {value!r}")


def _change_json_schema(schema: dict[str, Any]) -> None:
    schema.clear()
    schema.update(anyOf=[{"type": "string", "pattern": _CHANGE.pattern}, {"type": "number", "exclusiveMinimum": 0}])


def _margin_json_schema(schema: dict[str, Any]) -> None:
    schema.clear()
    schema.update(anyOf=[{"type": "string", "pattern": _CHANGE.pattern}, {"type": "number", "minimum": 0}])


MetricChange = Annotated[
    Change,
    BeforeValidator(parse_change),
    PlainSerializer(str, return_type=str),
    Field(json_schema_extra=_change_json_schema),
]
MetricMargin = Annotated[
    Change,
    BeforeValidator(lambda v: parse_change(v, allow_zero=True)),
    PlainSerializer(str, return_type=str),
    Field(json_schema_extra=_margin_json_schema),
]
"""A gate margin: like MetricChange, and 0 is allowed (superiority with no margin)."""

# --------------------------------------------------------------------------- secrets

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def interpolate_env(text: str, *, what: str = "value") -> str:
    """Replace `${VAR}` with the environment's value; a missing variable is an error."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise ContractError([Problem("<environment>", what, f"environment variable {name} is not set")])
        return os.environ[name]

    return _ENV_REF.sub(sub, text)


def _reject_plain_secret(url: str) -> str:
    """A password in a URL must be a `${VAR}` reference, never the secret itself."""
    if _ENV_REF.fullmatch(url.strip()):
        return url
    try:
        parts = urlsplit(_ENV_REF.sub("ENV", url))
    except ValueError:
        return url
    if "@" in parts.netloc:
        userinfo = url.split("://", 1)[-1].split("@", 1)[0]
        if ":" in userinfo and not _ENV_REF.search(userinfo.split(":", 1)[1]):
            raise ValueError(
                "secret in plain text: put the password in an environment variable "
                "and write it as ${VAR} (or use conn_id with an Airflow connection)"
            )
    for key in ("password", "token", "secret", "api_key", "apikey"):
        m = re.search(rf"[?&]{key}=([^&]*)", url, re.IGNORECASE)
        if m and not _ENV_REF.fullmatch(m.group(1)):
            raise ValueError(f"secret in plain text: query parameter {key!r} must be ${{VAR}}")
    return url


# --------------------------------------------------------------------------- base


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Task(StrEnum):
    binary_classification = "binary_classification"
    regression = "regression"


class FeatureKind(StrEnum):
    numeric = "numeric"
    categorical = "categorical"


class Severity(StrEnum):
    critical = "critical"
    warning = "warning"
    off = "off"


# --------------------------------------------------------------------------- source


class LabelSource(_Strict):
    """Where the delayed ground truth comes from."""

    column: str = Field(description="Label column (0/1 for binary classification, a number for regression).")
    table: str | None = Field(None, description="Label table; null means the feature-log table itself.")
    join_key: str | None = Field(None, description="Key joining labels to the log; defaults to source.id_column.")
    delay: Duration = Field(timedelta(days=1), description="How long after the event a label is final.")


class Source(_Strict):
    """How to reach the production feature log."""

    url: str | None = Field(None, description="SQLAlchemy URL; `${ENV}` references are resolved at run time.")
    conn_id: str | None = Field(None, description="Airflow connection id, instead of url.")
    table: str | None = Field(None, description="Feature-log table (optionally `schema.table`).")
    query: str | None = Field(None, description="Read-only SELECT used as the log instead of a table.")
    timestamp_column: str = Field(description="Event (scoring) time column, UTC.")
    id_column: str = Field(description="Entity / event id, unique per logged prediction.")
    prediction_column: str | None = Field(
        None, description="Logged model score (probability of class 1, or the regression estimate)."
    )
    labels: LabelSource | None = Field(None, description="Delayed labels; null if none exist.")
    sample_rows: int | None = Field(
        100_000,
        ge=10_000,
        description="Larger windows are monitored on a seeded sample of about this many rows, drawn in the "
        "database; rows, newest event, nulls and duplicate ids stay exact. null = read every row.",
    )

    @model_validator(mode="after")
    def _one_location(self) -> Source:
        if (self.url is None) == (self.conn_id is None):
            raise ValueError("give exactly one of url or conn_id")
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table or query (the feature-log table is missing)")
        if self.query is not None and not re.match(r"^\s*(select|with)\b", self.query, re.IGNORECASE):
            raise ValueError("query must be a read-only SELECT")
        return self

    @field_validator("url")
    @classmethod
    def _no_secret(cls, v: str | None) -> str | None:
        return None if v is None else _reject_plain_secret(v)

    @field_validator("table")
    @classmethod
    def _table_name(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z_][\w$]*(\.[A-Za-z_][\w$]*)?", v):
            raise ValueError(f"{v!r} is not a table name (use query for anything else)")
        return v

    @property
    def label_key(self) -> str:
        return (self.labels.join_key if self.labels and self.labels.join_key else None) or self.id_column


# --------------------------------------------------------------------------- features


class Feature(_Strict):
    name: str = Field(description="Column name in the feature log.")
    kind: FeatureKind = Field(description="`numeric` or `categorical`.")
    nullable: bool = Field(True, description="False makes any null a critical quality failure.")
    range: tuple[float, float] | None = Field(None, description="Expected [min, max]; else learned from the reference.")
    domain: list[str] | None = Field(None, description="Expected categories; else learned from the reference.")
    segment: bool = Field(False, description="Slice metrics and promotion guardrails by this column.")

    @model_validator(mode="after")
    def _kind_specific(self) -> Feature:
        if self.range is not None:
            if self.kind is not FeatureKind.numeric:
                raise ValueError("range applies to numeric features only")
            if self.range[0] > self.range[1]:
                raise ValueError("range must be [min, max] with min <= max")
        if self.domain is not None and self.kind is not FeatureKind.categorical:
            raise ValueError("domain applies to categorical features only")
        return self


# --------------------------------------------------------------------------- sections


class ReferenceWindow(_Strict):
    """Bootstrap reference used until a champion with its own reference exists."""

    start: datetime | None = Field(None, description="Start of the bootstrap window (UTC).")
    end: datetime | None = Field(None, description="End of the bootstrap window (UTC, exclusive).")
    sample_size: int = Field(100_000, ge=1000, description="Rows kept in the reference sample.")

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            return v.replace(tzinfo=UTC)
        return v


class VolumeCheck(_Strict):
    min_ratio: float = Field(0.5, gt=0, description="Rows below min_ratio x the usual volume fail.")
    max_ratio: float = Field(2.0, gt=0, description="Rows above max_ratio x the usual volume fail.")
    required: bool = Field(True, description="An empty interval raises an alert.")
    severity: Severity = Field(Severity.warning, description="Severity of a volume failure.")


class QualityConfig(_Strict):
    """Great Expectations suite generated from the contract and the reference profile."""

    null_tolerance: float = Field(0.05, ge=0, le=1, description="Allowed rise in null share over the reference.")
    range_mostly: float = Field(0.99, gt=0, le=1, description="Share of values that must fall in range.")
    unseen_category_share: float = Field(0.01, ge=0, le=1, description="Allowed share of unseen categories.")
    freshness: Duration = Field(timedelta(days=1), description="Newest event must be at most this old at interval end.")
    volume: VolumeCheck = Field(VolumeCheck(), description="Row count vs the usual volume.")
    severity: dict[str, Severity] = Field(
        default_factory=lambda: {
            "schema": Severity.critical,
            "types": Severity.critical,
            "finite": Severity.critical,
            "not_null": Severity.critical,
            "nulls": Severity.warning,
            "ranges": Severity.warning,
            "domains": Severity.warning,
            "freshness": Severity.warning,
            "duplicates": Severity.critical,
            "volume": Severity.warning,
            "labels": Severity.critical,
        },
        description="Severity per check family; critical failures block retraining.",
    )

    @field_validator("severity")
    @classmethod
    def _known_families(cls, v: dict[str, Severity]) -> dict[str, Severity]:
        known = {
            "schema",
            "types",
            "finite",
            "not_null",
            "nulls",
            "ranges",
            "domains",
            "freshness",
            "duplicates",
            "volume",
            "labels",
        }
        unknown = sorted(set(v) - known)
        if unknown:
            raise ValueError(f"unknown check family {unknown}; known: {sorted(known)}")
        return {**QualityConfig.model_fields["severity"].default_factory(), **v}  # type: ignore[misc]


DriftMethod = Literal["auto", "psi", "ks", "wasserstein", "jensenshannon", "chisquare", "kl_div", "anderson"]


class FeatureDriftSpec(_Strict):
    method: DriftMethod = Field("auto", description="psi, ks, wasserstein, jensenshannon, chisquare, kl_div, anderson.")
    threshold: float | None = Field(None, gt=0, description="Method's threshold; null = the method's default.")


class DriftCalibration(_Strict):
    """How per-feature thresholds are calibrated on the reference (method `auto`)."""

    alpha: float = Field(0.002, gt=0, lt=0.5, description="Target false-alarm rate per feature and window.")
    min_chunks: int = Field(8, ge=3, description="Reference intervals needed to calibrate on time chunks.")


class DriftConfig(_Strict):
    """Evidently drift against the champion's reference."""

    method: DriftMethod = Field(
        "auto", description="Default method; auto = effect size with a threshold calibrated on the reference."
    )
    threshold: float | None = Field(None, gt=0, description="Default threshold for `method`.")
    features: dict[str, FeatureDriftSpec] = Field(default_factory=dict, description="Per-feature overrides by name.")
    sample_size: int = Field(100_000, ge=1000, description="Rows per side used for the tests (bounded sample).")
    drift_share: float = Field(0.5, gt=0, le=1, description="Dataset drift when this share of features drift.")
    min_rows: int = Field(20, ge=2, description="Fewer usable values on either side: verdict `insufficient data`.")
    min_effect: float = Field(
        0.1, ge=0, description="Smallest effect (Wasserstein in reference stds, or Jensen-Shannon) that can drift."
    )
    calibration: DriftCalibration = Field(DriftCalibration(), description="Threshold calibration on the reference.")
    prediction: bool = Field(True, description="Report prediction (score) drift.")
    target: bool = Field(True, description="Report target drift once labels mature.")


class Persistence(_Strict):
    k: int = Field(2, ge=1, description="Drift must be seen in k ...")
    n: int = Field(3, ge=1, description="... of the last n runs (this run included).")

    @model_validator(mode="after")
    def _k_le_n(self) -> Persistence:
        if self.k > self.n:
            raise ValueError("k must be <= n")
        return self


class PolicyConfig(_Strict):
    """Retrain policy: triggers propose, guards dispose."""

    drift_share: float | None = Field(0.3, gt=0, le=1, description="Trigger: share of drifted features >=.")
    drift_share_weighting: Literal["importance", "none"] = Field(
        "importance",
        description="`importance`: the share trigger weighs drifted features by the champion's permutation "
        "importance (a feature the model ignores counts 0); `none`: every feature counts 1.",
    )
    important_features: int | None = Field(3, ge=1, description="Trigger: drift in any of the top-k features.")
    metric_drop: MetricChange | None = Field(
        Change(0.05, relative=True),
        description="Trigger: realized metric worse than the champion's validation by >= (`5%` or `0.02 abs`).",
    )
    drift_needs_impact: bool = Field(
        True,
        description="Guard: drift triggers retrain only when the label-free estimate (CBPE/DLE) of the window's "
        "metric drops by the metric_drop limit (or there is no estimate); harmless drift is reported, not retrained.",
    )
    metric_drop_alpha: float = Field(
        0.01,
        gt=0,
        lt=0.5,
        description="metric_drop also needs the drop to exceed its sampling noise: a stable model's realized "
        "metric falls that far with this probability per run (one-sided, from bootstrap standard errors).",
    )
    estimated_metric_drop: MetricChange | None = Field(
        None,
        description="Trigger: the metric estimated before labels (CBPE/DLE) worse than the champion's validation "
        "by >= (`5%` or `0.02 abs`), its whole band past the baseline; null = off.",
    )
    window_growth: float | None = Field(
        3.0,
        gt=1,
        description="Trigger: a champion trained on the rows since a change (a short window) retrains when the "
        "labelled rows since its promotion reach (growth - 1) x the rows of its window, until it spans "
        "training.window; null = off.",
    )
    max_model_age: Duration | None = Field(
        timedelta(days=90), description="Review alert (never a retrain by itself): champion older than this."
    )
    cooldown: Duration = Field(timedelta(days=7), description="Guard: no retrain within this after the last.")
    persistence: Persistence = Field(Persistence(), description="Guard: drift in k of the last n runs.")
    min_new_labels: LabelCount = Field(
        LabelAmount(0.1, relative=True),
        description="Guard: labelled rows since the last promotion: a count (`1000`) or a share of the "
        "champion's training rows (`10%`).",
    )


Estimator = Literal[
    "gradient_boosting", "hist_gradient_boosting", "random_forest", "logistic_regression", "linear_regression", "ridge"
]


DEFAULT_TRAINING_WINDOW = timedelta(days=60)
"""`training.window` when the contract sets none and declares no `seasonality`."""


class TrainingConfig(_Strict):
    """Candidate training. Splits are by time *and* by rows: see docs/gate.md for the reasoning."""

    estimator: Estimator = Field("hist_gradient_boosting", description="scikit-learn model family.")
    params: dict[str, Any] = Field(default_factory=dict, description="Passed to the scikit-learn estimator.")
    seed: int = Field(42, description="Seeds the estimator and importances.")
    window: Duration | Literal["all"] | None = Field(
        None,
        description="Sliding training window or `all`; null = 60d, or with `seasonality` one full period (plus "
        "validation and holdout). A window set shorter than the period is used as given, and the gate's seasonal "
        "guardrail then checks the candidate on the previous cycle's coming phase.",
    )
    validation: Duration = Field(
        timedelta(days=7),
        description="Validation period before the holdout (reported, not decided on: folded into train when it "
        "lacks min_holdout_rows or a class).",
    )
    holdout: Duration = Field(
        timedelta(days=7),
        description="Most recent labelled period: out-of-time holdout, widened back in time to min_holdout_rows.",
    )
    min_holdout_rows: int = Field(
        20, ge=5, description="Holdout rows the gate needs at least (the period widens until it has them)."
    )
    min_train_rows: int = Field(30, ge=5, description="Fewer training rows: the retrain is `insufficient data`.")
    min_class_rows: int = Field(
        5, ge=1, description="Binary: rows of each class needed in train and holdout (else widened or insufficient)."
    )
    max_holdout_share: float = Field(
        0.5, gt=0, lt=1, description="Bound on widening: the holdout takes at most this share of the labelled rows."
    )
    change_aware: bool = Field(
        True,
        description="After a change point (from the trigger), train on rows since the change only; wait "
        "(`insufficient data`) until there are enough.",
    )
    max_rows: int = Field(500_000, ge=1000, description="Cap on training rows (most recent kept).")


class BootstrapConfig(_Strict):
    samples: int = Field(1000, ge=100, description="Resamples (B).")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Two-sided CI level.")
    seed: int = Field(0, description="Same seed, same verdict.")


class SegmentGuard(_Strict):
    min_rows: int = Field(200, ge=1, description="Segments smaller than this are not tested.")
    margin: MetricMargin = Field(
        Change(0.025, relative=True),
        description="Largest allowed metric loss in any segment: `2.5%` of the champion's segment metric or "
        "`0.02 abs`.",
    )
    alpha: float = Field(0.05, gt=0, lt=1, description="Family-wise error rate (Holm).")


class CalibrationGuard(_Strict):
    metric: Literal["brier", "ece"] = Field("brier", description="Calibration measure.")
    tolerance: float = Field(0.01, ge=0, description="Allowed worsening vs the champion.")


class ShadowConfig(_Strict):
    enabled: bool = Field(
        True,
        description="A challenger whose gate was `insufficient evidence` scores the next monitoring windows beside "
        "the champion; once their matured labels clear the gate, it is promoted (docs/gate.md).",
    )
    max_windows: int = Field(
        12, ge=1, description="Shadowing ends (`expired`) after this many monitoring windows without a verdict."
    )


class PromotionConfig(_Strict):
    """Champion-vs-challenger gate, in MLflow MetricThreshold's vocabulary."""

    metric: str | None = Field(None, description="Primary metric; default roc_auc (binary) or rmse (regression).")
    greater_is_better: bool | None = Field(None, description="Default from the metric.")
    min_absolute_change: float = Field(0.0, ge=0, description="Required gain (0 = not set), as MetricThreshold.")
    min_relative_change: float = Field(0.0, ge=0, description="Required relative gain (0 = not set).")
    mode: Literal["superiority", "non_inferiority"] = Field(
        "non_inferiority",
        description="superiority: promote when the gain CI's lower bound > +margin (a tie never promotes); "
        "non_inferiority: when it is > -margin (the challenger is at most `margin` worse).",
    )
    margin: MetricMargin = Field(
        Change(0.01, relative=True),
        description="Gate margin on the primary metric: relative to the champion's holdout metric (`1%`) or "
        "absolute in the metric's units (`0.005 abs`); direction-aware.",
    )
    power: float = Field(
        0.8,
        gt=0.5,
        lt=1,
        description="Planned power for a gain of one margin: an inconclusive CI on fewer rows than that needs is "
        "`insufficient evidence`, not a rejection.",
    )
    bootstrap: BootstrapConfig = Field(BootstrapConfig(), description="Paired bootstrap of the metric gain.")
    segments: SegmentGuard = Field(SegmentGuard(), description="Per-segment guardrails.")
    calibration: CalibrationGuard = Field(CalibrationGuard(), description="Classifiers only.")
    latency_budget_ms: float = Field(
        2000.0, gt=0, description="Ceiling on one thread's CPU ms to predict 1,000 rows, in a fresh process."
    )
    latency_ratio: float = Field(
        3.0, ge=1, description="Max challenger/champion predict time, timed on the same batch in that process."
    )
    floors: dict[str, float] = Field(default_factory=dict, description="Absolute floors for a first champion.")
    shadow: ShadowConfig = Field(ShadowConfig(), description="Batch shadow scoring of an undecided challenger.")
    require_approval: bool = Field(False, description="Wait for human approval (Airflow HITL) before promoting.")
    rollback_on_unservable: bool = Field(True, description="Roll back a champion that no longer loads.")


class AlertRoute(_Strict):
    kind: Literal["log", "webhook", "slack", "email"] = Field(description="log always works; others need url/to.")
    url: str | None = Field(None, description="webhook/slack URL; secrets as ${VAR}.")
    to: list[str] | None = Field(None, description="email recipients (SMTP from DRIFTGUARD_SMTP_*).")

    @model_validator(mode="after")
    def _target(self) -> AlertRoute:
        if self.kind in ("webhook", "slack") and not self.url:
            raise ValueError(f"{self.kind} route needs url")
        if self.kind == "email" and not self.to:
            raise ValueError("email route needs to")
        if self.url:
            _reject_plain_secret(self.url)
            if self.kind == "slack" and not _ENV_REF.search(self.url):
                raise ValueError("secret in plain text: a Slack webhook URL is a secret; write it as ${VAR}")
        return self


class AlertConfig(_Strict):
    routes: list[AlertRoute] = Field(default_factory=lambda: [AlertRoute(kind="log")], description="Where alerts go.")
    runbook_url: str = Field(
        "/driftguard/runbook",
        description="Linked from every alert. The default is the runbook page the Airflow plugin serves; an alert "
        "adds its kind's section (`#drift`).",
    )
    repeat_after: Duration = Field(timedelta(days=1), description="Re-send an unchanged alert after this.")


# --------------------------------------------------------------------------- contract

# What a DAG's preset means to Airflow 3 (airflow.utils.dates.cron_presets); @annually as croniter reads it.
CRON_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_CRON_PRESETS = {"@once", *CRON_PRESETS}


def _check_schedule(v: str) -> str:
    if v in _CRON_PRESETS:
        return v
    from croniter import croniter  # light; Airflow's own dependency

    if not croniter.is_valid(v):
        raise ValueError(f"{v!r} is not a cron expression or one of {sorted(_CRON_PRESETS)}")
    return v


class ModelContract(_Strict):
    """One monitored model."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$", description="Model id: registry name and DAG id part.")
    description: str = Field("", description="Shown in the DAG docs and report pages.")
    task: Task = Field(description="`binary_classification` or `regression`.")
    decision_threshold: float = Field(0.5, gt=0, lt=1, description="Score threshold for class 1 (F1 etc.).")
    owners: list[str] = Field(min_length=1, description="DAG owners; alert addressees.")
    alerts: AlertConfig = Field(AlertConfig(), description="Alert routes and de-duplication.")
    schedule: Annotated[str, BeforeValidator(lambda v: _check_schedule(str(v)))] = Field(
        "@daily", description="Cron expression or preset; one data interval per run."
    )
    start_date: date = Field(description="First data interval the DAGs schedule (UTC).")
    catchup: bool = Field(False, description="Backfill missed intervals when the DAG is first unpaused.")
    source: Source = Field(description="The feature log.")
    features: list[Feature] = Field(min_length=1, description="Model inputs, monitored one by one.")
    reference: ReferenceWindow = Field(ReferenceWindow(), description="Bootstrap reference.")
    seasonality: Duration | None = Field(
        None,
        description="Seasonal period (`365d`, `7d`): training windows span at least one period and the gate "
        "adds a same-phase guardrail on the previous cycle.",
    )
    quality: QualityConfig = Field(QualityConfig(), description="Data quality gate.")
    drift: DriftConfig = Field(DriftConfig(), description="Drift detection.")
    policy: PolicyConfig = Field(PolicyConfig(), description="Retrain decision.")
    training: TrainingConfig = Field(TrainingConfig(), description="Candidate training.")
    promotion: PromotionConfig = Field(PromotionConfig(), description="Champion-vs-challenger gate.")

    @field_validator("features")
    @classmethod
    def _unique_features(cls, v: list[Feature]) -> list[Feature]:
        names = [f.name for f in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate feature names: {dupes}")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> ModelContract:
        names = [f.name for f in self.features]
        reserved = {self.source.timestamp_column, self.source.id_column, self.source.prediction_column}
        if self.source.labels:
            reserved.add(self.source.labels.column)
        clash = sorted(set(names) & reserved)
        if clash:
            raise ValueError(f"features {clash} are also the timestamp, id, prediction or label column")
        unknown = sorted(set(self.drift.features) - set(names))
        if unknown:
            raise ValueError(f"drift.features names unknown features {unknown}")
        metric = self.primary_metric
        allowed = BINARY_METRICS if self.task is Task.binary_classification else REGRESSION_METRICS
        if metric not in allowed:
            raise ValueError(f"promotion.metric {metric!r} is not a {self.task.value} metric {sorted(allowed)}")
        bad_floor = sorted(set(self.promotion.floors) - set(allowed))
        if bad_floor:
            raise ValueError(f"promotion.floors names unknown metrics {bad_floor}")
        return self

    # Derived views, so later steps never re-derive them differently.
    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if f.kind is FeatureKind.numeric]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if f.kind is FeatureKind.categorical]

    @property
    def segment_features(self) -> list[str]:
        return [f.name for f in self.features if f.segment]

    def feature(self, name: str) -> Feature:
        return next(f for f in self.features if f.name == name)

    @property
    def primary_metric(self) -> str:
        return self.promotion.metric or ("roc_auc" if self.task is Task.binary_classification else "rmse")

    @property
    def greater_is_better(self) -> bool:
        if self.promotion.greater_is_better is not None:
            return self.promotion.greater_is_better
        return self.primary_metric in GREATER_IS_BETTER

    @property
    def training_window(self) -> timedelta | None:
        """The sliding training window (None = `all`). Unset, it is DEFAULT_TRAINING_WINDOW or, with
        `seasonality`, as long as train covers at least one full period after validation and holdout
        are taken, so a candidate has seen every phase. A window the contract sets is used as given,
        also when it is shorter than the period: the gate's seasonal guardrail checks such a
        candidate on the previous cycle's coming phase (docs/gate.md)."""
        cfg = self.training
        if cfg.window == "all":
            return None
        if cfg.window is not None:
            return cfg.window
        if self.seasonality is not None:
            return max(DEFAULT_TRAINING_WINDOW, self.seasonality + cfg.validation + cfg.holdout)
        return DEFAULT_TRAINING_WINDOW

    @property
    def shorter_than_season(self) -> bool:
        """The contract sets a training window shorter than one seasonal period (train, validation
        and holdout together): candidates may not have seen the coming phase."""
        window = self.training_window
        return self.seasonality is not None and window is not None and window < self.seasonality

    @property
    def registered_model_name(self) -> str:
        return self.name

    def drift_spec(self, feature: str) -> FeatureDriftSpec:
        """Effective method and threshold: the feature's override, else the section default.

        A threshold belongs to a method, so the default threshold only applies when the
        default method does."""
        spec = self.drift.features.get(feature)
        if spec is None or spec.method == "auto" or spec.method == self.drift.method:
            threshold = spec.threshold if spec and spec.threshold is not None else self.drift.threshold
            return FeatureDriftSpec(method=self.drift.method, threshold=threshold)
        return spec


def unit_warnings(contract: ModelContract) -> list[str]:
    """Absolute margins and drops on a scale-dependent metric (MAE, RMSE): `0.005 abs` means
    nothing without knowing the target's scale (for MAE 7-120 it turned non-inferiority into a
    superiority test), so `driftguard check` warns; relative units (`2%`) carry over."""
    metric = contract.primary_metric
    if metric not in SCALE_DEPENDENT_METRICS:
        return []
    fields = {
        "promotion.margin": contract.promotion.margin,
        "promotion.segments.margin": contract.promotion.segments.margin,
        "policy.metric_drop": contract.policy.metric_drop,
        "policy.estimated_metric_drop": contract.policy.estimated_metric_drop,
    }
    return [
        f"{name}: {change} is absolute on {metric}, whose scale is the target's; a relative change ('2%') "
        f"means the same on any scale (keep {change.amount:g} abs only if {change.amount:g} {metric} units is meant)"
        for name, change in fields.items()
        if change is not None and not change.relative and change.amount > 0
    ]


SCALE_DEPENDENT_METRICS = {"mae", "rmse"}
BINARY_METRICS = {"roc_auc", "log_loss", "f1", "brier", "accuracy", "precision", "recall"}
REGRESSION_METRICS = {"mae", "rmse", "r2"}
GREATER_IS_BETTER = {"roc_auc", "f1", "accuracy", "precision", "recall", "r2"}

# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Problem:
    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"


class ContractError(ValueError):
    """One or more problems in one or more contract files."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item and not str(item).startswith("function-"):
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "<root>"


def _feature_labels(raw: Any, loc: tuple[Any, ...]) -> str:
    """`features[3]` reads better as `features[3](distance)` in an error."""
    text = _loc(loc)
    if len(loc) >= 2 and loc[0] == "features" and isinstance(loc[1], int) and isinstance(raw, dict):
        try:
            name = raw["features"][loc[1]].get("name")
        except (KeyError, IndexError, TypeError, AttributeError):
            name = None
        if name:
            text = text.replace(f"features[{loc[1]}]", f"features[{loc[1]}]({name})", 1)
    return text


# libyaml's safe loader when PyYAML has it: the same documents and errors, about 10x faster
# (DAG files load every contract at each parse).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_contract(text: str, file: str = "<string>") -> ModelContract:
    """Validate YAML text; raise ContractError naming the file and field paths."""
    try:
        raw = yaml.load(text, Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<yaml>"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ContractError([Problem(file, "<yaml>", f"unreadable YAML at {where}: {problem}")]) from None
    if not isinstance(raw, dict):
        raise ContractError([Problem(file, "<root>", "expected a mapping of contract fields")])
    try:
        return ModelContract.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field (check the spelling; see the contract reference in docs/contract-reference.md)"
            problems.append(Problem(file, _feature_labels(raw, err["loc"]), msg))
        raise ContractError(problems) from None


def load_contract(path: str | Path) -> ModelContract:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractError([Problem(str(path), "<file>", f"cannot read: {exc.strerror}")]) from None
    contract = parse_contract(text, str(path))
    if contract.name != path.stem:
        raise ContractError([Problem(str(path), "name", f"must match the file name ({path.stem!r})")])
    return contract


def model_contract(model: str | ModelContract, models_dir: str | Path) -> ModelContract:
    """The contract itself, or the named model's file in `models_dir` (Airflow tasks pass names)."""
    return model if isinstance(model, ModelContract) else load_contract(Path(models_dir) / f"{model}.yaml")


def contract_files(directory: str | Path) -> list[Path]:
    directory = Path(directory)
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


@dataclass(frozen=True)
class LoadResult:
    contracts: dict[str, ModelContract]
    errors: dict[str, ContractError]


def load_contracts(paths: Iterable[str | Path]) -> LoadResult:
    """Load many contracts; one broken file never hides the others."""
    contracts: dict[str, ModelContract] = {}
    errors: dict[str, ContractError] = {}
    for path in paths:
        try:
            contract = load_contract(path)
        except ContractError as exc:
            errors[str(path)] = exc
            continue
        if contract.name in contracts:
            errors[str(path)] = ContractError([Problem(str(path), "name", f"model {contract.name!r} is defined twice")])
            continue
        contracts[contract.name] = contract
    return LoadResult(contracts, errors)


def iter_problems(result: LoadResult) -> Iterator[Problem]:
    for exc in result.errors.values():
        yield from exc.problems


class _ContractJsonSchema(GenerateJsonSchema):
    def encode_default(self, dft: Any) -> Any:
        # pydantic encodes a timedelta default by its type (ISO 'P7D'), not by Duration's serializer.
        return format_duration(dft) if isinstance(dft, timedelta) else super().encode_default(dft)


def json_schema() -> dict[str, Any]:
    schema = ModelContract.model_json_schema(schema_generator=_ContractJsonSchema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Driftguard model contract"
    return schema


def _default_text(field: Any) -> str:
    from pydantic_core import PydanticUndefined

    if field.is_required():
        return "**required**"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is PydanticUndefined:
        return ""
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, timedelta):
        return f"`{format_duration(value)}`"
    if isinstance(value, (Change, LabelAmount)):
        return f"`'{value}'`"  # as written in the YAML (`5%`, `0.02 abs`, `1000`)
    if isinstance(value, Enum):
        return f"`{value.value}`"
    if isinstance(value, dict):
        value = {k: (v.value if isinstance(v, Enum) else v) for k, v in value.items()}
    if isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    return f"`{value!r}`" if value is not None else "`null`"


def reference_markdown() -> str:
    """The contract reference as Markdown tables: docs/contract-reference.md holds this text between
    its `contract-reference` markers (tests/unit/test_readme.py checks it)."""
    lines: list[str] = []

    def section(model: type[BaseModel], prefix: str) -> None:
        nested: list[tuple[type[BaseModel], str]] = []
        lines.append("| field | default | meaning |\n|---|---|---|")
        for name, field in model.model_fields.items():
            path = f"{prefix}{name}"
            desc = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{path}` | {_default_text(field).replace('|', chr(92) + '|')} | {desc} |")
            ann = field.annotation
            is_container = getattr(ann, "__origin__", None) in (list, dict)
            for candidate in getattr(ann, "__args__", ()) or (ann,):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    suffix = "[]." if is_container and getattr(ann, "__origin__", None) is list else "."
                    if is_container and getattr(ann, "__origin__", None) is dict:
                        suffix = ".<name>."
                    nested.append((candidate, f"{path}{suffix}"))
        for sub, sub_prefix in nested:
            doc = (sub.__doc__ or "").strip().splitlines()[0] if sub.__doc__ else ""
            lines.append(f"\n**`{sub_prefix[:-1]}`**{': ' + doc if doc else ''}\n")
            section(sub, sub_prefix)

    section(ModelContract, "")
    return "\n".join(lines) + "\n"
