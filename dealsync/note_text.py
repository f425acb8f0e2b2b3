"""Note text: HTML (HubSpot) and plain text (BottleCRM comments), and dealsync's author lines in both."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Literal

TextFormat = Literal["text", "html"]

# dealsync's own "<author> wrote:" line on notes whose author has no account on the other side.
AUTHOR_HTML = re.compile(r'^<p class="dealsync-author">.*?</p>', re.DOTALL)
AUTHOR_TEXT = re.compile(r"^[^\n]*\([^()\s]+@[^()\s]+\) wrote:\n+")
_BLOCKS = {"p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr"}


class _TextCollector(HTMLParser):
    """Collects the text of an HTML fragment: blocks become paragraphs, <br> a line break."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(" ".join(data.split("\n")))


def normalize_text(text: str) -> str:
    """Plain text in one form: single spaces, at most one blank line between paragraphs."""
    lines = [" ".join(line.split()) for line in re.split(r"\r\n|\r|\n", text)]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(fragment: str) -> str:
    """The plain text of an HTML note body."""
    collector = _TextCollector()
    collector.feed(fragment)
    collector.close()
    return normalize_text("".join(collector.parts))


def text_to_html(text: str) -> str:
    """Plain text as an HTML note body: a paragraph per blank-line-separated block."""
    paragraphs = [p for p in normalize_text(text).split("\n\n") if p]
    return "".join(
        f"<p>{html.escape(p, quote=False).replace(chr(10), '<br>')}</p>" for p in paragraphs
    )


def author_line(name: str, email: str, fmt: TextFormat = "html") -> str:
    """The line that names a note's author where that person has no account on the other side."""
    if fmt == "text":
        return f"{name or email} ({email}) wrote:\n\n"
    return (
        f'<p class="dealsync-author">{html.escape(name or email)} ({html.escape(email)}) wrote:</p>'
    )


def author_prefix(body: str | None) -> str:
    """The author line a body starts with, in either format, or ''."""
    match = AUTHOR_HTML.match(body or "") or AUTHOR_TEXT.match(body or "")
    return match.group(0) if match else ""


def strip_author(body: str) -> str:
    """A body without dealsync's author line."""
    return body[len(author_prefix(body)) :]
