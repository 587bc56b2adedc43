"""Batch shadow scoring: a challenger the gate could not judge scores the next monitoring windows
beside the champion until the paired evidence decides. Pure: no I/O here (the monitoring steps
read and write, see driftguard.monitoring.monitor.shadow / promote_shadow and driftguard.retraining.retrain).

A session, one challenger at a time per model (docs/gate.md, "Batch shadow scoring"):

1. A retrain whose gate outcome is `insufficient_evidence` keeps its candidate as @challenger and
   opens a session: the gate's holdout (label, champion and challenger scores, segment values) is
   its first evidence (a `holdout` part). A `rejected` candidate was conclusively worse: it is
   never shadowed.
2. Every monitoring window after that scores the window's rows with the challenger too, on
   features only: `disagreement` and `prediction_shift` (:func:`compare_scores`). The window's
   matured labelled rows whose events came after the challenger's training cut-off become paired
   rows (a `window` part, :func:`evidence_frame`).
3. The gate's checks that apply to scores alone (`gate.evaluate_paired`: output_sanity, metric
   threshold, significance, segment guardrails, calibration) judge the holdout and every window's
   rows together (:func:`pool`, :func:`judge`); :func:`decide` turns the verdict into the outcome:
   promote, keep shadowing, rejected, or expired after `promotion.shadow.max_windows` windows.
4. A change of champion (any promotion or rollback) stops the session; a newer retrain replaces it.

Parts are keyed by interval (and rows by id), so a rerun of an interval replaces its part and
never counts a row twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from driftguard.contract import ModelContract, Task
from driftguard.store import ShadowRecord

if TYPE_CHECKING:
    from driftguard.retraining.gate import GateVerdict

SHADOWING, PROMOTE, REJECTED, EXPIRED, STOPPED, REPLACED = (
    "shadowing", "promote", "rejected", "expired", "stopped", "replaced",
)  # fmt: skip
TERMINAL = frozenset({PROMOTE, REJECTED, EXPIRED, STOPPED, REPLACED})
"""Outcomes that end a session: nothing more is scored or added for that challenger."""
HOLDOUT, WINDOW, END = "holdout", "window", "end"

# Columns of an evidence frame (one paired labelled row each).
ID, TS, Y, CHAMPION, CHALLENGER = "id", "ts", "y", "champion", "challenger"
SEGMENT = "segment:"
"""Prefix of the segment-value columns (`segment:region`)."""


# --------------------------------------------------------------------------- one window


@dataclass(frozen=True)
class Comparison:
    """The two models' scores on the same window rows (no labels)."""

    rows: int
    disagreement: float | None
    prediction_shift: float | None
    score_distance: float | None
    champion_mean: float | None = None
    challenger_mean: float | None = None


def compare_scores(task: Task, champion: Any, challenger: Any, *, threshold: float) -> Comparison:
    """How far the challenger's scores are from the champion's on the rows both scored.

    - ``disagreement``: binary, the share of rows whose class at ``threshold`` (score >=
      threshold is class 1) differs; regression, mean |challenger - champion| / mean |champion|
      (None when the champion's mean |score| is 0);
    - ``prediction_shift``: mean(challenger) - mean(champion), in score units;
    - ``score_distance``: the Wasserstein-1 distance between the two score distributions (equal
      row counts: the mean absolute difference of the sorted scores), in score units."""
    a, b = np.asarray(champion, dtype=float).ravel(), np.asarray(challenger, dtype=float).ravel()
    if a.size != b.size:
        raise ValueError(f"compare_scores needs paired scores; got {a.size} champion and {b.size} challenger")
    both = np.isfinite(a) & np.isfinite(b)
    a, b = a[both], b[both]
    if not a.size:
        return Comparison(0, None, None, None)
    if task is Task.binary_classification:
        disagreement: float | None = float(np.mean((a >= threshold) != (b >= threshold)))
    else:
        scale = float(np.mean(np.abs(a)))
        disagreement = float(np.mean(np.abs(b - a)) / scale) if scale > 0 else None
    return Comparison(
        rows=int(a.size),
        disagreement=disagreement,
        prediction_shift=float(b.mean() - a.mean()),
        score_distance=float(np.mean(np.abs(np.sort(a) - np.sort(b)))),
        champion_mean=float(a.mean()),
        challenger_mean=float(b.mean()),
    )


