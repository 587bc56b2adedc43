"""Great Expectations plumbing: one quiet ephemeral context per process.

Kept apart from quality.py so the suite logic reads without GX boilerplate. GX reads
GX_ANALYTICS_ENABLED when it starts, so it is set here before GX is imported; progress bars
are switched off in the context's config (they would otherwise flood Airflow task logs).

GX's Data Docs HTML is not rendered: the run's validation.html is Driftguard's own page
(reports.quality_page), which needs no CDN, judges checks by the contract's severities and
escapes every value from the feature log.
"""

from __future__ import annotations

import datetime as dt
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
    "gxe",
    "jsonable",
    "run_suite",
]

_BATCH_DEFINITION: Any = None


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
    for r in result.results:  # plain JSON types (numpy scalars would not serialise)
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
