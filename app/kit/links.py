"""Every signed link Broadsheet puts in an email, built in one place.

Purposes are fixed strings; a token for one purpose never works for another.
"""

from __future__ import annotations

from app.kit.tokens import Signer, unsign_id

CONFIRM = "confirm"
UNSUBSCRIBE = "unsubscribe"
OPEN = "open"
CLICK = "click"


def confirm_token(signer: Signer, subscription_id: int) -> str:
    return signer.sign_timed(CONFIRM, subscription_id)


def confirm_subscription_id(signer: Signer, token: str, max_age: int) -> int:
    """The subscription id in a confirm token; TokenError when forged or expired."""
    parts = signer.unsign_timed(CONFIRM, token, max_age)
    if len(parts) != 1 or not parts[0].isdigit():
        from app.kit.tokens import TokenError

        raise TokenError("malformed token")
    return int(parts[0])


def unsubscribe_token(signer: Signer, subscription_id: int) -> str:
    return signer.sign(UNSUBSCRIBE, subscription_id)


def unsubscribe_subscription_id(signer: Signer, token: str) -> int:
    return unsign_id(signer, UNSUBSCRIBE, token)


def confirm_url(base_url: str, signer: Signer, subscription_id: int) -> str:
    return f"{base_url}/confirm/{confirm_token(signer, subscription_id)}"


def unsubscribe_url(base_url: str, signer: Signer, subscription_id: int) -> str:
    return f"{base_url}/unsubscribe/{unsubscribe_token(signer, subscription_id)}"


def open_token(signer: Signer, delivery_id: int) -> str:
    return signer.sign(OPEN, delivery_id)


def click_token(signer: Signer, delivery_id: int, link_index: int) -> str:
    return signer.sign(CLICK, delivery_id, link_index)
