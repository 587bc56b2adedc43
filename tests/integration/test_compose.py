"""The production stack files (docker-compose.yaml, Dockerfile, .dockerignore, .env.example, docker/)
stay valid and consistent with the code, without a Docker engine.

Each rule is a function returning a list of problems; every rule is run on the real files (expecting
none) and on a mutated copy (expecting the problem to be named), so no rule can silently pass.
Validation: the vendored Compose Specification schema always; `docker compose config` when a compose
CLI is installed (skipped with the reason otherwise).
"""

from __future__ import annotations

import copy
import fnmatch
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
REQUIREMENTS = ROOT / "requirements.txt"
PYPROJECT = ROOT / "pyproject.toml"
INIT_SQL = ROOT / "docker" / "postgres" / "10-create-databases.sql"
INIT_SCRIPT = ROOT / "docker" / "airflow_init.py"
SCHEMA = Path(__file__).parent / "compose_spec" / "compose-spec.json"
CODE_DIRS = (ROOT / "include" / "driftguard", ROOT / "dags")
CONTRACTS_DIR = ROOT / "include" / "models"
COMMON = "x-airflow-common"
CELERY_SERVICES = {"redis", "airflow-worker"}
PG_DEFAULT_PORT = 5432


# =========================================================================== parsing helpers


class InterpolationError(ValueError):
    pass


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_BODY = re.compile(rf"({_NAME})(?:(:-|-|:\?|\?|:\+|\+)(.*))?\Z", re.DOTALL)


def _closing_brace(s: str, start: int) -> int:
    """Index of the `}` closing the `${` at `start`, counting nested `${...}`."""
    depth, j = 1, start + 2
    while j < len(s):
        if s.startswith("${", j):
            depth, j = depth + 1, j + 2
            continue
        if s[j] == "}":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    raise InterpolationError(f"unclosed ${{ in {s!r}")


def _refs(s: str) -> Iterator[tuple[int, int, str, str | None, str]]:
    """Top-level references in s: (start, end, name, operator, argument); `$$` is an escape."""
    i = 0
    while i < len(s):
        if s.startswith("$$", i):
            i += 2
        elif s.startswith("${", i):
            end = _closing_brace(s, i)
            m = _BODY.match(s[i + 2 : end])
            if not m:
                raise InterpolationError(f"bad reference ${{{s[i + 2 : end]}}} in {s!r}")
            yield i, end + 1, m.group(1), m.group(2), m.group(3) or ""
            i = end + 1
        elif m := re.compile(rf"\$({_NAME})").match(s, i):
            yield i, m.end(), m.group(1), None, ""
            i = m.end()
        else:
            i += 1


def interpolate(s: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation: ${V}, ${V:-d}, ${V-d}, ${V:?e}, ${V?e}, ${V:+r}, ${V+r}, $V, $$."""
    out, pos = [], 0
    for start, end, name, op, arg in _refs(s):
        out.append(s[pos:start].replace("$$", "$"))
        value = env.get(name)
        if op in (":-", "-"):
            unset = value is None or (op == ":-" and value == "")
            out.append(interpolate(arg, env) if unset else value)
        elif op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise InterpolationError(f"required variable {name} is missing: {interpolate(arg, env)}")
            out.append(value)
        elif op in (":+", "+"):
            is_set = value is not None and (op == "+" or value != "")
            out.append(interpolate(arg, env) if is_set else "")
        else:
            out.append(value or "")
        pos = end
    out.append(s[pos:].replace("$$", "$"))
    return "".join(out)


def interpolate_tree(obj: Any, env: Mapping[str, str]) -> Any:
    if isinstance(obj, str):
        return interpolate(obj, env)
    if isinstance(obj, dict):
        return {k: interpolate_tree(v, env) for k, v in obj.items()}
    if isinstance(obj, list):
        return [interpolate_tree(v, env) for v in obj]
    return obj


def strings(obj: Any) -> Iterator[str]:
    """Every string scalar in a parsed YAML tree."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from strings(v)


def variables_in(s: str) -> set[str]:
    """Names referenced by s, including those nested in defaults."""
    names = set()
    for _, _, name, _, arg in _refs(s):
        names.add(name)
        names |= variables_in(arg)
    return names


def parse_env_file(text: str) -> tuple[dict[str, str], set[str]]:
    """(values of KEY=VALUE lines, names of commented `# KEY=...` lines listed as optional)."""
    values, commented = {}, set()
    for line in text.splitlines():
        if m := re.match(rf"\s*({_NAME})=(.*)$", line):
            values[m.group(1)] = m.group(2).strip()
        elif m := re.match(rf"\s*#\s*({_NAME})=", line):
            commented.add(m.group(1))
    return values, commented


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def example_env() -> dict[str, str]:
    return parse_env_file(ENV_EXAMPLE.read_text())[0]


def resolved(compose: dict[str, Any]) -> dict[str, Any]:
    """The compose dict as docker compose would see it with .env.example as the .env file."""
    return interpolate_tree(compose, example_env())


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def command_of(service: dict[str, Any], key: str = "command") -> list[str]:
    value = service.get(key) or []
    return value.split() if isinstance(value, str) else [str(v) for v in value]


def is_mlflow(service: dict[str, Any]) -> bool:
    return "mlflow" in command_of(service, "entrypoint") + command_of(service)[:1]


def airflow_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services built from the Driftguard image that run Airflow or Driftguard code (not MLflow)."""
    image = compose[COMMON]["image"]
    return {name: svc for name, svc in compose["services"].items() if svc.get("image") == image and not is_mlflow(svc)}


def volume_targets(service: dict[str, Any]) -> dict[str, str]:
    """target path -> source (host path or named volume), short and long syntax."""
    out = {}
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            out[v["target"]] = v.get("source", "")
        else:
            parts = v.split(":")
            out[parts[1]] = parts[0]
    return out


def published_ports(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host port, protocol) of each published port; short syntax `[ip:]host:container[/proto]`."""
    out = []
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            if p.get("published"):
                out.append((str(p["published"]), p.get("protocol", "tcp")))
            continue
        spec, _, proto = str(p).partition("/")
        parts = spec.rsplit(":", 2)
        if len(parts) >= 2:
            out.append((parts[-2], proto or "tcp"))
    return out


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: {"condition": "service_started", "required": True} for d in deps}
    return {k: {"condition": "service_started", "required": True, **(v or {})} for k, v in deps.items()}


