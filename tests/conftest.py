"""Shared fixtures: real SQLite files and the real PostgreSQL server.

PostgreSQL tests use DRIFTGUARD_TEST_PG_URL (default: the local server on 127.0.0.1:5432).
Locally, an absent server skips them with a loud reason; with DRIFTGUARD_REQUIRE_POSTGRES=1
(set by .ci/run) an absent server fails the run instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

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
