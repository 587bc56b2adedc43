"""Report files for stakeholders under settings.reports_dir, readable offline.

Layout::

    <reports_dir>/index.html                      home: each model and its latest runs
    <reports_dir>/<model>/index.html              trend plot + table of runs + promotions
    <reports_dir>/<model>/<start>_<end>/          one folder per run (UTC, YYYYMMDDTHHMM)
        drift.html  validation.html  summary.json  (+ suite.json, validation.json: GX's raw JSON)

The index pages and validation.html (quality_page) are plain HTML, the index pages with an inline
SVG plot: no JavaScript, no network, small. drift.html is Driftguard's header and verdict table
(drift_sections) above Evidently's plots, which need its bundle from `_assets`.
The pages are Jinja2 templates (templates/reports/, templates/_cells.html; driftguard.reporting.templating)
that escape every value; links are relative so the folder can be copied or served as is.
Files are written atomically (temporary file + rename) so a reader never sees half a page. A
monitoring run writes its folder as a hidden draft (`.draft-<start>_<end>-<run>`) and moves it into
place once history records the run (publish_run_dir).
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from driftguard.reporting import templating
from driftguard.reporting.templating import macro, render
from driftguard.store import RunRecord, ShadowRecord, jsonable

log = logging.getLogger(__name__)

CELLS = "_cells.html"
"""Template of the run cells and runs table the reports index and the UI's model page share."""
DRIFT_HTML = "drift.html"
QUALITY_HTML = "validation.html"
SUMMARY_JSON = "summary.json"
INDEX_HTML = "index.html"
# RunRecord.report_paths keys -> default file name in the run folder.
REPORT_FILES = {"drift": DRIFT_HTML, "quality": QUALITY_HTML, "summary": SUMMARY_JSON}

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


# --------------------------------------------------------------------------- paths and files


def _stamp(value: datetime, what: str) -> str:
    if value.tzinfo is None:
        raise ValueError(f"{what} {value.isoformat()} is naive: report folders are named in UTC, pass tz-aware")
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M")


def _model_dir(reports_dir: Path, model: str) -> Path:
    if not SAFE_NAME.match(model) or ".." in model:
        raise ValueError(f"model name {model!r} cannot be a report folder name (letters, digits, _ . - only)")
    return Path(reports_dir) / model


def run_dir_name(start: datetime, end: datetime) -> str:
    return f"{_stamp(start, 'interval start')}_{_stamp(end, 'interval end')}"


def run_dir(reports_dir: Path, model: str, start: datetime, end: datetime) -> Path:
    """`<reports_dir>/<model>/<YYYYMMDDTHHMM>_<YYYYMMDDTHHMM>/` (UTC); not created here."""
    return _model_dir(reports_dir, model) / run_dir_name(start, end)


def publish_run_dir(draft: Path, final: Path) -> Path:
    """Move a run's draft folder into place as `final` (two renames: an earlier folder of the
    interval, a rerun's, is set aside and then removed). The draft must sit beside `final`: the
    reports' relative links (to `_assets`) are the same from both."""
    draft, final = Path(draft), Path(final)
    draft.mkdir(parents=True, exist_ok=True)
    replaced = None
    if final.exists():
        replaced = final.with_name(f".replaced-{final.name}-{uuid.uuid4().hex[:8]}")
        os.replace(final, replaced)
    os.replace(draft, final)
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)
    return final


def atomic_write_text(path: Path, text: str) -> Path:
    """Write via a temporary file in the same folder and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_summary(run_dir: Path, summary: Mapping[str, Any]) -> Path:
    """summary.json of one run (numpy values unwrapped, NaN -> null, datetimes ISO 8601)."""
    text = json.dumps(jsonable(dict(summary)), indent=2, sort_keys=True, allow_nan=False)
    return atomic_write_text(Path(run_dir) / SUMMARY_JSON, text + "\n")


# --------------------------------------------------------------------------- html helpers

PAGE_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;color:#222;max-width:1200px}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b00020;font-weight:600}.warn{color:#9a6700}.good{color:#1a7f37}
.retrain{color:#8250df;font-weight:600}details summary{cursor:pointer}
ul.reasons{margin:.25rem 0 0 1rem;padding:0}.muted{color:#777}
svg text{font-size:11px;fill:#444}
""".strip()


_LIGHT = {"bg": "#ffffff", "fg": "#18181b", "muted": "#71717a", "border": "#e4e4e7", "head": "#f4f4f4",
          "link": "#0969da", "bad-bg": "#ffebe9", "warn-bg": "#fff8c5", "good-bg": "#dafbe1", "muted-bg": "#eeeeee",
          "bad": "#b00020", "warn": "#9a6700", "good": "#1a7f37"}  # fmt: skip
