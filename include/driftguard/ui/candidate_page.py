"""The champion-vs-challenger page of one retraining candidate (``/models/{model}/candidates/{version}``).

Built from what the history store already holds: the candidate's ``dg_retrains`` row (status and
the gate verdict with every check's numbers, plus the ``candidate`` block :func:`driftguard.retraining.retrain.evaluate`
adds: MLflow run id, experiment id, champion version, trigger) and the ``dg_shadow`` rows of that
version. No MLflow call: the page renders when MLflow is down; its MLflow links are built from the
tracking URI (a web UI when it is http(s), otherwise the ids as text and how to open them).

Rendered from templates/served/_candidate.html (autoescaped): segment values, reasons and errors
come from data and exceptions. Pure functions: the FastAPI route in :mod:`driftguard.ui.app` only reads the store.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from driftguard.reporting.templating import render

OUTCOME = {
    "promoted": ("good", "Promoted", "the challenger became @champion"),
    "rejected": ("bad", "Rejected", "the champion stays; the candidate is kept as @challenger"),
    "insufficient_evidence": (
        "warn",
        "Insufficient evidence",
        "the holdout could not tell; the candidate is @challenger and may shadow the next windows",
    ),
    "insufficient_data": ("warn", "Insufficient data", "too few rows to train a candidate"),
    "declined": ("bad", "Declined", "the gate accepted it, a reviewer declined the promotion"),
    "aborted": ("warn", "Aborted", "@champion moved while the gate ran; nothing changed"),
    "awaiting_approval": ("warn", "Awaiting approval", "the gate accepted it; a reviewer must approve"),
    "running": ("muted", "Running", "the retrain is still running"),
    "failed": ("bad", "Failed", "a retrain step failed; see the task log"),
}
"""dg_retrains status -> (css class, label, what it means)."""

CHECK_NUMBERS: dict[str, tuple[tuple[str, str], ...]] = {
    "loads_and_scores": (("model_uri", "model"), ("load_seconds", "load s"), ("rows", "rows"), ("error", "error")),
    "output_sanity": (
        ("rows", "rows"),
        ("challenger_min", "challenger min"),
        ("challenger_max", "challenger max"),
        ("challenger_std", "challenger std"),
        ("challenger_non_finite", "challenger non-finite"),
        ("champion_min", "champion min"),
        ("champion_max", "champion max"),
        ("champion_std", "champion std"),
        ("champion_non_finite", "champion non-finite"),
    ),
    "primary_metric_threshold": (
        ("champion", "champion"),
        ("challenger", "challenger"),
        ("improvement", "improvement"),
        ("relative_improvement", "relative"),
        ("min_absolute_change", "min absolute change"),
        ("min_relative_change", "min relative change"),
    ),
    "significance": (
        ("diff", "gain"),
        ("ci_low", "CI low"),
        ("ci_high", "CI high"),
        ("bound", "bound"),
        ("margin", "margin"),
        ("mode", "mode"),
        ("rows", "rows"),
        ("rows_needed", "rows needed"),
    ),
    "segment_guardrails": (
        ("segments_tested", "segments tested"),
        ("segments_below_min_rows", "below min rows"),
        ("segments_untestable", "untestable"),
        ("worst_segment", "worst segment"),
        ("worst_loss", "worst loss"),
        ("margin", "margin"),
        ("alpha", "alpha (Holm)"),
        ("min_rows", "min rows"),
    ),
    "calibration": (
        ("metric", "metric"),
        ("champion", "champion"),
        ("challenger", "challenger"),
        ("worsening", "worsening"),
        ("tolerance", "tolerance"),
    ),
    "servability": (
        ("ms_per_1k_rows", "challenger ms / 1k rows"),
        ("champion_ms_per_1k_rows", "champion ms / 1k rows"),
        ("ratio", "ratio"),
        ("latency_ratio", "ratio limit"),
        ("latency_budget_ms", "ceiling ms"),
        ("wall_ms_per_1k_rows", "challenger wall ms"),
        ("champion_wall_ms_per_1k_rows", "champion wall ms"),
        ("load_seconds", "load s"),
        ("error", "error"),
        ("champion_error", "champion error"),
    ),
    "seasonal_guardrail": (
        ("status", "status"),
        ("start", "phase start"),
        ("end", "phase end"),
        ("rows", "rows (out of sample)"),
        ("rows_read", "rows read"),
        ("champion", "champion"),
        ("challenger", "challenger"),
        ("ci_low", "CI low"),
        ("ci_high", "CI high"),
        ("bound", "bound"),
        ("rows_needed", "rows needed"),
        ("reason", "reason"),
    ),
}
"""The numbers shown inline for each check, in order (all of them are under "all numbers")."""

SIGNED = {"diff", "ci_low", "ci_high", "bound", "improvement", "worsening", "worst_loss", "relative_improvement"}


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _when(value: Any) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else "—"


def fmt(value: Any, key: str = "") -> str:
    """A number as the page shows it: ints with separators, floats to 4 places (signed for gains)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        if key.startswith("p[") or key.endswith("_p") or key == "alpha":
            return f"{value:.3g}"
        return f"{value:+.4f}" if key in SIGNED or key.startswith("loss[") else f"{value:.4f}"
    return str(value)


