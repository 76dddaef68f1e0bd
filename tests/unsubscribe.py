"""What the unsubscribe tests share (issue 19): a Herald service with the public listener on a
port chosen before the start (the links in the emails name it), unsubscribe keys and a config
in which partner org-0900 (Nordic Distribution, the renewal example's partner) has a
`renewals` list address and its own brand colour; and readers for the emails it sends.

`subscriptions.plan.renewal_confirmed` (`plan_will_be_renewed`, RENEWAL_GROUP) goes to the
partner's account manager and the vendor account manager by role (mandatory mail) and to the
`renewals` list address (optional: List-Unsubscribe and the footer line)."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

from herald.service.app import Service, build_service
from tests.conftest import Received, SmtpServer
from tests.integration.conftest import service_settings

RENEWAL = "subscriptions.plan.renewal_confirmed"
PARTNER = "org-0900"
CATEGORY = "renewals"
SCOPE = f"category:{CATEGORY}/partner:{PARTNER}"
LISTED = "renewals@nordicdist.example"  # the partner's `renewals` list: may unsubscribe
ACCOUNT_MANAGER = "kim@nordicdist.example"  # the partner's account manager: by role
VENDOR_MANAGER = "sara.holm@operator.example"  # the vendor's account manager: by role
BRAND_NAME = "Nordic Portal"
BRAND_COLOUR = "#7c2d12"
KEYS = "e2e:unsubscribe-end-to-end-secret-0123456789"

CONFIG = f"""\
recipients:
  {PARTNER}:
    {CATEGORY}:
      emails: [{LISTED}]
brand:
  default: Cloud Portal
  primary_colour: "#1f3a5f"
  partners:
    {PARTNER}:
      display_name: {BRAND_NAME}
      primary_colour: "{BRAND_COLOUR}"
      footer: Nordic Distribution A/S, Vesterbrogade 1, 1620 København
"""

_BRACKETED = re.compile(r"^<(?P<url>[^<>]+)>$")


def free_port() -> int:
    """A port nobody listens on now (the public base URL must name it before the start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def unsubscribing_herald(
    amqp_url: str, smtp_server: SmtpServer, tmp_path: Path
) -> AsyncIterator[Service]:
    """Herald, started, with the public listener on 127.0.0.1 and unsubscribe links to it."""
    config = tmp_path / "herald.yaml"
    config.write_text(CONFIG, "utf-8")
    port = free_port()
    settings = service_settings(
        amqp_url,
        smtp_server,
        tmp_path,
        config=config,
        public_http_host="127.0.0.1",
        public_http_port=port,
        public_base_url=f"http://127.0.0.1:{port}",
        unsubscribe_keys=KEYS,
    )
    herald = await build_service(settings)
    await herald.start()
    try:
        yield herald
    finally:
        await herald.stop()


def base_url(service: Service) -> str:
    assert service.settings.public_base_url is not None
    return service.settings.public_base_url


def by_recipient(received: list[Received]) -> dict[str, EmailMessage]:
    """The emails, by their one envelope recipient (Herald sends each recipient its own)."""
    found: dict[str, EmailMessage] = {}
    for item in received:
        (recipient,) = item.recipients
        assert recipient not in found, f"{recipient} got two emails of one event"
        found[recipient] = item.message
    return found


def list_unsubscribe_url(message: EmailMessage) -> str:
    """The https (here http, localhost) URI of `List-Unsubscribe`, the one RFC 8058 POSTs to."""
    value = str(message["List-Unsubscribe"])
    uris = [_BRACKETED.match(part.strip()) for part in value.split(",")]
    urls = [match["url"] for match in uris if match is not None]
    assert urls and len(urls) == len(uris), f"not a List-Unsubscribe value: {value!r}"
    web_urls = [url for url in urls if url.startswith(("https://", "http://"))]
    assert web_urls, f"no web URI in List-Unsubscribe: {value!r}"
    return web_urls[0]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def html_links(message: EmailMessage) -> list[str]:
    """Every `<a href>` of the HTML part."""
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    parser = _Links()
    parser.feed(part.get_content())
    return parser.hrefs


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def preferences_link(message: EmailMessage, base: str) -> str:
    """The footer's link to the preferences page (the only link there to `{base}/preferences/`)."""
    (link,) = [href for href in html_links(message) if href.startswith(f"{base}/preferences/")]
    return link
