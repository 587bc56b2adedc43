"""One benchmark case per process, so peak RSS (ru_maxrss of this process) belongs to that case.

    python -m benchmarks.cases driftguard|naive --db sqlite|postgres --rows N --home DIR --out FILE
    python -m benchmarks.cases step --step extract --home DIR --out FILE (one monitoring step, as one Airflow task)
    python -m benchmarks.cases dagparse --out FILE
    python -m benchmarks.cases read --read-path stream|copy|cursor|arrow --db ... --rows N --out FILE

Prints nothing useful; writes one JSON object to --out. Run by benchmarks.run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(stages: dict[str, float], name: str, fn: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    out = fn()
    stages[name] = round(time.perf_counter() - started, 3)
    return out


def _env(home: Path) -> None:
    os.environ["DRIFTGUARD_HOME"] = str(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


# --------------------------------------------------------------------------- prepare


def prepare(home: Path) -> dict[str, Any]:
    """Create the MLflow store once per home (a deployed MLflow exists before the first run)."""
    _env(home)
    from driftguard import mlflow_setup
    from mlflow import MlflowClient

    uri = mlflow_setup.configure()
    MlflowClient(uri).search_registered_models()
    return {"prepared": str(home)}


# --------------------------------------------------------------------------- Driftguard path


def _context(db: str, rows: int, ref_rows: int, home: Path) -> Any:
    _env(home)

    from benchmarks import data

    _, (lo, hi) = data.windows()
    return _run_context(data.contract(db, data.Spec(rows, ref_rows)), lo, hi)


def _run_context(contract: Any, start: Any, end: Any) -> Any:
    from driftguard.monitoring import monitor
    from driftguard.settings import get_settings

    # One run id for every step's process (as the DAG passes Airflow's): they share the run's work folder.
    return monitor.RunContext.create(contract, start, end, get_settings(), run_id="benchmark")


def once_per_reference(ctx: Any) -> float:
    """What a reference costs once, not per window: its drift-threshold calibration and its
    label-free estimator (a champion logs both when it is trained; the benchmark's bootstrap
    window computes them on its first run and caches them under DRIFTGUARD_HOME). Timed apart,
    before the run, as a deployed model would have them already."""
    from driftguard.monitoring import monitor
    from driftguard.retraining import reference

    ref = reference.load_reference(ctx.contract, tracking_uri=ctx.settings.mlflow_tracking_uri)
    started = time.perf_counter()
    monitor.reference_calibration(ctx, ref)
    monitor.bootstrap_estimator(ctx, ref)
    return round(time.perf_counter() - started, 3)


def driftguard(db: str, rows: int, ref_rows: int, home: Path) -> dict[str, Any]:
    """The monitoring run in one process (monitor.run_monitoring's way): every step, timed. The
    once-per-reference work (calibration, estimator) is done first and reported apart."""
    t0 = time.perf_counter()
    _import_libraries()
    from driftguard.monitoring import monitor

    import_s = time.perf_counter() - t0
    once = once_per_reference(_context(db, rows, ref_rows, home))
    t1 = time.perf_counter()  # the run: the libraries' import, then the steps

    def elapsed() -> float:
        return round(import_s + time.perf_counter() - t1, 3)

    ctx = _context(db, rows, ref_rows, home)
    stages: dict[str, float] = {"import": elapsed()}
    peaks: dict[str, float] = {"import": round(peak_rss_mb(), 1)}
    for step in monitor.STEPS:
        _timed(stages, step, lambda step=step: getattr(monitor, step)(ctx))
        peaks[step] = round(peak_rss_mb(), 1)  # peak so far: the step that raises it owns the peak
    return {
        "path": "driftguard",
        "mode": "inprocess",
        "db": db,
        "rows": rows,
        "seconds": elapsed(),
        "stages": stages,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_rss_after_stage_mb": peaks,
        "once_per_reference_s": once,
        **outcome(ctx),
    }


def _import_libraries() -> None:
    """What the steps import lazily (pandas, SQLAlchemy, GX, Evidently, MLflow), up front, so the
    import stage compares with the naive path's and the other stages are the work itself."""
    import warnings

    warnings.simplefilter("ignore")
    from driftguard import sources, store  # noqa: F401
    from mlflow.store.tracking import sqlalchemy_store  # noqa: F401  (MLflow loads it on first use)


HEAVY_LIBRARIES = ("great_expectations", "evidently", "mlflow", "sklearn")
"""The libraries a step module imports only inside the functions that use them."""

TASK_SPEC = "task_context.json"
"""Written by the parent into the home before `--mode tasks`: the contract and the window, so a
step's process builds its context from JSON, as the Airflow task does from the contract file,
without importing the harness's data module (numpy, pandas) before its own imports are timed."""


def write_task_spec(db: str, rows: int, ref_rows: int, home: Path) -> None:
    from benchmarks import data

    _, (lo, hi) = data.windows()
    contract = data.contract(db, data.Spec(rows, ref_rows))
    spec = {"contract": contract.model_dump(mode="json"), "start": lo.isoformat(), "end": hi.isoformat()}
    (home / TASK_SPEC).write_text(json.dumps(spec))


def step(home: Path, name: str) -> dict[str, Any]:
    """One monitoring step in its own process, as an Airflow task runs it. Run with Python's
    `-X importtime` (benchmarks.run sets it): the parent sums the process's import time from that."""
    from datetime import datetime

    _env(home)
    from driftguard.contract import ModelContract
    from driftguard.monitoring import monitor

    spec = json.loads((home / TASK_SPEC).read_text())
    start, end = (datetime.fromisoformat(spec[k]) for k in ("start", "end"))
    ctx = _run_context(ModelContract.model_validate(spec["contract"]), start, end)
    started = time.perf_counter()
    getattr(monitor, name)(ctx)  # imports what it needs itself, as the Airflow task does
    return {
        "step": name,
        "step_s": round(time.perf_counter() - started, 3),
        "heavy_libraries": [lib for lib in HEAVY_LIBRARIES if lib in sys.modules],
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def outcome(ctx: Any) -> dict[str, Any]:
    """What the published run decided: verdicts, scores, quality failures, report sizes."""
    summary = json.loads((ctx.report_dir / "summary.json").read_text())
    drift, quality = summary["drift"], summary["quality"]
    features = drift.get("features") or []
    return {
        "verdicts": {f["feature"]: bool(f["drifted"]) for f in features},
        "scores": {f["feature"]: f["score"] for f in features},
        "methods": {f["feature"]: f["method"] for f in features},
        "sample_rows": drift.get("sample_rows"),
        "quality_checks": len(quality["checks"]),
        "quality_failed": sorted(f"{c['family']}:{c['column']}" for c in quality["checks"] if not c["success"]),
        "html_bytes": _html_sizes(ctx.report_dir),
        "rows_read": summary["extract"]["rows"],
    }


def _html_sizes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(folder.glob("*.html"))}


# --------------------------------------------------------------------------- naive path


def _read_sql(db: str, spec: Any, lo: Any, hi: Any) -> Any:
    import pandas as pd
    import sqlalchemy as sa

    from benchmarks import data

    table = data.qualified(db, spec)
    engine = sa.create_engine(data.url_for(db, spec))
    if db == "sqlite":
        bounds = {"lo": lo.strftime("%Y-%m-%d %H:%M:%S"), "hi": hi.strftime("%Y-%m-%d %H:%M:%S")}
    else:
        bounds = {"lo": lo, "hi": hi}
    query = sa.text(f"SELECT * FROM {table} WHERE event_ts >= :lo AND event_ts < :hi")  # benchmark's own table
    try:
        frame = pd.read_sql(query, engine, params=bounds)
    finally:
        engine.dispose()
    frame["event_ts"] = pd.to_datetime(frame["event_ts"], utc=True, format="ISO8601")
    for name in data.CATEGORICAL:
        frame[name] = frame[name].astype(object).where(frame[name].notna(), float("nan"))
    return frame


def naive(db: str, rows: int, ref_rows: int, home: Path) -> dict[str, Any]:
    """What one would write without Driftguard: read everything, GX the whole frame, the
    DataDriftPreset on everything, a self-contained HTML report."""
    _env(home)
    started = time.perf_counter()
    import warnings

    warnings.simplefilter("ignore")
    from driftguard.monitoring import quality
    from driftguard.statistics.profile import profile_frame
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from benchmarks import data

    spec = data.Spec(rows, ref_rows)
    contract = data.contract(db, spec)
    (ref_lo, ref_hi), (lo, hi) = data.windows()
    stages: dict[str, float] = {"import": round(time.perf_counter() - started, 3)}
    ref = _timed(stages, "read_reference", lambda: _read_sql(db, spec, ref_lo, ref_hi))
    cur = _timed(stages, "read_window", lambda: _read_sql(db, spec, lo, hi))
    out = home / "naive"

    def gx() -> Any:
        profile = profile_frame(ref, contract)
        return quality.validate_window(contract, cur, profile, start=lo, end=hi, out_dir=out)

    checks = _timed(stages, "gx_full_frame", gx)
    columns = [*data.FEATURES, "prediction"]
    definition = DataDefinition(
        numerical_columns=[*data.NUMERIC, "prediction"], categorical_columns=list(data.CATEGORICAL)
    )

    def evidently() -> Any:
        return Report([DataDriftPreset()], include_tests=True).run(
            reference_data=Dataset.from_pandas(ref[columns], data_definition=definition),
            current_data=Dataset.from_pandas(cur[columns], data_definition=definition),
        )

    snapshot = _timed(stages, "evidently_preset", evidently)
    html = out / "drift.html"
    _timed(stages, "html", lambda: snapshot.save_html(str(html)))
    total = time.perf_counter() - started
    verdicts, scores = _preset_verdicts(json.loads(snapshot.json()))
    return {
        "path": "naive",
        "db": db,
        "rows": rows,
        "seconds": round(total, 3),
        "stages": stages,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "verdicts": {k: v for k, v in verdicts.items() if k in data.FEATURES},
        "scores": {k: v for k, v in scores.items() if k in data.FEATURES},
        "quality_checks": len(checks.checks),
        "quality_failed": sorted(f"{c.family}:{c.column}" for c in checks.checks if not c.success),
        "html_bytes": _html_sizes(out),
    }


def _preset_verdicts(snap: dict[str, Any]) -> tuple[dict[str, bool], dict[str, float]]:
    """Per-column verdicts of DataDriftPreset: its ValueDrift tests (FAIL = drift)."""
    status = {t["metric_config"]["metric_id"]: t["status"] for t in snap.get("tests", [])}
    verdicts, scores = {}, {}
    for metric in snap["metrics"]:
        column = metric["config"].get("column")
        if column and metric["id"] in status:
            verdicts[column] = status[metric["id"]] == "FAIL"
            scores[column] = float(metric["value"])
    return verdicts, scores


# --------------------------------------------------------------------------- read paths

READ_PATHS = {"postgres": ("stream", "copy", "arrow"), "sqlite": ("stream", "cursor", "arrow")}


def read(db: str, rows: int, ref_rows: int, home: Path, path: str) -> dict[str, Any]:
    """One whole-window read_window (lenient, no sampling) forced through one read path: "arrow"
    (ADBC, what Driftguard uses for tables), "stream" (SQLAlchemy rows, its path for queries and
    other databases), "copy" (PostgreSQL COPY as CSV parsed by pyarrow, the former path, see
    benchmarks.copy_read) or "cursor" (SQLite's raw sqlite3 fallback). Wall and CPU seconds
    (this process: the database server's own CPU is not in it), peak RSS and the RSS before the
    read, and a hash of the frame so the run can check every path read the same frame. One
    BLAS/OpenMP thread, as the other benchmarks (pyarrow's own thread pool is left as deployed)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # before numpy is imported
    _env(home)
    import pandas as pd
    from driftguard import sources
    from driftguard.sources import read_paths

    from benchmarks import copy_read, data

    if path not in READ_PATHS[db]:
        raise SystemExit(f"read path {path!r} is not one of {db}'s: {READ_PATHS[db]}")
    answered: list[bool] = []
    arrow = read_paths._arrow_read

    def spy(*args: Any) -> Any:  # the case must not time a silent fallback as "arrow"
        got = arrow(*args)
        answered.append(got is not read_paths._NOT_READ)
        return got

    if path == "stream":
        read_paths._arrow_readable = lambda *a: False  # type: ignore[assignment]
    elif path == "copy":
        read_paths._arrow_read = copy_read.copy_read  # type: ignore[assignment]
    elif path == "cursor":
        read_paths._arrow_read = lambda *a: read_paths._NOT_READ  # type: ignore[assignment]
    else:
        read_paths._arrow_read = spy  # type: ignore[assignment]
    _, (lo, hi) = data.windows()
    contract = data.contract(db, data.Spec(rows, ref_rows))
    before_mb = peak_rss_mb()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    frame, stats = sources.read_window(contract, lo, hi, sources.ReadOptions(strict=False))
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    if path == "arrow" and answered != [True]:
        raise SystemExit(f"the Arrow path did not answer the read: {answered}")
    return {
        "path": path,
        "db": db,
        "rows": rows,
        "rows_read": len(frame),
        "seconds": round(wall, 3),
        "cpu_s": round(after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_before_mb": round(before_mb, 1),
        "frame_hash": int(pd.util.hash_pandas_object(frame, index=False).sum()),
        "dtypes": {c: str(t) for c, t in frame.dtypes.items()},
        "schema_problems": list(stats.schema_problems),
    }


# --------------------------------------------------------------------------- DAG parsing


def dagparse() -> dict[str, Any]:
    """Airflow's DagBag over dags/ in this fresh process: per-file parse seconds (Airflow's own
    stats), plus the import time of Airflow itself for context. Bytecode caching on, as in dagfork."""
    sys.dont_write_bytecode = False
    started = time.perf_counter()
    import airflow.sdk  # noqa: F401
    from airflow.dag_processing.dagbag import DagBag

    airflow_import = time.perf_counter() - started
    heavy = ("pandas", "great_expectations", "evidently", "mlflow", "sklearn")
    before = {m for m in heavy if m in sys.modules}
    started = time.perf_counter()
    bag = DagBag(dag_folder=str(REPO / "dags"))
    return {
        "path": "dagparse",
        "airflow_import_s": round(airflow_import, 3),
        "dagbag_s": round(time.perf_counter() - started, 3),
        "per_file_s": {Path(str(s.file)).name: s.duration.total_seconds() for s in bag.dagbag_stats},
        "dags": len(bag.dags),
        "import_errors": len(bag.import_errors),
        "heavy_modules": sorted(m for m in heavy if m in sys.modules and m not in before),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


FLOOR_DAG = Path(__file__).resolve().parent / "floor_dag" / "trivial_taskflow.py"


def dagfork(runs: int) -> dict[str, Any]:
    """Each dags/ file parsed the way Airflow 3's dag-processor does it: the manager process
    (airflow.dag_processing.manager, which has Airflow's models, serialization and timetables
    loaded to write parse results) forks one child per file, and before forking it imports the
    `airflow.*` modules the file names (`[dag_processor] parsing_pre_import_modules`, on by
    default; processor.py `_pre_import_airflow_modules`), so the child pays only for the file's
    own code and what Airflow loads lazily for it. The manager freezes its heap once before its
    parsing loop (`DagFileProcessorManager.before_run`: `gc.freeze()`), so a child's garbage
    collections skip the objects it inherits; the benchmark freezes at the same point, before the
    per-file pre-imports. The child builds a DagBag of that one file.
    Mean of `runs` forks per file after one discarded warm-up fork, plus FLOOR_DAG: what any
    TaskFlow DAG file costs on this machine at this load.

    Bytecode caching is on here even under PYTHONDONTWRITEBYTECODE (set on some dev machines):
    a running dag-processor re-parses files whose modules' .pyc files exist; compiling
    Driftguard's modules from source at every parse would measure a cold checkout instead."""
    import gc
    import importlib

    sys.dont_write_bytecode = False

    import airflow.dag_processing.manager  # the process that forks the parse children
    import airflow.sdk  # noqa: F401
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.file import iter_airflow_imports

    def child(path: Path) -> dict[str, Any]:
        bag = DagBag(dag_folder=str(path))
        heavy = ("pandas", "great_expectations", "evidently", "mlflow", "sklearn")
        return {
            "s": sum(st.duration.total_seconds() for st in bag.dagbag_stats),
            "dags": len(bag.dags),
            "errors": len(bag.import_errors),
            "heavy": sorted(m for m in heavy if m in sys.modules),
        }

    gc.freeze()  # as the manager does before its parsing loop
    per_file: dict[str, list[float]] = {}
    heavy: set[str] = set()
    files = [*sorted((REPO / "dags").glob("*.py")), FLOOR_DAG]
    for path in files:
        for module in iter_airflow_imports(str(path)):  # processor.py's pre-import, step for step
            importlib.import_module(module)
        for attempt in range(runs + 1):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: parse, report through the pipe, exit without cleanup
                os.close(read)
                try:
                    os.write(write, json.dumps(child(path)).encode())
                finally:
                    os._exit(0)
            os.close(write)
            with os.fdopen(read) as pipe:
                got = json.loads(pipe.read() or "{}")
            os.waitpid(pid, 0)
            if got.get("errors") or "s" not in got:
                return {"error": f"{path.name}: {got or 'no result from the forked parse'}"}
            if attempt:  # the first fork is the warm-up
                per_file.setdefault(path.name, []).append(got["s"])
            heavy.update(got["heavy"])
    return {
        "path": "dagfork",
        "runs": runs,
        "per_file_s": {name: round(sum(v) / len(v), 4) for name, v in per_file.items()},
        "heavy_modules": sorted(heavy),
    }


