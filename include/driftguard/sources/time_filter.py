"""``start <= timestamp < end`` in SQL, exact in UTC. PostgreSQL compares timestamptz (text
cast to it); SQLite stores text whose order is its local time, in two layouts (' ' or 'T') and
with any offset, so the window is cut into ranges of stored text that keep the index usable and
judge only the rows near the window's ends by their UTC time (_sqlite_pieces)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from driftguard.contract import ModelContract
from driftguard.sources.schema import Relation


def as_utc(value: datetime, name: str, contract: ModelContract) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"model {contract.name}: {name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"model {contract.name}: {name}={value.isoformat()} is a naive datetime; pass a tz-aware UTC datetime "
            "(e.g. datetime(..., tzinfo=timezone.utc) or pendulum's data_interval_start)"
        )
    return value.astimezone(UTC)


def sqlite_text(value: datetime, sep: str) -> str:
    """Shortest UTC text for `value`: compares correctly against stored text with or without
    microseconds and with a `+00:00` or `Z` suffix (string order == time order)."""
    naive = value.astimezone(UTC).replace(tzinfo=None)
    text = naive.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    return f"{text}.{naive.microsecond:06d}" if naive.microsecond else text


# The widest UTC offset in use (Pacific/Kiritimati, +14:00; -12:00 is the other end). A SQLite text
# timestamp with an offset sorts by its local time, which is at most this far from its UTC time.
MAX_UTC_OFFSET = timedelta(hours=14)


def shifted(value: datetime, by: timedelta) -> datetime:
    """`value + by`, held at the ends of datetime's range instead of overflowing."""
    try:
        return value + by
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC) if by > timedelta(0) else datetime.min.replace(tzinfo=UTC)


