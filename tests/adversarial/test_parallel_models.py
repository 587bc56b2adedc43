"""Several models monitored at once on one PostgreSQL database (feature log and history), as an
Airflow LocalExecutor with parallelism 4 runs them: four worker processes, each running a model's
monitoring steps for a day, all publishing into the same dg_ tables (runs, alerts, calibration
cache) at about the same time. Nothing may be lost and nothing may deadlock.

The scheduler itself is exercised by tests/integration/test_topology.py; this pins what the
executor's parallelism does to Driftguard's shared tables.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from driftguard import store as store_mod
from driftguard.settings import get_settings
from driftguard.store import HistoryStore
from driftguard.testing import Injection, generate_log, synthetic_contract, write_log
from home_support import isolated_stores

START = datetime(2024, 1, 1, tzinfo=UTC)
MODELS = [f"parallel_{i}" for i in range(4)]
DAYS = (2, 3)
PARALLELISM = 4
DEADLOCK_TIMEOUT = 600.0  # seconds for all runs; a deadlock (or lock wait) fails here, not forever


def _monitor(contract: Any, day: int) -> tuple[str, int, str]:
    """One Airflow task slot: a fresh process running a model's monitoring for one day."""
    from driftguard.monitoring import monitor

    start = START + timedelta(days=day)
    result = monitor.run_monitoring(contract, start, start + timedelta(days=1))
    return contract.name, day, str(result["status"])


@pytest.fixture
def world(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    isolated_stores(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("DRIFTGUARD_HISTORY_URL", pg_url)
    store_mod.dispose_engines()
    contracts = []
    for i, name in enumerate(MODELS):
        contract = synthetic_contract(
            url=pg_url,
            name=name,
            table=f"events_{i}",
            label_table=f"events_{i}_labels",
            overrides={"reference": {"start": "2024-01-01", "end": "2024-01-03"}},
        )
        # Half the models drift on day 3: their runs write alerts too.
        shift = [Injection("mean_shift", START + timedelta(days=3), column="num_0", magnitude=3.0)] if i % 2 else []
        log, labels = generate_log(contract.task.value, start=START, days=4, rows_per_day=120, seed=i, injections=shift)
        write_log(pg_url, contract, log, labels)
        contracts.append(contract)
    yield contracts
    store_mod.dispose_engines()


def test_models_monitored_in_parallel_on_postgresql_lose_nothing(world: list[Any]) -> None:
    jobs = [(c, day) for day in DAYS for c in world]
    context = multiprocessing.get_context("spawn")  # fresh processes, as Airflow's task runner starts them
    with ProcessPoolExecutor(PARALLELISM, mp_context=context) as pool:
        futures = [pool.submit(_monitor, c, day) for c, day in jobs]
        done = [f.result(timeout=DEADLOCK_TIMEOUT) for f in futures]
    assert sorted((name, day) for name, day, _ in done) == sorted((c.name, day) for c, day in jobs)
    assert all(status in ("ok", "degraded") for *_, status in done), done

    store = HistoryStore(get_settings().history_url)
    for contract in world:
        runs = store.runs(contract.name)
        days = sorted((r.interval_start - START).days for r in runs)
        assert days == list(DAYS), (contract.name, days)  # one row per run, none lost, none doubled
        assert all(r.reasons and r.summary for r in runs)
    drifting = [c.name for i, c in enumerate(world) if i % 2]
    for name in drifting:
        day3 = next(r for r in store.runs(name) if (r.interval_start - START).days == 3)
        assert "num_0" in day3.drifted_features, (name, day3.drifted_features)