def evidence_frame(
    frame: pd.DataFrame,
    contract: ModelContract,
    *,
    champion: Any,
    challenger: Any,
    after: datetime | None = None,
) -> pd.DataFrame:
    """The paired rows a labelled frame adds: its rows with a label and both scores finite, and,
    with ``after``, whose event time is later (the challenger's training cut-off: rows it may have
    been trained on are never evidence). Columns ID, TS, Y, CHAMPION, CHALLENGER and one
    ``segment:<feature>`` per segment feature."""
    src = contract.source
    label = src.labels.column if src.labels else None
    if label is None or label not in frame.columns:
        raise ValueError(f"model {contract.name!r}: shadow evidence needs the label column in the labelled rows")
    n = len(frame)
    ids = frame[src.id_column].astype(str).to_numpy() if src.id_column in frame.columns else np.arange(n).astype(str)
    ts = (
        pd.DatetimeIndex(pd.to_datetime(frame[src.timestamp_column], utc=True))
        if src.timestamp_column in frame.columns
        else pd.DatetimeIndex([pd.NaT] * n, tz="UTC")
    )
    out = pd.DataFrame(
        {
            ID: ids,
            TS: ts,
            Y: pd.to_numeric(frame[label], errors="coerce").to_numpy(dtype=float),
            CHAMPION: np.asarray(champion, dtype=float).ravel(),
            CHALLENGER: np.asarray(challenger, dtype=float).ravel(),
        }
    )
    for col in contract.segment_features:
        if col in frame.columns:
            values = frame[col].astype(object).to_numpy()
            out[f"{SEGMENT}{col}"] = [None if pd.isna(v) else str(v) for v in values]
    keep = np.isfinite(out[[Y, CHAMPION, CHALLENGER]].to_numpy(dtype=float)).all(axis=1)
    if after is not None:
        keep &= np.asarray(ts > pd.Timestamp(after), dtype=bool)
    return out[keep].reset_index(drop=True)


# --------------------------------------------------------------------------- accumulation


