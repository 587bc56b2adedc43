"""driftguard.monitoring.quality: real Great Expectations runs on small synthetic windows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from driftguard.contract import ModelContract, parse_contract
from driftguard.monitoring import _gx
from driftguard.monitoring.quality import (
    FAMILIES,
    RENDERER,
    SOURCE_SCHEMA_CHECK,
    CheckResult,
    QualityResult,
    _runnable,
    build_suite,
    problem_columns,
    validate_window,
)
from driftguard.statistics.profile import profile_frame

CONTRACT_YAML = """
name: toy_model
task: binary_classification
owners: [ml@example.com]
start_date: 2024-01-01
source:
  url: sqlite:///toy.db
  table: scoring_log
  timestamp_column: scored_at
  id_column: event_id
  prediction_column: score
  labels: {column: label}
features:
  - {name: num_0, kind: numeric, nullable: false}
  - {name: num_1, kind: numeric, range: [-10, 10]}
  - {name: num_2, kind: numeric}
  - {name: num_3, kind: numeric}
  - {name: num_4, kind: numeric}
  - {name: num_5, kind: numeric}
  - {name: cat_a, kind: categorical, nullable: false}
  - {name: cat_b, kind: categorical}
  - {name: region, kind: categorical, domain: [north, south, east, west]}
