"""The production topology as local processes: throwaway PostgreSQL databases, Airflow's four
components (LocalExecutor, PostgreSQL metadata DB) and an MLflow tracking server (PostgreSQL
backend, served artifacts), with the environment variable names of docker-compose.yaml.

Reuses scripts/airflow_env.py (environment, process groups stopped without orphans) and
scripts/demo_scheduler.py (REST client, login, waiting until Airflow is idle). Everything started here
is stopped in the context managers' exits, also when the test fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import sqlalchemy as sa

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import airflow_env  # noqa: E402
import demo_scheduler  # noqa: E402  (the REST client `make demo --scheduler` uses)

Services = airflow_env.Services
log = logging.getLogger(__name__)

AIRFLOW_COMPONENTS = (
    ("api-server", ["api-server", "--workers", "1"]),
    ("scheduler", ["scheduler"]),
    ("dag-processor", ["dag-processor"]),
    ("triggerer", ["triggerer"]),
)
STORES = ("airflow", "mlflow", "driftguard")


class TopologyError(RuntimeError):
    """A component did not come up or did not finish in time; the message has its log tails."""


def free_port() -> int:
    """A port nobody listens on right now (the kernel's choice), so parallel runs never collide."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _url(server_url: str, database: str) -> str:
    return sa.make_url(server_url).set(database=database, query={}).render_as_string(hide_password=False)


@contextlib.contextmanager
def pg_databases(server_url: str, prefix: str = "dgtopo", stores: tuple[str, ...] = STORES) -> Iterator[dict[str, str]]:
    """One fresh database per store (airflow, mlflow, driftguard) with a unique name; dropped on
    exit, after terminating the connections still open (a killed task may leave one behind)."""
    tag = f"{prefix}_{uuid.uuid4().hex[:8]}"
    names = {store: f"{tag}_{store}" for store in stores}
    admin = sa.create_engine(_url(server_url, "postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(sa.text(f'create database "{name}"'))
        yield {store: _url(server_url, name) for store, name in names.items()}
    finally:

        def drop(name: str) -> None:
            with admin.connect() as conn:
                conn.execute(
                    sa.text("select pg_terminate_backend(pid) from pg_stat_activity where datname = :d"), {"d": name}
                )
                conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))

        # In parallel: each drop waits for the server's cleanup (seconds each on a busy machine).
        with ThreadPoolExecutor(len(names) or 1) as pool:
            list(pool.map(drop, names.values()))
        admin.dispose()


def existing_databases(server_url: str, pattern: str) -> list[str]:
    engine = sa.create_engine(_url(server_url, "postgres"))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select datname from pg_database where datname like :p"), {"p": pattern})
            return sorted(r[0] for r in rows)
    finally:
        engine.dispose()


def log_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"--- {path.name}: (no log)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return f"--- {path.name} (last {len(text)} lines)\n" + "\n".join(text)


def group_alive(pid: int) -> bool:
    """True while any process of the process group led by `pid` exists."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Topology:
    """What the test talks to: the Airflow REST client and the MLflow URI; after the stop, every
    process that was running (`stopped`) and those that had to be killed afterwards (`survivors`)."""

    env: dict[str, str]
    api: demo_scheduler.Api
    airflow: airflow_env.Services
    mlflow: airflow_env.Services
    mlflow_uri: str
    stopped: list[psutil.Process] = field(default_factory=list)
    survivors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def services(self) -> list[airflow_env.Service]:
        return [*self.airflow.services, *self.mlflow.services]

    def check_alive(self) -> None:
        self.mlflow.check_alive()
        self.airflow.check_alive()

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(log_tail(s.log_path, lines) for s in self.services)

    def fail(self, message: str) -> TopologyError:
        return TopologyError(f"{message}\n{self.log_tails()}")


def topology_env(home: Path, urls: Mapping[str, str], models_dir: Path, *, schedule_end: str) -> dict[str, str]:
    """The compose environment (same variable names), pointing at local processes and tmp folders."""
    api_port, mlflow_port = free_port(), free_port()
    env = airflow_env.airflow_env(home, port=api_port, schedule_end=schedule_end)
    env.update(
        {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": urls["airflow"],
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "true",
            # Log servers of the scheduler and the triggerer: free ports, not 8793/8794 (parallel runs).
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "DRIFTGUARD_MODELS_DIR": str(models_dir),
            "DRIFTGUARD_REPORTS_DIR": str(home / "reports"),
            "DRIFTGUARD_HISTORY_URL": urls["driftguard"],
            "DRIFTGUARD_FEATURE_LOG_URL": urls["driftguard"],
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
            "DRIFTGUARD_MLFLOW_ARTIFACTS": str(home / "mlartifacts"),  # unused with a tracking server
        }
    )
    return env


def mlflow_server_env(backend_uri: str) -> dict[str, str]:
    """The MLflow server's own variables. Job execution (GenAI jobs, a huey consumer pool of eight
    processes) is off: Driftguard runs none, and with it on the server ignores SIGINT, so every
    stop waited for the SIGTERM escalation."""
    return {"MLFLOW_BACKEND_STORE_URI": backend_uri, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def _run(argv: list[str], env: Mapping[str, str], what: str, timeout: float) -> None:
    proc = subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise TopologyError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def _wait_http(url: str, topo: Topology, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        topo.check_alive()
        with contextlib.suppress(OSError, urllib.error.URLError), urllib.request.urlopen(url, timeout=5) as resp:
            if resp.status == 200:
                return
        time.sleep(0.5)
    raise topo.fail(f"{url} did not answer 200 within {timeout:.0f} s")


def _wait_api(topo: Topology, timeout: float) -> None:
    try:
        demo_scheduler.wait_for_api(topo.api, topo.airflow, topo.env, timeout=timeout)
    except (SystemExit, RuntimeError) as exc:
        raise topo.fail(f"Airflow API: {exc}") from None


@contextlib.contextmanager
def start_topology(
    env: dict[str, str], log_dir: Path, *, mlflow_backend_uri: str, startup_timeout: float = 240
) -> Iterator[Topology]:
    """Migrate Airflow's DB, start MLflow and the four Airflow components; stop them all on exit.

    As in compose, only the MLflow server sees its backend URI (MLFLOW_BACKEND_STORE_URI, kept off
    the command line); Airflow's tasks reach MLflow through MLFLOW_TRACKING_URI (HTTP) only."""
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    _run([airflow_env.airflow_bin(), "db", "migrate"], env, "airflow db migrate", timeout=300)
    mlflow_port = env["MLFLOW_TRACKING_URI"].rsplit(":", 1)[1]
    topo = Topology(
        env=env,
        api=demo_scheduler.Api(f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}"),
        airflow=airflow_env.Services(env, log_dir),
        mlflow=airflow_env.Services({**env, **mlflow_server_env(mlflow_backend_uri)}, log_dir),
        mlflow_uri=env["MLFLOW_TRACKING_URI"],
    )
    try:
        topo.mlflow.start(
            "mlflow",
            [
                airflow_env.airflow_bin("mlflow"), "server",
                "--artifacts-destination", str(Path(env["DRIFTGUARD_HOME"]) / "mlflow-artifacts"),
                "--serve-artifacts", "--host", "127.0.0.1", "--port", mlflow_port, "--workers", "1",
                "--allowed-hosts", f"localhost:{mlflow_port},127.0.0.1:{mlflow_port},localhost,127.0.0.1",
            ],
        )  # fmt: skip
        for name, sub in AIRFLOW_COMPONENTS:
            topo.airflow.start(name, [airflow_env.airflow_bin(), *sub])
        _wait_http(f"{topo.mlflow_uri}/health", topo, startup_timeout)
        _wait_api(topo, startup_timeout)
        yield topo
    finally:
        stop(topo)


