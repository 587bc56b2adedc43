"""What can go wrong reading a feature log, as exceptions whose message names the model,
table, column and interval: DAG retry rules (dag_defaults) tell a connection failure, which is
retried, from a data problem, which is not."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from driftguard.contract import ModelContract


class SourceError(Exception):
    """A feature log cannot be read as the contract describes. The message names model, table,
    column and, once read_window or read_labels pass it on, the interval being read."""

    def __init__(
        self,
        detail: str,
        *,
        model: str,
        table: str | None = None,
        column: str | None = None,
        interval: tuple[datetime, datetime] | None = None,
    ):
        self.model = model
        self.table = table
        self.column = column
        self.detail = detail
        self.interval = interval
        where = [f"model {model}"]
        if table:
            where.append(f"table {table}")
        if column:
            where.append(f"column {column}")
        message = f"{', '.join(where)}: {detail}"
        if interval is not None:
            span = f"[{interval[0].isoformat()}, {interval[1].isoformat()})"
            if span not in detail:  # EmptyWindowError's detail already names it
                message += f" (reading the interval {span})"
        super().__init__(message)

    def in_interval(self, start: datetime, end: datetime) -> SourceError:
        """The same error, its message naming the interval that was being read."""
        return type(self)(self.detail, model=self.model, table=self.table, column=self.column, interval=(start, end))


def names_interval(read: Callable[..., Any]) -> Callable[..., Any]:
    """A reader of (contract, start, end, ...) whose SourceErrors name that interval too."""

    @functools.wraps(read)
    def reader(contract: ModelContract, start: datetime, end: datetime, *args: Any, **kwargs: Any) -> Any:
        try:
            return read(contract, start, end, *args, **kwargs)
        except SourceError as exc:
            aware = all(isinstance(d, datetime) and d.utcoffset() is not None for d in (start, end))
            if exc.interval is not None or not aware:
                raise
            raise exc.in_interval(start.astimezone(UTC), end.astimezone(UTC)) from None

    return reader


class SourceConnectionError(SourceError):
    """The database cannot be reached (the URL in the message has its password masked)."""


class MissingTableError(SourceError):
    """The feature-log or label table does not exist."""


class MissingColumnError(SourceError):
    """A column named by the contract is not in the table or query."""


class ColumnTypeError(SourceError):
    """A column's SQL type or its values do not fit the contract's kind."""


class EmptyWindowError(SourceError):
    """The interval holds no rows (or no matured labels)."""