"""

START = datetime(2024, 3, 1, tzinfo=UTC)
END = datetime(2024, 3, 8, tzinfo=UTC)
N = 3000


def make_frame(n: int = N, seed: int = 0, start: datetime = START, end: datetime = END) -> pd.DataFrame:
    """A window following the sources dtype convention (UTC timestamps, float64, object str + nan)."""
    rng = np.random.default_rng(seed)
    span = (end - start).total_seconds()
    ts = pd.to_datetime(start) + pd.to_timedelta(np.sort(rng.uniform(0, span, n)), unit="s")
    df = pd.DataFrame({"scored_at": ts.astype("datetime64[ns, UTC]"), "event_id": np.arange(n) + seed * 1_000_000})
    df["score"] = rng.uniform(0, 1, n)
    for i in range(6):
        df[f"num_{i}"] = rng.normal(i, 1 + i / 2, n)
    df.loc[rng.random(n) < 0.02, "num_2"] = np.nan

    def cats(values: list[str], p: list[float], null_share: float = 0.0) -> pd.Series:
        s = pd.Series(rng.choice(values, size=n, p=p), dtype=object)
        return s.where(rng.random(n) >= null_share, np.nan)

    df["cat_a"] = cats(["a", "b", "c"], [0.5, 0.3, 0.2])
    df["cat_b"] = cats(["x", "y", "z"], [0.4, 0.4, 0.2], null_share=0.03)
    df["region"] = cats(["north", "south", "east", "west"], [0.25] * 4)
    return df


@pytest.fixture(scope="module")
def contract() -> ModelContract:
    return parse_contract(CONTRACT_YAML)


@pytest.fixture(scope="module")
def profile(contract: ModelContract) -> dict:
    return profile_frame(make_frame(5000, seed=1), contract)


def run(contract: ModelContract, profile: dict, df: pd.DataFrame, **kw) -> QualityResult:
    return validate_window(contract, df, profile, start=START, end=END, **kw)


def failed(result: QualityResult, family: str) -> list[CheckResult]:
    return [c for c in result.checks if c.family == family and not c.success]


def only_failure(result: QualityResult, family: str, column: str | None) -> CheckResult:
    bad = [c for c in result.checks if not c.success]
    assert [(c.family, c.column) for c in bad] == [(family, column)], [c.message for c in bad]
    return bad[0]


def with_contract(extra_yaml: str) -> ModelContract:
    return parse_contract(CONTRACT_YAML + extra_yaml)


# --------------------------------------------------------------------------- clean data


def test_clean_window_passes_every_family(contract: ModelContract, profile: dict) -> None:
    result = run(contract, profile, make_frame(), expected_rows=N)
    assert result.passed_critical
    assert [c.message for c in result.checks if not c.success] == []
    assert {c.family for c in result.checks} == set(FAMILIES)
    assert result.rows == N
    assert result.critical_failures == [] and result.warnings == []
    assert "3,000 rows" in result.summary() and "all" in result.summary()


def test_every_expectation_carries_family_severity_and_column(contract: ModelContract, profile: dict) -> None:
    suite = build_suite(contract, profile, expected_rows=N)
    for exp in suite.expectations:
        assert set(exp.meta) >= {"family", "severity", "column"}, exp
        assert exp.meta["severity"] == contract.quality.severity[exp.meta["family"]].value
        assert exp.severity.value == exp.meta["severity"]
    columns = {e.meta["column"] for e in suite.expectations if e.meta["family"] == "schema"}
    assert columns == {"scored_at", "event_id", "score", *contract.feature_names}


# --------------------------------------------------------------------------- each family


def test_null_spike_is_a_warning_naming_the_column(contract: ModelContract, profile: dict) -> None:
    df = make_frame()
    df.loc[df.index[:900], "num_2"] = np.nan  # ~30% null, reference ~2%
    nulls = int(df["num_2"].isna().sum())
    allowed = profile["features"]["num_2"]["null_share"] + contract.quality.null_tolerance
    check = only_failure(run(contract, profile, df), "nulls", "num_2")
    assert check.severity == "warning" and check.expectation == "expect_column_values_to_not_be_null"
    assert check.message.startswith(f"Column 'num_2' may be at most {allowed:.1%} null")
    assert f"is {nulls / N:.1%} null ({nulls:,} of 3,000)" in check.message
    assert check.observed["unexpected_count"] == nulls


def test_null_in_non_nullable_column_is_critical(contract: ModelContract, profile: dict) -> None:
    df = make_frame()
    df.loc[df.index[:3], "num_0"] = np.nan
    result = run(contract, profile, df)
    check = only_failure(result, "not_null", "num_0")
    assert check.severity == "critical" and not result.passed_critical
    assert "'num_0' must have no nulls and has 3 of 3,000" in check.message


def test_out_of_learned_range(contract: ModelContract, profile: dict) -> None:
    df = make_frame()
    df.loc[df.index[:150], "num_3"] = 1e6
    check = only_failure(run(contract, profile, df), "ranges", "num_3")
    assert check.severity == "warning"
    assert "'num_3'" in check.message and "(reference)" in check.message and "[1000000.0]" in check.message


def test_out_of_contract_range(contract: ModelContract, profile: dict) -> None:
    df = make_frame()
    df.loc[df.index[:100], "num_1"] = 11.0  # contract range [-10, 10]
    check = only_failure(run(contract, profile, df), "ranges", "num_1")
    assert "[-10, 10] (contract)" in check.message and "3.3%" in check.message


def test_range_tolerates_a_few_outliers(contract: ModelContract, profile: dict) -> None:
    df = make_frame()
    df.loc[df.index[:10], "num_3"] = 1e6  # 0.3% < 1 - range_mostly
    assert not [c for c in run(contract, profile, df).checks if not c.success]


def test_unseen_category_in_contract_domain(contract: ModelContract, profile: dict) -> None:
    df = make_frame()
    df.loc[df.index[:150], "region"] = "mars"
    check = only_failure(run(contract, profile, df), "domains", "region")
    assert check.severity == "warning" and "'mars'" in check.message and "contract domain" in check.message


def test_unseen_category_in_learned_domain(contract: ModelContract, profile: dict) -> None:
    df = make_frame()
    df.loc[df.index[:60], "cat_a"] = "brand_new"  # 2% > unseen_category_share 1%
    check = only_failure(run(contract, profile, df), "domains", "cat_a")
    assert "'brand_new'" in check.message and "reference domain" in check.message


def test_duplicate_ids_are_critical(contract: ModelContract, profile: dict) -> None:
    df = make_frame()
    df.loc[df.index[:5], "event_id"] = 42
    check = only_failure(run(contract, profile, df), "duplicates", "event_id")
    assert check.severity == "critical"
    assert "'event_id' should be unique and has 6 of 3,000 rows" in check.message


@pytest.mark.parametrize(("expected", "ok"), [(N, True), (10_000, False), (1000, False)])
def test_volume_against_expected_rows(contract: ModelContract, profile: dict, expected: int, ok: bool) -> None:
    result = run(contract, profile, make_frame(), expected_rows=expected)
    (check,) = [c for c in result.checks if c.family == "volume"]
    assert check.success is ok and check.column is None and check.observed == N
    assert check.severity == "warning"
    assert f"({expected:,} expected) and has 3,000" in check.message


def test_stale_data_fails_freshness(contract: ModelContract, profile: dict) -> None:
    df = make_frame(end=END - timedelta(days=3))  # newest event 3 days before the end, freshness 1d
    check = only_failure(run(contract, profile, df), "freshness", "scored_at")
    assert check.severity == "warning" and check.expectation == "expect_column_max_to_be_between"
    assert "2024-03-07T00:00:00+00:00" in check.message  # end - 1d
    assert check.observed.startswith("2024-03-04") or check.observed.startswith("2024-03-05")


def test_numeric_column_with_text_fails_types(contract: ModelContract, profile: dict) -> None:
    df = make_frame()
    df["num_5"] = df["num_5"].map(lambda v: f"{v:.2f}").astype(object)
    result = run(contract, profile, df)
    (check,) = failed(result, "types")
    assert check.column == "num_5" and check.severity == "critical" and "should hold numeric" in check.message


def test_categorical_column_with_numbers_fails_types(contract: ModelContract, profile: dict) -> None:
    df = make_frame()
    df["cat_b"] = np.arange(N, dtype="int64") % 3
    (check,) = failed(run(contract, profile, df), "types")
    assert check.column == "cat_b" and "should hold strings and has dtype int64" in check.message


# --------------------------------------------------------------------------- schema


def test_missing_column_fails_schema_without_noise(contract: ModelContract, profile: dict) -> None:
    df = make_frame().drop(columns=["num_4"])
    result = run(contract, profile, df)
    check = only_failure(result, "schema", "num_4")
    assert check.severity == "critical" and "'num_4' is missing" in check.message
    assert not result.passed_critical
    assert [c.family for c in result.checks if c.column == "num_4"] == ["schema"]


def test_runnable_suite_is_the_suite_itself_unless_a_column_is_absent(contract: ModelContract, profile: dict) -> None:
    """Every healthy run validates the generated suite as built (no serialise-and-rebuild); a
    window without a column drops that column's value checks and keeps its existence check."""
    suite = build_suite(contract, profile)
    columns = set(make_frame().columns)
    assert _runnable(suite, columns) is suite
    fewer = _runnable(suite, columns - {"num_4"})
    assert [e.expectation_type for e in fewer.expectations if getattr(e, "column", None) == "num_4"] == [
        "expect_column_to_exist"
    ]
    assert len(fewer.expectations) < len(suite.expectations)


