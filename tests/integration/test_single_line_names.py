"""A name with line breaks, through the real broker to the real SMTP server: the text part
shows it on one line (no spoofed line of its own), and a multi-line comment keeps its lines."""

from __future__ import annotations

import pytest

from herald.schemas.examples import load_example
from herald.service.app import Service
from tests import support
from tests.conftest import SmtpServer
from tests.integration.conftest import Broker

pytestmark = pytest.mark.integration

SPOOF = "Jonas\n\nYour password was reset, click http://evil.example/reset"


async def test_a_name_with_line_breaks_is_one_line_in_the_sent_text_part(
    service: Service, broker: Broker, smtp_server: SmtpServer
) -> None:
    document = load_example("orders.order.placed")
    document["id"] = "spoofed-name-1"
    document["data"]["order"]["placed_by"]["name"] = SPOOF
    await broker.publish(document)
    received = await smtp_server.wait_for(2)
    (mail,) = [mail for mail in received if mail.recipients == ["jonas@bluepeak.example"]]
    text = support.text_part(mail.message)
    assert not any(line.startswith("Your password") for line in text.splitlines())
    assert "Hello Jonas Your password was reset, click http://evil.example/reset," in text
    assert "Jonas\n" not in support.html_part(mail.message)


async def test_a_multi_line_comment_keeps_its_lines(
    service: Service, broker: Broker, smtp_server: SmtpServer
) -> None:
    document = load_example("orders.quote.change_requested")
    document["id"] = "multi-line-comment-1"
    document["data"]["comment"] = "Please change:\n- 20 seats\n- annual billing"
    await broker.publish(document)
    (mail, *_) = await smtp_server.wait_for(1)
    lines = support.text_part(mail.message).splitlines()
    assert "  - 20 seats" in lines and "  - annual billing" in lines
