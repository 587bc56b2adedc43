"""Where Driftguard keeps things: one home folder with embedded defaults, overridable by env.

Embedded (one machine): SQLite files under DRIFTGUARD_HOME. Production: point the URLs at
PostgreSQL and an MLflow server through the environment (see .env.example).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Settings:
    home: Path
    models_dir: Path
    reports_dir: Path
    history_url: str
    feature_log_url: str
    mlflow_tracking_uri: str
    mlflow_artifacts_dir: Path
    # Per-run HTML reports (GX validation page, Evidently drift page, the report index pages).
    # Off, monitoring still records every verdict, number and summary.json in history: what a
    # backtest replays at volume, where nobody opens the pages. DRIFTGUARD_REPORTS=0 turns it off.
    reports: bool = True

    def ensure_dirs(self) -> None:
        for d in (self.home, self.reports_dir, self.mlflow_artifacts_dir):
            d.mkdir(parents=True, exist_ok=True)


def _sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


def get_settings() -> Settings:
    """Read the environment each call, so tests and DAG tasks can point elsewhere."""
    env = os.environ
    home = Path(env.get("DRIFTGUARD_HOME", REPO_ROOT / ".driftguard")).resolve()
    return Settings(
        home=home,
        models_dir=Path(env.get("DRIFTGUARD_MODELS_DIR", REPO_ROOT / "include" / "models")).resolve(),
        reports_dir=Path(env.get("DRIFTGUARD_REPORTS_DIR", home / "reports")).resolve(),
        history_url=env.get("DRIFTGUARD_HISTORY_URL", _sqlite(home / "history.db")),
        feature_log_url=env.get("DRIFTGUARD_FEATURE_LOG_URL", _sqlite(home / "feature_log.db")),
        mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI", _sqlite(home / "mlflow.db")),
        mlflow_artifacts_dir=Path(env.get("DRIFTGUARD_MLFLOW_ARTIFACTS", home / "mlartifacts")).resolve(),
        reports=env.get("DRIFTGUARD_REPORTS", "1").strip().lower() not in ("0", "false", "no", "off"),
    )
