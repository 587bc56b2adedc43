"""dag_defaults.retrain_run_id and retrain_conf: what a monitoring run's retrain request is called
and carries (the retraining run's id and conf)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from driftguard.airflow.dag_defaults import retrain_conf, retrain_run_id

START, END = datetime(2013, 3, 31, tzinfo=UTC), datetime(2013, 4, 7, tzinfo=UTC)


def test_run_id_names_the_interval_in_utc_as_airflow_names_runs() -> None:
    expected = "retrain__2013-03-31T00:00:00+00:00_2013-04-07T00:00:00+00:00"
    assert retrain_run_id(START, END) == expected
    # The same instants in another offset, or as the ISO text of a conf: the same id.
    est = timezone(timedelta(hours=-5))
    assert retrain_run_id(START.astimezone(est), END.astimezone(est)) == expected
    assert retrain_run_id("2013-03-30T19:00:00-05:00", END.isoformat()) == expected
    assert retrain_run_id(START, END + timedelta(days=7)) != expected  # one id per interval


def test_conf_carries_the_interval_the_reasons_and_the_change_point() -> None:
    """The trigger is what the candidate's training reads: a change point moves the start of
    its window, so nothing of the decision's request may be lost on the way."""
    published = {
        "summary": "x" * 2000 + "realized roc_auc fell",
        "report": "flight_delay/drift.html",
        "retrain_request": {
            "triggers": ["metric_drop"],
            "change_point": "2013-03-20T00:00:00+00:00",
            "change_basis": "metric",
            "change_runs": 2,
            "baseline_metric": 0.61,
            "unrelated": "not a request field",
        },
    }
    conf = retrain_conf(START, END, published, "driftguard_monitor__flight_delay scheduled__x")
    assert conf == {
        "interval_start": "2013-03-31T00:00:00+00:00",
        "interval_end": "2013-04-07T00:00:00+00:00",
        "reason": "retrain requested by driftguard_monitor__flight_delay scheduled__x",
        "trigger": {
            "source": "monitoring",
            "summary": published["summary"][-1500:],
            "report": "flight_delay/drift.html",
            "triggers": ["metric_drop"],
            "change_point": "2013-03-20T00:00:00+00:00",
            "change_basis": "metric",
            "change_runs": 2,
            "baseline_metric": 0.61,
        },
    }
    assert conf["trigger"]["summary"].endswith("realized roc_auc fell")
    bare = retrain_conf(START, END, {"summary": "s"}, "m r")
    assert bare["trigger"] == {"source": "monitoring", "summary": "s", "report": None}