_DARK = {"bg": "#09090b", "fg": "#f4f4f5", "muted": "#a1a1aa", "border": "#3f3f46", "head": "#18181b",
         "link": "#58a6ff", "bad-bg": "#4c1d1d", "warn-bg": "#3d3212", "good-bg": "#12351f", "muted-bg": "#27272a",
         "bad": "#ff7b72", "warn": "#e3b341", "good": "#56d364"}  # fmt: skip


def _vars(colors: Mapping[str, str]) -> str:
    return "".join(f"--dg-{k}:{v};" for k, v in colors.items())


THEME_CSS = (
    f":root{{color-scheme:light;{_vars(_LIGHT)}}}"
    f"@media (prefers-color-scheme: dark){{:root:not([data-theme=light]){{color-scheme:dark;{_vars(_DARK)}}}}}"
    f":root[data-theme=dark]{{color-scheme:dark;{_vars(_DARK)}}}"
    'body{background:var(--dg-bg);color:var(--dg-fg);font-family:Inter,system-ui,-apple-system,"Segoe UI",'
    "Roboto,sans-serif}a{color:var(--dg-link)}th{background:var(--dg-head)}th,td{border-color:var(--dg-border)}"
    ".muted{color:var(--dg-muted)}.bad{color:var(--dg-bad)}.warn{color:var(--dg-warn)}.good{color:var(--dg-good)}"
    "pre,code{background:var(--dg-head)}svg text{fill:var(--dg-fg)}svg .grid{stroke:var(--dg-border)}"
    ".status.bad,.msg,tr.failing td,tr.failed.critical td,tr.verdict-drift td{background:var(--dg-bad-bg)}"
    ".status.warn,tr.failed.warning td{background:var(--dg-warn-bg)}.status.good{background:var(--dg-good-bg)}"
    ".status.muted{background:var(--dg-muted-bg)}"
)
"""Light and dark colours as custom properties (Airflow's greys): the OS preference picks dark
unless the page is marked `data-theme=light`; `data-theme=dark` forces it (driftguard.ui.app sets it
from Airflow's stored colour mode). Appended after the page CSS, so it wins over its fixed colours."""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _render(name: str, title: str, **context: Any) -> str:
    """A report file from templates/reports/`name` in the report layout (inline CSS, no script)."""
    return render(f"reports/{name}", title=title, css=f"{PAGE_CSS}\n{_STATUS_CSS}\n{THEME_CSS}", **context)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _interval(rec: RunRecord) -> str:
    return f"{_when(rec.interval_start)} → {_when(rec.interval_end)}"


def _href(target: Path, base: Path) -> str:
    return quote(Path(os.path.relpath(target, base)).as_posix())


def _report_link(rec: RunRecord, key: str, model_dir: Path, base: Path | None = None) -> str | None:
    """Relative href from `base` (default: the model index's folder) to one of the run's files,
    or None if there is none."""
    base = model_dir if base is None else base
    folder = model_dir / run_dir_name(rec.interval_start, rec.interval_end)
    given = (rec.report_paths or {}).get(key)
    if given:
        path = Path(given)
        target = path if path.is_absolute() else folder / path
        return _href(target, base)
    default = folder / REPORT_FILES[key]
    return _href(default, base) if default.exists() else None


# --------------------------------------------------------------------------- plot

_W, _PANEL_H, _LEFT, _RIGHT, _TOP, _GAP = 760, 120, 56, 16, 18, 34


def _scale(lo: float, hi: float, out_lo: float, out_hi: float) -> Callable[[float], float]:
    span = (hi - lo) or 1.0
    return lambda v: out_lo + (v - lo) / span * (out_hi - out_lo)


def _series(
    points: Sequence[tuple[float, float | None, RunRecord]],
    css: str,
    label: str,
    fx: Callable[[float], float],
    fy: Callable[[float], float],
) -> list[str]:
    """Polyline segments broken at missing values, plus one circle (with a tooltip) per value."""
    out: list[str] = []
    segment: list[str] = []
    for x, y, _ in [*points, (0.0, None, None)]:
        if y is None:
            if len(segment) > 1:
                out.append(f'<polyline class="line {css}" fill="none" points="{" ".join(segment)}"/>')
            segment = []
        else:
            segment.append(f"{fx(x):.1f},{fy(y):.1f}")
    for x, y, rec in points:
        if y is None:
            continue
        quality = "q-fail" if not rec.quality_passed or rec.status == "quality_failed" else "q-ok"
        out.append(
            f'<circle class="pt {css} {quality}" cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="3.5" '
            f'data-interval="{_e(_interval(rec))}" data-value="{y:.6g}">'
            f"<title>{_e(_interval(rec))}: {_e(label)} {y:.4g}</title></circle>"
        )
    return out


def _signal(rec: RunRecord, key: str) -> float | None:
    value = (rec.signals or {}).get(key)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _estimate(rec: RunRecord) -> dict[str, float | None] | None:
    """The run's label-free estimate of the primary metric ({value, lower, upper}), if any."""
    est = (rec.signals or {}).get("estimated_metric")
    if not isinstance(est, Mapping) or not isinstance(est.get("value"), (int, float)):
        return None
    return {k: float(est[k]) if isinstance(est.get(k), (int, float)) else None for k in ("value", "lower", "upper")}