# =========================================================================== rules


def schema_problems(compose: dict[str, Any]) -> list[str]:
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(compose), key=lambda e: list(map(str, e.absolute_path)))
    ]


_ENV_READ_PATTERNS = [
    rf"""(?:environ|env)\.get\(\s*["']({_NAME})["']""",
    rf"""os\.getenv\(\s*["']({_NAME})["']""",
    rf"""(?:environ|env)\[\s*["']({_NAME})["']\s*\]""",
    rf"""["']({_NAME})["']\s+(?:not\s+)?in\s+(?:os\.)?environ""",
    rf"""^\s*ENV_[A-Z0-9_]+\s*(?::\s*\w+)?\s*=\s*["']({_NAME})["']""",
    r"""["'](DRIFTGUARD_[A-Z0-9_]+)["']""",
]
# Set by the code for its own child processes or defaults, never expected from the deployment.
_ENV_SET_BY_CODE = {"PYTHONUNBUFFERED"}


def env_vars_read_by_code(dirs: tuple[Path, ...] = CODE_DIRS) -> set[str]:
    """Environment variable names the Python code reads (regex scan), plus ${VAR} in contracts."""
    names: set[str] = set()
    for d in dirs:
        for path in sorted(d.rglob("*.py")) if d.is_dir() else []:
            text = path.read_text()
            for pattern in _ENV_READ_PATTERNS:
                names |= set(re.findall(pattern, text, re.MULTILINE))
    for path in sorted(CONTRACTS_DIR.glob("*.y*ml")) if CONTRACTS_DIR.is_dir() else []:
        names |= set(re.findall(rf"\$\{{({_NAME})\}}", path.read_text()))
    return names - _ENV_SET_BY_CODE


def env_coverage_problems(compose: dict[str, Any], needed: set[str]) -> list[str]:
    """Every variable the code reads reaches every Airflow container (a value only in .env does not:
    compose interpolates .env into this file, it does not pass it to containers)."""
    problems = []
    common = set(env_of(compose[COMMON]))
    for name in sorted(needed - common):
        problems.append(f"{name} is read by the code but not set in {COMMON}.environment")
    for svc_name, svc in airflow_services(compose).items():
        for name in sorted((needed & common) - set(env_of(svc))):
            problems.append(f"service {svc_name}: environment lacks {name} (merge *airflow-common-env)")
    return problems


def code_defaults(dirs: tuple[Path, ...] = CODE_DIRS) -> dict[str, str]:
    """`os.environ.get("X", "default")` literal defaults in the code."""
    pattern = rf"""(?:environ|env)\.get\(\s*["']({_NAME})["']\s*,\s*["']([^"']+)["']"""
    found: dict[str, str] = {}
    for d in dirs:
        for path in sorted(d.rglob("*.py")) if d.is_dir() else []:
            found.update(re.findall(pattern, path.read_text()))
    return found


def empty_override_problems(compose: dict[str, Any], defaults: Mapping[str, str]) -> list[str]:
    """A variable passed as "" (unset or empty in .env) is *set*: it would replace the code's default."""
    problems = []
    common = env_of(compose[COMMON])
    for name, default in sorted(defaults.items()):
        if name not in common:
            continue
        for label, env in (("unset in .env", {}), ("as in .env.example", example_env())):
            if interpolate(common[name], env) == "":
                problems.append(
                    f"{name} reaches the containers empty when {label}, overriding the code default "
                    f"{default!r}: write ${{{name}:-{default}}}"
                )
    return problems


def undeclared_variable_problems(compose: dict[str, Any], env_example_text: str) -> list[str]:
    values, commented = parse_env_file(env_example_text)
    used = set().union(*(variables_in(s) for s in strings(compose)))
    return [
        f"${{{n}}} is used in docker-compose.yaml but not listed in .env.example"
        for n in sorted(used - set(values) - commented)
    ]


def mount_problems(compose: dict[str, Any]) -> list[str]:
    """dags/, plugins/, include/ are mounted where the configuration says; reports and the
    Driftguard home are named volumes shared by every Airflow service."""
    problems = []
    shared: dict[str, set[str]] = {"DRIFTGUARD_REPORTS_DIR": set(), "DRIFTGUARD_HOME": set()}
    for name, svc in airflow_services(compose).items():
        env, mounts = env_of(svc), volume_targets(svc)
        expected = {
            "AIRFLOW__CORE__DAGS_FOLDER": "./dags",
            "AIRFLOW__CORE__PLUGINS_FOLDER": "./plugins",
            "PYTHONPATH": "./include",
        }
        for var, source in expected.items():
            target = env.get(var, "").split(":")[0]
            if not target:
                problems.append(f"service {name}: {var} is not set")
            elif mounts.get(target) != source:
                problems.append(f"service {name}: {var}={target} but {source} is not mounted there")
        include = env.get("PYTHONPATH", "").split(":")[0]
        if include and not env.get("DRIFTGUARD_MODELS_DIR", "").startswith(include + "/"):
            problems.append(f"service {name}: DRIFTGUARD_MODELS_DIR is not inside the mounted include/ ({include})")
        for var, sources in shared.items():
            source = mounts.get(env.get(var, ""), "")
            if not source or source.startswith((".", "/")):
                problems.append(f"service {name}: {var}={env.get(var)!r} is not on a named volume")
            sources.add(source)
    for var, sources in shared.items():
        if len(sources) > 1:
            problems.append(f"{var} is on different volumes in different services: {sorted(sources)}")
    return problems


