"""What both replay modes of `make demo` share: the plan of data intervals, terminal output,
setup commands, and the summary's candidate lines."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

ACTIVE_STATES = ("queued", "running")


LOG_NAME = "demo.log"  # in-process mode: Airflow's and the tasks' output, in DRIFTGUARD_HOME/logs/
_console: TextIO | None = None  # the terminal while output_to() sends everything else to the log


def say(message: str) -> None:
    line = f"[demo] {message}"
    if _console is not None:
        _console.write(line + "\n")
        _console.flush()
    print(line, flush=True)


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (Airflow's and every task's log lines, subprocesses
    the tasks start) to `path`, at the file-descriptor level; `say()` still reaches the terminal."""
    global _console
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    _console = os.fdopen(os.dup(saved[0]), "w", buffering=1)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        _console.close()
        _console = None


def run(argv: list[str], env: dict[str, str], what: str) -> str:
    """Run a setup command; on failure show its output and stop the demo."""
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"[demo] {what} failed (exit {proc.returncode}): {' '.join(argv)}")
    say(f"{what}: done in {time.monotonic() - started:.0f} s")
    return proc.stdout


# --------------------------------------------------------------------------- intervals


@dataclass(frozen=True)
class Step:
    dag_id: str
    start: datetime
    end: datetime


def intervals(schedule: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Consecutive cron ticks [t0, t1) with start <= t0 and t1 <= end: the DAG's data intervals."""
    from croniter import croniter

    if schedule == "@once":
        return []
    it = croniter(schedule, start - timedelta(microseconds=1))
    ticks: list[datetime] = []
    while True:
        tick = it.get_next(datetime)
        if tick > end:
            break
        ticks.append(tick)
    return list(itertools.pairwise(ticks))


def plan(end: datetime, weeks: int | None) -> list[Step]:
    from driftguard.airflow import dag_defaults

    result = dag_defaults.model_contracts()
    for path, error in result.errors.items():
        say(f"WARNING broken contract {path} (no DAGs for it):\n{error}")
    steps = [
        Step(dag_defaults.dag_id("monitor", c.name), lo, hi)
        for c in result.contracts.values()
        for lo, hi in intervals(c.schedule, dag_defaults.start_date(c), end)
    ]
    steps.sort(key=lambda s: (s.start, s.dag_id))
    return steps[:weeks] if weeks else steps


def candidates(model: str) -> list[str]:
    """One line per retrain: interval, outcome, candidate and the gate's numbers."""
    from driftguard.settings import get_settings
    from driftguard.store import HistoryStore

    lines = []
    for r in HistoryStore(get_settings().history_url).retrains(model):
        verdict = r.get("verdict") or {}
        checks = verdict.get("checks") or []
        sig = next((c for c in checks if c.get("name") == "significance"), None)
        failed = [c["name"] for c in checks if not c.get("passed")]
        detail = (sig or {}).get("detail") or ("; ".join(failed) if failed else "first champion floors passed")
        lines.append(
            f"  {r['interval_end']:%Y-%m-%d}  v{r.get('candidate_version') or '?':<3} {r['status']:<10} {detail}"
            + (f"  [failed: {', '.join(failed)}]" if failed else "")
        )
    return lines


def check_interval(run_: dict[str, Any], step: Step) -> None:
    got = (run_.get("data_interval_start"), run_.get("data_interval_end"))
    want = (step.start, step.end)
    if None not in got and tuple(datetime.fromisoformat(g) for g in got) != want:  # type: ignore[arg-type]
        say(f"WARNING {run_['dag_run_id']} covers {got}, the demo expected {want}")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0


Result = tuple[Step, str, int | None]  # a replayed interval, its run state and its rows
