"""Backtest on synthetic logs with a concept drift at a known date, for both tasks.

Real SQLite feature logs, real MLflow stores, real GX and Evidently runs through the same
run_monitoring / run_retraining the DAGs use. Small and linear (logistic regression, ridge) so a
retrain takes seconds: 300 rows a day, daily intervals, the drift a few days in.

Timeline (binary): initial champion as of day 21; concept drift from day 25; labels mature a day
late, so the first interval that can measure the drift is the one starting on day 26. With
training.window 4d (train 2d, validation 1d, holdout 1d) a retrain as of day 29 trains on
post-drift rows only.

The regression run is also the reference for the resumable-run tests: a run stopped and resumed,
one killed between an interval's retrain and its row, one with strategies in parallel processes
and one beside a CPU hog must all write the same decision table (backtest.csv) as it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from driftguard import backtest, cli, mlflow_setup, testing
from driftguard.backtest import BacktestConfig, BacktestResult, IntervalRow
from driftguard.contract import ContractError, ModelContract
from driftguard.settings import REPO_ROOT
from driftguard.testing import DEFAULT_START as T0
from driftguard.testing import Injection

pytestmark = pytest.mark.slow

ROWS_PER_DAY = 300
LOG_DAYS = 34


def _contract(task: str, url: str) -> ModelContract:
    binary = task == "binary_classification"
    return testing.synthetic_contract(
        task=task,
        url=url,
        name="bt_binary" if binary else "bt_regression",
        prediction=False,  # monitoring scores with the serving @champion, as the backtest needs
        label_table="event_labels" if binary else None,
        overrides={
            "reference": {"start": "2024-01-01", "end": "2024-01-15", "sample_size": 1000},
            "training": {
                "estimator": "logistic_regression" if binary else "ridge",
                "params": {} if binary else {"alpha": 1.0},
                "seed": 7,
                "window": "4d",
                "validation": "1d",
                "holdout": "1d",
            },
            # Concept drift moves labels, not features: the metric trigger is the one that matters.
            "policy": {
                "metric_drop": 0.1 if binary else 2.0,
                "drift_share": 0.5,
                "important_features": None,
                "max_model_age": None,
                "cooldown": "1d",
                "min_new_labels": 100,
            },
            # Regression: a challenger fitted on pre-drift rows can be a hair better than the champion on
            # the drifted holdout; promoted, its poor holdout RMSE would become the metric_drop baseline and
            # hide the degradation. Requiring a 20% gain keeps the gate from promoting it.
            "promotion": {
                "mode": "superiority",
                "margin": 0.0,
                "bootstrap": {"samples": 200},
                "segments": {"min_rows": 50},
                "min_relative_change": 0.0 if binary else 0.2,
            },
        },
    )


def _seed_log(tmp: Path, task: str, drift_day: int) -> tuple[ModelContract, str]:
    url = f"sqlite:///{tmp}/log_{task}.db"
    contract = _contract(task, url)
    log, labels = testing.generate_log(
        task,
        start=T0,
        days=LOG_DAYS,
        rows_per_day=ROWS_PER_DAY,
        seed=3,
        injections=[Injection("concept_drift", T0 + timedelta(days=drift_day), magnitude=1.0)],
    )
    testing.write_log(url, contract, log, labels)
    return contract, url


@pytest.fixture(scope="module", autouse=True)
def restore_mlflow_globals() -> Iterator[None]:
    import mlflow

    keys = ["MLFLOW_TRACKING_URI", *mlflow_setup.HTTP_ENV_DEFAULTS]
    saved = {key: os.environ.get(key) for key in keys}
    yield
    mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelContract, BacktestResult, Path]:
    tmp = tmp_path_factory.mktemp("bt_binary")
    contract, _ = _seed_log(tmp, "binary_classification", drift_day=25)
    config = BacktestConfig(
        contract=contract,
        start=T0 + timedelta(days=21),
        end=T0 + timedelta(days=33),
        interval=timedelta(days=1),
        progress=False,
    )
    return contract, backtest.run_backtest(config), tmp


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestConfig, BacktestResult]:
    """Smaller: 8 intervals, drift on day 23."""
    tmp = tmp_path_factory.mktemp("bt_regression")
    contract, _ = _seed_log(tmp, "regression", drift_day=23)
    config = BacktestConfig(
        contract=contract,
        start=T0 + timedelta(days=21),
        end=T0 + timedelta(days=29),
        interval=timedelta(days=1),
        progress=False,
    )
    return config, backtest.run_backtest(config)


def _rows(result: BacktestResult, strategy: str) -> list[IntervalRow]:
    return [r for r in result.rows if r.strategy == strategy]


def _day(row: IntervalRow) -> int:
    return (backtest.utc(row.interval_start) - T0).days


def _totals(result: BacktestResult) -> dict[str, Any]:
    return {t.strategy: t for t in result.totals}


def _check_strategies(result: BacktestResult, *, first_measured_drift_day: int, intervals: int) -> None:
    policy, never, always = (_rows(result, s) for s in ("policy", "never", "always"))
    assert len(policy) == len(never) == len(always) == intervals
    assert all(r.metric is not None for r in result.rows), [r for r in result.rows if r.metric is None]
    stable = [r for r in policy if _day(r) < first_measured_drift_day]
    assert stable and not any(r.decision or r.retrain for r in stable), [(r.interval_start, r.reasons) for r in stable]
    assert not any(r.degraded for r in stable)
    after = [r for r in policy if _day(r) >= first_measured_drift_day]
    assert after[0].decision and "metric_drop" in after[0].reasons, after[0]
    assert any(r.retrain == "promoted" for r in after), [(r.interval_start, r.retrain) for r in after]
    # never: the initial champion throughout, degraded once the drift is measurable
    assert {r.champion_version for r in never} == {"1"}
    assert not any(r.retrain for r in never)
    assert all(r.degraded for r in never if _day(r) >= first_measured_drift_day)
    # always: a retrain and a promotion (forced when the gate rejects) every interval
    assert all(r.retrain in ("promoted", "forced") for r in always), [r.retrain for r in always]
    assert [r.champion_version for r in always] == [str(v) for v in range(1, intervals + 1)]
    t = _totals(result)
    assert t["always"].retrains == t["always"].promotions == intervals
    assert t["never"].retrains == 0 and t["never"].degraded_intervals >= 3
    assert 1 <= t["policy"].retrains <= intervals // 2
    assert t["policy"].degraded_intervals < t["never"].degraded_intervals


def test_binary_policy_retrains_after_the_drift_only(binary: tuple[ModelContract, BacktestResult, Path]) -> None:
    _, result, _ = binary
    _check_strategies(result, first_measured_drift_day=26, intervals=12)
    t = _totals(result)
    # AUC: policy close to always with far fewer retrains; never far below both.
    assert t["policy"].mean_metric >= t["always"].mean_metric - 0.05, backtest.totals_text(result)
    assert t["never"].mean_metric < t["policy"].mean_metric - 0.1, backtest.totals_text(result)
    assert result.initial["policy"] == result.initial["never"] == result.initial["always"]


def test_regression_policy_retrains_after_the_drift_only(
    regression: tuple[BacktestConfig, BacktestResult],
) -> None:
    _, result = regression
    assert result.metric_name == "rmse" and not result.greater_is_better
    _check_strategies(result, first_measured_drift_day=24, intervals=8)
    t = _totals(result)
    # RMSE: lower is better.
    assert t["policy"].mean_metric <= t["always"].mean_metric * 1.25, backtest.totals_text(result)
    assert t["never"].mean_metric > t["policy"].mean_metric * 1.25, backtest.totals_text(result)


def test_same_inputs_same_table(regression: tuple[BacktestConfig, BacktestResult]) -> None:
    config, first = regression
    again = backtest.run_backtest(dataclasses.replace(config, strategies=("policy",)))
    assert again.table() == [r.table() for r in _rows(first, "policy")]
    assert again.initial["policy"] == first.initial["policy"]


def test_rows_carry_the_estimate_and_the_gate_evidence(regression: tuple[BacktestConfig, BacktestResult]) -> None:
    _, result = regression
    assert all(r.estimated_metric is not None for r in result.rows), [
        r for r in result.rows if r.estimated_metric is None
    ]
    assert all(r.estimated_lower <= r.estimated_metric <= r.estimated_upper for r in result.rows)
    for r in _rows(result, "never"):
        assert (r.gate, r.gate_failed, r.gain, r.gain_ci_low, r.gain_ci_high) == ("", "", None, None, None)
    for r in _rows(result, "always"):
        # A gate ran every interval: its outcome, failed checks, and the gain with its CI.
        assert r.gate in ("promote", "reject", "insufficient_evidence"), r
        assert (r.gate == "promote") == (r.retrain == "promoted") and (r.gate_failed == "") == (r.gate == "promote")
        assert r.gain is not None and r.gain_ci_low <= r.gain_ci_high, r
    retrained = [r for r in _rows(result, "policy") if r.retrain]
    assert retrained and all(r.gate and r.gain is not None for r in retrained)


def _decision_csv(rows: list[IntervalRow], folder: Path) -> str:
    """backtest.csv as a run that wrote these rows would have it."""
    backtest.Journal(folder).rewrite(rows)
    return (folder / "backtest.csv").read_text()


class Killed(BaseException):
    """A kill between an interval's retrain and its row (not an Exception: nothing may catch it)."""