def port_problems(compose: dict[str, Any]) -> list[str]:
    problems, seen = [], {}
    for name, svc in compose["services"].items():
        for port, proto in published_ports(svc):
            if port in seen.get(proto, {}):
                problems.append(f"host port {port}/{proto} is published by both {seen[proto][port]} and {name}")
            seen.setdefault(proto, {})[port] = name
            if port == str(PG_DEFAULT_PORT):
                problems.append(
                    f"service {name} publishes host port {PG_DEFAULT_PORT}, clashing with a local PostgreSQL"
                )
    return problems


def dependency_problems(compose: dict[str, Any]) -> list[str]:
    problems = []
    services = compose["services"]
    for name, svc in services.items():
        for target, spec in depends_on(svc).items():
            condition = spec["condition"]
            if target not in services:
                problems.append(f"service {name} depends on {target}, which does not exist")
                continue
            other = services[target]
            healthy = other.get("healthcheck") and not other["healthcheck"].get("disable")
            if condition == "service_healthy" and not healthy:
                problems.append(f"service {name} waits for {target} to be healthy but {target} has no healthcheck")
            if condition == "service_completed_successfully" and other.get("restart", "no") != "no":
                problems.append(
                    f"service {name} waits for {target} to complete but {target} restarts ({other['restart']})"
                )
        is_long_running = svc.get("restart", "no") != "no"
        if is_long_running and not svc.get("healthcheck"):
            problems.append(f"service {name} runs permanently (restart: {svc['restart']}) without a healthcheck")
    return problems


def _pin(requirements_text: str, package: str) -> str | None:
    m = re.search(rf"^{re.escape(package)}==([^\s;#]+)", requirements_text, re.MULTILINE | re.IGNORECASE)
    return m.group(1) if m else None


def dockerfile_pin_problems(dockerfile_text: str, requirements_text: str, pyproject_text: str) -> list[str]:
    m = re.search(r"^FROM\s+apache/airflow:(\d+\.\d+\.\d+)-python(\d+\.\d+)\s*$", dockerfile_text, re.MULTILINE)
    if not m:
        return ["Dockerfile has no `FROM apache/airflow:<version>-python<x.y>` line"]
    problems = []
    pin = _pin(requirements_text, "apache-airflow")
    if m.group(1) != pin:
        problems.append(f"Dockerfile FROM apache/airflow:{m.group(1)} but requirements.txt pins apache-airflow=={pin}")
    requires = re.search(r'requires-python\s*=\s*">=(\d+\.\d+)', pyproject_text)
    if requires and requires.group(1) != m.group(2):
        problems.append(f"Dockerfile uses python{m.group(2)} but pyproject.toml requires-python >={requires.group(1)}")
    return problems


def databases_created(sql: str) -> set[str]:
    """Databases the init script creates: `CREATE DATABASE x` statements or the ARRAY[...] it loops over."""
    sql = re.sub(r"--[^\n]*", "", sql)
    names = set(re.findall(r"CREATE\s+DATABASE\s+\"?(\w+)", sql, re.IGNORECASE))
    for array in re.findall(r"ARRAY\s*\[([^\]]*)\]", sql, re.IGNORECASE):
        names |= set(re.findall(r"'(\w+)'", array))
    return names


def databases_referenced(compose: dict[str, Any]) -> dict[str, str]:
    """database -> where, for every URL pointing at the stack's own `postgres` service."""
    refs = {}
    for name, svc in compose["services"].items():
        for value in [*env_of(svc).values(), *command_of(svc)]:
            for url in re.findall(r"[a-z0-9+]+://[^\s,]+", value):
                parts = urlsplit(url)
                if parts.scheme.split("+")[0] in ("postgresql", "postgres") and parts.hostname == "postgres":
                    refs.setdefault(parts.path.lstrip("/"), f"service {name}")
    return refs


def database_problems(compose_resolved: dict[str, Any], init_sql: str) -> list[str]:
    created = databases_created(init_sql) | {"postgres"}
    return [
        f"{where} uses database {db!r}, which docker/postgres/10-create-databases.sql does not create"
        for db, where in sorted(databases_referenced(compose_resolved).items())
        if db not in created
    ]


_SECRET_KEY = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|API_KEY|PRIVATE_KEY")
_REF_ONLY = re.compile(rf"\$\{{{_NAME}(?:(?::?\?)[^}}]*)?\}}")


def _masked(s: str) -> Iterator[str]:
    """s with each top-level reference replaced by a token, then each reference's default text."""
    out, pos = [], 0
    for start, end, _, op, arg in _refs(s):
        out.append(s[pos:start] + ("{REF}" if op not in (":-", "-") else "{REF_OR_DEFAULT}"))
        if op in (":-", "-", ":+", "+"):
            yield from _masked(arg)
        pos = end
    yield "".join(out) + s[pos:]


