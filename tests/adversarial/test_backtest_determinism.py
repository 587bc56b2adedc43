"""The backtest on the regression task, and the runs that must write its decision table again.

Real SQLite feature logs, real MLflow stores, real GX and Evidently runs through the same
run_monitoring / run_retraining the DAGs use (tests/backtest_support.py has the logs and contracts).

Timeline: initial champion as of day 21; concept drift from day 23, first measurable in the
interval starting on day 24; eight daily intervals. That run is the reference for the resumable-
run tests: a run stopped, killed between an interval's retrain and its row and resumed, one with
strategies in parallel processes and one beside a CPU hog must all write the same decision table
(backtest.csv) as it.

Faults, parallel processes and load: the CI tier (adversarial); the binary task's replay, in
tests/integration/test_backtest.py, is in the fast tier.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from backtest_support import (
    check_strategies,
    day,
    decision_csv,
    restore_mlflow_globals,  # noqa: F401  (autouse, module-scoped: applies here)
    rows,
    seed_log,
    totals,
)
from driftguard import backtest, cli
from driftguard.backtest import BacktestConfig, BacktestResult
from driftguard.contract import ModelContract
from driftguard.testing import DEFAULT_START as T0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestConfig, BacktestResult]:
    """8 intervals, drift on day 23."""
    tmp = tmp_path_factory.mktemp("bt_regression")
    contract, _ = seed_log(tmp, "regression", drift_day=23)
    config = BacktestConfig(
        contract=contract,
        start=T0 + timedelta(days=21),
        end=T0 + timedelta(days=29),
        interval=timedelta(days=1),
        progress=False,
    )
    return config, backtest.run_backtest(config)


def test_regression_policy_retrains_after_the_drift_only(
    regression: tuple[BacktestConfig, BacktestResult],
) -> None:
    _, result = regression
    assert result.metric_name == "rmse" and not result.greater_is_better
    check_strategies(result, first_measured_drift_day=24, intervals=8)
    t = totals(result)
    # RMSE: lower is better.
    assert t["policy"].mean_metric <= t["always"].mean_metric * 1.25, backtest.totals_text(result)
    assert t["never"].mean_metric > t["policy"].mean_metric * 1.25, backtest.totals_text(result)


def test_rows_carry_the_estimate_and_the_gate_evidence(regression: tuple[BacktestConfig, BacktestResult]) -> None:
    _, result = regression
    assert all(r.estimated_metric is not None for r in result.rows), [
        r for r in result.rows if r.estimated_metric is None
    ]
    assert all(r.estimated_lower <= r.estimated_metric <= r.estimated_upper for r in result.rows)
    for r in rows(result, "never"):
        assert (r.gate, r.gate_failed, r.gain, r.gain_ci_low, r.gain_ci_high) == ("", "", None, None, None)
    for r in rows(result, "always"):
        # A gate ran every interval: its outcome, failed checks, and the gain with its CI.
        assert r.gate in ("promote", "reject", "insufficient_evidence"), r
        assert (r.gate == "promote") == (r.retrain == "promoted") and (r.gate_failed == "") == (r.gate == "promote")
        assert r.gain is not None and r.gain_ci_low <= r.gain_ci_high, r
    retrained = [r for r in rows(result, "policy") if r.retrain]
    assert retrained and all(r.gate and r.gain is not None for r in retrained)


class Killed(BaseException):
    """A kill between an interval's retrain and its row (not an Exception: nothing may catch it)."""


