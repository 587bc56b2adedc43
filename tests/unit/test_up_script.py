"""scripts/up.py (`make up`) skips `airflow db migrate` only when the metadata DB is at Airflow's head.

Checked against a metadata DB migrated by the real `airflow db migrate` (the session's), a DB
at an older revision, a file that is no Airflow DB, and no file at all.
"""

from __future__ import annotations

import importlib.util
import shutil
import sqlite3
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "up.py"


def _up() -> ModuleType:
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("_driftguard_up", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_migration_is_skipped_only_at_head(airflow_db: Path, tmp_path: Path) -> None:
    up = _up()
    versions = up.airflow_versions_dir()
    heads = up.migration_heads(versions)
    assert len(heads) == 1, heads  # one linear history in a released Airflow
    migrated = airflow_db / "airflow.db"
    assert up.metadata_db_current(migrated, versions)

    older = tmp_path / "older.db"
    shutil.copy(migrated, older)
    with sqlite3.connect(older) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'not_the_head'")
    assert not up.metadata_db_current(older, versions)

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert not up.metadata_db_current(empty, versions)
    assert not up.metadata_db_current(tmp_path / "missing.db", versions)
