"""`data` schemas of the interop domain (EVENTS.md section 9)."""

from __future__ import annotations

from typing import Self

from pydantic import model_validator

from herald.schemas.base import ContractModel
from herald.schemas.common import BillingPeriod, CustomerParties, InteropSubscription
from herald.schemas.scalars import Id, NonNegativeInt, Timestamp, Url


def _check_service(subscription: InteropSubscription, service: str) -> None:
    # EVENTS.md 9.1: `subscription.service` MUST match the event type.
    if subscription.service != service:
        raise ValueError(f"subscription.service must be {service}")


class GoogleMeetSubscriptionCreated(CustomerParties):
    subscription: InteropSubscription
    action_url: Url

    @model_validator(mode="after")
    def _service_matches_type(self) -> Self:
        _check_service(self.subscription, "google_meet")
        return self


class GoogleMeetSubscriptionActivated(CustomerParties):
    subscription: InteropSubscription

    @model_validator(mode="after")
    def _service_matches_type(self) -> Self:
        _check_service(self.subscription, "google_meet")
        return self


class TeamsSubscriptionCreated(CustomerParties):
    subscription: InteropSubscription
    action_url: Url

    @model_validator(mode="after")
    def _service_matches_type(self) -> Self:
        _check_service(self.subscription, "teams")
        return self


class TeamsSubscriptionActivated(CustomerParties):
    subscription: InteropSubscription

    @model_validator(mode="after")
    def _service_matches_type(self) -> Self:
        _check_service(self.subscription, "teams")
        return self


class TeamsRoomsSubscriptionCreated(CustomerParties):
    subscription: InteropSubscription
    action_url: Url

    @model_validator(mode="after")
    def _service_matches_type(self) -> Self:
        _check_service(self.subscription, "teams_rooms")
        return self


class TeamsUsageReported(CustomerParties):
    subscription_id: Id
    licensed_capacity: NonNegativeInt
    peak_concurrent_calls: NonNegativeInt
    billing_period: BillingPeriod
    measured_at: Timestamp


EVENT_TYPES: dict[str, type[ContractModel]] = {
    "interop.google_meet.subscription_created": GoogleMeetSubscriptionCreated,
    "interop.google_meet.subscription_activated": GoogleMeetSubscriptionActivated,
    "interop.teams.subscription_created": TeamsSubscriptionCreated,
    "interop.teams.subscription_activated": TeamsSubscriptionActivated,
    "interop.teams_rooms.subscription_created": TeamsRoomsSubscriptionCreated,
    "interop.teams.usage_reported": TeamsUsageReported,
}
