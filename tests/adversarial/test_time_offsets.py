"""Time is exact: a timestamp written with a UTC offset is filed by its UTC time, on SQLite (text,
compared as text) and PostgreSQL (timestamptz, and text cast to it), read whole or counted by the
database for a sampled window. The issue's probe: `2013-04-06T22:00:00-05:00` is 2013-04-07 03:00
UTC and belongs to the week starting 2013-04-07; SQLite used to file it, and 56 rows like it, in
the week before (text order), with UTC times after that week's end, and nothing flagged it.

The property test writes random instants near real DST transitions as text in random zones,
layouts and offsets (-11:00 to +14:00, half and quarter hours, Z, +00:00, none) and checks that
every window holds exactly the rows whose UTC time is in it."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa
from driftguard import sources
from driftguard.contract import ModelContract
from driftguard.sources import ColumnTypeError
from driftguard.sources.dtypes import to_timestamp
from events_support import events_contract
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

WEEK = timedelta(days=7)
MONDAY = datetime(2013, 4, 7, tzinfo=UTC)  # the issue's week boundary (a Sunday, as the demo's weeks)
BEFORE, AFTER = (MONDAY - WEEK, MONDAY), (MONDAY, MONDAY + WEEK)
CHICAGO_CDT = timezone(timedelta(hours=-5))


def _contract(url: str, labels: bool = False) -> ModelContract:
    source: dict[str, object] = {"prediction_column": None}
    if labels:
        source["labels"] = {"table": "event_labels", "column": "y", "delay": "0s"}
    return events_contract(url, "offsets", [{"name": "num", "kind": "numeric"}], source=source)


def _write(url: str, stamps: list[str], *, column: str = "text") -> None:
    """`stamps` as the `ts` column of table events (ids 1..n): stored as text, or (PostgreSQL)
    parsed into a timestamptz column by the server; a label per event in event_labels."""
    frame = pd.DataFrame({"event_id": range(1, len(stamps) + 1), "ts": stamps, "num": 1.0})
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS events"))
        conn.execute(sa.text("DROP TABLE IF EXISTS event_labels"))
        ts_type = "timestamptz" if column == "timestamptz" else "text"
        conn.execute(sa.text(f"CREATE TABLE events (event_id bigint, ts {ts_type}, num double precision)"))
        conn.execute(sa.text("CREATE INDEX ix_events_ts ON events (ts)"))
        conn.execute(sa.text("CREATE TABLE event_labels (event_id bigint, y bigint)"))
        rows = frame.to_dict("records")
        if rows:
            conn.execute(sa.text("INSERT INTO events VALUES (:event_id, :ts, :num)"), rows)
            conn.execute(sa.text("INSERT INTO event_labels VALUES (:event_id, 1)"), rows)
    engine.dispose()


def _issue_log() -> tuple[list[str], dict[int, datetime]]:
    """57 events written in US Central daylight time (-05:00) on the evening of 2013-04-06, 19:00
    to 23:40 local, i.e. 00:00 to 04:40 UTC on 2013-04-07; one the issue names; and neighbours
    in UTC, without an offset, with +05:30 and in the 'T' layout."""
    stamps, truth = [], {}
    for i in range(57):
        local = datetime(2013, 4, 6, 19, tzinfo=CHICAGO_CDT) + timedelta(minutes=5 * i)
        stamps.append(local.isoformat())
    stamps[36] = "2013-04-06T22:00:00-05:00"  # the issue's row: 19:00 + 36 x 5 min
    extra = [
        "2013-04-06 23:59:59",  # UTC, the week before
        "2013-04-07T00:00:00Z",  # the boundary itself: the week after
        "2013-04-07T04:00:00+05:30",  # 2013-04-06 22:30 UTC: the week before, though its text is after
        "2013-04-13T23:30:00.250000-05:00",  # 2013-04-14 04:30 UTC: the week after the week after
        "2013-04-13 23:59:59.999999",
    ]
    stamps += extra
    for i, text in enumerate(stamps, start=1):
        stamp = pd.Timestamp(text)
        truth[i] = (stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)).to_pydatetime()
    return stamps, truth


def _ids_in(truth: dict[int, datetime], lo: datetime, hi: datetime) -> list[int]:
    return sorted(i for i, t in truth.items() if lo <= t < hi)


@pytest.fixture(params=["sqlite-text", "postgres-timestamptz", "postgres-text"])
def offset_url(request: pytest.FixtureRequest) -> tuple[str, str]:
    backend, column = request.param.split("-")
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    return url, column


def test_the_issue_row_lands_in_its_utc_week(offset_url: tuple[str, str]) -> None:
    """Read whole, sampled (the database counts the window and seeks its first and last event)
    and as matured labels: each event is in the week of its UTC time, on every backend."""
    url, column = offset_url
    stamps, truth = _issue_log()
    _write(url, stamps, column=column)
    contract = _contract(url, labels=True)
    issue_row = 37
    assert truth[issue_row] == datetime(2013, 4, 7, 3, tzinfo=UTC)
    for lo, hi in (BEFORE, AFTER):
        expected = _ids_in(truth, lo, hi)
        frame, stats = sources.read_window(contract, lo, hi, sources.ReadOptions(strict=False))
        assert sorted(frame["event_id"]) == expected and stats.schema_problems == ()
        assert ((frame["ts"] >= lo) & (frame["ts"] < hi)).all()
        assert (stats.min_ts, stats.max_ts) == (min(truth[i] for i in expected), max(truth[i] for i in expected))
        _, counted = sources.read_window(
            contract, lo, hi, sources.ReadOptions(strict=False, sample_rows=1, allow_empty=True)
        )
        assert counted.sampled and counted.rows == len(expected)
        assert (counted.min_ts, counted.max_ts) == (stats.min_ts, stats.max_ts)
        labels = sources.read_labels(contract, lo, hi, as_of=hi)
        assert sorted(labels["event_id"]) == expected
        _, lstats = sources.read_labelled(
            contract, lo, hi, sources.ReadOptions(sample_rows=1, allow_empty=True), as_of=hi
        )
        assert lstats.rows == len(expected)
    assert (
        issue_row in _ids_in(truth, *AFTER) and len(_ids_in(truth, *AFTER)) == 57 + 2
    )  # the boundary, the last UTC second


def test_offsets_sqlite_cannot_read_are_flagged_not_misfiled(sqlite_url: str) -> None:
    """'-0500' (no colon) is ISO 8601 too, but SQLite compares it by its local text: such rows are
    left out of the interval they were filed in and named as a schema problem (the quality gate's
    critical `schema` check fails); a strict read (training, the bootstrap reference) refuses."""
    _write(sqlite_url, ["2013-04-06T22:00:00-0500", "2013-04-06T20:00:00", "2013-04-07T01:00:00"])
    contract = _contract(sqlite_url)
    frame, stats = sources.read_window(contract, *BEFORE, sources.ReadOptions(strict=False))
    assert frame["event_id"].tolist() == [2]
    (problem,) = stats.schema_problems
    assert (
        problem.startswith("column 'ts': 1 rows have a UTC time outside the interval") and "2013-04-07 03:00" in problem
    )
    with pytest.raises(ColumnTypeError, match=r"model offsets, table events, column ts: 1 rows have a UTC time"):
        sources.read_window(contract, *BEFORE)


def test_text_with_and_without_offsets_parses_each_value_by_itself() -> None:
    """pandas 2.3 reads an ISO value without an offset that follows one with an offset in that
    offset ('2013-04-07 23:00:00' after '...-05:00' became 2013-04-08 04:00 UTC); the reader
    parses the two kinds apart."""
    values = pd.Series(["2013-04-06T22:00:00-05:00", "2013-04-07 23:00:00", None, "2013-04-07T10:00:00+14:00"])
    parsed = to_timestamp(values)
    assert parsed.tolist()[:2] == [
        pd.Timestamp("2013-04-07 03:00", tz="UTC"),
        pd.Timestamp("2013-04-07 23:00", tz="UTC"),
    ]
    assert parsed.isna().tolist() == [False, False, True, False]
    assert parsed.iloc[3] == pd.Timestamp("2013-04-06 20:00", tz="UTC")


# --------------------------------------------------------------------------- property


ZONES = [
    "America/New_York",  # -05:00 / -04:00
    "Europe/Berlin",  # +01:00 / +02:00
    "Australia/Lord_Howe",  # +10:30 / +11:00: a half-hour shift
    "Pacific/Chatham",  # +12:45 / +13:45
    "America/St_Johns",  # -03:30 / -02:30
    "Pacific/Kiritimati",  # +14:00
    "Pacific/Pago_Pago",  # -11:00
    "Asia/Kathmandu",  # +05:45
]


@functools.cache
def _dst_edges() -> list[datetime]:
    """The UTC instants of the 2024 DST transitions of ZONES (found on a 15-minute grid)."""
    edges = []
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for name in ZONES:
        zone = ZoneInfo(name)
        before = start.astimezone(zone).utcoffset()
        for step in range(1, 366 * 96):
            t = start + timedelta(minutes=15 * step)
            offset = t.astimezone(zone).utcoffset()
            if offset != before:
                edges.append(t)
                before = offset
    return sorted(edges)


def _text(instant: datetime, zone: str | None, suffix: str, sep: str, fraction: bool) -> str:
    """One way a producer may write `instant`: local time in `zone` with its offset, or UTC with
    `suffix` ('', 'Z' or '+00:00'); ' ' or 'T' between date and time."""
    spec = "microseconds" if fraction else "seconds"
    if zone is not None:
        return instant.astimezone(ZoneInfo(zone)).isoformat(sep=sep, timespec=spec)
    text = instant.replace(tzinfo=None).isoformat(sep=sep, timespec=spec)
    return text + suffix


@st.composite
def _logs(draw: st.DrawFn) -> tuple[list[str], list[datetime], datetime, datetime]:
    anchor = draw(st.sampled_from(_dst_edges()))
    n = draw(st.integers(1, 40))
    instants, stamps = [], []
    for _ in range(n):
        instant = anchor + timedelta(
            minutes=draw(st.integers(-3 * 24 * 60, 3 * 24 * 60)), microseconds=draw(st.sampled_from([0, 0, 1, 500_000]))
        )
        zone = draw(st.sampled_from([None, None, *ZONES]))
        suffix = draw(st.sampled_from(["", "Z", "+00:00"]))
        fraction = draw(st.booleans())
        instant = instant if fraction else instant.replace(microsecond=0)
        stamps.append(_text(instant, zone, suffix, draw(st.sampled_from([" ", "T"])), fraction))
        instants.append(instant)
    # Windows from a minute to four days, starting on the transition, a local midnight or anywhere near it.
    kind = draw(st.sampled_from(["edge", "local_midnight", "any"]))
    if kind == "edge":
        lo = anchor
    elif kind == "local_midnight":
        local = anchor.astimezone(ZoneInfo(draw(st.sampled_from(ZONES))))
        lo = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    else:
        lo = anchor + timedelta(minutes=draw(st.integers(-2 * 24 * 60, 24 * 60)))
    hi = lo + timedelta(minutes=draw(st.sampled_from([1, 30, 60, 23 * 60, 24 * 60, 25 * 60, 29 * 60, 4 * 24 * 60])))
    return stamps, instants, lo, hi


def _check_window(url: str, stamps: list[str], instants: list[datetime], lo: datetime, hi: datetime) -> None:
    contract = _contract(url)
    expected = sorted(i for i, t in enumerate(instants, start=1) if lo <= t < hi)
    frame, stats = sources.read_window(contract, lo, hi, sources.ReadOptions(allow_empty=True, strict=False))
    assert sorted(frame["event_id"]) == expected, (lo, hi, [stamps[i - 1] for i in expected])
    assert stats.schema_problems == ()
    _, counted = sources.read_window(
        contract, lo, hi, sources.ReadOptions(allow_empty=True, strict=False, sample_rows=1)
    )
    assert counted.rows == len(expected)
    if expected:
        assert counted.min_ts == min(instants[i - 1] for i in expected)
        assert counted.max_ts == max(instants[i - 1] for i in expected)


PROPERTY = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@PROPERTY
@given(log=_logs())
def test_windows_hold_exactly_their_utc_rows_on_sqlite(sqlite_url: str, log) -> None:
    stamps, instants, lo, hi = log
    _write(sqlite_url, stamps)
    _check_window(sqlite_url, stamps, instants, lo, hi)


@pytest.mark.postgres
@PROPERTY
@given(log=_logs(), column=st.sampled_from(["timestamptz", "text"]))
def test_windows_hold_exactly_their_utc_rows_on_postgres(pg_url: str, log, column: str) -> None:
    stamps, instants, lo, hi = log
    _write(pg_url, stamps, column=column)
    _check_window(pg_url, stamps, instants, lo, hi)
