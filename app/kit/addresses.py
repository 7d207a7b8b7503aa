"""Email addresses: validated and normalised at the door (SPEC section 6).

Normal form: surrounding whitespace trimmed, the domain lower-cased and converted to
its IDNA A-label. The local part is kept as typed (it is case-sensitive by the RFC,
even if few servers treat it so). A non-ASCII local part needs SMTPUTF8 at the
server, which a deployment declares with BROADSHEET_SMTPUTF8.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated

import idna
from pydantic import AfterValidator

from app.kit.text import has_encoded_word, has_line_break

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM_ASCII = re.compile(rf"^{_ATEXT}+(\.{_ATEXT}+)*$")
# Internationalised local parts (RFC 6531): atext plus any non-ASCII character.
_DOT_ATOM_UTF8 = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+"
    r"(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+)*$"
)
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class AddressError(ValueError):
    pass


def normalise_email(value: str, *, allow_utf8_local: bool = False) -> str:
    """The normal form of an address, or AddressError saying what is wrong."""
    if has_line_break(value):
        raise AddressError("must not contain line breaks or control characters")
    if has_encoded_word(value):
        # `=` and `?` are legal in a local part, but the `email` package would decode
        # `=?UTF-8?B?...?=@example.com` into a line break in the To header (CVE-2024-6923).
        raise AddressError("must not contain an encoded word (=?charset?q?...?=)")
    value = value.strip()
    if not value:
        raise AddressError("an email address is required")
    if len(value) > 320:
        raise AddressError("is too long")
    local, sep, domain = value.rpartition("@")
    if not sep or not local or not domain:
        raise AddressError("is not a valid email address (user@example.com)")
    _check_local_part(local, allow_utf8_local=allow_utf8_local)
    ascii_domain = _checked_domain(domain)
    address = f"{local}@{ascii_domain}"
    if len(address.encode()) > 254:
        raise AddressError("is too long")
    return address


def _check_local_part(local: str, *, allow_utf8_local: bool) -> None:
    if len(local.encode()) > 64:
        raise AddressError("has a local part longer than 64 octets")
    if local.isascii():
        if not _DOT_ATOM_ASCII.match(local):
            raise AddressError("has characters not allowed before the @")
        return
    if not allow_utf8_local:
        raise AddressError(
            "has a non-ASCII part before the @, which this mail server cannot deliver"
        )
    if not _DOT_ATOM_UTF8.match(local):
        raise AddressError("has characters not allowed before the @")


def _checked_domain(domain: str) -> str:
    """The domain as its A-label, lower-cased, or AddressError."""
    ascii_domain = _ascii_domain(domain.rstrip(".").lower())
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise AddressError("has an invalid domain")
    if labels[-1].isdigit():
        raise AddressError("has an invalid domain")
    return ascii_domain


@lru_cache(maxsize=4096)
def _ascii_domain(domain: str) -> str:
    """The A-label form of a lower-cased domain (cached: lists repeat a few domains)."""
    # Plain LDH labels are already their own A-label; skipping the (slow, pure-Python)
    # IDNA codec for them keeps a 100,000-row import fast. "xn--" and other labels with
    # hyphens in positions 3-4 still go through the codec, which validates them.
    if domain.isascii() and all(
        _LABEL.match(label) and label[2:4] != "--" for label in domain.split(".")
    ):
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise AddressError("has an invalid domain") from exc


def _validate(value: str) -> str:
    return normalise_email(value)


# A pydantic field type for addresses in API payloads (ASCII local part).
EmailAddress = Annotated[str, AfterValidator(_validate)]
