"""Report files: folder layout, atomic summary.json, and the index pages parsed as HTML."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest
from driftguard.reporting.reports import run_dir, shadow_cell, trend_svg, write_home, write_model_index, write_summary
from driftguard.store import HistoryStore, RunRecord, ShadowRecord, dispose_engines

T0 = datetime(2013, 3, 4, tzinfo=UTC)
WEEK = timedelta(days=7)


class Page(HTMLParser):
    """Collects links, SVG points/markers, table rows and the visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.circles: list[dict[str, str]] = []
        self.markers: list[dict[str, str]] = []
        self.rows: list[dict[str, str]] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if tag == "a":
            self.links.append(a["href"])
        if tag == "circle":
            self.circles.append(a)
        if tag in ("line", "path") and "marker" in a.get("class", ""):
            self.markers.append(a)
        if tag == "tr" and "run" in a.get("class", "").split():
            self.rows.append(a)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def rec(i: int, **kw) -> RunRecord:
    start = T0 + i * WEEK
    base = dict(
        model="flight_delay",
        interval_start=start,
        interval_end=start + WEEK,
        rows=1000 + i,
        drift_share=0.1 * i,
        drifted_features=["carrier"] if i else [],
        metric_name="roc_auc",
        metric_value=0.70 + 0.01 * i,
        labelled_rows=900,
        reasons=[{"rule": "drift_share", "kind": "trigger", "fired": False, "detail": f"drift share {0.1 * i:.2f}"}],
        summary="no retrain: no trigger fired",
    )
    base.update(kw)
    return RunRecord(**base)


def test_run_dir_is_named_by_the_utc_interval(tmp_path: Path) -> None:
    cet = timezone(timedelta(hours=1))
    d = run_dir(tmp_path, "flight_delay", datetime(2013, 3, 4, 1, 30, tzinfo=cet), datetime(2013, 3, 11, tzinfo=UTC))
    assert d == tmp_path / "flight_delay" / "20130304T0030_20130311T0000"
    with pytest.raises(ValueError, match="interval start 2013-03-04T00:00:00 is naive"):
        run_dir(tmp_path, "flight_delay", datetime(2013, 3, 4), T0)
    with pytest.raises(ValueError, match=r"model name '\.\./etc' cannot be a report folder name"):
        run_dir(tmp_path, "../etc", T0, T0 + WEEK)


def test_write_summary_is_plain_json_written_atomically(tmp_path: Path) -> None:
    import numpy as np

    d = run_dir(tmp_path, "flight_delay", T0, T0 + WEEK)
    path = write_summary(d, {"drift_share": np.float64(0.25), "metric": float("nan"), "at": T0, "rows": np.int64(3)})
    assert path == d / "summary.json"
    assert json.loads(path.read_text()) == {
        "at": "2013-03-04T00:00:00+00:00",
        "drift_share": 0.25,
        "metric": None,
        "rows": 3,
    }
    write_summary(d, {"rows": 4})
    assert json.loads(path.read_text()) == {"rows": 4}
    assert sorted(p.name for p in d.iterdir()) == ["summary.json"]  # no temporary files left