def test_schema_problem_for_a_missing_column_is_one_failure(contract: ModelContract, profile: dict) -> None:
    problem = "column 'num_5': numeric feature not found in scoring_log"  # sources.py's wording
    df = make_frame().drop(columns=["num_5"])
    result = run(contract, profile, df, schema_problems=[problem])
    check = only_failure(result, "schema", "num_5")
    assert check.expectation == "expect_column_to_exist" and check.severity == "critical"
    assert check.message == f"Column 'num_5' is missing; the contract requires it (source: {problem})."
    suite = build_suite(contract, profile, schema_problems=[problem])
    assert [e.meta["family"] for e in suite.expectations if e.meta["column"] == "num_5"] == ["schema"]
    assert suite.meta["driftguard"]["schema_problems"] == [problem]


def test_schema_problem_for_a_column_kept_as_read(contract: ModelContract, profile: dict) -> None:
    problem = "column 'num_1': numeric feature holds non-numeric values in 3 of 3000 rows, e.g. 'n/a'; kept as read"
    df = make_frame()
    df["num_1"] = df["num_1"].astype(object)
    df.loc[df.index[:3], "num_1"] = "n/a"
    result = run(contract, profile, df, schema_problems=[problem])
    check = only_failure(result, "schema", "num_1")  # no types/ranges noise on the raw column
    assert check.expectation == SOURCE_SCHEMA_CHECK and check.severity == "critical"
    assert check.message == f"Column 'num_1' does not match the contract: {problem}"
    assert check.observed == problem


def test_problem_columns_prefers_quoted_and_longest_names(contract: ModelContract) -> None:
    found = problem_columns(contract, ["column 'cat_b': x", "region num_0 broken", "table is a view"])
    assert found == {"cat_b": ["column 'cat_b': x"], "region": ["region num_0 broken"], "": ["table is a view"]}


