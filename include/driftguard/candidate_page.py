"""The champion-vs-challenger page of one retraining candidate (``/models/{model}/candidates/{version}``).

Built from what the history store already holds: the candidate's ``dg_retrains`` row (status and
the gate verdict with every check's numbers, plus the ``candidate`` block :func:`driftguard.retrain.evaluate`
adds: MLflow run id, experiment id, champion version, trigger) and the ``dg_shadow`` rows of that
version. No MLflow call: the page renders when MLflow is down; its MLflow links are built from the
tracking URI (a web UI when it is http(s), otherwise the ids as text and how to open them).

Every value is HTML-escaped (``_e``): segment values, reasons and errors come from data and
exceptions. Pure functions: the FastAPI route in :mod:`driftguard.ui` only reads the store.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

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


def mlflow_block(tracking_uri: str, model: str, version: str | None, candidate: Mapping[str, Any]) -> str:
    run_id, experiment = candidate.get("run_id"), candidate.get("experiment_id")
    name = candidate.get("registered_model") or model
    links = mlflow_links(tracking_uri, name, version, run_id, experiment)
    items = []
    if "version" in links:
        items.append(
            f'<a class="mlflow-version" href="{_e(links["version"])}">'
            f"MLflow model version {_e(name)} v{_e(version)}</a>"
        )
    else:
        items.append(
            f'<span class="mlflow-version">registered model <code>{_e(name)}</code> '
            f"version <code>{_e(version)}</code></span>"
        )
    if "run" in links:
        items.append(f'<a class="mlflow-run" href="{_e(links["run"])}">MLflow run {_e(run_id)}</a>')
    elif run_id:
        items.append(f'<span class="mlflow-run">MLflow run <code>{_e(run_id)}</code></span>')
    else:
        items.append('<span class="muted">run id not recorded (a retrain from before this page)</span>')
    text = " · ".join(items)
    if not links:
        shown = safe_uri(tracking_uri or "")
        text += (
            f'<br><span class="muted how-to-open">The tracking URI <code>{_e(shown)}</code> is not a web server: '
            f"open these with <code>mlflow ui --backend-store-uri {_e(shown)}</code> "
            "(then Models, or the run id in the search box).</span>"
        )
    return f'<p class="mlflow">{text}</p>'


# --------------------------------------------------------------------------- sections


def _checks(verdict: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {c.get("name"): c for c in verdict.get("checks") or [] if isinstance(c, Mapping)}


def _numbers(check: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (check or {}).get("numbers") or {}


def primary_block(verdict: Mapping[str, Any]) -> str:
    """Both models' primary metric, the gain, its CI against the bound, and the evidence size."""
    checks = _checks(verdict)
    sig, thr = _numbers(checks.get("significance")), _numbers(checks.get("primary_metric_threshold"))
    if not sig and not thr:
        floors = checks.get("first_champion_floors")
        if floors is not None:
            return f'<p class="primary">First champion: {_e(floors.get("detail"))}</p>'
        return '<p class="muted">No metric comparison recorded for this candidate.</p>'
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
        ("Metric", _e(metric)),
        ("Champion", _e(fmt(thr.get("champion")))),
        ("Challenger", _e(fmt(thr.get("challenger")))),
        ("Gain (challenger minus champion, + = better)", _e(fmt(sig.get("diff", thr.get("improvement")), "diff"))),
        (f"{ci_head} of the gain", f'<span class="ci">{_e(ci)}</span>'),
        ("Decision bound", _e(fmt(sig.get("bound"), "bound"))),
        ("Margin", _e(margin_text)),
        ("Mode", _e(sig.get("mode") or "—")),
        ("Paired holdout rows", _e(fmt(sig.get("rows")))),
    ]
    if needed is not None:
        label = "Rows needed (insufficient evidence)" if insufficient else "Rows a one-margin gain needs"
        rows.append((label, _e(fmt(needed))))
    body = "".join(f"<tr><th>{k}</th><td class=num>{v}</td></tr>" for k, v in rows)
    detail = checks.get("significance", {}).get("detail")
    note = f'<p class="detail">{_e(detail)}</p>' if detail else ""
    return f'<table class="primary kv"><tbody>{body}</tbody></table>{note}'


