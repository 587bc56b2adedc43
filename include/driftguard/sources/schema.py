"""The feature log's shape as the database reports it: a reflected table or the wrapped
``source.query`` (Relation), the role each contract column plays (Col) and whether its SQL type
can hold that role. Identifiers stay SQLAlchemy constructs, quoted by the dialect, never text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from driftguard.contract import LabelSource, ModelContract, Task
from driftguard.sources.engine import first_line, table_label
from driftguard.sources.errors import ColumnTypeError, MissingColumnError, MissingTableError, SourceError


def _split(name: str) -> tuple[str | None, str]:
    schema, _, table = name.rpartition(".")
    return schema or None, table


@dataclass(frozen=True)
class Relation:
    """The feature log (a table or the wrapped query) with its columns and reflected SQL types."""

    label: str
    columns: dict[str, sa.types.TypeEngine[Any] | None]
    selectable: sa.FromClause
    text: frozenset[str] = frozenset()  # a query's columns PostgreSQL reports as text (its other types are unknown)


def reflect_table(conn: sa.Connection, contract: ModelContract, name: str, what: str) -> dict[str, Any]:
    schema, table = _split(name)
    insp = sa.inspect(conn)
    if not insp.has_table(table, schema=schema):
        raise MissingTableError(
            f"{what} table not found in {conn.engine.url.render_as_string(hide_password=True)}",
            model=contract.name,
            table=name,
        )
    return {c["name"]: c["type"] for c in insp.get_columns(table, schema=schema)}


def table_relation(conn: sa.Connection, contract: ModelContract, name: str, what: str) -> Relation:
    """A reflected table as a lightweight `sa.table` (identifiers quoted by the dialect)."""
    cols = reflect_table(conn, contract, name, what)
    schema, table = _split(name)
    return Relation(name, cols, sa.table(table, *(sa.column(c) for c in cols), schema=schema))


def log_relation(conn: sa.Connection, contract: ModelContract) -> Relation:
    src = contract.source
    if src.table is not None:
        return table_relation(conn, contract, src.table, "feature-log")
    probe = sa.text(src.query).columns().subquery("dg_probe")
    try:
        probed = conn.execute(sa.select(sa.literal_column("*")).select_from(probe).limit(0))
        keys = list(probed.keys())
        types = _probed_types(probed, keys, conn.dialect.name)
        text = _probed_text(probed, keys, conn.dialect.name)
    except sa.exc.DBAPIError as exc:
        conn.rollback()
        raise SourceError(
            f"source.query failed: {first_line(exc)}", model=contract.name, table="<source.query>"
        ) from None
    sub = sa.text(src.query).columns(*(sa.column(k) for k in keys)).subquery("dg_source")
    return Relation("<source.query>", types, sub, text)


_PG_INTEGER_OIDS = frozenset({20, 21, 23})  # int8, int2, int4
_PG_TEXT_OIDS = frozenset({25, 1042, 1043})  # text, char(n), varchar(n)


def _probed_text(probed: sa.CursorResult[Any], keys: list[str], dialect: str) -> frozenset[str]:
    """A query's columns PostgreSQL reports as text: a text timestamp is compared as timestamptz."""
    if dialect != "postgresql" or probed.cursor is None or not probed.cursor.description:
        return frozenset()
    described = zip(keys, probed.cursor.description, strict=False)
    return frozenset(name for name, d in described if d[1] in _PG_TEXT_OIDS)


def _probed_types(probed: sa.CursorResult[Any], keys: list[str], dialect: str) -> dict[str, Any]:
    """The SQL types a query's columns are known to have: PostgreSQL reports each column's type
    (only integers matter here: they choose the sample's hash); SQLite's are per value."""
    types: dict[str, Any] = dict.fromkeys(keys)
    if dialect == "postgresql" and probed.cursor is not None and probed.cursor.description:
        for name, described in zip(keys, probed.cursor.description, strict=False):
            if described[1] in _PG_INTEGER_OIDS:
                types[name] = sa.BigInteger()
    return types


_NUMERIC_SQL = (sa.Integer, sa.Numeric, sa.Float, sa.Boolean, sa.String, sa.types.NullType)
_TIME_SQL = (sa.DateTime, sa.Date, sa.String, sa.types.NullType)
_CATEGORY_SQL = (sa.String, sa.Integer, sa.Numeric, sa.Float, sa.Boolean, sa.Enum, sa.types.NullType)


@dataclass(frozen=True)
class Col:
    name: str
    role: str  # timestamp | id | numeric | categorical | label_binary | label_regression
    what: str  # for messages: "numeric feature", "prediction column", ...


def log_columns(contract: ModelContract) -> list[Col]:
    src = contract.source
    cols = [Col(src.id_column, "id", "id column"), Col(src.timestamp_column, "timestamp", "timestamp column")]
    for f in contract.features:
        cols.append(Col(f.name, f.kind.value, f"{f.kind.value} feature"))
    if src.prediction_column:
        cols.append(Col(src.prediction_column, "numeric", "prediction column"))
    return cols


def label_col(contract: ModelContract) -> Col:
    labels = require_labels(contract)
    if contract.task is Task.binary_classification:
        return Col(labels.column, "label_binary", "binary label column")
    return Col(labels.column, "label_regression", "regression label column")


def sql_type_problem(col: Col, sqltype: sa.types.TypeEngine[Any] | None) -> str | None:
    if sqltype is None:  # a query's columns have no reflected type; values are checked after reading
        return None
    allowed: tuple[type, ...] = {
        "timestamp": _TIME_SQL,
        "categorical": _CATEGORY_SQL,
        "id": (sa.types.TypeEngine,),
    }.get(col.role, _NUMERIC_SQL)
    if isinstance(sqltype, allowed):
        return None
    return f"{col.what} {col.name!r} has SQL type {sqltype}, which cannot hold a {col.role.replace('_', ' ')} value"


def check_columns(
    relation: Relation, cols: list[Col], contract: ModelContract, strict: bool
) -> tuple[list[Col], list[str], set[str]]:
    """Columns to read, problems (lenient mode) and columns to keep as read (bad SQL type)."""
    missing = [c for c in cols if c.name not in relation.columns]
    required_missing = [c for c in missing if c.role in ("timestamp", "id") or c.role.startswith("label")]
    if missing and (strict or required_missing):
        first = (required_missing or missing)[0]
        names = ", ".join(f"{c.what} {c.name!r}" for c in missing)
        raise MissingColumnError(
            f"not found: {names} (columns present: {sorted(relation.columns)})",
            model=contract.name,
            table=relation.label,
            column=first.name,
        )
    problems = [f"column {c.name!r}: {c.what} not found in {relation.label}" for c in missing]
    raw: set[str] = set()
    for c in cols:
        if c in missing:
            continue
        problem = sql_type_problem(c, relation.columns[c.name])
        if problem is None:
            continue
        if strict or c.role in ("timestamp", "id") or c.role.startswith("label"):
            raise ColumnTypeError(problem, model=contract.name, table=relation.label, column=c.name)
        problems.append(f"column {c.name!r}: {problem}; kept as read")
        raw.add(c.name)
    return [c for c in cols if c not in missing], problems, raw


def require_labels(contract: ModelContract) -> LabelSource:
    if contract.source.labels is None:
        raise SourceError("the contract has no source.labels section", model=contract.name, table=table_label(contract))
    return contract.source.labels
