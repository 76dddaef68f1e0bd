"""Unsubscribe tokens (issue 19): signed and encrypted, verified without a database, rotated by
key id, valid for 365 days, and the `HERALD_UNSUBSCRIBE_KEYS` setting checked at start."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest

from herald.catalog.optional import UnsubscribeScope
from herald.errors import ConfigurationError
from herald.renderers.unsubscribe_tokens import (
    VALIDITY,
    InvalidUnsubscribeToken,
    UnsubscribeTokens,
    parse_keys,
)
from herald.service.settings import load_settings

OLD = "k1:" + "o" * 40
NEW = "k2:" + "n" * 40
ADDRESS = "Renewals@BluePeak.example"
SCOPE = UnsubscribeScope("renewals", "org-1204")
ISSUED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = ISSUED) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def tokens(setting: str, clock: Clock | None = None) -> UnsubscribeTokens:
    return UnsubscribeTokens.from_setting(setting, clock or Clock())


def reason(verifier: UnsubscribeTokens, token: str) -> str:
    with pytest.raises(InvalidUnsubscribeToken) as raised:
        verifier.verify(token)
    return raised.value.reason


def test_a_token_verifies_to_what_it_was_issued_for() -> None:
    issuer = tokens(OLD)
    token = issuer.issue(ADDRESS, SCOPE)
    subject = issuer.verify(token)
    assert (subject.address, subject.scope, subject.key_id) == (ADDRESS, SCOPE, "k1")
    assert subject.issued_at == ISSUED


def test_a_token_is_url_safe_prefixed_by_its_key_id_and_hides_the_address() -> None:
    token = tokens(OLD).issue(ADDRESS, SCOPE)
    assert re.fullmatch(r"k1\.[A-Za-z0-9_-]+", token)
    body = token.split(".", 1)[1]
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    for secret in (ADDRESS, ADDRESS.lower(), "BluePeak", "Renewals", "org-1204", "renewals"):
        assert secret.encode() not in raw
        assert secret.lower() not in token.lower()


def test_two_tokens_for_the_same_subject_differ() -> None:
    issuer = tokens(OLD)
    assert issuer.issue(ADDRESS, SCOPE) != issuer.issue(ADDRESS, SCOPE)  # random IV


@pytest.mark.parametrize("position", [3, 10, 40, 80, -5, -1])
def test_a_tampered_token_fails(position: int) -> None:
    issuer = tokens(OLD)
    token = issuer.issue(ADDRESS, SCOPE)
    changed = "A" if token[position] != "A" else "B"
    tampered = (
        token[:position] + changed + token[position + 1 :]
        if position != -1
        else token[:-1] + changed
    )
    assert reason(issuer, tampered) in ("invalid", "malformed")


@pytest.mark.parametrize("keep", [3, 20, 100, -1, -4])
def test_a_truncated_token_fails(keep: int) -> None:
    issuer = tokens(OLD)
    token = issuer.issue(ADDRESS, SCOPE)
    assert reason(issuer, token[:keep]) in ("invalid", "malformed")


def test_the_key_id_alone_or_nothing_fails() -> None:
    issuer = tokens(OLD)
    for token in ("", "k1", "k1.", ".", "k1.!!!!", "ünï.abc", "k 1.abc"):
        assert reason(issuer, token) in ("invalid", "malformed")


def test_a_token_of_another_key_under_the_same_id_fails() -> None:
    token = tokens("k1:" + "x" * 40).issue(ADDRESS, SCOPE)
    assert reason(tokens(OLD), token) == "invalid"


def test_a_token_whose_key_id_was_swapped_fails() -> None:
    both = tokens(f"{NEW},{OLD}")
    token = both.issue(ADDRESS, SCOPE)
    assert token.startswith("k2.")
    assert reason(both, "k1." + token.split(".", 1)[1]) == "invalid"


def test_after_rotation_the_new_key_signs_and_the_old_one_still_verifies() -> None:
    old_token = tokens(OLD).issue(ADDRESS, SCOPE)
    rotated = tokens(f"{NEW}, {OLD}")
    assert rotated.verify(old_token).key_id == "k1"
    new_token = rotated.issue(ADDRESS, SCOPE)
    assert new_token.startswith("k2.")
    assert rotated.verify(new_token).address == ADDRESS


def test_a_removed_key_no_longer_verifies() -> None:
    old_token = tokens(OLD).issue(ADDRESS, SCOPE)
    assert reason(tokens(NEW), old_token) == "unknown_key"


def test_a_token_is_valid_for_365_days_and_then_expires() -> None:
    clock = Clock()
    issuer = tokens(OLD, clock)
    token = issuer.issue(ADDRESS, SCOPE)
    assert timedelta(days=365) == VALIDITY
    clock.now = ISSUED + timedelta(days=180)
    assert issuer.verify(token).address == ADDRESS
    clock.now = ISSUED + VALIDITY - timedelta(seconds=1)
    assert issuer.verify(token).address == ADDRESS
    clock.now = ISSUED + VALIDITY + timedelta(seconds=2)
    assert reason(issuer, token) == "expired"


def test_a_token_from_the_future_fails() -> None:
    clock = Clock(ISSUED + timedelta(hours=1))
    token = tokens(OLD, clock).issue(ADDRESS, SCOPE)
    assert reason(tokens(OLD, Clock()), token) == "invalid"


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("", "entry 1 must be id:secret"),
        ("k1", "entry 1 must be id:secret"),
        ("k1:short", "at least 32 characters"),
        (f"{OLD},", "entry 2 must be id:secret"),
        (f"{OLD},{OLD}", "listed twice"),
        ("bad id:" + "s" * 40, "entry 1 must be id:secret"),
        (":" + "s" * 40, "entry 1 must be id:secret"),
        ("k.1:" + "s" * 40, "entry 1 must be id:secret"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it_and_no_secret(setting: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        UnsubscribeTokens.from_setting(setting)
    message = str(raised.value)
    assert message.startswith("HERALD_UNSUBSCRIBE_KEYS: ")
    assert problem in message
    assert "\n" not in message
    assert "s" * 40 not in message and "o" * 40 not in message


def test_the_setting_is_checked_when_the_settings_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_UNSUBSCRIBE_KEYS", "k1:short-secret")
    monkeypatch.setenv("HERALD_PUBLIC_BASE_URL", "https://notify.example.com")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert "HERALD_UNSUBSCRIBE_KEYS" in str(raised.value)
    assert "short-secret" not in str(raised.value)
    assert "\n" not in str(raised.value)


def test_parse_keys_keeps_the_order() -> None:
    assert [key.key_id for key in parse_keys(f"{NEW},{OLD}")] == ["k2", "k1"]


@pytest.mark.parametrize(
    "url",
    [
        "http://notify.example.com",
        "https://notify.example.com/?x=1",
        "https://notify.example.com/#top",
        "https://notify.example.com/a b",
        "https://notify.example.com/>",
        "notify.example.com",
    ],
)
def test_the_public_base_url_must_be_a_plain_https_url(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("HERALD_UNSUBSCRIBE_KEYS", OLD)
    monkeypatch.setenv("HERALD_PUBLIC_BASE_URL", url)
    with pytest.raises(ConfigurationError, match="HERALD_PUBLIC_BASE_URL"):
        load_settings()


def test_the_two_settings_go_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_UNSUBSCRIBE_KEYS", OLD)
    with pytest.raises(ConfigurationError, match="go together"):
        load_settings()
    monkeypatch.delenv("HERALD_UNSUBSCRIBE_KEYS")
    monkeypatch.setenv("HERALD_PUBLIC_BASE_URL", "https://notify.example.com")
    with pytest.raises(ConfigurationError, match="go together"):
        load_settings()


def test_valid_settings_give_the_tokens_and_the_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_UNSUBSCRIBE_KEYS", f"{NEW},{OLD}")
    monkeypatch.setenv("HERALD_PUBLIC_BASE_URL", "https://notify.example.com/herald/")
    settings = load_settings()
    assert settings.public_base_url == "https://notify.example.com/herald"
    issued = settings.unsubscribe_tokens
    assert issued is not None and issued.issue(ADDRESS, SCOPE).startswith("k2.")
    assert OLD.split(":")[1] not in repr(settings)


def test_without_the_settings_there_are_no_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HERALD_UNSUBSCRIBE_KEYS", raising=False)
    monkeypatch.delenv("HERALD_PUBLIC_BASE_URL", raising=False)
    assert load_settings().unsubscribe_tokens is None
