"""Shared fixtures: real SQLite files, the real PostgreSQL server, an isolated Airflow.

PostgreSQL tests use DRIFTGUARD_TEST_PG_URL (default: the local server on 127.0.0.1:5432).
Locally, an absent server skips them with a loud reason; with DRIFTGUARD_REQUIRE_POSTGRES=1
(set by .ci/run) an absent server fails the run instead.

Airflow reads its configuration once, when first imported, so the block below sets the test
environment at conftest import time (pytest imports conftest before any test module):
AIRFLOW_HOME and DRIFTGUARD_HOME in a session temp dir, the repo's dags/ folder, no examples,
a SQLite metadata DB (migrated once by the `airflow_db` fixture in tests/airflow_support.py).
"""

from __future__ import annotations

# --------------------------------------------------------------------------- Airflow environment (keep first)
import atexit
import os
import shutil
import tempfile
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="driftguard-tests-"))
atexit.register(shutil.rmtree, _SESSION_DIR, ignore_errors=True)


def _isolate_environment() -> None:
    """Point Airflow and Driftguard at throwaway stores; never at a developer's .driftguard/."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        "_driftguard_airflow_env", Path(__file__).resolve().parents[1] / "scripts" / "airflow_env.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    home = _SESSION_DIR / "driftguard"
    home.mkdir()
    for key in (
        "DRIFTGUARD_FEATURE_LOG_URL",
        "DRIFTGUARD_HISTORY_URL",
        "DRIFTGUARD_MODELS_DIR",
        "DRIFTGUARD_REPORTS_DIR",
        "DRIFTGUARD_MLFLOW_ARTIFACTS",
        "DRIFTGUARD_SCHEDULE_END",
        "MLFLOW_TRACKING_URI",
    ):
        os.environ.pop(key, None)
    env = module.airflow_env(home, port=8793)
    # Task failures are retried after this in tests (default 5 minutes would stall dag.test()).
    env["DRIFTGUARD_RETRY_DELAY"] = "1s"
    os.environ.update(env)


_isolate_environment()
# --------------------------------------------------------------------------- end of Airflow environment

import sys  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
from mlflow_support import restored_mlflow_globals  # noqa: E402

pytest_plugins = ["airflow_support"]  # tests/ is on sys.path (rootdir conftest, no __init__.py)

REPO_ROOT = Path(__file__).resolve().parents[1]
# MLflow's defaults when no tracking URI is set: a store in the working directory (the repository).
_STRAY_STORES = ("mlflow.db", "mlflow.db.init-lock", "mlruns", "mlartifacts")


# Test tiers (docs/testing.md): `make test` deselects these markers; `.ci/run` runs everything.
# Files that start Airflow's own scheduler or api-server processes.
_TOPOLOGY_FILES = {"test_topology.py", "test_approval.py", "test_ui_browser.py"}

# The files that take a minute or more, longest first (measured, docs/testing.md "How long"). `--dist
# loadfile` hands whole files to the workers in collection order; started last, one of these
# would leave the other worker idle at the end of the run.
LONG_FILES = (
    "tests/adversarial/test_backtest_determinism.py",
    "tests/integration/test_topology.py",
    "tests/integration/test_backtest.py",
    "tests/unit/test_benchmarks_smoke.py",
    "tests/integration/test_retrain_flow.py",
    "tests/adversarial/test_retrain_faults.py",
    "tests/integration/test_demo_replay.py",
    "tests/integration/test_approval.py",
    "tests/integration/test_loop_dags.py",
    "tests/integration/test_ui_browser.py",
    "tests/integration/test_dag_runs.py",
    "tests/integration/test_shadow_flow.py",
    "tests/integration/test_monitor_detection.py",
    "tests/integration/test_compose.py",
    "tests/unit/test_training.py",
    "tests/unit/test_estimation.py",
    "tests/adversarial/test_parallel_models.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """Keep the collection order (LONG_FILES first) for xdist's file scheduling: by default it
    reorders files by their number of tests, which says nothing about how long they take. A
    renamed or removed long file would silently lose its place: that stops the run instead."""
    missing = [name for name in LONG_FILES if not (config.rootpath / name).is_file()]
    if missing:
        raise pytest.UsageError(f"tests/conftest.py LONG_FILES names files that do not exist: {missing}")
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def long_files_first(items: list[pytest.Item], rootdir: Path) -> None:
    """Sort the items of LONG_FILES to the front, in that order; the rest keep collection order."""
    rank = {name: i for i, name in enumerate(LONG_FILES)}

    def key(item: pytest.Item) -> int:
        path = Path(str(item.path))
        name = path.relative_to(rootdir).as_posix() if path.is_relative_to(rootdir) else str(path)
        return rank.get(name, len(rank))

    items.sort(key=key)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put LONG_FILES first, and mark the CI-only tiers from what a test needs, so no test can be
    filed in the wrong one: the PostgreSQL server (any test that uses `pg_server`, including
    `db_url`'s postgres case), the adversarial folder, and the files that start Airflow's own processes."""
    long_files_first(items, config.rootpath)
    for item in items:
        path = Path(str(item.path))
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("db_url") == "postgres"
        if on_postgres or "pg_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
        if "adversarial" in path.parts:
            item.add_marker(pytest.mark.adversarial)
        if path.name in _TOPOLOGY_FILES:
            item.add_marker(pytest.mark.topology)


