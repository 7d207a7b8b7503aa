"""DKIM signing (dkimpy), configured by BROADSHEET_DKIM_SELECTOR, _DOMAIN, _PRIVATE_KEY_FILE.

The signature covers the headers SPEC section 6 names. Signing is per message (the body
differs per recipient), so it is per-recipient work; see bench/render_personalise.py.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import dkim

from app.settings import Settings

SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)


class DkimSigner:
    def __init__(self, selector: str, domain: str, private_key: bytes) -> None:
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("ascii")
        self.private_key = private_key

    def signature(self, message: bytes) -> bytes:
        """The `DKIM-Signature:` header (CRLF-terminated) to put in front of `message`."""
        present = {
            line.split(b":", 1)[0].strip().lower()
            for line in message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            if line and line[:1] not in (b" ", b"\t")
        }
        headers = [name for name in SIGNED_HEADERS if name in present]
        signature: bytes = dkim.sign(
            message,
            self.selector,
            self.domain,
            self.private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=headers,
            linesep=b"\r\n",
        )
        return signature

    def sign(self, message: bytes) -> bytes:
        return self.signature(message) + message


@lru_cache(maxsize=4)
def _load(selector: str, domain: str, path: Path) -> DkimSigner:
    return DkimSigner(selector, domain, path.read_bytes())


def dkim_signer(settings: Settings) -> DkimSigner | None:
    """The configured signer, or None when DKIM is not set up."""
    if not (settings.dkim_selector and settings.dkim_domain and settings.dkim_private_key_file):
        return None
    return _load(settings.dkim_selector, settings.dkim_domain, settings.dkim_private_key_file)
