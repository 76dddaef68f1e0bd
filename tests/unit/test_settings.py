"""Settings and the config file: the shipped example loads; mistakes name their field."""

from __future__ import annotations

from pathlib import Path

import pytest

from herald.errors import ConfigurationError
from herald.service.settings import Settings, load_config_file

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "config" / "herald.example.yaml"


def test_the_example_config_file_loads() -> None:
    config = load_config_file(EXAMPLE)
    assert config.recipients["org-1204"]["orders"].emails == ["order-copies@bluepeak.example"]
    assert config.recipients["org-1204"]["catalog_changes"].webhooks[0].secret_name == (
        "bluepeak-catalog"
    )
    partner = config.brand.partners["org-1204"]
    assert (partner.name, partner.primary_colour, partner.reply_to) == (
        "BluePeak Portal",
        "#0f766e",
        "support@bluepeak.example",
    )
    assert (config.reminders.send_time.hour, config.reminders.send_time.minute) == (8, 0)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("recipients:\n  org-1:\n    invoices:\n      emails: []\n", "recipients.org-1.invoices"),
        ("reminders:\n  send_time_utc: '25:00'\n", "reminders.send_time_utc"),
        ("brand:\n  colour: red\n", "brand.colour"),
        ("brand:\n  primary_colour: red\n", "brand.primary_colour"),
        (
            "brand:\n  partners:\n    p-1: {name: X, primary_colour: '#12345'}\n",
            "brand.partners.p-1.primary_colour",
        ),
        (
            "brand:\n  partners:\n    p-1: {name: X, logo_url: 'http://x.example/l.png'}\n",
            "brand.partners.p-1.logo_url",
        ),
        ("brand:\n  partners:\n    p-1: {name: X, reply_to: 'not an address'}\n", "reply_to"),
        ("brand:\n  partners:\n    p-1: {logo_url: 'https://x.example/l.png'}\n", "name"),
        (
            "recipients:\n  org-1:\n    catalog_changes:\n      webhooks:\n"
            "        - {url: 'http://insecure.example', secret_name: x}\n",
            "recipients.org-1.catalog_changes.webhooks.0.url",
        ),
        ("feedback:\n  ses:\n    topics: ['arn:aws:sns:us-east-1:1:x']\n", "feedback.ses.topics"),
        (
            "feedback:\n  ses:\n    topics: ['arn:aws:sns:us-east-1:123456789012:x\\n']\n",
            "feedback.ses.topics",
        ),
        ("feedback:\n  ses:\n    topics: []\n", "feedback.ses.topics"),
        (
            "feedback:\n  ses:\n    topics: ['arn:aws:sns:us-east-1:123456789012:x']\n"
            "    ca_file: /nonexistent/ca.pem\n",
            "feedback.ses.ca_file",
        ),
        ("feedback:\n  sendgrid: {}\n", "feedback.sendgrid"),
    ],
)
def test_config_mistakes_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "herald.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=field.replace(".", r"\.")):
        load_config_file(path)


def test_settings_reject_a_from_header_with_two_addresses() -> None:
    with pytest.raises(ValueError, match="smtp_from"):
        Settings(smtp_from="a@example.com, b@example.com")


def test_retry_delays_must_ascend() -> None:
    with pytest.raises(ValueError, match="retry_delays_ms"):
        Settings(retry_delays_ms=(5000, 1000))
