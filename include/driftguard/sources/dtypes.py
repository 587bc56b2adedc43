"""The contract's dtypes from whatever the driver returned, so every later step sees the same
frame on every database and read path: UTC timestamps, float64 numbers, str categories with
np.nan, 0/1 labels. Values that do not fit are an error (strict) or a reported problem."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from driftguard.contract import ModelContract
from driftguard.sources.errors import ColumnTypeError
from driftguard.sources.schema import Col
from driftguard.sources.stats import TypeProblem

log = logging.getLogger(__name__)


_OFFSET_TEXT = r"\d:\d\d(?::\d\d(?:[.,]\d*)?)?\s*(?:Z|[+-]\d\d(?::?\d\d)?)$"  # a time of day, then Z or +hh:mm


def _offset_text(s: pd.Series) -> np.ndarray:
    """Which values are text ending in a UTC offset ('Z', '+00:00', '-05:00'), in Arrow (vectorised)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        text = pa.array(s, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all text (datetime objects among it)
        text = pa.array([v if isinstance(v, str) else None for v in s], type=pa.string())
    return pc.match_substring_regex(text, _OFFSET_TEXT).fill_null(False).to_numpy(zero_copy_only=False)


def _parse_iso(s: pd.Series) -> pd.Series:
    """ISO 8601 text as UTC datetime64[ns]. pandas (2.3) reads text without an offset that follows
    text with one in that offset ('2013-04-06T22:00:00-05:00' then '2013-04-07 23:00:00' gives
    2013-04-08 04:00 UTC), so text with and without an offset is parsed apart."""
    offset = _offset_text(s)
    if not offset.any() or offset.all():
        return pd.to_datetime(s, utc=True, format="ISO8601").dt.as_unit("ns")
    values = np.empty(len(s), dtype="datetime64[ns]")
    for part in (offset, ~offset):
        parsed = pd.to_datetime(s[part], utc=True, format="ISO8601").dt.as_unit("ns")
        values[part] = parsed.dt.tz_localize(None).to_numpy()
    return pd.Series(values, index=s.index, name=s.name).dt.tz_localize("UTC")


def to_timestamp(s: pd.Series) -> pd.Series:
    """UTC datetime64[ns]. Raises ValueError naming how many values are not timestamps pandas can
    hold (unparseable text, or years outside 1677..2262 such as 2999 or 1500), with examples."""
    try:
        return _parse_iso(s) if s.dtype == object else pd.to_datetime(s, utc=True).dt.as_unit("ns")
    except (ValueError, TypeError, OverflowError) as exc:
        bad = unreadable_timestamps(s)
        if not bad.any():
            raise ValueError(str(exc).splitlines()[0]) from None
        raise ValueError(
            f"{int(bad.sum())} of {len(s)} values are not timestamps between {pd.Timestamp.min:%Y-%m-%d} and "
            f"{pd.Timestamp.max:%Y-%m-%d} (the range pandas can hold), e.g. {value_examples(s, bad)}"
        ) from None


def unreadable_timestamps(s: pd.Series) -> pd.Series:
    """Non-null values that do not convert to datetime64[ns] one by one."""

    def unreadable(value: Any) -> bool:
        try:
            stamp = pd.Timestamp(value)
            return stamp is pd.NaT or stamp.as_unit("ns") is pd.NaT
        except (ValueError, TypeError, OverflowError):
            return True

    return s.notna() & s.map(unreadable).astype(bool)


def _to_numeric(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(float64 values, mask of non-null values that are not numbers)."""
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return s.astype("float64", copy=False), pd.Series(False, index=s.index)
    values = s.map(lambda v: float(v) if isinstance(v, bool) else v)
    coerced = pd.to_numeric(values, errors="coerce")
    bad = coerced.isna() & s.notna()
    return coerced.astype("float64"), bad


def _to_category(s: pd.Series) -> pd.Series:
    """str values with np.nan for missing; integral floats (INTEGER with NULLs) lose their '.0'."""
    if pd.api.types.is_float_dtype(s):
        nonnull = s.dropna()
        if len(nonnull) and bool((nonnull % 1 == 0).all()):
            s = s.astype("Int64")
    mask = s.isna().to_numpy()
    if s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"):
        # Already str (the usual case): keep the objects, only missing -> np.nan. astype(str) would
        # allocate a new string per row (about 60 MB per 1M-row column).
        return s.where(~mask, np.nan) if mask.any() else s
    out = pd.Series(np.full(len(s), np.nan, dtype=object), index=s.index, name=s.name)
    if (~mask).any():
        out[~mask] = s[~mask].astype(str).to_numpy(dtype=object)
    return out


def value_examples(s: pd.Series, bad: pd.Series) -> str:
    values = list(dict.fromkeys(s[bad].head(50).tolist()))[:3]
    return ", ".join(repr(v) for v in values)


NUMERIC_TEXT_MODES = ("error", "nan", "keep")


def convert(
    df: pd.DataFrame,
    cols: list[Col],
    contract: ModelContract,
    table: str,
    strict: bool,
    raw: set[str],
    numeric_text: str = "error",
    type_problems: list[TypeProblem] | None = None,
) -> list[str]:
    """Enforce contract dtypes in place; return problems (strict: raise the first).

    Values of a numeric feature or the prediction that are not numbers, by `numeric_text`:
    "error" raises ColumnTypeError (strict), "nan" reads them as NaN and "keep" leaves the column
    as read; both record a TypeProblem in `type_problems` instead of a schema problem."""
    problems: list[str] = []

    def fail(col: Col, detail: str) -> None:
        if strict or col.role in ("timestamp", "id") or col.role.startswith("label"):
            raise ColumnTypeError(detail, model=contract.name, table=table, column=col.name)
        problems.append(f"column {col.name!r}: {detail}; kept as read")
        raw.add(col.name)

    for col in cols:
        if col.name not in df.columns or col.name in raw:
            continue
        s = df[col.name]
        if col.role == "timestamp":
            try:
                df[col.name] = to_timestamp(s)
            except (ValueError, TypeError) as exc:
                fail(col, f"{col.what} holds values that are not UTC timestamps ({exc})")
        elif col.role in ("numeric", "label_regression", "label_binary"):
            values, bad = _to_numeric(s)
            if bad.any() and col.role == "numeric" and numeric_text in ("nan", "keep"):
                if type_problems is not None:
                    examples = tuple(dict.fromkeys(str(v) for v in s[bad].head(50).tolist()))[:3]
                    type_problems.append(TypeProblem(col.name, col.what, int(bad.sum()), len(s), examples))
                log.warning(
                    "%s: %s %s in %s holds non-numeric values in %d of %d rows (e.g. %s); %s",
                    contract.name, col.what, col.name, table, int(bad.sum()), len(s), value_examples(s, bad),
                    "read as missing" if numeric_text == "nan" else "kept as read",
                )  # fmt: skip
                if numeric_text == "nan":
                    df[col.name] = values
                continue
            if bad.any():
                fail(
                    col,
                    f"{col.what} holds non-numeric values in {int(bad.sum())} of {len(s)} rows, e.g. "
                    f"{value_examples(s, bad)}",
                )
                continue
            if col.role == "label_binary":
                wrong = values.notna() & ~values.isin([0.0, 1.0])
                if wrong.any():
                    fail(col, f"{col.what} must be 0/1, found {value_examples(s, wrong)} in {int(wrong.sum())} rows")
                df[col.name] = values.astype("int64")
            else:
                df[col.name] = values
        elif col.role == "categorical":
            df[col.name] = _to_category(s)
    return problems


def empty_frame(cols: list[Col], sqltypes: dict[str, Any]) -> pd.DataFrame:
    data: dict[str, pd.Series] = {}
    for col in cols:
        if col.role == "timestamp":
            dtype: Any = "datetime64[ns, UTC]"
        elif col.role in ("numeric", "label_regression"):
            dtype = "float64"
        elif col.role == "label_binary" or (col.role == "id" and isinstance(sqltypes.get(col.name), sa.Integer)):
            dtype = "int64"
        else:
            dtype = object
        data[col.name] = pd.Series([], dtype=dtype)
    return pd.DataFrame(data)


def numeric_text_mode(numeric_text: str | None, strict: bool) -> str:
    """The `numeric_text` mode a read uses: None means "error" when strict, else "nan"."""
    mode = numeric_text or ("error" if strict else "nan")
    if mode not in NUMERIC_TEXT_MODES:
        raise ValueError(f"numeric_text must be one of {NUMERIC_TEXT_MODES}, got {numeric_text!r}")
    return mode
