"""driftguard.sources against real SQLite files and the real PostgreSQL server."""

from __future__ import annotations

import ast
import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from driftguard import sources
from driftguard.contract import ContractError, ModelContract, parse_contract
from driftguard.sources import (
    ColumnTypeError,
    EmptyWindowError,
    MissingColumnError,
    MissingTableError,
    SourceConnectionError,
    SourceError,
)
from events_support import events_contract

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def make_contract(url: str, **source: Any) -> ModelContract:
    features = [
        {"name": "num", "kind": "numeric"},
        {"name": "cat", "kind": "categorical"},
        {"name": "code", "kind": "categorical"},
    ]
    labels = {"table": "event_labels", "column": "y", "delay": "1d"}
    return events_contract(url, "toy_model", features, source={"labels": labels, **source})


def events_frame(n: int = 10) -> pd.DataFrame:
    """n events one hour apart from T0, inserted in reverse order so sorting is observable."""
    ts = [T0 + timedelta(hours=i) for i in range(n)]
    df = pd.DataFrame(
        {
            "event_id": range(1, n + 1),
            "ts": pd.to_datetime(ts, utc=True),
            "num": [float(i) / 2 for i in range(n)],
            "cat": ["a" if i % 2 else None for i in range(n)],
            "code": [i % 3 if i != 4 else None for i in range(n)],  # INTEGER with a NULL
            "score": np.linspace(0, 1, n),
            "unused": "x",
        }
    )
    return df.iloc[::-1].reset_index(drop=True)


def write(url: str, frames: dict[str, pd.DataFrame], dtype: dict[str, Any] | None = None) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for name, frame in frames.items():
            frame.to_sql(name, conn, index=False, if_exists="replace", dtype=dtype)
    engine.dispose()


@pytest.fixture
def seeded(db_url: str) -> tuple[str, ModelContract]:
    labels = pd.DataFrame({"event_id": range(1, 11), "y": [i % 2 for i in range(10)]})
    write(db_url, {"events": events_frame(), "event_labels": labels})
    return db_url, make_contract(db_url)


# --------------------------------------------------------------------------- windows


def test_window_edges_dtypes_and_order(seeded: tuple[str, ModelContract]) -> None:
    _url, contract = seeded
    df, stats = sources.read_window(contract, T0 + timedelta(hours=2), T0 + timedelta(hours=6))
    # start is included, the event exactly at end (hour 6) is not.
    assert df["ts"].tolist() == [pd.Timestamp(T0 + timedelta(hours=h)) for h in (2, 3, 4, 5)]
    assert df["event_id"].tolist() == [3, 4, 5, 6]
    assert list(df.columns) == ["event_id", "ts", "num", "cat", "code", "score"]  # no label, no unused column
    assert str(df["ts"].dtype) == "datetime64[ns, UTC]"
    assert df["num"].dtype == np.float64 and df["score"].dtype == np.float64
    assert df["cat"].dtype == object and df["code"].dtype == object
    assert df["cat"].tolist()[1] == "a"
    assert df["cat"].iloc[0] is np.nan or (isinstance(df["cat"].iloc[0], float) and np.isnan(df["cat"].iloc[0]))
    assert not any(v is pd.NA for v in df["code"])
    assert df["code"].tolist()[:2] == ["2", "0"] and pd.isna(df["code"].iloc[2])  # INTEGER with NULL -> "2", not "2.0"
    assert (stats.rows, stats.chunks) == (4, 1)
    assert stats.min_ts == T0 + timedelta(hours=2) and stats.max_ts == T0 + timedelta(hours=5)
    assert stats.schema_problems == ()
    json.dumps(stats.to_dict())
    assert stats.to_dict()["start"] == "2024-03-01T02:00:00+00:00"


def test_non_utc_inputs_are_converted(seeded: tuple[str, ModelContract]) -> None:
    _, contract = seeded
    plus2 = timezone(timedelta(hours=2))
    start = datetime(2024, 3, 1, 4, 0, tzinfo=plus2)  # == 02:00 UTC
    end = datetime(2024, 3, 1, 8, 0, tzinfo=plus2)  # == 06:00 UTC
    df, stats = sources.read_window(contract, start, end)
    assert df["event_id"].tolist() == [3, 4, 5, 6]
    assert stats.start == T0 + timedelta(hours=2) and stats.start.utcoffset() == timedelta(0)


