"""Evidently 0.7 plumbing: per-column drift tests, quiet runs and HTML without the inlined
JS bundle.

`column_drift` runs Evidently's own drift test for one column exactly as `ValueDrift` does (the
same stattest registry, the same auto choice, the same inf/NaN cleaning) but without preparing
its plots, which cost about two thirds of a ValueDrift run; reports then plot only what matters.

Evidently's `Snapshot.save_html` inlines its ~3.5 MB dashboard bundle and an icon font into
every report. Its own template (legacy.utils.dashboard.TemplateParams) can instead link them
(embed_lib/embed_font=False), which is what its "folder" save mode does; the new Snapshot API
just doesn't expose it. We render the same widgets with that template and keep one copy of the
bundle per assets folder, so a report is its data only (a few hundred KB).

Feature names and category values come from the feature log, so they are data, never markup:
the dashboard JSON goes into its <script> with `<`, `>`, `&` and U+2028/2029 written as JSON
escapes (`script_json`), so no value can close the script element or open a comment, and the
page stays the same JSON for the bundle. Evidently's own template would embed that JSON raw.

Evidently's page has no title and no header: save_html adds a <title> and puts the caller's
header (Driftguard's escaped HTML: the run's facts and verdict table) above the widgets.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's telemetry (UI service only) stays off

import evidently
import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import ValueDrift

__all__ = [
    "ColumnDrift",
    "DataDefinition",
    "Dataset",
    "Report",
    "ValueDrift",
    "column_drift",
    "quiet",
    "run_report",
    "save_html",
    "script_json",
]

BUNDLE = f"evidently-{evidently.__version__}.js"
FONT = "material-ui-icons.woff2"

# Characters that could end a <script> element ("</script"), open an HTML comment or CDATA
# section inside it ("<!--", "<![CDATA["), or end a JS line (U+2028/9 in old engines). Outside
# JSON strings none of them occurs, so replacing them with \u escapes keeps the same JSON value.
_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_SCRIPT_UNSAFE_TABLE = str.maketrans(_SCRIPT_UNSAFE)


@dataclass(frozen=True)
class ColumnDrift:
    """Evidently's verdict for one column: the method and threshold it applied, score, FAIL."""

    method: str
    threshold: float
    score: float
    drifted: bool


def column_drift(
    reference: pd.Series, current: pd.Series, *, numeric: bool, method: str | None, threshold: float | None
) -> ColumnDrift:
    """ValueDrift's test for one column (legacy.calculations.data_drift.get_one_column_drift), no plots.

    Raises ValueError when a side has no finite values, as Evidently does. Thread-safe (it reads
    the two series only); scipy's warnings are silenced by the caller (`quiet`), since
    warnings filters are process-wide."""
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    kind = ColumnType.Numerical if numeric else ColumnType.Categorical
    ref = reference.replace([-np.inf, np.inf], np.nan).dropna()
    cur = current.replace([-np.inf, np.inf], np.nan).dropna()
    if ref.empty or cur.empty:
        raise ValueError(
            f"column {reference.name!r} has no values on the {'reference' if ref.empty else 'current'} side"
        )
    test = get_stattest(ref, cur, kind, method)
    result = test(ref, cur, kind, threshold)
    return ColumnDrift(test.name, float(result.actual_threshold), float(result.drift_score), bool(result.drifted))


