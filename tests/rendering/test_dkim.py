"""DKIM: issue mail and transactional mail verify against an offline test key, and the
signature covers what SPEC section 6 names, so each tampering a relay could do breaks it.

The tamperings and the expected `h=` lists live here; the confirmation, test-send and
delivery tests (which read the real bytes from the outbox or the SMTP server) use them too.
"""

from __future__ import annotations

import base64
import email
import email.policy
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import dkim
import pytest

from app.rendering.dkim import dkim_signer
from app.rendering.prepared import Recipient, freeze_issue, prepare_issue
from app.rendering.transactional import build_message
from tests.rendering import samples

SPEC_HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "mime-version",
    "content-type",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
}


def expected_h(*, reply_to: bool, lists: bool) -> list[str]:
    """`h=` as SPEC section 6 has it: the oversigned headers once more than they occur."""
    names = ["from", "from", "to", "to", "subject", "subject", "date", "message-id"]
    names += ["reply-to", "reply-to"] if reply_to else ["reply-to"]
    names += ["mime-version", "content-type"]
    twice = 2 if lists else 1
    for name in ("list-id", "list-unsubscribe", "list-unsubscribe-post"):
        names += [name] * twice
    return names


def _replace_reply_to(message: bytes) -> bytes:
    changed, count = re.subn(
        rb"\r\nReply-To:[^\r]*\r\n", b"\r\nReply-To: attacker@evil.example\r\n", message, count=1
    )
    assert count == 1, "the message has no Reply-To to replace"
    return changed


def _subject_on_top(message: bytes) -> bytes:
    forged = b"Subject: Urgent: confirm your password\r\n" + message
    # Python's parser (as many clients) now shows the added Subject.
    parsed = email.message_from_bytes(forged, policy=email.policy.default)
    assert parsed["Subject"] == "Urgent: confirm your password"
    return forged


def _mixed(message: bytes) -> bytes:
    head, _, body = message.partition(b"\r\n\r\n")
    changed = head.replace(
        b"Content-Type: multipart/alternative;", b"Content-Type: multipart/mixed;"
    )
    assert changed != head, "the message is not multipart/alternative"
    return changed + b"\r\n\r\n" + body


def _list_unsubscribe_added(message: bytes) -> bytes:
    return b"List-Unsubscribe: <https://evil.example/u>\r\n" + message


def _reply_to_added(message: bytes) -> bytes:
    assert b"\r\nReply-To:" not in message.partition(b"\r\n\r\n")[0]
    return b"Reply-To: attacker@evil.example\r\n" + message


Tampering = Callable[[bytes], bytes]
TAMPERINGS: dict[str, Tampering] = {
    "reply-to replaced": _replace_reply_to,
    "second subject on top": _subject_on_top,
    "multipart/alternative made multipart/mixed": _mixed,
    "list-unsubscribe added": _list_unsubscribe_added,
}
TAMPERINGS_WITHOUT_REPLY_TO: dict[str, Tampering] = {
    **{k: v for k, v in TAMPERINGS.items() if k != "reply-to replaced"},
    "reply-to added": _reply_to_added,
}


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A fresh 2048-bit RSA key and its DNS TXT record (never leaves this test)."""
    directory = tmp_path_factory.mktemp("dkim")
    private = directory / "dkim.pem"
    subprocess.run(
        ["openssl", "genrsa", "-out", str(private), "2048"], check=True, capture_output=True
    )
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(private), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def _dns(record: bytes):  # type: ignore[no-untyped-def]
    def lookup(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"bs2026._domainkey.news.example.com."
        return record

    return lookup


def signed_header_list(message: bytes) -> list[str]:
    """The names in the DKIM-Signature's h= tag, in order, repeats kept."""
    parsed = email.message_from_bytes(message, policy=email.policy.compat32)
    signature = str(parsed["DKIM-Signature"])
    tags = dict(part.split("=", 1) for part in re.sub(r"\s+", "", signature).split(";") if part)
    return tags["h"].lower().split(":")


def _signed_headers(message: bytes) -> set[str]:
    return set(signed_header_list(message))


