"""Data quality of one scoring window: a Great Expectations suite generated from the contract.

The suite is derived, never hand-written: the contract says what must hold (columns, types,
nullability, explicit ranges and domains, severities) and the reference profile fills in what
was learned from the champion's data (null shares, value ranges, category sets). Every
expectation carries meta {family, severity, column}, so a failure maps straight back to a
contract section and to whether it blocks retraining (critical) or only warns.

Freshness is a real GX expectation (expect_column_max_to_be_between on the timestamp column)
whose cut-off is a suite parameter, so one suite serves every window. Volume is also a real GX
expectation (expect_table_row_count_to_be_between). Only the source reader's findings are
computed here rather than by GX, because the reader has already dropped or coerced those values
before GX sees them: schema problems (missing columns, incompatible SQL types) and type problems
(values of a numeric column that are not numbers, read as NaN: that column's `types` check).

`finite` (critical by default) fails numeric features and the logged prediction holding +/-inf
or values beyond +/-FINITE_LIMIT (float32's largest, 3.4e38: a 1e308 is a valid float64 but
infinity to scikit-learn's float32 trees), so such an interval is excluded from training. GX
counts NaN as missing there, not as a failure: missing values are the null families' business.

A window larger than source.sample_rows reaches GX as a seeded sample (see sources.py). Shares
and distributions (types, finite, ranges, domains) are judged on the sample, where their `mostly`
thresholds hold with a standard error below 0.0016 at 100k rows. Counting checks must not be
estimated: the volume, freshness, duplicates, not_null and nulls expectations are evaluated
against the database's exact facts of the whole window instead, with the same kwargs and
messages, and say so in their observed value (`"exact": "database"`).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from driftguard.contract import FeatureKind, ModelContract, Severity, format_duration
from driftguard.monitoring import _gx
from driftguard.monitoring._gx import ExpectationSuite, gxe
from driftguard.statistics.profile import FINITE_LIMIT

log = logging.getLogger(__name__)

FAMILIES = ("schema", "types", "finite", "not_null", "nulls", "ranges", "domains", "duplicates", "volume", "freshness")
# `labels` is no GX family: it fails when the run's label batch cannot be read (_label_checks), sorted last.
# numpy/pandas dtypes for typed columns; "float"/"int" match Python numbers inside an object column,
# so a column mixing numbers and text reports only the text values as unexpected.
NUMERIC_TYPES = [
    "float64",
    "float32",
    "int64",
    "int32",
    "int16",
    "int8",
    "Float64",
    "Float32",
    "Int64",
    "Int32",
    "float",
    "int",
]
RANGE_MARGIN = 0.1  # learned ranges widen the reference [min, max] by 10% of its width on each side
FRESHNESS_PARAMETER = "freshness_cutoff"
SOURCE_SCHEMA_CHECK = "driftguard_source_schema"  # computed, not a GX expectation (see module docstring)
SOURCE_TYPES_CHECK = "driftguard_source_types"  # text the reader found in a numeric column (computed too)
SOURCE_LABELS_CHECK = "driftguard_source_labels"  # the run's label batch could not be read (computed too)
# Families a column whose text the reader read as missing (NaN) does not get: its `types` check is
# the reader's count (SOURCE_TYPES_CHECK), and a null check would count the same values again.
READ_AS_MISSING_SKIPS = ("types", "not_null", "nulls")
EXACT_FAMILIES = ("not_null", "nulls", "duplicates", "volume", "freshness")  # counted by the database when sampled


@dataclass(frozen=True)
class CheckResult:
    """One expectation's outcome in contract terms."""

    family: str
    expectation: str
    column: str | None
    severity: str
    success: bool
    observed: Any
    message: str