def dagimport(file: str) -> dict[str, Any]:
    """Cold import of one dags/ module after Airflow is imported (what a parse of it costs)."""
    import importlib.util

    import airflow.sdk  # noqa: F401

    path = REPO / "dags" / file
    started = time.perf_counter()
    spec = importlib.util.spec_from_file_location(f"dg_bench_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"path": "dagimport", "file": file, "import_s": round(time.perf_counter() - started, 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "case",
        choices=["prepare", "driftguard", "step", "outcome", "naive", "read", "dagparse", "dagfork", "dagimport"],
    )
    parser.add_argument("--read-path", default="arrow")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--step", default="")
    parser.add_argument("--db", default="sqlite")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--ref-rows", type=int, default=200_000)
    parser.add_argument("--home", type=Path)
    parser.add_argument("--file", default="")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.case == "prepare":
        result = prepare(args.home)
    elif args.case == "driftguard":
        result = driftguard(args.db, args.rows, args.ref_rows, args.home)
    elif args.case == "step":
        result = step(args.home, args.step)
    elif args.case == "outcome":
        result = outcome(_context(args.db, args.rows, args.ref_rows, args.home))
    elif args.case == "naive":
        result = naive(args.db, args.rows, args.ref_rows, args.home)
    elif args.case == "read":
        result = read(args.db, args.rows, args.ref_rows, args.home, args.read_path)
    elif args.case == "dagparse":
        result = dagparse()
    elif args.case == "dagfork":
        result = dagfork(args.runs)
    else:
        result = dagimport(args.file)
    args.out.write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