def assert_signature_holds_only_untouched(
    message: bytes, record: bytes, tamperings: dict[str, Tampering]
) -> None:
    """The message verifies with dkimpy, and no tampered copy of it does."""
    assert dkim.verify(message, dnsfunc=_dns(record))
    still_verify = [
        name
        for name, tamper in tamperings.items()
        if dkim.verify(tamper(message), dnsfunc=_dns(record))
    ]
    assert still_verify == []


def _dkim_settings(private: Path):  # type: ignore[no-untyped-def]
    return samples.settings(
        dkim_selector="bs2026", dkim_domain="news.example.com", dkim_private_key_file=private
    )


def _issue_message(private: Path, **newsletter: object) -> bytes:
    settings = _dkim_settings(private)
    news, issue = samples.newsletter(**newsletter), samples.issue(subject="Ünïcode & news")
    freeze_issue(issue, news, samples.stories(3), settings)
    prepared = prepare_issue(
        issue, news, settings, samples.signer(), installation=samples.INSTALLATION
    )
    return prepared.personalise(Recipient(5, 6, "reader@example.org", "Zoë <x>"))


def test_issue_mail_is_signed_covering_the_spec_headers_and_verifies(
    key_pair: tuple[Path, bytes],
) -> None:
    private, record = key_pair
    message = _issue_message(private)
    assert message.startswith(b"DKIM-Signature: ")
    assert _signed_headers(message) == SPEC_HEADERS
    assert dkim.verify(message, dnsfunc=_dns(record))
    tampered = message.replace(b"Researchers", b"Researchors", 1)
    assert tampered != message
    assert not dkim.verify(tampered, dnsfunc=_dns(record))


def test_issue_mail_signs_every_spec_header_and_oversigns_the_ones_a_relay_could_add(
    key_pair: tuple[Path, bytes],
) -> None:
    private, _ = key_pair
    assert signed_header_list(_issue_message(private)) == expected_h(reply_to=True, lists=True)
    without = _issue_message(private, reply_to=None)
    assert signed_header_list(without) == expected_h(reply_to=False, lists=True)


@pytest.mark.parametrize("tampering", list(TAMPERINGS))
def test_a_tampered_issue_mail_no_longer_verifies(
    key_pair: tuple[Path, bytes], tampering: str
) -> None:
    private, record = key_pair
    message = _issue_message(private)
    assert dkim.verify(message, dnsfunc=_dns(record))
    assert not dkim.verify(TAMPERINGS[tampering](message), dnsfunc=_dns(record))


def test_a_reply_to_added_to_an_issue_mail_without_one_breaks_the_signature(
    key_pair: tuple[Path, bytes],
) -> None:
    private, record = key_pair
    message = _issue_message(private, reply_to=None)
    assert_signature_holds_only_untouched(message, record, TAMPERINGS_WITHOUT_REPLY_TO)


def _transactional(private: Path, reply_to: str | None) -> bytes:
    return build_message(
        from_name="Desk",
        from_email="desk@news.example.com",
        to_email="reader@example.org",
        to_name="Reader",
        subject="Please confirm",
        text="Confirm: https://news.example.com/confirm/x",
        html="<p>Confirm</p>",
        message_id="<confirm.1@news.example.com>",
        reply_to=reply_to,
        headers={"Auto-Submitted": "auto-generated"},
        dkim=dkim_signer(_dkim_settings(private)),
    )


def test_transactional_mail_is_signed_like_issue_mail_and_resists_every_tampering(
    key_pair: tuple[Path, bytes],
) -> None:
    private, record = key_pair
    with_reply_to = _transactional(private, "editor@news.example.com")
    assert signed_header_list(with_reply_to) == expected_h(reply_to=True, lists=False)
    assert_signature_holds_only_untouched(with_reply_to, record, TAMPERINGS)
    without = _transactional(private, None)
    assert signed_header_list(without) == expected_h(reply_to=False, lists=False)
    assert_signature_holds_only_untouched(without, record, TAMPERINGS_WITHOUT_REPLY_TO)


def test_without_dkim_settings_nothing_is_signed() -> None:
    assert dkim_signer(samples.settings()) is None
    newsletter, issue = samples.newsletter(), samples.issue()
    settings = samples.settings()
    freeze_issue(issue, newsletter, [], settings)
    message = prepare_issue(
        issue, newsletter, settings, samples.signer(), installation=samples.INSTALLATION
    ).personalise(Recipient(1, 1, "a@example.org", ""))
    assert b"DKIM-Signature" not in message