@dataclass
class QualityResult:
    """All checks of one model's window, with the files written for review."""

    model: str
    start: datetime
    end: datetime
    rows: int
    checks: list[CheckResult]
    sampled_rows: int | None = None  # rows GX saw when the window was sampled
    suite_path: str | None = None
    docs_path: str | None = None
    docs_renderer: str | None = field(default=None)

    @property
    def critical_failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success and c.severity == Severity.critical.value]

    @property
    def warnings(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success and c.severity == Severity.warning.value]

    @property
    def passed_critical(self) -> bool:
        """True when nothing critical failed: the data may feed drift, policy and training."""
        return not self.critical_failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "rows": self.rows,
            "sampled_rows": self.sampled_rows,
            "passed_critical": self.passed_critical,
            "critical_failures": len(self.critical_failures),
            "warnings": len(self.warnings),
            "checks": [asdict(c) for c in self.checks],
            "suite_path": self.suite_path,
            "docs_path": self.docs_path,
            "docs_renderer": self.docs_renderer,
        }

    def summary(self) -> str:
        """One paragraph for logs and alerts."""
        head = f"Quality of {self.model} for {_iso(self.start)} to {_iso(self.end)}: {self.rows:,} rows"
        if self.sampled_rows is not None:
            head += f" (shares checked on a {self.sampled_rows:,}-row sample, counts exact)"
        head += ", "
        if not self.critical_failures and not self.warnings:
            return head + f"all {len(self.checks)} checks passed."
        parts = []
        for label, failed in (("critical", self.critical_failures), ("warning", self.warnings)):
            if failed:
                where = "; ".join(f"{c.family} on {c.column or 'the table'}" for c in failed)
                parts.append(f"{len(failed)} {label} failure{'s' if len(failed) != 1 else ''} ({where})")
        columns = sorted({c.column for c in self.critical_failures + self.warnings if c.column})
        verdict = "blocks retraining" if self.critical_failures else "does not block retraining"
        tail = f" Columns involved: {', '.join(columns)}." if columns else ""
        counted = [
            f"{c.column} ({c.family}) {c.observed['unexpected_count']:,} of {c.observed['element_count']:,}"
            for c in self.critical_failures + self.warnings
            if c.column and isinstance(c.observed, dict) and isinstance(c.observed.get("unexpected_count"), int)
            and isinstance(c.observed.get("element_count"), int)
        ]  # fmt: skip
        if counted:
            tail += f" Rows failing: {'; '.join(counted)}."
        return head + " and ".join(parts) + f" of {len(self.checks)} checks; this {verdict}." + tail


# --------------------------------------------------------------------------- suite


def _iso(value: datetime) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def family_severity(contract: ModelContract, family: str) -> Severity:
    """Severity of a check family; volume also honours quality.volume.severity (off wins, then critical)."""
    severity = contract.quality.severity[family]
    if family == "volume":
        both = {severity, contract.quality.volume.severity}
        if Severity.off in both:
            return Severity.off
        return Severity.critical if Severity.critical in both else Severity.warning
    return severity


def contract_columns(contract: ModelContract) -> list[str]:
    """Columns a window must have: timestamp, id, the logged prediction (if any) and the features."""
    src = contract.source
    cols = [src.timestamp_column, src.id_column]
    if src.prediction_column:
        cols.append(src.prediction_column)
    return cols + contract.feature_names


def problem_columns(contract: ModelContract, schema_problems: Sequence[str]) -> dict[str, list[str]]:
    """Map each schema problem to the contract column it names ("" when none is named).

    sources.py writes "column 'x': ..."; a quoted name is preferred over a bare word, and
    longer names over their prefixes (num_10 before num_1)."""
    names = sorted(contract_columns(contract), key=len, reverse=True)
    found: dict[str, list[str]] = {}
    for problem in schema_problems:
        col = next((n for n in names if f"'{n}'" in problem or f'"{n}"' in problem), None)
        if col is None:
            col = next((n for n in names if re.search(rf"(?<!\w){re.escape(n)}(?!\w)", problem)), None)
        found.setdefault(col or "", []).append(problem)
    return found


