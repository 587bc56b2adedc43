"""What a read returned (WindowStats), the exact facts the database counted for a sampled
window (WindowFacts) and non-numbers found in numeric columns (TypeProblem): plain values, so
they travel through XCom, JSON and the history store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class WindowStats:
    """What was read, for logs, XComs and the history store."""

    model: str
    start: datetime
    end: datetime
    rows: int
    min_ts: datetime | None
    max_ts: datetime | None
    chunks: int
    schema_problems: tuple[str, ...] = field(default_factory=tuple)
    facts: WindowFacts | None = None  # exact, from the database; set when a sample was asked for
    read_rows: int | None = None  # rows actually read: fewer than `rows` when the window was sampled
    type_problems: tuple[TypeProblem, ...] = field(default_factory=tuple)  # text in numeric columns

    @property
    def sampled(self) -> bool:
        return self.read_rows is not None and self.read_rows < self.rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "rows": self.rows,
            "min_ts": _iso(self.min_ts),
            "max_ts": _iso(self.max_ts),
            "chunks": self.chunks,
            "schema_problems": list(self.schema_problems),
            "read_rows": self.rows if self.read_rows is None else self.read_rows,
            "sampled": self.sampled,
            "facts": None if self.facts is None else self.facts.to_dict(),
            "type_problems": [p.to_dict() for p in self.type_problems],
        }


@dataclass(frozen=True)
class TypeProblem:
    """Values of a numeric column (feature or logged prediction) that are not numbers, such as
    text in a SQLite REAL column or a query's text column. In monitoring they are read as missing
    (NaN) and this record becomes the column's failed `types` check; `rows` of `read_rows` rows
    read (of the sample, when the window was sampled). Text that spells a number ('1.5', 'inf',
    '1e999') is that number; 'NaN' text is not a number and counts here."""

    column: str
    what: str  # "numeric feature", "prediction column"
    rows: int
    read_rows: int
    examples: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "what": self.what,
            "rows": self.rows,
            "read_rows": self.read_rows,
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class WindowFacts:
    """Exact facts of a whole window, answered by the database: no rows leave it."""

    rows: int
    min_ts: datetime | None
    max_ts: datetime | None
    nulls: dict[str, int]  # NULLs per read column
    duplicate_rows: int  # rows whose id occurs more than once (all of them, as GX counts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "min_ts": _iso(self.min_ts),
            "max_ts": _iso(self.max_ts),
            "nulls": dict(self.nulls),
            "duplicate_rows": self.duplicate_rows,
        }


def _iso(d: datetime | None) -> str | None:
    return None if d is None else d.isoformat()
