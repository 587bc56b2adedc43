"""`make demo DEMO_ARGS=--scheduler`: the full-fidelity replay through a running Airflow.

A real api-server, scheduler and dag-processor (background process groups, logs in
DRIFTGUARD_HOME/logs/); each week is a run created through the public REST API for exactly its
data interval, and a week that decides to retrain triggers its retraining run
(`retrain__<interval start>_<interval end>`), which the scheduler runs before the next week. Every
task is its own process, as in production, so this takes about ten times as long as the default
in-process replay. A failed week is rerun by clearing its failed tasks.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from airflow_env import Services, airflow_bin, password_file
from demo_common import ACTIVE_STATES, Result, Step, check_interval, port_free, run, say

SERVICES = (
    ("api-server", ["api-server", "--workers", "1"]),
    ("scheduler", ["scheduler"]),
    ("dag-processor", ["dag-processor"]),
)


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


def busy(api: Api) -> list[str]:
    """What Airflow still has to do: queued and running runs of DAGs that are not paused (a run
    queued in a paused DAG waits for a person to unpause it). A retraining run a monitoring run
    triggers exists, queued, before that monitoring run ends, so nothing is missed in between."""
    paused = {d["dag_id"] for d in api.get("/api/v2/dags", paused=True, limit=1000)["dags"]}
    active = api.get("/api/v2/dags/~/dagRuns", state=list(ACTIVE_STATES))["dag_runs"]
    return [f"{r['dag_id']} {r['state']}" for r in active if r["dag_id"] not in paused]


def retrain_run(api: Api, step: Step) -> dict[str, Any] | None:
    """The retraining run this monitoring interval triggered, found by its id
    (`dag_defaults.retrain_run_id`), or None."""
    from driftguard.airflow import dag_defaults

    dag_id = dag_defaults.dag_id("retrain", step.dag_id.split("__", 1)[1])
    path = f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(dag_defaults.retrain_run_id(step.start, step.end))}"
    status, run_ = api.request("GET", path, ok=(200, 404))
    return run_ if status == 200 else None


def wait_idle(api: Api, services: Services, step: Step, timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    deadline, next_note = started + timeout, started + 60
    while time.monotonic() < deadline:
        services.check_alive()
        run_ = find_run(api, step)
        pending = busy(api)
        if run_ and run_["state"] not in ACTIVE_STATES and not pending:
            return run_
        if time.monotonic() >= next_note:
            say(f"  ... {time.monotonic() - started:.0f} s, still running: {', '.join(pending) or 'starting'}")
            next_note += 60
        time.sleep(1)
    raise SystemExit(
        f"[demo] {step.dag_id} [{step.start:%Y-%m-%d}, {step.end:%Y-%m-%d}) not done after {timeout:.0f} s; "
        f"still pending: {busy(api)}; logs in {services.log_dir}"
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
    """Runs that started while this interval's run was replayed (the retraining it triggered, ...),
    for the log."""
    for r in all_runs(api, start_date_gte=since):
        if r["dag_id"] != step.dag_id:
            say(f"  + {r['dag_id']} ({r.get('run_type')}): {r['state']}")


def replay(api: Api, services: Services, steps: list[Step], step_timeout: float) -> list[Result]:
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
            existing = wait_idle(api, services, step, step_timeout)
            rows = rows_of(api, existing)
            say(f"{label}: {existing['state']} ({rows} rows)")
            report_other_runs(api, step, since)
            if retrain := retrain_run(api, step):
                say(f"  retrain {retrain['dag_run_id']}: {retrain['state']}")
        check_interval(existing, step)
        results.append((step, existing["state"], rows))
    return results


def train_first_champions(api: Api, services: Services, step_timeout: float) -> None:
    """Each model's first champion, trained on its reference window (Jan-Feb for the demo) by
    triggering its retraining DAG by hand, as a team does once when it adds a model."""
    from driftguard.airflow import dag_defaults
    from driftguard.retraining import registry
    from driftguard.settings import get_settings

    settings = get_settings()
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
            if done["state"] not in ACTIVE_STATES and not busy(api):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"[demo] first champion of {contract.name} not trained after {step_timeout:.0f} s")
            time.sleep(2)
        mv = registry.champion_version(contract.name, tracking_uri=settings.mlflow_tracking_uri)
        say(f"first champion of {contract.name}: run {done['state']}, @champion = v{mv.version if mv else None}")


def replay_with_scheduler(
    env: dict[str, str], log_dir: Path, steps: list[Step], step_timeout: float
) -> tuple[list[Result], dict[str, dict[str, int]]]:
    """Start Airflow's components, replay `steps` through them, stop them; the results and the
    run counts per DAG and state."""
    run([airflow_bin(), "dags", "reserialize"], env, "parse DAGs (airflow dags reserialize)")
    port = int(env["AIRFLOW__API__PORT"])
    if not port_free(port):
        raise SystemExit(
            f"[demo] port {port} is in use (is `make up` running?). Stop it, or set DRIFTGUARD_AIRFLOW_PORT."
        )
    api = Api(f"http://localhost:{port}")
    with Services(env, log_dir) as services:
        for name, sub in SERVICES:
            services.start(name, [airflow_bin(), *sub])
        say(f"started {', '.join(n for n, _ in SERVICES)} (logs in {services.log_dir})")
        try:
            wait_for_api(api, services, env)
            say(f"Airflow is up; replaying {len(steps)} interval(s) through the scheduler")
            results = replay(api, services, steps, step_timeout)
            totals: dict[str, dict[str, int]] = {}
            for r in all_runs(api):
                counts = totals.setdefault(r["dag_id"], {})
                counts[r["state"]] = counts.get(r["state"], 0) + 1
        finally:
            say("stopping Airflow processes")
    return results, totals
