"""Settings from the environment (prefix `HERALD_`) and the YAML config file they point to."""

from __future__ import annotations

import logging
import os
import re
from datetime import time
from email.headerregistry import Address
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import yaml
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from herald.catalog.config import RecipientsConfig
from herald.consumers.topology import DEFAULT_RETRY_DELAYS_MS
from herald.errors import ConfigurationError
from herald.feedback.sendgrid import load_verification_key
from herald.renderers.branding import BrandConfig
from herald.renderers.unsubscribe_tokens import UnsubscribeTokens, parse_keys
from herald.senders.return_path import ReturnPath
from herald.service.env_names import unknown_variables, warning_text
from herald.service.logs import tell

# What a public base URL may hold: it goes into the List-Unsubscribe header as it is.
_URL_CHARACTERS = re.compile(r"^[A-Za-z0-9._~:/%-]+$")
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
_DOMAIN = re.compile(
    r"(?=.{1,253}\Z)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}"
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class RemindersConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    send_time_utc: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] = "08:00"

    @property
    def send_time(self) -> time:
        hours, minutes = self.send_time_utc.split(":")
        return time(int(hours), int(minutes))


# An SNS topic's ARN (any AWS partition), matched whole.
SNS_TOPIC_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:sns:[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}:[0-9]{12}:[A-Za-z0-9_-]{1,256}"
)


class SesFeedbackConfig(BaseModel):
    """`feedback.ses`: the SNS topics SES publishes bounces and complaints to (a message or a
    subscription for any other topic is refused), and the CA bundle that the HTTPS fetches of
    SNS signing certificates trust (default: the system's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topics: Annotated[list[str], Field(min_length=1, max_length=100)]
    ca_file: Path | None = None

    @field_validator("topics")
    @classmethod
    def _topic_arns(cls, value: list[str]) -> list[str]:
        for arn in value:
            if SNS_TOPIC_ARN.fullmatch(arn) is None:
                raise ValueError(f"not an SNS topic ARN: {arn!r}")
        return value

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value


class FeedbackConfig(BaseModel):
    """`feedback`: the providers whose webhooks the public listener accepts (issue 18)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ses: SesFeedbackConfig | None = None


