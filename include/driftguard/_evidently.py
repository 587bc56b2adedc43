"""Evidently 0.7 plumbing: method names, quiet runs and HTML without the inlined JS bundle.

Evidently's `Snapshot.save_html` inlines its ~3.5 MB dashboard bundle and an icon font into
every report. Its own template (legacy.utils.dashboard.TemplateParams) can instead link them
(embed_lib/embed_font=False), which is what its "folder" save mode does; the new Snapshot API
just doesn't expose it. We render the same widgets with that template and keep one copy of the
bundle per assets folder, so a report is its data only (a few hundred KB).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
from functools import cache
from pathlib import Path
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's telemetry (UI service only) stays off

import evidently
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import ValueDrift

__all__ = ["DataDefinition", "Dataset", "Report", "ValueDrift", "method_id", "run_report", "save_html"]

BUNDLE = f"evidently-{evidently.__version__}.js"
FONT = "material-ui-icons.woff2"


@cache
def _display_names() -> dict[str, str]:
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests

    return {st.display_name: st.name for by_type in _registered_stat_tests.values() for st in by_type.values()}


def method_id(name: str) -> str:
    """Evidently reports an auto-chosen method by display name ("Wasserstein distance (normed)")."""
    return _display_names().get(name, name)


def run_report(metrics: list[Any], reference: pd.DataFrame, current: pd.DataFrame, definition: DataDefinition) -> Any:
    """Run a report with its tests; scipy's warnings (capped p-values etc.) are not ours to show."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Report(metrics, include_tests=True).run(
            reference_data=Dataset.from_pandas(reference, data_definition=definition),
            current_data=Dataset.from_pandas(current, data_definition=definition),
        )


def snapshot_json(snapshot: Any) -> dict[str, Any]:
    return json.loads(snapshot.json())  # .dict() holds numpy values and enums


def _copy_assets(assets_dir: Path) -> None:
    from evidently.legacy.utils.dashboard import STATIC_PATH

    assets_dir.mkdir(parents=True, exist_ok=True)
    for source, target in (("index.js", BUNDLE), (FONT, FONT)):
        if not (assets_dir / target).exists():
            tmp = assets_dir / f".{target}.{uuid.uuid4().hex}"
            shutil.copyfile(Path(STATIC_PATH) / source, tmp)
            tmp.replace(assets_dir / target)  # atomic: parallel tasks never see half a bundle


def save_html(snapshot: Any, out_html: Path, assets_dir: Path | None = None) -> Path:
    """Write the report linking the shared bundle in assets_dir (default: next to the report).

    Falls back to Evidently's self-contained page if its internals moved."""
    out_html.parent.mkdir(parents=True, exist_ok=True)
    assets_dir = Path(assets_dir) if assets_dir is not None else out_html.parent
    try:
        page = _linked_page(snapshot, os.path.relpath(assets_dir, out_html.parent))
    except (AttributeError, ImportError, TypeError) as exc:
        import logging

        logging.getLogger(__name__).warning("Evidently HTML without bundle failed (%s); inlining it", exc)
        snapshot.save_html(str(out_html))
        return out_html
    _copy_assets(assets_dir)
    out_html.write_text(page, encoding="utf-8")
    return out_html


def _linked_page(snapshot: Any, rel: str) -> str:
    """Snapshot.get_html_str / render_widgets, with the bundle and font linked, not inlined."""
    from evidently.core.metric_types import DetailsInfo
    from evidently.legacy.model.dashboard import DashboardInfo
    from evidently.legacy.model.widget import AdditionalGraphInfo, BaseWidgetInfo
    from evidently.legacy.renderers.html_widgets import group_widget
    from evidently.legacy.utils.dashboard import TemplateParams, file_html_template

    widgets = [group_widget(title="", widgets=snapshot._widgets), *snapshot._tests_widgets]
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
