"""A whole monitoring run on a window larger than source.sample_rows, on SQLite and PostgreSQL:
the steps work on a seeded sample while the recorded counts stay those of the whole window, for
the monitored window and the label window alike (real GX, Evidently, history store; bootstrap
reference, no champion)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from driftguard.monitoring import monitor
from driftguard.settings import get_settings
from driftguard.store import HistoryStore
from driftguard.testing import Injection, generate_log, synthetic_contract, write_log

START = datetime(2024, 1, 1, tzinfo=UTC)
ROWS_PER_DAY = 30_000
SAMPLE = 10_000


@pytest.mark.slow
def test_sampled_window_keeps_exact_counts(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("DRIFTGUARD_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    monkeypatch.setenv("DRIFTGUARD_HISTORY_URL", f"sqlite:///{home / 'history.db'}")
    monkeypatch.setenv("DRIFTGUARD_REPORTS_DIR", str(home / "reports"))
    contract = synthetic_contract(
        url=db_url,
        name="sampled",
        overrides={
            "source": {"sample_rows": SAMPLE},
            "reference": {"start": START.isoformat(), "end": (START + timedelta(days=1)).isoformat()},
            "drift": {"sample_size": 5000},
        },
    )
    day = START + timedelta(days=1)
    log, labels = generate_log(
        "binary_classification",
        start=START,
        days=2,
        rows_per_day=ROWS_PER_DAY,
        seed=5,
        injections=[Injection("mean_shift", day, "num_0", 3.0)],
    )
    last = log.index[-1]
    log.loc[last, "event_id"] = log.loc[last - 1, "event_id"]  # one duplicated id: 2 rows of 30,000
    labels = labels.drop_duplicates("event_id")
    write_log(db_url, contract, log, labels)

    result = monitor.run_monitoring(contract, day, day + timedelta(days=1), settings=get_settings())
    summary = json.loads((Path(result["report"]).parent / "summary.json").read_text())

    extract = summary["extract"]
    assert extract["rows"] == ROWS_PER_DAY and extract["sampled"]
    assert 0.9 * SAMPLE < extract["read_rows"] < 1.1 * SAMPLE
    assert extract["facts"]["duplicate_rows"] == 2
    quality = summary["quality"]
    assert quality["rows"] == ROWS_PER_DAY and quality["sampled_rows"] == extract["read_rows"]
    dup = next(c for c in quality["checks"] if c["family"] == "duplicates")
    assert not dup["success"] and dup["observed"]["exact"] == "database"
    assert result["quality_passed"] is False and result["retrain"] is False  # a critical failure blocks
    assert "num_0" in result["drifted_features"]  # distributions still judged, on the sample
    assert summary["drift"]["current_rows"] == extract["read_rows"]

    in_label_window = (log["event_ts"] >= START) & (log["event_ts"] < day)  # [day - delay, end - delay)
    labelled = int(log.loc[in_label_window, "event_id"].isin(labels["event_id"]).sum())
    assert labelled == ROWS_PER_DAY and extract["labelled_rows"] == labelled  # exact: every labelled row
    assert 0.9 * SAMPLE < extract["labelled_read_rows"] < 1.1 * SAMPLE  # read: the seeded sample
    evaluation = summary["evaluation"]
    assert evaluation["labelled_rows"] == labelled and evaluation["metric_rows"] == extract["labelled_read_rows"]
    assert evaluation["metric_value"] is not None

    [run] = HistoryStore(get_settings().history_url).runs("sampled")
    assert run.rows == ROWS_PER_DAY  # history records the window, not the sample
    assert run.labelled_rows == labelled  # what the new_labels guard sums
