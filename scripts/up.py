"""`make up`: the Airflow UI on the embedded stores of `make demo`, as fast as two cores allow.

Starts the api-server, scheduler, dag-processor and triggerer (what `airflow standalone` runs)
as background process groups with the demo environment of scripts/airflow_env.py: the same
SQLite metadata DB, DAG folder and Driftguard stores as `make demo`. Stop it with Ctrl-C.

Why not `airflow standalone`: it runs `airflow db migrate` on every start (seconds of Airflow
imports and migration checks even when the DB is current) and starts the four components at
once, so the api-server (the one thing a person waits for) competes for two cores with three
processes that import Airflow and parse DAGs. Here the migration runs only when the metadata
DB is not at the installed Airflow's head revision (read with sqlite3, no Airflow import), and
the other three components start at a lower CPU priority (`nice`), so the UI answers first.

`--ready-exit` stops everything once the UI answers and prints the time it took: how the
figure in the README is measured (`make screenshots` uses `--ready-file` to wait for the UI).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from airflow_env import VENV_BIN, Services, airflow_bin, demo_env, password_file

BACKGROUND = ("scheduler", "dag-processor", "triggerer")
NICE = "10"
READY_PATH = "/api/v2/monitor/health"
_REVISION = re.compile(r"^(down_)?revision\s*(?::\s*[^=]+)?=\s*(.+)$", re.MULTILINE)


def migration_heads(versions_dir: Path) -> set[str]:
    """Head revision(s) of Airflow's alembic migrations, from the files' `revision` lines."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions_dir.glob("*.py"):
        for down, value in _REVISION.findall(path.read_text(errors="replace")):
            ids = set(re.findall(r"[\"']([0-9a-f]+)[\"']", value))
            (parents if down else revisions).update(ids)
    return revisions - parents


def metadata_db_current(db_file: Path, versions_dir: Path) -> bool:
    """True when the SQLite metadata DB exists and sits at the installed Airflow's head."""
    if not db_file.is_file():
        return False
    try:
        with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as conn:
            current = {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}
    except sqlite3.Error:
        return False
    heads = migration_heads(versions_dir)
    return bool(heads) and current == heads


def airflow_versions_dir() -> Path:
    """Airflow's migrations folder in this venv, found without importing Airflow."""
    site = Path(VENV_BIN).parent / "lib"
    found = sorted(site.glob("python3*/site-packages/airflow/migrations/versions"))
    return found[0] if found else Path("/nonexistent")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM stops like Ctrl-C: the components are stopped, none is left behind."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ready-exit", action="store_true", help="stop once the UI answers; print the time")
    parser.add_argument("--ready-file", type=Path, help="touch this file once the UI answers")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up waiting for the UI after this")
    args = parser.parse_args(argv)

    started = time.monotonic()
    env = demo_env()
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    port = int(env["AIRFLOW__API__PORT"])
    with socket.socket() as s:
        s.settimeout(1)
        if s.connect_ex(("127.0.0.1", port)) == 0:
            print(f"[up] port {port} is in use (another Airflow?); set DRIFTGUARD_AIRFLOW_PORT", file=sys.stderr)
            return 1
    # Standalone's choices, explicit: one api-server worker, the simple auth manager with a
    # generated admin password (the api-server writes it on first start).
    env.setdefault("AIRFLOW__API__WORKERS", "1")
    env.setdefault(
        "AIRFLOW__CORE__AUTH_MANAGER", "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
    )
    env.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    airflow = airflow_bin()
    db_file = home / "airflow.db"
    if metadata_db_current(db_file, airflow_versions_dir()):
        print("[up] metadata DB at Airflow's head revision: no migration", flush=True)
    else:
        print("[up] airflow db migrate ...", flush=True)
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)

    log_dir = home / "logs" / "up"
    services = Services(env, log_dir)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        services.start("api-server", [airflow, "api-server", "--port", str(port)])
        for name in BACKGROUND:
            services.start(name, ["nice", "-n", NICE, airflow, name])
        base = f"http://localhost:{port}"
        print(
            f"[up] Airflow UI: {base}   user: admin   password: in {password_file(env)}\n"
            f"[up] Airflow home {home}; DAGs from {env['AIRFLOW__CORE__DAGS_FOLDER']}; logs in {log_dir}\n"
            f"[up] schedules end at DRIFTGUARD_SCHEDULE_END={env.get('DRIFTGUARD_SCHEDULE_END', '')} "
            "(the 2013 demo world)\n[up] stop with Ctrl-C",
            flush=True,
        )
        deadline = started + args.timeout
        while not answers(base + READY_PATH):
            services.check_alive()
            if time.monotonic() > deadline:
                print(f"[up] the UI did not answer within {args.timeout:.0f} s; see {log_dir}", file=sys.stderr)
                return 1
            time.sleep(0.25)
        took = time.monotonic() - started
        load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
        print(f"[up] UI ready after {took:.1f} s (load average {' '.join(load)})", flush=True)
        if args.ready_file:
            args.ready_file.write_text(json.dumps({"base": base, "seconds": round(took, 1)}))
        if args.ready_exit:
            return 0
        while True:
            services.check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        print("[up] stopping ...", flush=True)
        return 0
    finally:
        services.stop()


if __name__ == "__main__":
    sys.exit(main())
