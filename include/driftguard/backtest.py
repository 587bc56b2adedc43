"""Replay a feature log interval by interval under several retraining strategies.

The question a backtest answers: "had this contract's policy been running over this period,
how often would it have retrained, and how good would the serving model have been, compared
with never retraining and with retraining every interval?" Each strategy replays the SAME
library steps the DAGs run (`monitor.run_monitoring`, `retrain.run_retraining`), in data time,
against its own throwaway stores (history database, MLflow tracking store and artifacts,
reports), all reading one shared feature log:

* ``policy``: the contract's retrain policy and promotion gate, as in production;
* ``never``: the initial champion forever (monitoring only);
* ``always``: retrain every interval and promote the candidate whatever the gate says
  (the gate still runs and its verdict is recorded; the promotion uses `registry.promote`).

Intervals are the contract's `schedule` by default, cut as Airflow cuts a DAG's data intervals
(`CronDataIntervalTimetable` in UTC: `@monthly` is calendar months, `@weekly` Sunday to Sunday,
the first interval starts at the first schedule time at or after the start); any preset or cron
expression can be given instead, or a fixed duration (`30d`, stepped from the start exactly).

Every strategy starts from its own initial champion, trained by `run_retraining` as of the first
interval's start in its own store (so the contract's `reference` and `training` settings apply as
in production). Training is deterministic (seeded, same data), so the initial champions are the
same model; training them separately keeps the stores independent.

"Realized metric" is what the monitoring run measured: the serving @champion's primary metric
on the labels that matured in the interval; the "estimated metric" is monitoring's label-free
estimate (CBPE / DLE, docs/estimation.md) of the same metric on the interval's rows. An interval
is "degraded" when the realized metric is worse than the serving champion's own validation
(holdout) metric by at least `policy.metric_drop` (the comparison the policy's metric_drop
trigger makes; 0.05 when the trigger is off). A retrain's gate decision comes with its evidence:
the outcome, the failed checks and the significance check's gain and its confidence interval.

Running it (`run_backtest` with an `out_dir`): each interval's row is appended to backtest.csv
and backtest.jsonl as it finishes. After each written row a strategy checkpoints its two
databases (SQLite backup), so `resume` continues a stopped or killed run from its work folder:
written intervals are skipped, an interval cut short is replayed from the state before it, and a
run whose settings differ from the stopped one's is refused. Strategies can run in parallel
processes (`jobs`), each with BLAS/OpenMP threads limited to `threads`. A backtest does not
write the per-run HTML reports (`Settings.reports`): same verdicts, less time.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import logging
import math
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from driftguard.contract import (
    CRON_PRESETS,
    Change,
    ContractError,
    ModelContract,
    Problem,
    format_duration,
    parse_contract,
    parse_duration,
)
from driftguard.settings import Settings, get_settings

log = logging.getLogger(__name__)

STRATEGIES = ("policy", "never", "always")
ACTOR = "driftguard-backtest"
FEATURE_LOG_ENV = "DRIFTGUARD_FEATURE_LOG_URL"
DEFAULT_DEGRADED_DROP = 0.05
# Env variables a strategy's replay points at its own stores (see strategy_environment).
_ENV_KEYS = (
    "DRIFTGUARD_HOME",
    "DRIFTGUARD_HISTORY_URL",
    "DRIFTGUARD_REPORTS_DIR",
    "DRIFTGUARD_MLFLOW_ARTIFACTS",
    "MLFLOW_TRACKING_URI",
    FEATURE_LOG_ENV,
)
# BLAS / OpenMP pools read these when they load: set before numpy / scikit-learn are imported.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
# Files in the output folder: rows as they finish, and the run's identity for --resume.
ROWS_CSV, ROWS_JSONL, MANIFEST = "backtest.csv", "backtest.jsonl", "backtest.run.json"
_LOCK_FILE = ".backtest.lock"
_STORE_MARKER = ".driftguard-backtest"  # in each strategy's store folder: ours to remove
# A candidate the gate did not promote: `always` promotes it anyway.
_NOT_PROMOTED = ("rejected", "insufficient_evidence")


class BacktestError(RuntimeError):
    """The backtest cannot run; the message names the model and the cause."""


# --------------------------------------------------------------------------- contract overrides


def _set_path(raw: dict[str, Any], path: str, value: Any, *, where: str) -> None:
    """Set `a.b.0.c` in a nested document; list items by index, new mapping keys allowed
    (the contract's validation then rejects unknown fields by name)."""
    parts = path.split(".")
    node: Any = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ContractError([Problem(where, ".".join(parts[: i + 1]), f"no list item {part!r}")])
            key: Any = int(part)
        elif isinstance(node, dict):
            key = part
        else:
            raise ContractError(
                [Problem(where, ".".join(parts[:i]), f"is a {type(node).__name__}, not a section with fields")]
            )
        if last:
            node[key] = value
        else:
            if isinstance(node, dict) and node.get(key) is None:
                node[key] = {}
            node = node[key]


def apply_overrides(contract: ModelContract, overrides: Sequence[str], *, file: str = "<contract>") -> ModelContract:
    """`path=value` overrides (values parsed as YAML), re-validated like a contract file: an invalid
    value or unknown field raises ContractError naming the field."""
    if not overrides:
        return contract
    raw = contract.model_dump(mode="json")
    where = f"{file} with --set {' '.join(overrides)}"
    for item in overrides:
        path, sep, text = item.partition("=")
        path = path.strip()
        if not sep or not path:
            raise ContractError([Problem(where, item or "<empty>", "expected --set dotted.path=value")])
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ContractError([Problem(where, path, f"value {text!r} is not valid YAML: {exc}")]) from None
        _set_path(raw, path, value, where=where)
    return parse_contract(yaml.safe_dump(raw, sort_keys=False), file=where)


# --------------------------------------------------------------------------- intervals


@dataclass(frozen=True)
class Cadence:
    """How a backtest cuts time: a schedule (preset or cron, UTC) or a fixed duration.

    A schedule gives the data intervals Airflow's `CronDataIntervalTimetable` gives a DAG with
    that schedule and catchup from the backtest's start: the first interval starts at the first
    schedule time at or after the start, each ends at the next schedule time. A duration steps
    from the start exactly (`30d` slides against calendar months)."""

    text: str  # as given, for messages and outputs
    cron: str | None = None  # the cron expression (presets expanded), or
    step: timedelta | None = None  # the fixed length

    @classmethod
    def parse(cls, value: str | timedelta) -> Cadence:
        """`@monthly`, `0 6 * * 1`, `30d`, `1w` or a timedelta; ValueError names what is wrong."""
        if isinstance(value, timedelta):
            if value <= timedelta(0):
                raise ValueError(f"an interval must be positive, got {value}")
            return cls(format_duration(value), step=value)
        text = str(value).strip()
        if text == "@once":
            raise ValueError("schedule @once has no intervals to replay: give --interval (e.g. @weekly or 7d)")
        if text.startswith("@") or len(text.split()) >= 5:
            from croniter import croniter

            expr = CRON_PRESETS.get(text)
            if expr is None and text.startswith("@"):
                raise ValueError(f"unknown schedule preset {text!r}; use one of {', '.join(CRON_PRESETS)}")
            expr = expr or text
            if not croniter.is_valid(expr):
                raise ValueError(f"{text!r} is not a valid cron expression")
            return cls(text, cron=expr)
        try:
            step = parse_duration(text)
        except ValueError:
            raise ValueError(
                f"interval {text!r} is neither a schedule (@daily, @weekly, @monthly, a cron expression) "
                "nor a duration (7d, 30d, 12h)"
            ) from None
        return cls.parse(step)

    @property
    def key(self) -> str:
        """Equal for equal cadences however written (`7d` and `1w`)."""
        return f"cron {self.cron}" if self.cron else f"every {format_duration(self.step or timedelta(0))}"

    def _fire(self, t: datetime, direction: str) -> datetime:
        from croniter import croniter

        naive = t.astimezone(UTC).replace(tzinfo=None)  # as Airflow does, in the DAG's timezone (UTC)
        it = croniter(self.cron, naive)
        out = it.get_next(datetime) if direction == "next" else it.get_prev(datetime)
        return out.replace(tzinfo=UTC)

    def align(self, t: datetime) -> datetime:
        """The first interval start at or after `t` (Airflow's _align_to_next)."""
        if self.cron is None:
            return t
        nxt = self._fire(t, "next")
        return t if self._fire(nxt, "prev") == t else nxt

    def intervals(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """Whole intervals in [start, end)."""
        out: list[tuple[datetime, datetime]] = []
        s = self.align(start)
        while True:
            e = s + self.step if self.step is not None else self._fire(s, "next")
            if e > end:
                return out
            out.append((s, e))
            s = e

    def previous(self, start: datetime) -> tuple[datetime, datetime]:
        """The interval that ends where an interval starting at `start` begins."""
        return (start - self.step, start) if self.step is not None else (self._fire(start, "prev"), start)


def schedule_intervals(schedule: str | timedelta, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The data intervals of `schedule` (preset, cron or duration) within [start, end), in UTC."""
    return Cadence.parse(schedule).intervals(start, end)


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class BacktestConfig:
    contract: ModelContract
    start: datetime
    end: datetime
    interval: timedelta | str | None = None  # a schedule or a duration; None: the contract's schedule
    strategies: tuple[str, ...] = STRATEGIES
    feature_log_url: str | None = None  # None: the contract's source / the settings default
    work_dir: Path | None = None  # strategy stores; None: OUT/stores with an out_dir, else a temp dir
    progress: bool = True
    out_dir: Path | None = None  # rows written here as they finish; needed for resume
    resume: bool = False  # continue the stopped run in out_dir
    stop_after: int | None = None  # replay at most this many intervals per strategy, then stop
    jobs: int = 1  # strategies replayed in parallel processes
    threads: int = 1  # BLAS / OpenMP threads per process
    reports: bool = False  # per-run HTML reports in the strategy stores (Settings.reports)
    keep_stores: bool = False  # with an out_dir: keep the stores once the run has finished

    def __post_init__(self) -> None:
        name = self.contract.name
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise BacktestError(f"{name}: backtest start and end must be timezone-aware (UTC)")
        try:
            cadence = self.cadence
        except ValueError as exc:
            raise BacktestError(f"{name}: {exc}") from None
        if not self.intervals():
            raise BacktestError(
                f"{name}: {self.start.isoformat()}..{self.end.isoformat()} holds no whole interval of {cadence.text}"
            )
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies or len(set(self.strategies)) != len(self.strategies):
            raise BacktestError(f"{name}: unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
        if self.contract.source.labels is None:
            raise BacktestError(f"{name}: the contract has no labels (source.labels); nothing to retrain or measure")
        if self.jobs < 1 or self.threads < 1 or (self.stop_after is not None and self.stop_after < 1):
            raise BacktestError(f"{name}: jobs, threads and stop_after must be at least 1")
        if self.resume and self.out_dir is None:
            raise BacktestError(f"{name}: resume needs the output folder of the stopped run")

    @cached_property
    def cadence(self) -> Cadence:
        return Cadence.parse(self.interval if self.interval is not None else self.contract.schedule)

    def intervals(self) -> list[tuple[datetime, datetime]]:
        return self.cadence.intervals(self.start, self.end)

    @property
    def degraded_drop(self) -> Change:
        drop = self.contract.policy.metric_drop
        return Change(DEFAULT_DEGRADED_DROP, relative=False) if drop is None else drop

    @property
    def stores_dir(self) -> Path | None:
        if self.work_dir is not None:
            return self.work_dir.resolve()
        return (self.out_dir / "stores").resolve() if self.out_dir is not None else None


def utc(value: str | date | datetime) -> datetime:
    """A date or ISO timestamp as tz-aware UTC (naive means UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def contract_hash(contract: ModelContract) -> str:
    """sha256 of the contract as validated (overrides and seeds included)."""
    text = json.dumps(contract.model_dump(mode="json"), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _masked(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: compared as given
        return url


def strategy_settings(
    root: Path, strategy: str, feature_log_url: str, base: Settings | None = None, *, reports: bool = False
) -> Settings:
    """Throwaway stores of one strategy under root/strategy; shared feature log and models dir."""
    base = base or get_settings()
    home = (root / strategy).resolve()
    return Settings(
        home=home,
        models_dir=base.models_dir,
        reports_dir=home / "reports",
        history_url=f"sqlite:///{home / 'history.db'}",
        feature_log_url=feature_log_url,
        mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
        mlflow_artifacts_dir=home / "mlartifacts",
        reports=reports,
    )


@contextmanager
def strategy_environment(settings: Settings) -> Iterator[None]:
    """Point the process at one strategy's stores, and restore everything afterwards.

    Passing Settings is not enough on its own: `sources` resolves ${DRIFTGUARD_FEATURE_LOG_URL}
    from the environment, `mlflow_setup.artifacts_dir` reads DRIFTGUARD_MLFLOW_ARTIFACTS through
    get_settings(), `mlflow_setup.configure` sets MLflow's process-wide tracking URI, and the
    servability check's child process inherits the environment. Setting the variables to the
    strategy's own values makes every one of those agree with the Settings passed through."""
    import mlflow

    env = {
        "DRIFTGUARD_HOME": str(settings.home),
        "DRIFTGUARD_HISTORY_URL": settings.history_url,
        "DRIFTGUARD_REPORTS_DIR": str(settings.reports_dir),
        "DRIFTGUARD_MLFLOW_ARTIFACTS": str(settings.mlflow_artifacts_dir),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        FEATURE_LOG_ENV: settings.feature_log_url,
    }
    saved = {key: os.environ.get(key) for key in _ENV_KEYS}
    saved_uri = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ.update(env)
    settings.ensure_dirs()
    try:
        yield
    finally:
        _restore_env(saved)
        mlflow.set_tracking_uri(saved_uri)  # None unsets it again


def _restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextmanager
def thread_limits(threads: int) -> Iterator[None]:
    """At most `threads` BLAS / OpenMP threads in this process and the processes it starts.

    The variables reach pools that load later (numpy, scikit-learn's OpenMP, the servability
    check's child process); threadpoolctl caps the pools already loaded. Unlimited, every
    process on a busy 2-core machine starts one thread per core and they all wait on each other
    (gradient boosting and permutation importance were 3-5x slower)."""
    saved = {key: os.environ.get(key) for key in THREAD_ENV}
    os.environ.update({key: str(threads) for key in THREAD_ENV})
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it the variables still apply to later pools
        threadpool_limits = None
    try:
        if threadpool_limits is None:
            yield
        else:
            with threadpool_limits(limits=threads):
                yield
    finally:
        _restore_env(saved)


# --------------------------------------------------------------------------- results


@dataclass
class IntervalRow:
    """What one strategy saw and did in one interval."""

    strategy: str
    interval_start: str
    interval_end: str
    rows: int
    status: str  # monitoring status: ok | no_data | quality_failed | degraded
    quality_passed: bool
    drift_share: float | None
    drifted_features: int
    champion_version: str | None  # the serving champion during the interval
    champion_metric: float | None  # its validation (holdout) metric
    metric: float | None  # realized: serving champion on the matured labels
    estimated_metric: float | None  # label-free estimate (CBPE / DLE) on the interval's rows
    estimated_lower: float | None  # the estimate's band
    estimated_upper: float | None
    degraded: bool | None  # None when not measured
    decision: bool  # the contract policy's verdict (recorded for every strategy)
    reasons: str  # fired triggers and blocking guards, by rule name
    retrain: str  # "" | promoted | rejected | insufficient_evidence | insufficient_data | forced | failed | skipped
    gate: str  # the gate's outcome: promote | reject | insufficient_evidence ("" when no gate ran)
    gate_failed: str  # the checks that failed, by name
    gain: float | None  # significance check: challenger - champion on the primary metric (+ = better)
    gain_ci_low: float | None  # and its confidence interval
    gain_ci_high: float | None
    new_champion: str | None
    shadow_promoted: str | None = None  # a shadowing challenger promoted at the end of monitoring (its version)
    seconds: float = 0.0  # wall-clock time (not in backtest.csv: excluded from determinism)

    def table(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("seconds")
        return d

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "seconds"]


@dataclass
class StrategyTotals:
    strategy: str
    intervals: int = 0
    retrains: int = 0
    promotions: int = 0
    failed_retrains: int = 0
    measured_intervals: int = 0
    mean_metric: float | None = None
    degraded_intervals: int = 0
    seconds: float = 0.0

    def table(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("seconds")
        return d


@dataclass
class BacktestResult:
    model: str
    metric_name: str
    greater_is_better: bool
    degraded_drop: str  # the policy's metric_drop, e.g. "5%" or "0.05 abs"
    start: str
    end: str
    interval: str
    rows: list[IntervalRow] = field(default_factory=list)
    totals: list[StrategyTotals] = field(default_factory=list)
    initial: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    expected_rows: int = 0  # intervals x strategies
    paths: dict[str, Path] = field(default_factory=dict)  # what run_backtest wrote to out_dir

    @property
    def finished(self) -> bool:
        return len(self.rows) >= self.expected_rows

    def table(self) -> list[dict[str, Any]]:
        """The per-interval table without timings: equal for equal inputs."""
        return [r.table() for r in self.rows]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "metric": self.metric_name,
            "greater_is_better": self.greater_is_better,
            "degraded_drop": str(self.degraded_drop),
            "start": self.start,
            "end": self.end,
            "interval": self.interval,
            "seconds": round(self.seconds, 2),
            "initial_champion": self.initial,
            "totals": [asdict(t) for t in self.totals],
            "rows": [asdict(r) for r in self.rows],
        }


def is_degraded(
    metric: float | None, champion: float | None, *, drop: Change | float, greater_is_better: bool
) -> bool | None:
    """Realized metric worse than the champion's validation metric by at least `drop`."""
    if metric is None or champion is None or not (math.isfinite(metric) and math.isfinite(champion)):
        return None
    loss = champion - metric if greater_is_better else metric - champion
    limit = drop.of(champion) if isinstance(drop, Change) else drop
    return loss >= limit - 1e-9


def totals(rows: Sequence[IntervalRow], strategy: str) -> StrategyTotals:
    mine = [r for r in rows if r.strategy == strategy]
    measured = [r.metric for r in mine if r.metric is not None and math.isfinite(r.metric)]
    return StrategyTotals(
        strategy=strategy,
        intervals=len(mine),
        retrains=sum(1 for r in mine if r.retrain and r.retrain != "skipped"),
        promotions=sum(1 for r in mine if r.retrain in ("promoted", "forced"))
        + sum(1 for r in mine if r.shadow_promoted),
        failed_retrains=sum(1 for r in mine if r.retrain == "failed"),
        measured_intervals=len(measured),
        mean_metric=round(sum(measured) / len(measured), 6) if measured else None,
        degraded_intervals=sum(1 for r in mine if r.degraded),
        seconds=round(sum(r.seconds for r in mine), 2),
    )


def _round(x: Any) -> float | None:
    if x is None:
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return round(value, 6) if math.isfinite(value) else None


# --------------------------------------------------------------------------- rows on disk


def _csv_line(row: IntervalRow) -> str:
    buf = io.StringIO()
    csv.DictWriter(buf, fieldnames=IntervalRow.columns(), lineterminator="\n").writerow(row.table())
    return buf.getvalue()


def _csv_header() -> str:
    return ",".join(IntervalRow.columns()) + "\n"


class Journal:
    """backtest.csv (the decision table: no timings) and backtest.jsonl (every field, timings
    too), appended one row at a time, flushed and synced, under a file lock so parallel strategy
    processes never interleave half lines. The JSONL is what --resume reads back."""

    def __init__(self, out_dir: Path):
        self.dir = out_dir
        self.csv, self.jsonl, self.lock = out_dir / ROWS_CSV, out_dir / ROWS_JSONL, out_dir / _LOCK_FILE

    @contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        with open(self.lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def append(self, row: IntervalRow) -> None:
        line = json.dumps(asdict(row), sort_keys=False) + "\n"
        with self._locked():
            for path, text in ((self.jsonl, line), (self.csv, _csv_line(row))):
                new = not path.exists() or path.stat().st_size == 0
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write((_csv_header() if new and path == self.csv else "") + text)
                    fh.flush()
                    os.fsync(fh.fileno())

    def read(self) -> list[IntervalRow]:
        """The rows written so far; a torn last line (a kill mid-write) is dropped."""
        if not self.jsonl.exists():
            return []
        rows = []
        names = {f.name for f in fields(IntervalRow)}
        for n, line in enumerate(self.jsonl.read_text(encoding="utf-8").splitlines(), start=1):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s line %d is incomplete (a run stopped while writing it); dropped", self.jsonl, n)
                continue
            if set(data) != names:
                raise BacktestError(f"{self.jsonl} line {n} has other columns than this version writes; start anew")
            rows.append(IntervalRow(**data))
        return rows

    def rewrite(self, rows: Sequence[IntervalRow]) -> None:
        """Both files anew, atomically (rows in the given order)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            for path, text in (
                (self.jsonl, "".join(json.dumps(asdict(r)) + "\n" for r in rows)),
                (self.csv, _csv_header() + "".join(_csv_line(r) for r in rows)),
            ):
                tmp = path.with_name(f".{path.name}.tmp")
                tmp.write_text(text, encoding="utf-8")
                tmp.replace(path)

    def clear(self) -> None:
        for path in (self.csv, self.jsonl):
            path.unlink(missing_ok=True)


class Checkpoints:
    """A strategy's two databases (history, MLflow) copied after each written interval.

    With them, a resumed strategy starts from exactly the state after its last written row: an
    interval that was cut short (its monitoring published, its retrain half done) is replayed
    from the state before it, as if it had never started. Copies use SQLite's backup API, so they
    are consistent and restoring one is safe even with connections open. Artifacts are not
    copied: new runs only add files under new ids, and a replayed interval writes new ones."""

    DATABASES = ("history.db", "mlflow.db")

    def __init__(self, home: Path):
        self.home, self.dir = home, home / "checkpoints"

    def _path(self, k: int) -> Path:
        return self.dir / f"{k:06d}"

    def available(self) -> list[int]:
        if not self.dir.is_dir():
            return []
        return sorted(int(p.name) for p in self.dir.iterdir() if p.name.isdigit() and (p / "meta.json").exists())

    @staticmethod
    def _copy(src: Path, dst: Path) -> None:
        source, target = sqlite3.connect(src), sqlite3.connect(dst)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()

    def save(self, k: int, meta: dict[str, Any]) -> None:
        tmp = self.dir / f".tmp-{k:06d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name in self.DATABASES:
            if (self.home / name).exists():
                self._copy(self.home / name, tmp / name)
        (tmp / "meta.json").write_text(json.dumps({**meta, "intervals": k}, default=str))
        shutil.rmtree(self._path(k), ignore_errors=True)
        tmp.replace(self._path(k))

    def prune(self, keep: int) -> None:
        for p in self.dir.iterdir() if self.dir.is_dir() else ():
            if p.name != self._path(keep).name:
                shutil.rmtree(p, ignore_errors=True)

    def meta(self, k: int) -> dict[str, Any]:
        return json.loads((self._path(k) / "meta.json").read_text())

    def restore(self, k: int) -> dict[str, Any]:
        for name in self.DATABASES:
            if (self._path(k) / name).exists():
                self._copy(self._path(k) / name, self.home / name)
        self.prune(k)
        return self.meta(k)


# --------------------------------------------------------------------------- replay


def _champion(contract: ModelContract, settings: Settings) -> tuple[str | None, float | None]:
    """(@champion version, its holdout primary metric, which monitoring calls its validation metric)."""
    from mlflow import MlflowClient

    from driftguard.retraining import registry

    mv = registry.champion_version(contract.registered_model_name, tracking_uri=settings.mlflow_tracking_uri)
    if mv is None:
        return None, None
    run = MlflowClient(settings.mlflow_tracking_uri).get_run(mv.run_id)
    value = run.data.metrics.get(f"holdout_{contract.primary_metric}")
    return str(mv.version), (None if value is None else round(float(value), 6))


def _force_promote(contract: ModelContract, settings: Settings, version: str, at: datetime, why: str) -> None:
    """The `always` strategy: promote a candidate the gate rejected, through the registry's guarded promote."""
    from driftguard.retraining import registry
    from driftguard.store import HistoryStore

    name, uri = contract.registered_model_name, settings.mlflow_tracking_uri
    current = registry.champion_version(name, tracking_uri=uri)
    registry.promote(
        name,
        version,
        expected_champion=None if current is None else current.version,
        store=HistoryStore(settings.history_url),
        actor=ACTOR,
        reason=f"backtest: promoted without the gate ({why})",
        tracking_uri=uri,
        at=at,
    )


def _retrain(
    contract: ModelContract,
    settings: Settings,
    start: datetime,
    end: datetime,
    *,
    force: bool,
    summary: str,
    request: dict[str, Any] | None = None,
) -> tuple[str, str | None]:
    """One retraining run; (status, new champion version or None). Failures are recorded, not raised:
    one interval that cannot be trained on must not end a whole backtest."""
    from driftguard.retraining import retrain

    try:
        trigger = {"summary": summary, **(request or {})}  # the change point, as the DAG's conf carries it
        result = retrain.run_retraining(contract, start, end, trigger=trigger, settings=settings)
    except Exception as exc:
        log.warning("%s: retraining as of %s failed: %s: %s", contract.name, end.isoformat(), type(exc).__name__, exc)
        return "failed", None
    status = str(result["status"])
    if status in _NOT_PROMOTED and force and result.get("version"):
        _force_promote(contract, settings, str(result["version"]), end, result.get("summary", status))
        return "forced", str(result["version"])
    return status, (str(result["version"]) if status == "promoted" else None)


def _monitoring_record(contract: ModelContract, settings: Settings, start: datetime, end: datetime) -> dict[str, Any]:
    """The decision (as rule names: details hold wall-clock text) and the label-free estimate that
    the monitoring run recorded in history."""
    from driftguard.store import HistoryStore

    run = HistoryStore(settings.history_url).get_run(contract.name, start, end)
    if run is None:
        return {"decision": False, "reasons": "", "estimated": {}}
    fired = [r["rule"] for r in run.reasons if r["kind"] == "trigger" and r["fired"]]
    blocking = [r["rule"] for r in run.reasons if r["kind"] == "guard" and r["fired"]]
    text = ", ".join(fired) if fired else "no trigger"
    if fired and blocking and not run.retrain:
        text += " (blocked by " + ", ".join(blocking) + ")"
    estimated = (run.signals or {}).get("estimated_metric") or {}
    return {"decision": bool(run.retrain), "reasons": text, "estimated": estimated}


def gate_evidence(verdict: dict[str, Any] | None) -> dict[str, Any]:
    """A retrain's recorded verdict (store.finish_retrain) as the row's gate columns."""
    out: dict[str, Any] = {"gate": "", "gate_failed": "", "gain": None, "gain_ci_low": None, "gain_ci_high": None}
    checks = (verdict or {}).get("checks")
    if not checks:  # no gate ran: no candidate (insufficient data), a failure
        return out
    outcome = verdict.get("outcome") or ("promote" if verdict.get("promote") else "reject")
    out["gate"] = "first_champion" if verdict.get("first_champion") and outcome == "promote" else outcome
    out["gate_failed"] = ", ".join(c["name"] for c in checks if not c.get("passed"))
    sig = next((c.get("numbers") or {} for c in checks if c.get("name") == "significance"), {})
    out.update(
        gain=_round(sig.get("diff")), gain_ci_low=_round(sig.get("ci_low")), gain_ci_high=_round(sig.get("ci_high"))
    )
    return out


def _gate_record(contract: ModelContract, settings: Settings, start: datetime, end: datetime) -> dict[str, Any]:
    from driftguard.store import HistoryStore

    rows = HistoryStore(settings.history_url).retrains(contract.name)
    row = next((r for r in rows if r["interval_start"] == start and r["interval_end"] == end), None)
    return gate_evidence(None if row is None else row.get("verdict"))


def initial_champion(config: BacktestConfig, settings: Settings) -> dict[str, Any]:
    """Train and promote the champion every strategy starts from, as of the first interval's start,
    through run_retraining (the contract's reference and training settings apply)."""
    contract = config.contract
    first = config.intervals()[0][0]
    before = config.cadence.previous(first)
    status, _ = _retrain(
        contract, settings, before[0], before[1], force=True, summary="backtest: initial champion as of the start"
    )
    version, metric = _champion(contract, settings)
    if version is None:
        raise BacktestError(
            f"{contract.name}: no initial champion as of {first.isoformat()} (retraining {status}); the feature log "
            f"needs labelled rows before the start covering training.validation + training.holdout "
            f"({contract.training.validation} + {contract.training.holdout}); see the log above"
        )
    return {"version": version, "metric": metric, "status": status, "as_of": first.isoformat()}


def replay_interval(
    config: BacktestConfig, settings: Settings, strategy: str, start: datetime, end: datetime
) -> IntervalRow:
    """Monitor one interval with the serving champion, then act as the strategy says."""
    from driftguard.monitoring import monitor

    contract = config.contract
    t0 = time.perf_counter()
    version, champion_metric = _champion(contract, settings)
    mon = monitor.run_monitoring(contract, start, end, settings=settings)
    recorded = _monitoring_record(contract, settings, start, end)
    metric = None if mon.get("metric") is None else round(float(mon["metric"]), 6)
    action, new = "", None
    gate = gate_evidence(None)
    if strategy == "always" or (strategy == "policy" and recorded["decision"]):
        action, new = _retrain(
            contract,
            settings,
            start,
            end,
            force=strategy == "always",
            summary=f"backtest {strategy}: {mon.get('summary', '')}",
            request=mon.get("retrain_request") if strategy == "policy" else None,
        )
        gate = _gate_record(contract, settings, start, end)
    drift = mon.get("drift_share")
    est = recorded["estimated"]
    shadow = mon.get("shadow_promotion") or {}
    shadowed = str(shadow["version"]) if shadow.get("promoted") and shadow.get("version") else None
    if shadowed and new is None:
        new = shadowed
    return IntervalRow(
        strategy=strategy,
        interval_start=start.isoformat(),
        interval_end=end.isoformat(),
        rows=int(mon.get("rows") or 0),
        status=str(mon.get("status")),
        quality_passed=bool(mon.get("quality_passed")),
        drift_share=None if drift is None else round(float(drift), 6),
        drifted_features=len(mon.get("drifted_features") or ()),
        champion_version=version,
        champion_metric=champion_metric,
        metric=metric,
        estimated_metric=_round(est.get("value")),
        estimated_lower=_round(est.get("lower")),
        estimated_upper=_round(est.get("upper")),
        degraded=is_degraded(
            metric, champion_metric, drop=config.degraded_drop, greater_is_better=contract.greater_is_better
        ),
        decision=recorded["decision"],
        reasons=recorded["reasons"],
        retrain=action,
        new_champion=new,
        shadow_promoted=shadowed,
        seconds=round(time.perf_counter() - t0, 2),
        **gate,
    )


@dataclass(frozen=True)
class StrategyTask:
    """One strategy's share of a backtest: picklable, for a worker process."""

    config: BacktestConfig
    strategy: str
    root: Path
    feature_log_url: str
    base: Settings
    done: int  # intervals already written (resume)


Report = Callable[[str, str, Any], None]  # (kind: phase | initial | row, strategy, payload)


def _no_report(kind: str, strategy: str, payload: Any) -> None:
    pass


def _marked(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / _STORE_MARKER).touch()


def replay_strategy(task: StrategyTask, report: Report = _no_report) -> tuple[dict[str, Any], list[IntervalRow]]:
    """Replay one strategy over the intervals not yet written: (initial champion, new rows).

    With an out_dir, each row is appended to the journal, after a checkpoint of the strategy's
    databases; a resumed strategy first restores the checkpoint of its last written row."""
    config, strategy = task.config, task.strategy
    intervals = config.intervals()
    settings = strategy_settings(task.root, strategy, task.feature_log_url, task.base, reports=config.reports)
    journal = Journal(config.out_dir) if config.out_dir is not None else None
    checkpoints = Checkpoints(settings.home) if journal is not None else None
    initial: dict[str, Any] | None = None
    if checkpoints is not None and task.done in checkpoints.available():
        if task.done >= len(intervals):
            return checkpoints.meta(task.done)["initial"], []
        initial = checkpoints.restore(task.done)["initial"]
        log.info("%s %s: resumed after %d written intervals", config.contract.name, strategy, task.done)
    elif task.done:
        raise BacktestError(
            f"{config.contract.name}: cannot resume strategy {strategy}: {settings.home} holds no checkpoint "
            f"after its {task.done} written intervals (were the stores removed?); start anew without --resume"
        )
    elif settings.home.exists():  # an earlier attempt stopped before its first checkpoint: start clean
        _remove_stores(task.root, [strategy])
    _marked(settings.home)
    rows: list[IntervalRow] = []
    with strategy_environment(settings):
        if initial is None:
            report("phase", strategy, "initial champion")
            initial = initial_champion(config, settings)
            if checkpoints is not None:
                checkpoints.save(0, {"initial": initial})
        report("initial", strategy, initial)
        for i in range(task.done, len(intervals)):
            if config.stop_after is not None and i - task.done >= config.stop_after:
                break
            start, end = intervals[i]
            report("phase", strategy, f"{start:%Y-%m-%d}")
            row = replay_interval(config, settings, strategy, start, end)
            if checkpoints is not None and journal is not None:
                checkpoints.save(i + 1, {"initial": initial})
                journal.append(row)
                checkpoints.prune(i + 1)
            rows.append(row)
            report("row", strategy, row.seconds)
    return initial, rows


# --------------------------------------------------------------------------- parallel strategies

_WORKER_QUEUE: Any = None


def _init_worker(queue: Any, threads: int, level: int) -> None:
    """A fresh (spawned) worker: thread limits before numpy loads, logging, the progress queue,
    and an exit when the backtest that started it is gone."""
    global _WORKER_QUEUE
    os.environ.update({key: str(threads) for key in THREAD_ENV})
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    _WORKER_QUEUE = queue
    exit_with_parent(os.getppid())


def exit_with_parent(parent: int, every: float = 1.0) -> None:
    """End this process once ``parent`` is gone (it is re-parented). A worker replays a whole
    strategy before it would notice its parent's pipe is closed: a backtest stopped with SIGTERM
    left its workers training for minutes, writing into the stores a --resume then reads."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _queue_report(kind: str, strategy: str, payload: Any) -> None:
    if _WORKER_QUEUE is not None:
        _WORKER_QUEUE.put((kind, strategy, payload))


def _worker(task: StrategyTask) -> tuple[dict[str, Any], list[IntervalRow]]:
    with thread_limits(task.config.threads):
        return replay_strategy(task, _queue_report)


def _run_parallel(tasks: Sequence[StrategyTask], jobs: int, threads: int, report: Report) -> list[Any]:
    """Strategies in `jobs` spawned processes; their progress events relayed to `report`."""
    import multiprocessing
    import queue as queue_mod
    from concurrent.futures import ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited locks, pools or threads
    events = ctx.Queue()

    def drain() -> None:
        while True:
            try:
                report(*events.get_nowait())
            except queue_mod.Empty:
                return

    level = logging.getLogger().getEffectiveLevel()
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(tasks)), mp_context=ctx, initializer=_init_worker, initargs=(events, threads, level)
    ) as pool:
        futures = [pool.submit(_worker, t) for t in tasks]
        pending, failed = set(futures), None
        while pending:
            done, pending = wait(pending, timeout=0.5)
            drain()
            for f in done:
                if failed is None and not f.cancelled() and f.exception() is not None:
                    failed = f.exception()  # the others finish their interval runs; nothing new starts
                    for other in pending:
                        other.cancel()
    drain()
    if failed is not None:
        raise failed
    return [f.result() for f in futures]


# --------------------------------------------------------------------------- the run


def _manifest(config: BacktestConfig, url: str, root: Path) -> dict[str, Any]:
    return {
        "format": 1,
        "model": config.contract.name,
        "contract_sha256": contract_hash(config.contract),
        "start": config.start.isoformat(),
        "end": config.end.isoformat(),
        "interval": config.cadence.key,
        "strategies": list(config.strategies),
        "feature_log": _masked(url),
        "intervals": len(config.intervals()),
        "work_dir": str(root),
        "finished": False,
        "initial_champion": {},
    }


# What makes two runs the same backtest (threads, jobs, reports and progress do not change a row).
_IDENTITY = {
    "contract_sha256": "the contract (after --set and --seed)",
    "start": "--start",
    "end": "--end",
    "interval": "--interval",
    "strategies": "--strategies",
    "feature_log": "the feature log",
}


def _write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    tmp = out_dir / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, default=str))
    tmp.replace(out_dir / MANIFEST)


def _remove_stores(root: Path, strategies: Sequence[str] = STRATEGIES) -> None:
    """Only folders this module made (with the marker): a --work-dir may hold other things."""
    homes = [root / s for s in strategies if (root / s).exists()]
    for home in homes:
        if not (home / _STORE_MARKER).exists():
            raise BacktestError(f"{home} exists and is not a backtest store; choose another --work-dir")
    _forget_connections(homes)
    for home in homes:
        shutil.rmtree(home, ignore_errors=True)
    if root.exists() and not any(root.iterdir()):
        root.rmdir()


def _forget_connections(homes: Sequence[Path]) -> None:
    """Close this process's pooled connections to stores about to be removed: a later backtest in
    the same process may create new files at the same paths, and a pooled connection would go on
    reading and writing the removed file (driftguard's and MLflow's engines are cached per URL)."""
    import sys

    from driftguard.store import dispose_engines

    dispose_engines()
    if "mlflow" not in sys.modules:
        return
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

    uris = {f"sqlite:///{home.resolve() / 'mlflow.db'}" for home in homes}
    for cls in (TrackingStore, RegistryStore):
        engines = getattr(cls, "_engine_map", None)  # MLflow 3's per-URI engine cache
        if isinstance(engines, dict):
            for uri in uris & set(engines):
                engines.pop(uri).dispose()


def _prepare_out(config: BacktestConfig, url: str, root: Path) -> tuple[dict[str, Any], list[IntervalRow]]:
    """The manifest and the rows already written: a fresh run clears what an earlier finished run
    left; --resume checks it is the same backtest and keeps its rows (in a clean journal)."""
    assert config.out_dir is not None
    out, name = config.out_dir, config.contract.name
    out.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(config, url, root)
    journal = Journal(out)
    path = out / MANIFEST
    old = json.loads(path.read_text()) if path.exists() else None
    if config.resume and old is not None:
        diffs = [
            f"{what}: was {old.get(key)!r}, now {manifest[key]!r}"
            for key, what in _IDENTITY.items()
            if old.get(key) != manifest[key]
        ]
        if diffs:
            raise BacktestError(
                f"{name}: cannot resume the backtest in {out}: it was started with other settings ("
                + "; ".join(diffs)
                + "). Rerun with the same settings, or without --resume into another --out."
            )
        rows = journal.read()
        expected = [(s.isoformat(), e.isoformat()) for s, e in config.intervals()]
        for strategy in config.strategies:
            mine = [(r.interval_start, r.interval_end) for r in rows if r.strategy == strategy]
            if mine != expected[: len(mine)]:
                raise BacktestError(f"{name}: {out / ROWS_JSONL} does not hold {strategy}'s first intervals in order")
        manifest["initial_champion"] = old.get("initial_champion") or {}
        manifest["work_dir"] = old.get("work_dir", manifest["work_dir"])
        journal.rewrite(_ordered(rows, config.strategies))
        _write_manifest(out, manifest)
        return manifest, rows
    if old is not None and not old.get("finished"):
        written = len(journal.read())
        raise BacktestError(
            f"{name}: {out} holds an unfinished backtest ({written} of "
            f"{old.get('intervals', 0) * len(old.get('strategies', []))} rows written). Continue it with --resume, "
            "or remove the folder (or choose another --out) to start anew."
        )
    journal.clear()
    for stale in ("totals.csv", "backtest.json", "backtest.html"):
        (out / stale).unlink(missing_ok=True)
    _remove_stores(root)
    _write_manifest(out, manifest)
    return manifest, []


def _ordered(rows: Sequence[IntervalRow], strategies: Sequence[str]) -> list[IntervalRow]:
    """Strategy by strategy (in the given order), then by interval: the same for any run order."""
    rank = {s: i for i, s in enumerate(strategies)}
    return sorted(rows, key=lambda r: (rank.get(r.strategy, len(rank)), r.interval_start))


def replay_contract(contract: ModelContract) -> ModelContract:
    """The contract as a replay runs it: a logged prediction column holds the scores of the model
    that served back then, not of the champion this strategy serves, so every interval is scored
    by the strategy's own @champion instead (without this, every strategy would report the same
    metric whatever it retrained)."""
    if contract.source.prediction_column is None:
        return contract
    log.info(
        "%s: the backtest scores with each strategy's champion; logged column %r is not used",
        contract.name,
        contract.source.prediction_column,
    )
    source = contract.source.model_copy(update={"prediction_column": None})
    return contract.model_copy(update={"source": source})


def run_backtest(config: BacktestConfig) -> BacktestResult:
    """Replay every strategy over every interval, each in its own stores and environment: one after
    the other, or `config.jobs` at a time in spawned processes.

    With `config.out_dir`, rows are appended there as they finish; once every row is written the
    summary outputs follow (write_outputs) and the stores are removed unless `keep_stores`. A
    stopped run (`stop_after`, an error, a kill) keeps its stores for `resume`."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    config = replace(config, contract=replay_contract(config.contract))
    contract = config.contract
    base = get_settings()
    url = config.feature_log_url or os.environ.get(FEATURE_LOG_ENV) or base.feature_log_url
    intervals = config.intervals()
    result = BacktestResult(
        model=contract.name,
        metric_name=contract.primary_metric,
        greater_is_better=contract.greater_is_better,
        degraded_drop=str(config.degraded_drop),
        start=config.start.isoformat(),
        end=config.end.isoformat(),
        interval=config.cadence.text,
        expected_rows=len(intervals) * len(config.strategies),
    )
    temporary = config.stores_dir is None
    root = config.stores_dir or Path(tempfile.mkdtemp(prefix=f"driftguard-backtest-{contract.name}-"))
    manifest, written = _prepare_out(config, url, root) if config.out_dir is not None else ({}, [])
    if manifest.get("work_dir"):
        root = Path(manifest["work_dir"])
    done = {s: sum(1 for r in written if r.strategy == s) for s in config.strategies}
    initial: dict[str, dict[str, Any]] = dict(manifest.get("initial_champion") or {})
    log.info(
        "%s: backtest %s..%s, %d intervals of %s from %s, strategies %s, stores in %s%s",
        contract.name,
        result.start,
        result.end,
        len(intervals),
        result.interval,
        intervals[0][0].isoformat(),
        ",".join(config.strategies),
        root,
        f"; resuming with {len(written)} rows written" if written else "",
    )
    bar = tqdm(
        total=result.expected_rows,
        initial=len(written),
        desc=f"backtest {contract.name}",
        unit="interval",
        disable=not config.progress,
    )
    phases: dict[str, str] = {}

    def report(kind: str, strategy: str, payload: Any) -> None:
        if kind == "row":
            bar.update(1)
        elif kind == "initial" and initial.get(strategy) != payload:
            initial[strategy] = payload
            if config.out_dir is not None:
                _write_manifest(config.out_dir, {**manifest, "initial_champion": dict(initial)})
        elif kind == "phase":
            phases[strategy] = str(payload)
            bar.set_postfix_str(", ".join(f"{s} {p}" for s, p in phases.items()), refresh=True)

    tasks = [
        StrategyTask(config, s, root, url, base, done[s])
        for s in config.strategies
        if done[s] < len(intervals) or s not in initial
    ]
    new_rows: list[IntervalRow] = []
    try:
        with thread_limits(config.threads):
            if config.jobs > 1 and len(tasks) > 1:
                outcomes = _run_parallel(tasks, config.jobs, config.threads, report)
            else:
                outcomes = [replay_strategy(t, report) for t in tasks]
        for task, (first, rows) in zip(tasks, outcomes, strict=True):
            initial[task.strategy] = first
            new_rows.extend(rows)
    finally:
        bar.close()
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
    result.rows = _ordered([*written, *new_rows], config.strategies)
    result.initial = {s: initial[s] for s in config.strategies if s in initial}
    result.totals = [totals(result.rows, s) for s in config.strategies]
    result.seconds = time.perf_counter() - t0
    if config.out_dir is not None:
        Journal(config.out_dir).rewrite(result.rows)
        if result.finished:
            result.paths = write_outputs(result, config.out_dir)
            _write_manifest(config.out_dir, {**manifest, "initial_champion": result.initial, "finished": True})
            if not config.keep_stores:
                _remove_stores(root, config.strategies)
    return result


# --------------------------------------------------------------------------- output


def _csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def write_outputs(result: BacktestResult, out_dir: Path) -> dict[str, Path]:
    """backtest.csv (the decision table: per interval and strategy, no timings), backtest.jsonl
    (the same rows with their seconds), totals.csv, backtest.json, backtest.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    journal = Journal(out_dir)
    paths = {
        "csv": journal.csv,
        "jsonl": journal.jsonl,
        "totals": out_dir / "totals.csv",
        "json": out_dir / "backtest.json",
        "html": out_dir / "backtest.html",
    }
    journal.rewrite(result.rows)
    paths["totals"].write_text(_csv([asdict(t) for t in result.totals]), encoding="utf-8")
    paths["json"].write_text(json.dumps(result.to_dict(), indent=1, default=str), encoding="utf-8")
    paths["html"].write_text(render_html(result), encoding="utf-8")
    return paths


_COLORS = {"policy": "#1f77b4", "never": "#d62728", "always": "#2ca02c"}
_W, _H, _PAD, _BAR_H = 860, 260, 48, 70


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def timeline_svg(result: BacktestResult) -> str:
    """Metric per strategy over the intervals, retrain (ring) and promotion (dot) markers, and
    drift share bars of the first strategy underneath. Plain SVG: no script, works offline."""
    starts = sorted({r.interval_start for r in result.rows})
    if not starts:
        return ""
    metrics = [r.metric for r in result.rows if r.metric is not None]
    lo, hi = (min(metrics), max(metrics)) if metrics else (0.0, 1.0)
    if hi - lo < 1e-6:
        lo, hi = lo - 0.05, hi + 0.05
    n = len(starts)
    step = (_W - 2 * _PAD) / max(n - 1, 1)

    def x(i: int) -> float:
        return _PAD + i * step

    def y(v: float) -> float:
        return _PAD / 2 + (hi - v) / (hi - lo) * (_H - _PAD)

    index = {s: i for i, s in enumerate(starts)}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H + _BAR_H + 20}" role="img" '
        f'aria-label="{html.escape(result.metric_name)} per strategy over time">',
        f'<text x="4" y="14" font-size="11">{html.escape(result.metric_name)} ({_fmt(hi)} top, {_fmt(lo)} '
        "bottom)</text>",
    ]
    for k, strategy in enumerate(dict.fromkeys(r.strategy for r in result.rows)):
        color = _COLORS.get(strategy, "#555")
        rows = [r for r in result.rows if r.strategy == strategy]
        legend_x = _W - _PAD - 260 + 90 * k  # a legend: the SVG is also shown on its own (docs/backtest.md)
        parts.append(
            f'<line x1="{legend_x}" y1="10" x2="{legend_x + 18}" y2="10" stroke="{color}" stroke-width="2"/>'
            f'<text x="{legend_x + 22}" y="14" font-size="11">{html.escape(strategy)}</text>'
        )
        points = " ".join(f"{x(index[r.interval_start]):.1f},{y(r.metric):.1f}" for r in rows if r.metric is not None)
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}">'
            f"<title>{html.escape(strategy)}</title></polyline>"
        )
        for r in rows:
            if not (r.retrain or r.shadow_promoted) or r.metric is None:
                continue
            cx, cy = x(index[r.interval_start]), y(r.metric)
            promoted = r.retrain in ("promoted", "forced") or bool(r.shadow_promoted)
            fill = color if promoted else "white"
            what = (
                f"retrain {r.retrain} {r.reasons}" if r.retrain else f"shadow challenger v{r.shadow_promoted} promoted"
            )
            tip = html.escape(f"{strategy} {r.interval_start}: {what}")
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{fill}" stroke="{color}">'
                f"<title>{tip}</title></circle>"
            )
    first = result.rows[0].strategy
    base = _H + _BAR_H
    parts.append(f'<text x="4" y="{_H + 12}" font-size="11">drift share ({html.escape(first)})</text>')
    for r in (r for r in result.rows if r.strategy == first and r.drift_share is not None):
        h = r.drift_share * (_BAR_H - 16)
        tip = html.escape(f"{r.interval_start}: drift share {r.drift_share:.2f}")
        parts.append(
            f'<rect x="{x(index[r.interval_start]) - 3:.1f}" y="{base - h:.1f}" width="6" height="{h:.1f}" '
            f'fill="#999"><title>{tip}</title></rect>'
        )
    parts.append(f'<text x="{_PAD}" y="{base + 14}" font-size="11">{html.escape(starts[0][:10])}</text>')
    parts.append(
        f'<text x="{_W - _PAD}" y="{base + 14}" font-size="11" text-anchor="end">{html.escape(starts[-1][:10])}</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "<p>no rows</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row.values()) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(result: BacktestResult) -> str:
    legend = " ".join(
        f'<span style="color:{_COLORS.get(t.strategy, "#555")}">&#9632; {html.escape(t.strategy)}</span>'
        for t in result.totals
    )
    title = f"Backtest {result.model}: {result.start[:10]} to {result.end[:10]} every {result.interval}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Realized {html.escape(result.metric_name)} = the serving champion on labels that matured in the interval.
Degraded = worse than the serving champion's validation {html.escape(result.metric_name)} by at least
{result.degraded_drop}. Filled dot: promotion; ring: rejected or failed retrain.</p>
<p>{legend}</p>
{timeline_svg(result)}
<h2>Totals</h2>
{_table([t.table() | {"seconds": t.seconds} for t in result.totals])}
<h2>Intervals</h2>
{_table([asdict(r) for r in result.rows])}
</body></html>
"""


def totals_text(result: BacktestResult) -> str:
    """The totals as a fixed-width table for the terminal."""
    cols = [
        "strategy",
        "retrains",
        "promotions",
        "failed",
        "measured",
        f"mean {result.metric_name}",
        "degraded",
        "seconds",
    ]
    lines = [" | ".join(cols)]
    for t in result.totals:
        lines.append(
            " | ".join(
                [
                    t.strategy,
                    str(t.retrains),
                    str(t.promotions),
                    str(t.failed_retrains),
                    f"{t.measured_intervals}/{t.intervals}",
                    _fmt(t.mean_metric),
                    str(t.degraded_intervals),
                    f"{t.seconds:.0f}",
                ]
            )
        )
    return "\n".join(lines)


__all__ = [
    "STRATEGIES",
    "BacktestConfig",
    "BacktestError",
    "BacktestResult",
    "Cadence",
    "Checkpoints",
    "IntervalRow",
    "Journal",
    "StrategyTotals",
    "apply_overrides",
    "contract_hash",
    "gate_evidence",
    "is_degraded",
    "render_html",
    "replay_contract",
    "replay_strategy",
    "run_backtest",
    "schedule_intervals",
    "strategy_environment",
    "strategy_settings",
    "thread_limits",
    "timeline_svg",
    "totals",
    "utc",
    "write_outputs",
]
