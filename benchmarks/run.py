"""`make bench`: Driftguard's monitoring run against the naive full-data path, per size and database.

    python -m benchmarks.run [--sizes 100k,1m,10m] [--db sqlite,postgres] [--skip-naive-above 1m]
                             [--reads 100k,1m] [--read-runs 3]

Each case runs in a fresh subprocess (benchmarks.cases) so its peak RSS is its own; the table
compares paths measured in the same run. Then one whole-window read per read path (Arrow, the
SQLAlchemy stream, PostgreSQL COPY, SQLite's cursor), each in its own process, `--read-runs` rounds
interleaved. Writes benchmarks/results/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import data

RESULTS = data.RESULTS
REPO = Path(__file__).resolve().parents[1]
MAX_MEMORY_GB = 12.0  # address-space cap per case (virtual memory, so well above the RSS targets)
TARGETS = {
    "speedup_1m": 10.0,  # naive / Driftguard end to end at 1M rows
    "rss_1m_mb": 1024.0,
    "agreement": 0.98,
    "rss_10m_mb": 2048.0,
    "ratio_10m_to_1m": 3.0,
    "html_mb": 1.0,
    "dag_parse_s": 0.050,
    "task_import_s": 3.0,  # a task process whose step loads none of GX, Evidently, MLflow, sklearn
}


def _case(args: list[str], name: str, timeout: float, *, import_time: bool = False) -> dict[str, Any]:
    """Run one case in a fresh interpreter; its JSON, or {"error": ...} with the log's tail. With
    `import_time`, under Python's `-X importtime`, and the JSON gets the process's `import_s`."""
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = logs / f"{name}.json"
    out.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "GX_ANALYTICS_ENABLED": "false"}
    if import_time:
        env["PYTHONPROFILEIMPORTTIME"] = "1"
    started = time.perf_counter()
    limit = int(MAX_MEMORY_GB * 2**30)

    def cap() -> None:  # a runaway case fails with MemoryError instead of waking the OOM killer
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    with open(logs / f"{name}.log", "w") as log:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.cases", *args, "--out", str(out)],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                preexec_fn=cap,
            )
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = -1
    if code != 0 or not out.exists():
        tail = (logs / f"{name}.log").read_text()[-800:]
        return {"error": f"exit {code} after {time.perf_counter() - started:.0f} s: {tail}"}
    result = json.loads(out.read_text())
    if import_time:
        result["import_s"] = import_seconds((logs / f"{name}.log").read_text())
    return result


def import_seconds(log: str) -> float:
    """A process's whole import time from Python's `-X importtime` lines: the cumulative times
    of the outermost imports (the name column is indented two spaces per level of nesting)."""
    total_us = 0
    for line in log.splitlines():
        if not line.startswith("import time:"):
            continue
        _, cumulative, name = line.split("|", 2)
        if cumulative.strip().isdigit() and not name[1:].startswith(" "):
            total_us += int(cumulative)
    return round(total_us / 1e6, 3)


FLOOR_FILE = "trivial_taskflow.py"  # benchmarks/floor_dag: Airflow's own cost of parsing a TaskFlow DAG
TASK_SLOTS = 2  # parallel task slots in `--mode tasks`: LocalExecutor parallelism on this 2-core machine


def _tasks(
    common: list[str], name: str, timeout: float, db: str, rows: int, ref_rows: int, home: Path
) -> dict[str, Any]:
    """The monitoring run as the DAG performs it: each step in its own fresh process (an Airflow
    task) sharing the run's work folder, started as soon as the steps it reads have finished
    (monitor.UPSTREAM, the DAG's edges), at most TASK_SLOTS at a time. Wall time is the run's,
    start to finish, with every process's start-up and imports; peak RSS is the largest task's.
    Each task's import time (`-X importtime`) and the heavy libraries it loaded are kept per task."""
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    from driftguard.monitoring.monitor import UPSTREAM

    from benchmarks.cases import write_task_spec

    write_task_spec(db, rows, ref_rows, home)
    stages: dict[str, float] = {}
    peaks: dict[str, float] = {}
    imports: dict[str, float] = {}
    heavy: dict[str, list[str]] = {}

    def run(step: str) -> tuple[str, dict[str, Any], float]:
        started = time.perf_counter()
        got = _case(["step", "--step", step, "--home", str(home)], f"dg_{name}_{step}", timeout, import_time=True)
        return step, got, round(time.perf_counter() - started, 3)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=TASK_SLOTS) as slots:
        running: set[Future[tuple[str, dict[str, Any], float]]] = set()
        waiting = dict(UPSTREAM)
        while waiting or running:
            ready = [s for s, ups in waiting.items() if all(u in stages for u in ups)]
            for step in ready:
                del waiting[step]
                running.add(slots.submit(run, step))
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                step, got, seconds = future.result()
                if "error" in got:
                    return {"error": f"step {step}: {got['error']}"}
                stages[step], peaks[step] = seconds, got["peak_rss_mb"]
                imports[step], heavy[step] = got["import_s"], got["heavy_libraries"]
    wall = round(time.perf_counter() - started, 3)
    got = _case(["outcome", *common], f"dg_{name}_outcome", timeout)
    if "error" in got:
        return got
    return {
        "path": "driftguard",
        "mode": "tasks",
        "db": db,
        "rows": rows,
        "seconds": wall,
        "task_slots": TASK_SLOTS,
        "stages": {step: stages[step] for step in UPSTREAM},
        "peak_rss_mb": max(peaks.values()),
        "peak_rss_per_task_mb": peaks,
        "import_s_per_task": {step: imports[step] for step in UPSTREAM},
        "heavy_libraries_per_task": {step: heavy[step] for step in UPSTREAM},
        **got,
    }