def test_naive_datetimes_are_rejected(seeded: tuple[str, ModelContract]) -> None:
    _, contract = seeded
    with pytest.raises(ValueError, match=r"toy_model: start=2024-03-01T00:00:00 is a naive datetime"):
        sources.read_window(contract, datetime(2024, 3, 1), T0 + timedelta(days=1))
    with pytest.raises(ValueError, match=r"as_of=.* naive"):
        sources.read_labels(contract, T0, T0 + timedelta(days=1), as_of=datetime(2024, 3, 5))
    with pytest.raises(ValueError, match="empty interval"):
        sources.read_window(contract, T0, T0)


def test_chunking_gives_the_same_frame(seeded: tuple[str, ModelContract]) -> None:
    _, contract = seeded
    whole, s1 = sources.read_window(contract, T0, T0 + timedelta(days=1))
    chunked, s3 = sources.read_window(contract, T0, T0 + timedelta(days=1), sources.ReadOptions(chunksize=3))
    pd.testing.assert_frame_equal(whole, chunked)
    assert (s1.chunks, s3.chunks, s3.rows) == (1, 4, 10)


def test_read_flags_are_not_keywords(seeded: tuple[str, ModelContract]) -> None:
    """A read is described by one ReadOptions value; the old keyword flags are a TypeError, so a
    caller left on the old form fails loudly instead of reading with the defaults."""
    _, contract = seeded
    with pytest.raises(TypeError, match="strict"):
        sources.read_window(contract, T0, T0 + timedelta(days=1), strict=False)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="sample_rows"):
        sources.read_labelled(contract, T0, T0 + timedelta(days=1), as_of=T0, sample_rows=1)  # type: ignore[call-arg]


def test_package_exports_only_public_names() -> None:
    assert all(not name.startswith("_") for name in sources.__all__)
    assert {"read_window", "read_labels", "read_labelled", "check_source", "ReadOptions"} <= set(sources.__all__)
    assert not hasattr(sources, "connect") and not hasattr(sources, "convert")  # helpers stay in their modules


LAYERS = ("errors", "stats", "engine", "schema", "time_filter", "dtypes", "read_paths", "sampling", "window", "labels")


def test_package_modules_import_only_earlier_layers() -> None:
    """The order the package docstring promises: no module reaches up (or sideways into checks)."""
    package = Path(sources.__file__).parent
    order = [*LAYERS, "checks"]
    for rank, name in enumerate(order):
        tree = ast.parse((package / f"{name}.py").read_text())
        used = {
            node.module.rsplit(".", 1)[-1]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("driftguard.sources.")
        }
        assert used <= set(order[:rank]), (name, used - set(order[:rank]))


def test_empty_window(seeded: tuple[str, ModelContract]) -> None:
    _, contract = seeded
    later = T0 + timedelta(days=5)
    with pytest.raises(EmptyWindowError, match=r"model toy_model, table events, column ts: no rows with ts in") as exc:
        sources.read_window(contract, later, later + timedelta(days=1))
    assert isinstance(exc.value, SourceError)
    df, stats = sources.read_window(contract, later, later + timedelta(days=1), sources.ReadOptions(allow_empty=True))
    assert df.empty and list(df.columns) == ["event_id", "ts", "num", "cat", "code", "score"]
    assert str(df["ts"].dtype) == "datetime64[ns, UTC]" and df["num"].dtype == np.float64
    assert (stats.rows, stats.chunks, stats.min_ts) == (0, 0, None)


def test_read_logs_what_was_read(seeded: tuple[str, ModelContract], caplog: pytest.LogCaptureFixture) -> None:
    _, contract = seeded
    with caplog.at_level(logging.INFO, logger="driftguard.sources"):
        sources.read_window(contract, T0, T0 + timedelta(days=1), sources.ReadOptions(chunksize=4))
    assert "toy_model: read 10 rows in 3 chunks from events" in caplog.text
    assert "2024-03-01 09:00:00+00:00" in caplog.text  # max timestamp


