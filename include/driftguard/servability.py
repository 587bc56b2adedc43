"""Can the candidate actually be served? Load and predict it in a fresh Python process.

A model that scores well in the training process can still be unservable: a missing
dependency, an unpicklable object, a corrupted or missing artifact. The only honest check is
the one production does: a new interpreter that knows nothing but the registry URI. The
child process loads ``models:/<name>/<version>`` through ``mlflow.pyfunc``, predicts on a
sample (handed over as a parquet file), checks the outputs are finite, and prints one JSON
line with the timings (load, and the median of three predicts on one thread). Any failure
(import, load, predict, timeout, non-finite output, too slow) gives ``ok=False`` with the
error's last lines; this module never raises for a bad model.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_MARKER = "DRIFTGUARD_SERVABILITY_RESULT="

# The child script: kept free of driftguard imports so it tests only what serving needs.
_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import mlflow
import numpy as np
import pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
load_s = time.perf_counter() - t0
sample = pd.read_parquet(sys.argv[3])
model.predict(sample.head(min(len(sample), 10)))  # warm-up: lazy imports are not latency
times = []
for _ in range(3):  # the median of three: one busy moment on a shared host is not the model's latency
    t1 = time.perf_counter()
    out = model.predict(sample)
    times.append(time.perf_counter() - t1)
predict_s = sorted(times)[1]
if isinstance(out, (pd.DataFrame, pd.Series)):
    out = out.to_numpy()
arr = np.asarray(out, dtype=float)
if arr.shape[0] != len(sample):
    raise ValueError(f"model returned {arr.shape[0]} predictions for {len(sample)} rows")
bad = int((~np.isfinite(arr)).sum())
if bad:
    raise ValueError(f"model returned {bad} non-finite predictions (NaN/inf) on {len(sample)} rows")
print("__MARKER__" + json.dumps({"load_seconds": load_s, "predict_seconds": predict_s, "rows": len(sample)}))
""".replace("__MARKER__", _MARKER)


@dataclass
class ServabilityResult:
    """Outcome of one fresh-process load + predict. ``ms_per_1k_rows`` is predict time scaled to 1,000 rows."""

    ok: bool
    load_seconds: float | None
    ms_per_1k_rows: float | None
    error: str | None
    model_uri: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServabilityResult:
        return cls(**{k: data.get(k) for k in ("ok", "load_seconds", "ms_per_1k_rows", "error", "model_uri")})


def _tail(text: str, lines: int = 12) -> str:
    kept = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(kept[-lines:]) or "(no output)"


def check_servable(
    model_uri: str,
    sample: Any,
    *,
    tracking_uri: str,
    budget_ms_per_1k: float,
    timeout_s: float = 120,
) -> ServabilityResult:
    """Load ``model_uri`` in a fresh interpreter, predict ``sample`` (a DataFrame), time it.

    ``ok`` is True only if loading and predicting worked, every output is finite and the
    predict time per 1,000 rows is within ``budget_ms_per_1k``."""
    if len(sample) == 0:
        return ServabilityResult(False, None, None, "servability sample has no rows", model_uri)
    with tempfile.TemporaryDirectory(prefix="driftguard-serve-") as tmp:
        sample_path = Path(tmp) / "sample.parquet"
        sample.reset_index(drop=True).to_parquet(sample_path, index=False)
        # One thread per process, as a serving worker per core runs: OpenMP's default team on a
        # busy host made one predict of 1,000 rows swing from 20 ms to 3 s (the demo measured it).
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-c", _CHILD, tracking_uri, model_uri, str(sample_path)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=tmp)
        except subprocess.TimeoutExpired as exc:
            out = (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            msg = f"timed out after {timeout_s:g}s loading/predicting {model_uri}\n{_tail(out, 5)}"
            logger.warning("servability of %s: %s", model_uri, msg)
            return ServabilityResult(False, None, None, msg, model_uri)
    return _parse(model_uri, proc, budget_ms_per_1k)


def _parse(model_uri: str, proc: subprocess.CompletedProcess[str], budget_ms_per_1k: float) -> ServabilityResult:
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(_MARKER)), None)
    if proc.returncode != 0 or line is None:
        msg = f"fresh process failed (exit {proc.returncode}) for {model_uri}:\n{_tail(proc.stderr + proc.stdout)}"
        logger.warning("servability of %s: not servable: %s", model_uri, msg)
        return ServabilityResult(False, None, None, msg, model_uri)
    data = json.loads(line.removeprefix(_MARKER))
    ms_per_1k = 1000.0 * data["predict_seconds"] * 1000.0 / max(int(data["rows"]), 1)
    load_s = float(data["load_seconds"])
    if ms_per_1k > budget_ms_per_1k:
        msg = f"too slow: {ms_per_1k:.1f} ms per 1k rows > budget {budget_ms_per_1k:g} ms"
        logger.warning("servability of %s: %s", model_uri, msg)
        return ServabilityResult(False, load_s, ms_per_1k, msg, model_uri)
    logger.info("servability of %s: ok, load %.2fs, %.1f ms per 1k rows", model_uri, load_s, ms_per_1k)
    return ServabilityResult(True, load_s, ms_per_1k, None, model_uri)
