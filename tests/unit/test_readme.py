"""README.md is what a new user reads first: keep its generated parts true."""

from __future__ import annotations

import re
from pathlib import Path

from driftguard.contract import reference_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def _between(text: str, name: str) -> str:
    m = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", text, re.S)
    assert m, f"README.md lacks the {name} markers"
    return m.group(1)


def test_contract_reference_matches_the_schema() -> None:
    assert _between(README.read_text(), "contract-reference") == reference_markdown(), (
        "README's contract reference is stale: paste driftguard.contract.reference_markdown() between the markers"
    )


def test_readme_shows_the_two_commands() -> None:
    text = README.read_text()
    assert "make demo" in text and "make test" in text
