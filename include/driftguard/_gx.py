"""Great Expectations plumbing: one quiet ephemeral context per process, and HTML rendering.

Kept apart from quality.py so the suite logic reads without GX boilerplate. GX reads
GX_ANALYTICS_ENABLED when it starts, so it is set here before GX is imported; progress bars
are switched off in the context's config (they would otherwise flood Airflow task logs).

Column names, category values and observed values come from the feature log: they are data, and
GX's page writes several of them raw (section headers, "Sampled Unexpected Values" cells). So
render_html escapes every string of the validation result (escaped_result) before GX sees it,
and renders with a view that does not escape template parameters a second time: each
data-derived string reaches the page escaped exactly once, whichever GX code path writes it.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import math
import os
from decimal import Decimal
from typing import Any

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx
import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
from great_expectations.core import ExpectationSuite, ExpectationSuiteValidationResult
from great_expectations.data_context.types.base import ProgressBarsConfig

__all__ = [
    "ExpectationSuite",
    "ExpectationSuiteValidationResult",
    "escape_strings",
    "escaped_result",
    "gxe",
    "jsonable",
    "render_html",
    "run_suite",
]

log = logging.getLogger(__name__)

_BATCH_DEFINITION: Any = None

# Which HTML we keep for a validation (recorded in QualityResult.to_dict()["docs_renderer"]).
RENDERER_GX = "gx-data-docs-renderer"  # GX's own ValidationResultsPageRenderer + DefaultJinjaPageView
RENDERER_FALLBACK = "driftguard-html"  # our escaped table, used only if GX's renderer raises


def _batch_definition() -> Any:
    """A whole-dataframe batch definition on a cached ephemeral context (no files written)."""
    global _BATCH_DEFINITION
    if _BATCH_DEFINITION is None:
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        context.config.analytics_enabled = False
        source = context.data_sources.add_pandas("driftguard")
        asset = source.add_dataframe_asset("feature_window")
        _BATCH_DEFINITION = asset.add_batch_definition_whole_dataframe("whole_window")
    return _BATCH_DEFINITION


def run_suite(
    suite: ExpectationSuite, df: pd.DataFrame, parameters: dict[str, Any] | None = None
) -> ExpectationSuiteValidationResult:
    """Validate a pandas frame. SUMMARY (not BOOLEAN_ONLY) because messages quote observed
    values; in pandas it costs little more (see NOTES.md), and only 5 examples are kept."""
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
    # GX filters the whole batch frame per expectation (df[mask]); without copy-on-write pandas
    # deep-copies every column each time a mask keeps all rows. Copy-on-write makes those copies
    # lazy: same results, about half the time and a third less memory on a 1M x 27 window.
    with pd.option_context("mode.copy_on_write", True):
        batch = _batch_definition().get_batch(batch_parameters={"dataframe": df})
        result = batch.validate(suite, result_format=result_format, expectation_parameters=parameters or {})
    for r in result.results:  # GX's renderer chokes on numpy scalars (num_to_str uses repr)
        r.result = jsonable(r.result)
    return result


def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars, timestamps, NaN/NaT and decimals made portable."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date)):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, int):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


# GX's status icons come from Font Awesome on a CDN; offline they vanish and a reader cannot
# tell passed from failed. These glyphs keep the status visible without network access.
_OFFLINE_ICONS = (
    "<style>.fa-check-circle::before{content:'\\2714';color:#28a745}"
    ".fa-times::before{content:'\\2716';color:#dc3545}"
    ".dg-summary{font-family:sans-serif;margin:1em 2em;padding:1em;border:2px solid #888}"
    ".dg-summary td,.dg-summary th{padding:2px 8px;text-align:left;vertical-align:top}</style>"
)


# HTML-escaping of data-derived strings before GX renders them. Besides html.escape's five
# characters: '\\' (could end a quoted JS string GX writes), '$' (GX's string templates would
# substitute "$name" inside a value) and '`'. Each is an entity, so the page shows the value as is.
_HTML_TABLE = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "'": "&#x27;",
        "\\": "&#92;",
        "$": "&#36;",
        "`": "&#96;",
    }
)


def escape_strings(value: Any) -> Any:
    """Every string in a JSON-like value (dict keys included) HTML-escaped; other values as they are."""
    if isinstance(value, str):
        return value.translate(_HTML_TABLE)
    if isinstance(value, dict):
        return {escape_strings(k): escape_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [escape_strings(v) for v in value]
    return value


def escaped_result(result: ExpectationSuiteValidationResult) -> ExpectationSuiteValidationResult:
    """A copy of the validation result in which every string is HTML-escaped (for rendering only).

    Expectation types are GX identifiers (letters and '_'), which escaping leaves unchanged, so
    GX still finds each expectation's renderer."""
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    data = escape_strings(jsonable(result.to_json_dict()))
    results = []
    for r in data.get("results") or []:
        config = r.get("expectation_config") or {}
        expectation = ExpectationConfiguration(
            type=config["type"],
            kwargs=config.get("kwargs") or {},
            meta=config.get("meta"),
            notes=config.get("notes"),
            description=config.get("description"),
            **({"severity": config["severity"]} if config.get("severity") else {}),
        )
        results.append(
            ExpectationValidationResult(
                success=r.get("success"),
                expectation_config=expectation,
                result=r.get("result") or {},
                meta=r.get("meta") or {},
                exception_info=r.get("exception_info"),
            )
        )
    return ExpectationSuiteValidationResult(
        success=bool(data.get("success")),
        results=results,
        suite_name=data.get("suite_name") or "",
        suite_parameters=data.get("suite_parameters"),
        statistics=data.get("statistics"),
        meta=data.get("meta"),
    )


