"""From a contract to a live connection: the URL (explicit, ``source.url`` with ``${ENV}``,
or the Airflow connection ``source.conn_id``, imported lazily so the library runs without
Airflow) and a NullPool engine. PostgreSQL sessions run in UTC; a missing SQLite file is an
error instead of a new empty database; every message masks the password."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from driftguard.contract import ContractError, ModelContract, interpolate_env
from driftguard.sources.errors import SourceConnectionError, SourceError


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, safe for logs and error messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparseable: mask anything that looks like user:password@
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def source_url(contract: ModelContract, url: str | None = None) -> str:
    """The SQLAlchemy URL of the contract's feature log.

    An explicit ``url`` wins (tests, CLI ``--url``); else ``source.url`` with ``${ENV}``
    resolved (an unset ``DRIFTGUARD_FEATURE_LOG_URL`` means the settings default); else the
    Airflow connection ``source.conn_id`` (imported lazily so the library stays importable
    without Airflow)."""
    if url:
        return url
    src = contract.source
    if src.url is not None:
        try:
            return interpolate_env(_settings_defaults(src.url), what="source.url")
        except ContractError as exc:
            raise SourceConnectionError(
                f"cannot resolve source.url: {exc.problems[0].message}",
                model=contract.name,
                table=table_label(contract),
            ) from None
    from airflow.sdk import BaseHook  # only when the contract uses an Airflow connection

    try:
        uri = BaseHook.get_connection(src.conn_id).get_uri()
    except Exception as exc:
        raise SourceConnectionError(
            f"cannot read Airflow connection {src.conn_id!r}: {exc}", model=contract.name, table=table_label(contract)
        ) from None
    # Airflow names the scheme after conn_type; SQLAlchemy 2 only knows "postgresql".
    return re.sub(r"^postgres(?=://)", "postgresql", uri)


def _settings_defaults(url: str) -> str:
    """`${DRIFTGUARD_FEATURE_LOG_URL}` falls back to its settings default (SQLite in DRIFTGUARD_HOME)
    when unset, as everywhere else in Driftguard; other variables must be set."""
    name = "DRIFTGUARD_FEATURE_LOG_URL"
    if f"${{{name}}}" in url and name not in os.environ:
        from driftguard.settings import get_settings

        return url.replace(f"${{{name}}}", get_settings().feature_log_url)
    return url


def _set_utc(dbapi_conn: Any, _record: Any) -> None:
    """Naive PostgreSQL timestamps mean UTC, whatever the server's TimeZone setting."""
    cur = dbapi_conn.cursor()
    cur.execute("SET TIME ZONE 'UTC'")
    cur.close()
    dbapi_conn.commit()  # a rolled-back SET is undone


def is_sqlite_file(url: sa.engine.URL) -> bool:
    """A plain database file (not :memory:, not a URI filename)."""
    db = url.database
    return bool(db) and db != ":memory:" and not db.startswith("file:") and not url.query.get("uri")


def _check_sqlite_file(url: sa.engine.URL, contract: ModelContract) -> None:
    """SQLite creates a missing file on connect; reading must not, and should say why it failed."""
    db = url.database
    if is_sqlite_file(url) and not Path(db).exists():
        raise SourceConnectionError(
            f"cannot connect to {mask_url(str(url))}: database file {db} does not exist",
            model=contract.name,
            table=table_label(contract),
        )


@contextmanager
def connect(contract: ModelContract, url: str | None) -> Iterator[sa.Connection]:
    resolved = source_url(contract, url)
    try:
        parsed = sa.engine.make_url(resolved)
        if parsed.get_backend_name() == "sqlite":
            _check_sqlite_file(parsed, contract)
        engine = sa.create_engine(parsed, poolclass=NullPool)
    except SourceError:
        raise
    except Exception as exc:
        raise SourceConnectionError(
            f"invalid database URL {mask_url(resolved)}: {exc}", model=contract.name, table=table_label(contract)
        ) from None
    if engine.dialect.name == "postgresql":
        sa.event.listen(engine, "connect", _set_utc)
    try:
        try:
            conn = engine.connect()
        except Exception as exc:
            raise SourceConnectionError(
                f"cannot connect to {mask_url(resolved)}: {first_line(exc)}",
                model=contract.name,
                table=table_label(contract),
            ) from None
        with conn:
            yield conn
    finally:
        engine.dispose()


def first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def table_label(contract: ModelContract) -> str:
    return contract.source.table or "<source.query>"