# --------------------------------------------------------------------------- labels


def test_label_maturity(seeded: tuple[str, ModelContract]) -> None:
    _, contract = seeded
    day = (T0, T0 + timedelta(days=1))
    # delay 1d: at T0 + 1d + 3h the events of hours 0..3 have matured (hour 3 exactly at the limit).
    labels = sources.read_labels(contract, *day, as_of=T0 + timedelta(days=1, hours=3))
    assert sorted(labels["event_id"]) == [1, 2, 3, 4]
    assert list(labels.columns) == ["event_id", "y"] and labels["y"].dtype == np.int64
    assert sources.read_labels(contract, *day, as_of=T0 + timedelta(hours=23)).empty
    assert len(sources.read_labels(contract, *day, as_of=T0 + timedelta(days=3))) == 10


def test_read_labelled_joins_matured_labels(seeded: tuple[str, ModelContract]) -> None:
    _, contract = seeded
    df, stats = sources.read_labelled(contract, T0, T0 + timedelta(days=1), as_of=T0 + timedelta(days=1, hours=5))
    assert df["event_id"].tolist() == [1, 2, 3, 4, 5, 6]
    assert df["y"].tolist() == [0, 1, 0, 1, 0, 1] and df["y"].dtype == np.int64
    assert stats.rows == 6 and stats.max_ts == T0 + timedelta(hours=5)
    with pytest.raises(EmptyWindowError, match=r"none of the 10 rows .* has a matured label"):
        sources.read_labelled(contract, T0, T0 + timedelta(days=1), as_of=T0)


def test_labels_in_the_log_table(db_url: str) -> None:
    events = events_frame()
    events["y"] = [None if i == 0 else float(i % 2) for i in range(10)]  # one event not labelled yet
    write(db_url, {"events": events})
    contract = make_contract(db_url, labels={"column": "y", "delay": "2h"})
    df, _ = sources.read_window(contract, T0, T0 + timedelta(days=1))
    assert "y" not in df.columns  # never read unmatured labels with the features
    labelled, _ = sources.read_labelled(contract, T0, T0 + timedelta(days=1), as_of=T0 + timedelta(hours=6))
    # matured: ts + 2h <= 6h, i.e. hours 0..4 = events 1..5; event 10 (hour 9) has a NULL label anyway.
    assert sorted(labelled["event_id"]) == [1, 2, 3, 4, 5]
    assert labelled["y"].dtype == np.int64


def test_non_binary_label_values_are_rejected(db_url: str) -> None:
    write(db_url, {"events": events_frame(), "event_labels": pd.DataFrame({"event_id": [1, 2], "y": [1, 7]})})
    contract = make_contract(db_url)
    with pytest.raises(ColumnTypeError, match=r"table event_labels, column y: binary label column must be 0/1"):
        sources.read_labels(contract, T0, T0 + timedelta(days=1), as_of=T0 + timedelta(days=9))


# --------------------------------------------------------------------------- schema problems


def test_wrong_dtype_strict_and_lenient(db_url: str) -> None:
    events = events_frame()
    events["num"] = events["num"].astype(str)
    events.loc[events["event_id"] == 7, "num"] = "not a number"
    write(db_url, {"events": events}, dtype={"num": sa.Text()})
    contract = make_contract(db_url, labels=None)
    with pytest.raises(
        ColumnTypeError,
        match=r"table events, column num: numeric feature holds non-numeric values "
        r"in 1 of 10 rows, e\.g\. 'not a number'",
    ) as exc:
        sources.read_window(contract, T0, T0 + timedelta(days=1))
    assert exc.value.column == "num" and exc.value.table == "events"
    # Lenient (monitoring): read as missing, counted for the column's `types` check, not a schema problem.
    df, stats = sources.read_window(contract, T0, T0 + timedelta(days=1), sources.ReadOptions(strict=False))
    assert df["num"].dtype == np.float64 and df.loc[df["event_id"] == 7, "num"].isna().all()
    assert stats.schema_problems == ()
    assert stats.type_problems == (sources.TypeProblem("num", "numeric feature", 1, 10, ("not a number",)),)
    assert stats.to_dict()["type_problems"][0]["rows"] == 1
    # "keep" (training): left as read for the caller to judge row by row.
    kept, stats = sources.read_window(contract, T0, T0 + timedelta(days=1), sources.ReadOptions(numeric_text="keep"))
    assert kept["num"].dtype == object and "not a number" in kept["num"].tolist()
    assert [p.column for p in stats.type_problems] == ["num"]
    # Numeric text without bad values is fine: pre-injection days of a type change read normally.
    clean, _ = sources.read_window(contract, T0, T0 + timedelta(hours=6))
    assert clean["num"].dtype == np.float64


