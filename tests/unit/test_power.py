"""`driftguard check --connect` warns about settings the data cannot support (real SQLite counts)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from driftguard.cli import main
from driftguard.contract import unit_warnings
from driftguard.statistics.power import settings_warnings
from driftguard.testing import DEFAULT_START, generate_log, synthetic_contract, write_log

MONTH = timedelta(days=30)


def contract(url: str = "sqlite:///unused.db", **policy):
    return synthetic_contract(
        url=url, task="regression", schedule="@monthly", overrides={"policy": policy} if policy else None
    )


def test_small_windows_and_unreachable_labels_are_warned() -> None:
    c = contract(min_new_labels=1000, metric_drop=2.0)
    out = settings_warnings(c, MONTH, [15, 12, 18], labelled_share=1.0)
    text = "\n".join(out)
    assert "drift.min_rows: a 30d interval holds about 15 rows" in text
    assert "policy.min_new_labels: 1000 means 1,000 labelled rows, but an interval brings about 15" in text
    assert "policy.metric_drop: 2 abs is absolute on rmse" in "\n".join(unit_warnings(c))  # without --connect
    assert "training.window (60d) is a champion's drift reference: 2.0 intervals of 30d" in text


def test_settings_that_fit_the_data_give_no_data_warnings() -> None:
    c = contract(min_new_labels="10%")
    out = settings_warnings(c, MONTH, [5000] * 8, labelled_share=0.9)
    assert not [w for w in out if w.startswith(("drift.min_rows", "policy."))]


def test_check_connect_prints_the_warnings_from_real_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    c = contract(url, min_new_labels=1000)
    log, labels = generate_log("regression", start=DEFAULT_START, days=240, rows_per_day=1, seed=0)
    write_log(url, c, log, labels)
    path = tmp_path / f"{c.name}.yaml"
    path.write_text(yaml.safe_dump(c.model_dump(mode="json", exclude_none=True), sort_keys=False))
    assert main(["check", str(path), "--connect"]) == 0  # warnings do not fail the check
    out = capsys.readouterr().out
    assert f"{path}: warning: policy.min_new_labels: 1000 means 1,000 labelled rows" in out
    assert "0 problem(s), " in out and "warning(s)" in out
