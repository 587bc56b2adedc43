"""Label-free performance estimates (driftguard.statistics.estimation) against the realized metric and against
NannyML 0.13's CBPE and DLE, on the same synthetic data.

One reference (the champion's holdout: 10 days x 1,000 rows of driftguard.testing's log) and 20
analysis windows of 1,000 to 5,000 rows with covariate shift of increasing size (window k: the
spread of num_0, the label rule's strongest feature, times 1 - 0.035 k, its mean shifted by 0.1 k
std, num_5 shifted by 0.05 k std; P(y | x) unchanged, so the realized AUC falls and the
heteroscedastic MAE rises with k). Four scenarios on that data:

* ``binary, calibrated score``: the logged prediction (the label rule's own probability);
* ``binary, overconfident score``: sigmoid(2 logit(p) + 0.5), same ranking, badly calibrated,
  so the estimate depends on the calibration step;
* ``regression, homoscedastic``: the generator's regression label (constant noise: MAE stays flat);
* ``regression, heteroscedastic``: the same prediction, noise scaled by 0.5 + 0.75 |num_0| (+0.5
  for cat_a = a3): the MAE grows with the shift and the loss model has to follow it.

Estimated metrics: roc_auc, accuracy, f1 (CBPE) and mae, rmse (DLE); one table per scenario
(roc_auc, accuracy for the overconfident score, mae), then a summary over all, then four
concept-drift controls (label rule changed by 0.1 to 1.0, no covariate shift), where the
realized value is expected to leave the band. Target (the issue's): |estimate - realized| <=
0.03 (roc_auc, accuracy, f1) or <= 10% relative (mae, rmse) on >= 90% of the covariate-shift
windows.

NannyML runs in its own virtualenv (it pins packages that clash with Driftguard's), in a
subprocess, on parquet copies of the frames; labels are removed from the analysis frames. Its
interpreter is $NANNYML_PYTHON (default .venv-nannyml/bin/python); without it only Driftguard is
compared with the realized values. Create it with `make nannyml-venv`.

    OMP_NUM_THREADS=1 PYTHONPATH=include:. python -m benchmarks.estimation_crosscheck [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from driftguard.statistics.estimation import fit_estimator  # noqa: E402
from driftguard.statistics.metrics import task_metrics  # noqa: E402
from driftguard.testing import CATEGORICAL, DEFAULT_START, NUMERIC, Injection, generate_log  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NANNYML_PYTHON = Path(os.environ.get("NANNYML_PYTHON", REPO / ".venv-nannyml" / "bin" / "python"))
VENV_HINT = (
    "python3.11 -m venv .venv-nannyml && .venv-nannyml/bin/pip install nannyml==0.13.1 statsmodels 'pandas<3'"
    "  (or: make nannyml-venv)"
)
FEATURES = [*NUMERIC, *CATEGORICAL]
METRICS = {"binary_classification": ("roc_auc", "accuracy", "f1"), "regression": ("mae", "rmse")}
RELATIVE = {"mae", "rmse"}
TOLERANCE = {"roc_auc": 0.03, "accuracy": 0.03, "f1": 0.03, "mae": 0.10, "rmse": 0.10}
TARGET_SHARE = 0.9
THRESHOLD = 0.5
SIZES = (1000, 2000, 3000, 5000)


@dataclass(frozen=True)
class Scenario:
    name: str
    task: str
    table_metric: str  # the metric shown window by window


SCENARIOS = (
    Scenario("binary, calibrated score", "binary_classification", "roc_auc"),
    # Same ranking, so the same AUC and AUC estimate (isotonic calibration only sees the order):
    # the table shows accuracy, where the calibration step matters.
    Scenario("binary, overconfident score", "binary_classification", "accuracy"),
    Scenario("regression, homoscedastic", "regression", "mae"),
    Scenario("regression, heteroscedastic", "regression", "mae"),
)
CONCEPT = (0.1, 0.25, 0.5, 1.0)  # concept-drift control windows: label-rule change, no covariate shift
CONCEPT_ROWS = 3000


# --------------------------------------------------------------------------- data


def _log(task: str, *, day: int, days: int, rows: int, seed: int, shift: float, concept: float = 0.0) -> pd.DataFrame:
    start = DEFAULT_START + timedelta(days=day)
    inj = [  # in this order: the spread shrinks around the baseline mean, then the mean moves
        Injection("variance_change", start, column="num_0", magnitude=-0.35 * shift),
        Injection("mean_shift", start, column="num_0", magnitude=shift),
        Injection("mean_shift", start, column="num_5", magnitude=shift / 2),
    ]
    if concept:
        inj = [Injection("concept_drift", start, magnitude=concept)]
    log, labels = generate_log(task, start=start, days=days, rows_per_day=rows, seed=seed, injections=inj)
    return log.assign(label=labels["label"].to_numpy())


def _variant(scenario: Scenario, frame: pd.DataFrame) -> pd.DataFrame:
    """The scenario's champion score and label on the generated frame."""
    out = frame.rename(columns={"prediction": "score"})
    if scenario.name.startswith("binary, overconfident"):
        p = np.clip(out["score"].to_numpy(), 1e-6, 1 - 1e-6)
        out["score"] = 1 / (1 + np.exp(-(2 * np.log(p / (1 - p)) + 0.5)))
    if scenario.name.startswith("regression, heteroscedastic"):
        scale = 0.5 + 0.75 * out["num_0"].abs() + 0.5 * (out["cat_a"] == "a3")
        out["label"] = out["score"] + (out["label"] - out["score"]) * scale
    if scenario.task == "binary_classification":
        out["y_pred"] = (out["score"] >= THRESHOLD).astype("int64")
    return out