def test_incompatible_sql_type(db_url: str) -> None:
    events = events_frame()
    events["score"] = events["ts"]  # a timestamp where the prediction should be
    write(db_url, {"events": events})
    contract = make_contract(db_url, labels=None)
    with pytest.raises(ColumnTypeError, match=r"column score: prediction column 'score' has SQL type"):
        sources.read_window(contract, T0, T0 + timedelta(days=1))
    df, stats = sources.read_window(contract, T0, T0 + timedelta(days=1), sources.ReadOptions(strict=False))
    assert "score" in df.columns and any("'score'" in p for p in stats.schema_problems)
    assert any("source.table: prediction column 'score' has SQL type" in p for p in sources.check_source(contract))


def test_missing_table(db_url: str) -> None:
    write(db_url, {"other": events_frame()})
    contract = make_contract(db_url)
    with pytest.raises(MissingTableError, match=r"model toy_model, table events: feature-log table not found"):
        sources.read_window(contract, T0, T0 + timedelta(days=1))
    with pytest.raises(MissingTableError):
        sources.read_window(contract, T0, T0 + timedelta(days=1), sources.ReadOptions(strict=False))
    problems = sources.check_source(contract)
    assert len(problems) == 1 and problems[0].startswith("source.table: model toy_model, table events:")


def test_missing_column(db_url: str) -> None:
    write(db_url, {"events": events_frame().drop(columns=["cat"]), "event_labels": pd.DataFrame({"event_id": [1]})})
    contract = make_contract(db_url)
    with pytest.raises(MissingColumnError, match=r"table events, column cat: not found: categorical feature 'cat'"):
        sources.read_window(contract, T0, T0 + timedelta(days=1))
    df, stats = sources.read_window(contract, T0, T0 + timedelta(days=1), sources.ReadOptions(strict=False))
    assert "cat" not in df.columns and len(df) == 10
    assert stats.schema_problems == ("column 'cat': categorical feature not found in events",)
    assert sources.check_source(contract) == [
        "source.table: categorical feature 'cat' not found in events",
        "source.labels: binary label column 'y' not found in event_labels",
    ]
    # The key columns are required even when lenient.
    contract_ts = make_contract(db_url, timestamp_column="event_time")
    with pytest.raises(MissingColumnError, match="column event_time"):
        sources.read_window(contract_ts, T0, T0 + timedelta(days=1), sources.ReadOptions(strict=False))


def test_check_source_clean(seeded: tuple[str, ModelContract]) -> None:
    _, contract = seeded
    assert sources.check_source(contract) == []


# --------------------------------------------------------------------------- query sources and injection


def test_query_source(seeded: tuple[str, ModelContract]) -> None:
    url, _ = seeded
    contract = make_contract(
        url, table=None, query="SELECT event_id, ts, num * 2 AS num, cat, code, score FROM events WHERE event_id <> 4"
    )
    df, stats = sources.read_window(contract, T0, T0 + timedelta(hours=5), sources.ReadOptions(chunksize=2))
    assert df["event_id"].tolist() == [1, 2, 3, 5]
    assert df["num"].tolist() == [0.0, 1.0, 2.0, 4.0]
    assert stats.chunks == 2
    labels = sources.read_labels(contract, T0, T0 + timedelta(hours=5), as_of=T0 + timedelta(days=2))
    assert sorted(labels["event_id"]) == [1, 2, 3, 5]
    assert sources.check_source(contract) == []
    broken = make_contract(url, table=None, query="SELECT * FROM no_such_table")
    with pytest.raises(SourceError, match=r"table <source.query>: source.query failed"):
        sources.read_window(broken, T0, T0 + timedelta(hours=5))