def _fresh_home(template: Path, name: str) -> Path:
    home = RESULTS / "home" / name
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(template, home)
    return home


def _agreement(a: dict[str, bool], b: dict[str, bool]) -> float | None:
    common = sorted(set(a) & set(b))
    return sum(a[k] == b[k] for k in common) / len(common) if common else None


def truth() -> dict[str, bool]:
    """The injected drift: exactly the DRIFTED features."""
    return {f: f in data.DRIFTED for f in data.FEATURES}


def run_dags(runs: int, timeout: float) -> dict[str, Any]:
    """DagBag over dags/ in `runs` fresh processes, and each dags/ module's cold import."""
    parses = [_case(["dagparse"], f"dagparse_{i}", timeout) for i in range(runs)]
    ok = [p for p in parses if "error" not in p]
    if not ok:
        return {"error": parses[0]["error"]}
    files = sorted(ok[0]["per_file_s"])
    per_file = {f: round(sum(p["per_file_s"][f] for p in ok) / len(ok), 4) for f in files}
    imports = {}
    for f in files:
        got = [_case(["dagimport", "--file", f], f"dagimport_{f}_{i}", timeout) for i in range(runs)]
        good = [g["import_s"] for g in got if "error" not in g]
        imports[f] = round(sum(good) / len(good), 4) if good else None
    forked = _case(["dagfork", "--runs", str(max(runs, 3))], "dagfork", timeout)
    return {
        "runs": len(ok),
        "load_avg": os.getloadavg()[0],
        "forked_parse_s_per_file": forked.get("per_file_s") or {},
        "forked": forked,
        "parse_s_per_file": per_file,
        "import_s_per_file": imports,
        "airflow_import_s": round(sum(p["airflow_import_s"] for p in ok) / len(ok), 3),
        "dags": ok[0]["dags"],
        "import_errors": ok[0]["import_errors"],
        "heavy_modules": ok[0]["heavy_modules"],
    }


