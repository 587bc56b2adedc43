"""Point every Driftguard store (home, MLflow, history, reports) at one throwaway folder."""

from __future__ import annotations

from pathlib import Path

import pytest


def isolated_stores(mp: pytest.MonkeyPatch, home: Path) -> None:
    """DRIFTGUARD_HOME, MLflow's SQLite store, the history DB and the reports folder under `home`."""
    mp.setenv("DRIFTGUARD_HOME", str(home))
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    mp.setenv("DRIFTGUARD_HISTORY_URL", f"sqlite:///{home / 'history.db'}")
    mp.setenv("DRIFTGUARD_REPORTS_DIR", str(home / "reports"))