def test_model_index_table_links_plot_and_markers(tmp_path: Path) -> None:
    records = [
        rec(0),
        rec(1, status="quality_failed", quality_passed=False, critical_failures=2, drift_share=None, metric_value=None),
        rec(2),
        rec(3, retrain=True, summary="retrain: drift share 0.30 >= 0.30"),
    ]
    # Run 0 and 3 have their files on disk; run 2 names its drift report explicitly.
    for r in (records[0], records[3]):
        d = run_dir(tmp_path, "flight_delay", r.interval_start, r.interval_end)
        d.mkdir(parents=True)
        (d / "drift.html").write_text("<html></html>")
        (d / "validation.html").write_text("<html></html>")
        write_summary(d, {"ok": True})
    records[2].report_paths = {"drift": "drift.html"}
    promotions = [
        {
            "action": "first_champion",
            "version": "1",
            "previous_version": None,
            "actor": "driftguard",
            "reason": "floors met",
            "at": records[1].interval_end + timedelta(hours=2),
        },
        {
            "action": "promote",
            "version": "2",
            "previous_version": "1",
            "actor": "driftguard",
            "reason": "ok",
            "at": records[3].interval_end + timedelta(hours=2),
        },
    ]
    path = write_model_index(tmp_path, "flight_delay", records, promotions=promotions, drift_threshold=0.3)
    assert path == tmp_path / "flight_delay" / "index.html"
    page = parse(path)

    # Table: newest first, one row per run.
    assert [r["data-interval"] for r in page.rows] == [
        "20130325T0000_20130401T0000",
        "20130318T0000_20130325T0000",
        "20130311T0000_20130318T0000",
        "20130304T0000_20130311T0000",
    ]
    # Relative links to every existing report; nothing for run 1, which has none.
    assert "../index.html" in page.links
    for stamp in ("20130325T0000_20130401T0000", "20130304T0000_20130311T0000"):
        for name in ("drift.html", "validation.html", "summary.json"):
            assert f"{stamp}/{name}" in page.links
            assert (tmp_path / "flight_delay" / stamp / name).exists()
    assert "20130318T0000_20130325T0000/drift.html" in page.links
    assert not [link for link in page.links if link.startswith("20130311T0000")]

    # Plot: one drift and one metric point per run with a value (run 1 has neither).
    drift = [c for c in page.circles if "drift" in c["class"].split()]
    metric = [c for c in page.circles if "metric" in c["class"].split()]
    assert [c["data-value"] for c in drift] == ["0", "0.2", "0.3"]
    assert [c["data-value"] for c in metric] == ["0.7", "0.72", "0.73"]
    xs = [float(c["cx"]) for c in drift]
    assert xs == sorted(xs) and len(set(xs)) == 3
    ys = [float(c["cy"]) for c in drift]
    assert ys[0] > ys[1] > ys[2]  # larger share is higher up
    retrain_markers = [m for m in page.markers if "retrain-marker" in m["class"]]
    assert [m["data-interval"] for m in retrain_markers] == ["2013-03-25 00:00 → 2013-04-01 00:00"]
    assert float(retrain_markers[0]["x1"]) == xs[-1]
    # Only the first promotion falls inside the plotted range, between runs 1 and 2.
    (promo,) = [m for m in page.markers if "promotion-marker" in m["class"]]
    x_promo = float(promo["d"].split(",")[0].removeprefix("M"))
    assert xs[0] < x_promo < xs[1]
    text = " ".join(page.text)
    assert "failed: 2 critical" in text
    assert "retrain: drift share 0.30 >= 0.30" in text
    assert "promote" in text and "v2" in text and "(was v1)" in text
    assert "script" not in page.tags  # no JavaScript
    assert path.stat().st_size < 40_000