def test_resume_after_a_stop_and_a_kill_writes_the_uninterrupted_rows(
    regression: tuple[BacktestConfig, BacktestResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, full = regression
    out = tmp_path / "out"
    run = dataclasses.replace(config, strategies=("policy",), out_dir=out)
    stopped = backtest.run_backtest(dataclasses.replace(run, stop_after=2))
    assert not stopped.finished and len(stopped.rows) == 2
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
    expected = _rows(full, "policy")
    assert done.finished and done.table() == [r.table() for r in expected]
    assert (out / "backtest.csv").read_text() == _decision_csv(expected, tmp_path / "expected")
    assert not (out / "stores").exists() and (out / "backtest.html").exists()


def test_jobs_2_writes_what_jobs_1_writes(
    regression: tuple[BacktestConfig, BacktestResult], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two strategies in two spawned processes, through the CLI; the first 3 days of the run."""
    config, full = regression
    path = tmp_path / f"{config.contract.name}.yaml"
    path.write_text(yaml.safe_dump(config.contract.model_dump(mode="json"), sort_keys=False))
    out = tmp_path / "out"
    args = ["--contract", str(path), "--start", "2024-01-22", "--end", "2024-01-25", "--interval", "1d"]
    args += ["--strategies", "never,always", "--jobs", "2", "--out", str(out), "--no-progress"]
    assert cli.main(["backtest", *args]) == 0, capsys.readouterr().err
    expected = [r for s in ("never", "always") for r in _rows(full, s) if _day(r) < 24]
    assert (out / "backtest.csv").read_text() == _decision_csv(expected, tmp_path / "expected")
    data = json.loads((out / "backtest.json").read_text())
    assert data["initial_champion"]["never"] == data["initial_champion"]["always"] == full.initial["never"]


def test_same_decisions_beside_a_cpu_hog(regression: tuple[BacktestConfig, BacktestResult], tmp_path: Path) -> None:
    """The issue's determinism promise. `always` retrains every interval, so every gate runs (with
    its servability check's latency measured in a fresh process) while every core is busy."""
    config, full = regression
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(min(os.cpu_count() or 2, 4))]
    try:
        busy = backtest.run_backtest(
            dataclasses.replace(
                config, strategies=("always",), end=config.start + timedelta(days=3), out_dir=tmp_path / "busy"
            )
        )
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    expected = _rows(full, "always")[:3]
    assert busy.table() == [r.table() for r in expected]
    assert (tmp_path / "busy" / "backtest.csv").read_text() == _decision_csv(expected, tmp_path / "expected")


def test_outputs_parse(binary: tuple[ModelContract, BacktestResult, Path]) -> None:
    _, result, tmp = binary
    paths = backtest.write_outputs(result, tmp / "out")
    with paths["csv"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 36 and rows[0]["strategy"] == "policy" and "reasons" in rows[0]
    assert {"estimated_metric", "gate", "gain", "gain_ci_low", "gain_ci_high"} <= set(rows[0])
    assert "seconds" not in rows[0] and len(paths["jsonl"].read_text().splitlines()) == 36
    with paths["totals"].open() as fh:
        assert [r["strategy"] for r in csv.DictReader(fh)] == ["policy", "never", "always"]
    data = json.loads(paths["json"].read_text())
    assert data["model"] == "bt_binary" and data["metric"] == "roc_auc" and len(data["rows"]) == 36
    page = paths["html"].read_text()
    assert (
        page.count("<polyline") == 3
        and "<script" not in page
        and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    assert "Backtest bt_binary" in page


def test_cli_set_override_changes_behaviour(binary: tuple[ModelContract, BacktestResult, Path]) -> None:
    """With the metric trigger switched off by --set, the policy no longer retrains after the drift.
    The run starts on day 25 (initial champion trained on pre-drift rows) and ends on day 28."""
    contract, result, tmp = binary
    path = tmp / "bt_binary.yaml"
    path.write_text(yaml.safe_dump(contract.model_dump(mode="json"), sort_keys=False))
    out = tmp / "cli_out"
    args = [
        "backtest",
        "--contract",
        str(path),
        "--start",
        "2024-01-26",
        "--end",
        "2024-01-29",
        "--interval",
        "1d",
        "--out",
        str(out),
        "--strategies",
        "policy",
        "--no-progress",
    ]
    assert cli.main([*args, "--set", "policy.metric_drop=null"]) == 0
    data = json.loads((out / "backtest.json").read_text())
    assert [r["decision"] for r in data["rows"]] == [False, False, False]
    assert data["totals"][0]["retrains"] == 0 and data["totals"][0]["degraded_intervals"] == 2
    # Without the override the first measurable drifted day retrains (as in the full run).
    assert next(r for r in _rows(result, "policy") if _day(r) == 26).decision


def test_cli_rejects_an_invalid_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    contract = str(REPO_ROOT / "include" / "models" / "flight_delay.yaml")
    code = cli.main(
        [
            "backtest",
            "--contract",
            contract,
            "--start",
            "2013-03-04",
            "--end",
            "2013-03-18",
            "--set",
            "policy.drift_share=7",
            "--out",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "policy.drift_share" in err and "less than or equal to 1" in err
    assert not (tmp_path / "backtest.json").exists()


def test_overrides_validate_by_field() -> None:
    from driftguard.contract import load_contract

    base = load_contract(REPO_ROOT / "include" / "models" / "flight_delay.yaml")
    changed = backtest.apply_overrides(
        base, ["policy.cooldown=14d", "policy.persistence.k=1", "features.3.range=[0,9000]"]
    )
    assert changed.policy.cooldown == timedelta(days=14) and changed.policy.persistence.k == 1
    assert changed.features[3].range == (0, 9000) and base.policy.cooldown == timedelta(days=28)
    with pytest.raises(ContractError, match=r"policy\.colldown: unknown field"):
        backtest.apply_overrides(base, ["policy.colldown=3d"])
    with pytest.raises(ContractError, match=r"training\.window"):
        backtest.apply_overrides(base, ["training.window=soon"])
    with pytest.raises(ContractError, match=r"dotted\.path=value"):
        backtest.apply_overrides(base, ["policy.cooldown"])


def test_degraded_follows_the_metric_direction() -> None:
    assert backtest.is_degraded(0.70, 0.80, drop=0.05, greater_is_better=True) is True
    assert backtest.is_degraded(0.77, 0.80, drop=0.05, greater_is_better=True) is False
    assert backtest.is_degraded(3.0, 2.0, drop=0.5, greater_is_better=False) is True
    assert backtest.is_degraded(2.2, 2.0, drop=0.5, greater_is_better=False) is False
    assert backtest.is_degraded(None, 2.0, drop=0.5, greater_is_better=False) is None


def test_config_errors_name_the_model() -> None:
    contract = _contract("binary_classification", "sqlite:////nonexistent/log.db")
    with pytest.raises(backtest.BacktestError, match="bt_binary: unknown strategies"):
        BacktestConfig(
            contract=contract,
            start=T0,
            end=T0 + timedelta(days=3),
            interval=timedelta(days=1),
            strategies=("sometimes",),
        )
    with pytest.raises(backtest.BacktestError, match="no whole interval"):
        BacktestConfig(contract=contract, start=T0, end=T0 + timedelta(days=3), interval=timedelta(days=7))
