"""Editor Markdown to safe HTML: markdown-it-py (CommonMark + tables), then nh3.

Everything an editor writes passes through `render_markdown()` before it reaches an
email, the web archive or the feed. nh3 keeps an allowlist of tags and attributes, drops
scripts, styles and event handlers, and keeps only http, https and mailto URLs.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urlsplit

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = frozenset(
    {
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "code",
        "del",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "li",
        "ol",
        "p",
        "pre",
        "s",
        "small",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "th",
        "thead",
        "tr",
        "u",
        "ul",
    }
)
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "ol": {"start"},
    "td": {"align", "colspan", "rowspan"},
    "th": {"align", "colspan", "rowspan"},
    "abbr": {"title"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})

_HREF_OR_SRC = re.compile(r'(<(?:a|img)\b[^>]*?\s(?:href|src)=")([^"]*)(")')


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"linkify": False, "typographer": False}).enable("table")


@lru_cache(maxsize=1)
def _permissive_parser() -> MarkdownIt:
    """For checks only: sees every link, also those the renderer refuses (javascript:)."""
    parser = MarkdownIt("commonmark", {"linkify": False}).enable("table")
    parser.validateLink = lambda url: True  # type: ignore[method-assign]
    return parser


def _drop_relative(match: re.Match[str]) -> str:
    """A relative URL means nothing in an inbox: it is removed (the check reports it)."""
    url = match.group(2)
    if urlsplit(url.replace("&amp;", "&")).scheme.lower() in URL_SCHEMES:
        return match.group(0)
    return match.group(1) + match.group(3)


def _keep_attribute(element: str, attribute: str, value: str) -> str | None:
    """An image's `width` or `height` is a number of pixels, or it goes: `100%` or `auto`
    is invalid HTML, and CSS already scales the image to its column."""
    if attribute in ("width", "height") and not value.strip().isdigit():
        return None
    return value


def sanitise_html(html: str) -> str:
    cleaned = nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_keep_attribute,
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener",
        strip_comments=True,
        clean_content_tags={"script", "style"},
    )
    return _HREF_OR_SRC.sub(_drop_relative, cleaned)


def render_markdown(text: str) -> str:
    """Sanitised HTML for an editor's Markdown; "" for empty input."""
    if not text.strip():
        return ""
    return sanitise_html(_parser().render(text)).strip()


def is_web_url(url: str | None) -> bool:
    """An absolute http(s) URL with a host."""
    if not url:
        return False
    parts = urlsplit(url)
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def markdown_links(text: str) -> list[str]:
    """Every link and image URL the Markdown contains, before sanitising (for checks)."""
    urls: list[str] = []

    def walk(tokens: list[object]) -> None:
        for token in tokens:
            attrs = getattr(token, "attrs", None) or {}
            for name in ("href", "src"):
                value = attrs.get(name)
                if isinstance(value, str):
                    urls.append(value)
            children = getattr(token, "children", None)
            if children:
                walk(children)

    walk(list(_permissive_parser().parse(text)))
    return urls


_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_ALT = re.compile(r'\balt="([^"]*)"', re.IGNORECASE)


def markdown_images_without_alt(text: str) -> int:
    """How many images (Markdown or inline HTML) the rendered text shows without alt text."""
    count = 0
    for tag in _IMG_TAG.findall(render_markdown(text)):
        alt = _ALT.search(tag)
        if alt is None or not alt.group(1).strip():
            count += 1
    return count
