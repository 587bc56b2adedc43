"""README.md is the front door and docs/ the reference: keep the generated parts true and the links whole."""

from __future__ import annotations

import collections
import re
from pathlib import Path

from driftguard.contract import reference_markdown

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CONTRACT_REFERENCE = ROOT / "docs" / "contract-reference.md"


def _between(text: str, name: str, where: Path) -> str:
    m = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", text, re.S)
    assert m, f"{where.name} lacks the {name} markers"
    return m.group(1)


def _setting_paths(markdown: str) -> list[str]:
    """The setting path of every row of the reference's tables (the first column)."""
    return re.findall(r"^\| `([^`]+)` \|", markdown, re.M)


def test_contract_reference_matches_the_schema() -> None:
    text = _between(CONTRACT_REFERENCE.read_text(), "contract-reference", CONTRACT_REFERENCE)
    assert text == reference_markdown(), (
        "docs/contract-reference.md is stale: paste driftguard.contract.reference_markdown() between the markers"
    )


def test_contract_reference_lists_each_setting_once() -> None:
    for source, text in (
        ("reference_markdown()", reference_markdown()),
        ("docs/contract-reference.md", CONTRACT_REFERENCE.read_text()),
    ):
        paths = _setting_paths(text)
        assert len(paths) > 100, f"{source}: no setting rows found"
        repeated = sorted(p for p, n in collections.Counter(paths).items() if n > 1)
        assert not repeated, f"{source} lists these settings more than once: {repeated}"


def test_duplicate_check_catches_a_repeated_row() -> None:
    row = "| `policy.cooldown` | `1w` | Guard. |"
    paths = _setting_paths(f"| field | default | meaning |\n|---|---|---|\n{row}\n{row}\n")
    assert collections.Counter(paths)["policy.cooldown"] == 2


def test_readme_shows_the_two_commands() -> None:
    text = README.read_text()
    assert "make demo" in text and "make test" in text