def build(windows: int, seed: int) -> tuple[dict[str, pd.DataFrame], list[dict[str, Any]], dict[str, pd.DataFrame]]:
    """Reference frames per task, window descriptions (covariate-shift windows, then the
    concept-drift controls) and analysis frames per task (with labels and a `window` column)."""
    specs: list[dict[str, Any]] = [
        {"window": k, "kind": "shift", "rows": SIZES[k % len(SIZES)], "shift": round(0.1 * k, 2), "concept": 0.0}
        for k in range(windows)
    ]
    specs += [
        {"window": windows + i, "kind": "concept", "rows": CONCEPT_ROWS, "shift": 0.0, "concept": c}
        for i, c in enumerate(CONCEPT)
    ]
    for w in specs:
        w["day"] = 10 + w["window"]  # one day per window: NannyML chunks by day
    refs, analyses = {}, {}
    for task in METRICS:
        refs[task] = _log(task, day=0, days=10, rows=1000, seed=seed, shift=0.0)
        parts = [
            _log(
                task, day=w["day"], days=1, rows=w["rows"], seed=seed + 1000 + w["window"], shift=w["shift"],
                concept=w["concept"],
            ).assign(window=w["window"])
            for w in specs
        ]  # fmt: skip
        analyses[task] = pd.concat(parts, ignore_index=True)
    return refs, specs, analyses


# --------------------------------------------------------------------------- Driftguard


def run_driftguard(scenario: Scenario, ref: pd.DataFrame, ana: pd.DataFrame, seed: int) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for metric in METRICS[scenario.task]:
        est = fit_estimator(
            scenario.task,
            ref,
            score_column="score",
            label_column="label",
            metric=metric,
            features=FEATURES,
            categorical=list(CATEGORICAL),
            decision_threshold=THRESHOLD,
            seed=seed,
        )
        rows = []
        for _, window in ana.groupby("window", sort=True):
            e = est.estimate(window.drop(columns=["label"]))
            real = task_metrics(scenario.task, window["label"], window["score"], threshold=THRESHOLD)[metric]
            rows.append({"realized": real, "value": e.value, "lower": e.lower, "upper": e.upper, "rows": e.rows})
        out[metric] = rows
    return out


# --------------------------------------------------------------------------- NannyML (subprocess)