# --------------------------------------------------------------------------- MLflow links


def safe_uri(uri: str) -> str:
    """The tracking URI without credentials (``user:password@`` is dropped before it is shown)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if parts.netloc and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return uri


def mlflow_links(
    tracking_uri: str, model: str, version: str | None, run_id: str | None, experiment_id: str | None
) -> dict[str, str]:
    """MLflow UI URLs of the version and the run when the tracking URI is a web server (http/https);
    {} otherwise. The run link needs the experiment id (MLflow's UI routes runs under it)."""
    uri = safe_uri(tracking_uri or "")
    if urlsplit(uri).scheme not in ("http", "https"):
        return {}
    base = uri.rstrip("/")
    links = {}
    if version:
        links["version"] = f"{base}/#/models/{quote(model, safe='')}/versions/{quote(str(version), safe='')}"
    if run_id and experiment_id:
        links["run"] = f"{base}/#/experiments/{quote(str(experiment_id), safe='')}/runs/{quote(run_id, safe='')}"
    return links


def mlflow_context(tracking_uri: str, model: str, version: str | None, candidate: Mapping[str, Any]) -> dict[str, Any]:
    """The registered model's name, run id, MLflow UI links and the credential-free tracking URI."""
    run_id, experiment = candidate.get("run_id"), candidate.get("experiment_id")
    name = candidate.get("registered_model") or model
    links = mlflow_links(tracking_uri, name, version, run_id, experiment)
    return {"name": name, "run_id": run_id, "links": links, "shown": safe_uri(tracking_uri or "")}


# --------------------------------------------------------------------------- sections


def _checks(verdict: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {c.get("name"): c for c in verdict.get("checks") or [] if isinstance(c, Mapping)}


def _numbers(check: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (check or {}).get("numbers") or {}


def primary_context(verdict: Mapping[str, Any]) -> dict[str, Any]:
    """Both models' primary metric, the gain, its CI against the bound, and the evidence size:
    rows of (label, value, is the CI), or the first champion's floors, or nothing recorded."""
    checks = _checks(verdict)
    sig, thr = _numbers(checks.get("significance")), _numbers(checks.get("primary_metric_threshold"))
    if not sig and not thr:
        floors = checks.get("first_champion_floors")
        return {"floors": floors.get("detail") if floors is not None else None, "rows": [], "note": None}
    metric = sig.get("metric") or thr.get("metric") or verdict.get("metric") or "metric"
    conf = sig.get("confidence")
    ci_head = f"{conf * 100:.4g}% CI" if isinstance(conf, int | float) else "CI"
    ci = (
        f"[{fmt(sig.get('ci_low'), 'ci_low')}, {fmt(sig.get('ci_high'), 'ci_high')}]"
        if sig.get("ci_low") is not None or sig.get("ci_high") is not None
        else "—"
    )
    margin = sig.get("margin")
    margin_text = f"{margin} (= {fmt(sig.get('margin_abs'))})" if margin is not None else "—"
    needed = sig.get("rows_needed")
    insufficient = bool(sig.get("insufficient_evidence"))
    rows = [
        ("Metric", metric, False),
        ("Champion", fmt(thr.get("champion")), False),
        ("Challenger", fmt(thr.get("challenger")), False),
        ("Gain (challenger minus champion, + = better)", fmt(sig.get("diff", thr.get("improvement")), "diff"), False),
        (f"{ci_head} of the gain", ci, True),
        ("Decision bound", fmt(sig.get("bound"), "bound"), False),
        ("Margin", margin_text, False),
        ("Mode", sig.get("mode") or "—", False),
        ("Paired holdout rows", fmt(sig.get("rows")), False),
    ]
    if needed is not None:
        label = "Rows needed (insufficient evidence)" if insufficient else "Rows a one-margin gain needs"
        rows.append((label, fmt(needed), False))
    return {"floors": None, "rows": rows, "note": checks.get("significance", {}).get("detail")}


def _check_state(check: Mapping[str, Any]) -> tuple[str, str]:
    numbers = _numbers(check)
    if check.get("name") == "significance" and numbers.get("insufficient_evidence") and not check.get("passed"):
        return "warn", "insufficient evidence"
    if check.get("name") == "seasonal_guardrail" and numbers.get("status") in ("not_available", "inconclusive"):
        return "muted", str(numbers["status"]).replace("_", " ")
    return ("good", "passed") if check.get("passed") else ("bad", "failed")


def _kv(check: Mapping[str, Any]) -> list[tuple[str, str]]:
    numbers = _numbers(check)
    keys = CHECK_NUMBERS.get(str(check.get("name")))
    pairs = (
        [(label, key) for key, label in keys if numbers.get(key) is not None]
        if keys
        else [(key, key) for key in numbers if "[" not in key]
    )
    return [(label, fmt(numbers[key], key)) for label, key in pairs]


def segment_rows(check: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per tested segment, worst loss first: rows, loss (+ = challenger worse), SE,
    one-sided p, and whether Holm's correction rejected it (the check's failing segments)."""
    numbers = _numbers(check)
    labels = [k[5:-1] for k in numbers if k.startswith("loss[") and k.endswith("]")]
    if not labels:
        return []
    significant = _holm([numbers.get(f"p[{lbl}]") for lbl in labels], numbers.get("alpha"))
    ordered = sorted(zip(labels, significant, strict=True), key=lambda t: -(numbers.get(f"loss[{t[0]}]") or 0))
    return [
        {
            "label": lbl,
            "hit": hit,
            "rows": fmt(numbers.get(f"rows[{lbl}]")),
            "loss": fmt(numbers.get(f"loss[{lbl}]"), f"loss[{lbl}]"),
            "se": fmt(numbers.get(f"se[{lbl}]")),
            "p": fmt(numbers.get(f"p[{lbl}]"), f"p[{lbl}]"),
        }
        for lbl, hit in ordered
    ]


def _holm(ps: Sequence[Any], alpha: Any) -> list[bool]:
    if not isinstance(alpha, int | float):
        return [False] * len(ps)
    from driftguard.retraining.gate import holm

    return list(holm([float("nan") if p is None else float(p) for p in ps], float(alpha)))


def check_rows(verdict: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every gate check: its state, detail, headline numbers, segments and all its numbers."""
    rows = []
    for check in (c for c in verdict.get("checks") or [] if isinstance(c, Mapping)):
        css, state = _check_state(check)
        name = str(check.get("name"))
        rows.append(
            {
                "name": name,
                "css": css,
                "state": state,
                "detail": check.get("detail"),
                "kv": _kv(check),
                "segments": segment_rows(check) if name == "segment_guardrails" else [],
                "numbers": [(k, fmt(v, k)) for k, v in _numbers(check).items()],
            }
        )
    return rows


def outcome_context(retrain: Mapping[str, Any]) -> dict[str, str]:
    """The outcome in one line: badge, what it means, the gate's summary."""
    status = str(retrain.get("status") or "")
    verdict = retrain.get("verdict") or {}
    css, label, meaning = OUTCOME.get(status, ("muted", status or "unknown", ""))
    champion = (verdict.get("candidate") or {}).get("champion_version")
    versus = f" v{retrain.get('candidate_version')} vs champion v{champion}" if champion else ""
    summary = verdict.get("summary") or verdict.get("error") or ""
    return {"status": status, "css": css, "label": label, "meaning": meaning, "versus": versus, "summary": summary}


def candidate_context(
    model: str,
    retrain: Mapping[str, Any],
    shadow: Sequence[Any],
    *,
    tracking_uri: str,
    model_href: str,
    registry_href: str,
) -> dict[str, Any]:
    """What templates/served/_candidate.html shows of one candidate."""
    verdict = retrain.get("verdict") or {}
    cand = verdict.get("candidate") or {}
    version = retrain.get("candidate_version")
    last = shadow[-1] if shadow else None
    shadow_ci = (
        f"[{fmt(last.ci_low, 'ci_low')}, {fmt(last.ci_high, 'ci_high')}]"
        if last is not None and (last.ci_low is not None or last.ci_high is not None)
        else "—"
    )
    return {
        "model": model,
        "version": version,
        "champion": cand.get("champion_version"),
        "model_href": model_href,
        "registry_href": registry_href,
        "start": retrain.get("interval_start"),
        "end": retrain.get("interval_end"),
        "trigger": cand.get("trigger"),
        "outcome": outcome_context(retrain),
        "mlflow": mlflow_context(tracking_uri, model, version, cand),
        "primary": primary_context(verdict),
        "checks": check_rows(verdict),
        "no_checks": verdict.get("summary") or verdict.get("error") or "no gate checks recorded",
        "shadow": list(shadow),
        "shadow_ci": shadow_ci,
        "fmt": fmt,
    }


def candidate_body(
    root: str,
    model: str,
    retrain: Mapping[str, Any],
    shadow: Sequence[Any],
    *,
    tracking_uri: str,
    model_href: str,
    registry_href: str,
) -> str:
    """The page's body alone (the served page includes the same template in its layout)."""
    context = candidate_context(
        model, retrain, shadow, tracking_uri=tracking_uri, model_href=model_href, registry_href=registry_href
    )
    return render("served/_candidate.html", **context)


def compact_comparison(verdict: Mapping[str, Any]) -> str:
    """One short line for tables: `roc_auc 0.7120 → 0.7250, gain +0.0130 [+0.0040, +0.0210]`."""
    checks = _checks(verdict)
    sig, thr = _numbers(checks.get("significance")), _numbers(checks.get("primary_metric_threshold"))
    if not sig and not thr:
        return ""
    metric = sig.get("metric") or thr.get("metric") or verdict.get("metric") or ""
    text = f"{metric} {fmt(thr.get('champion'))} → {fmt(thr.get('challenger'))}"
    if sig:
        low, high = fmt(sig.get("ci_low"), "ci_low"), fmt(sig.get("ci_high"), "ci_high")
        text += f", gain {fmt(sig.get('diff'), 'diff')} [{low}, {high}]"
    return text
