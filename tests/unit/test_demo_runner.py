"""scripts/airflow_env.py and scripts/demo.py: environment, process groups, data intervals."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import airflow_env  # noqa: E402
import demo  # noqa: E402


def test_airflow_env_points_everything_under_the_home(tmp_path: Path) -> None:
    env = airflow_env.airflow_env(tmp_path, port=8123, schedule_end="2013-12-31", base={"PATH": "/usr/bin"})
    assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'airflow' / 'airflow.db'}"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(airflow_env.REPO_ROOT / "dags")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://localhost:8123/execution/"
    assert env["DRIFTGUARD_FEATURE_LOG_URL"] == f"sqlite:///{tmp_path / 'feature_log.db'}"
    assert env["DRIFTGUARD_SCHEDULE_END"] == "2013-12-31"
    assert env["PATH"].startswith(str(airflow_env.VENV_BIN))
    kept = airflow_env.airflow_env(tmp_path, base={"DRIFTGUARD_FEATURE_LOG_URL": "postgresql://db/x", "PATH": ""})
    assert kept["DRIFTGUARD_FEATURE_LOG_URL"] == "postgresql://db/x", "an explicit feature log URL wins"
    assert "DRIFTGUARD_SCHEDULE_END" not in kept


def test_shell_command_prints_exports(tmp_path: Path) -> None:
    env = {**os.environ, "DRIFTGUARD_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, str(SCRIPTS / "airflow_env.py"), "shell"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert f"export AIRFLOW_HOME={tmp_path / 'airflow'}" in out.splitlines()
    assert "export DRIFTGUARD_SCHEDULE_END=2013-12-31" in out.splitlines()


def _pids_in_group(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat="], capture_output=True, text=True, check=True).stdout
    return [int(p) for p, g, stat in (line.split() for line in out.splitlines()) if int(g) == pgid and "Z" not in stat]


def test_services_stop_the_whole_process_group_without_orphans(tmp_path: Path) -> None:
    services = airflow_env.Services(dict(os.environ), tmp_path / "logs")
    # The shell forks a grandchild, as Airflow components fork task processes; SIGINT is ignored
    # by the grandchild so the escalation to SIGTERM/SIGKILL is exercised too.
    script = "trap '' INT; (trap '' INT TERM; sleep 300) & echo started; wait"
    service = services.start("fake", ["bash", "-c", script])
    deadline = time.monotonic() + 30
    while "started" not in service.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    pgid = service.process.pid
    assert len(_pids_in_group(pgid)) >= 2
    services.check_alive()

    services.stop(timeout=1, term_timeout=1)

    assert _pids_in_group(pgid) == []
    assert service.process.poll() is not None
    with pytest.raises(RuntimeError, match=r"airflow fake exited with code .*fake\.log"):
        services.check_alive()


def test_child_restores_default_sigint_even_when_parent_ignores_it(tmp_path: Path) -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        services = airflow_env.Services(dict(os.environ), tmp_path)
        service = services.start("sleeper", ["sleep", "300"])
    finally:
        signal.signal(signal.SIGINT, previous)
    os.killpg(service.process.pid, signal.SIGINT)
    assert service.process.wait(timeout=10) == -signal.SIGINT
    services.stop()


def test_intervals_are_the_data_intervals_of_a_cron_schedule() -> None:
    weekly = demo.intervals("@weekly", datetime(2013, 3, 4, tzinfo=UTC), datetime(2014, 1, 1, tzinfo=UTC))
    assert len(weekly) == 42
    assert weekly[0] == (datetime(2013, 3, 10, tzinfo=UTC), datetime(2013, 3, 17, tzinfo=UTC))
    assert weekly[-1] == (datetime(2013, 12, 22, tzinfo=UTC), datetime(2013, 12, 29, tzinfo=UTC))
    assert all(a[1] == b[0] for a, b in itertools.pairwise(weekly)), "contiguous"
    daily = demo.intervals("@daily", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC))
    assert daily == [
        (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)),
        (datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC)),
    ]
    assert demo.intervals("@once", datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)) == []


def test_plan_orders_intervals_of_all_models_and_limits_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    contract = (airflow_env.REPO_ROOT / "include" / "models" / "flight_delay.yaml").read_text()
    (tmp_path / "flight_delay.yaml").write_text(contract)
    daily = contract.replace("name: flight_delay", "name: daily_model").replace(
        'schedule: "@weekly"', "schedule: '@daily'"
    )
    (tmp_path / "daily_model.yaml").write_text(daily)
    monkeypatch.setenv("DRIFTGUARD_MODELS_DIR", str(tmp_path))

    steps = demo.plan(datetime(2013, 3, 18, tzinfo=UTC), weeks=None)

    labels = [(s.dag_id.removeprefix("driftguard_monitor__"), f"{s.start:%m-%d}") for s in steps]
    assert labels[:7] == [("daily_model", f"03-{d:02d}") for d in range(4, 11)]
    # Oldest interval first; within one start time, by DAG id. Weekly [03-10, 03-17) fits, [03-17, 03-24) not.
    assert labels[7] == ("flight_delay", "03-10")
    assert labels[8:] == [("daily_model", f"03-{d:02d}") for d in range(11, 18)]
    assert steps[7].end == datetime(2013, 3, 17, tzinfo=UTC)
    assert len(demo.plan(datetime(2013, 3, 18, tzinfo=UTC), weeks=2)) == 2


def test_the_default_replay_is_march_to_the_shadow_promotion_and_zero_is_the_year(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`make demo` replays [2013-03-10, 2013-10-06) (docs/demo.md says why); --weeks 0, all 42 weeks."""
    monkeypatch.setenv("DRIFTGUARD_MODELS_DIR", str(airflow_env.REPO_ROOT / "include" / "models"))
    end = datetime(2014, 1, 1, tzinfo=UTC)  # the day after DRIFTGUARD_SCHEDULE_END, as main() passes it
    default = demo.plan(end, demo.DEFAULT_WEEKS)
    assert (default[0].start, default[-1].end) == (datetime(2013, 3, 10, tzinfo=UTC), datetime(2013, 10, 6, tzinfo=UTC))
    year = demo.plan(end, 0)
    assert len(year) == 42 and year[-1].end == datetime(2013, 12, 29, tzinfo=UTC)