def _page_view() -> Any:
    """GX's page view, minus its escaping of template parameters (escaped_result did it already:
    escaping twice would show "&amp;lt;" where the data has "<")."""
    from great_expectations.render.view import DefaultJinjaPageView

    class EscapedDataPageView(DefaultJinjaPageView):
        @staticmethod
        def _escape_template_param_value(value: Any) -> Any:
            return value

    return EscapedDataPageView()


def render_html(result: ExpectationSuiteValidationResult, title: str, header: str = "") -> tuple[str, str]:
    """HTML of one validation: GX's Data Docs page renderer, else our own escaped page.

    Rendering GX's page directly avoids a file context (a whole gx/ project tree per run);
    the page is the one UpdateDataDocsAction writes, minus the site index around it, with every
    string from the result HTML-escaped (escaped_result). `header` (already escaped HTML) goes
    on top: Driftguard's verdict in contract terms."""
    try:
        from great_expectations.render.renderer import ValidationResultsPageRenderer

        document = ValidationResultsPageRenderer().render(escaped_result(result))
        page = _page_view().render(document)
        page = page.replace("<title></title>", f"<title>{html.escape(title)}</title>", 1)
        page = page.replace("<body>", f"<body>{_OFFLINE_ICONS}{header}", 1)
        return page, RENDERER_GX
    except Exception as exc:  # rendering must never fail a validation
        log.warning("GX Data Docs rendering failed (%s: %s); writing a plain HTML page", type(exc).__name__, exc)
        return fallback_html(result.to_json_dict(), title, header), RENDERER_FALLBACK


def fallback_html(result_json: dict[str, Any], title: str, header: str = "") -> str:
    """A self-contained table of expectations and outcomes; every value is escaped."""
    rows = []
    for r in result_json.get("results", []):
        config = r.get("expectation_config") or {}
        meta = config.get("meta") or {}
        kwargs = json.dumps(jsonable(config.get("kwargs") or {}), sort_keys=True)
        observed = json.dumps(jsonable(r.get("result") or {}), sort_keys=True)
        status = "passed" if r.get("success") else "FAILED"
        cells = [status, meta.get("family", ""), meta.get("severity", ""), config.get("type", ""), kwargs, observed]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("status", "family", "severity", "expectation", "kwargs", "observed"))
    stats = html.escape(json.dumps(jsonable(result_json.get("statistics") or {}), sort_keys=True))
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body>{header}<h1>{html.escape(title)}</h1><p>{stats}</p><table border='1'><tr>{head}</tr>"
        + "".join(rows)
        + "</table></body></html>"
    )
