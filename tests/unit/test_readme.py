"""README.md is the front door and docs/ the reference: keep the generated parts true and the links whole."""

from __future__ import annotations

import collections
import re
from pathlib import Path
from urllib.parse import unquote

from driftguard.contract import reference_markdown

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CONTRACT_REFERENCE = ROOT / "docs" / "contract-reference.md"
# [text](target) and ![alt](target); a target may carry a "title"
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


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


def test_readme_is_a_front_door() -> None:
    lines = README.read_text().count("\n")
    assert lines <= 220, f"README.md has {lines} lines: move reference material into docs/"


def test_readme_keeps_the_on_call_anchor() -> None:
    # alerts and DAG docs link to README.md#on-call
    assert re.search(r"^## On-call$", README.read_text(), re.M)


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings (lower case, punctuation dropped, spaces as hyphens),
    and explicit `{#id}` ones."""
    seen: collections.Counter[str] = collections.Counter()
    out = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", _FENCE.sub("", page.read_text()), re.M):
        explicit = re.search(r"\{#([\w-]+)\}$", heading)  # `## drift {#drift}`: driftguard.reporting.runbook's ids
        if explicit:
            out.add(explicit[1])
            heading = heading[: explicit.start()]
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return out


def test_relative_links_point_to_existing_files() -> None:
    broken = []
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        text = _FENCE.sub("", page.read_text())
        for target in _LINK.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                continue  # a URL or mailto:
            path, _, anchor = unquote(target).partition("#")
            linked = (page.parent / path) if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)
