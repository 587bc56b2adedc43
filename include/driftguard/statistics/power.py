"""Is a contract's setting able to say anything on this data? Warnings from real row counts.

`driftguard check --connect` counts the log's last intervals (sources.volume_profile) and asks
the questions a statistician would before trusting the alarms: will a window have enough rows
for a drift verdict, can the reference calibrate its thresholds, can the label guard ever be
met within a few windows, and are the metric thresholds in units that fit the metric? Pure: the
counts come in, the warnings (`field: message` lines) go out.
"""

from __future__ import annotations

import statistics
from datetime import timedelta

from driftguard.contract import ModelContract, format_duration

LABEL_WINDOWS = 4  # the label guard should be reachable within this many intervals


def settings_warnings(
    contract: ModelContract, window: timedelta, rows_per_window: list[int], labelled_share: float | None
) -> list[str]:
    """Warnings for one contract, given the row counts of its last intervals of length `window`."""
    out: list[str] = []
    cfg, policy = contract.drift, contract.policy
    every = format_duration(window)
    typical = statistics.median(rows_per_window) if rows_per_window else None
    if typical is not None and typical < cfg.min_rows:
        out.append(
            f"drift.min_rows: a {every} interval holds about {typical:,.0f} rows (median of the last "
            f"{len(rows_per_window)}), fewer than drift.min_rows={cfg.min_rows}: drift verdicts will be "
            "`insufficient data`; schedule a longer interval"
        )
    chunks_needed = cfg.calibration.min_chunks
    ref = contract.reference
    if ref.start is not None and ref.end is not None and (ref.end - ref.start) / window < chunks_needed:
        out.append(
            f"reference: the bootstrap window {ref.start:%Y-%m-%d}..{ref.end:%Y-%m-%d} spans "
            f"{(ref.end - ref.start) / window:.1f} intervals of {every}, fewer than drift.calibration.min_chunks="
            f"{chunks_needed}: drift thresholds calibrate sampling noise only, not seasonality"
        )
    train = contract.training_window
    if train is not None and train / window < chunks_needed:
        out.append(
            f"training.window ({format_duration(train)}) is a champion's drift reference: {train / window:.1f} "
            f"intervals of {every}, fewer than drift.calibration.min_chunks={chunks_needed}, so its thresholds "
            "cannot calibrate on time chunks"
        )
    if typical and labelled_share is not None:
        per_window = typical * labelled_share
        training_rows = None if train is None else typical * (train / window)
        need = policy.min_new_labels.rows(int(training_rows) if training_rows else None)
        if per_window <= 0:
            out.append("policy.min_new_labels: no labelled rows in the last intervals: the label guard cannot pass")
        elif need and need / per_window > LABEL_WINDOWS:
            out.append(
                f"policy.min_new_labels: {policy.min_new_labels} means {need:,} labelled rows, but an interval "
                f"brings about {per_window:,.0f}: about {need / per_window:.0f} intervals before a retrain can "
                f"happen; lower it or use a share of the training rows (e.g. '10%')"
            )
    return out
