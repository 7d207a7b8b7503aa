"""Per-recipient values in an email whose CSS was inlined once, not once per message.

premailer costs milliseconds per document. A transactional mail (a confirmation, a
password reset) differs between recipients only in a few values, so its HTML is
rendered with a placeholder for each, inlined once and cached; `fill` then puts each
message's values in. The placeholders carry a per-process nonce, so no text an editor
or a reader typed can pose as one.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from html import escape

_NONCE = secrets.token_hex(6)


def placeholder(name: str) -> str:
    """The stand-in for the value `name`, to render into the HTML before inlining."""
    return f"@@{_NONCE}.{name}@@"


def fill(html: str, values: Mapping[str, str]) -> str:
    """`html` with each `placeholder(name)` replaced by its value, HTML-escaped."""
    for name, value in values.items():
        html = html.replace(placeholder(name), escape(value, quote=True))
    return html