def test_everything_is_html_escaped(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>'
    r = rec(
        1,
        drifted_features=[evil],
        summary=evil,
        metric_name=evil,
        reasons=[{"rule": evil, "kind": "trigger", "fired": True, "detail": evil}],
    )
    promotions = [{"action": evil, "version": evil, "actor": evil, "reason": evil, "at": T0 + WEEK}]
    path = write_model_index(tmp_path, "flight_delay", [r], promotions=promotions)
    raw = path.read_text()
    assert "<script>" not in raw
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in raw
    page = parse(path)
    assert "script" not in page.tags
    assert evil in "".join(page.text)  # still readable once unescaped


def test_index_from_the_store_and_home_page(tmp_path: Path, sqlite_url: str) -> None:
    store = HistoryStore(sqlite_url)
    try:
        for i in range(3):
            store.record_run(rec(i))
        store.record_run(rec(0, model="taxi_fare"))
        models = store.models()
        latest = {m: store.runs(m, limit=1)[0] for m in models}
        for m in models:
            write_model_index(tmp_path, m, store.runs(m), promotions=store.promotions(m))
    finally:
        dispose_engines()
    home = write_home(tmp_path, models, latest=latest)
    page = parse(home)
    assert page.links == ["flight_delay/index.html", "taxi_fare/index.html"]
    for link in page.links:
        assert (tmp_path / link).exists()
    assert "2013-03-18 00:00 → 2013-03-25 00:00" in " ".join(page.text)
    assert len([c for c in parse(tmp_path / "flight_delay" / "index.html").circles if "drift" in c["class"]]) == 3


def test_empty_index_and_home(tmp_path: Path) -> None:
    page = parse(write_model_index(tmp_path, "flight_delay", []))
    assert "no runs recorded yet" in " ".join(page.text) and page.circles == []
    assert "no models monitored yet" in " ".join(parse(write_home(tmp_path, [])).text)


def test_single_run_plot_is_centred() -> None:
    svg = trend_svg([rec(2)])
    page = Page()
    page.feed(svg)
    (drift,) = [c for c in page.circles if "drift" in c["class"]]
    assert abs(float(drift["cx"]) - (56 + 8 + 760 - 16 - 8) / 2) < 0.2


def test_trend_draws_the_weighted_share_and_the_estimate_band() -> None:
    from datetime import UTC, datetime, timedelta

    from driftguard.reporting.reports import trend_svg
    from driftguard.store import RunRecord

    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    records = [
        RunRecord(
            model="m",
            interval_start=t0 + i * timedelta(days=7),
            interval_end=t0 + (i + 1) * timedelta(days=7),
            drift_share=0.2,
            metric_name="roc_auc",
            metric_value=0.80 if i < 2 else None,  # the last week's labels have not matured
            signals={
                "weighted_drift_share": 0.05,
                "estimated_metric": {"metric": "roc_auc", "value": 0.79, "lower": 0.76, "upper": 0.82},
            },
        )
        for i in range(3)
    ]
    svg = trend_svg(records)
    assert svg.count('class="pt estimate') == 3 and svg.count('class="pt metric') == 2
    assert svg.count('class="pt weighted') == 3 and '<polygon class="band"' in svg
    assert "estimated roc_auc (no labels) 0.79" in svg


def test_decision_cell_words_a_review_reason_as_raised_not_as_a_guard() -> None:
    from datetime import UTC, datetime, timedelta

    from driftguard.reporting.reports import decision_cell
    from driftguard.store import RunRecord

    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    rec = RunRecord(
        model="m",
        interval_start=t0,
        interval_end=t0 + timedelta(days=7),
        reasons=[
            {"rule": "model_age", "kind": "review", "fired": True, "detail": "champion age 133d >= 120d"},
            {"rule": "cooldown", "kind": "guard", "fired": True, "detail": "cooldown: last retrain 3d ago < 1w"},
        ],
    )
    cell = decision_cell(rec)
    assert "review model_age raised: champion age 133d &gt;= 120d" in cell
    assert "guard cooldown blocks: cooldown" in cell


def test_shadow_state_and_cells_are_shown_and_escaped(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>'
    signal = {
        "state": "shadow", "challenger_version": "3", "champion_version": "2", "windows": 2, "labelled_rows": 40,
        "cumulative_rows": 74, "disagreement": 0.041, "prediction_shift": -0.0123, "ci_low": 0.031, "ci_high": 0.14,
        "outcome": "promote", "reason": f"promoted after 2 shadow windows {evil}",
    }  # fmt: skip
    run = rec(1, signals={"shadow": signal})
    opened = ShadowRecord("flight_delay", "3", "2", "holdout", T0, T0 + WEEK, "shadowing", labelled_rows=34)
    window = ShadowRecord(
        "flight_delay", "3", "2", "window", T0 + WEEK, T0 + 2 * WEEK, "promote", windows=2, rows=1001,
        labelled_rows=40, cumulative_rows=74, disagreement=0.041, prediction_shift=-0.0123, ci_low=0.031,
        ci_high=0.14, action="promoted", reason=f"promoted after 2 shadow windows {evil}",
    )  # fmt: skip
    path = write_model_index(tmp_path, "flight_delay", [run], shadow=[opened, window])
    raw = path.read_text()
    assert "<script>" not in raw and "script" not in parse(path).tags
    text = " ".join("".join(parse(path).text).split())
    assert f"v3 was promoted: promoted after 2 shadow windows {evil}" in text  # the state line
    assert "v3 beside v2, window 2: promote" in text  # the runs table's cell
    assert "disagreement 4.1%, shift -0.0123; +40 labelled, 74 paired rows; CI [+0.031, +0.140]" in text
    assert "promote → promoted" in text  # the shadow table
    assert shadow_cell(rec(2)) == '<span class="muted">—</span>'
    assert "is not shadowed" in shadow_cell(rec(2, signals={"shadow": {"state": "none", "note": "v4 is not shadowed"}}))
    empty = parse(write_model_index(tmp_path, "other_model", [rec(1)]))
    assert "No challenger has shadowed yet." in " ".join(empty.text)


# --------------------------------------------------------------------------- home and run pages


def test_monitor_writes_a_home_listing_each_models_latest_runs(tmp_path: Path, sqlite_url: str) -> None:
    """monitor.write_indexes, right after a run is recorded: the home names that run (it said
    "no runs yet" when it was built without the store's runs) and links its reports."""
    from types import SimpleNamespace

    from driftguard.monitoring import monitor
    from driftguard.reporting import reports

    runs = [rec(i) for i in range(7)] + [rec(0, model="taxi_fare")]
    folder = run_dir(tmp_path, "flight_delay", runs[6].interval_start, runs[6].interval_end)
    folder.mkdir(parents=True)
    (folder / "drift.html").write_text("<html></html>")
    store = HistoryStore(sqlite_url)
    ctx = SimpleNamespace(
        settings=SimpleNamespace(reports_dir=tmp_path),
        name="flight_delay",
        contract=SimpleNamespace(policy=SimpleNamespace(drift_share=0.3), description=""),
    )
    try:
        for r in runs:
            store.record_run(r)
        monitor.write_indexes(ctx, store)
    finally:
        dispose_engines()
    page = parse(tmp_path / "index.html")
    text = " ".join(page.text)
    assert "no runs yet" not in text
    listed = [(r["data-model"], r["data-interval"]) for r in page.rows]
    name = reports.run_dir_name
    newest = [("flight_delay", name(r.interval_start, r.interval_end)) for r in reversed(runs[2:7])]
    assert listed == [*newest, ("taxi_fare", name(T0, T0 + WEEK))]
    assert len(listed) == reports.HOME_RUNS + 1
    assert f"flight_delay/{folder.name}/drift.html" in page.links
    assert "<title>Driftguard reports</title>" in (tmp_path / "index.html").read_text()


def _verdict(name: str, status: str, effect: float | None, **kw) -> dict:
    return {"feature": name, "kind": "numeric", "method": "wasserstein", "threshold": 0.2, "score": effect or 0.0,
            "drifted": status == "drift", "status": status, "reference_rows": 500, "current_rows": 400,
            "nonfinite": 0, "effect": effect, "effect_method": "wasserstein", "basis": "calibrated", **kw}  # fmt: skip


def test_drift_header_and_table_sort_colour_name_and_escape() -> None:
    """Drifted first then by effect size, insufficient data last and said so; the score column is
    "model score"; data in a column name, a threshold basis or the reference label stays text."""
    import xss_support
    from driftguard.reporting.reports import drift_sections, drift_title

    evil = xss_support.PAYLOADS[1]
    data = {
        "features": [
            _verdict("small_drift", "drift", 0.3),
            _verdict("calm", "ok", 0.05),
            _verdict(xss_support.FEATURE, "drift", 0.9, basis=evil),
            _verdict("thin", "insufficient data", None, score=float("nan")),
        ],
        "prediction": _verdict("__score__", "ok", 0.1),
        "insufficient_features": ["thin"],
        "drift_share": 2 / 3,
        "share_threshold": 0.5,
        "dataset_drift": True,
        "reference_rows": 5000,
        "current_rows": 1234,
        "sample_rows": 1234,
        "skipped": {"gone": "missing from the window"},
    }
    start = T0
    html = drift_sections(data, model="flight_delay", start=start, end=start + WEEK, reference=f"champion v3 {evil}")
    page = Page()
    page.feed(html)
    text = " ".join(page.text)
    assert "Drift report: flight_delay" in text and "2013-03-04 00:00 → 2013-03-11 00:00" in text
    assert "Dataset drift: 2 of 3 features drifted (67%), at or above the 50% threshold." in text
    assert "1 feature had too little data" in text and "The model score did not drift" in text
    assert "5,000 reference, 1,234 current" in text and f"champion v3 {evil}" in text
    order = re.findall(r'<tr class="verdict verdict-([a-z-]+)" data-column="([^"]*)"', html)
    assert [c for c, _ in order] == ["drift", "drift", "no-drift", "no-drift", "insufficient", "skipped"]
    assert [n for _, n in order][2:] == ["model score", "calm", "thin", "gone"]
    assert '<span class="badge insufficient">insufficient data</span>' in html
    assert "__score__" not in html and "img" not in page.tags and "script" not in page.tags
    assert xss_support.FEATURE in text and evil in text  # shown as text
    assert (
        drift_title("flight_delay", start, start + WEEK)
        == "Drift report: flight_delay 2013-03-04 00:00 to 2013-03-11 00:00 UTC"
    )


def test_quality_page_status_follows_driftguard_severities_and_escapes() -> None:
    import xss_support
    from driftguard.reporting.reports import quality_page, quality_status

    assert quality_status(0, 0) == ("passed", "passed")
    assert quality_status(0, 3) == ("warning", "passed, 3 warnings")
    assert quality_status(2, 1) == ("failed", "failed: 2 critical, 1 warning")
    evil = xss_support.PAYLOADS[2]
    check = {"family": "domains", "expectation": "expect_column_values_to_be_in_set", "severity": "warning"}
    data = {
        "model": "flight_delay",
        "start": T0.isoformat(),
        "end": (T0 + WEEK).isoformat(),
        "rows": 400,
        "checks": [
            {
                **check,
                "column": "ok_col",
                "success": True,
                "observed": {"unexpected_count": 0, "element_count": 400},
                "message": "fine",
            },
            {
                **check,
                "column": xss_support.FEATURE,
                "success": False,
                "message": f"unseen {evil}",
                "observed": {"unexpected_count": 12, "element_count": 400, "examples": [evil, None]},
            },
        ],
    }
    html = quality_page(data, summary=f"summary {evil}", files=["validation.json"])
    page = Page()
    page.feed(html)
    text = " ".join(page.text)
    assert "<title>flight_delay data quality 2013-03-04 00:00 to 2013-03-11 00:00 UTC</title>" in html
    assert '<span class="badge warning" id="quality-status">passed, 1 warning</span>' in html
    assert html.index('data-family="domains"><td><span class="badge warning">failed') < html.index("ok_col")
    assert "12 of 400 rows (3.0%)" in text and evil in text and xss_support.FEATURE in text
    assert not {"img", "svg", "script"} & set(page.tags)
    assert page.links == ["../index.html", "validation.json"]


def test_trend_marks_failures_retrain_outcomes_and_the_champion_baseline() -> None:
    from driftguard.store import FailureRecord

    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    week = timedelta(days=7)
    drop = {"rule": "metric_drop", "kind": "trigger", "fired": False,
            "detail": "roc_auc 0.7100 vs champion validation 0.7400: worse by 0.0300 (0.0300 < 0.0500)",
            "baseline": 0.74}  # fmt: skip
    runs = [
        RunRecord(
            model="m",
            interval_start=t0 + i * week,
            interval_end=t0 + (i + 1) * week,
            drift_share=0.1,
            metric_name="roc_auc",
            metric_value=0.71,
            reasons=[drop],
        )
        for i in range(4)
    ]
    evil = '<script>alert("x")</script>'
    retrains = [
        {"interval_start": t0 + week, "interval_end": t0 + 2 * week, "status": "rejected", "candidate_version": "3"},
        {
            "interval_start": t0 + 2 * week,
            "interval_end": t0 + 3 * week,
            "status": "promoted",
            "candidate_version": "4",
        },
        {"interval_start": t0 + 3 * week, "interval_end": t0 + 4 * week, "status": "insufficient_evidence"},
        {"interval_start": t0, "interval_end": t0 + 9 * week, "status": "rejected"},  # outside the plot: no marker
    ]
    failure = FailureRecord(
        model="m",
        dag_id="d",
        run_id="r",
        task_id="extract_window",
        failed_at=t0 + 30 * week,
        error=f"MissingTableError: {evil}",
        interval_start=t0 + week,
        interval_end=t0 + 2 * week,
    )
    promotions = [{"action": "promote", "version": "4", "at": t0 + 2 * week}]
    svg = trend_svg(runs, retrains=retrains, failures=[failure], promotions=promotions)
    assert svg.count('class="rejection-marker"') == 1 and "candidate v3 rejected" in svg
    assert svg.count('class="promoted-marker"') == 1 and 'class="promotion-marker"' not in svg  # drawn once
    assert svg.count('class="undecided-marker"') == 1 and "insufficient evidence" in svg
    assert svg.count('class="failure-marker"') == 1 and "run failed at extract_window" in svg
    assert evil not in svg and "&lt;script&gt;" in svg
    assert '<polyline class="baseline"' in svg and "champion baseline" in svg
    assert svg.count("0.7400") == 0  # the baseline is drawn, not printed: its y is inside the metric panel
