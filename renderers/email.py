"""Build the outgoing email of one delivery: context, templates, then the `multipart/alternative`
message bytes (`renderers.mime`), every header value cleaned first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.utils import format_datetime
from typing import Any

from catalog.plan import Delivery
from renderers.branding import BrandConfig
from renderers.environment import Templates
from renderers.headers import MAX_SUBJECT, clean_header_text
from renderers.mime import build_alternative, encode_address, encode_text_header
from schemas.envelope import Event


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


class EmailRenderer:
    def __init__(
        self,
        templates: Templates,
        brand: BrandConfig,
        sender: Address,
    ) -> None:
        self._templates = templates
        self._brand = brand
        self._sender = sender
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
        data = event.data
        context: dict[str, Any] = {name: getattr(data, name) for name in type(data).model_fields}
        changes = context.get("changes")
        context.update(
            event=event,
            notification=delivery.spec.id,
            recipient=delivery.recipient,
            brand=self._brand.name_for(data),
            links=self._brand.links,
            change_count=len(changes) if isinstance(changes, list) else 0,
        )
        if extras:
            context.update(extras)
        return context

    def render(
        self, event: Event, delivery: Delivery, extras: dict[str, Any] | None = None
    ) -> OutgoingEmail:
        subject, text, html = self._templates.render(
            delivery.spec.id, self.context(event, delivery, extras)
        )
        subject = clean_header_text(subject, MAX_SUBJECT)
        recipient = delivery.recipient
        message_id = self.message_id(delivery.key)
        headers = [
            ("From", self._from_header),
            ("To", encode_address(clean_header_text(recipient.name, 200), recipient.email)),
            ("Subject", encode_text_header(subject)),
            ("Date", format_datetime(datetime.now(UTC))),
            ("Message-ID", message_id),
            ("Auto-Submitted", "auto-generated"),
            ("X-Herald-Notification", delivery.spec.id),
        ]
        content = build_alternative(
            headers, text.strip() + "\n", html, boundary=f"=_herald_{delivery.key[:32]}"
        )
        return OutgoingEmail(
            notification=delivery.spec.id,
            key=delivery.key,
            envelope_from=self._sender.addr_spec,
            envelope_to=recipient.email,
            message_id=message_id,
            subject=subject,
            content=content,
        )