def test_same_inputs_resumed_after_a_stop_and_a_kill_write_the_uninterrupted_rows(
    regression: tuple[BacktestConfig, BacktestResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same inputs, same table: the policy replayed again from scratch, in three pieces. Every row
    (and the initial champion) is computed anew by these runs and must equal the reference run's."""
    config, full = regression
    out = tmp_path / "out"
    run = dataclasses.replace(config, strategies=("policy",), out_dir=out)
    stopped = backtest.run_backtest(dataclasses.replace(run, stop_after=2))
    assert not stopped.finished and len(stopped.rows) == 2
    assert stopped.initial["policy"] == full.initial["policy"]
    assert len((out / "backtest.csv").read_text().splitlines()) == 3  # header + the rows, as they finished
    assert not (out / "backtest.json").exists() and (out / "stores" / "policy" / "checkpoints").is_dir()
    # Resuming means the same backtest: another one is refused before anything runs.
    with pytest.raises(backtest.BacktestError, match="--end: was"):
        backtest.run_backtest(dataclasses.replace(run, resume=True, end=config.end - timedelta(days=1)))
    # The policy retrains on day 24 (the drift measured): killed after that retrain, before its row.
    real, killed_on = backtest._gate_record, T0 + timedelta(days=24)

    def kill(contract: ModelContract, settings: Any, start: Any, end: Any) -> dict[str, Any]:
        got = real(contract, settings, start, end)
        if start == killed_on:
            raise Killed
        return got

    monkeypatch.setattr(backtest, "_gate_record", kill)
    with pytest.raises(Killed):
        backtest.run_backtest(dataclasses.replace(run, resume=True))
    monkeypatch.undo()
    assert backtest.Journal(out).read()[-1].interval_end == killed_on.isoformat()
    done = backtest.run_backtest(dataclasses.replace(run, resume=True))
    expected = rows(full, "policy")
    assert done.finished and done.table() == [r.table() for r in expected]
    assert done.initial["policy"] == full.initial["policy"]
    assert (out / "backtest.csv").read_text() == decision_csv(expected, tmp_path / "expected")
    assert not (out / "stores").exists() and (out / "backtest.html").exists()


def test_jobs_2_writes_what_jobs_1_writes(
    regression: tuple[BacktestConfig, BacktestResult], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two strategies in two spawned processes, through the CLI; the first 2 days of the run."""
    config, full = regression
    path = tmp_path / f"{config.contract.name}.yaml"
    path.write_text(yaml.safe_dump(config.contract.model_dump(mode="json"), sort_keys=False))
    out = tmp_path / "out"
    args = ["--contract", str(path), "--start", "2024-01-22", "--end", "2024-01-24", "--interval", "1d"]
    args += ["--strategies", "never,always", "--jobs", "2", "--out", str(out), "--no-progress"]
    assert cli.main(["backtest", *args]) == 0, capsys.readouterr().err
    expected = [r for s in ("never", "always") for r in rows(full, s) if day(r) < 23]
    assert len(expected) == 4
    assert (out / "backtest.csv").read_text() == decision_csv(expected, tmp_path / "expected")
    data = json.loads((out / "backtest.json").read_text())
    assert data["initial_champion"]["never"] == data["initial_champion"]["always"] == full.initial["never"]


def test_same_decisions_beside_a_cpu_hog(regression: tuple[BacktestConfig, BacktestResult], tmp_path: Path) -> None:
    """The issue's determinism promise. `always` retrains every interval, so every gate runs (with
    its servability check's latency measured in a fresh process) while every core is busy: the
    initial champion and two intervals, the second gate against the champion the first promoted."""
    config, full = regression
    # With the backtest's own process, one hog fewer than the cores keeps every core busy (more only
    # slowed the other test worker); the servability child then shares a core with a hog.
    cores = os.cpu_count() or 2
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(max(1, min(cores, 4) - 1))]
    try:
        busy = backtest.run_backtest(
            dataclasses.replace(
                config, strategies=("always",), end=config.start + timedelta(days=2), out_dir=tmp_path / "busy"
            )
        )
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    expected = rows(full, "always")[:2]
    assert busy.table() == [r.table() for r in expected]
    assert busy.initial["always"] == full.initial["always"]
    assert (tmp_path / "busy" / "backtest.csv").read_text() == decision_csv(expected, tmp_path / "expected")