def run_reads(sizes: list[int], dbs: list[str], runs: int, timeout: float, ref_rows: int) -> list[dict[str, Any]]:
    """Each read path of cases.READ_PATHS on each size: `runs` rounds, the paths interleaved within a
    round so a change in the machine's load falls on all of them; the median per path (wall, CPU)
    and the largest peak RSS. `frames_equal`: every path read the same frame (hash of its values)."""
    from statistics import median

    from benchmarks.cases import READ_PATHS

    out = []
    for db in dbs:
        for rows in sizes:
            spec = data.Spec(rows, ref_rows)
            print(f"[read {db} {data.label(rows)}] data ...", flush=True)
            data.ensure(db, spec)
            home = _fresh_home(RESULTS / "home" / "_template", f"read_{db}_{data.label(rows)}")
            got: dict[str, list[dict[str, Any]]] = {p: [] for p in READ_PATHS[db]}
            for i in range(runs):
                for path in READ_PATHS[db]:
                    print(f"[read {db} {data.label(rows)}] {path} {i + 1}/{runs} ...", flush=True)
                    args = ["read", "--read-path", path, "--db", db, "--rows", str(rows)]
                    args += ["--ref-rows", str(ref_rows), "--home", str(home)]
                    got[path].append(_case(args, f"read_{db}_{data.label(rows)}_{path}_{i}", timeout))
            paths: dict[str, Any] = {}
            for path, results in got.items():
                bad = [r for r in results if "error" in r]
                if bad:
                    paths[path] = {"error": bad[0]["error"]}
                    continue
                paths[path] = {
                    "seconds": median(r["seconds"] for r in results),
                    "cpu_s": median(r["cpu_s"] for r in results),
                    "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
                    "rss_before_mb": max(r["rss_before_mb"] for r in results),
                    "runs_s": [r["seconds"] for r in results],
                    "rows_read": results[0]["rows_read"],
                    "frame_hash": results[0]["frame_hash"],
                }
            hashes = {v["frame_hash"] for v in paths.values() if "frame_hash" in v}
            load = os.getloadavg()
            out.append(
                {
                    "db": db,
                    "rows": rows,
                    "runs": runs,
                    "paths": paths,
                    "frames_equal": len(hashes) == 1,
                    "load_avg": load,
                }
            )
    return out


def read_table(reads: list[dict[str, Any]]) -> str:
    """The read paths side by side: medians, and each path's wall time over the Arrow path's."""
    head = ("db", "rows", "path", "wall s", "CPU s", "peak RSS MB", "RSS before read MB", "wall / arrow", "same frame")
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in reads:
        arrow = r["paths"].get("arrow", {}).get("seconds")
        case = f"{r['db']} | {data.label(r['rows'])}"
        for path, p in r["paths"].items():
            if "error" in p:
                lines.append(f"{case} | {path} | FAILED: {p['error'][:200]!r} |  |  |  |  | ")
                continue
            ratio = f"{p['seconds'] / arrow:.2f}x" if arrow else "n/a"
            same = "yes" if r["frames_equal"] else "NO"
            lines.append(
                f"{case} | {path} | {p['seconds']:.2f} | {p['cpu_s']:.2f} | {_mb(p['peak_rss_mb'])} | "
                f"{_mb(p['rss_before_mb'])} | {ratio} | {same}"
            )
    loads = ", ".join(f"{r['db']} {data.label(r['rows'])} {r['load_avg'][0]:.1f}" for r in reads)
    lines.append(f"Median of {reads[0]['runs'] if reads else 0} interleaved runs; load average after each: {loads}.")
    return "\n".join(lines)


