"""Backtest on synthetic logs with a concept drift at a known date: the binary task, the CLI and
the configuration (tests/backtest_support.py has the logs and contracts).

Real SQLite feature logs, real MLflow stores, real GX and Evidently runs through the same
run_monitoring / run_retraining the DAGs use.

Timeline: initial champion as of day 24; concept drift from day 25; labels mature a day late, so
the first interval that can measure the drift is the one starting on day 26; a retrain as of day
29 trains on post-drift rows only, and the run goes on to day 32 so that the policy's recovery
shows in its totals. The regression task and the runs that must reproduce its decision table
(resumed, killed, parallel, beside a CPU hog) are in tests/adversarial/test_backtest_determinism.py (CI tier).
"""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

import backtest_support
import pytest
import yaml
from backtest_support import (
    check_strategies,
    day,
    restore_mlflow_globals,  # noqa: F401  (autouse, module-scoped: applies here)
    rows,
    seed_log,
    totals,
)
from driftguard import backtest, cli
from driftguard.backtest import BacktestConfig, BacktestResult
from driftguard.contract import ContractError, ModelContract
from driftguard.settings import REPO_ROOT
from driftguard.testing import DEFAULT_START as T0

pytestmark = pytest.mark.slow

INTERVALS = 8  # days 24..31: two before the drift is measurable, six after


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelContract, BacktestResult, Path]:
    tmp = tmp_path_factory.mktemp("bt_binary")
    contract, _ = seed_log(tmp, "binary_classification", drift_day=25)
    config = BacktestConfig(
        contract=contract,
        start=T0 + timedelta(days=24),
        end=T0 + timedelta(days=24 + INTERVALS),
        interval=timedelta(days=1),
        progress=False,
    )
    return contract, backtest.run_backtest(config), tmp


def test_binary_policy_retrains_after_the_drift_only(binary: tuple[ModelContract, BacktestResult, Path]) -> None:
    _, result, _ = binary
    check_strategies(result, first_measured_drift_day=26, intervals=INTERVALS)
    t = totals(result)
    # AUC: policy close to always with far fewer retrains; never far below both.
    assert t["policy"].mean_metric >= t["always"].mean_metric - 0.05, backtest.totals_text(result)
    assert t["never"].mean_metric < t["policy"].mean_metric - 0.1, backtest.totals_text(result)
    assert result.initial["policy"] == result.initial["never"] == result.initial["always"]


def test_outputs_parse(binary: tuple[ModelContract, BacktestResult, Path]) -> None:
    _, result, tmp = binary
    paths = backtest.write_outputs(result, tmp / "out")
    with paths["csv"].open() as fh:
        written = list(csv.DictReader(fh))
    assert len(written) == 3 * INTERVALS and written[0]["strategy"] == "policy" and "reasons" in written[0]
    assert {"estimated_metric", "gate", "gain", "gain_ci_low", "gain_ci_high"} <= set(written[0])
    assert "seconds" not in written[0] and len(paths["jsonl"].read_text().splitlines()) == 3 * INTERVALS
    with paths["totals"].open() as fh:
        assert [r["strategy"] for r in csv.DictReader(fh)] == ["policy", "never", "always"]
    data = json.loads(paths["json"].read_text())
    assert data["model"] == "bt_binary" and data["metric"] == "roc_auc" and len(data["rows"]) == 3 * INTERVALS
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
    assert next(r for r in rows(result, "policy") if day(r) == 26).decision


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
    contract = backtest_support.contract("binary_classification", "sqlite:////nonexistent/log.db")
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
