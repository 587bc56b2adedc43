"""`make up`: the Airflow UI on the embedded stores of `make demo` (airflow standalone).

Runs `airflow standalone` (api-server, scheduler, dag-processor, triggerer) in the foreground
with the demo environment of scripts/airflow_env.py: the same SQLite metadata DB, DAG folder
and Driftguard stores as `make demo`. Stop it with Ctrl-C.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from airflow_env import airflow_bin, demo_env, password_file


def main() -> int:
    env = demo_env()
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    port = int(env["AIRFLOW__API__PORT"])
    with socket.socket() as s:
        s.settimeout(1)
        if s.connect_ex(("127.0.0.1", port)) == 0:
            print(f"[up] port {port} is in use (another Airflow?); set DRIFTGUARD_AIRFLOW_PORT", file=sys.stderr)
            return 1
    print(
        f"""[up] Airflow UI: http://localhost:{port}   (ready after about 15 s)
[up] user: admin   password: in {password_file(env)}
[up]                (written on first start; standalone also prints it below)
[up] Airflow home {env["AIRFLOW_HOME"]}; DAGs from {env["AIRFLOW__CORE__DAGS_FOLDER"]}
[up] schedules end at DRIFTGUARD_SCHEDULE_END={env.get("DRIFTGUARD_SCHEDULE_END", "")} (the 2013 demo world)
[up] stop with Ctrl-C""",
        flush=True,
    )
    airflow = airflow_bin()
    os.execvpe(airflow, [airflow, "standalone"], env)
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
