"""The one Jinja2 environment behind every Driftguard page: served pages (driftguard.ui.app, through
FastAPI's Jinja2Templates) and report files written to disk (driftguard.reporting.reports).

Autoescape is on for every ``.html`` template, so a value from the history store, MLflow, a
contract or the URL is escaped where it is inserted; StrictUndefined turns a misspelt name into
an error instead of an empty cell. Templates live in ``driftguard/templates`` (package data)."""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup


def when(value: Any) -> str:
    """A UTC minute (`2026-01-05 14:00`), or '—' when there is no datetime."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else "—"


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def pct(value: Any) -> str:
    return f"{100 * value:.1f}%" if finite(value) else "—"


def signed(value: Any, digits: int = 4) -> str:
    return f"{value:+.{digits}f}" if finite(value) else "—"


def ci(low: Any, high: Any) -> str:
    return f"[{low:+.3f}, {high:+.3f}]" if finite(low) and finite(high) else "—"


def count(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, (int, float)) and math.isfinite(value) else "—"


def num(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if finite(value) else "—"


def fixed(value: Any, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def joined(items: Any, sep: str = ", ") -> str:
    """Items joined as plain text (escaped once, on output; Jinja's `join` would escape them itself)."""
    return sep.join(str(i) for i in items)


def finalize(value: Any) -> Any:
    """Every value printed with ``{{ }}``: None is nothing, markup (macros, ``|safe``) stays as it
    is, anything else is escaped with the stdlib's html.escape (quote=True), the escaping the
    pages had before they were templates, so their bytes did not change (``&quot;``, ``&#x27;``)."""
    if value is None:
        return ""
    if hasattr(value, "__html__"):
        return value
    return Markup(html.escape(str(value), quote=True))


def _build() -> Environment:
    env = Environment(
        loader=PackageLoader("driftguard", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.do"],
        finalize=finalize,
    )
    env.filters.update(
        when=when, pct=pct, signed=signed, count=count, num=num, fixed=fixed, urlquote=quote, joined=joined
    )
    env.globals.update(ci=ci)
    return env


ENV = _build()


def render(name: str, /, **context: Any) -> str:
    """The template `name` rendered with `context` (every inserted value escaped)."""
    return ENV.get_template(name).render(**context)


def macro(template: str, name: str, /, *args: Any, **kwargs: Any) -> Markup:
    """One macro of a template called from Python (its output is escaped markup)."""
    return Markup(getattr(ENV.get_template(template).module, name)(*args, **kwargs))
