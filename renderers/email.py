"""Build the outgoing email of one delivery: brand and locale, context, templates, CSS inlined,
then the `multipart/alternative` message bytes (`renderers.mime`), every header value cleaned
first.

A partner's branding changes the From display name and adds its Reply-To (unbranded mail shows
the brand's name unless `HERALD_SMTP_FROM` gives a display name); the From address stays
the operator's verified sending address, so SPF, DKIM and DMARC alignment hold.

An email its recipient may unsubscribe from also carries `List-Unsubscribe`,
`List-Unsubscribe-Post` and the layouts' footer line (`renderers/unsubscribe_headers.py`) when
unsubscribe links are configured; the templates see `unsubscribe` (None for mandatory mail)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.utils import format_datetime
from typing import Any

from herald.catalog.plan import Delivery
from herald.catalog.recipients import configured_category
from herald.renderers.branding import Brand, BrandConfig
from herald.renderers.environment import Templates
from herald.renderers.headers import MAX_SUBJECT, clean_header_text
from herald.renderers.mime import build_alternative, encode_address, encode_text_header
from herald.renderers.styles import EmailStyles
from herald.renderers.unsubscribe_headers import Unsubscribe, UnsubscribeLinks
from herald.schemas.envelope import Event


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """A rendered email ready for the wire; the sender never parses it again."""

    notification: str
    key: str
    envelope_from: str
    envelope_to: str
    message_id: str
    subject: str
    content: bytes
    # Provenance, recorded in the ledger: the templates' content hash and locale, the brand key.
    template_version: str = ""
    locale: str = "en"
    brand: str = "default"


class EmailRenderer:
    def __init__(
        self,
        templates: Templates,
        brand: BrandConfig,
        sender: Address,
        unsubscribe: UnsubscribeLinks | None = None,
    ) -> None:
        self._templates = templates
        self._unsubscribe = unsubscribe
        self._brand = brand
        self._sender = sender
        self._styles = EmailStyles(templates.stylesheet)
        self._message_id_domain = sender.domain or "herald.invalid"
        self._from_header = encode_address(
            clean_header_text(sender.display_name, 200), sender.addr_spec
        )

    def message_id(self, key: str) -> str:
        """Derived from the ledger key alone, so every resend of an instance carries the same
        Message-ID (NOTIFICATIONS.md 6.1)."""
        return f"<{key[:40]}@{self._message_id_domain}>"

    def context(
        self, event: Event, delivery: Delivery, extras: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return self._context(event, delivery, self._brand.brand_for(event.data), extras)

    def _context(
        self,
        event: Event,
        delivery: Delivery,
        brand: Brand,
        extras: dict[str, Any] | None,
        unsubscribe: Unsubscribe | None = None,
    ) -> dict[str, Any]:
        data = event.data
        context: dict[str, Any] = {name: getattr(data, name) for name in type(data).model_fields}
        changes = context.get("changes")
        context.update(
            event=event,
            notification=delivery.spec.id,
            recipient=delivery.recipient,
            brand=brand.name,
            branding=brand,
            links=self._brand.links,
            change_count=len(changes) if isinstance(changes, list) else 0,
            unsubscribe=unsubscribe,
            # The configured list's category when this is a copy to a list (not to a person the
            # event is about): the templates then say whom it is about and why the list has it.
            list_copy=configured_category(delivery.recipient.role),
        )
        if extras:
            context.update(extras)
        return context

    def render(
        self, event: Event, delivery: Delivery, extras: dict[str, Any] | None = None
    ) -> OutgoingEmail:
        brand = self._brand.brand_for(event.data)
        recipient = delivery.recipient
        unsubscribe = None
        if self._unsubscribe is not None:
            unsubscribe = self._unsubscribe.for_delivery(
                delivery, event.data, brand.name if brand.is_partner else None
            )
        rendered = self._templates.render(
            delivery.spec.id,
            self._context(event, delivery, brand, extras, unsubscribe),
            recipient.locale,
        )
        subject = clean_header_text(rendered.subject, MAX_SUBJECT)
        message_id = self.message_id(delivery.key)
        headers = [
            ("From", self._from(brand)),
            ("To", encode_address(clean_header_text(recipient.name, 200), recipient.email)),
            ("Subject", encode_text_header(subject)),
            ("Date", format_datetime(datetime.now(UTC))),
            ("Message-ID", message_id),
            ("Content-Language", rendered.locale),
            ("Auto-Submitted", "auto-generated"),
            ("X-Herald-Notification", delivery.spec.id),
        ]
        if unsubscribe is not None:
            headers.extend(unsubscribe.headers())
        if brand.reply_to:
            headers.insert(
                1,
                (
                    "Reply-To",
                    encode_address(clean_header_text(brand.name, 200), brand.reply_to, "Reply-To"),
                ),
            )
        content = build_alternative(
            headers,
            rendered.text.strip() + "\n",
            self._styles.inline(rendered.html, brand),
            boundary=f"=_herald_{delivery.key[:32]}",
        )
        return OutgoingEmail(
            notification=delivery.spec.id,
            key=delivery.key,
            envelope_from=self._sender.addr_spec,
            envelope_to=recipient.email,
            message_id=message_id,
            subject=subject,
            content=content,
            template_version=rendered.version,
            locale=rendered.locale,
            brand=brand.key,
        )

    def _from(self, brand: Brand) -> str:
        """The operator's address; a branded partner's name as its display name, else the
        operator's display name if `HERALD_SMTP_FROM` gives one, else the brand's name."""
        if not brand.is_partner and self._sender.display_name:
            return self._from_header
        return encode_address(clean_header_text(brand.name, 200), self._sender.addr_spec)