def sqlite_offset(col: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """Text ending in a non-zero `+hh:mm` / `-hh:mm` offset (ISO 8601, as Python and pandas write
    it). Text without one pays a single substr: its 6th character from the end is a digit or ':'."""
    sign = sa.func.substr(col, -6, 1).op("IN")(sa.literal_column("('+', '-')"))
    return sa.and_(sign, sa.func.substr(col, -3, 1) == ":", sa.func.substr(col, -5) != "00:00")


def sqlite_utc_text(col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """A text timestamp with an offset as UTC text, `YYYY-MM-DD HH:MM:SS` plus its fraction padded
    to 6 digits: comparable with sqlite_text(..., " "). SQLite's strftime applies the offset
    (whole minutes, so the fraction is the stored one); it keeps only milliseconds of the fraction,
    hence the stored digits."""
    digits = sa.func.substr(col, 20, sa.func.length(col) - 25).op("||")("000000")
    fraction = sa.case((sa.func.substr(col, 20, 1) == ".", sa.func.substr(digits, 1, 7)), else_="")
    return sa.func.strftime("%Y-%m-%d %H:%M:%S", col).op("||")(fraction)


@dataclass(frozen=True)
class _Piece:
    """Stored text in [lo, hi) (SQLite), in the window when `when` holds (None: always)."""

    lo: str
    hi: str
    when: sa.ColumnElement[bool] | None


def _sqlite_pieces(col: sa.ColumnElement[Any], lo: datetime, hi: datetime) -> list[_Piece]:
    """The window [lo, hi) on SQLite as disjoint ranges of stored text, ascending.

    SQLite stores text, with a space or a 'T' between date and time, and maybe an offset. Text
    sorts by local time, which is within MAX_UTC_OFFSET of the UTC time, and ' ' sorts before
    'T'. Whether a row without an offset is in the window follows from the range it is in, or from
    its separator in the two ranges that hold both layouts ([lo with ' ', lo with 'T') and [hi with
    ' ', hi with 'T')). A row with an offset is judged by its UTC time (sqlite_utc_text); telling
    whether a row has one costs a substr. The core, text between (lo + MAX_UTC_OFFSET) with 'T'
    and (hi - MAX_UTC_OFFSET) with ' ', is in the window whatever its layout and offset: no
    function call per row there."""
    wide_lo = sqlite_text(shifted(lo, -MAX_UTC_OFFSET), " ")
    wide_hi = sqlite_text(shifted(hi, MAX_UTC_OFFSET), "T")
    core_lo = sqlite_text(shifted(lo, MAX_UTC_OFFSET), "T")
    core_hi = sqlite_text(shifted(hi, -MAX_UTC_OFFSET), " ")
    lo_space, lo_t, hi_space, hi_t = (
        sqlite_text(lo, " "),
        sqlite_text(lo, "T"),
        sqlite_text(hi, " "),
        sqlite_text(hi, "T"),
    )
    offset, utc, sep = sqlite_offset(col), sqlite_utc_text(col), sa.func.substr(col, 11, 1)
    utc_in = sa.and_(utc >= lo_space, utc < hi_space)
    out, inside = sa.and_(offset, utc_in), sa.or_(sa.not_(offset), utc_in)  # plain rows out / in
    if lo_t >= hi_space:  # within one day: ' ' rows of the day in [lo_space, hi_space), 'T' rows in [lo_t, hi_t)
        return [
            _Piece(wide_lo, lo_space, out),
            _Piece(lo_space, hi_space, inside),
            _Piece(hi_space, lo_t, out),
            _Piece(lo_t, hi_t, inside),
            _Piece(hi_t, wide_hi, out),
        ]
    head = [
        _Piece(wide_lo, lo_space, out),
        _Piece(lo_space, lo_t, sa.case((offset, utc_in), else_=sep == " ")),
    ]
    tail = [
        _Piece(hi_space, hi_t, sa.case((offset, utc_in), else_=sep == "T")),
        _Piece(hi_t, wide_hi, out),
    ]
    if core_lo >= core_hi:  # about a day or less: no core
        return [*head, _Piece(lo_t, hi_space, inside), *tail]
    core = [_Piece(lo_t, core_lo, inside), _Piece(core_lo, core_hi, None), _Piece(core_hi, hi_space, inside)]
    return [*head, *core, *tail]


def time_ranges(col: sa.ColumnElement[Any], lo: datetime, hi: datetime, dialect: str) -> list[sa.ColumnElement[bool]]:
    """`lo <= col < hi` as disjoint index ranges: counting each range on its own and adding up
    skips window_filter's per-row branching (see _sqlite_pieces), the core (most rows) first."""
    if dialect != "sqlite":
        return [sa.and_(col >= lo, col < hi)]
    pieces = sorted(_sqlite_pieces(col, lo, hi), key=lambda p: p.when is not None)
    return [sa.and_(col >= p.lo, col < p.hi, *([p.when] if p.when is not None else [])) for p in pieces]


def window_filter(col: sa.ColumnElement[Any], lo: datetime, hi: datetime, dialect: str) -> sa.ColumnElement[bool]:
    """`lo <= col < hi` as one condition: on SQLite, one index range around time_ranges' pieces
    (the core first: most rows are in at the first branch of the OR)."""
    ranges = time_ranges(col, lo, hi, dialect)
    if dialect != "sqlite":
        return ranges[0]
    pieces = _sqlite_pieces(col, lo, hi)
    return sa.and_(col >= pieces[0].lo, col < pieces[-1].hi, sa.or_(*ranges))


def event_time(relation: Relation, name: str, dialect: str) -> sa.ColumnElement[Any]:
    """The timestamp column as the database compares it. PostgreSQL text (a table's text column or
    a query's) is cast to timestamptz, so offsets count ('...-05:00') and naive text is UTC (every
    session runs in UTC); SQLite text is compared by time_ranges."""
    col = relation.selectable.c[name]
    if dialect == "postgresql" and (isinstance(relation.columns.get(name), sa.String) or name in relation.text):
        return sa.cast(col, sa.DateTime(timezone=True))
    return col