NANNYML_SCRIPT = r"""
import json, os, sys, warnings
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
warnings.filterwarnings("ignore")
import pandas as pd
import nannyml as nml

job = json.load(open(sys.argv[1]))
result = {"version": nml.__version__, "scenarios": {}}
for sc in job["scenarios"]:
    ref = pd.read_parquet(sc["reference"])
    ana = pd.read_parquet(sc["analysis"])
    if sc["task"] == "binary_classification":
        est = nml.CBPE(y_pred_proba="score", y_pred="y_pred", y_true="label", timestamp_column_name="event_ts",
                       metrics=sc["metrics"], chunk_period="D", problem_type="classification_binary")
    else:
        est = nml.DLE(feature_column_names=job["features"], y_pred="score", y_true="label",
                      timestamp_column_name="event_ts", metrics=sc["metrics"], chunk_period="D",
                      hyperparameters={"verbosity": -1})
    est.fit(ref)
    df = est.estimate(ana).to_df()
    df = df[df[("chunk", "period")] == "analysis"]
    per = {}
    for m in sc["metrics"]:
        per[m] = [
            {"day": str(pd.Timestamp(r[("chunk", "start_date")]).date()), "value": float(r[(m, "value")]),
             "sampling_error": float(r[(m, "sampling_error")]),
             "lower": float(r[(m, "lower_confidence_boundary")]), "upper": float(r[(m, "upper_confidence_boundary")])}
            for _, r in df.iterrows()
        ]
    result["scenarios"][sc["name"]] = per
json.dump(result, open(job["out"], "w"))
"""


def run_nannyml(
    jobs: list[tuple[Scenario, pd.DataFrame, pd.DataFrame]], specs: list[dict[str, Any]]
) -> tuple[dict[str, dict[str, list[dict]]], str]:
    """Per scenario and metric, NannyML's estimate per window (in window order), and its version."""
    with tempfile.TemporaryDirectory(prefix="dg-nml-") as tmp:
        base = Path(tmp)
        scenarios = []
        for i, (sc, ref, ana) in enumerate(jobs):
            ref.drop(columns=["window"], errors="ignore").to_parquet(base / f"ref{i}.parquet")
            ana.drop(columns=["label", "window"]).to_parquet(base / f"ana{i}.parquet")
            scenarios.append(
                {"name": sc.name, "task": sc.task, "metrics": list(METRICS[sc.task]),
                 "reference": str(base / f"ref{i}.parquet"), "analysis": str(base / f"ana{i}.parquet")}
            )  # fmt: skip
        (base / "job.json").write_text(
            json.dumps({"scenarios": scenarios, "features": FEATURES, "out": str(base / "out.json")})
        )
        (base / "run.py").write_text(NANNYML_SCRIPT)
        env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1", "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run(
            [str(NANNYML_PYTHON), str(base / "run.py"), str(base / "job.json")],
            capture_output=True, text=True, env=env, timeout=1800,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"NannyML run failed:\n{proc.stderr[-3000:]}")
        result = json.loads((base / "out.json").read_text())
    days = [str((DEFAULT_START + timedelta(days=w["day"])).date()) for w in specs]
    out: dict[str, dict[str, list[dict]]] = {}
    for name, per in result["scenarios"].items():
        out[name] = {}
        for metric, rows in per.items():
            by_day = {r["day"]: r for r in rows}
            out[name][metric] = [by_day.get(d, {}) for d in days]
    return out, result["version"]


# --------------------------------------------------------------------------- report


def _err(metric: str, a: float | None, b: float | None) -> float | None:
    """|a - b|, relative to b for mae/rmse."""
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return None
    return abs(a - b) / abs(b) if metric in RELATIVE else abs(a - b)


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}%" if pct else f"{v:.4f}"


def _mean(xs: list[float | None]) -> float | None:
    ys = [x for x in xs if x is not None]
    return float(np.mean(ys)) if ys else None


def _share(xs: list[float | None], tol: float) -> tuple[int, int]:
    ys = [x for x in xs if x is not None]
    return sum(x <= tol for x in ys), len(ys)


def _pick(specs: list[dict], rows: list[dict] | None, kind: str) -> list[dict] | None:
    if rows is None:
        return None
    return [r for w, r in zip(specs, rows, strict=True) if w["kind"] == kind]


def _outside(d: dict, realized: float) -> bool | None:
    if d.get("lower") is None:
        return None
    return not d["lower"] <= realized <= d["upper"]


def _yes(flag: bool | None) -> str:
    return "n/a" if flag is None else ("yes" if flag else "no")