def _learned_range(entry: dict[str, Any] | None) -> tuple[float, float] | None:
    """Reference [min, max] (quantiles 0 and 1) widened by RANGE_MARGIN of its width (or of |value|)."""
    if not entry:
        return None
    qs = entry.get("quantiles") or {}
    lo = qs.get("0", entry.get("min"))
    hi = qs.get("1", entry.get("max"))
    if lo is None or hi is None:
        return None
    width = hi - lo
    margin = RANGE_MARGIN * (width if width > 0 else max(abs(lo), abs(hi), 1.0))
    return float(lo - margin), float(hi + margin)


def _range_for(contract: ModelContract, name: str, entry: dict[str, Any] | None) -> tuple[tuple[float, float], str]:
    feature = contract.feature(name)
    if feature.range is not None:
        return (float(feature.range[0]), float(feature.range[1])), "contract"
    learned = _learned_range(entry)
    return (learned, "reference") if learned else ((math.nan, math.nan), "none")


def _domain_for(feature_name: str, contract: ModelContract, entry: dict[str, Any] | None) -> tuple[list[str], str]:
    feature = contract.feature(feature_name)
    if feature.domain is not None:
        return list(feature.domain), "contract"
    if not entry or not entry.get("categories"):
        return [], "none"
    if entry.get("distinct", 0) > len(entry["categories"]):
        return [], "truncated"  # the profile kept only the most frequent categories: no fair domain
    return sorted(entry["categories"]), "reference"


