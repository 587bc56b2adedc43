"""One-shot start-up job of the compose stack (the `airflow-init` service).

Why a script and not the image's `_AIRFLOW_DB_MIGRATE`/`_AIRFLOW_WWW_USER_CREATE` switches: the
stack uses Airflow's simple auth manager, whose admin password lives in a JSON file rather than
in the metadata database, and a misconfigured `.env` (placeholder secrets, an invalid Fernet key,
CeleryExecutor without the celery profile) should stop the stack with one clear message instead
of failing later inside a task. Steps, each idempotent:

1. check the environment (secrets set and not placeholders, executor/broker consistent);
2. check that the shared volumes (reports, Driftguard home, auth) are writable;
3. write the admin password into the simple auth manager's password file;
4. `airflow db migrate`.

Runs inside the image as `python /opt/airflow/docker/airflow_init.py`; stdlib only, so the
checks can be unit-tested without Airflow.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

PLACEHOLDER = "change-me"
MIN_SECRET_LENGTH = 16
# Secrets every Airflow component must share; the value in brackets is the .env variable.
REQUIRED_SECRETS = {
    "AIRFLOW__API__SECRET_KEY": "AIRFLOW_API_SECRET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET": "AIRFLOW_JWT_SECRET",
    "AIRFLOW__CORE__FERNET_KEY": "AIRFLOW_FERNET_KEY",
    "AIRFLOW_ADMIN_PASSWORD": "AIRFLOW_ADMIN_PASSWORD",
}
WRITABLE_DIRS = ("DRIFTGUARD_HOME", "DRIFTGUARD_REPORTS_DIR")
BROKER_WAIT_S = 60.0


def fernet_key_problem(key: str) -> str | None:
    """A Fernet key is 32 bytes, url-safe base64 encoded (44 characters); None when valid."""
    try:
        raw = base64.urlsafe_b64decode(key.encode())
    except (binascii.Error, ValueError):
        return "is not url-safe base64"
    if len(raw) != 32:
        return f"decodes to {len(raw)} bytes, a Fernet key has 32"
    return None


def secret_problems(env: Mapping[str, str]) -> list[str]:
    """Every shared secret is set, long enough and not the .env.example placeholder."""
    problems = []
    for name, dotenv in REQUIRED_SECRETS.items():
        value = env.get(name, "")
        where = f"{name} (set {dotenv} in .env)"
        if not value:
            problems.append(f"{where} is empty")
        elif PLACEHOLDER in value:
            problems.append(f"{where} still holds the placeholder {value!r} from .env.example")
        elif len(value) < MIN_SECRET_LENGTH:
            problems.append(f"{where} is {len(value)} characters long; use at least {MIN_SECRET_LENGTH}")
    fernet = env.get("AIRFLOW__CORE__FERNET_KEY", "")
    if fernet and PLACEHOLDER not in fernet and (why := fernet_key_problem(fernet)):
        problems.append(
            f"AIRFLOW__CORE__FERNET_KEY (set AIRFLOW_FERNET_KEY in .env) {why}; generate one with "
            "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        )
    return problems


def executor_problems(env: Mapping[str, str]) -> list[str]:
    """CeleryExecutor needs a broker URL; the broker itself comes from the celery profile."""
    executors = [e.strip() for e in env.get("AIRFLOW__CORE__EXECUTOR", "LocalExecutor").split(",")]
    if not any(e.endswith("CeleryExecutor") for e in executors):
        return []
    if not env.get("AIRFLOW__CELERY__BROKER_URL"):
        return ["AIRFLOW__CORE__EXECUTOR uses CeleryExecutor but AIRFLOW__CELERY__BROKER_URL is empty"]
    return []


def admin_username(env: Mapping[str, str]) -> str:
    """The first user with role admin in AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS (`name:role,...`)."""
    for entry in env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin").split(","):
        name, _, role = entry.strip().partition(":")
        if name and role.split(":")[0] == "admin":
            return name
    raise ValueError("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS lists no user with role admin (e.g. admin:admin)")


def write_passwords(path: Path, username: str, password: str) -> bool:
    """Set `username`'s password in the simple auth manager's JSON file; keep other users.

    Returns whether the file changed. Airflow only adds generated passwords for users missing
    from this file, so the password from .env wins and a changed .env rotates it."""
    current: dict[str, str] = {}
    if path.exists() and path.read_text().strip():
        try:
            current = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON ({exc}); delete it and rerun airflow-init") from None
    if current.get(username) == password:
        return False
    current[username] = password
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(current) + "\n")
    tmp.chmod(0o660)
    tmp.replace(path)
    return True


def unwritable_dirs(env: Mapping[str, str], extra: tuple[Path, ...] = ()) -> list[str]:
    """Shared volumes must be writable by the container user (uid AIRFLOW_UID, gid 0)."""
    problems = []
    dirs = [Path(env[name]) for name in WRITABLE_DIRS if env.get(name)] + list(extra)
    for d in dirs:
        try:
            d.mkdir(parents=True, exist_ok=True)
            probe = d / ".driftguard-write-check"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            problems.append(
                f"{d} is not writable by uid {os.getuid()} gid {os.getgid()} ({exc.strerror}); "
                "check AIRFLOW_UID in .env and the ownership of the volume"
            )
    return problems


def wait_for_broker(url: str, timeout_s: float = BROKER_WAIT_S) -> str | None:
    """Poll the broker's TCP port; None when it answers, else an actionable message."""
    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or 6379
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=3):
                return None
        except OSError as exc:
            last = str(exc)
            time.sleep(2)
    return (
        f"CeleryExecutor is configured but the broker {host}:{port} does not answer ({last}); "
        "start the stack with the celery profile (COMPOSE_PROFILES=celery in .env) "
        "or set AIRFLOW_EXECUTOR=LocalExecutor"
    )


def main() -> int:
    env = os.environ
    problems = secret_problems(env) + executor_problems(env)
    auth_file = Path(env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", "/opt/airflow/auth/passwords.json"))
    problems += unwritable_dirs(env, (auth_file.parent,))
    if problems:
        print("airflow-init: the configuration is not usable:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    user = admin_username(env)
    changed = write_passwords(auth_file, user, env["AIRFLOW_ADMIN_PASSWORD"])
    print(f"airflow-init: admin user {user!r}: password {'written' if changed else 'unchanged'} in {auth_file}")
    if "CeleryExecutor" in env.get("AIRFLOW__CORE__EXECUTOR", "") and (
        why := wait_for_broker(env["AIRFLOW__CELERY__BROKER_URL"])
    ):
        print(f"airflow-init: {why}", file=sys.stderr)
        return 1
    print("airflow-init: airflow db migrate", flush=True)
    return subprocess.call(["airflow", "db", "migrate"])


if __name__ == "__main__":
    sys.exit(main())
