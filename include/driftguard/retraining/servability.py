"""Can the candidate actually be served, and at what cost? Load and time it in a fresh process.

A model that scores well in the training process can still be unservable: a missing
dependency, an unpicklable object, a corrupted or missing artifact. The honest check is the
one production does: a new interpreter loads the model's artifacts through ``mlflow.pyfunc``
and predicts. This module measures; the gate (:func:`driftguard.retraining.gate.servability_check`,
pure) judges the numbers against the contract.

What is measured, and why it does not depend on machine load (issue 16 item 7):

- **A fixed batch.** Predict is timed on :data:`SAMPLE_ROWS` rows resampled with replacement,
  seeded with ``training.seed``, from the candidate's training split
  (:func:`serving_sample`; the retrain step writes it as ``serving_sample.parquet``). The old
  check timed ``holdout.head(1000)``, which on daily data is 8 rows, and scaled the time to
  1,000 rows: a 20-50 ms fixed per-call overhead became seconds per 1,000 rows.
- **Warm-up, then the median of interleaved repeats, on one thread, in CPU time.** Each model
  predicts the whole batch once untimed (lazy imports, caches; this is also the score check),
  then the challenger and the champion are timed in alternating order (ABBA, so a drift in
  load hits both alike) up to :data:`MAX_REPEATS` times, and the median of each series is
  kept. Every BLAS/OpenMP pool gets one thread, as one serving worker per core runs, so the
  process's CPU time is the model's cost: unlike wall-clock time it leaves out the time spent
  waiting for a core. Measured beside two CPU hogs pinned to the check's core (it got a third
  of the core): wall time x3, CPU time +10% (cache and frequency effects are what remain).
  The wall-clock medians are recorded too.
- **A ratio to the champion timed in the same process.** What load still does to CPU time
  (caches, memory bandwidth, clock frequency) does it to both models alike, so
  ``challenger / champion`` is load-independent to first order. The gate fails a ratio above
  ``promotion.latency_ratio`` and, as a backstop that also covers the first champion, a time
  above the generous ceiling ``promotion.latency_budget_ms``. What remains load-dependent is
  written down in :func:`driftguard.retraining.gate.servability_check`.

Cheap: the parent resolves and downloads the registered version's artifacts (it has the
tracking store open already), so the child never opens the tracking store (no SQLAlchemy, no
schema check) and never imports driftguard; it only imports what serving needs (mlflow.pyfunc
and the model's own libraries) and skips MLflow's dependency-mismatch scan (the child runs in
the trainer's own environment, so it cannot find one, and costs ~0.4 s). The registry lookup
itself is exercised by the parent's download. A fresh-process check costs about 2.5-3 s on an
idle machine, interpreter start and imports included.

A defect of the model gives ``ok=False`` with the error's last lines, and the gate rejects:
artifacts missing or corrupt (MLflow's ``RESOURCE_DOES_NOT_EXIST``, a missing file, a directory
without the model), the model failing to import, load or predict in the child, a wrong row count,
non-finite output, or more than ``timeout_s`` of CPU time. This module never raises for a bad
model. Trouble of the infrastructure is no verdict on the model, so it raises
:class:`ServabilityUnavailable` instead and no outcome is recorded (the retrain releases its claim,
Airflow's retry or the next run checks again): the artifact or tracking store unreachable
(:func:`driftguard.mlflow_setup.is_transient`), or the child still running after
``wall_timeout_s`` without having used ``timeout_s`` of CPU (a busy machine: :func:`_run_child`).
A champion whose artifacts are missing or that fails in the child only loses its timing (the
ratio is then not judged); the retrain step deals with an unservable champion itself.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from driftguard import mlflow_setup

logger = logging.getLogger(__name__)

_MARKER = "DRIFTGUARD_SERVABILITY_RESULT="


class ServabilityUnavailable(RuntimeError):
    """The check could not run for reasons outside the model (an unreachable artifact or tracking
    store, a machine too busy to finish it): not a verdict, so the gate must not judge it. A
    RuntimeError, not a data error: the DAG's task retries it."""


