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
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    "Table",
    "ValueDrift",
    "column_drift",
    "quiet",
    "run_report",
    "save_html",
]

BUNDLE = f"evidently-{evidently.__version__}.js"
FONT = "material-ui-icons.woff2"


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
    """scipy's warnings (capped p-values, ties) are not ours to show."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
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


@dataclass(frozen=True)
class Table:
    """A plain table widget shown above the report's plots."""

    title: str
    header: Sequence[str]
    rows: Sequence[Sequence[Any]]


def save_html(
    snapshot: Any | None, out_html: Path, assets_dir: Path | None = None, *, table: Table | None = None
) -> Path:
    """Write the report (table first, then the snapshot's widgets, if any) linking the shared
    bundle in assets_dir (default: next to the report).

    Falls back to Evidently's self-contained page (without the table) if its internals moved."""
    out_html.parent.mkdir(parents=True, exist_ok=True)
    assets_dir = Path(assets_dir) if assets_dir is not None else out_html.parent
    try:
        page = _linked_page(snapshot, os.path.relpath(assets_dir, out_html.parent), table)
    except (AttributeError, ImportError, TypeError) as exc:
        if snapshot is None:
            raise
        import logging

        logging.getLogger(__name__).warning("Evidently HTML without bundle failed (%s); inlining it", exc)
        snapshot.save_html(str(out_html))
        return out_html
    _copy_assets(assets_dir)
    out_html.write_text(page, encoding="utf-8")
    return out_html


def _linked_page(snapshot: Any | None, rel: str, table: Table | None) -> str:
    """Snapshot.get_html_str / render_widgets, with the bundle and font linked, not inlined."""
    from evidently.core.metric_types import DetailsInfo
    from evidently.legacy.model.dashboard import DashboardInfo
    from evidently.legacy.model.widget import AdditionalGraphInfo, BaseWidgetInfo
    from evidently.legacy.renderers.html_widgets import group_widget, table_data
    from evidently.legacy.utils.dashboard import TemplateParams, file_html_template

    widgets = []
    if table is not None:
        widgets.append(table_data(title=table.title, column_names=table.header, data=table.rows))
    if snapshot is not None:
        widgets += [group_widget(title="", widgets=snapshot._widgets), *snapshot._tests_widgets]
    graphs = {}
    for widget in widgets:
        for graph in widget.get_additional_graphs():
            info = graph.params if isinstance(graph, AdditionalGraphInfo) else graph
            item = DetailsInfo(title="", info=info, id=graph.id)
            graphs[str(item.id)] = item.info.dict() if isinstance(item.info, BaseWidgetInfo) else item.info
    rel = Path(rel).as_posix()
    params = TemplateParams(
        dashboard_id="metric_" + uuid.uuid4().hex,
        dashboard_info=DashboardInfo(name="Report", widgets=widgets),
        additional_graphs=graphs,
        embed_lib=False,
        embed_font=False,
        font_file=f"{rel}/{FONT}",
        include_js_files=[f"{rel}/{BUNDLE}"],
    )
    return file_html_template(params)