def run(
    sizes: list[int],
    dbs: list[str],
    skip_naive_above: int,
    dag_runs: int,
    timeout: float,
    ref_rows: int,
    mode: str = "inprocess",
) -> dict[str, Any]:
    template = RESULTS / "home" / "_template"
    shutil.rmtree(template, ignore_errors=True)
    prepared = _case(["prepare", "--home", str(template)], "prepare", timeout)
    if "error" in prepared:
        raise SystemExit(f"could not prepare the MLflow store: {prepared['error']}")
    # DAG parsing first: tens of milliseconds per file, timed before the data cases leave the
    # machine writing back gigabytes of pages and PostgreSQL vacuuming freshly loaded tables.
    dags = run_dags(dag_runs, timeout) if dag_runs else {"skipped": "--dag-runs 0"}
    cases: list[dict[str, Any]] = []
    for db in dbs:
        for rows in sizes:
            spec = data.Spec(rows, ref_rows)
            print(f"[{db} {data.label(rows)}] data ...", flush=True)
            generated = data.ensure(db, spec)
            name = f"{db}_{data.label(rows)}"
            print(f"[{db} {data.label(rows)}] driftguard ...", flush=True)
            home = _fresh_home(template, name)
            common = ["--db", db, "--rows", str(rows), "--ref-rows", str(ref_rows), "--home", str(home)]
            if mode == "tasks":
                dg = _tasks(common, name, timeout, db, rows, ref_rows, home)
            else:
                dg = _case(["driftguard", *common], f"dg_{name}", timeout)
            if rows <= skip_naive_above:
                print(f"[{db} {data.label(rows)}] naive ...", flush=True)
                nv = _case(["naive", *common], f"naive_{name}", timeout)
            else:
                nv = {
                    "skipped": f"naive path not run above {data.label(skip_naive_above)} rows "
                    f"(DataDriftPreset on full frames: ~100 s and ~2 GB per 1M rows, would not fit or finish)"
                }
            cases.append({"db": db, "rows": rows, "generate_s": round(generated, 1), "driftguard": dg, "naive": nv})
    _derive(cases)
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
        "spec": {
            "reference_rows": ref_rows,
            "numeric": len(data.NUMERIC),
            "categorical": len(data.CATEGORICAL),
            "drifted": sorted(data.DRIFTED),
        },
        "targets": TARGETS,
        "cases": cases,
        "dags": dags,
    }


def _derive(cases: list[dict[str, Any]]) -> None:
    """Speed-up vs naive, verdict agreement (vs naive and vs the injected truth), 10M vs 1M."""
    by = {(c["db"], c["rows"]): c for c in cases}
    for c in cases:
        dg, nv = c["driftguard"], c["naive"]
        if "error" in dg:
            continue
        c["agreement_truth"] = _agreement(dg["verdicts"], truth())
        if "seconds" in nv:
            c["speedup"] = round(nv["seconds"] / dg["seconds"], 2)
            if (work := work_seconds(dg)) is not None:
                c["work_speedup"] = round(float(work_seconds(nv) or 0) / work, 2)
            c["agreement_naive"] = _agreement(dg["verdicts"], nv["verdicts"])
            c["disagreements"] = sorted(
                k for k in dg["verdicts"] if k in nv["verdicts"] and dg["verdicts"][k] != nv["verdicts"][k]
            )
        base = by.get((c["db"], 1_000_000))
        if c["rows"] > 1_000_000 and base and "seconds" in base["driftguard"]:
            c["ratio_to_1m"] = round(dg["seconds"] / base["driftguard"]["seconds"], 2)
            work, base_work = work_seconds(dg), work_seconds(base["driftguard"])
            if work is not None and base_work:
                c["work_ratio_to_1m"] = round(work / base_work, 2)


def work_seconds(case: dict[str, Any]) -> float | None:
    """Wall time minus the import stage (interpreter start-up and libraries): a constant per
    process that does not grow with rows. None in tasks mode, where every task process imports
    what it needs inside its step, as an Airflow task does."""
    if case.get("mode") == "tasks":
        return None
    return float(case["seconds"]) - float(case.get("stages", {}).get("import", 0.0))


# --------------------------------------------------------------------------- table


def _mb(n: float | None) -> str:
    return "-" if n is None else f"{n:,.0f}"


def _html_kb(case: dict[str, Any]) -> str:
    sizes = case.get("html_bytes") or {}
    return ", ".join(f"{k.removesuffix('.html')} {v / 1024:,.0f}" for k, v in sizes.items()) or "-"