def window_table(scenario: Scenario, metric: str, specs: list[dict], dg: list[dict], nml: list[dict] | None) -> str:
    """Covariate-shift windows one by one."""
    pct = metric in RELATIVE
    unit = " (rel.)" if pct else ""
    head = ["window", "rows", "shift (std)", "realized", "Driftguard", "DG band"]
    if nml is not None:
        head += ["NannyML", f"abs(DG-real){unit}", f"abs(NML-real){unit}", f"abs(DG-NML){unit}"]
    else:
        head += [f"abs(DG-real){unit}"]
    lines = [f"### {scenario.name}: {metric}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, w in enumerate(specs):
        d = dg[i]
        band = f"[{_fmt(d['lower'])}, {_fmt(d['upper'])}]" if d["lower"] is not None else "n/a"
        row = [str(w["window"]), str(d["rows"]), f"{w['shift']:.1f}", _fmt(d["realized"]), _fmt(d["value"]), band]
        if nml is not None:
            n = nml[i].get("value")
            row += [
                _fmt(n),
                _fmt(_err(metric, d["value"], d["realized"]), pct),
                _fmt(_err(metric, n, d["realized"]), pct),
                _fmt(_err(metric, d["value"], n), pct),
            ]
        else:
            row += [_fmt(_err(metric, d["value"], d["realized"]), pct)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def concept_table(scenarios: list[tuple[Scenario, str, list[dict], list[dict], list[dict] | None]]) -> str:
    """Concept-drift controls: the estimate should stay put and the realized value leave the band."""
    head = ["scenario", "metric", "concept drift", "realized", "Driftguard", "DG band", "DG flags"]
    with_nml = any(n is not None for *_, n in scenarios)
    if with_nml:
        head += ["NannyML", "NML band", "NML flags"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sc, metric, specs, dg, nml in scenarios:
        for i, w in enumerate(specs):
            d = dg[i]
            row = [sc.name, metric, f"{w['concept']:.2f}", _fmt(d["realized"]), _fmt(d["value"]),
                   f"[{_fmt(d['lower'])}, {_fmt(d['upper'])}]", _yes(_outside(d, d["realized"]))]  # fmt: skip
            if with_nml and nml is not None:
                n = nml[i]
                row += [_fmt(n.get("value")), f"[{_fmt(n.get('lower'))}, {_fmt(n.get('upper'))}]",
                        _yes(_outside(n, d["realized"]))]  # fmt: skip
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def summarize(scenario: Scenario, metric: str, dg: list[dict], nml: list[dict] | None) -> dict[str, Any]:
    tol = TOLERANCE[metric]
    dg_err = [_err(metric, d["value"], d["realized"]) for d in dg]
    s: dict[str, Any] = {
        "scenario": scenario.name,
        "metric": metric,
        "tolerance": f"{tol:.0%} rel." if metric in RELATIVE else f"{tol:.2f}",
        "dg_within": _share(dg_err, tol),
        "dg_mean_err": _mean(dg_err),
        "dg_band_cover": sum(_outside(d, d["realized"]) is False for d in dg) / len(dg),
    }
    if nml is not None:
        n_err = [_err(metric, n.get("value"), d["realized"]) for n, d in zip(nml, dg, strict=True)]
        agree = [_err(metric, d["value"], n.get("value")) for n, d in zip(nml, dg, strict=True)]
        s.update(
            nml_within=_share(n_err, tol),
            nml_mean_err=_mean(n_err),
            agree_mean=_mean(agree),
            agree_max=max((a for a in agree if a is not None), default=None),
            nml_band_cover=sum(_outside(n, d["realized"]) is False for n, d in zip(nml, dg, strict=True)) / len(dg),
        )
    return s


def summary_table(rows: list[dict[str, Any]], with_nml: bool) -> str:
    head = ["scenario", "metric", "tolerance", "DG within", "mean abs(DG-real)", "DG band covers"]
    if with_nml:
        head += ["NML within", "mean abs(NML-real)", "NML band covers", "mean abs(DG-NML)", "max abs(DG-NML)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in rows:
        pct = s["metric"] in RELATIVE
        k, n = s["dg_within"]
        row = [s["scenario"], s["metric"], s["tolerance"], f"{k}/{n}", _fmt(s["dg_mean_err"], pct),
               f"{s['dg_band_cover']:.0%}"]  # fmt: skip
        if with_nml:
            k2, n2 = s["nml_within"]
            row += [f"{k2}/{n2}", _fmt(s["nml_mean_err"], pct), f"{s['nml_band_cover']:.0%}",
                    _fmt(s["agree_mean"], pct), _fmt(s["agree_max"], pct)]  # fmt: skip
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-nannyml", action="store_true", help="compare Driftguard with the realized values only")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "estimation_crosscheck.json")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    refs, specs, analyses = build(args.windows, args.seed)
    jobs = [(sc, _variant(sc, refs[sc.task]), _variant(sc, analyses[sc.task])) for sc in SCENARIOS]
    dg = {sc.name: run_driftguard(sc, ref, ana, args.seed) for sc, ref, ana in jobs}
    dg_seconds = time.perf_counter() - t0

    nml: dict[str, dict[str, list[dict]]] | None = None
    nml_note = ""
    if args.no_nannyml:
        nml_note = "NannyML skipped (--no-nannyml)."
    elif not NANNYML_PYTHON.exists():
        nml_note = f"NannyML not run: no interpreter at {NANNYML_PYTHON}. Create it: {VENV_HINT}"
    else:
        t1 = time.perf_counter()
        nml, version = run_nannyml(jobs, specs)
        nml_note = f"NannyML {version} ({NANNYML_PYTHON}), {time.perf_counter() - t1:.0f} s including its import."

    print(
        f"# Label-free estimation cross-check ({args.windows} windows of {min(SIZES)}-{max(SIZES)} rows per scenario)"
    )
    print()
    print(f"Driftguard: {dg_seconds:.1f} s (data, fits and estimates). {nml_note}")
    print()
    shift_specs = [w for w in specs if w["kind"] == "shift"]
    concept_specs = [w for w in specs if w["kind"] == "concept"]
    summaries, concept_rows = [], []
    for sc in SCENARIOS:
        for metric in METRICS[sc.task]:
            rows_dg = dg[sc.name][metric]
            rows_nml = nml[sc.name][metric] if nml is not None else None
            shift_dg, shift_nml = _pick(specs, rows_dg, "shift"), _pick(specs, rows_nml, "shift")
            if metric == sc.table_metric:
                print(window_table(sc, metric, shift_specs, shift_dg, shift_nml))  # type: ignore[arg-type]
                print()
                if sc.name in ("binary, calibrated score", "regression, heteroscedastic"):
                    concept_rows.append(
                        (sc, metric, concept_specs, _pick(specs, rows_dg, "concept"), _pick(specs, rows_nml, "concept"))
                    )
            summaries.append(summarize(sc, metric, shift_dg, shift_nml))  # type: ignore[arg-type]
    print("### Summary")
    print()
    print(summary_table(summaries, nml is not None))
    print()
    within = sum(s["dg_within"][0] for s in summaries)
    total = sum(s["dg_within"][1] for s in summaries)
    worst = min(summaries, key=lambda s: s["dg_within"][0] / max(s["dg_within"][1], 1))
    ok = all(s["dg_within"][0] >= TARGET_SHARE * s["dg_within"][1] for s in summaries)
    print(
        f"Driftguard within target on {within}/{total} windows ({within / max(total, 1):.1%}); worst: "
        f"{worst['scenario']} / {worst['metric']} {worst['dg_within'][0]}/{worst['dg_within'][1]}. "
        f"Target >= {TARGET_SHARE:.0%} of windows per scenario and metric: {'met' if ok else 'NOT met'}."
    )
    if nml is not None:
        k = sum(s["nml_within"][0] for s in summaries)
        n = sum(s["nml_within"][1] for s in summaries)
        print(f"NannyML within target on {k}/{n} windows ({k / max(n, 1):.1%}).")
    print()
    print(f"### Concept drift controls ({CONCEPT_ROWS} rows, label rule changed, features unchanged)")
    print()
    print("A flag (realized value outside the band) is the expected outcome here: the estimate cannot see")
    print("a change of P(y | x), and the gap is the concept-drift signal.")
    print()
    print(concept_table(concept_rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"windows": specs, "driftguard": dg, "nannyml": nml, "summary": summaries}, indent=1, default=str)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