class ConfigFile(BaseModel):
    """The file named by `HERALD_CONFIG` (NOTIFICATIONS.md 3.3, 3.4 rule 6, 4.2 rule 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recipients: RecipientsConfig = Field(default_factory=dict)
    brand: BrandConfig = Field(default_factory=BrandConfig)
    reminders: RemindersConfig = Field(default_factory=RemindersConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_", extra="ignore", frozen=True)

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Tries of the first connection to the broker, 2 s apart, before `herald run` gives up.
    amqp_connect_attempts: int = Field(default=30, ge=1, le=1000)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    # Without a display name, the From header shows the brand (`brand.default`, or a branded
    # partner's name); a display name given here is kept for unbranded mail.
    smtp_from: str = "notifications@herald.localhost"
    smtp_pool_size: int = Field(default=4, ge=1, le=64)
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    smtp_retry_base_seconds: float = Field(default=1.0, gt=0)
    smtp_auth_probe_seconds: float = Field(default=30.0, gt=0)
    smtp_send_budget_seconds: float = Field(default=120.0, gt=0, le=600)
    # Sends per second per process for the whole SMTP pool; unset: unlimited (issue 18).
    smtp_max_rate: float | None = Field(default=None, gt=0)
    # The loop after the 250 (issue 18): VERP envelope senders on this domain, signed with the
    # secret; the inbound SMTP listener for DSN/ARF reports; the public listener for webhooks.
    bounce_domain: str | None = None
    bounce_secret: SecretStr | None = None
    bounce_smtp_host: str = "0.0.0.0"  # noqa: S104 (reports come from the internet's MTAs)
    bounce_smtp_port: int | None = Field(default=None, ge=0, le=65535)
    bounce_max_message_bytes: int = Field(default=1_048_576, ge=10_000, le=50_000_000)
    public_http_host: str = "0.0.0.0"  # noqa: S104 (webhooks and pages face the internet)
    public_http_port: int | None = Field(default=None, ge=0, le=65535)
    # SendGrid's Event Webhook verification key (a public key: base64 DER, P-256).
    sendgrid_verification_key: str | None = None
    # Unsubscribe links (issue 19): the pages' public origin and the token keys (`id:secret`,
    # comma-separated, the first signs). Both or neither: without them no email carries
    # List-Unsubscribe or the unsubscribe footer.
    public_base_url: str | None = None
    unsubscribe_keys: SecretStr | None = None
    database_url: str = "sqlite:///herald.db"
    http_host: str = "0.0.0.0"  # noqa: S104 (metrics and probes must be reachable)
    http_port: int = Field(default=9464, ge=0, le=65535)
    config: Path | None = None
    scheduler_interval_seconds: float = Field(default=60.0, gt=0)
    queue_watch_interval_seconds: float = Field(default=15.0, gt=0)
    prefetch: int = Field(default=64, ge=1, le=10_000)
    shutdown_grace_seconds: float = Field(default=25.0, ge=0)
    requeue_base_seconds: float = Field(default=1.0, gt=0)
    # Delays of the broker-side retry queues, one queue per delay and domain (issue 5).
    retry_delays_ms: tuple[int, ...] = DEFAULT_RETRY_DELAYS_MS
    dedup_retention_days: int = Field(default=8, ge=7)
    log_level: str = "INFO"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level == "WARN":  # logging's alias
            level = "WARNING"
        if level not in LOG_LEVELS:
            raise ValueError(f"unknown level {value!r}; one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("smtp_from")
    @classmethod
    def _single_address(cls, value: str) -> str:
        addresses = getaddresses([value])
        if (
            len(addresses) != 1
            or "@" not in addresses[0][1]
            or any(char in value for char in "\r\n")
        ):
            raise ValueError("must be one email address, optionally with a display name")
        return value

    @field_validator("bounce_domain")
    @classmethod
    def _domain_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if _DOMAIN.fullmatch(value) is None:
            raise ValueError("must be a domain name such as bounces.example.com")
        return value.lower()

    @field_validator("sendgrid_verification_key")
    @classmethod
    def _p256_key(cls, value: str | None) -> str | None:
        if value is not None:
            load_verification_key(value)
        return value

    @property
    def sendgrid_key(self) -> EllipticCurvePublicKey | None:
        key = self.sendgrid_verification_key
        return None if key is None else load_verification_key(key)

    @field_validator("public_base_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        local = parts.scheme == "http" and (parts.hostname or "") in _LOCAL_HOSTS
        if (
            not _URL_CHARACTERS.match(value)
            or not parts.netloc
            or parts.query
            or parts.fragment
            or not (parts.scheme == "https" or local)
        ):
            raise ValueError(
                "must be an https URL without query or fragment, such as "
                "https://notify.example.com (http only for localhost)"
            )
        return value.rstrip("/")

    @field_validator("unsubscribe_keys")
    @classmethod
    def _token_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_keys(value.get_secret_value())  # a ValueError names the problem, no secret
        return value

    @property
    def unsubscribe_tokens(self) -> UnsubscribeTokens | None:
        if self.unsubscribe_keys is None:
            return None
        return UnsubscribeTokens.from_setting(self.unsubscribe_keys.get_secret_value())

    @model_validator(mode="after")
    def _unsubscribe_settings_together(self) -> Settings:
        if (self.public_base_url is None) != (self.unsubscribe_keys is None):
            raise ValueError(
                "HERALD_PUBLIC_BASE_URL and HERALD_UNSUBSCRIBE_KEYS go together (unsubscribe "
                "links need both)"
            )
        return self

    @model_validator(mode="after")
    def _bounce_settings_together(self) -> Settings:
        if self.bounce_domain is not None and not (
            self.bounce_secret and self.bounce_secret.get_secret_value()
        ):
            raise ValueError("HERALD_BOUNCE_DOMAIN needs HERALD_BOUNCE_SECRET (the token key)")
        if self.bounce_smtp_port is not None and self.bounce_domain is None:
            raise ValueError("HERALD_BOUNCE_SMTP_PORT needs HERALD_BOUNCE_DOMAIN")
        if self.sendgrid_verification_key is not None and self.public_http_port is None:
            raise ValueError("HERALD_SENDGRID_VERIFICATION_KEY needs HERALD_PUBLIC_HTTP_PORT")
        return self

    @property
    def return_path(self) -> ReturnPath | None:
        if self.bounce_domain is None or self.bounce_secret is None:
            return None
        return ReturnPath(self.bounce_domain, self.bounce_secret.get_secret_value().encode())

    @field_validator("retry_delays_ms")
    @classmethod
    def _ascending_delays(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(delay < 100 for delay in value) or list(value) != sorted(value):
            raise ValueError("must be ascending delays of at least 100 ms")
        return value

    @property
    def sender(self) -> Address:
        name, address = parseaddr(self.smtp_from)
        return Address(display_name=name, addr_spec=address)


def load_settings() -> Settings:
    """The settings from the environment; a warning for each `HERALD_*` variable no setting
    reads (a typo), once per process."""
    _warn_unknown_variables()
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError(_describe("environment (HERALD_*)", exc, env=True)) from None


_warned: set[str] = set()


def _warn_unknown_variables() -> None:
    for name, suggestion in unknown_variables(os.environ, Settings.model_fields):
        if name not in _warned:
            _warned.add(name)
            tell(
                logging.WARNING,
                warning_text(name, suggestion),
                variable=name,
                suggestion=suggestion,
            )


def load_config_file(path: Path | None) -> ConfigFile:
    if path is None:
        return ConfigFile()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"HERALD_CONFIG: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"HERALD_CONFIG: {path} is not valid YAML: {exc}") from None
    try:
        return ConfigFile.model_validate(raw or {})
    except ValidationError as exc:
        raise ConfigurationError(_describe(f"HERALD_CONFIG {path}", exc)) from None


def _describe(where: str, exc: ValidationError, env: bool = False) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if not location:  # a rule over several settings names them itself
            problems.append(message)
            continue
        if env:
            location = "HERALD_" + location.upper()
        problems.append(f"{location}: {message}")
    return f"invalid {where}: " + "; ".join(problems)
