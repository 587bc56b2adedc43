"""The `driftguard` command line, run in-process through main(argv)."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from driftguard import cli
from driftguard.cli import SCHEMA_PATH, main, schema_text
from driftguard.settings import REPO_ROOT

DEMO = REPO_ROOT / "include" / "models" / "flight_delay.yaml"
VALID = """\
name: {name}
task: regression
owners: [a@example.com]
start_date: 2024-01-01
source: {{url: "{url}", table: events, timestamp_column: ts, id_column: id}}
features: [{{name: f1, kind: numeric}}]
"""


def test_check_all_contracts_in_models_dir(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"ok {DEMO}", "1 contract file(s) checked, 0 problem(s)"]


def test_check_reports_every_problem_per_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good_model.yaml"
    good.write_text(VALID.format(name="good_model", url="sqlite:///x.db"))
    bad = tmp_path / "bad_model.yaml"
    bad.write_text(VALID.format(name="bad_model", url="sqlite:///x.db").replace("task: regression", "task: ranking")
                   + "schedul: daily\n")  # fmt: skip
    assert main(["check", str(good), str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"{bad}: task: Input should be 'binary_classification' or 'regression'" in out
    see = "see the contract reference in docs/contract-reference.md"
    assert f"{bad}: schedul: unknown field (check the spelling; {see})" in out
    assert f"ok {good}" in out and f"ok {bad}" not in out
    assert out[-1] == "2 contract file(s) checked, 2 problem(s)"


def test_check_warns_about_absolute_margins_on_scale_dependent_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    absolute = tmp_path / "abs_model.yaml"
    absolute.write_text(VALID.format(name="abs_model", url="sqlite:///x.db") + "promotion: {margin: 0.005}\n")
    relative = tmp_path / "rel_model.yaml"
    relative.write_text(VALID.format(name="rel_model", url="sqlite:///x.db") + "promotion: {margin: 2%}\n")
    assert main(["check", str(absolute), str(relative)]) == 0  # a warning, not a problem
    out = capsys.readouterr().out.splitlines()
    assert (
        f"{absolute}: warning: promotion.margin: 0.005 abs is absolute on rmse, whose scale is the target's; "
        "a relative change ('2%') means the same on any scale (keep 0.005 abs only if 0.005 rmse units is meant)" in out
    )
    assert not [line for line in out if line.startswith(f"{relative}: warning")]
    assert out[-1] == "2 contract file(s) checked, 0 problem(s), 1 warning(s)"


def test_check_models_dir_from_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DRIFTGUARD_MODELS_DIR", str(tmp_path))
    assert main(["check"]) == 1
    assert f"no contract files in {tmp_path}" in capsys.readouterr().err
    (tmp_path / "m_one.yaml").write_text(VALID.format(name="m_one", url="sqlite:///x.db"))
    (tmp_path / "schema.json").write_text("{}")  # not a contract
    assert main(["check"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"ok {tmp_path / 'm_one.yaml'}"


def test_check_connect(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from driftguard import demo_data

    demo_data.seed_demo(sqlite_url, months=[1])
    capsys.readouterr()
    assert main(["check", str(DEMO), "--connect", "--url", sqlite_url]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"ok {DEMO}"
    monkeypatch.setenv("DRIFTGUARD_FEATURE_LOG_URL", sqlite_url)  # the contract's own ${ENV} URL
    assert main(["check", str(DEMO), "--connect"]) == 0
    capsys.readouterr()
    missing = tmp_path / "missing_cols.yaml"
    missing.write_text(
        VALID.format(name="missing_cols", url=sqlite_url).replace("table: events", "table: flight_labels")
    )
    assert main(["check", str(missing), "--connect"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"{missing}: source.table: id column 'id' not found in flight_labels" in out
    assert f"{missing}: source.table: timestamp column 'ts' not found in flight_labels" in out
    assert f"{missing}: source.table: numeric feature 'f1' not found in flight_labels" in out
    assert out[-1] == "1 contract file(s) checked, 3 problem(s)"


def test_schema_is_committed_and_up_to_date() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "include/models/schema.json is stale: run `driftguard schema --out include/models/schema.json`"
    )


def test_committed_schema_validates_contracts() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    raw = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    raw["start_date"] = raw["start_date"].isoformat()
    raw["reference"] = {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in raw["reference"].items()}
    jsonschema.validate(raw, schema)
    raw["policy"]["cooldown"] = "four weeks"
    with pytest.raises(jsonschema.ValidationError, match="does not match"):
        jsonschema.validate(raw, schema)


def test_schema_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "Driftguard model contract"
    out = tmp_path / "sub" / "schema.json"
    assert main(["schema", "--out", str(out)]) == 0
    assert out.read_text() == schema_text()


def test_demo_seed_command(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "seed", "--url", sqlite_url, "--months", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "seeded: 24951 flights, 23611 labels"
    assert main(["demo", "seed", "--url", sqlite_url, "--months", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "already seeded: 24951 flights, 23611 labels"
    assert main(["demo", "seed", "--url", sqlite_url, "--months", "2", "--label-delay", "2d"]) == 1
    assert "rerun with replace=True (CLI: --replace)" in capsys.readouterr().err
    assert main(["demo", "seed", "--url", sqlite_url, "--months", "2", "--label-delay", "2d", "--replace"]) == 0
    with pytest.raises(SystemExit):
        main(["demo", "seed", "--months", "13"])
    assert "months must be within 1..12" in capsys.readouterr().err


def test_adding_a_subcommand_is_small(capsys: pytest.CaptureFixture[str]) -> None:
    def setup(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", default="world")

    @cli.command("hello", "Say hello.", setup)
    def hello(args: argparse.Namespace) -> int:
        print(f"hello {args.name}")
        return 3

    try:
        assert main(["hello", "--name", "dg"]) == 3
        assert capsys.readouterr().out == "hello dg\n"
    finally:
        cli.COMMANDS.pop("hello")


def test_console_script_is_installed() -> None:
    exe = Path(cli.__file__).resolve().parents[2] / ".venv" / "bin" / "driftguard"
    done = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "check" in done.stdout and "schema" in done.stdout