def test_schema_problem_on_a_kept_but_coerced_column(contract: ModelContract, profile: dict) -> None:
    df = make_frame()
    df["cat_a"] = np.nan  # a reader that coerced unreadable values would leave this
    df["cat_a"] = df["cat_a"].astype(object)
    problem = "cat_a has type INTEGER in the table, contract: categorical"
    result = run(contract, profile, df, schema_problems=[problem])
    check = only_failure(result, "schema", "cat_a")
    assert check.message.endswith(problem)  # no not_null noise for the coerced column


# --------------------------------------------------------------------------- empty frames


def test_empty_frame_evaluates_schema_and_volume(contract: ModelContract, profile: dict, tmp_path: Path) -> None:
    df = make_frame().iloc[0:0]
    result = run(contract, profile, df, expected_rows=N, out_dir=tmp_path)
    assert result.rows == 0
    assert all(c.success for c in result.checks if c.family == "schema")
    (volume,) = failed(result, "volume")
    assert "has 0." in volume.message
    (fresh,) = failed(result, "freshness")
    assert "no event at all" in fresh.message
    assert (tmp_path / "validation.html").stat().st_size > 0


def test_empty_frame_without_columns(contract: ModelContract, profile: dict) -> None:
    result = run(contract, profile, pd.DataFrame(), expected_rows=N)
    schema = failed(result, "schema")
    assert {c.column for c in schema} == {"scored_at", "event_id", "score", *contract.feature_names}
    assert [c.family for c in result.checks if c.family not in ("schema", "volume")] == []
    assert failed(result, "volume")


def test_empty_window_allowed_when_volume_not_required(profile: dict) -> None:
    contract = with_contract("quality:\n  volume: {required: false}\n")
    result = run(contract, profile, make_frame().iloc[0:0], expected_rows=N)
    (volume,) = [c for c in result.checks if c.family == "volume"]
    assert volume.success and "allowed" in volume.message


def test_required_volume_without_expected_rows_needs_one_row(contract: ModelContract, profile: dict) -> None:
    (check,) = failed(run(contract, profile, make_frame().iloc[0:0]), "volume")
    assert "at least 1 rows" in check.message


# --------------------------------------------------------------------------- contract switches


def test_severity_comes_from_the_contract(profile: dict) -> None:
    contract = with_contract("quality:\n  severity: {nulls: critical, duplicates: warning}\n")
    df = make_frame()
    df.loc[df.index[:900], "num_2"] = np.nan
    df.loc[df.index[:5], "event_id"] = 7
    result = run(contract, profile, df)
    assert [(c.family, c.column) for c in result.critical_failures] == [("nulls", "num_2")]
    assert [(c.family, c.column) for c in result.warnings] == [("duplicates", "event_id")]
    summary = result.summary()
    assert "1 critical failure (nulls on num_2)" in summary and "1 warning failure" in summary
    assert "num_2" in summary and "event_id" in summary and "blocks retraining" in summary


def test_off_family_is_dropped(profile: dict) -> None:
    contract = with_contract("quality:\n  severity: {ranges: 'off', volume: 'off'}\n")
    suite = build_suite(contract, profile, expected_rows=N)
    families = {e.meta["family"] for e in suite.expectations}
    assert "ranges" not in families and "volume" not in families and "domains" in families


def test_volume_severity_from_volume_section(profile: dict) -> None:
    contract = with_contract("quality:\n  volume: {severity: critical}\n")
    (check,) = failed(run(contract, profile, make_frame(), expected_rows=10 * N), "volume")
    assert check.severity == "critical"


# --------------------------------------------------------------------------- artefacts


