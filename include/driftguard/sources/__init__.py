"""Read one data interval of a model's feature log (and its matured labels) from SQL.

Every later step (quality, drift, training, evaluation) sees the production log only through
this module, so it owns three promises:

* Interval semantics: ``[start, end)`` half-open, tz-aware UTC. Naive datetimes are rejected
  because a silently assumed time zone shifts every window by hours.
* Dtypes come from the contract, not from the database driver: timestamp ->
  ``datetime64[ns, UTC]``; numeric features and the prediction -> ``float64``; categorical ->
  ``object`` holding ``str`` with ``np.nan`` for missing (not ``pd.NA``: GX and scikit-learn
  choke on it); binary labels -> ``int64`` 0/1; regression labels -> ``float64``. Rows are
  sorted by timestamp, then id.
* Identifiers are never formatted into SQL text: tables and columns are SQLAlchemy constructs
  (quoted by the dialect), values are bound parameters, and ``source.query`` is wrapped as a
  subquery.

Timestamps supported (an event belongs to the window of its UTC time, whatever its offset):

* PostgreSQL ``timestamptz`` and ``timestamp`` (naive values are UTC: every connection runs
  ``SET TIME ZONE 'UTC'``), and text, cast to ``timestamptz`` (offsets count, naive text is UTC;
  the cast leaves the index unused).
* SQLite text as written by SQLAlchemy / pandas (``YYYY-MM-DD HH:MM:SS[.ffffff]``, optional
  ``+00:00``) and ISO strings with ``T`` (``YYYY-MM-DDTHH:MM:SS[.ffffff]``), with ``Z``, no
  offset or any ``+hh:mm`` / ``-hh:mm`` offset up to 14 hours (see time_filter._sqlite_pieces). Rows whose
  offset SQLite cannot read (``-0500``) and that land outside the window are left out and named
  as a schema problem (strict: ColumnTypeError). Epoch numbers are not supported.

``strict=False`` (the monitoring quality gate) never hides data problems: missing feature /
prediction columns are left out and columns of an incompatible SQL type are kept as read, each
reported in ``WindowStats.schema_problems`` so Great Expectations turns them into failed
expectations. Values of a numeric feature or the prediction that are not numbers (text in a
SQLite REAL column, 'NaN' text) are read as NaN and counted per column in
``WindowStats.type_problems``, which the quality gate turns into that column's failed `types`
check (column, rows, examples); the frame stays all float64, so it reaches Parquet intact. Text
that spells a number is that number ('inf' is infinity, for the `finite` check to fail).
The timestamp and id columns are the key of the log and are required in both modes. Errors
(SourceError) name the model, the table, the column and the interval being read.

The package, one seam per module (each imports only the ones listed before it):

* ``errors``, ``stats``: SourceError and its kinds; WindowStats, WindowFacts, TypeProblem.
* ``engine``: the URL (explicit, ``source.url`` with ``${ENV}``, or an Airflow connection) and
  the engine, with passwords masked in every message.
* ``schema``: reflection of the log (a table or the wrapped ``source.query``), the columns'
  roles and their SQL-type checks.
* ``time_filter``: ``[start, end)`` in SQL, including SQLite text timestamps in any layout
  and UTC offset.
* ``dtypes``: the contract's dtypes from what the driver returned.
* ``read_paths``: rows to a frame: one Arrow path for tables (ADBC's SQLite driver for a
  database file, its PostgreSQL driver through libpq), the sqlite3 cursor for a SQLite column
  whose values mix types, SQLAlchemy streaming for queries, column types ADBC does not map and
  other databases.
* ``sampling``: the seeded id-hash sample and the exact facts counted beside it.
* ``window``, ``labels``, ``checks``: the public readers and checks re-exported here.
"""

from driftguard.sources.checks import VolumeProfile, check_source, volume_profile
from driftguard.sources.dtypes import NUMERIC_TEXT_MODES
from driftguard.sources.engine import mask_url, source_url
from driftguard.sources.errors import (
    ColumnTypeError,
    EmptyWindowError,
    MissingColumnError,
    MissingTableError,
    SourceConnectionError,
    SourceError,
)
from driftguard.sources.labels import read_labelled, read_labels
from driftguard.sources.stats import TypeProblem, WindowFacts, WindowStats
from driftguard.sources.time_filter import MAX_UTC_OFFSET
from driftguard.sources.window import NumericText, ReadOptions, read_window

__all__ = [
    "MAX_UTC_OFFSET",
    "NUMERIC_TEXT_MODES",
    "ColumnTypeError",
    "EmptyWindowError",
    "MissingColumnError",
    "MissingTableError",
    "NumericText",
    "ReadOptions",
    "SourceConnectionError",
    "SourceError",
    "TypeProblem",
    "VolumeProfile",
    "WindowFacts",
    "WindowStats",
    "check_source",
    "mask_url",
    "read_labelled",
    "read_labels",
    "read_window",
    "source_url",
    "volume_profile",
]
