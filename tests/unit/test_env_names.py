"""Typo'd `HERALD_*` variables: which names are unknown, the closest setting suggested, and the
names read outside the settings model left alone."""

from __future__ import annotations

from herald.service.env_names import unknown_variables, warning_text
from herald.service.settings import Settings

SETTINGS = list(Settings.model_fields)


def test_a_typo_gets_the_closest_setting() -> None:
    environ = {
        "HERALD_SMPT_HOST": "mail.example",
        "HERALD_DATABSE_URL": "sqlite:///x.db",
        "HERALD_LOGLEVEL": "DEBUG",
        "HERALD_HTTP_PROT": "9464",
    }
    assert unknown_variables(environ, SETTINGS) == [
        ("HERALD_DATABSE_URL", "HERALD_DATABASE_URL"),
        ("HERALD_HTTP_PROT", "HERALD_HTTP_PORT"),
        ("HERALD_LOGLEVEL", "HERALD_LOG_LEVEL"),
        ("HERALD_SMPT_HOST", "HERALD_SMTP_HOST"),
    ]


def test_a_name_like_no_setting_gets_no_suggestion() -> None:
    assert unknown_variables({"HERALD_XYZZY": "1"}, SETTINGS) == [("HERALD_XYZZY", None)]
    assert warning_text("HERALD_XYZZY", None) == (
        "HERALD_XYZZY is not a Herald setting and is ignored"
    )


def test_settings_other_variables_and_names_read_elsewhere_are_not_warned_about() -> None:
    environ = {
        "HERALD_SMTP_HOST": "mail.example",
        "herald_smtp_port": "25",  # pydantic-settings reads names in any case
        "HERALD_OPERATOR": "sre",
        "HERALD_FAULT_AT": "after_250",
        "HERALD_UPDATE_GOLDEN": "1",
        "HERALD_SCREENSHOTS": "build/shots",
        "HERALD_TEST_POSTGRES": "postgresql://postgres@127.0.0.1/postgres",
        "HERALD_WEBHOOK_SECRET_BLUEPEAK_CATALOG": "s",
        "PATH": "/usr/bin",
        "SMTP_HOST": "x",
    }
    assert unknown_variables(environ, SETTINGS) == []


def test_every_setting_is_known() -> None:
    environ = {f"HERALD_{name.upper()}": "x" for name in SETTINGS}
    assert unknown_variables(environ, SETTINGS) == []