def table(result: dict[str, Any]) -> str:
    head = (
        "db",
        "rows",
        "path",
        "wall s",
        "work s",
        "peak RSS MB",
        "naive/dg wall",
        "naive/dg work",
        "agree naive",
        "agree truth",
        "HTML KB",
    )
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for c in result["cases"]:
        dg, nv = c["driftguard"], c["naive"]
        rows = data.label(c["rows"])
        if "error" in dg:
            lines.append(f"{c['db']} | {rows} | driftguard | FAILED: {dg['error'][:200]!r} |  |  |  |  | ")
        else:
            ratio = (
                f"{c['speedup']}x"
                if "speedup" in c
                else (f"n/a (dg {c['ratio_to_1m']}x its 1M time)" if "ratio_to_1m" in c else "n/a")
            )
            agree = f"{c['agreement_naive']:.0%}" if c.get("agreement_naive") is not None else "n/a"
            work_ratio = f"{c['work_speedup']}x" if "work_speedup" in c else "n/a"
            work = work_seconds(dg)
            lines.append(
                f"{c['db']} | {rows} | driftguard | {dg['seconds']:.1f} | {'n/a' if work is None else f'{work:.1f}'} | "
                f"{_mb(dg['peak_rss_mb'])} | {ratio} | {work_ratio} | {agree} | {c['agreement_truth']:.0%} | "
                f"{_html_kb(dg)}"
            )
        if "seconds" in nv:
            lines.append(
                f"{c['db']} | {rows} | naive | {nv['seconds']:.1f} | {work_seconds(nv):.1f} | "
                f"{_mb(nv['peak_rss_mb'])} | 1x | 1x | - | {_agreement(nv['verdicts'], truth()):.0%} | {_html_kb(nv)}"
            )
        elif "error" in nv:
            lines.append(f"{c['db']} | {rows} | naive | FAILED: {nv['error'][:200]!r} |  |  |  |  | ")
        else:
            lines.append(f"{c['db']} | {rows} | naive | n/a: {nv.get('skipped', '')} |  |  |  |  | ")
    lines.append("")
    lines.append("Stages (s):")
    for c in result["cases"]:
        for path in ("driftguard", "naive"):
            stages = c[path].get("stages")
            if stages:
                text = ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
                lines.append(f"  {c['db']} {data.label(c['rows'])} {path}: {text}")
            peaks = c[path].get("peak_rss_per_task_mb")
            if peaks:
                text = ", ".join(f"{k} {v:,.0f}" for k, v in peaks.items())
                lines.append(f"  {c['db']} {data.label(c['rows'])} {path} peak RSS per task (MB): {text}")
    dags = result["dags"]
    if "parse_s_per_file" in dags:
        lines.append("")
        lines.append(
            f"DAG parse (DagBag, mean of {dags['runs']} fresh processes; Airflow import "
            f"{dags['airflow_import_s']} s not included; timed first, load average {dags.get('load_avg', 0):.2f}):"
        )
        forked = dags.get("forked_parse_s_per_file") or {}
        for f, s in dags["parse_s_per_file"].items():
            fork = f"{forked[f] * 1000:.1f} ms" if f in forked else "n/a"
            lines.append(
                f"  {f}: in one DagBag {s * 1000:.1f} ms, alone in a forked child as the dag-processor parses it "
                f"{fork}, cold module import {dags['import_s_per_file'][f] * 1000:.1f} ms"
            )
        floor = forked.get(FLOOR_FILE)
        if floor is not None:
            lines.append(
                f"  floor, a 10-task TaskFlow DAG with no imports of its own ({FLOOR_FILE}): forked parse "
                f"{floor * 1000:.1f} ms"
            )
        lines.append(f"  heavy modules imported by parsing: {dags['heavy_modules'] or 'none'}")
    lines.append("")
    load = result["machine"]["load_avg"][0]
    lines.append(f"Load average when finished: {load:.2f} on {result['machine']['cpus']} CPUs (shared machine).")
    return "\n".join(lines)