@pytest.fixture(autouse=True)
def isolated_mlflow_globals() -> Iterator[None]:
    """Every test starts and ends with MLflow's process-wide state as the session has it."""
    with restored_mlflow_globals():
        yield


_previous_test = ["(none: the first test of this worker)"]


def _uri_in(places: set[Path]) -> str | None:
    """MLflow's tracking URI as set (global or MLFLOW_TRACKING_URI), when it names a store in one of
    `places`: how `mlflow.set_tracking_uri(mlflow.get_tracking_uri())` pins the default."""
    uris = [os.environ.get("MLFLOW_TRACKING_URI")]
    if "mlflow" in sys.modules:
        from mlflow.tracking._tracking_service import utils as tracking_utils

        uris.append(tracking_utils._tracking_uri)
    for uri in filter(None, uris):
        path = Path(str(uri).split(":///", 1)[-1]) if str(uri).startswith(("sqlite:", "file:")) else None
        if path is not None and path.resolve().parent in {p.resolve() for p in places}:
            return str(uri)
    return None


@pytest.fixture(autouse=True)
def no_store_in_working_directory(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test that writes MLflow's default store into the repository or the working directory
    (it means a code path ran MLflow without a tracking URI), and the test that starts with MLflow's
    URI pinned there (a module fixture of the test before restored a *resolved* default URI)."""
    places = {REPO_ROOT, Path.cwd()}
    pinned = _uri_in(places)
    if pinned:
        pytest.fail(
            f"MLflow's tracking URI is {pinned} (the working directory's store) before this test: "
            f"left by {_previous_test[0]} or its module fixtures",
            pytrace=False,
        )
    before = {p / name for p in places for name in _STRAY_STORES if (p / name).exists()}
    _previous_test[0] = request.node.nodeid
    yield
    stray = {p / name for p in places for name in _STRAY_STORES if (p / name).exists()} - before
    if stray:
        pytest.fail(f"{request.node.nodeid} wrote MLflow's default store {sorted(map(str, stray))}", pytrace=False)


PG_URL = os.environ.get("DRIFTGUARD_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def _pg_reason() -> str | None:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:  # any failure means "no server"
        return f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


@pytest.fixture(scope="session")
def pg_server() -> str:
    reason = _pg_reason()
    if reason:
        if os.environ.get("DRIFTGUARD_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (required: DRIFTGUARD_REQUIRE_POSTGRES=1)", pytrace=False)
        pytest.skip(f"SKIPPED POSTGRES TESTS: {reason}")
    return PG_URL


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh PostgreSQL schema per test, dropped afterwards; the URL selects it via search_path."""
    import sqlalchemy as sa

    schema = f"dg_test_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(pg_server)
    with engine.begin() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    sep = "&" if "?" in pg_server else "?"
    yield f"{pg_server}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'drop schema "{schema}" cascade'))
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'feature_log.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Run a test on both database kinds Driftguard supports."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")
