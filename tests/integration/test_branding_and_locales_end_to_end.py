"""A partner's branding and a German-speaking recipient, end to end: the event goes through the
real broker, Herald renders and sends it to a real SMTP server (aiosmtpd), and the ledger
records which templates, locale and brand each email was rendered with."""

from __future__ import annotations

from email.utils import parseaddr
from pathlib import Path

import pytest

from herald.renderers.environment import Templates
from herald.schemas.examples import load_example
from herald.service.app import build_service
from tests.conftest import SmtpServer
from tests.integration.conftest import Broker, service_settings, wait_for_metric

pytestmark = pytest.mark.integration

CONFIG = """\
brand:
  default: Operator Cloud
  partners:
    org-1204:
      display_name: BluePeak Portal
      logo_url: https://bluepeak.example/assets/logo.png
      primary_colour: "#0f766e"
      footer: BluePeak AV AB, Storgatan 1, 111 51 Stockholm
      reply_to: support@bluepeak.example
"""


async def test_a_branded_partner_and_an_austrian_recipient_get_their_email(
    amqp_url: str, smtp_server: SmtpServer, tmp_path: Path, broker: Broker
) -> None:
    config = tmp_path / "herald.yaml"
    config.write_text(CONFIG)
    herald = await build_service(service_settings(amqp_url, smtp_server, tmp_path, config=config))
    await herald.start()
    try:
        document = load_example("orders.order.placed")  # partner org-1204, a new license plan
        document["data"]["order"]["placed_by"]["locale"] = "de-AT"
        await broker.publish(document)
        emails = await smtp_server.wait_for(2)
        await wait_for_metric(herald, "herald_events_processed_total", 1, domain="orders")
        records = await herald.ledger.deliveries_of_event(document["source"], document["id"])
    finally:
        await herald.stop()

    assert {item.envelope_from for item in emails} == {"notifications@operator.example"}
    received = {item.recipients[0]: item.message for item in emails}
    german, english = received["jonas@bluepeak.example"], received["sara.holm@operator.example"]
    assert german["Subject"] == (
        "Auftragsbestätigung von BluePeak Portal (neu): PO-2025-004817 für Northwind Health"
    )
    assert english["Subject"] == (
        "Order confirmation from BluePeak Portal (new): PO-2025-004817 for Northwind Health"
    )
    assert (german["Content-Language"], english["Content-Language"]) == ("de", "en")
    for message in (german, english):
        # The operator's verified address, with the partner's name; replies go to the partner.
        assert parseaddr(str(message["From"])) == (
            "BluePeak Portal",
            "notifications@operator.example",
        )
        assert parseaddr(str(message["Reply-To"])) == (
            "BluePeak Portal",
            "support@bluepeak.example",
        )
        html = message.get_body(preferencelist=("html",)).get_content()
        assert "background-color: #0f766e" in html
        assert 'src="https://bluepeak.example/assets/logo.png"' in html
    german_text = german.get_body(preferencelist=("plain",)).get_content()
    assert "Bestelldatum: 2. Juni 2025" in german_text  # Babel, for de-AT
    assert "6.250,00 EUR" in german_text
    assert "BluePeak AV AB, Storgatan 1, 111 51 Stockholm" in german_text
    html = german.get_body(preferencelist=("html",)).get_content()
    assert '<html lang="de-AT">' in html

    templates = Templates()
    provenance = {
        record.message_id: record.provenance for record in records if record.status == "sent"
    }
    assert provenance[german["Message-ID"]] is not None
    assert provenance[english["Message-ID"]] is not None
    german_record, english_record = (
        provenance[german["Message-ID"]],
        provenance[english["Message-ID"]],
    )
    assert (german_record.locale, german_record.brand) == ("de", "org-1204")
    assert (english_record.locale, english_record.brand) == ("en", "org-1204")
    assert german_record.template_version == (
        templates.template_set("order_confirmation_new", "de").version
    )
    assert english_record.template_version == (
        templates.template_set("order_confirmation_new", "en").version
    )
