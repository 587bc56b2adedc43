"""The on-call runbook page: docs/runbook.md rendered to HTML by a tiny, escaping renderer.

The plugin serves it at ``/driftguard/runbook``; every alert kind has a section whose anchor is
the kind (``#drift``, ``#pipeline_failure``), and driftguard.reporting.alerts adds that anchor to the
default runbook URL. Only the Markdown the runbook uses is understood: ``#``/``##``/``###``
headings (an explicit anchor as ``{#id}``), paragraphs, ``-`` lists (continuation lines
indented), fenced code blocks, and inline `code`, **bold** and [links](#anchor). Every piece of
text is HTML-escaped; a link whose target has a scheme other than http(s) is shown as text.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from driftguard.settings import REPO_ROOT

RUNBOOK_MD = REPO_ROOT / "docs" / "runbook.md"
PAGE_PATH = "/runbook"
"""The page's path inside the Driftguard app (mounted under /driftguard by the plugin)."""
DEFAULT_URL = "/driftguard/runbook"
"""The contract's default `alerts.runbook_url`: this page as the Airflow api-server serves it."""

_HEADING = re.compile(r"^(#{1,3})\s+(.*?)\s*(?:\{#([A-Za-z0-9_-]+)\})?\s*$")
_INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|\[([^\]]+)\]\(([^)\s]+)\)")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "-", text.lower()).strip("-") or "section"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def inline(text: str) -> str:
    """Escaped text with `code`, **bold** and safe [links](target)."""
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(_e(text[pos : m.start()]))
        code, bold, label, target = m.groups()
        if code is not None:
            out.append(f"<code>{_e(code)}</code>")
        elif bold is not None:
            out.append(f"<strong>{inline(bold)}</strong>")
        elif target.startswith(("#", "/", "http://", "https://")) or ":" not in target:
            out.append(f'<a href="{_e(target)}">{inline(label)}</a>')
        else:
            out.append(_e(m.group(0)))
        pos = m.end()
    out.append(_e(text[pos:]))
    return "".join(out)


def render(markdown: str) -> tuple[str, list[tuple[int, str, str]]]:
    """(HTML body, [(level, anchor, title)] of the headings)."""
    out: list[str] = []
    headings: list[tuple[int, str, str]] = []
    para: list[str] = []
    items: list[list[str]] = []
    code: list[str] | None = None

    def flush() -> None:
        if para:
            out.append(f"<p>{inline(' '.join(para))}</p>")
            para.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{inline(' '.join(i))}</li>" for i in items) + "</ul>")
            items.clear()

    for raw in markdown.splitlines():
        line = raw.rstrip()
        if code is not None:
            if line.strip().startswith("```"):
                out.append(f"<pre><code>{_e(chr(10).join(code))}</code></pre>")
                code = None
            else:
                code.append(raw)
            continue
        if line.strip().startswith("```"):
            flush()
            code = []
            continue
        heading = _HEADING.match(line)
        if heading:
            flush()
            level, title = len(heading[1]), heading[2]
            anchor = heading[3] or slug(title)
            headings.append((level, anchor, title))
            out.append(f'<h{level} id="{_e(anchor)}">{inline(title)}</h{level}>')
        elif not line.strip():
            flush()
        elif line.startswith("- "):
            if para:
                flush()
            items.append([line[2:].strip()])
        elif items and raw.startswith("  "):
            items[-1].append(line.strip())
        else:
            if items:
                flush()
            para.append(line.strip())
    if code is not None:
        out.append(f"<pre><code>{_e(chr(10).join(code))}</code></pre>")
    flush()
    return "\n".join(out), headings


def page_body(path: Path = RUNBOOK_MD) -> str:
    """The runbook's HTML with a table of contents of its sections."""
    body, headings = render(path.read_text(encoding="utf-8"))
    toc = "".join(f'<li><a href="#{_e(a)}">{inline(t)}</a></li>' for level, a, t in headings if level == 2)
    if not toc:
        return body
    first_section = body.find("<h2")
    nav = f'<ul class="toc">{toc}</ul>'
    return body if first_section < 0 else body[:first_section] + nav + "\n" + body[first_section:]


def link(runbook_url: str | None, kind: str) -> str | None:
    """The runbook URL of an alert kind: the Driftguard runbook page gets `#<kind>` (when it has
    no anchor yet); any other runbook URL is left as the contract gives it."""
    if not runbook_url or "#" in runbook_url:
        return runbook_url
    path = runbook_url.split("?", 1)[0].rstrip("/")
    return f"{runbook_url}#{kind}" if path.endswith(DEFAULT_URL) else runbook_url
