"""Model contracts: the demo contract, every common mistake with its message, defaults, durations."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from driftguard.cli import main
from driftguard.contract import (
    ContractError,
    FeatureDriftSpec,
    ModelContract,
    format_duration,
    json_schema,
    load_contract,
    load_contracts,
    parse_contract,
    parse_duration,
)
from driftguard.settings import REPO_ROOT

DEMO = REPO_ROOT / "include" / "models" / "flight_delay.yaml"

BASE: dict[str, Any] = {
    "name": "toy",
    "task": "binary_classification",
    "owners": ["ml@example.com"],
    "start_date": "2024-01-01",
    "source": {"url": "sqlite:///x.db", "table": "events", "timestamp_column": "ts", "id_column": "id"},
    "features": [{"name": "f1", "kind": "numeric"}, {"name": "f2", "kind": "categorical"}],
}


def write(tmp_path: Path, raw: dict[str, Any] | str, name: str = "toy") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ContractError) as exc:
        load_contract(path)
    return [str(p) for p in exc.value.problems]


def mutated(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        target = raw
        *parents, leaf = dotted.split("__")
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
        if value is ...:
            del target[leaf]
        else:
            target[leaf] = value
    return raw


# --------------------------------------------------------------------------- the demo contract


def test_demo_contract_loads() -> None:
    contract = load_contract(DEMO)
    assert contract.name == "flight_delay" and contract.task.value == "binary_classification"
    assert contract.source.table == "flight_scoring_log" and contract.source.label_key == "flight_id"
    assert contract.source.labels is not None and contract.source.labels.delay == timedelta(days=1)
    assert len(contract.features) == 14 and contract.segment_features == ["carrier", "origin"]
    assert not {"dep_time", "dep_delay", "arr_time", "air_time"} & set(contract.feature_names)
    assert contract.policy.cooldown == timedelta(days=28) and contract.schedule == "@weekly"
    assert contract.reference.start == datetime(2013, 1, 1, tzinfo=UTC)
    assert contract.primary_metric == "roc_auc" and contract.greater_is_better


# --------------------------------------------------------------------------- mistakes


def test_unknown_field(tmp_path: Path) -> None:
    path = write(tmp_path, mutated(policy__cooldwn="1d"))
    assert problems_of(path) == [
        f"{path}: policy.cooldwn: unknown field "
        "(check the spelling; see the contract reference in docs/contract-reference.md)"
    ]


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, mutated(features__0__nullable="maybe", decision_threshold="high"))
    found = problems_of(path)
    assert f"{path}: decision_threshold: Input should be a valid number, unable to parse string as a number" in found
    assert f"{path}: features[0](f1).nullable: Input should be a valid boolean, unable to interpret input" in found


def test_missing_source_table(tmp_path: Path) -> None:
    path = write(tmp_path, mutated(source__table=...))
    assert problems_of(path) == [
        f"{path}: source: give exactly one of table or query (the feature-log table is missing)"
    ]


def test_table_absent_in_database(tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:  # the database exists and holds another table
        conn.execute(sa.text("create table other_table (id integer)"))
    engine.dispose()
    path = write(tmp_path, mutated(source__url=db_url, source__table="no_such_table"))
    assert main(["check", str(path), "--connect"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}: source.table: model toy, table no_such_table: feature-log table not found in")
    assert out[-1] == "1 contract file(s) checked, 1 problem(s)"


def test_bad_cron(tmp_path: Path) -> None:
    path = write(tmp_path, mutated(schedule="61 * * * *"))
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: schedule: '61 * * * *' is not a cron expression or one of [")
    assert parse_contract(yaml.safe_dump(mutated(schedule="0 6 * * 1"))).schedule == "0 6 * * 1"


def test_duplicate_feature(tmp_path: Path) -> None:
    raw = mutated()
    raw["features"].append({"name": "f1", "kind": "categorical"})
    path = write(tmp_path, raw)
    assert problems_of(path) == [f"{path}: features: duplicate feature names: ['f1']"]


def test_unknown_kind(tmp_path: Path) -> None:
    path = write(tmp_path, mutated(features__1__kind="text"))
    assert problems_of(path) == [f"{path}: features[1](f2).kind: Input should be 'numeric' or 'categorical'"]


def test_password_in_url(tmp_path: Path) -> None:
    path = write(tmp_path, mutated(source__url="postgresql://reader:hunter2@db/features"))
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: source.url: secret in plain text: put the password in an environment variable")
    ok = parse_contract(yaml.safe_dump(mutated(source__url="postgresql://reader:${PG_PASSWORD}@db/features")))
    assert ok.source.url == "postgresql://reader:${PG_PASSWORD}@db/features"


def test_slack_webhook_literal(tmp_path: Path) -> None:
    route = {"kind": "slack", "url": "https://hooks.slack.com/services/T000/B000/XXXX"}
    path = write(tmp_path, mutated(alerts={"routes": [route]}))
    assert problems_of(path) == [
        f"{path}: alerts.routes[0]: secret in plain text: a Slack webhook URL is a secret; write it as ${{VAR}}"
    ]


def test_unreadable_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: toy\ntask: binary_classification\nowners: [unclosed\nfeatures: x\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: <yaml>: unreadable YAML at line 4, column 9:")


def test_name_must_match_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, mutated(name="other_model"), name="toy")
    assert problems_of(path) == [f"{path}: name: must match the file name ('toy')"]


def test_one_broken_file_does_not_hide_others(tmp_path: Path) -> None:
    good = write(tmp_path, BASE)
    bad = write(tmp_path, mutated(name="bad", task="ranking"), name="bad")
    result = load_contracts([good, bad])
    assert list(result.contracts) == ["toy"]
    assert [str(p) for p in result.errors[str(bad)].problems] == [
        f"{bad}: task: Input should be 'binary_classification' or 'regression'"
    ]


# --------------------------------------------------------------------------- defaults and derived values


def test_documented_defaults() -> None:
    contract = parse_contract(yaml.safe_dump(BASE))
    assert contract.policy.cooldown == timedelta(days=7)
    assert contract.policy.max_model_age == timedelta(days=90)
    assert (contract.policy.persistence.k, contract.policy.persistence.n) == (2, 3)
    assert str(contract.policy.min_new_labels) == "10%"  # of the champion's training rows
    assert contract.schedule == "@daily" and contract.catchup is False
    assert contract.source.labels is None and contract.source.label_key == "id"
    assert contract.quality.severity["schema"].value == "critical"
    assert contract.quality.severity["ranges"].value == "warning"
    assert contract.drift.method == "auto" and contract.drift.sample_size == 100_000
    assert contract.training.window is None and contract.training_window == timedelta(days=60)
    assert contract.promotion.mode == "non_inferiority" and contract.primary_metric == "roc_auc"
    assert [r.kind for r in contract.alerts.routes] == ["log"]
    regression = parse_contract(yaml.safe_dump(mutated(task="regression")))
    assert regression.primary_metric == "rmse" and not regression.greater_is_better
    partial = parse_contract(yaml.safe_dump(mutated(quality={"severity": {"ranges": "critical"}})))
    assert (
        partial.quality.severity["ranges"].value == "critical" and partial.quality.severity["nulls"].value == "warning"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("1w", timedelta(weeks=1)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        (" 1.5d ", timedelta(days=1, hours=12)),
        (3600, timedelta(hours=1)),
    ],
)
def test_durations_parse(text: Any, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("bad", ["ten days", "7 days", "P7D", "", True])
def test_bad_durations(bad: Any) -> None:
    with pytest.raises(ValueError, match="expected a duration like '2d', '12h' or '1w'"):
        parse_duration(bad)


def test_durations_round_trip_through_the_contract(tmp_path: Path) -> None:
    contract = parse_contract(yaml.safe_dump(mutated(policy={"cooldown": "36h"}, training={"window": "all"})))
    assert contract.policy.cooldown == timedelta(hours=36) and contract.training.window == "all"
    dumped = contract.model_dump(mode="json")
    assert dumped["policy"]["cooldown"] == "36h" and dumped["quality"]["freshness"] == "1d"
    assert ModelContract.model_validate(dumped) == contract
    path = write(tmp_path, mutated(policy={"cooldown": "a week"}))
    assert problems_of(path) == [f"{path}: policy.cooldown: expected a duration like '2d', '12h' or '1w', got 'a week'"]


def test_drift_spec_resolution() -> None:
    raw = mutated(
        drift={
            "method": "psi",
            "threshold": 0.2,
            "features": {"f1": {"method": "wasserstein", "threshold": 0.1}, "f2": {"method": "auto"}},
        }
    )
    contract = parse_contract(yaml.safe_dump(raw))
    assert contract.drift_spec("f1") == FeatureDriftSpec(method="wasserstein", threshold=0.1)  # own method + threshold
    assert contract.drift_spec("f2") == FeatureDriftSpec(method="psi", threshold=0.2)  # auto -> section default
    plain = parse_contract(yaml.safe_dump(mutated(drift={"features": {"f1": {"method": "ks"}}})))
    assert plain.drift_spec("f1") == FeatureDriftSpec(method="ks", threshold=None)  # a threshold belongs to its method
    assert plain.drift_spec("f2") == FeatureDriftSpec(method="auto", threshold=None)
    with pytest.raises(ContractError, match=r"drift.features names unknown features \['nope'\]"):
        parse_contract(yaml.safe_dump(mutated(drift={"features": {"nope": {"method": "ks"}}})))


def test_json_schema_keys() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "Driftguard model contract"
    assert set(schema["required"]) == {"name", "task", "owners", "start_date", "source", "features"}
    assert {"source", "features", "quality", "drift", "policy", "training", "promotion", "alerts"} <= set(
        schema["properties"]
    )
    assert schema["additionalProperties"] is False
    cooldown = schema["$defs"]["PolicyConfig"]["properties"]["cooldown"]
    # Durations are documented as contracts write them, never ISO 8601 ('P7D').
    assert cooldown["default"] == "1w" and "format" not in cooldown
    assert parse_duration(cooldown["default"]) == timedelta(days=7)


def test_reference_dates_are_utc() -> None:
    contract = parse_contract(yaml.safe_dump(mutated(reference={"start": "2024-01-01", "end": "2024-02-01"})))
    assert contract.reference.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert contract.start_date == date(2024, 1, 1)