def secret_problems(compose: dict[str, Any]) -> list[str]:
    """Passwords and keys only via ${VAR} without a literal default; URLs carry no literal password."""
    problems = []
    for name, svc in {**compose["services"], COMMON: compose[COMMON]}.items():
        for key, value in env_of(svc).items():
            if (
                _SECRET_KEY.search(key)
                and not key.endswith(("_FILE", "_PATH", "_CMD"))
                and not _REF_ONLY.fullmatch(value)
            ):
                problems.append(f"{name}: {key} must be ${{VAR}} or ${{VAR:?message}} from .env, not {value!r}")
    for s in strings(compose):
        for text in _masked(s):
            for password in re.findall(r"://[^/@\s:]+:([^@\s]+)@", text):
                if password != "{REF}":
                    problems.append(f"literal password in URL {text!r}: use ${{POSTGRES_PASSWORD}}-style references")
    return problems


def env_example_secret_problems(env_example_text: str) -> list[str]:
    values, _ = parse_env_file(env_example_text)
    return [
        f".env.example: {k} must be empty or a change-me placeholder, not a value that could be a real secret"
        for k, v in values.items()
        if _SECRET_KEY.search(k) and v and "change-me" not in v
    ]


def profile_problems(compose: dict[str, Any]) -> list[str]:
    problems = []
    services = compose["services"]
    for name in sorted(CELERY_SERVICES - set(services)):
        problems.append(f"celery profile service {name} is missing")
    for name, svc in services.items():
        profiles = set(svc.get("profiles") or [])
        if name in CELERY_SERVICES and profiles != {"celery"}:
            problems.append(f"service {name} must run only under the celery profile, has profiles {sorted(profiles)}")
        if not profiles:
            for target, spec in depends_on(svc).items():
                if services.get(target, {}).get("profiles") and spec.get("required", True):
                    problems.append(f"default service {name} requires {target}, which only runs under a profile")
    default_executor = env_of(compose[COMMON]).get("AIRFLOW__CORE__EXECUTOR", "")
    if interpolate(default_executor, {}) != "LocalExecutor":
        problems.append(f"the default executor must be LocalExecutor, is {default_executor!r}")
    return problems


