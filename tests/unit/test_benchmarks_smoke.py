"""The benchmark harness at a tiny size, so `make bench` cannot rot unnoticed.

Runs `python -m benchmarks.run` for real (SQLite, 5k-row window, 5k-row reference, both paths,
one DAG-parse process) into a tmp folder and checks the JSON it writes and the table it prints.
No timing is asserted: the machine is shared. About two minutes of subprocesses, so the CI tier's
(`bench` marker): `make test` leaves it out, `.ci/run` runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks import data  # noqa: E402
from benchmarks.run import import_seconds, table, targets, truth  # noqa: E402

pytestmark = pytest.mark.bench

STEPS = [
    "extract", "load_reference", "score", "check_quality", "detect_drift", "evaluate_model", "shadow", "decide",
    "publish", "promote_shadow",
]  # fmt: skip


def _run(results: Path, *args: str) -> tuple[dict[str, Any], str]:
    out = results / "results.json"
    env = {**os.environ, "DRIFTGUARD_BENCH_RESULTS": str(results), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--sizes",
            "5k",
            "--db",
            "sqlite",
            "--ref-rows",
            "5k",
            *args,
            "--out",
            str(out),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"benchmark run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(out.read_text()), proc.stdout


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    return _run(tmp_path_factory.mktemp("bench"), "--dag-runs", "1", "--reads", "5k", "--read-runs", "1")


def test_both_paths_ran_in_their_own_process_with_stages_and_memory(bench: tuple[dict[str, Any], str]) -> None:
    result, _ = bench
    [case] = result["cases"]
    assert (case["db"], case["rows"]) == ("sqlite", 5000)
    dg, nv = case["driftguard"], case["naive"]
    assert "error" not in dg and "error" not in nv, (dg.get("error"), nv.get("error"))
    # Default mode "inprocess": libraries imported once (the import stage), then every step.
    assert dg["mode"] == "inprocess"
    assert list(dg["stages"]) == ["import", *STEPS]
    assert set(nv["stages"]) >= {"import", "read_window", "gx_full_frame", "evidently_preset", "html"}
    for path in (dg, nv):
        assert path["seconds"] >= sum(v for k, v in path["stages"].items()) - 0.01
        assert 50 < path["peak_rss_mb"] < 4000
    assert dg["rows_read"] == 5000 and dg["sample_rows"] == 5000
    assert case["speedup"] == pytest.approx(nv["seconds"] / dg["seconds"], abs=0.01)
    work = (nv["seconds"] - nv["stages"]["import"]) / (dg["seconds"] - dg["stages"]["import"])
    assert case["work_speedup"] == pytest.approx(work, abs=0.01)


def test_tasks_mode_runs_each_step_in_its_own_process(tmp_path: Path) -> None:
    result, stdout = _run(tmp_path, "--mode", "tasks", "--dag-runs", "0", "--skip-naive-above", "1", "--reads", "")
    [case] = result["cases"]
    dg = case["driftguard"]
    assert dg["mode"] == "tasks" and list(dg["stages"]) == STEPS
    assert set(dg["peak_rss_per_task_mb"]) == set(STEPS)
    assert dg["peak_rss_mb"] == max(dg["peak_rss_per_task_mb"].values())
    assert "work_speedup" not in case and "sqlite | 5k | driftguard |" in stdout
    # Independent steps share the two task slots, as in the DAG. How much that saves is a timing, so
    # it is printed (the benchmark's own stage line and this one), not asserted: the machine is shared.
    assert dg["task_slots"] == 2
    stage_line = next(line for line in stdout.splitlines() if line.startswith("  sqlite 5k driftguard: "))
    assert [part.split()[0] for part in stage_line.split(": ", 1)[1].split(", ")] == STEPS
    # Each task's own imports: the heavy libraries only where the step uses them.
    imports, heavy = dg["import_s_per_task"], dg["heavy_libraries_per_task"]
    assert list(imports) == list(heavy) == STEPS and all(v > 0 for v in imports.values())
    assert "great_expectations" in heavy["check_quality"] and "evidently" in heavy["detect_drift"]
    assert "mlflow" in heavy["load_reference"]
    assert heavy["decide"] == heavy["publish"] == heavy["extract"] == []
    assert any(line.startswith("  [info] import time per task (sqlite 5k") for line in stdout.splitlines())
    [verdict] = [line for line in stdout.splitlines() if "for a task that loads none of GX" in line]
    assert verdict.startswith(("  [met]", "  [NOT met]")) and "of 7 such tasks" in verdict, verdict
    print(
        f"benchmark: tasks mode, sqlite 5k, {dg['task_slots']} slots: run {dg['seconds']:.1f} s "
        f"for {sum(dg['stages'].values()):.1f} s of steps"
    )


def test_verdicts_cover_every_feature_and_find_the_injected_drift(bench: tuple[dict[str, Any], str]) -> None:
    result, _ = bench
    [case] = result["cases"]
    dg, nv = case["driftguard"], case["naive"]
    assert set(dg["verdicts"]) == set(nv["verdicts"]) == set(data.FEATURES)
    # 5k rows per side is below the sample size: both paths test the same rows with the same methods.
    assert case["agreement_naive"] == 1.0, case["disagreements"]
    drifted = {f for f, v in dg["verdicts"].items() if v}
    assert drifted == set(data.DRIFTED), f"expected the injected drift {sorted(data.DRIFTED)}, got {sorted(drifted)}"
    assert case["agreement_truth"] == 1.0
    assert truth()["f_00"] is True and truth()["f_19"] is False


def test_reports_are_written_and_the_driftguard_report_is_small(bench: tuple[dict[str, Any], str]) -> None:
    result, _ = bench
    [case] = result["cases"]
    assert set(case["driftguard"]["html_bytes"]) == {"drift.html", "validation.html"}
    assert case["driftguard"]["html_bytes"]["drift.html"] < 2**20
    assert case["naive"]["html_bytes"]["drift.html"] > case["driftguard"]["html_bytes"]["drift.html"]


def test_dag_parse_is_measured_per_file(bench: tuple[dict[str, Any], str]) -> None:
    result, _ = bench
    dags = result["dags"]
    files = {p.name for p in (REPO / "dags").glob("*.py")}
    assert set(dags["parse_s_per_file"]) == files
    assert set(dags["forked_parse_s_per_file"]) == files | {"trivial_taskflow.py"}  # and Airflow's own floor
    assert all(v > 0 for v in dags["forked_parse_s_per_file"].values())
    assert dags["import_errors"] == 0
    assert all(v is not None and v > 0 for v in dags["import_s_per_file"].values())


def test_read_paths_are_compared_on_the_same_frame(bench: tuple[dict[str, Any], str]) -> None:
    """Each SQLite read path in its own process; all read the same frame (its hash), printed as a table."""
    result, stdout = bench
    [reads] = result["reads"]
    assert (reads["db"], reads["rows"], reads["runs"]) == ("sqlite", 5000, 1)
    assert list(reads["paths"]) == ["stream", "cursor", "arrow"]
    assert all("error" not in p for p in reads["paths"].values()), reads["paths"]
    assert reads["frames_equal"] and all(p["rows_read"] == 5000 for p in reads["paths"].values())
    assert all(p["peak_rss_mb"] >= p["rss_before_mb"] > 50 for p in reads["paths"].values())
    assert "sqlite | 5k | arrow | " in stdout and "| 1.00x | yes" in stdout


def test_table_and_target_lines_name_cases_and_figures(bench: tuple[dict[str, Any], str]) -> None:
    result, stdout = bench
    assert table(result) in stdout
    assert "sqlite | 5k | driftguard |" in stdout and "sqlite | 5k | naive |" in stdout
    lines = targets(result)
    assert any(line.startswith("  [met] DAG parse") or line.startswith("  [NOT met] DAG parse") for line in lines)
    # 1M and 10M targets are not claimed from a 5k run.
    assert not any("1M" in line or "10M" in line for line in lines)


def test_import_seconds_sums_the_outermost_imports_of_importtime_lines() -> None:
    log = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       120 |        120 | _io",
            "import time:       300 |        300 |   numpy.core",
            "import time:       500 |    800_000 | numpy",  # not a number: ignored
            "import time:       500 |     800000 | numpy",
            "some task output | with | pipes",
            "import time:        80 |         80 |     pandas._libs",
            "import time:       900 |    1200000 | pandas",
        ]
    )
    assert import_seconds(log) == pytest.approx((120 + 800_000 + 1_200_000) / 1e6, abs=1e-3)
    assert import_seconds("no imports here") == 0.0


def test_sizes_labels_and_cached_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert [data.parse_size(s) for s in ("100k", "1m", "10m", "5000")] == [100_000, 1_000_000, 10_000_000, 5000]
    assert [data.label(n) for n in (100_000, 1_000_000, 10_000_000)] == ["100k", "1m", "10m"]
    monkeypatch.setattr(data, "SQLITE_DIR", tmp_path)
    spec = data.Spec(2000, ref_rows=1000)
    assert data.ensure("sqlite", spec) > 0
    assert data.ensure("sqlite", spec) == 0.0, "an identical table must be reused, not regenerated"
    import sqlite3

    with sqlite3.connect(data.sqlite_path(spec)) as conn:
        assert conn.execute(f"SELECT count(*) FROM {spec.table}").fetchone()[0] == 3000
        ts = conn.execute(f"SELECT min(event_ts), max(event_ts) FROM {spec.table}").fetchone()
    assert ts[0] == "2024-01-01 00:00:00.000000" and ts[1].startswith("2024-02-07 ")
