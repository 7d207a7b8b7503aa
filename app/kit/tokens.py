"""Signed, unguessable tokens for links in emails (confirm, unsubscribe, tracking).

A token is `base64url(payload) "." base64url(HMAC-SHA256(key, purpose|payload)[:16])`.
The purpose is part of the MAC, so a token made for one use is refused for another.
Verification tries the current key, then the previous ones, so SECRET_KEY can be
rotated without breaking links already in inboxes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence

_MAC_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenError(Exception):
    """The token is malformed, forged, for another purpose, or expired."""


class Signer:
    def __init__(self, key: bytes, previous: Sequence[bytes] = ()) -> None:
        self._keys = [key, *previous]

    def _mac(self, key: bytes, purpose: str, payload: bytes) -> bytes:
        return hmac.new(key, purpose.encode() + b"|" + payload, hashlib.sha256).digest()[
            :_MAC_BYTES
        ]

    def sign(self, purpose: str, *parts: int | str) -> str:
        payload = ".".join(str(part) for part in parts).encode()
        return _b64(payload) + "." + _b64(self._mac(self._keys[0], purpose, payload))

    def unsign(self, purpose: str, token: str) -> list[str]:
        """The parts given to `sign`, as strings; raises TokenError."""
        encoded, sep, mac_text = token.partition(".")
        if not sep or len(token) > 512:
            raise TokenError("malformed token")
        try:
            payload, mac = _unb64(encoded), _unb64(mac_text)
        except (ValueError, TypeError) as exc:
            raise TokenError("malformed token") from exc
        for key in self._keys:
            if hmac.compare_digest(mac, self._mac(key, purpose, payload)):
                try:
                    return payload.decode("ascii").split(".")
                except UnicodeDecodeError as exc:  # pragma: no cover - we signed it
                    raise TokenError("malformed token") from exc
        raise TokenError("invalid token")

    def sign_timed(self, purpose: str, *parts: int | str) -> str:
        return self.sign(purpose, *parts, int(time.time()))

    def unsign_timed(self, purpose: str, token: str, max_age: int) -> list[str]:
        parts = self.unsign(purpose, token)
        try:
            issued = int(parts[-1])
        except ValueError as exc:
            raise TokenError("malformed token") from exc
        if time.time() - issued > max_age:
            raise TokenError("expired token")
        return parts[:-1]


def unsign_id(signer: Signer, purpose: str, token: str) -> int:
    """The single integer id inside a token made with `sign(purpose, id)`."""
    parts = signer.unsign(purpose, token)
    if len(parts) != 1 or not parts[0].isdigit():
        raise TokenError("malformed token")
    return int(parts[0])