def test_timings_sum_stages_runs_and_tasks() -> None:
    timings = demo.Timings()
    with timings.stage("seed demo data"):
        pass
    for seconds in (3.0, 5.0, 4.0):
        timings.add_run("monitoring", seconds, cpu=seconds / 2)
    timings.add_run("retraining", 9.0)  # no CPU figure: none printed
    lines = timings.lines()
    assert re.fullmatch(r"seed demo data: \d+ s \(CPU \d+ s\)", lines[0]), lines[0]
    assert lines[1] == "monitoring: 3 run(s), 12 s (median 4.0 s, max 5.0 s), CPU 6 s (median 2.0 s)"
    assert lines[2] == "retraining: 1 run(s), 9 s (median 9.0 s, max 9.0 s)"
    timings.tasks = {"check_quality": 2.0, "detect_drift": 7.5}
    assert timings.lines()[3:] == [
        "slowest tasks (all runs): detect_drift 8 s, check_quality 2 s",
        "Airflow's run loop around the tasks: 12 s",
    ]
    line = "2026-12-03T15:44:33.442714Z [info     ] [DAG TEST] starting task_id=extract_window map_index=-1"
    assert demo._seconds_between(line, "2026-12-03T15:44:35.942714Z [info ] end") == 2.5


def test_cpu_seconds_counts_this_process_and_its_finished_children() -> None:
    before = demo.cpu_seconds()
    # The child burns 0.3 s of its own CPU, however fast the machine (a fixed loop took 0.09 s on one).
    burn = "import time\nwhile time.process_time() < 0.3: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    assert demo.cpu_seconds() - before >= 0.25  # the child's CPU, which time.process_time() leaves out


def test_the_demo_uses_only_public_airflow_entry_points() -> None:
    """No patched Airflow internals and no rows written into Airflow's tables by the demo itself."""
    source = "".join((SCRIPTS / name).read_text() for name in ("demo.py", "demo_common.py", "demo_scheduler.py"))
    for forbidden in ("get_or_create_dagrun", "AssetDagRunQueue", "session.add(", "session.delete(", "sqlalchemy"):
        assert forbidden not in source, forbidden
    assert "dag.test(**kwargs)" in source
