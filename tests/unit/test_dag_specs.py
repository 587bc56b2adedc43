"""The DAG spec cache: DAG files skip pydantic when no contract changed, and never serve a
stale spec or hide a broken contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from driftguard.airflow.dag_specs import DagSpec, load_specs
from driftguard.contract import load_contract

REPO_MODELS = Path(__file__).resolve().parents[2] / "include" / "models"


def _contract(name: str, **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "task": "binary_classification",
        "owners": ["a@example.com"],
        "schedule": "@daily",
        "start_date": "2024-01-01",
        "source": {"url": "sqlite:///x.db", "table": "events", "timestamp_column": "ts", "id_column": "id"},
        "features": [{"name": "x", "kind": "numeric"}],
        **extra,
    }


def _write(folder: Path, name: str, raw: dict[str, object]) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_spec_carries_what_the_dag_files_use() -> None:
    contract = load_contract(REPO_MODELS / "flight_delay.yaml")
    spec = DagSpec.from_contract(contract)
    assert (spec.name, spec.schedule, spec.start_date, spec.catchup) == (
        contract.name,
        contract.schedule,
        contract.start_date,
        contract.catchup,
    )
    assert spec.task == contract.task.value and spec.runbook_url == contract.alerts.runbook_url
    assert spec.require_approval is contract.promotion.require_approval
    assert DagSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_cache_is_used_then_invalidated_by_an_edit(tmp_path: Path) -> None:
    models, cache = tmp_path / "models", tmp_path / "cache" / "dag_specs.json"
    models.mkdir()
    path = _write(models, "mm", _contract("mm"))
    first = load_specs(models, cache)
    assert first.specs["mm"].schedule == "@daily" and not first.problems and cache.exists()

    # A warm cache answers without validating: a fresh interpreter never imports the contract models.
    code = (
        "import sys; from pathlib import Path; from driftguard.airflow.dag_specs import load_specs; "
        f"r = load_specs(Path({str(models)!r}), Path({str(cache)!r})); "
        "print(sorted(r.specs), 'driftguard.contract' in sys.modules, 'pydantic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["['mm']", "False", "False"]

    _write(models, "mm", _contract("mm", schedule="@weekly"))  # size changes; mtime may not
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert load_specs(models, cache).specs["mm"].schedule == "@weekly"


def test_broken_contract_is_reported_from_the_cache_too(tmp_path: Path) -> None:
    models, cache = tmp_path / "models", tmp_path / "cache.json"
    models.mkdir()
    _write(models, "good", _contract("good"))
    _write(models, "bad", _contract("bad", schedul="@weekly"))
    for _ in range(2):  # validated, then cached
        result = load_specs(models, cache)
        assert list(result.specs) == ["good"]
        assert (str(models / "bad.yaml"), "schedul", result.problems[0][2]) == tuple(result.problems[0])
        assert "unknown field" in result.problems[0][2]


def test_missing_folder_and_unwritable_cache(tmp_path: Path) -> None:
    gone = load_specs(tmp_path / "nowhere", tmp_path / "cache.json")
    assert not gone.specs and gone.problems[0][1] == "<folder>"
    models = tmp_path / "models"
    models.mkdir()
    _write(models, "mm", _contract("mm"))
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert list(load_specs(models, blocked / "cache.json").specs) == ["mm"]  # no cache, still correct


def test_step_modules_import_without_the_contract_models() -> None:
    """The DAG files hold the step functions themselves (monitor.FLOW, retrain.train ...), so
    importing the step modules must stay as cheap as the spec cache: no pydantic, no pandas."""
    code = (
        "import sys; from driftguard.monitoring import monitor; from driftguard.retraining import retrain; "
        "print([m for m in ('driftguard.contract', 'pydantic', 'pandas', 'sqlalchemy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_monitoring_flow_is_one_table() -> None:
    """UPSTREAM and STEPS derive from FLOW, whose order respects its own edges (the in-process run)."""
    from driftguard.monitoring import monitor

    assert list(monitor.STEPS) == [s.name for s in monitor.FLOW] and len(set(monitor.STEPS)) == len(monitor.FLOW)
    done: set[str] = set()
    for step in monitor.FLOW:
        assert set(monitor.UPSTREAM[step.name]) <= done, step.name
        assert monitor.STEPS[step.name] is step.run and step.run.__module__ == "driftguard.monitoring.monitor"
        done.add(step.name)


def test_step_results_keep_their_json_shape(tmp_path: Path) -> None:
    """A result goes through the work folder unchanged; keys only the pages read stay verbatim,
    and a field that was absent stays absent (readers test `"error" in drift`)."""
    from driftguard.step_results import DriftResult, EvaluationResult, dump, load
    from driftguard.workdir import WorkDir

    work = WorkDir(tmp_path / "run", "probe", LookupError)
    full = {"drift_share": 0.5, "drifted_features": ["a"], "skipped": {}, "model": "m", "features": [None]}
    work.write_result(load(DriftResult, full))
    back = work.read_result(DriftResult)
    assert dump(back) == full and back.extra == {"model": "m"} and not back.lost
    failed = DriftResult(error="boom")
    assert failed.to_json() == {"error": "boom"} and failed.xcom() == {"error": "boom"} and failed.lost
    raw = {"metric_name": "roc_auc", "metric_value": None, "estimated": {"value": 0.7, "lower": 0.6, "upper": 0.8}}
    evaluated = load(EvaluationResult, raw)
    assert evaluated.estimated is not None and evaluated.estimated.band == (0.6, 0.8)
    assert json.loads(json.dumps(dump(evaluated)))["estimated"] == raw["estimated"]
    assert "metric_se" not in dump(evaluated) and dump(evaluated)["metric_value"] is None
    assert sorted(p.name for p in work.root.iterdir()) == ["drift.json"], "no temporary file left behind"
    with pytest.raises(LookupError, match=r"evaluate\.json is missing"):
        work.read_result(EvaluationResult)