@contextmanager
def quiet() -> Iterator[None]:
    """scipy's numeric warnings inside the stattests (capped p-values, ties: UserWarning; empty or
    constant columns: RuntimeWarning) are expected on real data and not ours to show. Deprecations
    still show: they are how a pinned library's next version announces a break."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def run_report(metrics: list[Any], reference: pd.DataFrame, current: pd.DataFrame, definition: DataDefinition) -> Any:
    """Run a report (plots only: the verdicts come from column_drift)."""
    with quiet():
        return Report(metrics).run(
            reference_data=Dataset.from_pandas(reference, data_definition=definition),
            current_data=Dataset.from_pandas(current, data_definition=definition),
        )


def _copy_assets(assets_dir: Path) -> None:
    from evidently.legacy.utils.dashboard import STATIC_PATH

    assets_dir.mkdir(parents=True, exist_ok=True)
    for source, target in (("index.js", BUNDLE), (FONT, FONT)):
        if not (assets_dir / target).exists():
            tmp = assets_dir / f".{target}.{uuid.uuid4().hex}"
            shutil.copyfile(Path(STATIC_PATH) / source, tmp)
            tmp.replace(assets_dir / target)  # atomic: parallel tasks never see half a bundle


def script_json(text: str) -> str:
    """JSON text made safe to sit inside an HTML <script> element; json.loads gives the same value."""
    return text.translate(_SCRIPT_UNSAFE_TABLE)


def save_html(
    snapshot: Any | Sequence[Any] | None,
    out_html: Path,
    assets_dir: Path | None = None,
    *,
    title: str = "Drift report",
    header: str = "",
) -> Path:
    """Write the report: `header` (trusted HTML, every value in it already escaped) on top, then
    the widgets of the snapshot or snapshots, linking the shared bundle in assets_dir (default:
    next to the report). Without snapshots the page is the header alone, with no script.

    If Evidently's internals moved, writes the header alone with a note instead (no plots):
    Evidently's own self-contained page embeds the data unescaped in a <script>."""
    out_html.parent.mkdir(parents=True, exist_ok=True)
    assets_dir = Path(assets_dir) if assets_dir is not None else out_html.parent
    snapshots = [] if snapshot is None else list(snapshot) if isinstance(snapshot, (list, tuple)) else [snapshot]
    if not snapshots:
        out_html.write_text(_plain_page(title, header), encoding="utf-8")
        return out_html
    try:
        page = _linked_page(snapshots, os.path.relpath(assets_dir, out_html.parent), title, header)
    except (AttributeError, ImportError, TypeError, ValueError) as exc:
        import logging

        logging.getLogger(__name__).warning(
            "Evidently HTML could not be rendered safely (%s: %s); writing the table without plots",
            type(exc).__name__,
            exc,
        )
        note = f"Evidently could not render its plots ({type(exc).__name__})."
        out_html.write_text(_plain_page(title, header, note), encoding="utf-8")
        return out_html
    _copy_assets(assets_dir)
    out_html.write_text(page, encoding="utf-8")
    return out_html


def _plain_page(title: str, header: str, note: str = "") -> str:
    """The header alone, no script: the page without plots."""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head><body>"
        + (f"<p>{html.escape(note)}</p>" if note else "")
        + header
        + "</body></html>\n"
    )


_NO_DATA = "<!-- no embedded data -->"


def _linked_page(snapshots: Sequence[Any], rel: str, title: str, header: str) -> str:
    """Snapshot.get_html_str / render_widgets, with the bundle and font linked, not inlined, the
    dashboard data embedded by us (script_json), not by Evidently's template, and our title and
    header added."""
    from evidently.core.metric_types import DetailsInfo
    from evidently.legacy.model.dashboard import DashboardInfo
    from evidently.legacy.model.widget import AdditionalGraphInfo, BaseWidgetInfo
    from evidently.legacy.renderers.html_widgets import group_widget
    from evidently.legacy.utils import NumpyEncoder
    from evidently.legacy.utils.dashboard import TemplateParams, dashboard_info_to_json, file_html_template

    widgets = []
    for one in snapshots:
        widgets += [group_widget(title="", widgets=one._widgets), *one._tests_widgets]
    graphs = {}
    for widget in widgets:
        for graph in widget.get_additional_graphs():
            info = graph.params if isinstance(graph, AdditionalGraphInfo) else graph
            item = DetailsInfo(title="", info=info, id=graph.id)
            graphs[str(item.id)] = item.info.dict() if isinstance(item.info, BaseWidgetInfo) else item.info
    rel = quote(Path(rel).as_posix())  # our own assets folder; quoted all the same (src="", CSS url())
    dashboard_id = "metric_" + uuid.uuid4().hex
    info = DashboardInfo(name="Report", widgets=widgets)
    params = TemplateParams(
        dashboard_id=dashboard_id,
        dashboard_info=info,
        additional_graphs=graphs,
        embed_lib=False,
        embed_font=False,
        embed_data=False,
        font_file=f"{rel}/{FONT}",
        include_js_files=[f"{rel}/{BUNDLE}"],
    )
    page = file_html_template(params)
    if page.count(_NO_DATA) != 1 or page.count("</head>") != 1 or page.count("<body>") != 1:
        raise ValueError("Evidently's page template has no single data placeholder, head or body")
    page = page.replace("</head>", f"<title>{html.escape(title)}</title></head>", 1)
    page = page.replace("<body>", f"<body>{header}", 1)
    data = (
        "<script>\n"
        f"    var {dashboard_id} = {script_json(dashboard_info_to_json(info))};\n"
        f"    var additional_graphs_{dashboard_id} = {script_json(json.dumps(graphs, cls=NumpyEncoder))};\n"
        "</script>"
    )
    return page.replace(_NO_DATA, data, 1)