def targets(result: dict[str, Any]) -> list[str]:
    """One line per issue target: met / NOT met / not measured, with the figure."""
    t, out = TARGETS, []
    by = {(c["db"], c["rows"]): c for c in result["cases"]}
    for db in sorted({c["db"] for c in result["cases"]}):
        one = by.get((db, 1_000_000))
        if one and "seconds" in one["driftguard"]:
            dg = one["driftguard"]
            if "work_speedup" in one:  # every stage from the query to the history rows, on both paths
                ok = one["work_speedup"] >= t["speedup_1m"]
                what = f"{db} 1M speed-up >= {t['speedup_1m']:g}x, end to end (extract to history)"
                out.append(_line(what, ok, f"{one['work_speedup']}x"))
            if "speedup" in one:
                what = f"{db} 1M speed-up with the libraries' import time on both paths"
                out.append(_info(what, f"{one['speedup']}x"))
            if dg.get("once_per_reference_s") is not None:
                what = f"{db} 1M once per reference (drift calibration and estimator, cached; not in the run)"
                out.append(_info(what, f"{dg['once_per_reference_s']:.1f} s"))
            if "speedup" in one:
                out.append(
                    _line(
                        f"{db} 1M agreement >= {t['agreement']:.0%}",
                        one["agreement_naive"] >= t["agreement"],
                        f"{one['agreement_naive']:.1%}",
                    )
                )
            out.append(
                _line(
                    f"{db} 1M peak RSS <= {t['rss_1m_mb']:g} MB",
                    dg["peak_rss_mb"] <= t["rss_1m_mb"],
                    f"{dg['peak_rss_mb']:.0f} MB",
                )
            )
            big = max((kb for kb in dg["html_bytes"].values()), default=0) / 2**20
            out.append(_line(f"{db} largest HTML <= {t['html_mb']:g} MB", big <= t["html_mb"], f"{big:.2f} MB"))
        ten = by.get((db, 10_000_000))
        if ten and "seconds" in ten["driftguard"]:
            dg = ten["driftguard"]
            out.append(
                _line(
                    f"{db} 10M peak RSS <= {t['rss_10m_mb']:g} MB",
                    dg["peak_rss_mb"] <= t["rss_10m_mb"],
                    f"{dg['peak_rss_mb']:.0f} MB",
                )
            )
            key = "work_ratio_to_1m" if "work_ratio_to_1m" in ten else "ratio_to_1m"  # as the speed-up is judged
            if key in ten:
                how = ", end to end (extract to history)" if key == "work_ratio_to_1m" else ""
                what = f"{db} 10M time <= {t['ratio_10m_to_1m']:g}x 1M{how}"
                out.append(_line(what, ten[key] <= t["ratio_10m_to_1m"], f"{ten[key]}x"))
            if key != "ratio_to_1m" and "ratio_to_1m" in ten:
                out.append(_info(f"{db} 10M time / 1M time with the import time", f"{ten['ratio_to_1m']}x"))
    out += _task_import_lines(result["cases"], t["task_import_s"])
    dags = result["dags"]
    if dags.get("parse_s_per_file"):  # the instrument: Airflow's DagBag over dags/, averaged per file
        bag = dags["parse_s_per_file"]
        mean = sum(bag.values()) / len(bag)
        what = f"DAG parse <= {t['dag_parse_s'] * 1000:g} ms per file (Airflow's DagBag over dags/, averaged)"
        out.append(_line(what, mean <= t["dag_parse_s"], f"mean {mean * 1000:.1f} ms"))
        out.append(
            _info(
                "DAG parse in one DagBag, worst file (the first parsed pays Airflow's TaskFlow imports for all)",
                f"{max(bag.values()) * 1000:.1f} ms",
            )
        )
    forked = dict(dags.get("forked_parse_s_per_file") or {})
    floor = forked.pop(FLOOR_FILE, None)
    if forked:  # how Airflow 3's dag-processor parses: one forked child per file (see cases.dagfork)
        worst = max(forked, key=forked.__getitem__)
        figure = f"worst {worst} {forked[worst] * 1000:.1f} ms"
        if floor is not None:
            figure += f"; Airflow's floor (a bare TaskFlow DAG) {floor * 1000:.1f} ms, Driftguard's own share "
            figure += f"{(forked[worst] - floor) * 1000:+.1f} ms"
        out.append(_info("DAG parse per file, forked as the dag-processor does", figure))
    return out