def test_sql_injection_in_names_is_impossible(seeded: tuple[str, ModelContract]) -> None:
    url, _ = seeded
    evil = 'num" FROM events; DROP TABLE event_labels; --'
    raw = make_contract(url).model_dump(mode="json")
    raw["features"][0]["name"] = evil
    contract = ModelContract.model_validate(raw)
    with pytest.raises(MissingColumnError, match="not found"):
        sources.read_window(contract, T0, T0 + timedelta(days=1))
    # Even when the column is asked for, it is a quoted identifier, never SQL text.
    df, stats = sources.read_window(contract, T0, T0 + timedelta(days=1), sources.ReadOptions(strict=False))
    assert evil not in df.columns and len(df) == 10 and evil in stats.schema_problems[0]
    assert sa.inspect(sa.create_engine(url)).has_table("event_labels")
    # Table names are validated by the contract itself.
    text = f"""
name: toy_model
task: regression
owners: [a]
start_date: 2024-03-01
source: {{url: "{url}", table: "events; drop table x", timestamp_column: ts, id_column: event_id}}
features: [{{name: num, kind: numeric}}]
"""
    with pytest.raises(ContractError, match=r"source.table: .*is not a table name"):
        parse_contract(text, "toy_model.yaml")


# --------------------------------------------------------------------------- connections and URLs


def test_connection_failure_masks_password() -> None:
    contract = make_contract("postgresql+psycopg2://dg:${DG_TEST_PW}@127.0.0.1:1/nowhere")
    with pytest.raises(SourceConnectionError) as exc:
        sources.read_window(contract, T0, T0 + timedelta(days=1), url="postgresql+psycopg2://dg:hunter2@127.0.0.1:1/x")
    message = str(exc.value)
    assert "hunter2" not in message and "dg:***@127.0.0.1:1/x" in message and "model toy_model" in message
    problems = sources.check_source(contract, url="postgresql+psycopg2://dg:hunter2@127.0.0.1:1/x")
    assert problems[0].startswith("source.url: model toy_model, table events: cannot connect to")


def test_missing_sqlite_file_is_not_created(tmp_path) -> None:
    path = tmp_path / "absent.db"
    contract = make_contract(f"sqlite:///{path}")
    with pytest.raises(SourceConnectionError, match="does not exist"):
        sources.read_window(contract, T0, T0 + timedelta(days=1))
    assert not path.exists()