def _tree(topo: Topology) -> list[psutil.Process]:
    """Every process the services started, leaders and descendants, whatever their process group."""
    procs: list[psutil.Process] = []
    for service in topo.services:
        if service.process is None:
            continue
        with contextlib.suppress(psutil.NoSuchProcess):
            leader = psutil.Process(service.process.pid)
            procs += [leader, *leader.children(recursive=True)]
    return procs


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop(topo: Topology) -> None:
    """Stop Airflow, then MLflow (process groups: SIGINT, SIGTERM, SIGKILL), then kill survivors.

    Why the survivor pass: Airflow's task supervisor puts each task process in its own process
    group, so when a stop escalates to SIGKILL while a task runs, signalling the scheduler's group
    does not reach the task. The tree is recorded before stopping; survivors are killed and kept
    in `topo.survivors` (pid, command line) so the test can fail on them."""
    tree = _tree(topo)
    topo.stopped = tree
    started = time.monotonic()
    try:
        topo.airflow.stop()
    finally:
        log.info("Airflow stopped in %.1f s", time.monotonic() - started)
        topo.mlflow.stop(timeout=3)  # SIGINT often leaves `mlflow server` running; SIGTERM ends it
        log.info("Airflow and MLflow stopped in %.1f s (%d processes)", time.monotonic() - started, len(tree))
    killed = []
    for proc in tree:
        if _alive(proc):
            with contextlib.suppress(psutil.Error):
                topo.survivors.append((proc.pid, " ".join(proc.cmdline())[:200]))
                proc.kill()
                killed.append(proc)
    psutil.wait_procs(killed, timeout=10)
