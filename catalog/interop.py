"""Catalog entries of the interop domain (NOTIFICATIONS.md 2.4, 7 types); the two Teams usage
alerts are threshold notifications (section 5)."""

from __future__ import annotations

from herald.catalog.spec import NotificationSpec
from herald.schemas.interop import (
    GoogleMeetSubscriptionActivated,
    GoogleMeetSubscriptionCreated,
    TeamsRoomsSubscriptionCreated,
    TeamsSubscriptionActivated,
    TeamsSubscriptionCreated,
    TeamsUsageReported,
)

# A tuple, not annotated: each entry keeps its own `NotificationSpec[<model>]` type (see
# catalog/orders.py).
SPECS = (
    NotificationSpec(
        id="google_meet_token_upload_request",
        product="partner_portal",
        trigger="interop.google_meet.subscription_created",
        trigger_model=GoogleMeetSubscriptionCreated,
        recipients=("customer_contact", "config(interop)"),
    ),
    NotificationSpec(
        id="google_meet_provisioned",
        product="partner_portal",
        trigger="interop.google_meet.subscription_activated",
        trigger_model=GoogleMeetSubscriptionActivated,
        recipients=("customer_contact",),
    ),
    NotificationSpec(
        id="teams_cvi_authorization_request",
        product="partner_portal",
        trigger="interop.teams.subscription_created",
        trigger_model=TeamsSubscriptionCreated,
        recipients=("customer_contact",),
    ),
    NotificationSpec(
        id="teams_cvi_provisioned",
        product="partner_portal",
        trigger="interop.teams.subscription_activated",
        trigger_model=TeamsSubscriptionActivated,
        recipients=("customer_contact",),
    ),
    NotificationSpec(
        id="teams_cvi_usage_threshold",
        product="partner_portal",
        kind="threshold",
        trigger="interop.teams.usage_reported",
        trigger_model=TeamsUsageReported,
        when="80 % <= usage <= 100 % of licensed_capacity >= 10, once per billing period",
        recipients=("customer_contact", "partner_contact"),
    ),
    NotificationSpec(
        id="teams_cvi_oversubscription",
        product="partner_portal",
        kind="threshold",
        trigger="interop.teams.usage_reported",
        trigger_model=TeamsUsageReported,
        when="peak_concurrent_calls > licensed_capacity, once per billing period",
        recipients=("customer_contact", "partner_contact"),
    ),
    NotificationSpec(
        id="teams_rooms_authorization_request",
        product="partner_portal",
        trigger="interop.teams_rooms.subscription_created",
        trigger_model=TeamsRoomsSubscriptionCreated,
        recipients=("customer_contact",),
    ),
)
