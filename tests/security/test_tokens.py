"""Signed tokens (app/kit/tokens.py, app/kit/links.py): forged, truncated, cross-purpose,
expired and rotated-key tokens, and that checks compare in constant time."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.keys import service as keys_service
from app.kit import links
from app.kit import tokens as tokens_module
from app.kit.tokens import Signer, TokenError

KEY = b"current-secret-key-0123456789abcdef"
OLD = b"previous-secret-key-0123456789abcd"
signer = Signer(KEY)
MAX_AGE = 7 * 86400


def test_a_confirm_token_round_trips() -> None:
    token = links.confirm_token(signer, 42)
    assert links.confirm_subscription_id(signer, token, MAX_AGE) == 42


def test_a_token_signed_with_another_key_is_refused() -> None:
    forged = links.unsubscribe_token(Signer(b"attacker-guess-0123456789abcdefg"), 42)
    with pytest.raises(TokenError):
        links.unsubscribe_subscription_id(signer, forged)


def test_changing_the_id_inside_a_token_is_refused() -> None:
    token = links.unsubscribe_token(signer, 42)
    _, mac = token.split(".")
    other_payload = links.unsubscribe_token(signer, 43).split(".")[0]
    with pytest.raises(TokenError):
        links.unsubscribe_subscription_id(signer, f"{other_payload}.{mac}")


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=2**62), st.data())
def test_any_single_character_change_is_refused_or_means_the_same(
    subscription_id: int, data: st.DataObject
) -> None:
    token = links.unsubscribe_token(signer, subscription_id)
    position = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    replacement = data.draw(
        st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=")
    )
    tampered = token[:position] + replacement + token[position + 1 :]
    try:
        result = links.unsubscribe_subscription_id(signer, tampered)
    except TokenError:
        return
    # Base64 leaves a few unused bits in the last character: a change there decodes to
    # the same bytes. It must never decode to another subscription.
    assert result == subscription_id


@pytest.mark.parametrize("cut", [1, 5, 10, 22, 23])
def test_a_truncated_token_is_refused(cut: int) -> None:
    token = links.unsubscribe_token(signer, 42)
    with pytest.raises(TokenError):
        links.unsubscribe_subscription_id(signer, token[:-cut])


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=600))
def test_garbage_only_ever_raises_token_error(value: str) -> None:
    checks: list[Callable[[], int]] = [
        lambda: links.unsubscribe_subscription_id(signer, value),
        lambda: links.confirm_subscription_id(signer, value, MAX_AGE),
        lambda: tokens_module.unsign_id(signer, links.OPEN, value),
    ]
    for check in checks:
        with pytest.raises(TokenError):
            check()


@pytest.mark.parametrize(
    ("make", "purpose"),
    [
        (lambda: links.unsubscribe_token(signer, 42), links.CONFIRM),
        (lambda: links.open_token(signer, 42), links.UNSUBSCRIBE),
        (lambda: links.click_token(signer, 42, 0), links.UNSUBSCRIBE),
        (lambda: links.confirm_token(signer, 42), links.UNSUBSCRIBE),
        (lambda: links.open_token(signer, 42), links.CLICK),
    ],
)
def test_a_token_made_for_one_purpose_is_refused_for_another(make: object, purpose: str) -> None:
    token = make()  # type: ignore[operator]
    with pytest.raises(TokenError):
        signer.unsign(purpose, token)


def test_a_confirm_token_expires_after_its_max_age() -> None:
    issued = int(time.time()) - MAX_AGE - 5
    old_token = signer.sign(links.CONFIRM, 42, issued)
    with pytest.raises(TokenError, match="expired"):
        links.confirm_subscription_id(signer, old_token, MAX_AGE)
    fresh = signer.sign(links.CONFIRM, 42, int(time.time()) - MAX_AGE + 60)
    assert links.confirm_subscription_id(signer, fresh, MAX_AGE) == 42


def test_an_unsubscribe_token_never_expires() -> None:
    token = links.unsubscribe_token(signer, 42)
    assert token == links.unsubscribe_token(signer, 42)  # no time inside
    assert links.unsubscribe_subscription_id(signer, token) == 42


def test_tokens_signed_with_a_previous_key_still_work_after_rotation() -> None:
    before = Signer(OLD)
    unsubscribe = links.unsubscribe_token(before, 42)
    confirm = links.confirm_token(before, 43)
    rotated = Signer(KEY, [OLD])
    assert links.unsubscribe_subscription_id(rotated, unsubscribe) == 42
    assert links.confirm_subscription_id(rotated, confirm, MAX_AGE) == 43
    # New tokens are signed with the new key only.
    new = links.unsubscribe_token(rotated, 44)
    with pytest.raises(TokenError):
        links.unsubscribe_subscription_id(before, new)
    # Once the old key is dropped from BROADSHEET_PREVIOUS_SECRET_KEYS, old links stop.
    with pytest.raises(TokenError):
        links.unsubscribe_subscription_id(Signer(KEY), unsubscribe)


def test_the_settings_pass_previous_secret_keys_to_the_signer() -> None:
    from app.settings import load_settings

    s = load_settings(
        secret_key=KEY.decode(),
        previous_secret_keys=f" {OLD.decode()} , other-old-key ",
        _env_file=None,
    )
    assert s.previous_secrets == [OLD, b"other-old-key"]


class CountingCompare:
    def __init__(self) -> None:
        self.calls = 0
        self.real = hmac.compare_digest

    def __call__(self, a: bytes | str, b: bytes | str) -> bool:
        self.calls += 1
        return self.real(a, b)  # type: ignore[arg-type]


def test_token_macs_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = CountingCompare()
    monkeypatch.setattr(hmac, "compare_digest", counter)
    token = links.unsubscribe_token(signer, 42)
    links.unsubscribe_subscription_id(Signer(KEY, [OLD]), token)
    with pytest.raises(TokenError):
        links.unsubscribe_subscription_id(Signer(KEY, [OLD]), token[:-2] + "AA")
    assert counter.calls >= 3  # one per key tried, never ==


async def test_api_keys_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = CountingCompare()
    monkeypatch.setattr(hmac, "compare_digest", counter)

    class NoRows:
        async def execute(self, *args: object, **kwargs: object) -> object:
            raise AssertionError("not reached for the bootstrap key")

    key = "bootstrap-admin-key-0123456789"
    principal = await keys_service.authenticate(NoRows(), key, key)  # type: ignore[arg-type]
    assert principal is not None
    assert counter.calls == 1


def test_api_keys_carry_256_bits_and_are_stored_as_sha256() -> None:
    key = keys_service.generate_key()
    body = key.removeprefix(keys_service.KEY_PREFIX)
    assert len(body) >= 43  # 32 bytes in URL-safe base64
    assert keys_service.hash_key(key) != key
    assert len(keys_service.hash_key(key)) == 64
    assert len({keys_service.generate_key() for _ in range(1000)}) == 1000