def _band_polygon(
    times: Sequence[float],
    estimates: Sequence[dict[str, float | None] | None],
    fx: Callable[[float], float],
    fy: Callable[[float], float],
) -> list[str]:
    """The estimate's band (value +- 3 sigma) as shaded polygons, broken where a run has none."""
    out, upper, lower = [], [], []
    for t, e in [*zip(times, estimates, strict=True), (0.0, None)]:
        if e and e["lower"] is not None and e["upper"] is not None:
            upper.append(f"{fx(t):.1f},{fy(e['upper']):.1f}")
            lower.append(f"{fx(t):.1f},{fy(e['lower']):.1f}")
            continue
        if len(upper) > 1:
            out.append(f'<polygon class="band" points="{" ".join(upper + lower[::-1])}"/>')
        upper, lower = [], []
    return out


RETRAIN_MARKS = {
    "promoted": ("promoted-marker", "promoted"),
    "rejected": ("rejection-marker", "rejected"),
    "declined": ("rejection-marker", "declined"),
    "insufficient_evidence": ("undecided-marker", "insufficient evidence"),
    "insufficient_data": ("undecided-marker", "insufficient data"),
}
"""dg_retrains status -> (marker class, words) on the trend; other statuses get no marker."""


def champion_baseline(rec: RunRecord) -> float | None:
    """The champion baseline the metric_drop rule compared this run's metric with, if it did."""
    for r in rec.reasons:
        if r.get("rule") == "metric_drop" and r.get("baseline") is not None:
            return float(r["baseline"])
    return None


def _x_marker(x: float, y: float, css: str, title: str, data: str) -> str:
    return (
        f'<path class="{css}" d="M{x - 4:.1f},{y - 4:.1f} l8,8 m0,-8 l-8,8" data-interval="{_e(data)}">'
        f"<title>{_e(title)}</title></path>"
    )


