"""The rules behind outgoing webhooks (NOTIFICATIONS.md 6.3, draft 2) that need no network:
reading `Retry-After`, choosing the broker's retry queue from it, the Standard Webhooks key of
a configured secret, header values kept to one line, and secrets that stop the start."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from standardwebhooks.webhooks import Webhook

from herald.consumers.copies import retry_delay_ms
from herald.errors import ConfigurationError, PermanentWebhookError
from herald.senders.retry_after import retry_after_seconds
from herald.senders.webhook import load_secrets, secret_variable, status_class
from herald.senders.webhook_signing import checked_headers, standard_key, standard_signature

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        ("Mon, 07 Dec 2026 12:00:30 -0000", 30.0),  # RFC 5322 "-0000": UTC
        (format_datetime(NOW - timedelta(hours=1), usegmt=True), 0.0),  # past: now
        ("86400", 86400.0),  # the whole retry window, still taken
    ],
)
def test_retry_after_is_read_as_delta_seconds_or_http_date(value: str, seconds: float) -> None:
    assert retry_after_seconds(value, NOW) == seconds


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "-5",
        "1.5",
        "soon",
        "86401",  # longer than the 24-hour retry window: ignored
        "99999999999999999999",
        format_datetime(NOW + timedelta(days=2), usegmt=True),
        "\u0661\u0662",  # Arabic-Indic digits are not delta-seconds
    ],
)
def test_unusable_or_absurd_retry_after_is_ignored(value: str | None) -> None:
    assert retry_after_seconds(value, NOW) is None


DELAYS = (200, 1_500, 3_000)


@pytest.mark.parametrize(
    ("attempt", "not_before_ms", "chosen"),
    [
        (1, None, 200),  # the attempt's own delay without Retry-After
        (2, None, 1_500),
        (9, None, 3_000),
        (1, 100, 200),  # a Retry-After shorter than the backoff changes nothing
        (1, 200, 200),
        (1, 1_000, 1_500),  # the smallest configured delay that covers it
        (1, 1_501, 3_000),
        (2, 1_200, 1_500),
        (1, 60_000, 3_000),  # bounded by the largest: only those queues exist
        (3, 1_000, 3_000),  # never shorter than the backoff
    ],
)
def test_the_retry_queue_honours_retry_after(
    attempt: int, not_before_ms: int | None, chosen: int
) -> None:
    assert retry_delay_ms(DELAYS, attempt, not_before_ms) == chosen


def test_a_whsec_secret_is_keyed_as_the_standard_library_reads_it() -> None:
    raw = bytes(range(32))
    configured = "whsec_" + base64.b64encode(raw).decode()
    assert standard_key(configured.encode()) == raw
    # Unpadded base64 is accepted too, as by the standard's libraries.
    assert standard_key(configured.rstrip("=").encode()) == raw
    stamp = int(NOW.timestamp())
    header = standard_signature(raw, "msg_1", stamp, b'{"a":1}')
    assert header == Webhook(configured).sign("msg_1", NOW, b'{"a":1}')


def test_a_plain_secret_is_keyed_with_its_bytes() -> None:
    stamp = int(NOW.timestamp())
    header = standard_signature(standard_key(b"s3cret"), "msg_1", stamp, b"{}")
    assert header == Webhook(b"s3cret").sign("msg_1", NOW, b"{}")


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not base64!", "whsec_===="])
def test_a_malformed_whsec_secret_stops_the_start_naming_the_variable(secret: str) -> None:
    variable = secret_variable("bluepeak-catalog")
    with pytest.raises(ConfigurationError, match=variable) as raised:
        load_secrets(["bluepeak-catalog"], {variable: secret})
    assert "not base64" in str(raised.value) or "empty" in str(raised.value)


def test_the_error_about_a_malformed_secret_does_not_show_it() -> None:
    variable = secret_variable("bluepeak-catalog")
    with pytest.raises(ConfigurationError) as raised:
        load_secrets(["bluepeak-catalog"], {variable: "whsec_Sup3r-Secr3t?"})
    assert "Sup3r" not in str(raised.value)


@pytest.mark.parametrize(
    "value", ["a\r\nX-Injected: 1", "line\n", "\rx", "tab\there", "", " leading", "é"]
)
def test_header_values_must_be_one_printable_line(value: str) -> None:
    with pytest.raises(PermanentWebhookError, match="webhook-id"):
        checked_headers({"webhook-timestamp": "1", "webhook-id": value})


def test_status_classes_keep_the_retried_4xx_apart() -> None:
    assert [status_class(code) for code in (200, 204, 301, 400, 404, 408, 429, 500, 503)] == [
        "2xx",
        "2xx",
        "3xx",
        "4xx",
        "4xx",
        "408",
        "429",
        "5xx",
        "5xx",
    ]