def _check_state(check: Mapping[str, Any]) -> tuple[str, str]:
    numbers = _numbers(check)
    if check.get("name") == "significance" and numbers.get("insufficient_evidence") and not check.get("passed"):
        return "warn", "insufficient evidence"
    if check.get("name") == "seasonal_guardrail" and numbers.get("status") in ("not_available", "inconclusive"):
        return "muted", str(numbers["status"]).replace("_", " ")
    return ("good", "passed") if check.get("passed") else ("bad", "failed")


def _kv(check: Mapping[str, Any]) -> str:
    numbers = _numbers(check)
    keys = CHECK_NUMBERS.get(str(check.get("name")))
    pairs = (
        [(label, key) for key, label in keys if numbers.get(key) is not None]
        if keys
        else [(key, key) for key in numbers if "[" not in key]
    )
    return " · ".join(f"{_e(label)} <b>{_e(fmt(numbers[key], key))}</b>" for label, key in pairs)


def segments_table(check: Mapping[str, Any]) -> str:
    """One row per tested segment: rows, loss (+ = challenger worse), one-sided p, and whether
    Holm's correction rejected it (the check's failing segments)."""
    numbers = _numbers(check)
    labels = [k[5:-1] for k in numbers if k.startswith("loss[") and k.endswith("]")]
    if not labels:
        return ""
    ps = [numbers.get(f"p[{lbl}]") for lbl in labels]
    significant = _holm(ps, numbers.get("alpha"))
    rows = []
    for lbl, hit in sorted(zip(labels, significant, strict=True), key=lambda t: -(numbers.get(f"loss[{t[0]}]") or 0)):
        css = ' class="failing"' if hit else ""
        rows.append(
            f'<tr{css}><td class="segment">{_e(lbl)}</td><td class=num>{_e(fmt(numbers.get(f"rows[{lbl}]")))}</td>'
            f"<td class=num>{_e(fmt(numbers.get(f'loss[{lbl}]'), f'loss[{lbl}]'))}</td>"
            f"<td class=num>{_e(fmt(numbers.get(f'se[{lbl}]')))}</td>"
            f"<td class=num>{_e(fmt(numbers.get(f'p[{lbl}]'), f'p[{lbl}]'))}</td>"
            f"<td>{'significantly worse' if hit else 'no'}</td></tr>"
        )
    return (
        '<table class="segments"><thead><tr><th>Segment</th><th>Rows</th><th>Loss (+ = challenger worse)</th>'
        "<th>SE</th><th>p (one-sided)</th><th>Worse than the margin (Holm)</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _holm(ps: Sequence[Any], alpha: Any) -> list[bool]:
    if not isinstance(alpha, int | float):
        return [False] * len(ps)
    from driftguard.gate import holm

    return list(holm([float("nan") if p is None else float(p) for p in ps], float(alpha)))


def checks_block(verdict: Mapping[str, Any]) -> str:
    checks = [c for c in verdict.get("checks") or [] if isinstance(c, Mapping)]
    if not checks:
        why = verdict.get("summary") or verdict.get("error") or "no gate checks recorded"
        return f'<p class="muted">{_e(why)}</p>'
    parts = []
    for check in checks:
        css, state = _check_state(check)
        name = str(check.get("name"))
        numbers = _numbers(check)
        extra = segments_table(check) if name == "segment_guardrails" else ""
        every = "".join(f"<tr><td>{_e(k)}</td><td class=num>{_e(fmt(v, k))}</td></tr>" for k, v in numbers.items())
        details = (
            f'<details><summary>all numbers</summary><table class="numbers"><tbody>{every}</tbody></table></details>'
            if numbers
            else ""
        )
        parts.append(
            f'<section class="check" data-check="{_e(name)}"><h3>{_e(name)} '
            f'<span class="status {css}">{_e(state)}</span></h3>'
            f'<p class="detail">{_e(check.get("detail"))}</p>'
            f'<p class="numbers">{_kv(check)}</p>{extra}{details}</section>'
        )
    return "".join(parts)


def shadow_block(records: Sequence[Any]) -> str:
    """The candidate's shadow evidence (dg_shadow rows of its version), oldest first."""
    if not records:
        return '<p class="muted">This candidate did not shadow the champion.</p>'
    last = records[-1]
    ci = (
        f"[{fmt(last.ci_low, 'ci_low')}, {fmt(last.ci_high, 'ci_high')}]"
        if last.ci_low is not None or last.ci_high is not None
        else "—"
    )
    head = (
        f'<p class="shadow-outcome">Latest: <b>{_e(last.outcome)}</b>{f" ({_e(last.action)})" if last.action else ""} '
        f"after {_e(last.windows)} window(s), {_e(fmt(last.cumulative_rows))} paired rows, CI of the "
        f"{_e(last.metric_name or 'metric')} gain {_e(ci)}, bound {_e(fmt(last.bound, 'bound'))}.</p>"
    )
    rows = [
        f'<tr class="shadow-row"><td>{_e(r.kind)}</td>'
        f"<td>{_e(_when(r.interval_start))} → {_e(_when(r.interval_end))}</td>"
        f"<td class=num>{_e(r.windows)}</td><td class=num>{_e(fmt(r.cumulative_rows))}</td>"
        f"<td class=num>{_e(fmt(r.champion_metric))}</td><td class=num>{_e(fmt(r.challenger_metric))}</td>"
        f"<td class=num>[{_e(fmt(r.ci_low, 'ci_low'))}, {_e(fmt(r.ci_high, 'ci_high'))}]</td>"
        f"<td class=num>{_e(fmt(r.bound, 'bound'))}</td><td class=num>{_e(fmt(r.rows_needed))}</td>"
        f"<td>{_e(r.outcome)}{f' ({_e(r.action)})' if r.action else ''}</td><td>{_e(r.reason)}</td></tr>"
        for r in records
    ]
    return head + (
        '<table class="shadow"><thead><tr><th>Part</th><th>Data interval (UTC)</th><th>Windows</th>'
        "<th>Cumulative rows</th>"
        "<th>Champion</th><th>Challenger</th><th>CI of the gain</th><th>Bound</th><th>Rows needed</th><th>Outcome</th>"
        f"<th>Reason</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def outcome_line(retrain: Mapping[str, Any]) -> str:
    """The outcome in one line: badge, what it means, the gate's summary."""
    status = str(retrain.get("status") or "")
    verdict = retrain.get("verdict") or {}
    css, label, meaning = OUTCOME.get(status, ("muted", status or "unknown", ""))
    cand = verdict.get("candidate") or {}
    champion = cand.get("champion_version")
    versus = f" v{retrain.get('candidate_version')} vs champion v{champion}" if champion else ""
    summary = verdict.get("summary") or verdict.get("error") or ""
    return (
        f'<p class="outcome"><span class="status {css}" data-outcome="{_e(status)}">{_e(label)}</span>'
        f"{_e(versus)}: {_e(meaning)}. <span class=summary>{_e(summary)}</span></p>"
    )


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
    verdict = retrain.get("verdict") or {}
    cand = verdict.get("candidate") or {}
    version = retrain.get("candidate_version")
    trigger = cand.get("trigger")
    parts = [
        f"<h1>{_e(model)}: candidate v{_e(version)} vs champion "
        f"{'v' + _e(cand['champion_version']) if cand.get('champion_version') else '(none)'}</h1>",
        f'<p><a href="{_e(model_href)}">Model page</a> · <a href="{_e(registry_href)}">Registry</a> · '
        f"data interval {_e(_when(retrain.get('interval_start')))} → {_e(_when(retrain.get('interval_end')))} UTC"
        f"{f' · trigger: {_e(trigger)}' if trigger else ''}</p>",
        outcome_line(retrain),
        mlflow_block(tracking_uri, model, version, cand),
        "<h2>Primary metric</h2>",
        primary_block(verdict),
        "<h2>Gate checks</h2>",
        checks_block(verdict),
        "<h2>Shadow evidence</h2>",
        shadow_block(shadow),
    ]
    return "\n".join(parts)


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