CPU_TIMEOUT_S = 120.0
"""The child's CPU-time budget (seconds): interpreter start, imports, loads, warm-up and timed
predicts of both models. A model that needs more is rejected."""

WALL_TIMEOUT_S = 600.0
"""How long the check waits in wall-clock time for a child that has not used its CPU budget: past
it the machine is too busy to tell, and the check raises :class:`ServabilityUnavailable`."""

POLL_S = 0.25
"""How often the child's CPU time is read while it runs (a finished child is seen at once)."""


SAMPLE_ROWS = 1000
"""Rows in the timed batch: resampled with replacement, so also when the data has 8 rows."""

MAX_REPEATS = 15
"""Timed predicts per model (after one warm-up), interleaved with the other model's."""

MIN_REPEATS = 5
"""Timed predicts per model even when a slow model exhausts :data:`TIMING_BUDGET_S`."""

TIMING_BUDGET_S = 2.0
"""Stop repeating (after :data:`MIN_REPEATS`) once the timed loop took this long: a model near
the ceiling must not turn a latency verdict into a timeout, and the check must stay cheap. It is
wall-clock time: a loaded machine affords fewer repeats, the median means the same."""

SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}
"""One thread per pool in the child, as one serving worker per core runs. OpenMP's default team
on a busy host made one predict of 1,000 rows swing from 20 ms to 3 s (the demo measured it)."""

# The child script: free of driftguard imports, so it tests only what serving needs. argv[1] is
# a JSON object: sample (parquet path), challenger / champion (local model dirs), repeats,
# min_repeats, budget_s. The champion's failure is reported, never fatal: the challenger is on trial.
_CHILD = r"""
import json, sys, time
import numpy as np
import pandas as pd
import mlflow.pyfunc
args = json.loads(sys.argv[1])
sample = pd.read_parquet(args["sample"])

def load(path):
    t = time.perf_counter()
    model = mlflow.pyfunc.load_model(path, suppress_warnings=True)
    return model, time.perf_counter() - t

def batch_for(model):
    # What a client sends: the signature's string columns as strings (an all-missing
    # categorical column reads back as float), in the signature's column order.
    schema = model.metadata.get_input_schema()
    if schema is None:
        return sample
    cols = [c for c in schema.input_names() if c in sample.columns] or list(sample.columns)
    strings = [c.name for c in schema.inputs if str(getattr(c.type, "name", c.type)) == "string"]
    frame = sample[cols]
    return frame.astype({c: object for c in strings if c in frame.columns and frame[c].dtype != object})

def check(out, who):
    if isinstance(out, (pd.DataFrame, pd.Series)):
        out = out.to_numpy()
    arr = np.asarray(out, dtype=float)
    got = arr.shape[0] if arr.ndim else "a scalar for"
    if got != len(sample):
        raise ValueError(f"{who} returned {got} predictions for {len(sample)} rows")
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise ValueError(f"{who} returned {bad} non-finite predictions (NaN/inf) on {len(sample)} rows")

result = {"rows": len(sample)}
challenger, result["load_seconds"] = load(args["challenger"])
x_chall = batch_for(challenger)
check(challenger.predict(x_chall), "the model")  # warm-up and the score check
models = [(challenger, x_chall, [])]
if args.get("champion"):
    try:
        champion, champion_load_s = load(args["champion"])
        x_champ = batch_for(champion)
        check(champion.predict(x_champ), "the champion")
        models.append((champion, x_champ, []))
        result["champion_load_seconds"] = champion_load_s
    except Exception as exc:  # the champion only loses its timing here
        result["champion_error"] = f"{type(exc).__name__}: {exc}"
t_loop = time.perf_counter()
for i in range(args["repeats"]):
    for model, x, times in (models if i % 2 == 0 else models[::-1]):  # ABBA: drift hits both alike
        w, c = time.perf_counter(), time.process_time()
        model.predict(x)
        times.append((time.process_time() - c, time.perf_counter() - w))
    if i + 1 >= args["min_repeats"] and time.perf_counter() - t_loop > args["budget_s"]:
        break
result["repeats"] = len(models[0][2])
for prefix, (_, _, times) in zip(("", "champion_"), models):
    result[prefix + "predict_seconds"] = float(np.median([cpu for cpu, _ in times]))
    result[prefix + "wall_predict_seconds"] = float(np.median([wall for _, wall in times]))
print("__MARKER__" + json.dumps(result))
""".replace("__MARKER__", _MARKER)


