"""DKIM: issue mail and transactional mail verify against an offline test key."""

from __future__ import annotations

import base64
import re
import subprocess
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
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
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


def _signed_headers(message: bytes) -> set[str]:
    signature = message.split(b"\r\n\r\n", 1)[0].decode()
    match = re.search(r"\bh=([^;]+);", signature.replace("\r\n ", "").replace("\r\n\t", ""))
    assert match
    return {name.strip().lower() for name in match.group(1).split(":")}


def test_issue_mail_is_signed_covering_the_spec_headers_and_verifies(
    key_pair: tuple[Path, bytes],
) -> None:
    private, record = key_pair
    settings = samples.settings(
        dkim_selector="bs2026", dkim_domain="news.example.com", dkim_private_key_file=private
    )
    newsletter, issue = samples.newsletter(), samples.issue(subject="Ünïcode & news")
    freeze_issue(issue, newsletter, samples.stories(3), settings)
    prepared = prepare_issue(issue, newsletter, settings, samples.signer())
    message = prepared.personalise(Recipient(5, 6, "reader@example.org", "Zoë <x>"))
    assert message.startswith(b"DKIM-Signature: ")
    assert _signed_headers(message) >= SPEC_HEADERS
    assert dkim.verify(message, dnsfunc=_dns(record))
    tampered = message.replace(b"Researchers", b"Researchors", 1)
    assert tampered != message
    assert not dkim.verify(tampered, dnsfunc=_dns(record))


def test_transactional_mail_is_signed_when_dkim_is_configured(
    key_pair: tuple[Path, bytes],
) -> None:
    private, record = key_pair
    settings = samples.settings(
        dkim_selector="bs2026", dkim_domain="news.example.com", dkim_private_key_file=private
    )
    message = build_message(
        from_name="Desk",
        from_email="desk@news.example.com",
        to_email="reader@example.org",
        to_name="Reader",
        subject="Please confirm",
        text="Confirm: https://news.example.com/confirm/x",
        html="<p>Confirm</p>",
        message_id="<confirm.1@news.example.com>",
        dkim=dkim_signer(settings),
    )
    assert _signed_headers(message) >= {"from", "to", "subject", "date", "message-id"}
    assert dkim.verify(message, dnsfunc=_dns(record))


def test_without_dkim_settings_nothing_is_signed() -> None:
    assert dkim_signer(samples.settings()) is None
    newsletter, issue = samples.newsletter(), samples.issue()
    settings = samples.settings()
    freeze_issue(issue, newsletter, [], settings)
    message = prepare_issue(issue, newsletter, settings, samples.signer()).personalise(
        Recipient(1, 1, "a@example.org", "")
    )
    assert b"DKIM-Signature" not in message
