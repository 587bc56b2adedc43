"""`make screenshots`: PNGs of Driftguard's pages for docs/screenshots/, from the stores `make demo` left.

Serves Driftguard's UI app (driftguard.ui.app.create_app, the app the Airflow plugin mounts, here
without Airflow's login, bound to 127.0.0.1 only) on a free port over DRIFTGUARD_HOME, opens
each page in headless Chromium (the browser tests' tests/browser_support.py flags, 1280x800)
and saves: the health board, the model page, the newest candidate page, the runbook, and the
newest run's drift and data-quality reports. The PNGs are reduced to a 128-colour palette so
each stays well under 150 KB. Needs chromium and chromedriver (`make browser`).

Serving the app alone (not `make up`) takes seconds instead of Airflow's start-up, and the pages
are the same HTML; Airflow's frame around them is not in the pictures.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT / "include"), str(REPO_ROOT / "scripts"), str(REPO_ROOT / "tests")]
from airflow_env import DEMO_SCHEDULE_END  # noqa: E402

SIZE = (1280, 800)
COLOURS = 128
REPORT_SETTLE_S = 4.0  # Evidently draws its plots with JavaScript after load


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pages(settings: Any) -> dict[str, str]:
    """Screenshot name -> path under the app, chosen from the history store (newest first)."""
    from driftguard.reporting import reports
    from driftguard.store import HistoryStore
    from driftguard.ui import app as ui

    store = HistoryStore(settings.history_url)
    models = store.models()
    if not models:
        raise SystemExit(f"no recorded runs in {settings.history_url}: run `make demo` first")
    model = models[0]
    chosen = {"board": "/", "model": f"/models/{model}", "runbook": "/runbook"}
    retrains = [r for r in store.retrains(model) if r.get("candidate_version")]
    if retrains:
        chosen["candidate"] = ui.candidate_href("", model, retrains[-1]["candidate_version"])
    reports_dir = Path(settings.reports_dir)
    for rec in reversed(store.runs(model)):
        # The run's folder named from its interval (what ui.report_href falls back to): a home
        # copied elsewhere still finds its reports, whatever absolute paths the runs recorded.
        folder = reports.run_dir(reports_dir, model, rec.interval_start, rec.interval_end)
        files = {key: folder / reports.REPORT_FILES[key] for key in ("drift", "quality")}
        if all(f.is_file() for f in files.values()):
            for key, f in files.items():
                chosen[f"{key}-report"] = f"/reports/{quote(f.relative_to(reports_dir).as_posix())}"
            break
    return chosen


def serve(settings: Any, port: int) -> Any:
    """The UI app under uvicorn in a daemon thread; returns the server (set should_exit to stop)."""
    import uvicorn
    from driftguard.ui.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("the Driftguard app did not start within 60 s")
        time.sleep(0.1)
    return server


def shrink(path: Path) -> int:
    """Palette PNG (text and flat colours survive 128 colours); returns the size in bytes."""
    from PIL import Image

    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=COLOURS, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
    return path.stat().st_size


def capture(base: str, chosen: dict[str, str], out: Path, work: Path) -> None:
    from browser_support import chromium

    out.mkdir(parents=True, exist_ok=True)
    with chromium(work, {"browser": "SEVERE"}) as driver:
        # The viewport itself at SIZE (a window size would include the browser's frame).
        width, height = SIZE
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        for name, path in chosen.items():
            driver.get(base + path)
            time.sleep(REPORT_SETTLE_S if "report" in name else 0.5)
            target = out / f"{name}.png"
            driver.save_screenshot(str(target))
            print(f"[screenshots] {target.relative_to(REPO_ROOT)}  {path}  {shrink(target) // 1024} KB", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    os.environ.setdefault("DRIFTGUARD_SCHEDULE_END", DEMO_SCHEDULE_END)  # the board judges the demo's 2013
    from driftguard.settings import get_settings

    settings = get_settings()
    chosen = pages(settings)
    server = serve(settings, port := _free_port())
    work = settings.home / "screenshots-browser"
    work.mkdir(parents=True, exist_ok=True)
    try:
        capture(f"http://127.0.0.1:{port}", chosen, args.out, work)
    finally:
        server.should_exit = True
    missing = {"candidate", "drift-report", "quality-report"} - set(chosen)
    if missing:
        print(f"[screenshots] not taken (nothing recorded yet): {', '.join(sorted(missing))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