def trend_svg(
    records: Sequence[RunRecord],
    *,
    promotions: Sequence[Mapping[str, Any]] = (),
    retrains: Sequence[Mapping[str, Any]] = (),
    failures: Sequence[Any] = (),
    drift_threshold: float | None = None,
    metric_name: str | None = None,
) -> str:
    """Two stacked panels sharing a data-time axis: drift share (0-1) and the metric.

    Retrain decisions are purple dashed verticals; retraining outcomes (dg_retrains) sit on the
    bottom axis at their data interval's end: promoted a green diamond, rejected or declined an
    orange cross, insufficient evidence or data a grey ring; failed runs (dg_failures) are red
    crosses on the top axis; other champion moves (rollback, first champion) green diamonds at
    their time. Failed-quality runs are red points. Inline SVG only."""
    records = sorted(records, key=lambda r: (r.interval_end, r.interval_start))
    metric_name = metric_name or next((r.metric_name for r in records if r.metric_name), None) or "metric"
    height = _TOP + 2 * _PANEL_H + _GAP + 34
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="trend" viewBox="0 0 {_W} {height}" '
        f'width="100%" role="img" aria-label="drift share and {_e(metric_name)} over time">',
        "<style>.line{stroke-width:1.5;fill:none}.line.drift{stroke:#0969da}.line.metric{stroke:#bf8700}"
        "circle.drift{fill:#0969da}circle.metric{fill:#bf8700}circle.q-fail{fill:#d1242f}"
        ".axis{stroke:#999}.grid{stroke:#eee}"
        ".threshold{stroke:#d1242f;stroke-dasharray:4 3}.retrain-marker{stroke:#8250df;stroke-dasharray:5 3}"
        ".promotion-marker{fill:#1a7f37}.line.weighted{stroke:#57606a;stroke-dasharray:3 2}"
        "circle.weighted{fill:#57606a}.line.estimate{stroke:#8250df;stroke-dasharray:4 2}"
        "circle.estimate{fill:#8250df}.band{fill:#8250df;fill-opacity:.12;stroke:none}"
        ".baseline{stroke:#1a7f37;stroke-dasharray:6 3;fill:none}.promoted-marker{fill:#1a7f37}"
        ".rejection-marker{stroke:#bc4c00;stroke-width:2.5}.failure-marker{stroke:#d1242f;stroke-width:2.5}"
        ".undecided-marker{stroke:#6e7781;stroke-width:2;fill:none}</style>",
    ]
    if not records:
        parts.append(f'<text x="{_W / 2}" y="{height / 2}" text-anchor="middle">no runs yet</text></svg>')
        return "".join(parts)

    times = [r.interval_end.timestamp() for r in records]
    baselines = [champion_baseline(r) for r in records]
    t_lo, t_hi = min(times), max(times)
    if t_lo == t_hi:
        t_lo, t_hi = t_lo - 86400, t_hi + 86400
    fx = _scale(t_lo, t_hi, _LEFT + 8, _W - _RIGHT - 8)
    top1, top2 = _TOP, _TOP + _PANEL_H + _GAP

    # Panel 1: drift share on a fixed 0..1 scale.
    fy1 = _scale(0.0, 1.0, top1 + _PANEL_H, top1)
    parts += _panel_frame(top1, "drift share", [(0.0, "0"), (0.5, "0.5"), (1.0, "1")], fy1)
    if drift_threshold is not None:
        y = fy1(drift_threshold)
        parts.append(f'<line class="threshold" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
    drift_points = [(t, r.drift_share, r) for t, r in zip(times, records, strict=True)]
    parts += _series(drift_points, "drift", "drift share", fx, fy1)
    weighted = [(t, _signal(r, "weighted_drift_share"), r) for t, r in zip(times, records, strict=True)]
    if any(v is not None for _, v, _ in weighted):
        parts += _series(weighted, "weighted", "importance-weighted drift share", fx, fy1)

    # Panel 2: the metric on its own range.
    estimates = [_estimate(r) for r in records]
    values = [r.metric_value for r in records if r.metric_value is not None]
    band = [v for e in estimates if e for v in (e["lower"], e["upper"], e["value"]) if v is not None]
    band += [b for b in baselines if b is not None]
    lo, hi = (min([*values, *band]), max([*values, *band])) if values or band else (0.0, 1.0)
    pad = (hi - lo) * 0.1 or 0.05
    lo, hi = lo - pad, hi + pad
    fy2 = _scale(lo, hi, top2 + _PANEL_H, top2)
    ticks = [(lo, f"{lo:.3g}"), ((lo + hi) / 2, f"{(lo + hi) / 2:.3g}"), (hi, f"{hi:.3g}")]
    parts += _panel_frame(top2, metric_name, ticks, fy2)
    parts += _band_polygon(times, estimates, fx, fy2)
    estimate_points = [(t, e["value"] if e else None, r) for t, e, r in zip(times, estimates, records, strict=True)]
    parts += _series(estimate_points, "estimate", f"estimated {metric_name} (no labels)", fx, fy2)
    steps = [f"{fx(t):.1f},{fy2(b):.1f}" for t, b in zip(times, baselines, strict=True) if b is not None]
    if steps:
        parts.append(
            f'<polyline class="baseline" points="{" ".join(steps)}"><title>champion baseline '
            f"(what the metric_drop rule compared {_e(metric_name)} with)</title></polyline>"
        )
    metric_points = [(t, r.metric_value, r) for t, r in zip(times, records, strict=True)]
    parts += _series(metric_points, "metric", metric_name, fx, fy2)
    if not values and not band:
        parts.append(f'<text x="{_W / 2}" y="{top2 + _PANEL_H / 2}" text-anchor="middle">no matured labels yet</text>')

    # Decisions and promotions.
    bottom = top2 + _PANEL_H
    for t, rec in zip(times, records, strict=True):
        if rec.retrain:
            x = fx(t)
            parts.append(
                f'<line class="retrain-marker" x1="{x:.1f}" x2="{x:.1f}" y1="{top1}" y2="{bottom}" '
                f'data-interval="{_e(_interval(rec))}"><title>retrain decided: {_e(rec.summary)}</title></line>'
                f'<text x="{x + 3:.1f}" y="{top1 + 10}" fill="#8250df">retrain</text>'
            )
    for r in retrains:
        mark, end = RETRAIN_MARKS.get(str(r.get("status"))), r.get("interval_end")
        if mark is None or not isinstance(end, datetime) or not (t_lo <= end.timestamp() <= t_hi):
            continue
        x, y, data = fx(end.timestamp()), bottom, f"{_when(r.get('interval_start'))} → {_when(end)}"
        version = f" v{r.get('candidate_version')}" if r.get("candidate_version") else ""
        title = f"candidate{version} {mark[1]} (data interval {data} UTC)"
        if mark[0] == "promoted-marker":
            parts.append(
                f'<path class="promoted-marker" d="M{x:.1f},{y - 6:.1f} l5,6 l-5,6 l-5,-6 z" '
                f'data-interval="{_e(data)}"><title>{_e(title)}</title></path>'
            )
        elif mark[0] == "rejection-marker":
            parts.append(_x_marker(x, y, "rejection-marker", title, data))
        else:
            parts.append(
                f'<circle class="undecided-marker" cx="{x:.1f}" cy="{y:.1f}" r="4" data-interval="{_e(data)}">'
                f"<title>{_e(title)}</title></circle>"
            )
    for f in failures:
        end = getattr(f, "interval_end", None) or getattr(f, "failed_at", None)
        if not isinstance(end, datetime) or not (t_lo <= end.timestamp() <= t_hi):
            continue
        data = f"{_when(getattr(f, 'interval_start', None))} → {_when(end)}"
        error = (str(getattr(f, "error", "") or "").strip().splitlines() or [""])[0][:160]
        title = f"run failed at {getattr(f, 'step', '') or 'a task'} (data interval {data} UTC): {error}"
        parts.append(_x_marker(fx(end.timestamp()), top1, "failure-marker", title, data))
    for promo in promotions:
        at = promo.get("at")
        if retrains and promo.get("action") == "promote":
            continue  # drawn at its data interval from dg_retrains
        if not isinstance(at, datetime) or not (t_lo <= at.timestamp() <= t_hi):
            continue
        x, y = fx(at.timestamp()), bottom
        parts.append(
            f'<path class="promotion-marker" d="M{x:.1f},{y - 6:.1f} l5,6 l-5,6 l-5,-6 z">'
            f"<title>{_e(promo.get('action'))} v{_e(promo.get('version'))} at {_e(_when(at))}</title></path>"
        )

    # Time axis: first, middle and last interval end.
    ticks_t = sorted({times[0], times[len(times) // 2], times[-1]})
    for t in ticks_t:
        label = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")
        anchor = "start" if t == times[0] and len(ticks_t) > 1 else "end" if t == times[-1] else "middle"
        if len(ticks_t) == 1:
            anchor = "middle"
        parts.append(f'<text x="{fx(t):.1f}" y="{bottom + 16}" text-anchor="{anchor}">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _panel_frame(top: float, title: str, ticks: Sequence[tuple[float, str]], fy: Callable[[float], float]) -> list[str]:
    out = [f'<text x="{_LEFT}" y="{top - 5}">{_e(title)}</text>']
    for value, label in ticks:
        y = fy(value)
        out.append(f'<line class="grid" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(label)}</text>')
    out.append(f'<line class="axis" x1="{_LEFT}" x2="{_LEFT}" y1="{top}" y2="{top + _PANEL_H}"/>')
    return out


# --------------------------------------------------------------------------- model index

TREND_LEGEND = (
    '<p class="legend muted"><span style="color:#0969da">●</span> drift share · '
    '<span style="color:#57606a">- -</span> importance-weighted drift share · '
    '<span style="color:#bf8700">●</span> realized metric (matured labels) · '
    '<span style="color:#8250df">- -</span> estimated metric before labels, with its band · '
    '<span style="color:#d1242f">●</span> critical quality failure · '
    '<span style="color:#d1242f">- -</span> drift-share threshold · '
    '<span style="color:#1a7f37">- -</span> champion baseline (what metric_drop compares with) · '
    '<span style="color:#8250df">┆</span> retrain decided · '
    '<span style="color:#1a7f37">◆</span> candidate promoted (or champion moved) · '
    '<span style="color:#bc4c00">✕</span> candidate rejected or declined · '
    '<span style="color:#6e7781">○</span> insufficient evidence or data · '
    '<span style="color:#d1242f">✕</span> (top) run failed. Time axis: data interval end (UTC).</p>'
)


def quality_cell(rec: RunRecord) -> str:
    """The run's quality verdict in a few coloured words (templates/_cells.html)."""
    return macro(CELLS, "quality_cell", rec)


def decision_cell(rec: RunRecord) -> str:
    """One short line, the deciding reason first (driftguard.reporting.health.decision_line); the rule-by-rule
    reasons, and the full summary when it says more, one click away."""
    from driftguard.reporting.health import decision_line

    return macro(CELLS, "decision_cell", rec, decision_line(rec))


# --------------------------------------------------------------------------- shadow scoring

_SHADOW_ENDED = ("promote", "rejected", "expired", "stopped", "replaced")  # driftguard.retraining.shadow.TERMINAL


def _count(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, (int, float)) and math.isfinite(value) else "—"


def shadow_cell(rec: RunRecord) -> str:
    """A run's shadow scoring (signals["shadow"]): the challenger beside the champion, how much they
    disagreed, the paired evidence so far and the outcome (templates/_cells.html)."""
    return macro(CELLS, "shadow_cell", rec)


def shadow_state(records: Sequence[ShadowRecord]) -> str:
    """One sentence: what the latest shadow session is doing, or that none is."""
    opened = [r for r in records if r.kind == "holdout"]
    if not opened:
        return "No challenger has shadowed yet."
    session = max(opened, key=lambda r: (r.interval_end, _version_key(r.challenger_version)))
    mine = [r for r in records if r.challenger_version == session.challenger_version]
    last = mine[-1]
    v, champ = f"v{last.challenger_version}", f"v{session.champion_version}"
    if last.outcome not in _SHADOW_ENDED:
        windows = sum(1 for r in mine if r.kind == "window")
        ci = templating.ci(last.ci_low, last.ci_high)
        needed = f"; about {last.rows_needed:,} rows needed" if last.rows_needed else ""
        return (
            f"{v} is shadowing champion {champ} since {_when(session.interval_end)} UTC: {windows} window(s), "
            f"{last.cumulative_rows or session.cumulative_rows:,} paired rows, "
            f"CI of the {last.metric_name or 'metric'} gain {ci}{needed}."
        )
    if last.outcome == "promote":
        done = {"promoted": "was promoted", "aborted": "was not promoted (aborted: the champion moved)",
                "awaiting_approval": "awaits approval (driftguard approve)", "declined": "was declined by a reviewer",
                }.get(last.action or "", "is being promoted")  # fmt: skip
        return f"{v} {done}: {last.reason}"
    return f"Shadowing of {v} ended ({last.outcome}): {last.reason}"


def _version_key(version: str) -> int:
    return int(version) if str(version).isdigit() else -1


def shadow_section(records: Sequence[ShadowRecord]) -> str:
    """The shadow state in one sentence above every part of the evidence, newest first: what each
    window scored and added, the CI on everything so far, and the outcome (templates/_cells.html)."""
    return macro(CELLS, "shadow_section", shadow_state(records), records)


def run_rows(records: Sequence[RunRecord], links: Callable[[RunRecord], list[tuple[str, str, str]]]) -> list[dict]:
    """The rows of the shared runs table (templates/_cells.html runs_table), newest first."""
    from driftguard.reporting.health import decision_line

    ordered = sorted(records, key=lambda r: (r.interval_end, r.interval_start), reverse=True)
    return [
        {
            "rec": r,
            "line": decision_line(r),
            "dir_name": run_dir_name(r.interval_start, r.interval_end),
            "links": links(r),
        }
        for r in ordered
    ]


def _report_links(rec: RunRecord, model_dir: Path, base: Path | None = None) -> list[tuple[str, str, str]]:
    labels = (("drift", "drift"), ("quality", "quality"), ("summary", "summary.json"))
    found = [(key, _report_link(rec, key, model_dir, base), label) for key, label in labels]
    return [(key, href, label) for key, href, label in found if href]


def write_model_index(
    reports_dir: Path,
    model: str,
    records: Sequence[RunRecord],
    *,
    promotions: Sequence[Mapping[str, Any]] = (),
    shadow: Sequence[ShadowRecord] = (),
    drift_threshold: float | None = None,
    description: str = "",
) -> Path:
    """`<model>/index.html`: trend plot, table of runs (newest first) with links, shadow scoring,
    promotions."""
    model_dir = _model_dir(reports_dir, model)
    latest = max(records, key=lambda r: r.interval_end, default=None)
    champion = latest.champion_version if latest is not None else None
    facts = [f"{len(records)} run(s)"]
    if latest is not None:
        facts.append(f"latest data interval {_interval(latest)} UTC")
    if champion is not None:
        facts.append(f"champion v{champion}")
    page = _render(
        "model_index.html",
        f"Driftguard: {model}",
        model=model,
        description=description,
        facts=facts,
        now=datetime.now(UTC),
        trend=trend_svg(records, promotions=promotions, drift_threshold=drift_threshold),
        legend=TREND_LEGEND,
        runs=run_rows(records, lambda r: _report_links(r, model_dir)),
        shadow_state=shadow_state(shadow),
        shadow=shadow,
        promotions=sorted(promotions, key=lambda p: p.get("at") or datetime.min.replace(tzinfo=UTC), reverse=True),
    )
    path = atomic_write_text(model_dir / INDEX_HTML, page)
    log.info("wrote model index %s (%d runs)", path, len(records))
    return path


HOME_RUNS = 5
"""Latest runs per model listed on the reports home."""


def write_home(
    reports_dir: Path,
    models: Sequence[str],
    *,
    latest: Mapping[str, RunRecord] | None = None,
    recent: Mapping[str, Sequence[RunRecord]] | None = None,
) -> Path:
    """`<reports_dir>/index.html`: one row per model (its latest run, linking its index), then each
    model's latest runs (`recent`, at most HOME_RUNS each, newest first) with links to their reports.
    `latest` names a model's last run when `recent` does not list it."""
    reports_dir = Path(reports_dir)
    recent = {m: sorted(rs, key=lambda r: (r.interval_end, r.interval_start), reverse=True)[:HOME_RUNS]
              for m, rs in (recent or {}).items()}  # fmt: skip
    latest = {**{m: rs[0] for m, rs in recent.items() if rs}, **(latest or {})}
    rows, runs = [], []
    for model in sorted(models):
        model_dir = _model_dir(reports_dir, model)  # validates the name
        rec = latest.get(model)
        rows.append((model, rec))
        for r in recent.get(model) or ([rec] if rec is not None else []):
            name = run_dir_name(r.interval_start, r.interval_end)
            runs.append((model, r, name, _report_links(r, model_dir, reports_dir)))
    page = _render("home.html", "Driftguard reports", now=datetime.now(UTC), models=rows, runs=runs)
    path = atomic_write_text(reports_dir / INDEX_HTML, page)
    log.info("wrote reports home %s (%d models)", path, len(models))
    return path


# --------------------------------------------------------------------------- run pages
#
# The two pages of a run folder, built from the step results (QualityResult.to_dict(),
# DriftResult.to_dict()): plain HTML, inline CSS, no script, no network. The drift page's header
# and table sit above Evidently's plots (driftguard.monitoring._evidently.save_html puts them there).

_STATUS_CSS = (
    ".badge{display:inline-block;padding:.1rem .5rem;border-radius:.25rem;color:#fff;font-weight:600;"
    "white-space:nowrap}.badge.passed,.badge.no-drift{background:#1a7f37}.badge.warning{background:#9a6700}"
    ".badge.failed,.badge.drift{background:#b00020}.badge.insufficient{background:#6e7781}"
    "tr.failed.critical td{background:#fff0f0}tr.failed.warning td{background:#fff8e5}"
    "tr.verdict-drift td{background:#fff0f0}tr.verdict-insufficient td{color:#57606a}"
    "dl.facts{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem;margin:.5rem 0}"
    "dl.facts dt{font-weight:600}dl.facts dd{margin:0}code{background:#f4f4f4;padding:0 .2rem;"
    "border-radius:.2rem;word-break:break-all}"
)
SCORE_COLUMN = "__score__"  # driftguard.retraining.reference.SCORE_COLUMN: the champion's score, recomputed or logged
ROLE_LABELS = {"feature": "feature", "prediction": "prediction", "target": "label (target)"}


def column_label(name: str, role: str = "feature") -> str:
    """A column's name as a reader should see it: the internal score column is "model score"."""
    if role == "prediction" or name == SCORE_COLUMN:
        return "model score" if name == SCORE_COLUMN else f"model score ({name})"
    return name


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def quality_status(critical: int, warnings: int) -> tuple[str, str]:
    """(css class, words) of a quality verdict in Driftguard's severity model: only critical
    failures fail it; warnings are counted, e.g. "passed, 3 warnings"."""
    if critical:
        tail = f", {_plural(warnings, 'warning')}" if warnings else ""
        return "failed", f"failed: {critical:,} critical{tail}"
    if warnings:
        return "warning", f"passed, {_plural(warnings, 'warning')}"
    return "passed", "passed"


def _observed_text(observed: Any) -> str:
    """A check's observed value in words (counts as "n of m rows (p%)")."""
    if observed is None:
        return "—"
    if isinstance(observed, Mapping):
        if "evaluation_error" in observed:
            return f"could not be evaluated: {observed['evaluation_error']}"
        bad, total = observed.get("unexpected_count"), observed.get("element_count")
        if isinstance(bad, int) and isinstance(total, int):
            share = f" ({bad / total:.1%})" if total else ""
            text = f"{bad:,} of {total:,} rows{share}"
            if observed.get("exact") == "database":
                text += ", counted in the database"
            if observed.get("read_as") == "missing":
                text += ", read as missing"
            return text
        shown = {k: v for k, v in observed.items() if k != "examples" and v is not None}
        return "; ".join(f"{k}: {v}" for k, v in shown.items()) or "—"
    if isinstance(observed, float):
        return f"{observed:.6g}"
    if isinstance(observed, int) and not isinstance(observed, bool):
        return f"{observed:,}"
    return str(observed)


def quality_page(data: Mapping[str, Any], *, summary: str = "", files: Sequence[str] = ()) -> str:
    """validation.html: every check of the run's quality suite with its column, severity (as the
    contract classifies it), result, observed value and sample unexpected values, failures first.
    `data` is QualityResult.to_dict(); `files` the raw files beside the page (linked, secondary)."""
    checks = list(data.get("checks") or [])
    critical = sum(1 for c in checks if not c.get("success") and c.get("severity") == "critical")
    warnings = sum(1 for c in checks if not c.get("success") and c.get("severity") == "warning")
    css, words = quality_status(critical, warnings)
    model = str(data.get("model") or "")
    start, end = _parse_when(data.get("start")), _parse_when(data.get("end"))
    rows = data.get("rows")
    rows_text = f"{rows:,}" if isinstance(rows, int) else "—"
    if isinstance(data.get("sampled_rows"), int):
        rows_text += f" (shares checked on a {data['sampled_rows']:,}-row sample, counts exact)"
    order = {"critical": 0, "warning": 1}
    ordered = sorted(
        checks, key=lambda c: (bool(c.get("success")), order.get(str(c.get("severity")), 2), c.get("family") or "")
    )
    return _render(
        "quality.html",
        f"{model} data quality {_when(start)} to {_when(end)} UTC",
        model=model,
        start=start,
        end=end,
        rows_text=rows_text,
        status_css=css,
        words=words,
        n_checks=_plural(len(checks), "check"),
        summary=summary,
        checks=[(c, _observed_text(c.get("observed"))) for c in ordered],
        files=list(files),
    )


def _parse_when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _pct0(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) and math.isfinite(value) else "—"


def _num(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if isinstance(value, (int, float)) and math.isfinite(value) else "—"


def drift_verdict(data: Mapping[str, Any]) -> str:
    """The dataset verdict in words, from DriftResult.to_dict()."""
    features = list(data.get("features") or [])
    drifted = sum(1 for f in features if f and f.get("drifted"))
    insufficient = len(data.get("insufficient_features") or [])
    compared = len(features) - insufficient
    share, needed = data.get("drift_share"), data.get("share_threshold")
    if share is None:
        return "No verdict: no feature had enough data to compare (drift.min_rows)."
    head = "Dataset drift" if data.get("dataset_drift") else "No dataset drift"
    cmp = "at or above" if data.get("dataset_drift") else "below"
    text = f"{head}: {drifted} of {compared} features drifted ({_pct0(share)}), {cmp} the {_pct0(needed)} threshold."
    if isinstance(data.get("weighted_share"), (int, float)):
        text += f" The drifted features carry {_pct0(data['weighted_share'])} of the model's importance."
    if insufficient:
        text += f" {_plural(insufficient, 'feature')} had too little data for a verdict and were not counted."
    for role, label in (("prediction", "The model score"), ("target", "The label")):
        f = data.get(role)
        if f and f.get("status") != "insufficient data":
            text += f" {label} {'drifted' if f.get('drifted') else 'did not drift'} (not counted in the share)."
    return text


def _drift_rows(data: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    rows = [("feature", f) for f in data.get("features") or [] if f]
    rows += [(role, data[role]) for role in ("prediction", "target") if data.get(role)]
    return rows


def _drift_order(item: tuple[str, Mapping[str, Any]]) -> tuple[int, float, str]:
    """Drifted first, then no drift, then insufficient data; within each, larger effect first."""
    _, f = item
    rank = 0 if f.get("drifted") else (2 if f.get("status") == "insufficient data" else 1)
    effect = f.get("effect")
    size = float(effect) if isinstance(effect, (int, float)) and math.isfinite(effect) else -math.inf
    return rank, -size, str(f.get("feature"))


def _drift_columns(data: Mapping[str, Any]) -> list[tuple[str, str, str, str, Mapping[str, Any], str]]:
    """Every compared column's (name, role, css, verdict, result, effect), drifted first, then by
    effect size: Evidently's verdicts as they are."""
    rows = []
    for role, f in sorted(_drift_rows(data), key=_drift_order):
        if f.get("drifted"):
            verdict, css = "drifted", "drift"
        elif str(f.get("status") or "") == "insufficient data":
            verdict, css = "insufficient data", "insufficient"
        else:
            verdict, css = "no drift", "no-drift"
        effect = f.get("effect")
        effect_text = "—" if effect is None else f"{_num(effect, 3)} ({f.get('effect_method') or ''})"
        name = column_label(str(f.get("feature")), role)
        rows.append((name, ROLE_LABELS.get(role, role), css, verdict, f, effect_text))
    return rows


def drift_title(model: str, start: datetime | None = None, end: datetime | None = None) -> str:
    when = f" {_when(start)} to {_when(end)} UTC" if start or end else ""
    return f"Drift report: {model}{when}"


def drift_sections(
    data: Mapping[str, Any],
    *,
    model: str,
    start: datetime | None = None,
    end: datetime | None = None,
    reference: str | None = None,
    plotted: bool = True,
) -> str:
    """What drift.html shows above Evidently's plots (header, then the verdict table), with its own
    CSS scoped to `.dg` so Evidently's widgets keep theirs (templates/reports/drift_sections.html)."""
    degraded = data.get("render_errors") or {}
    verdict_css = (
        "drift" if data.get("dataset_drift") else ("insufficient" if data.get("drift_share") is None else "no-drift")
    )
    sample = data.get("sample_rows")
    rows = f"{_count(data.get('reference_rows'))} reference, {_count(data.get('current_rows'))} current" + (
        f" (at most {_count(sample)} per side compared)" if isinstance(sample, int) else ""
    )
    return render(
        "reports/drift_sections.html",
        css=_scoped_css("div.dg", f"{PAGE_CSS}\n{_STATUS_CSS}"),
        model=model,
        start=start,
        end=end,
        reference=reference,
        rows=rows,
        verdict_css=verdict_css,
        verdict_word={"drift": "dataset drift", "no-drift": "no dataset drift", "insufficient": "no verdict"}[
            verdict_css
        ],
        verdict=drift_verdict(data),
        degraded="; ".join(f"{k}: {v}" for k, v in sorted(degraded.items())),
        columns=_drift_columns(data),
        skipped=sorted((data.get("skipped") or {}).items()),
        plotted=plotted,
    )


def _scoped_css(scope: str, css: str) -> str:
    """Each rule of the page CSS applied inside `scope` only (`body` becomes the scope itself)."""
    out = []
    for rule in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        selectors = ",".join(
            scope if s.strip() == "body" else f"{scope} {s.strip()}" for s in rule[0].split(",") if s.strip()
        )
        out.append(f"{selectors}{{{rule[1]}}}")
    return "".join(out)