def pool(parts: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Every part's rows, the holdout first and then the windows in time order (part names are
    the intervals' UTC stamps, which sort by time), each row once: a row id seen in an earlier
    part is not counted again. A rerun of an interval is the same key, so it replaces its part."""
    order = sorted(parts, key=lambda k: (k != HOLDOUT, k))
    frames = [parts[k] for k in order if len(parts[k])]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in (Y, CHAMPION, CHALLENGER)})
    out = pd.concat(frames, ignore_index=True)
    if ID in out.columns:
        out = out[~out[ID].astype(str).duplicated(keep="first")].reset_index(drop=True)
    return out


def look_confidence(contract: ModelContract) -> float:
    """The CI level of one shadow look: the gate's error rate split over the `max_windows` looks
    (Bonferroni). Looking again after every window at the gate's own level promoted a challenger
    no better than the champion 7.8% of the time instead of 2.5% (benchmarks/shadow_looks.py);
    split this way the shadow looks together add at most the gate's own one-sided error."""
    confidence = contract.promotion.bootstrap.confidence
    return 1.0 - (1.0 - confidence) / contract.promotion.shadow.max_windows


def judge(contract: ModelContract, pooled: pd.DataFrame) -> GateVerdict:
    """The gate on the pooled paired rows (`gate.evaluate_paired`), segments included, at the
    per-look confidence (:func:`look_confidence`)."""
    from driftguard.retraining import gate

    promo = contract.promotion
    boot = promo.bootstrap.model_copy(update={"confidence": look_confidence(contract)})
    contract = contract.model_copy(update={"promotion": promo.model_copy(update={"bootstrap": boot})})

    segments = {
        c: pooled[f"{SEGMENT}{c}"].to_numpy(dtype=object)
        for c in contract.segment_features
        if f"{SEGMENT}{c}" in pooled.columns
    }
    return gate.evaluate_paired(
        contract,
        y_true=pooled[Y].to_numpy(dtype=float),
        champion_scores=pooled[CHAMPION].to_numpy(dtype=float),
        challenger_scores=pooled[CHALLENGER].to_numpy(dtype=float),
        segments=segments,
    )


# --------------------------------------------------------------------------- the decision


@dataclass(frozen=True)
class Decision:
    """What the accumulated evidence says after one shadow window."""

    outcome: str  # shadowing | promote | rejected | expired
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.outcome in TERMINAL


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _windows(n: int) -> str:
    return f"{n} shadow window{'s' if n != 1 else ''}"


def decide(
    verdict: GateVerdict | None,
    *,
    windows: int,
    rows: int,
    holdout_rows: int,
    max_windows: int,
    problem: str | None = None,
) -> Decision:
    """Promote, keep shadowing, or stop, from the gate's verdict on the pooled rows.

    ``windows``: shadow windows so far, this one included; ``rows``: the paired rows judged, of
    which ``holdout_rows`` came from the registration's holdout. ``verdict`` None: nothing could be
    judged this window (``problem`` says why, e.g. the challenger could not score).

    - the verdict promotes: ``promote``, with the record "promoted after k shadow windows: 95% CI
      of the <metric> gain [lo, hi] on n rows";
    - it rejects (a conclusive CI, or a failed sanity, metric-threshold, segment or calibration
      check): ``rejected``, shadowing ends;
    - insufficient evidence (or no verdict): ``shadowing``, until ``max_windows`` windows have
      passed, then ``expired``."""
    numbers: dict[str, Any] = {"windows": windows, "rows": rows, "holdout_rows": holdout_rows}
    ci = ""
    if verdict is not None:
        try:
            sig = verdict.check("significance").numbers
        except KeyError:
            sig = {}
        numbers.update(
            metric=verdict.metric,
            ci_low=_num(sig.get("ci_low")),
            ci_high=_num(sig.get("ci_high")),
            bound=_num(sig.get("bound")),
            rows_needed=int(sig["rows_needed"]) if _num(sig.get("rows_needed")) is not None else None,
            confidence=_num(sig.get("confidence")),
        )
        if numbers["ci_low"] is not None and numbers["ci_high"] is not None:
            conf = numbers["confidence"] or 0.95
            ci = (
                f"{conf * 100:.4g}% CI of the {verdict.metric} gain "
                f"[{numbers['ci_low']:+.3f}, {numbers['ci_high']:+.3f}] "
                f"on {rows:,} rows ({holdout_rows:,} holdout + {rows - holdout_rows:,} shadow)"
            )
        else:
            ci = f"{rows:,} paired rows"
    if verdict is not None and verdict.promote:
        return Decision(PROMOTE, f"promoted after {_windows(windows)}: {ci}", numbers)
    if verdict is not None and verdict.outcome == "reject":
        return Decision(REJECTED, f"rejected after {_windows(windows)}: " + "; ".join(verdict.reasons()), numbers)
    if verdict is None:
        why = f"no verdict this window: {problem or 'nothing to judge'}"
    else:
        needed = numbers.get("rows_needed")
        bound = numbers.get("bound")
        contains = f" contains the bound {bound:+.3f}" if bound is not None else " is inconclusive"
        why = f"{ci}{contains}" + (f"; about {needed:,} rows needed" if needed else "")
    if windows >= max_windows:
        return Decision(EXPIRED, f"expired after {_windows(windows)} (promotion.shadow.max_windows): {why}", numbers)
    return Decision(SHADOWING, f"shadowing, {_windows(windows)} of at most {max_windows}: {why}", numbers)


# --------------------------------------------------------------------------- which challenger shadows


@dataclass(frozen=True)
class Plan:
    """What this window does about shadowing: ``none`` (nothing shadows; ``note`` says why when
    there is something to say), ``stop`` (the session's champion is no longer @champion: record
    that it stopped) or ``shadow`` (score, add the evidence, judge)."""

    action: str
    note: str = ""
    session: ShadowRecord | None = None  # the session's holdout row
    windows: int = 0  # with action shadow/stop: this window's number in the session
    parts: tuple[str, ...] = ()  # earlier evidence parts to pool: the holdout, then windows with rows

    @property
    def version(self) -> str | None:
        return None if self.session is None else self.session.challenger_version


def _not_shadowed(retrain: Mapping[str, Any] | None) -> str:
    """Why the latest retrain's candidate (kept as @challenger) does not shadow, if it was not promoted."""
    if not retrain or not retrain.get("candidate_version"):
        return ""
    version, status = retrain["candidate_version"], retrain.get("status")
    if status == "rejected":
        return f"challenger v{version} is not shadowed: its gate rejected it conclusively"
    if status == "declined":
        return f"challenger v{version} is not shadowed: a reviewer declined its promotion"
    if status == "aborted":
        return f"challenger v{version} is not shadowed: its promotion was aborted (the champion moved)"
    return ""


def plan(
    records: Sequence[ShadowRecord],
    *,
    champion: str | None,
    start: datetime,
    enabled: bool = True,
    latest_retrain: Mapping[str, Any] | None = None,
) -> Plan:
    """Which challenger (if any) shadows the window starting at ``start``, scored by ``champion``.

    The session is the one whose holdout part was recorded last before the window (a newer
    retrain replaces an older session). It shadows unless it already ended (a terminal outcome
    before this window, or a later one: a rerun of an earlier window does not reopen a session),
    or its promotion was acted on at this very window (a rerun keeps the record). If @champion
    is no longer the version the session compares against, the session stops. The note says why
    nothing shadows: a rejected @challenger always, an ended session in the window right after."""
    if not enabled:
        return Plan("none", "shadow scoring is off (promotion.shadow.enabled)")
    opened = [r for r in records if r.kind == HOLDOUT and r.interval_end <= start]
    if not opened:
        return Plan("none", _not_shadowed(latest_retrain))
    session = max(opened, key=lambda r: (r.interval_end, _version_key(r.challenger_version)))
    version = session.challenger_version
    mine = [r for r in records if r.challenger_version == version and r.kind != HOLDOUT]
    rejected_note = _not_shadowed(latest_retrain)
    for r in mine:
        if r.outcome not in TERMINAL:
            continue
        before = r.interval_end <= start if r.kind == END else r.interval_start < start
        same = r.kind == WINDOW and r.interval_start == start
        if same and not (r.outcome == PROMOTE and r.action):
            continue  # a rerun of the deciding window decides again
        when = "before this window" if before else ("at this window" if same else "after this window")
        note = f"shadowing of v{version} ended {when} ({r.outcome}: {r.reason})"
        if before and r.interval_end < start:
            note = ""  # said by the window right after the end; later windows stay quiet
        return Plan("none", "; ".join(n for n in (rejected_note, note) if n), session)
    earlier = [r for r in mine if r.kind == WINDOW and r.interval_end <= start]
    windows = len(earlier) + 1
    if champion != session.champion_version:
        now = f"v{champion}" if champion else "none"
        return Plan(
            "stop",
            f"@champion is {now}, not v{session.champion_version} which v{version} was compared with: a promotion or "
            "rollback ends shadowing",
            session,
            windows,
        )
    parts = (HOLDOUT, *(r.part for r in earlier if r.labelled_rows > 0))
    return Plan("shadow", "", session, windows, parts)


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), version) if str(version).isdigit() else (-1, str(version))