@dataclass
class ServabilityResult:
    """Outcome of one fresh-process load, score and timing of the challenger (and the champion).

    ``ok`` means the challenger loaded and scored the batch (finite, one output per row); it says
    nothing about speed, which the gate judges. ``ms_per_1k_rows`` is the median *CPU* time of
    one predict of the batch, scaled to 1,000 rows (the batch has :data:`SAMPLE_ROWS` rows, so
    the scale is 1); ``wall_ms_per_1k_rows`` the median wall-clock time, for the record.
    ``champion_*`` are None without a champion, or when the champion failed in the child
    (``champion_error``)."""

    ok: bool
    load_seconds: float | None
    ms_per_1k_rows: float | None
    error: str | None
    model_uri: str
    champion_uri: str | None = None
    champion_load_seconds: float | None = None
    champion_ms_per_1k_rows: float | None = None
    champion_error: str | None = None
    wall_ms_per_1k_rows: float | None = None
    champion_wall_ms_per_1k_rows: float | None = None
    rows: int | None = None
    repeats: int | None = None
    process_seconds: float | None = None  # the whole check: download, interpreter start, imports, timing

    @property
    def ratio(self) -> float | None:
        """Challenger / champion predict time on the same batch in the same process, as measured
        (the gate floors the champion's time: :data:`driftguard.retraining.gate.LATENCY_RATIO_FLOOR_MS`)."""
        if not self.ms_per_1k_rows or not self.champion_ms_per_1k_rows:
            return None
        return self.ms_per_1k_rows / self.champion_ms_per_1k_rows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServabilityResult:
        """Unknown keys are ignored and missing ones take their defaults, so records written by
        older or newer versions load. Records from before the gate judged latency itself carried
        ``ok=False`` with a "too slow" error for a model that loaded and scored: that is ``ok``
        now (the timing is kept, and the gate judges it)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in data.items() if k in names}
        kept.setdefault("ok", False)
        for key in ("load_seconds", "ms_per_1k_rows", "error"):
            kept.setdefault(key, None)
        kept.setdefault("model_uri", "")
        error = kept.get("error") or ""
        if not kept["ok"] and error.startswith("too slow") and kept.get("ms_per_1k_rows") is not None:
            kept["ok"], kept["error"] = True, None
        return cls(**kept)


def serving_sample(frame: Any, columns: list[str], *, seed: int, rows: int = SAMPLE_ROWS) -> Any:
    """``rows`` rows of ``frame[columns]`` drawn with replacement by a generator seeded with
    ``seed``: the fixed-size batch servability times. Same frame and seed, same batch; 1,000
    rows even when the frame has 8. Empty when the frame is."""
    import numpy as np

    if len(frame) == 0:
        return frame[columns].iloc[:0].reset_index(drop=True)
    idx = np.random.default_rng(seed).integers(0, len(frame), size=rows)
    return frame[columns].iloc[idx].reset_index(drop=True)


def _tail(text: str, lines: int = 12) -> str:
    kept = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(kept[-lines:]) or "(no output)"


def _download(model_uri: str, tracking_uri: str, into: Path) -> str:
    """The model's artifacts in a local directory (for a local artifact store, a copy)."""
    import mlflow.artifacts

    # Process-wide, as every registry call here: MLflow resolves a version's ``models:/<id>``
    # source through the global tracking URI, whatever ``tracking_uri=`` says.
    mlflow_setup.configure(tracking_uri)
    into.mkdir(parents=True)
    return mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(into))


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, its reaped children included) a running process has used so far,
    from ``/proc``; None where there is no ``/proc`` or the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