def mlflow_host_problems(compose_resolved: dict[str, Any]) -> list[str]:
    """The Host header Airflow sends (MLFLOW_TRACKING_URI) must pass `mlflow server --allowed-hosts`."""
    services = compose_resolved["services"]
    mlflow = [n for n, s in services.items() if is_mlflow(s)]
    if len(mlflow) != 1:
        return [f"expected one MLflow service, found {mlflow}"]
    args = command_of(services[mlflow[0]])
    if "--allowed-hosts" not in args:
        return ["mlflow server runs without --allowed-hosts: only localhost and private IPs are accepted"]
    allowed = [h.strip() for h in args[args.index("--allowed-hosts") + 1].split(",")]
    uri = env_of(compose_resolved[COMMON]).get("MLFLOW_TRACKING_URI", "")
    host = urlsplit(uri).netloc
    ok = any(fnmatch.fnmatch(host, a) if "*" in a else host == a for a in allowed)
    problems = [] if ok else [f"MLFLOW_TRACKING_URI host {host!r} is not in mlflow --allowed-hosts {allowed}"]
    if urlsplit(uri).hostname != mlflow[0]:
        problems.append(f"MLFLOW_TRACKING_URI {uri!r} does not point at the {mlflow[0]} service")
    return problems


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignored(path: str, ignore_text: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for line in ignore_text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        regex = _dockerignore_regex(line.lstrip("!").strip("/"))
        if any(regex.match(c) for c in candidates):
            excluded = not negate
    return excluded


BUILD_NEEDS = [
    "requirements.txt",
    "pyproject.toml",
    "include/driftguard/settings.py",
    "include/models/flight_delay.yaml",
    "dags/monitoring.py",
    "plugins/driftguard_plugin.py",
    "docker/airflow_init.py",
    "docs/runbook.md",  # the plugin serves it at /driftguard/runbook
]
BUILD_MUST_EXCLUDE = [
    ".env",
    ".env.production",
    ".git/config",
    ".venv/bin/python",
    ".driftguard/history.db",
    "tests/conftest.py",
]


def build_context_problems(dockerfile_text: str, ignore_text: str) -> list[str]:
    problems = [
        f".dockerignore excludes {p}, which the image needs" for p in BUILD_NEEDS if dockerignored(p, ignore_text)
    ]
    problems += [
        f".dockerignore lets {p} into the build context"
        for p in BUILD_MUST_EXCLUDE
        if not dockerignored(p, ignore_text)
    ]
    for line in re.findall(r"^COPY\s+(.+)$", dockerfile_text, re.MULTILINE):
        args = [a for a in line.split() if not a.startswith("--")]
        for src in args[:-1]:
            if not (ROOT / src).exists():
                problems.append(f"Dockerfile COPY source {src} does not exist")
    return problems


# =========================================================================== fixtures


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def compose_resolved(compose: dict[str, Any]) -> dict[str, Any]:
    return resolved(compose)


def mutated(compose: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    c = copy.deepcopy(compose)
    change(c)
    return c


def assert_reports(problems: list[str], *fragments: str) -> None:
    assert problems, "the rule reported nothing for a broken file"
    text = "\n".join(problems)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {problems}"


# =========================================================================== interpolation


def test_interpolation_follows_compose_rules() -> None:
    env = {"A": "a", "E": ""}
    assert interpolate("${A}-${B:-b}-${E:-e}-${E-e}-$$x-$A", env) == "a-b-e--$x-a"
    assert interpolate("${X:-p://${A}:${Y:-y}@h}", env) == "p://a:y@h"
    assert interpolate("${A:+set}${B:+unset}", env) == "set"
    with pytest.raises(InterpolationError, match="required variable E is missing: set E"):
        interpolate("${E:?set E}", env)
    assert variables_in("${X:-p://${A}:${Y:-y}@h} $$NOT $Z") == {"X", "A", "Y", "Z"}


# =========================================================================== validation


def test_compose_file_matches_the_compose_specification(
    compose: dict[str, Any], compose_resolved: dict[str, Any]
) -> None:
    assert isinstance(compose, dict) and "services" in compose
    assert schema_problems(compose_resolved) == []
    broken = mutated(compose_resolved, lambda c: c["services"]["postgres"].update(healthchek={"test": ["CMD", "true"]}))
    assert_reports(schema_problems(broken), "services/postgres", "healthchek")
    broken = mutated(
        compose_resolved, lambda c: c["services"]["mlflow"]["depends_on"]["postgres"].update(condition="healthy")
    )
    assert_reports(schema_problems(broken), "services/mlflow/depends_on: {'postgres': {'condition': 'healthy'}}")


def compose_cli() -> list[str] | None:
    """`docker compose` (CLI plugin) or a standalone `docker-compose` v2; config needs no engine."""
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if not shutil.which(cmd[0]):
            continue
        probe = subprocess.run([*cmd, "version", "--short"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0 and probe.stdout.strip().lstrip("v").startswith("2"):
            return cmd
    return None


@pytest.mark.parametrize("profiles", [[], ["celery"], ["celery", "tools"]], ids=["default", "celery", "all"])
def test_docker_compose_config_accepts_the_file(profiles: list[str], tmp_path: Path) -> None:
    cmd = compose_cli()
    if cmd is None:
        pytest.skip("no Docker Compose v2 CLI (`docker compose` or `docker-compose`) installed; schema test covers it")
    flags = [f for p in profiles for f in ("--profile", p)]
    base = [*cmd, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE), *flags]
    ok = subprocess.run([*base, "config", "-q"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    listed = subprocess.run([*base, "config", "--services"], capture_output=True, text=True, timeout=60)
    assert ("airflow-worker" in listed.stdout.split()) == ("celery" in profiles), listed.stdout
    # The CLI rejects a broken file and an .env without the required secrets.
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text(COMPOSE_FILE.read_text().replace("    healthcheck:\n", "    healthchek:\n", 1))
    bad = subprocess.run(
        [*cmd, "--project-directory", str(ROOT), "-f", str(broken), "--env-file", str(ENV_EXAMPLE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "healthchek" in bad.stderr, bad.stderr
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    missing = subprocess.run(
        [*cmd, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), "--env-file", str(empty_env), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "POSTGRES_"))},
    )
    assert missing.returncode != 0 and "required variable" in missing.stderr, missing.stderr


# =========================================================================== consistency with the code


def test_every_variable_the_code_reads_reaches_the_airflow_containers(compose: dict[str, Any]) -> None:
    needed = env_vars_read_by_code()
    core = {
        "DRIFTGUARD_HOME",
        "DRIFTGUARD_MODELS_DIR",
        "DRIFTGUARD_REPORTS_DIR",
        "DRIFTGUARD_HISTORY_URL",
        "DRIFTGUARD_FEATURE_LOG_URL",
        "DRIFTGUARD_MLFLOW_ARTIFACTS",
        "MLFLOW_TRACKING_URI",
    }
    assert core <= needed, f"the scan misses settings.py variables: {core - needed}"
    assert env_coverage_problems(compose, needed) == []
    assert_reports(
        env_coverage_problems(compose, needed | {"DRIFTGUARD_NEW_KNOB"}), "DRIFTGUARD_NEW_KNOB is read by the code"
    )
    dropped = mutated(compose, lambda c: c["services"]["airflow-worker"].update(environment={"DUMB_INIT_SETSID": "0"}))
    assert_reports(env_coverage_problems(dropped, needed), "service airflow-worker: environment lacks DRIFTGUARD_HOME")


def test_empty_values_never_override_code_defaults(compose: dict[str, Any]) -> None:
    defaults = code_defaults()
    assert defaults.get("DRIFTGUARD_SMTP_FROM") == "driftguard@localhost"
    assert empty_override_problems(compose, defaults) == []
    emptied = mutated(
        compose, lambda c: c[COMMON]["environment"].update(DRIFTGUARD_SMTP_FROM="${DRIFTGUARD_SMTP_FROM:-}")
    )
    assert_reports(
        empty_override_problems(emptied, defaults),
        "DRIFTGUARD_SMTP_FROM reaches the containers empty when unset in .env",
    )


def test_env_scan_finds_every_access_style(tmp_path: Path) -> None:
    code = tmp_path / "mod.py"
    code.write_text(
        'import os\nENV_X: str = "DG_CONST"\na = os.environ.get("DG_GET")\nb = os.environ["DG_ITEM"]\n'
        'c = os.getenv("DG_GETENV")\nif "DG_IN" in os.environ: pass\nd = env.get("DG_ENV")\nname = "DRIFTGUARD_ANY"\n'
    )
    assert env_vars_read_by_code((tmp_path,)) >= {
        "DG_CONST",
        "DG_GET",
        "DG_ITEM",
        "DG_GETENV",
        "DG_IN",
        "DG_ENV",
        "DRIFTGUARD_ANY",
    }


def test_every_compose_variable_is_listed_in_env_example(compose: dict[str, Any]) -> None:
    text = ENV_EXAMPLE.read_text()
    assert undeclared_variable_problems(compose, text) == []
    broken = mutated(compose, lambda c: c["services"]["mlflow"]["environment"].update(EXTRA="${MLFLOW_EXTRA_OPTS:-}"))
    assert_reports(undeclared_variable_problems(broken, text), "${MLFLOW_EXTRA_OPTS} is used")


def test_example_env_resolves_every_required_variable(compose: dict[str, Any]) -> None:
    assert (
        resolved(compose)["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == "change-me-postgres-password"
    )
    with pytest.raises(InterpolationError, match="AIRFLOW_FERNET_KEY"):
        interpolate_tree(compose, {k: v for k, v in example_env().items() if k != "AIRFLOW_FERNET_KEY"})


def test_airflow_services_mount_dags_plugins_include_where_configured(compose_resolved: dict[str, Any]) -> None:
    services = airflow_services(compose_resolved)
    assert {
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
    } <= set(services)
    assert mount_problems(compose_resolved) == []
    api = volume_targets(services["airflow-apiserver"])
    assert api["/opt/airflow/plugins"] == "./plugins" and api["/opt/airflow/reports"] == "driftguard-reports"

    def drop_plugins(c: dict[str, Any]) -> None:
        svc = c["services"]["airflow-apiserver"]
        svc["volumes"] = [v for v in svc["volumes"] if not v.startswith("./plugins")]

    assert_reports(
        mount_problems(mutated(compose_resolved, drop_plugins)),
        "service airflow-apiserver: AIRFLOW__CORE__PLUGINS_FOLDER=/opt/airflow/plugins but ./plugins",
    )

    def reports_on_host(c: dict[str, Any]) -> None:
        svc = c["services"]["airflow-worker"]
        svc["volumes"] = [v.replace("driftguard-reports:", "./reports:") for v in svc["volumes"]]

    assert_reports(mount_problems(mutated(compose_resolved, reports_on_host)), "airflow-worker: DRIFTGUARD_REPORTS_DIR")


def test_published_host_ports_are_unique(compose_resolved: dict[str, Any]) -> None:
    assert port_problems(compose_resolved) == []
    ports = {p for s in compose_resolved["services"].values() for p, _ in published_ports(s)}
    assert ports == {"5433", "8080", "5000"}
    clash = mutated(compose_resolved, lambda c: c["services"]["mlflow"].update(ports=["8080:5000"]))
    assert_reports(port_problems(clash), "host port 8080/tcp is published by both")
    default_pg = mutated(compose_resolved, lambda c: c["services"]["postgres"].update(ports=["5432:5432"]))
    assert_reports(port_problems(default_pg), "publishes host port 5432")


def test_dependencies_exist_and_have_the_health_they_wait_for(compose: dict[str, Any]) -> None:
    assert dependency_problems(compose) == []
    for name in (
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
    ):
        assert depends_on(compose["services"][name])["airflow-init"]["condition"] == "service_completed_successfully"
    ghost = mutated(
        compose, lambda c: c["services"]["mlflow"]["depends_on"].update(minio={"condition": "service_started"})
    )
    assert_reports(dependency_problems(ghost), "mlflow depends on minio, which does not exist")
    sick = mutated(compose, lambda c: c["services"]["mlflow"].pop("healthcheck"))
    assert_reports(
        dependency_problems(sick),
        "waits for mlflow to be healthy but mlflow has no healthcheck",
        "service mlflow runs permanently",
    )
    looping = mutated(compose, lambda c: c["services"]["airflow-init"].update(restart="always"))
    assert_reports(dependency_problems(looping), "to complete but airflow-init restarts")


def test_dockerfile_base_image_matches_the_airflow_pin() -> None:
    dockerfile, req, pyproject = DOCKERFILE.read_text(), REQUIREMENTS.read_text(), PYPROJECT.read_text()
    assert dockerfile_pin_problems(dockerfile, req, pyproject) == []
    old = re.sub(r"(?m)^apache-airflow==\S+", "apache-airflow==3.3.1", req)
    assert_reports(dockerfile_pin_problems(dockerfile, old, pyproject), "requirements.txt pins apache-airflow==3.3.1")
    py312 = dockerfile.replace("-python3.11", "-python3.12")
    assert_reports(dockerfile_pin_problems(py312, req, pyproject), "python3.12")


def test_build_context_admits_what_the_image_needs_and_keeps_secrets_out() -> None:
    dockerfile, ignore = DOCKERFILE.read_text(), DOCKERIGNORE.read_text()
    assert build_context_problems(dockerfile, ignore) == []
    assert dockerignored("include/driftguard/__pycache__/x.pyc", ignore)
    assert_reports(build_context_problems(dockerfile, ignore.replace("!dags/", "")), "excludes dags/monitoring.py")
    assert_reports(build_context_problems(dockerfile, ignore + "!.env\n"), "lets .env into the build context")
    assert_reports(build_context_problems(dockerfile + "COPY missing.txt /x\n", ignore), "COPY source missing.txt")


def test_init_script_creates_every_database_the_urls_use(compose_resolved: dict[str, Any]) -> None:
    sql = INIT_SQL.read_text()
    assert databases_created(sql) == {"airflow", "mlflow", "driftguard", "feature_log"}
    assert set(databases_referenced(compose_resolved)) == {"airflow", "mlflow", "driftguard", "feature_log"}
    assert database_problems(compose_resolved, sql) == []
    assert_reports(
        database_problems(compose_resolved, sql.replace("'mlflow', ", "")), "service mlflow uses database 'mlflow'"
    )


def test_no_literal_secret_in_the_compose_file(compose: dict[str, Any]) -> None:
    assert secret_problems(compose) == []
    assert env_example_secret_problems(ENV_EXAMPLE.read_text()) == []
    literal = mutated(compose, lambda c: c["services"]["postgres"]["environment"].update(POSTGRES_PASSWORD="hunter2"))
    assert_reports(secret_problems(literal), "postgres: POSTGRES_PASSWORD must be ${VAR}")
    defaulted = mutated(
        compose, lambda c: c[COMMON]["environment"].update(AIRFLOW__API_AUTH__JWT_SECRET="${AIRFLOW_JWT_SECRET:-dev}")
    )
    assert_reports(secret_problems(defaulted), "AIRFLOW__API_AUTH__JWT_SECRET must be ${VAR}")
    in_url = mutated(
        compose,
        lambda c: c["services"]["mlflow"]["environment"].update(
            MLFLOW_BACKEND_STORE_URI="${MLFLOW_DB:-postgresql://u:${POSTGRES_USER}x@postgres/mlflow}"
        ),
    )
    assert_reports(secret_problems(in_url), "literal password in URL")
    assert_reports(
        env_example_secret_problems("POSTGRES_PASSWORD=s3cret\n"), "POSTGRES_PASSWORD must be empty or a change-me"
    )


def test_celery_services_run_only_under_the_celery_profile(compose: dict[str, Any]) -> None:
    assert profile_problems(compose) == []
    assert compose["services"]["airflow-worker"]["command"] == "celery worker"
    always = mutated(compose, lambda c: c["services"]["airflow-worker"].pop("profiles"))
    assert_reports(profile_problems(always), "airflow-worker must run only under the celery profile")
    hard_dep = mutated(
        compose, lambda c: c["services"]["airflow-scheduler"]["depends_on"]["redis"].update(required=True)
    )
    assert_reports(profile_problems(hard_dep), "default service airflow-scheduler requires redis")
    celery_default = mutated(
        compose, lambda c: c[COMMON]["environment"].update(AIRFLOW__CORE__EXECUTOR="CeleryExecutor")
    )
    assert_reports(profile_problems(celery_default), "default executor must be LocalExecutor")


def test_celery_profile_switches_the_executor_through_env(compose: dict[str, Any]) -> None:
    env = {**example_env(), "AIRFLOW_EXECUTOR": "CeleryExecutor"}
    worker = env_of(interpolate_tree(compose, env)["services"]["airflow-worker"])
    assert worker["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert worker["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    assert worker["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://driftguard:")


def test_mlflow_accepts_the_host_airflow_uses(compose_resolved: dict[str, Any]) -> None:
    assert mlflow_host_problems(compose_resolved) == []

    def narrow(c: dict[str, Any]) -> None:
        args = c["services"]["mlflow"]["command"]
        args[args.index("--allowed-hosts") + 1] = "localhost,localhost:*"

    assert_reports(
        mlflow_host_problems(mutated(compose_resolved, narrow)), "'mlflow:5000' is not in mlflow --allowed-hosts"
    )


# =========================================================================== docker/airflow_init.py


def _load_init_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("airflow_init", INIT_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def init_script() -> ModuleType:
    return _load_init_script()


GOOD_SECRETS = {
    "AIRFLOW__API__SECRET_KEY": "a" * 32,
    "AIRFLOW__API_AUTH__JWT_SECRET": "b" * 32,
    "AIRFLOW__CORE__FERNET_KEY": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
    "AIRFLOW_ADMIN_PASSWORD": "c" * 20,
}


def test_init_refuses_placeholder_short_and_invalid_secrets(init_script: ModuleType, compose: dict[str, Any]) -> None:
    assert init_script.secret_problems(GOOD_SECRETS) == []
    container_env = {**env_of(resolved(compose)["services"]["airflow-init"])}
    problems = init_script.secret_problems(container_env)
    assert len(problems) == 4, problems
    assert "AIRFLOW__CORE__FERNET_KEY (set AIRFLOW_FERNET_KEY in .env) still holds the placeholder" in "\n".join(
        problems
    )
    short = init_script.secret_problems({**GOOD_SECRETS, "AIRFLOW__API_AUTH__JWT_SECRET": "short"})
    assert short == [
        "AIRFLOW__API_AUTH__JWT_SECRET (set AIRFLOW_JWT_SECRET in .env) is 5 characters long; use at least 16"
    ]
    bad_fernet = init_script.secret_problems({**GOOD_SECRETS, "AIRFLOW__CORE__FERNET_KEY": "x" * 44})
    assert len(bad_fernet) == 1 and "decodes to 33 bytes, a Fernet key has 32" in bad_fernet[0]


def test_init_requires_a_broker_for_celery_and_an_admin_user(init_script: ModuleType) -> None:
    assert init_script.executor_problems({"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}) == []
    assert init_script.executor_problems({"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}) == [
        "AIRFLOW__CORE__EXECUTOR uses CeleryExecutor but AIRFLOW__CELERY__BROKER_URL is empty"
    ]
    assert init_script.admin_username({"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "ops:viewer, root:admin"}) == "root"
    with pytest.raises(ValueError, match="no user with role admin"):
        init_script.admin_username({"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "ops:viewer"})


def test_init_broker_wait_names_the_profile_when_redis_is_absent(init_script: ModuleType) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    message = init_script.wait_for_broker(f"redis://127.0.0.1:{port}/0", timeout_s=0.1)
    assert message and "COMPOSE_PROFILES=celery" in message and f"127.0.0.1:{port}" in message
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert init_script.wait_for_broker(f"redis://127.0.0.1:{server.getsockname()[1]}/0", timeout_s=5) is None


def test_init_password_file_keeps_other_users_and_rotates(init_script: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "auth" / "passwords.json"
    assert init_script.write_passwords(path, "admin", "first-password") is True
    assert init_script.write_passwords(path, "admin", "first-password") is False
    path.write_text(json.dumps({"admin": "first-password", "viewer": "generated"}))
    assert init_script.write_passwords(path, "admin", "second-password") is True
    assert json.loads(path.read_text()) == {"admin": "second-password", "viewer": "generated"}
    path.write_text("{broken")
    with pytest.raises(ValueError, match=r"passwords\.json is not valid JSON"):
        init_script.write_passwords(path, "admin", "x")


def test_init_reports_unwritable_volumes(init_script: ModuleType, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    ok = init_script.unwritable_dirs(
        {"DRIFTGUARD_HOME": str(tmp_path / "home"), "DRIFTGUARD_REPORTS_DIR": str(tmp_path / "r")}
    )
    assert ok == []
    problems = init_script.unwritable_dirs({"DRIFTGUARD_REPORTS_DIR": str(blocker / "reports")})
    assert len(problems) == 1 and "reports is not writable" in problems[0] and "AIRFLOW_UID" in problems[0]


def _airflow_env(tmp_path: Path, compose: dict[str, Any]) -> dict[str, str]:
    """The airflow-init container's environment, re-pointed at a SQLite metadata DB in tmp_path."""
    env = env_of(resolved(compose)["services"]["airflow-init"])
    env.update(GOOD_SECRETS)
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "auth" / "passwords.json"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(tmp_path / "plugins"),
            "DRIFTGUARD_HOME": str(tmp_path / "home"),
            "DRIFTGUARD_REPORTS_DIR": str(tmp_path / "reports"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    env.pop("PYTHONPATH", None)
    return env


@pytest.mark.slow
def test_init_script_migrates_and_sets_the_login_airflow_uses(tmp_path: Path, compose: dict[str, Any]) -> None:
    """Real run: airflow db migrate on SQLite, then Airflow's own SimpleAuthManager keeps our password."""
    env = _airflow_env(tmp_path, compose)
    bad = subprocess.run(
        [sys.executable, str(INIT_SCRIPT)],
        env={**env, "AIRFLOW_ADMIN_PASSWORD": "change-me-admin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        bad.returncode == 1 and "AIRFLOW_ADMIN_PASSWORD (set AIRFLOW_ADMIN_PASSWORD in .env) still holds" in bad.stderr
    )
    assert not (tmp_path / "airflow.db").exists()
    run = subprocess.run([sys.executable, str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "admin user 'admin': password written" in run.stdout
    assert (tmp_path / "airflow.db").stat().st_size > 0
    probe = (
        "import json\n"
        "from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager\n"
        "m = SimpleAuthManager(); m.init(); print(json.dumps(m.get_passwords()))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"admin": GOOD_SECRETS["AIRFLOW_ADMIN_PASSWORD"]}


# =========================================================================== real services


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, host: str | None = None) -> int:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and the workers it forked (its own session, started by this test)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.mark.slow
def test_mlflow_server_with_the_compose_arguments_serves_airflow_host(
    tmp_path: Path, compose_resolved: dict[str, Any]
) -> None:
    """Start `mlflow server` with the compose file's own arguments (SQLite backend, local port):
    the Host header `mlflow:5000` that Airflow containers send is accepted, a foreign one is not."""
    svc = compose_resolved["services"]["mlflow"]
    args = command_of(svc)
    args[args.index("--artifacts-destination") + 1] = str(tmp_path / "artifacts")
    port = _free_port()
    args[args.index("--port") + 1] = str(port)
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--workers") + 1] = "1"
    assert command_of(svc, "entrypoint")[-2:] == ["mlflow", "server"]
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    log = (tmp_path / "mlflow.log").open("w")
    proc = subprocess.Popen(
        [str(mlflow_bin), "server", *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(400):  # about 6 s when idle; minutes on a loaded 2-core machine
            if proc.poll() is not None:
                break
            try:
                if _get(f"{base}/health") == 200:
                    break
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        assert proc.poll() is None, (tmp_path / "mlflow.log").read_text()[-3000:]
        api = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
        assert _get(api, host="mlflow:5000") == 200
        assert _get(api, host="evil.example.com") == 403
    finally:
        _stop_group(proc)
        log.close()


@pytest.fixture
def psql() -> str:
    path = shutil.which("psql")
    if path is None:
        pytest.skip("psql is not installed: cannot run docker/postgres/10-create-databases.sql")
    return path


@pytest.mark.postgres
def test_postgres_init_script_creates_the_databases_idempotently(pg_server: str, psql: str) -> None:
    """Run the init SQL through psql on the real server, with prefixed names so nothing real is touched."""
    import sqlalchemy as sa

    prefix = f"dgt_{uuid.uuid4().hex[:8]}_"
    names = sorted(databases_created(INIT_SQL.read_text()))
    sql = INIT_SQL.read_text()
    for n in names:
        sql = sql.replace(f"'{n}'", f"'{prefix}{n}'")
    dsn = pg_server.replace("+psycopg2", "").replace("+psycopg", "")
    engine = sa.create_engine(pg_server, isolation_level="AUTOCOMMIT")
    try:
        for _ in range(2):  # the second run must be a no-op, not an error
            run = subprocess.run(
                [psql, "-v", "ON_ERROR_STOP=1", "-X", "-q", dsn], input=sql, capture_output=True, text=True, timeout=60
            )
            assert run.returncode == 0, run.stderr
        with engine.connect() as conn:
            found = conn.execute(sa.text("select datname from pg_database where datname like :p"), {"p": prefix + "%"})
            assert sorted(r[0] for r in found) == [prefix + n for n in names]
    finally:
        with engine.connect() as conn:
            for n in names:
                conn.execute(sa.text(f'drop database if exists "{prefix}{n}"'))
        engine.dispose()
