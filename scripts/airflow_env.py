"""The embedded Airflow environment of Driftguard, and background Airflow processes.

One function builds the environment every local Airflow command needs (`make demo`,
`make up`, the test suite): an Airflow home with a SQLite metadata DB under
DRIFTGUARD_HOME, the repo's dags/ and plugins/ folders, no example DAGs. `Services`
starts Airflow components as background process groups and stops them without orphans.

Usage from a shell (point your own `airflow ...` commands at the demo's stores):

    eval "$(.venv/bin/python scripts/airflow_env.py shell)"
    .venv/bin/python scripts/airflow_env.py exec -- airflow dags list

Standard library only: this runs before anything else is known to work.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DEMO_SCHEDULE_END = "2013-12-31"  # the demo world is 2013: never schedule the (empty) present


def default_home() -> Path:
    return Path(os.environ.get("DRIFTGUARD_HOME") or REPO_ROOT / ".driftguard").resolve()


def airflow_env(
    home: Path,
    *,
    port: int = 8080,
    schedule_end: str | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for Airflow commands on the embedded stores under `home` (DRIFTGUARD_HOME).

    Explicit values win over whatever airflow.cfg says, so a stale config never points a
    command at another database or DAG folder. Driftguard's own URLs default under `home`
    (see driftguard.settings) unless `base` already sets them."""
    env = dict(os.environ if base is None else base)
    airflow_home = home / "airflow"
    env.update(
        {
            "DRIFTGUARD_HOME": str(home),
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # Two cores: a few task processes at a time is plenty and keeps memory bounded.
            "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "4"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
            "GX_ANALYTICS_ENABLED": "false",
        }
    )
    env.setdefault("DRIFTGUARD_FEATURE_LOG_URL", f"sqlite:///{home / 'feature_log.db'}")
    if schedule_end is not None:
        env["DRIFTGUARD_SCHEDULE_END"] = schedule_end
    # Task processes must find the `airflow` and `driftguard` executables of this venv.
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def demo_env(home: Path | None = None) -> dict[str, str]:
    """The environment of `make demo` and `make up`: embedded stores, the 2013 demo world."""
    port = int(os.environ.get("DRIFTGUARD_AIRFLOW_PORT", "8080"))
    end = os.environ.get("DRIFTGUARD_SCHEDULE_END", DEMO_SCHEDULE_END)
    return airflow_env(home or default_home(), port=port, schedule_end=end)


def airflow_bin(name: str = "airflow") -> str:
    path = VENV_BIN / name
    return str(path) if path.exists() else name


def password_file(env: Mapping[str, str]) -> Path:
    """Where the simple auth manager writes the generated admin password."""
    return Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"


# --------------------------------------------------------------------------- background processes


def _child_setup() -> None:
    """In the child, before exec: default SIGINT handling (a background parent may ignore it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Service:
    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Services:
    """Airflow components as background process groups; stopping signals the whole group.

    Each component gets its own session (process group), so SIGINT/SIGTERM reach it and
    the task processes it forked, and nothing survives `stop()`."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.services: list[Service] = []

    def start(self, name: str, argv: Sequence[str]) -> Service:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        service = Service(name, list(argv), self.log_dir / f"{name}.log")
        service._log = service.log_path.open("ab")
        service.process = subprocess.Popen(
            service.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=service._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_child_setup,
        )
        self.services.append(service)
        return service

    def check_alive(self) -> None:
        for service in self.services:
            if not service.running():
                code = service.process.returncode if service.process else None
                raise RuntimeError(f"airflow {service.name} exited with code {code}; see its log {service.log_path}")

    def stop(self, timeout: float = 30.0, term_timeout: float = 10.0) -> None:
        """SIGINT (Airflow's clean shutdown), then SIGTERM, then SIGKILL, per process group."""
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, term_timeout), (signal.SIGKILL, 5.0)):
            alive = [s for s in self.services if _group_alive(s)]
            if not alive:
                break
            for service in alive:
                _signal_group(service, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(_group_alive(s) for s in alive):
                time.sleep(0.2)
        for service in self.services:
            if service._log is not None:
                service._log.close()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(service: Service, sig: signal.Signals) -> None:
    if service.process is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(service.process.pid, sig)


def _group_alive(service: Service) -> bool:
    """True while any process of the service's group exists (the leader is reaped first)."""
    if service.process is None:
        return False
    service.process.poll()
    try:
        os.killpg(service.process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("shell", help="print `export` lines for the demo environment")
    run = sub.add_parser("exec", help="run a command in the demo environment (replaces this process)")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    env = demo_env()
    if args.command == "shell":
        keys = sorted(k for k in env if k.startswith(("AIRFLOW", "DRIFTGUARD_", "GX_")) or k == "PATH")
        for key in keys:
            print(f"export {key}={shlex.quote(env[key])}")
        return 0
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else list(args.cmd)
    if not cmd:
        parser.error("exec needs a command, e.g. exec -- airflow dags list")
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    os.execvpe(cmd[0], cmd, env)
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
