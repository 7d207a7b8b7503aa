"""Sanitised HTML to readable plain text, with links numbered like footnotes.

The text part is made from the same sanitised HTML as the HTML part, so both always
say the same thing: `Some link text [3]` in the body and `[3] https://...` in the list
at the end of the message.
"""

from __future__ import annotations

import re
import textwrap
from html.parser import HTMLParser

_SPACES = re.compile(r"[ \t\r\n\f\v]+")
_BLOCKS = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table", "hr", "pre"}
_LIST_MARKER = re.compile(r"^( *(?:-|\d+\.) )")
WIDTH = 72


class LinkList:
    """Numbers every distinct URL in order of first appearance (1-based)."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self._index: dict[str, int] = {}

    def number(self, url: str) -> int:
        if url not in self._index:
            self.urls.append(url)
            self._index[url] = len(self.urls)
        return self._index[url]


class _TextWriter(HTMLParser):
    def __init__(self, links: LinkList) -> None:
        super().__init__(convert_charrefs=True)
        self.links = links
        self.blocks: list[tuple[str, bool]] = []  # (text, inside a list)
        self.line: list[str] = []
        self.lists: list[list[int]] = []  # a counter per open list; [-1] for bullets
        self.quote = 0
        self.pre = 0
        self.href: str | None = None
        self.link_text: list[str] = []
        self.row: list[str] = []
        self.cell: list[str] | None = None

    # Inline text goes to the current cell, link or line.
    def _emit(self, text: str) -> None:
        if self.cell is not None:
            self.cell.append(text)
        elif self.href is not None:
            self.link_text.append(text)
        else:
            self.line.append(text)

    def _flush(self) -> None:
        text = "".join(self.line)
        self.line = []
        if not self.pre:
            text = "\n".join(self._wrap(part) for part in text.split("\n"))
        text = text.strip("\n")
        if not text.strip():
            return
        prefix = "> " * self.quote
        if prefix:
            text = "\n".join(prefix + part for part in text.split("\n"))
        self.blocks.append((text, bool(self.lists)))

    def _wrap(self, line: str) -> str:
        marker = _LIST_MARKER.match(line)
        indent = " " * len(marker.group(1)) if marker else ""
        body = _SPACES.sub(" ", line[len(indent) :] if marker else line).strip()
        if " | " in body:  # a table row: keep it on one line
            return (marker.group(1) if marker else "") + body
        return textwrap.fill(
            body,
            width=WIDTH - 2 * self.quote,
            initial_indent=marker.group(1) if marker else "",
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag in _BLOCKS or tag == "blockquote":
            self._open_block(tag)
        elif tag in ("ul", "ol"):
            self._flush()
            start = attr.get("start") or "1"
            self.lists.append([int(start) if tag == "ol" and start.isdigit() else -1])
        elif tag == "li":
            self._open_item()
        elif tag == "br":
            self._emit("\n")
        elif tag == "a":
            self.href = attr.get("href") or ""
            self.link_text = []
        elif tag == "img":
            alt = (attr.get("alt") or "").strip()
            self._emit(f"[image: {alt}]" if alt else "[image]")
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = []

    def _open_block(self, tag: str) -> None:
        self._flush()
        if tag == "blockquote":
            self.quote += 1
        if tag == "pre":
            self.pre += 1
        if tag == "hr":
            self.blocks.append(("> " * self.quote + "* * *", False))

    def _open_item(self) -> None:
        self._flush()
        depth = max(len(self.lists) - 1, 0)
        marker = "-"
        if self.lists and self.lists[-1][0] >= 0:
            marker = f"{self.lists[-1][0]}."
            self.lists[-1][0] += 1
        self.line.append("  " * depth + marker + " ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS or tag == "blockquote":
            self._flush()
            if tag == "blockquote" and self.quote:
                self.quote -= 1
            if tag == "pre" and self.pre:
                self.pre -= 1
        elif tag in ("ul", "ol"):
            self._flush()
            if self.lists:
                self.lists.pop()
        elif tag == "li":
            self._flush()
        elif tag == "a" and self.href is not None:
            href, text = self.href, "".join(self.link_text).strip()
            self.href = None
            if href.startswith("mailto:"):
                self._emit(f"{text} <{href.removeprefix('mailto:')}>" if text else href)
            elif href:
                number = self.links.number(href)
                self._emit(f"{text} [{number}]" if text and text != href else f"{href}")
            else:
                self._emit(text)
        elif tag in ("td", "th") and self.cell is not None:
            self.row.append(_SPACES.sub(" ", "".join(self.cell)).strip())
            self.cell = None
        elif tag == "tr":
            self.line.append(" | ".join(self.row) + "\n")
            self.row = []

    def handle_data(self, data: str) -> None:
        self._emit(data)

    def text(self) -> str:
        self._flush()
        out: list[str] = []
        previous_in_list = False
        for text, in_list in self.blocks:
            if out:
                out.append("\n" if in_list and previous_in_list else "\n\n")
            out.append(text)
            previous_in_list = in_list
        return "".join(out)


def html_to_text(html: str, links: LinkList) -> str:
    """Readable text for a fragment of sanitised HTML; its links are added to `links`."""
    if not html:
        return ""
    writer = _TextWriter(links)
    writer.feed(html)
    writer.close()
    return writer.text()
