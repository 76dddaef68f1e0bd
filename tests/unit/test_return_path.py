"""The VERP return path: short, lower-case, signed tokens that name a delivery; forged,
altered, foreign-domain and malformed addresses name nothing; the SMTP sender uses it as MAIL
FROM only when a bounce domain is configured."""

from __future__ import annotations

import pytest

from herald.renderers.email import OutgoingEmail
from herald.senders.return_path import ReturnPath
from herald.senders.smtp import SmtpOptions, SmtpSender

KEY = "3f2a" * 16


def test_the_address_is_short_signed_and_names_the_delivery() -> None:
    path = ReturnPath("Bounces.Example.COM", b"secret")
    address = path.address(KEY)
    local, _, domain = address.partition("@")
    assert domain == "bounces.example.com"
    assert local.startswith("bounces+") and len(local) == 40 and local == local.lower()
    assert path.delivery_prefix(address) == KEY[:20]
    # Servers may fold the case of the local part or add angle brackets; still ours.
    assert path.delivery_prefix(f"<{address.upper()}>") == KEY[:20]


@pytest.mark.parametrize(
    "forge",
    [
        lambda a: a.replace("bounces+3f2a", "bounces+3f2b", 1),  # another delivery, same tag
        lambda a: (
            a[: a.index("@") - 1] + ("0" if a[a.index("@") - 1] != "0" else "1") + a[a.index("@") :]
        ),  # another tag
        lambda a: a.replace("@bounces.example.com", "@example.com"),
        lambda a: a.replace("bounces+", "bounce+"),
        lambda a: a.replace("bounces+", "bounces+x"),
        lambda a: "bounces@bounces.example.com",
        lambda a: "",
    ],
)
def test_forged_or_malformed_addresses_name_nothing(forge: object) -> None:
    path = ReturnPath("bounces.example.com", b"secret")
    assert callable(forge)
    assert path.delivery_prefix(forge(path.address(KEY))) is None


def test_another_secret_does_not_verify() -> None:
    address = ReturnPath("bounces.example.com", b"one").address(KEY)
    assert ReturnPath("bounces.example.com", b"two").delivery_prefix(address) is None


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        ReturnPath("bounces.example.com", b"")


def test_the_sender_uses_the_return_path_only_when_configured() -> None:
    email = OutgoingEmail(
        notification="order_placed",
        key=KEY,
        envelope_from="notifications@example.com",
        envelope_to="mia@example.org",
        message_id="<x@example.com>",
        subject="s",
        content=b"",
    )
    assert SmtpSender(SmtpOptions()).envelope_sender(email) == "notifications@example.com"
    path = ReturnPath("bounces.example.com", b"secret")
    sender = SmtpSender(SmtpOptions(), return_path=path)
    assert sender.envelope_sender(email) == path.address(KEY)
