"""Batch shadow scoring end to end on real MLflow and history stores (SQLite): a challenger trained
on a few post-change days is `insufficient_evidence` at its gate, shadows the next daily monitoring
windows beside the champion, and is promoted once the pooled evidence clears the gate, with the
record naming the windows and the CI. A rerun of a shadow window does not count its rows twice."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from driftguard.monitoring import monitor
from driftguard.retraining import registry, retrain
from driftguard.settings import get_settings
from driftguard.store import HistoryStore
from driftguard.testing import Injection, generate_log, synthetic_contract, write_log
from home_support import isolated_stores

START = datetime(2024, 1, 1, tzinfo=UTC)


def _day(n: int) -> datetime:
    return START + timedelta(days=n)


def _gone(*args: object, **kwargs: object) -> None:
    raise OSError("gone")


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """30 rows a day, the label rule changes on day 15 (concept drift). The first champion knows
    the old rule; the challenger trains on days 15-20 only: a 30-row holdout cannot tell."""
    isolated_stores(monkeypatch, tmp_path / "home")
    url = f"sqlite:///{tmp_path / 'log.db'}"
    contract = synthetic_contract(
        url=url,
        name="shadow_flow",
        prediction=False,  # the @champion scores every window
        overrides={
            "reference": {"start": "2024-01-01", "end": "2024-01-11"},
            "training": {
                "estimator": "logistic_regression",
                "params": {},
                "window": "all",
                "validation": "2d",
                "holdout": "1d",
            },
            "promotion": {"bootstrap": {"samples": 300}, "mode": "superiority", "margin": "4%"},
        },
    )
    log, labels = generate_log(
        "binary_classification",
        start=START,
        days=30,
        rows_per_day=30,
        seed=7,
        injections=[Injection("concept_drift", _day(15), magnitude=0.6)],
    )
    write_log(url, contract, log, labels)
    return contract, get_settings()


@pytest.mark.slow
def test_an_insufficient_evidence_challenger_is_promoted_after_shadow_windows(world, monkeypatch) -> None:
    contract, settings = world
    uri, store = settings.mlflow_tracking_uri, HistoryStore(settings.history_url)
    assert retrain.run_retraining(contract, _day(10), _day(11), settings=settings)["status"] == "promoted"
    change = {"summary": "metric drop", "change_point": _day(15).isoformat()}
    second = retrain.run_retraining(contract, _day(19), _day(20), trigger=change, settings=settings)
    assert (second["status"], second["version"]) == ("insufficient_evidence", "2"), second["summary"]
    (opened,) = store.shadow_records("shadow_flow")
    assert (opened.kind, opened.challenger_version, opened.champion_version) == ("holdout", "2", "1")

    results = []
    for n in range(20, 28):
        results.append(monitor.run_monitoring(contract, _day(n), _day(n + 1), settings=settings))
        if n == 20:  # a rerun of the first shadow window (a cleared DAG run): replaced, not added
            rerun = monitor.run_monitoring(contract, _day(n), _day(n + 1), settings=settings)
            assert rerun["shadow"] == results[0]["shadow"]
            assert len(store.shadow_records("shadow_flow")) == 2
            # A challenger that cannot load is recorded and the run goes on; a later rerun recovers.
            with monkeypatch.context() as patched:
                patched.setattr(registry, "load_version", _gone)
                broken = monitor.run_monitoring(contract, _day(n), _day(n + 1), settings=settings)
            assert broken["status"] in ("ok", "degraded") and broken["shadow"]["outcome"] == "shadowing"
            assert "v2 could not load or score: OSError: gone" in broken["shadow"]["reason"]
            assert store.shadow_records("shadow_flow")[-1].labelled_rows == 0
            again = monitor.run_monitoring(contract, _day(n), _day(n + 1), settings=settings)
            assert again["shadow"] == rerun["shadow"]
        if results[-1]["shadow_promotion"]["promoted"]:
            break
    promotion = results[-1]["shadow_promotion"]
    assert promotion["promoted"] and promotion["version"] == "2", [r["shadow"] for r in results]
    # The old champion's metric dropped meanwhile: the policy held the retrain (a new candidate would
    # have replaced v2 and restarted its evidence), and said so.
    held = [r for r in results if "blocked by shadowing: challenger v2" in r["summary"]]
    assert held and not any(r["retrain"] for r in results), [r["summary"] for r in results]

    windows = [r for r in store.shadow_records("shadow_flow") if r.kind == "window"]
    k = len(windows)
    assert k >= 2 and [w.outcome for w in windows] == ["shadowing"] * (k - 1) + ["promote"]
    last = windows[-1]
    assert last.action == "promoted" and last.windows == k
    assert last.cumulative_rows == opened.labelled_rows + sum(w.labelled_rows for w in windows)
    assert all(w.labelled_rows > 0 and w.rows > 0 and w.disagreement is not None for w in windows)
    m = re.fullmatch(
        rf"promoted after {k} shadow windows: 99.58% CI of the roc_auc gain \[\+(\d\.\d+), \+(\d\.\d+)\] "
        rf"on {last.cumulative_rows} rows \({opened.labelled_rows} holdout \+ \d+ shadow\)",
        last.reason,
    )
    assert m, last.reason
    assert float(m[1]) == pytest.approx(last.ci_low, abs=5e-4) and last.ci_low > last.bound > 0
    assert float(m[2]) == pytest.approx(last.ci_high, abs=5e-4)

    # Promoted through the guarded path, recorded as any promotion: aliases, history, alert state.
    aliases = {k: str(v) for k, v in registry.client(uri).get_registered_model("shadow_flow").aliases.items()}
    assert aliases == {"champion": "2", "previous_champion": "1"}  # @challenger went with the promotion
    latest = store.promotions("shadow_flow")[-1]
    assert (latest["action"], latest["version"], latest["actor"]) == ("promote", "2", "driftguard-shadow")
    assert latest["reason"] == last.reason and latest["at"] == last.interval_end
    assert store.last_retrain_at("shadow_flow") == last.interval_end  # the policy's cooldown starts here
    evidence = Path(settings.home) / "shadow" / "shadow_flow" / "v2"
    parts = sorted(["holdout.parquet", *(f"{w.part}.parquet" for w in windows)])
    assert sorted(p.name for p in evidence.iterdir()) == parts
    page = (Path(settings.reports_dir) / "shadow_flow" / "index.html").read_text()
    assert f"v2 was promoted: promoted after {k} shadow windows" in page

    # The next window is scored by the new champion; the session is over and says so.
    end = last.interval_end
    after = monitor.run_monitoring(contract, end, end + timedelta(days=1), settings=settings)
    assert after["shadow"]["state"] == "none" and "ended before this window (promote" in after["shadow"]["note"]
    assert store.runs("shadow_flow")[-1].champion_version == "2"


@pytest.mark.slow
def test_a_shadow_promotion_that_requires_approval_waits_for_driftguard_approve(world, capsys) -> None:
    """With promotion.require_approval the evidence that clears the gate moves nothing: the window
    records `awaiting_approval` until `driftguard approve` promotes through the guarded path."""
    from driftguard import cli

    contract, settings = world
    approval = contract.promotion.model_copy(update={"require_approval": True})
    contract = contract.model_copy(update={"promotion": approval})
    uri, store = settings.mlflow_tracking_uri, HistoryStore(settings.history_url)
    assert retrain.run_retraining(contract, _day(10), _day(11), settings=settings)["status"] == "promoted"
    change = {"summary": "metric drop", "change_point": _day(15).isoformat()}
    second = retrain.run_retraining(contract, _day(19), _day(20), trigger=change, settings=settings)
    # The gate cannot tell yet (as in the test above): v2 shadows; approval only matters once it can.
    assert (second["status"], second["version"]) == ("insufficient_evidence", "2"), second["summary"]
    assert [r["status"] for r in store.retrains("shadow_flow")] == ["promoted", "insufficient_evidence"]
    assert cli.main(["approve", "shadow_flow", "--reason", "too early"]) == 1
    assert "no shadow promotion awaits approval" in capsys.readouterr().err
    for n in range(20, 28):
        result = monitor.run_monitoring(contract, _day(n), _day(n + 1), settings=settings)
        if result["shadow_promotion"].get("action"):
            break
    assert result["shadow_promotion"]["action"] == "awaiting_approval", result["shadow"]
    aliases = registry.client(uri).get_registered_model("shadow_flow").aliases
    assert str(aliases["champion"]) == "1"  # nothing moved

    assert cli.main(["approve", "shadow_flow", "--reason", "segments look fine", "--actor", "ana"]) == 0
    assert "v2 promoted (champion was v1; approved by ana: segments look fine)" in capsys.readouterr().out
    aliases = {k: str(v) for k, v in registry.client(uri).get_registered_model("shadow_flow").aliases.items()}
    assert aliases == {"champion": "2", "previous_champion": "1"}
    latest = store.promotions("shadow_flow")[-1]
    assert (latest["version"], latest["actor"]) == ("2", "ana") and "approved by ana" in latest["reason"]
    decided = [r for r in store.shadow_records("shadow_flow") if r.action][-1]
    assert decided.action == "promoted" and decided.details["action_note"] == "approved by ana: segments look fine"
    assert cli.main(["approve", "shadow_flow", "--reason", "again"]) == 1  # answered once
    assert "the last one was v2: promoted" in capsys.readouterr().err
