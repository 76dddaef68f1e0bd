"""Which recipients may unsubscribe (issue 19), and the suppression scope an unsubscribe gets.

A recipient may unsubscribe only when every role that put its address on an email is an
optional one. In the contract (NOTIFICATIONS.md 3.1-3.3) the optional roles are exactly the
configured lists, `config(<category>)`: the list's `emails`, and the partner or customer contact
that the entry adds with `include_partner_contact` / `include_customer_contact`. Every optional
copy the catalog names ("the optional partner copy" of `team_rooms` and `interop`, "the
optional customer copy" of `domains`) is such a list. Every other role (the order placer, the
account holder, the parties of an order or subscription, the account managers, the contacts
the catalog row names) is the service itself: no unsubscribe. An address present both by role
and by list is mandatory.

The scope names the (category, partner) pair in the suppression list's `scope` column
(`String(100)`): `category:renewals/partner:org-1204`. A partner id too long for that
(ids may have 128 characters) is replaced by the first 32 hex digits of its SHA-256:
`category:renewals/partner-sha256:<32 hex>`; such a scope still matches exactly, but cannot be
read back into a partner id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

SCOPE_LIMIT = 100  # the `suppressions.scope` column
_CATEGORY = "category:"
_PARTNER = "/partner:"
_PARTNER_HASHED = "/partner-sha256:"


@dataclass(frozen=True, slots=True)
class UnsubscribeScope:
    """What an optional recipient can unsubscribe from: one category (3.3) of one partner
    (`data.partner.id`)."""

    category: str
    partner_id: str

    @property
    def scope(self) -> str:
        """The suppression scope of an unsubscribe from this (category, partner)."""
        readable = f"{_CATEGORY}{self.category}{_PARTNER}{self.partner_id}"
        if len(readable) <= SCOPE_LIMIT:
            return readable
        digest = hashlib.sha256(self.partner_id.encode()).hexdigest()[:32]
        return f"{_CATEGORY}{self.category}{_PARTNER_HASHED}{digest}"

    @classmethod
    def parse(cls, scope: str) -> UnsubscribeScope | None:
        """The (category, partner) a readable scope names; None for `all`, a hashed partner or
        anything else."""
        if not scope.startswith(_CATEGORY):
            return None
        category, separator, partner_id = scope.removeprefix(_CATEGORY).partition(_PARTNER)
        if not separator or not category or not partner_id or "/" in category:
            return None
        return cls(category, partner_id)
