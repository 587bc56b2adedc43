"""driftguard.monitoring._evidently's HTML: feature-log data stays data inside Evidently's page.

The report embeds its widgets as JSON in a <script>; a category value or feature name holding
"</script>" or "<!--" must neither end that element nor open a comment, and the JSON must still
parse to the same values for Evidently's bundle (which the browser test runs)."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import xss_support
from driftguard.monitoring import _evidently
from driftguard.monitoring.drift import run_drift
from driftguard.testing import DEFAULT_START


class Scripts(HTMLParser):
    """The page's script elements as (src, text), as a browser's HTML parser splits them."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[tuple[str | None, str]] = []
        self.tags: list[str] = []
        self.text = ""
        self._src: str | None = None
        self._open = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "script":
            self._open, self._src = True, dict(attrs).get("src")
            self.scripts.append((self._src, ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._open = False

    def handle_data(self, data: str) -> None:
        if self._open:
            src, text = self.scripts[-1]
            self.scripts[-1] = (src, text + data)
        else:
            self.text += data


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _data(script: str) -> dict[str, Any]:
    """The `var name = <json>;` assignments of the data script, parsed."""
    found = re.findall(r"^\s*var (\w+) = (.*);$", script, re.M)
    assert len(found) == 2, script[:300]
    return {name: json.loads(text) for name, text in found}


@pytest.mark.parametrize(
    "value",
    [
        "</script><script>alert(1)</script>",
        "<!--<script>",
        "a & b > c",
        "line\u2028separator\u2029",
        '"quoted" \\ backslash',
        {"</SCRIPT>": ["<![CDATA[", 1.5, None]},
    ],
)
def test_script_json_round_trips_and_hides_markup(value: Any) -> None:
    text = _evidently.script_json(json.dumps(value))
    assert json.loads(text) == value
    assert not set(text) & {"<", ">", "&", "\u2028", "\u2029"}


def test_drift_report_keeps_payloads_inside_its_json(tmp_path: Path) -> None:
    contract = xss_support.contract("xss_model")
    reference, current = xss_support.windows(DEFAULT_START, DEFAULT_START + timedelta(days=30))
    result = run_drift(contract, reference, current, out_html=tmp_path / "run" / "drift.html", assets_dir=tmp_path)
    assert {xss_support.FEATURE, "region"} <= set(result.drifted_features)  # both plotted
    page = Path(result.report_path).read_text()
    assert "</script><script>" not in page and "<img" not in page and "<svg" not in page
    for payload in (*xss_support.PAYLOADS, xss_support.FEATURE):
        assert payload not in page
    parsed = Scripts(page)
    # Exactly Evidently's four scripts: our data, its `global` shim, the linked bundle, the draw call.
    assert [src for src, _ in parsed.scripts] == [None, None, f"../{_evidently.BUNDLE}", None]
    assert "img" not in parsed.tags and "svg" not in parsed.tags
    # Driftguard's header and verdict table (escaped HTML) come before Evidently's root.
    assert page.index('<table class="drift-verdicts">') < page.index('<div id="root_')
    assert parsed.text.count(xss_support.FEATURE) >= 1  # the feature name as text, in the table
    data = _data(parsed.scripts[0][1])
    strings = _strings(data)
    # The bundle gets the data unchanged: the feature name and the payloads in the plots.
    assert any(xss_support.FEATURE in s for s in strings)
    for payload in xss_support.PAYLOADS:
        assert any(payload in s for s in strings), payload
    assert "drawDashboard" in parsed.scripts[3][1]


def test_when_evidently_moved_the_report_is_the_header_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def moved(*args: Any) -> str:
        raise AttributeError("'Snapshot' object has no attribute '_widgets'")

    monkeypatch.setattr(_evidently, "_linked_page", moved)
    header = '<table class="drift-verdicts"><tr><td>&lt;/script&gt;&lt;script&gt;</td><td>drifted</td></tr></table>'
    with caplog.at_level(logging.WARNING):
        out = _evidently.save_html(object(), tmp_path / "drift.html", title="Drift <b>", header=header)
    page = out.read_text()
    parsed = Scripts(page)
    assert parsed.scripts == [] and "img" not in parsed.tags and "b" not in parsed.tags
    assert header in page and "<title>Drift &lt;b&gt;</title>" in page
    assert "without plots" in caplog.text