class _Suite:
    """Collects expectations, dropping families the contract switched off."""

    def __init__(self, contract: ModelContract, read_as_missing: set[str] | None = None) -> None:
        self.severity = {f: family_severity(contract, f) for f in FAMILIES}
        self.expectations: list[Any] = []
        self.read_as_missing = read_as_missing or set()

    def add(
        self, family: str, column: str | None, cls: Any, extra: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        severity = self.severity[family]
        if severity is Severity.off or (column in self.read_as_missing and family in READ_AS_MISSING_SKIPS):
            return
        if column is not None:
            kwargs["column"] = column
        meta = {"family": family, "severity": severity.value, "column": column, **(extra or {})}
        self.expectations.append(cls(meta=meta, severity=severity.value, **kwargs))


def _feature_expectations(suite: _Suite, contract: ModelContract, name: str, entry: dict[str, Any] | None) -> None:
    q = contract.quality
    feature = contract.feature(name)
    numeric = feature.kind is FeatureKind.numeric
    if numeric:
        suite.add("types", name, gxe.ExpectColumnValuesToBeInTypeList, type_list=NUMERIC_TYPES)
        _add_finite(suite, name)
    else:
        suite.add("types", name, gxe.ExpectColumnValuesToBeOfType, type_="str")

    if not feature.nullable:
        suite.add("not_null", name, gxe.ExpectColumnValuesToNotBeNull)
    else:
        ref_null = float((entry or {}).get("null_share", 0.0))
        allowed = round(ref_null + q.null_tolerance, 6)
        if allowed < 1:  # else any null share passes: no check worth running
            extra = {"reference_null_share": ref_null, "allowed_null_share": allowed}
            suite.add("nulls", name, gxe.ExpectColumnValuesToNotBeNull, extra, mostly=round(1 - allowed, 6))

    if numeric:
        (lo, hi), origin = _range_for(contract, name, entry)
        if origin != "none":
            suite.add(
                "ranges",
                name,
                gxe.ExpectColumnValuesToBeBetween,
                {"origin": origin},
                min_value=lo,
                max_value=hi,
                mostly=q.range_mostly,
            )
        return
    domain, origin = _domain_for(name, contract, entry)
    if domain:
        suite.add(
            "domains",
            name,
            gxe.ExpectColumnValuesToBeInSet,
            {"origin": origin},
            value_set=domain,
            mostly=round(1 - q.unseen_category_share, 6),
        )
    else:
        log.info("%s: no domain check for %s (%s)", contract.name, name, origin)


def _add_finite(suite: _Suite, column: str) -> None:
    """+/-inf and |x| > FINITE_LIMIT are unexpected (GX leaves NaN to the null checks)."""
    suite.add(
        "finite",
        column,
        gxe.ExpectColumnValuesToBeBetween,
        {"limit": FINITE_LIMIT},
        min_value=-FINITE_LIMIT,
        max_value=FINITE_LIMIT,
    )


def _table_expectations(suite: _Suite, contract: ModelContract, expected_rows: float | None) -> None:
    src, vol = contract.source, contract.quality.volume
    suite.add("duplicates", src.id_column, gxe.ExpectColumnValuesToBeUnique)
    if expected_rows is not None:
        lo = math.ceil(vol.min_ratio * expected_rows)
        hi = max(math.floor(vol.max_ratio * expected_rows), lo)
        suite.add(
            "volume",
            None,
            gxe.ExpectTableRowCountToBeBetween,
            {"expected_rows": float(expected_rows)},
            min_value=lo,
            max_value=hi,
        )
    elif vol.required:
        suite.add("volume", None, gxe.ExpectTableRowCountToBeBetween, min_value=1)
    suite.add(
        "freshness",
        src.timestamp_column,
        gxe.ExpectColumnMaxToBeBetween,
        {"max_age": format_duration(contract.quality.freshness)},
        min_value={"$PARAMETER": FRESHNESS_PARAMETER},
    )


def build_suite(
    contract: ModelContract,
    reference_profile: dict[str, Any],
    *,
    expected_rows: float | None = None,
    schema_problems: Sequence[str] = (),
    type_problems: Sequence[dict[str, Any]] = (),
) -> ExpectationSuite:
    """The model's expectations: one per (family, column), families set to `off` left out.

    Columns named in schema_problems keep only their existence check: their values were
    dropped or coerced by the reader, so value checks on them would report noise. Columns in
    type_problems (sources.TypeProblem.to_dict(): text read as NaN) lose their GX types and null
    checks (READ_AS_MISSING_SKIPS); validate_window reports the reader's count as their `types`."""
    src = contract.source
    profile = (reference_profile or {}).get("features", {})
    broken = set(problem_columns(contract, schema_problems))
    suite = _Suite(contract, {str(p["column"]) for p in type_problems})
    for col in contract_columns(contract):
        suite.add("schema", col, gxe.ExpectColumnToExist)
    for col in (src.timestamp_column, src.id_column):
        suite.add("not_null", col, gxe.ExpectColumnValuesToNotBeNull)
    if src.prediction_column and src.prediction_column not in broken:
        suite.add("types", src.prediction_column, gxe.ExpectColumnValuesToBeInTypeList, type_list=NUMERIC_TYPES)
        _add_finite(suite, src.prediction_column)
    for name in contract.feature_names:
        if name in broken:
            continue
        entry = profile.get(name)
        if entry is None:
            log.warning("%s: reference profile has no entry for %s; learned checks skipped", contract.name, name)
        _feature_expectations(suite, contract, name, entry)
    _table_expectations(suite, contract, expected_rows)

    result = ExpectationSuite(name=f"{contract.name}.quality", expectations=suite.expectations)
    result.meta["driftguard"] = {
        "model": contract.name,
        "schema_problems": list(schema_problems),
        "type_problems": [dict(p) for p in type_problems],
    }
    return result


# --------------------------------------------------------------------------- messages


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _examples(result: dict[str, Any]) -> list[Any]:
    seen: list[Any] = []
    for v in result.get("partial_unexpected_list") or []:
        if v not in seen:
            seen.append(v)
    return seen[:5]


def _observed(result: dict[str, Any]) -> Any:
    if "unexpected_count" in result:
        total = result.get("element_count") or 0
        return {
            "unexpected_count": result.get("unexpected_count"),
            "element_count": total,
            "unexpected_share": (result["unexpected_count"] / total) if total else 0.0,
            "missing_count": result.get("missing_count"),
            "examples": _examples(result),
        }
    return result.get("observed_value")


def _nonmissing_share(result: dict[str, Any]) -> float:
    """Share of non-null values that were unexpected (GX's `mostly` counts only non-null values)."""
    total = (result.get("element_count") or 0) - (result.get("missing_count") or 0)
    return (result.get("unexpected_count") or 0) / total if total > 0 else 0.0


def _message(
    family: str, column: str | None, ok: bool, kwargs: dict[str, Any], meta: dict[str, Any], result: dict[str, Any]
) -> str:
    """One sentence: the column, what was expected, what was observed."""
    col = f"Column {column!r}" if column else "The window"
    n = result.get("element_count") or 0
    bad = result.get("unexpected_count") or 0
    share = bad / n if n else 0.0
    if family == "schema":
        return f"{col} is present as the contract requires." if ok else f"{col} is missing; the contract requires it."
    if family == "types":
        want = "numeric" if "type_list" in kwargs else "strings"
        if "observed_value" in result:
            return f"{col} should hold {want} and has dtype {result['observed_value']}."
        ex = _examples(result)
        return f"{col} should hold {want}; {bad:,} of {n:,} values are not (e.g. {ex!r})."
    if family == "finite":
        # GX's results are JSON: +/-inf arrive as None (NaN is missing, never unexpected here).
        ex = ["±inf" if v is None else v for v in _examples(result)]
        limit = kwargs.get("max_value", FINITE_LIMIT)
        if ok:
            return f"{col} holds only finite numbers (magnitude at most {limit:.3g})."
        return (
            f"{col} must hold finite numbers of magnitude at most {limit:.3g} (larger ones overflow the model's "
            f"float32 inputs); {bad:,} of {n:,} rows hold inf or larger (e.g. {ex!r})."
        )
    if family == "not_null":
        return f"{col} must have no nulls and has {bad:,} of {n:,} ({_pct(share)}) null."
    if family == "nulls":
        return (
            f"{col} may be at most {_pct(meta.get('allowed_null_share'))} null (reference "
            f"{_pct(meta.get('reference_null_share'))} + tolerance) and is {_pct(share)} null ({bad:,} of {n:,})."
        )
    if family == "ranges":
        return (
            f"{col} should lie in [{kwargs['min_value']:.6g}, {kwargs['max_value']:.6g}] ({meta.get('origin')}) "
            f"for at least {_pct(kwargs.get('mostly'))} of values; {_pct(_nonmissing_share(result))} "
            f"of non-null values are outside (e.g. {_examples(result)!r})."
        )
    if family == "domains":
        allowed = 1 - (kwargs.get("mostly") or 1)
        return (
            f"{col} may have at most {_pct(allowed)} values outside its {meta.get('origin')} domain; "
            f"{_pct(_nonmissing_share(result))} of non-null values are unseen (e.g. {_examples(result)!r})."
        )
    if family == "duplicates":
        return f"{col} should be unique and has {bad:,} of {n:,} rows with a duplicated value."
    if family == "volume":
        rows = result.get("observed_value")
        hi = kwargs.get("max_value")
        lo = kwargs.get("min_value")
        span = f"between {lo:,} and {hi:,}" if hi is not None else f"at least {lo:,}"
        basis = f" ({meta['expected_rows']:,.0f} expected)" if meta.get("expected_rows") is not None else ""
        return f"The window should have {span} rows{basis} and has {rows if rows is not None else 0:,}."
    if family == "freshness":
        newest = result.get("observed_value") or "no event at all"
        age = meta.get("max_age", "freshness")
        return f"{col}: the newest event should be at or after {kwargs.get('min_value')} (end - {age}) and is {newest}."
    return f"{col}: {family} {'passed' if ok else 'failed'}."


EVALUATION_ERROR = "evaluation_error"  # CheckResult.observed of a check GX could not compute


def _exception(info: Any) -> str | None:
    """GX reports errors flat ({raised_exception, exception_message}) or per metric id."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "unknown error").splitlines()[0]
    return next((m for v in info.values() if isinstance(v, dict) and (m := _exception(v))), None)


def _check(r: Any, exact: dict[str, Any] | None = None, cutoff: datetime | None = None) -> CheckResult:
    config = r.expectation_config
    meta = dict(config.meta or {})
    kwargs = _gx.jsonable(dict(config.kwargs))
    result = _gx.jsonable(dict(r.result or {}))
    family, column = meta.get("family", "unknown"), meta.get("column")
    severity = meta.get("severity", "critical")
    success = bool(r.success)
    counted = exact is not None and family in EXACT_FAMILIES
    if counted:
        success, result = _exact_outcome(family, column, kwargs, exact, cutoff)
    elif error := _exception(r.exception_info):
        where = f"Column {column!r}" if column else "The window"
        message = f"{where}: {config.type} could not be evaluated ({error})."
        return CheckResult(family, config.type, column, severity, False, {EVALUATION_ERROR: error}, message)
    observed = _observed(result)
    if counted:
        base = observed if isinstance(observed, dict) else {"observed_value": observed}
        observed = {**base, "exact": "database"}
    return CheckResult(
        family=family,
        expectation=config.type,
        column=column,
        severity=severity,
        success=success,
        observed=observed,
        message=_message(family, column, success, kwargs, meta, result),
    )


def _exact_outcome(
    family: str, column: str | None, kwargs: dict[str, Any], exact: dict[str, Any], cutoff: datetime | None
) -> tuple[bool, dict[str, Any]]:
    """The expectation judged on the whole window's database facts, as GX would judge the frame:
    success and a GX-shaped result for _observed and _message."""
    rows = int(exact["rows"])
    if family == "volume":
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        return (lo is None or rows >= lo) and (hi is None or rows <= hi), {"observed_value": rows}
    if family == "freshness":
        newest = exact.get("max_ts")
        ok = newest is not None and cutoff is not None and datetime.fromisoformat(newest) >= cutoff
        return ok, {"observed_value": newest}
    if family == "duplicates":
        bad = int(exact["duplicate_rows"])
        return bad == 0, {"element_count": rows, "unexpected_count": bad, "missing_count": 0}
    nulls = int(exact["nulls"].get(column, 0))  # not_null / nulls: GX's `mostly` on the non-null share
    mostly = kwargs.get("mostly") or 1.0
    ok = nulls == 0 if mostly >= 1 else rows == 0 or (rows - nulls) / rows >= mostly
    return ok, {"element_count": rows, "unexpected_count": nulls, "missing_count": 0}


def _drop_type_noise(checks: list[CheckResult]) -> list[CheckResult]:
    """A column that failed its type check cannot be range- or domain-checked (GX raises on
    mixed types): keep the one type failure, not a second "could not be evaluated"."""
    mistyped = {c.column for c in checks if c.family == "types" and not c.success}
    return [
        c
        for c in checks
        if not (c.column in mistyped and isinstance(c.observed, dict) and EVALUATION_ERROR in c.observed)
    ]


# --------------------------------------------------------------------------- validation


def _runnable(suite: ExpectationSuite, columns: set[str]) -> ExpectationSuite:
    """The suite minus checks on absent columns: their existence check already reports them.
    The suite itself when every column it names is present (every healthy run): rebuilding it
    costs a serialisation of each expectation for nothing."""
    named = {getattr(e, "column", None) for e in suite.expectations} - {None}
    if named <= columns:
        return suite
    data = suite.to_json_dict()
    data["expectations"] = [
        e
        for e in data["expectations"]
        if e["type"] == "expect_column_to_exist" or e["kwargs"].get("column") in (None, *columns)
    ]
    return ExpectationSuite(**data)


def _cutoff(df: pd.DataFrame, column: str, end: datetime, contract: ModelContract) -> datetime:
    """end - freshness, with the timestamp column's timezone-awareness (UTC either way)."""
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    cut = end.astimezone(UTC) - contract.quality.freshness
    dtype = df[column].dtype if column in df.columns else None
    if dtype is not None and pd.api.types.is_datetime64_any_dtype(dtype) and getattr(dtype, "tz", None) is None:
        return cut.replace(tzinfo=None)
    return cut


def _schema_checks(
    contract: ModelContract, schema_problems: Sequence[str], gx_checks: list[CheckResult]
) -> list[CheckResult]:
    """Source schema problems as failed schema checks (computed here, not by GX).

    A problem about a column GX already reports as missing is appended to that check's
    message instead, so one missing column is one failure."""
    severity = family_severity(contract, "schema")
    if severity is Severity.off:
        return gx_checks
    missing = {
        c.column: i for i, c in enumerate(gx_checks) if c.expectation == "expect_column_to_exist" and not c.success
    }
    checks = list(gx_checks)
    for column, problems in problem_columns(contract, schema_problems).items():
        for problem in problems:
            if column in missing:
                i = missing[column]
                checks[i] = replace(checks[i], message=f"{checks[i].message[:-1]} (source: {problem}).")
                continue
            where = f"Column {column!r}" if column else "The source"
            message = f"{where} does not match the contract: {problem}"
            checks.append(
                CheckResult("schema", SOURCE_SCHEMA_CHECK, column or None, severity.value, False, problem, message)
            )
    return checks


def _type_checks(
    contract: ModelContract, type_problems: Sequence[dict[str, Any]], checks: list[CheckResult]
) -> list[CheckResult]:
    """The reader's type problems (text in a numeric column, read as NaN) as failed `types`
    checks naming the column, the rows and examples (computed here: GX saw only the NaN)."""
    severity = family_severity(contract, "types")
    if severity is Severity.off or not type_problems:
        return checks
    out = list(checks)
    for p in type_problems:
        column, rows, read = str(p["column"]), int(p["rows"]), int(p["read_rows"])
        examples = list(p.get("examples") or ())
        observed = {
            "unexpected_count": rows,
            "element_count": read,
            "unexpected_share": rows / read if read else 0.0,
            "missing_count": None,
            "examples": examples,
            "read_as": "missing",
        }
        message = (
            f"Column {column!r} should hold numbers; {rows:,} of {read:,} rows hold text that is not a number "
            f"(e.g. {examples!r}), read as missing."
        )
        out.append(CheckResult("types", SOURCE_TYPES_CHECK, column, severity.value, False, observed, message))
    return out


def _label_checks(
    contract: ModelContract, label_problems: Sequence[dict[str, Any]], checks: list[CheckResult]
) -> list[CheckResult]:
    """The run's label batch that could not be read (monitor.extract records it and goes on with
    the features) as a failed `labels` check naming the table, the column and the label window."""
    severity = family_severity(contract, "labels")
    if severity is Severity.off or not label_problems:
        return checks
    out = list(checks)
    for p in label_problems:
        lo, hi = p.get("interval") or (None, None)
        observed = {k: p.get(k) for k in ("table", "column", "interval", "as_of", "error", "kind")}
        message = (
            f"The label batch of [{lo}, {hi}) (table {p.get('table')}, column {p.get('column')}) could not be read: "
            f"{p.get('error')}. No realized metrics for it; the features were checked."
        )
        column = p.get("column")
        out.append(CheckResult("labels", SOURCE_LABELS_CHECK, column, severity.value, False, observed, message))
    return out


RENDERER = "driftguard-html"  # QualityResult.docs_renderer: Driftguard's own page (reports.quality_page)


def _write(out_dir: Path, suite: ExpectationSuite, result: QualityResult, gx_result: Any) -> tuple[str, str, str]:
    """suite.json and validation.json (GX's raw suite and result) and validation.html: Driftguard's
    page of every check in contract terms (reports.quality_page), self-contained and offline. GX's
    Data Docs page is not written: it loads its styles from public CDNs, judges every failed
    expectation a failure whatever its severity and links outside the reports folder."""
    from driftguard.reporting import reports

    out_dir.mkdir(parents=True, exist_ok=True)
    suite_path = out_dir / "suite.json"
    suite_path.write_text(json.dumps(suite.to_json_dict(), indent=2, sort_keys=True, default=str), encoding="utf-8")
    (out_dir / "validation.json").write_text(
        json.dumps(_gx.jsonable(gx_result.to_json_dict()), indent=2, sort_keys=True), encoding="utf-8"
    )
    page = reports.quality_page(
        _gx.jsonable(result.to_dict()), summary=result.summary(), files=("validation.json", "suite.json")
    )
    docs_path = reports.atomic_write_text(out_dir / reports.QUALITY_HTML, page)
    return str(suite_path), str(docs_path), RENDERER


def validate_window(
    contract: ModelContract,
    df: pd.DataFrame,
    reference_profile: dict[str, Any],
    *,
    start: datetime,
    end: datetime,
    expected_rows: float | None = None,
    schema_problems: Sequence[str] = (),
    out_dir: Path | None = None,
    exact: dict[str, Any] | None = None,
    type_problems: Sequence[dict[str, Any]] = (),
    label_problems: Sequence[dict[str, Any]] = (),
) -> QualityResult:
    """Run the generated suite on one window's frame; write suite.json and validation.html to out_dir.

    `exact` (WindowFacts.to_dict() of a sampled window) makes `df` a sample: the counting
    families are then judged on those facts (see the module docstring). `type_problems`
    (sources.TypeProblem.to_dict()s) become failed `types` checks of their columns;
    `label_problems` (monitor.extract's unreadable label batch) a failed `labels` check."""
    suite = build_suite(
        contract,
        reference_profile,
        expected_rows=expected_rows,
        schema_problems=schema_problems,
        type_problems=type_problems,
    )
    runnable = _runnable(suite, set(map(str, df.columns)))
    cutoff = _cutoff(df, contract.source.timestamp_column, end, contract)
    gx_result = _gx.run_suite(runnable, df, parameters={FRESHNESS_PARAMETER: cutoff})
    exact_cutoff = (end if end.tzinfo else end.replace(tzinfo=UTC)).astimezone(UTC) - contract.quality.freshness
    checks = _drop_type_noise([_check(r, exact, exact_cutoff) for r in gx_result.results])
    rows = len(df) if exact is None else int(exact["rows"])
    if rows == 0 and not contract.quality.volume.required and expected_rows is not None:
        checks = [_allow_empty(c) if c.family == "volume" else c for c in checks]
    checks = _type_checks(contract, type_problems, _schema_checks(contract, schema_problems, checks))
    checks = sorted(
        _label_checks(contract, label_problems, checks),
        key=lambda c: (FAMILIES.index(c.family) if c.family in FAMILIES else 99, c.column or ""),
    )
    result = QualityResult(contract.name, start, end, rows, checks, None if exact is None else len(df))
    if out_dir is not None:
        result.suite_path, result.docs_path, result.docs_renderer = _write(Path(out_dir), suite, result, gx_result)
    log.info("%s", result.summary())
    for check in result.critical_failures + result.warnings:
        log.info("%s %s failed: %s", check.severity, check.family, check.message)
    return result


def _allow_empty(check: CheckResult) -> CheckResult:
    """quality.volume.required = false: an empty window is expected (e.g. no scoring at weekends)."""
    return CheckResult(
        check.family,
        check.expectation,
        check.column,
        check.severity,
        True,
        0,
        "The window is empty, which is allowed because quality.volume.required is false.",
    )