@dataclass(frozen=True)
class ChildTimeout:
    """The child was stopped: ``over_cpu`` when it used more than its CPU budget (the model's
    fault), else it was still running when the wall-clock wait ran out (the machine's)."""

    over_cpu: bool
    cpu_s: float | None
    wall_s: float
    output: str


def _run_child(
    cmd: list[str], *, env: dict[str, str], cwd: str, cpu_timeout_s: float, wall_timeout_s: float
) -> subprocess.CompletedProcess[str] | ChildTimeout:
    """Run the child to its end, or stop it when it used ``cpu_timeout_s`` of CPU time or waited
    ``wall_timeout_s`` of wall-clock time, whichever comes first.

    Why CPU time decides: the budget is the model's cost, and CPU time is what the model spends,
    whatever else runs on the machine; wall-clock time also counts the time the child waited for a
    core (a first champion was rejected on a 2-core machine at load average 20 only because the
    machine was busy). So only a child over its CPU budget is the model's fault; a child stopped by
    the wall clock had not used it, and nothing can be concluded about the model (also a child
    that waits on I/O, or one that hangs without computing: that costs a retried check, never a
    wrong verdict). Where CPU time cannot be read (no ``/proc``) only the wall clock stops it."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    try:
        while True:
            try:
                out, err = proc.communicate(timeout=POLL_S)
                return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
            except subprocess.TimeoutExpired:
                pass
            cpu, wall = cpu_seconds(proc.pid), time.monotonic() - started
            if (cpu is not None and cpu > cpu_timeout_s) or wall > wall_timeout_s:
                proc.kill()
                out, err = proc.communicate()
                over = cpu is not None and cpu > cpu_timeout_s
                return ChildTimeout(over, cpu, wall, (err or "") + (out or ""))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def check_servable(
    model_uri: str,
    sample: Any,
    *,
    tracking_uri: str,
    champion_uri: str | None = None,
    timeout_s: float = CPU_TIMEOUT_S,
    wall_timeout_s: float = WALL_TIMEOUT_S,
    repeats: int = MAX_REPEATS,
) -> ServabilityResult:
    """Load ``model_uri`` (and ``champion_uri``) in a fresh interpreter, score ``sample`` (a
    DataFrame of feature columns, normally :func:`serving_sample`) and time both models on it.

    ``ok`` is True only if the challenger's artifacts downloaded, loaded and scored the sample
    with one finite output per row, within ``timeout_s`` of the child's CPU time. Latency is not
    judged here: see :func:`driftguard.retraining.gate.servability_check`.

    Raises :class:`ServabilityUnavailable` when the infrastructure, not the model, stopped the
    check: a store unreachable while downloading either model's artifacts
    (:func:`driftguard.mlflow_setup.is_transient`), or the child still short of ``timeout_s`` CPU
    seconds after ``wall_timeout_s`` (:func:`_run_child`)."""
    started = time.perf_counter()

    def failed(msg: str) -> ServabilityResult:
        logger.warning("servability of %s: not servable: %s", model_uri, msg)
        return ServabilityResult(
            False, None, None, msg, model_uri, champion_uri=champion_uri, rows=len(sample),
            process_seconds=time.perf_counter() - started,
        )  # fmt: skip

    if len(sample) == 0:
        return failed("servability sample has no rows")
    with tempfile.TemporaryDirectory(prefix="driftguard-serve-") as tmp:
        sample_path = Path(tmp) / "sample.parquet"
        sample.reset_index(drop=True).to_parquet(sample_path, index=False)
        try:
            challenger_dir = _download(model_uri, tracking_uri, Path(tmp) / "challenger")
        except Exception as exc:
            _raise_if_transient(exc, model_uri)
            return failed(f"cannot download the artifacts of {model_uri}: {type(exc).__name__}: {exc}")
        champion_dir, champion_error = None, None
        if champion_uri:
            try:
                champion_dir = _download(champion_uri, tracking_uri, Path(tmp) / "champion")
            except Exception as exc:  # the challenger is on trial; the champion only loses its timing
                _raise_if_transient(exc, champion_uri)  # but not to an outage: the ratio would go unjudged
                champion_error = f"cannot download the artifacts of {champion_uri}: {type(exc).__name__}: {exc}"
        args = {
            "sample": str(sample_path),
            "challenger": challenger_dir,
            "champion": champion_dir,
            "repeats": max(int(repeats), 1),
            "min_repeats": min(MIN_REPEATS, max(int(repeats), 1)),
            "budget_s": TIMING_BUDGET_S,
        }
        env = {**os.environ, **SINGLE_THREAD_ENV, "PYTHONUNBUFFERED": "1", "MLFLOW_TRACKING_URI": tracking_uri}
        cmd = [sys.executable, "-c", _CHILD, json.dumps(args)]
        proc = _run_child(cmd, env=env, cwd=tmp, cpu_timeout_s=timeout_s, wall_timeout_s=wall_timeout_s)
    if isinstance(proc, ChildTimeout):
        used = "unknown CPU time" if proc.cpu_s is None else f"{proc.cpu_s:.1f}s of CPU time"
        if not proc.over_cpu:
            raise ServabilityUnavailable(
                f"servability of {model_uri} not decided: the fresh process was still running after "
                f"{proc.wall_s:.0f}s of wall-clock time, having used {used} of its {timeout_s:g}s budget "
                "(a busy machine); check again"
            )
        return failed(
            f"timed out loading/predicting {model_uri}: {used}, more than the {timeout_s:g}s budget "
            f"(after {proc.wall_s:.0f}s of wall-clock time)\n{_tail(proc.output, 5)}"
        )
    return _parse(model_uri, proc, champion_uri=champion_uri, champion_error=champion_error, started=started)


def _raise_if_transient(exc: Exception, uri: str) -> None:
    if mlflow_setup.is_transient(exc):
        raise ServabilityUnavailable(
            f"servability of {uri} not decided: its artifacts cannot be downloaded, a store is unreachable: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _parse(
    model_uri: str,
    proc: subprocess.CompletedProcess[str],
    *,
    champion_uri: str | None = None,
    champion_error: str | None = None,
    started: float | None = None,
) -> ServabilityResult:
    elapsed = None if started is None else time.perf_counter() - started
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(_MARKER)), None)
    if proc.returncode != 0 or line is None:
        msg = f"fresh process failed (exit {proc.returncode}) for {model_uri}:\n{_tail(proc.stderr + proc.stdout)}"
        logger.warning("servability of %s: not servable: %s", model_uri, msg)
        return ServabilityResult(False, None, None, msg, model_uri, champion_uri=champion_uri, process_seconds=elapsed)
    data = json.loads(line.removeprefix(_MARKER))
    rows = max(int(data["rows"]), 1)

    def per_1k(seconds: float | None) -> float | None:
        return None if seconds is None else 1000.0 * float(seconds) * 1000.0 / rows

    result = ServabilityResult(
        ok=True,
        load_seconds=float(data["load_seconds"]),
        ms_per_1k_rows=per_1k(data["predict_seconds"]),
        error=None,
        model_uri=model_uri,
        champion_uri=champion_uri,
        champion_load_seconds=data.get("champion_load_seconds"),
        champion_ms_per_1k_rows=per_1k(data.get("champion_predict_seconds")),
        champion_error=champion_error or data.get("champion_error"),
        wall_ms_per_1k_rows=per_1k(data.get("wall_predict_seconds")),
        champion_wall_ms_per_1k_rows=per_1k(data.get("champion_wall_predict_seconds")),
        rows=int(data["rows"]),
        repeats=data.get("repeats"),
        process_seconds=elapsed,
    )
    if result.champion_error:
        logger.warning("servability of %s: champion %s not timed: %s", model_uri, champion_uri, result.champion_error)
    ratio = f", {result.ratio:.2f}x the champion's" if result.ratio is not None else ""
    logger.info(
        "servability of %s: ok, load %.2fs, %.1f CPU ms per 1k rows%s (median of %s, %d rows)",
        model_uri, result.load_seconds, result.ms_per_1k_rows, ratio, result.repeats, rows,
    )  # fmt: skip
    return result
