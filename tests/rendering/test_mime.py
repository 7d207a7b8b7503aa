"""The quoted-printable and header pieces the prepared messages are assembled from."""

from __future__ import annotations

import binascii
import email
import email.policy

from hypothesis import example, given
from hypothesis import strategies as st

from app.rendering.mime import address_header, encoded_words, header_line, qp_piece, qp_value

# Text that stresses the encoder: escapes near line ends, spaces before breaks, "=".
tricky = st.lists(st.sampled_from([*"ab =\t.é日🙂\n", "=3D", "  ", "x" * 80]), max_size=120).map(
    "".join
)
values = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"),
    max_size=300,
)


def decode(data: bytes) -> str:
    return binascii.a2b_qp(data).decode("utf-8").replace("\r\n", "\n")


@given(tricky, values, tricky)
@example("x" * 75, "=" * 30, " \n")
@example("a \n", "", "b")
@example("", "é" * 100, "")
def test_pieces_and_values_join_into_exact_quoted_printable(
    before: str, value: str, after: str
) -> None:
    encoded = qp_piece(before) + qp_value(value) + qp_piece(after)
    assert decode(encoded) == before + value + after
    for line in encoded.split(b"\r\n"):
        assert len(line) <= 76
        assert line.isascii()
        assert not line.endswith((b" ", b"\t"))
    assert b"\n" not in encoded.replace(b"\r\n", b"")


@given(st.text(max_size=300))
def test_encoded_words_are_short_and_decode_back(text: str) -> None:
    words = encoded_words(text)
    assert all(len(word) <= 75 for word in words)
    line = header_line("Subject", text.replace("\r", " ").replace("\n", " "))
    message = email.message_from_bytes(line + b"\r\n", policy=email.policy.default)
    assert len(message.keys()) == 1
    assert all(len(part) <= 998 for part in line.split(b"\r\n"))


def test_address_header_quotes_encodes_or_leaves_plain() -> None:
    assert address_header("To", "Ada Lovelace", "ada@example.org") == (
        b"To: Ada Lovelace <ada@example.org>\r\n"
    )
    assert address_header("To", "", "ada@example.org") == b"To: ada@example.org\r\n"
    assert address_header("To", 'A. "Q" \\ B', "a@example.org") == (
        b'To: "A. \\"Q\\" \\\\ B" <a@example.org>\r\n'
    )
    assert address_header("To", "Zoë", "z@example.org") == (
        b"To: =?utf-8?b?Wm/Dqw==?= <z@example.org>\r\n"
    )
    injected = address_header("To", "Eve\r\nBcc: x@evil.example", "e@example.org")
    assert injected.count(b"\r\n") == 1
    assert injected == b'To: "Eve  Bcc: x@evil.example" <e@example.org>\r\n'
