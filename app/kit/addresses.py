"""Email addresses: validated and normalised at the door (SPEC section 6).

Normal form: surrounding whitespace trimmed, the domain lower-cased and converted to
its IDNA A-label. The local part is kept as typed (it is case-sensitive by the RFC,
even if few servers treat it so). A non-ASCII local part needs SMTPUTF8 at the
server, which a deployment declares with BROADSHEET_SMTPUTF8.
"""

from __future__ import annotations

import re
from typing import Annotated

import idna
from pydantic import AfterValidator

from app.kit.text import has_line_break

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
    value = value.strip()
    if not value:
        raise AddressError("an email address is required")
    if len(value) > 320:
        raise AddressError("is too long")
    local, sep, domain = value.rpartition("@")
    if not sep or not local or not domain:
        raise AddressError("is not a valid email address (user@example.com)")
    if len(local.encode()) > 64:
        raise AddressError("has a local part longer than 64 octets")
    if local.isascii():
        if not _DOT_ATOM_ASCII.match(local):
            raise AddressError("has characters not allowed before the @")
    else:
        if not allow_utf8_local:
            raise AddressError(
                "has a non-ASCII part before the @, which this mail server cannot deliver"
            )
        if not _DOT_ATOM_UTF8.match(local):
            raise AddressError("has characters not allowed before the @")
    domain = domain.rstrip(".").lower()
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise AddressError("has an invalid domain") from exc
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise AddressError("has an invalid domain")
    if labels[-1].isdigit():
        raise AddressError("has an invalid domain")
    address = f"{local}@{ascii_domain}"
    if len(address.encode()) > 254:
        raise AddressError("is too long")
    return address


def _validate(value: str) -> str:
    return normalise_email(value)


# A pydantic field type for addresses in API payloads (ASCII local part).
EmailAddress = Annotated[str, AfterValidator(_validate)]