def _task_import_lines(cases: list[dict[str, Any]], limit: float) -> list[str]:
    """From `--mode tasks`: each task process's import time; the target is judged on
    the tasks whose step loads none of the heavy libraries. Import time does not grow with rows, so
    the smallest case measured is enough."""
    tasks = [c for c in cases if "import_s_per_task" in c["driftguard"]]
    if not tasks:
        return []
    case = min(tasks, key=lambda c: (c["rows"], c["db"]))
    dg = case["driftguard"]
    imports, heavy = dg["import_s_per_task"], dg["heavy_libraries_per_task"]
    light = {step: s for step, s in imports.items() if not heavy[step]}
    figures = ", ".join(f"{step} {s:.2f} s ({'+'.join(heavy[step]) or 'none'})" for step, s in imports.items())
    out = [_info(f"import time per task ({case['db']} {data.label(case['rows'])}; heavy libraries loaded)", figures)]
    if light:
        worst = max(light, key=light.__getitem__)
        what = f"import time <= {limit:g} s for a task that loads none of GX, Evidently, MLflow, sklearn"
        out.append(_line(what, light[worst] <= limit, f"worst {worst} {light[worst]:.2f} s of {len(light)} such tasks"))
    return out


def _line(what: str, ok: bool, figure: str) -> str:
    return f"  [{'met' if ok else 'NOT met'}] {what}: {figure}"


def _info(what: str, figure: str) -> str:
    return f"  [info] {what}: {figure}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100k,1m,10m", help="window sizes, e.g. 100k,1m,10m")
    parser.add_argument("--db", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--skip-naive-above", default="1m", help="run the naive path only up to this many rows")
    parser.add_argument("--dag-runs", type=int, default=3, help="fresh processes for DAG parse timing (0: skip)")
    parser.add_argument(
        "--mode",
        choices=["tasks", "inprocess"],
        default="inprocess",
        help="inprocess: run_monitoring's way, libraries imported once (the import stage); "
        "tasks: each monitoring step in its own fresh process, as an Airflow task, along the DAG's edges, "
        "TASK_SLOTS at a time",
    )
    parser.add_argument("--ref-rows", default=data.label(data.REF_ROWS), help="rows in the reference period")
    parser.add_argument("--reads", default="100k,1m", help="window sizes for the read-path comparison ('' to skip)")
    parser.add_argument("--read-runs", type=int, default=3, help="interleaved rounds of the read-path comparison")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per case")
    parser.add_argument("--out", type=Path, default=RESULTS / "results.json")
    args = parser.parse_args(argv)
    sizes = [data.parse_size(s) for s in args.sizes.split(",") if s]
    dbs = [d.strip() for d in args.db.split(",") if d.strip()]
    unknown = [d for d in dbs if d not in ("sqlite", "postgres")]
    if unknown:
        parser.error(f"unknown --db {unknown}; use sqlite and/or postgres")
    result = run(
        sizes,
        dbs,
        data.parse_size(args.skip_naive_above),
        args.dag_runs,
        args.timeout,
        data.parse_size(args.ref_rows),
        args.mode,
    )
    read_sizes = [data.parse_size(s) for s in args.reads.split(",") if s]
    result["reads"] = run_reads(read_sizes, dbs, args.read_runs, args.timeout, data.parse_size(args.ref_rows))
    result["target_lines"] = targets(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    print()
    print(table(result))
    if result["reads"]:
        print("\nRead paths (one whole window, lenient read_window, no sampling):")
        print(read_table(result["reads"]))
    print("\nTargets:")
    print("\n".join(result["target_lines"]))
    print(f"\nwritten {args.out}")
    failed = [c for c in result["cases"] if "error" in c["driftguard"]]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