def test_suite_json_round_trips_and_html_is_written(contract: ModelContract, profile: dict, tmp_path: Path) -> None:
    df = make_frame()
    df.loc[df.index[:900], "num_2"] = np.nan
    result = run(contract, profile, df, expected_rows=N, out_dir=tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["suite.json", "validation.html", "validation.json"]
    data = json.loads(Path(result.suite_path).read_text())
    assert _gx.ExpectationSuite(**data) == build_suite(contract, profile, expected_rows=N)
    assert {e["meta"]["family"] for e in data["expectations"]} == set(FAMILIES)
    page = Path(result.docs_path).read_text()
    assert result.docs_renderer == RENDERER
    assert "<title>toy_model data quality" in page and "<h1>toy_model data quality</h1>" in page
    # Driftguard's severity model, not GX's overall success: a failed warning still passes.
    assert '<span class="badge warning" id="quality-status">passed, 1 warning</span>' in page
    assert '<tr class="check failed warning" data-family="nulls"><td><span class="badge warning">failed' in page
    assert "may be at most" in page and "&#x27;num_2&#x27;" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page  # offline, no links out
    assert 'href="validation.json"' in page and 'href="suite.json"' in page
    saved = json.loads((tmp_path / "out" / "validation.json").read_text())
    assert saved["success"] is False
    as_dict = result.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert as_dict["warnings"] == 1 and as_dict["passed_critical"] is True


def test_no_files_without_out_dir(contract: ModelContract, profile: dict, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(contract, profile, make_frame())
    assert result.suite_path is None and result.docs_path is None
    assert list(tmp_path.iterdir()) == []


def test_quality_page_shows_html_from_the_feature_log_as_text(tmp_path: Path) -> None:
    """Feature names and category values holding HTML: validation.html shows them literally (as
    the column and among the sample unexpected values), and none becomes an element or a script."""
    from html.parser import HTMLParser

    import xss_support
    from driftguard.testing import DEFAULT_START

    class Page(HTMLParser):
        def __init__(self, page: str) -> None:
            super().__init__(convert_charrefs=True)
            self.text: list[str] = []
            self.attrs: list[tuple[str, str, str]] = []
            self.tags: list[str] = []
            self.feed(page)

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append(tag)
            self.attrs += [(tag, k, v or "") for k, v in attrs]

        def handle_data(self, data: str) -> None:
            self.text.append(data)

    contract = xss_support.contract("xss_model")
    start = DEFAULT_START + timedelta(days=30)
    reference, current = xss_support.windows(DEFAULT_START, start)
    result = validate_window(
        contract,
        current,
        profile_frame(reference, contract),
        start=start,
        end=start + timedelta(days=1),
        out_dir=tmp_path,
    )
    assert {c.column for c in result.warnings if c.family == "domains"} == {xss_support.FEATURE, "region"}
    page = Path(result.docs_path).read_text()
    for payload in (*xss_support.PAYLOADS, xss_support.FEATURE):
        assert payload not in page
    parsed = Page(page)
    text = "".join(parsed.text)
    for payload in (*xss_support.PAYLOADS, xss_support.FEATURE):
        assert payload in text, f"{payload!r} is not shown as text"
    assert "&lt;" not in text and "&amp;" not in text  # escaped once, not twice
    assert "script" not in parsed.tags and "img" not in parsed.tags and "svg" not in parsed.tags
    assert not [a for a in parsed.attrs if xss_support.MARKER in a[2] or a[1] in ("onerror", "onload")]


# --------------------------------------------------------------------------- driftguard.testing logs


@pytest.fixture(scope="module")
def synthetic() -> tuple[ModelContract, dict]:
    from driftguard.testing import DEFAULT_START, generate_log, synthetic_contract

    contract = synthetic_contract(url="sqlite:///unused.db")
    reference, _ = generate_log("binary_classification", start=DEFAULT_START, days=2, rows_per_day=1500, seed=1)
    return contract, profile_frame(reference, contract)


@pytest.mark.parametrize(
    ("kind", "column", "magnitude", "family", "severity"),
    [
        (None, None, 0, None, None),
        ("null_spike", "num_2", 1.0, "nulls", "warning"),
        ("new_category", "cat_a", 0.5, "domains", "warning"),
        ("type_change", "num_3", 0.2, "types", "critical"),
        ("mean_shift", "num_0", 10.0, "ranges", "warning"),
    ],
)
def test_injections_from_the_synthetic_log(synthetic, kind, column, magnitude, family, severity) -> None:
    from driftguard.testing import DEFAULT_START, Injection, generate_log

    contract, profile = synthetic
    start = DEFAULT_START + timedelta(days=10)
    injections = [Injection(kind, start, column=column, magnitude=magnitude)] if kind else []
    df, _ = generate_log("binary_classification", start=start, days=1, rows_per_day=2000, seed=2, injections=injections)
    result = validate_window(contract, df, profile, start=start, end=start + timedelta(days=1), expected_rows=2000)
    bad = [(c.family, c.column, c.severity) for c in result.checks if not c.success]
    assert bad == ([(family, column, severity)] if kind else []), [c.message for c in result.checks if not c.success]
