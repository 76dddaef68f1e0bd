"""The unsubscribe parts of an optional email (issue 19): the `List-Unsubscribe` and
`List-Unsubscribe-Post` headers (RFC 2369, RFC 8058 one-click) and what the layouts' footer
line needs (why the recipient gets the email, the preferences link).

Only a delivery whose recipient may unsubscribe (`Delivery.unsubscribe`, `catalog/optional.py`)
gets them, and only when `HERALD_PUBLIC_BASE_URL` and `HERALD_UNSUBSCRIBE_KEYS` are set:
without them no email carries either header or the footer line. Mandatory mail never does.

`List-Unsubscribe` holds `<{base}/unsubscribe/{token}>`; a `<mailto:unsubscribe+{token}@{bounce
domain}>` is added only when `HERALD_BOUNCE_DOMAIN` is set and the local part fits the 64
characters of RFC 5321. Tokens are about 160 characters (`renderers/unsubscribe_tokens.py`), so
in practice the mailto form is left out: RFC 8058 one-click needs the https URI only.
The relay's DKIM signature must cover both headers (RFC 8058 section 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from herald.catalog.plan import Delivery
from herald.renderers.headers import clean_header_text
from herald.renderers.mime import MAX_LINE, encode_text_header
from herald.renderers.unsubscribe_tokens import UnsubscribeTokens

MAX_LOCAL_PART = 64
ONE_CLICK = "List-Unsubscribe=One-Click"


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """One optional email's unsubscribe: its links and, for the footer, which list of whom."""

    category: str  # the NOTIFICATIONS.md 3.3 category; the layouts name it in their language
    partner_name: str
    unsubscribe_url: str
    preferences_url: str
    mailto: str | None = None

    def headers(self) -> list[tuple[str, str]]:
        """(name, encoded value): the URIs in angle brackets, https first (RFC 2369). Not
        folded below RFC 5322's 998 characters: a fold before the URI would leave an empty
        first line that some clients read as no value."""
        uris = [f"<{self.unsubscribe_url}>"]
        if self.mailto is not None:
            uris.append(f"<mailto:{self.mailto}>")
        return [
            (
                "List-Unsubscribe",
                encode_text_header(", ".join(uris), "List-Unsubscribe", MAX_LINE),
            ),
            ("List-Unsubscribe-Post", encode_text_header(ONE_CLICK, "List-Unsubscribe-Post")),
        ]


def mailto_address(token: str, bounce_domain: str | None) -> str | None:
    """`unsubscribe+{token}@{domain}`, or None without a domain or when the local part would
    pass the 64 characters of RFC 5321 section 4.5.3.1.1."""
    local = f"unsubscribe+{token}"
    if bounce_domain is None or len(local) > MAX_LOCAL_PART:
        return None
    return f"{local}@{bounce_domain}"


class UnsubscribeLinks:
    """Builds the `Unsubscribe` of a delivery its recipient may unsubscribe from.

    `base_url` is `HERALD_PUBLIC_BASE_URL` as the settings checked it (https, the characters of
    a URL path only, no trailing slash), so the header needs no escaping beyond the stdlib's."""

    def __init__(
        self, base_url: str, tokens: UnsubscribeTokens, bounce_domain: str | None = None
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._bounce_domain = bounce_domain

    def for_delivery(
        self, delivery: Delivery, data: Any, brand_name: str | None
    ) -> Unsubscribe | None:
        """None for mandatory mail. The partner is named by its brand when the email carries
        the partner's own branding (`brand_name`), else by `data.partner.name`."""
        scope = delivery.unsubscribe
        if scope is None:
            return None
        token = self._tokens.issue(delivery.recipient.email, scope)
        partner = getattr(data, "partner", None)
        name = brand_name or (partner.name if partner is not None else scope.partner_id)
        return Unsubscribe(
            category=scope.category,
            partner_name=clean_header_text(name, 200),
            unsubscribe_url=f"{self._base_url}/unsubscribe/{token}",
            preferences_url=f"{self._base_url}/preferences/{token}",
            mailto=mailto_address(token, self._bounce_domain),
        )
