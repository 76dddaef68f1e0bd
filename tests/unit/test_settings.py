"""Settings and the config file: the shipped example loads; mistakes name their field."""

from __future__ import annotations

from pathlib import Path

import pytest

from herald.errors import ConfigurationError
from herald.settings import Settings, load_config_file

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "config" / "herald.example.yaml"


def test_the_example_config_file_loads() -> None:
    config = load_config_file(EXAMPLE)
    assert config.recipients["org-1204"]["orders"].emails == ["order-copies@bluepeak.example"]
    assert config.recipients["org-1204"]["catalog_changes"].webhooks[0].secret_name == (
        "bluepeak-catalog"
    )
    assert config.brand.partners["org-1204"].name == "BluePeak Portal"
    assert (config.reminders.send_time.hour, config.reminders.send_time.minute) == (8, 0)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("recipients:\n  org-1:\n    invoices:\n      emails: []\n", "recipients.org-1.invoices"),
        ("reminders:\n  send_time_utc: '25:00'\n", "reminders.send_time_utc"),
        ("brand:\n  colour: red\n", "brand.colour"),
        (
            "recipients:\n  org-1:\n    catalog_changes:\n      webhooks:\n"
            "        - {url: 'http://insecure.example', secret_name: x}\n",
            "recipients.org-1.catalog_changes.webhooks.0.url",
        ),
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