def test_source_url_resolution(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> None:
    contract = make_contract("${DG_TEST_URL}")
    assert sources.source_url(contract, "sqlite:///explicit.db") == "sqlite:///explicit.db"
    monkeypatch.delenv("DG_TEST_URL", raising=False)
    with pytest.raises(SourceConnectionError, match="environment variable DG_TEST_URL is not set"):
        sources.source_url(contract)
    monkeypatch.setenv("DG_TEST_URL", sqlite_url)
    assert sources.source_url(contract) == sqlite_url


def test_feature_log_url_defaults_to_settings(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("DRIFTGUARD_FEATURE_LOG_URL", raising=False)
    monkeypatch.setenv("DRIFTGUARD_HOME", str(tmp_path))
    contract = make_contract("${DRIFTGUARD_FEATURE_LOG_URL}")
    assert sources.source_url(contract) == f"sqlite:///{tmp_path.resolve() / 'feature_log.db'}"
    monkeypatch.setenv("DRIFTGUARD_FEATURE_LOG_URL", "sqlite:///elsewhere.db")
    assert sources.source_url(contract) == "sqlite:///elsewhere.db"


def test_source_url_from_airflow_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DG_FEATURES", "postgres://reader:pw@db.example:5432/features")
    raw = make_contract("sqlite://").model_dump(mode="json")
    raw["source"].pop("url")
    raw["source"]["conn_id"] = "dg_features"
    contract = ModelContract.model_validate(raw)
    assert sources.source_url(contract) == "postgresql://reader:pw@db.example:5432/features"


# --------------------------------------------------------------------------- timestamp layouts


def test_sqlite_iso_t_strings(sqlite_url: str) -> None:
    events = events_frame()
    fmt = ["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S+00:00", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"]
    events["ts"] = [t.strftime(fmt[i % 4]) for i, t in enumerate(events["ts"])]
    write(sqlite_url, {"events": events}, dtype={"ts": sa.Text()})
    contract = make_contract(sqlite_url, labels=None)
    df, _ = sources.read_window(contract, T0 + timedelta(hours=2), T0 + timedelta(hours=6))
    assert df["event_id"].tolist() == [3, 4, 5, 6]
    assert df["ts"].tolist() == [pd.Timestamp(T0 + timedelta(hours=h)) for h in (2, 3, 4, 5)]


@pytest.mark.parametrize(
    ("lo", "hi"),
    [
        (timedelta(hours=7), timedelta(days=3, hours=13)),  # several days, odd hours at both ends
        (timedelta(days=1), timedelta(days=4)),  # midnight to midnight
        (timedelta(hours=26), timedelta(hours=47)),  # within one day
        (timedelta(minutes=90), timedelta(days=5, minutes=30)),  # minutes, whole log but its ends
    ],
)
def test_sqlite_mixed_layouts_over_days(sqlite_url: str, lo: timedelta, hi: timedelta) -> None:
    """Every text layout, on the window's edge days and inside it: the ids read are exactly the
    events in [lo, hi), compared with the times themselves."""
    events = events_frame(60)
    events["ts"] = [T0 + timedelta(hours=2.5 * (60 - i)) for i in range(60)]  # every 2.5 h over 6 days
    fmt = ["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S+00:00", "%Y-%m-%d %H:%M:%S"]
    truth = sorted(int(e) for e, t in zip(events["event_id"], events["ts"], strict=True) if T0 + lo <= t < T0 + hi)
    events["ts"] = [t.strftime(fmt[i % 4]) for i, t in enumerate(events["ts"])]
    write(sqlite_url, {"events": events}, dtype={"ts": sa.Text()})
    contract = make_contract(sqlite_url, labels=None)
    df, stats = sources.read_window(contract, T0 + lo, T0 + hi, sources.ReadOptions(allow_empty=True))
    assert sorted(df["event_id"].tolist()) == truth and stats.rows == len(truth) > 0
    # Sampled, the database counts the window per index range and seeks its first and last event.
    _, counted = sources.read_window(contract, T0 + lo, T0 + hi, sources.ReadOptions(allow_empty=True, sample_rows=1))
    assert counted.sampled and counted.rows == len(truth)
    assert (counted.min_ts, counted.max_ts) == (stats.min_ts, stats.max_ts)


def test_postgres_naive_timestamp_is_utc(pg_url: str) -> None:
    # A server/session time zone other than UTC must not shift naive timestamps.
    pg_url = f"{pg_url}%20-cTimeZone%3DAmerica%2FNew_York"
    events = events_frame()
    events["ts"] = events["ts"].dt.tz_localize(None)  # timestamp without time zone
    write(pg_url, {"events": events})
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(
            sa.text(
                "select data_type from information_schema.columns where table_name='events' "
                "and column_name='ts' and table_schema=current_schema()"
            )
        ).scalar() == ("timestamp without time zone")
        assert conn.execute(sa.text("show timezone")).scalar() == "America/New_York"
    engine.dispose()
    contract = make_contract(pg_url, labels=None)
    plus5 = timezone(timedelta(hours=5))
    df, stats = sources.read_window(contract, datetime(2024, 3, 1, 7, tzinfo=plus5), T0 + timedelta(hours=6))
    assert df["event_id"].tolist() == [3, 4, 5, 6]
    assert stats.min_ts == T0 + timedelta(hours=2)
