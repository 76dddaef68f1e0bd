"""`data` schemas of the subscriptions domain (EVENTS.md section 7)."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from herald.schemas.base import ContractModel
from herald.schemas.common import (
    Change,
    ClassicSubscription,
    CustomerParties,
    Endpoint,
    Error,
    InvitationCode,
    OtjLicense,
    Person,
    Plan,
    Subscription,
    TeamRoom,
    Trial,
)
from herald.schemas.scalars import Id, Timestamp

DeactivationReason = Literal["trial_ended", "other"]


def _require_user_for_end_user(trial: Trial, user: Person | None) -> None:
    if trial.kind == "end_user" and user is None:
        raise ValueError("user: required when trial.kind is end_user")


class SubscriptionCreated(CustomerParties):
    subscription: Subscription
    order_id: Id | None = None


class SubscriptionChanged(CustomerParties):
    subscription: Subscription
    changes: list[Change] = Field(min_length=1, max_length=1000)
    actor: Person | None = None


class SubscriptionChangeFailed(CustomerParties):
    subscription: Subscription
    requested_changes: list[Change] = Field(min_length=1, max_length=1000)
    error: Error
    actor: Person | None = None


class SubscriptionRenewed(CustomerParties):
    subscription: Subscription
    previous_term_ends_at: Timestamp


class SubscriptionRenewalFailed(CustomerParties):
    subscription: Subscription
    error: Error


class SubscriptionTerminated(CustomerParties):
    subscription: Subscription
    reason: Literal["expired", "canceled"]


class TrialStarted(CustomerParties):
    trial: Trial
    user: Person | None = None
    actor: Person | None = None

    @model_validator(mode="after")
    def _end_user_needs_user(self) -> Self:
        _require_user_for_end_user(self.trial, self.user)
        return self


class TrialExtended(CustomerParties):
    trial: Trial
    previous_ends_at: Timestamp
    user: Person | None = None
    actor: Person | None = None

    @model_validator(mode="after")
    def _end_user_needs_user(self) -> Self:
        _require_user_for_end_user(self.trial, self.user)
        return self


class TrialEnded(CustomerParties):
    trial: Trial
    reason: Literal["expired", "converted", "canceled"]
    user: Person | None = None

    @model_validator(mode="after")
    def _end_user_needs_user(self) -> Self:
        _require_user_for_end_user(self.trial, self.user)
        return self


class PlanCreated(CustomerParties):
    plan: Plan
    order_id: Id | None = None


class PlanChanged(CustomerParties):
    plan: Plan
    changes: list[Change] = Field(default_factory=list, max_length=1000)
    actor: Person | None = None


class _PlanDecisionConfirmed(CustomerParties):
    """A portal user confirmed the plan's decision; `plan.renewal_decision` must say which."""

    confirmed_decision: ClassVar[str]
    plan: Plan
    actor: Person

    @model_validator(mode="after")
    def _decision_matches(self) -> Self:
        if self.plan.renewal_decision != self.confirmed_decision:
            raise ValueError(f"plan.renewal_decision must be {self.confirmed_decision}")
        return self


class PlanRenewalConfirmed(_PlanDecisionConfirmed):
    confirmed_decision = "renew"


class PlanExpiryConfirmed(_PlanDecisionConfirmed):
    confirmed_decision = "expire"


class PlanRenewed(CustomerParties):
    plan: Plan
    previous_expires_at: Timestamp


class PlanExpired(CustomerParties):
    plan: Plan
    reason: Literal["confirmed_expiry", "unconfirmed_renewal"]


class OtjLicenseAdded(CustomerParties):
    license: OtjLicense
    plan: Plan


class TeamRoomActivated(CustomerParties):
    team_room: TeamRoom
    actor: Person | None = None


class TeamRoomDeactivated(CustomerParties):
    team_room: TeamRoom
    reason: DeactivationReason
    actor: Person | None = None


class EndpointActivated(CustomerParties):
    endpoint: Endpoint
    change: Literal["created", "reactivated"]
    actor: Person | None = None


class EndpointDeactivated(CustomerParties):
    endpoint: Endpoint
    actor: Person | None = None


class ClassicSubscriptionActivated(CustomerParties):
    classic_subscription: ClassicSubscription
    user: Person | None = None


class ClassicSubscriptionDeactivated(CustomerParties):
    classic_subscription: ClassicSubscription
    user: Person | None = None
    reason: DeactivationReason


class InvitationCodeCreated(CustomerParties):
    invitation_code: InvitationCode
    actor: Person | None = None


class InvitationCodeDeactivated(CustomerParties):
    invitation_code: InvitationCode
    reason: DeactivationReason


EVENT_TYPES: dict[str, type[ContractModel]] = {
    "subscriptions.subscription.created": SubscriptionCreated,
    "subscriptions.subscription.changed": SubscriptionChanged,
    "subscriptions.subscription.change_failed": SubscriptionChangeFailed,
    "subscriptions.subscription.renewed": SubscriptionRenewed,
    "subscriptions.subscription.renewal_failed": SubscriptionRenewalFailed,
    "subscriptions.subscription.terminated": SubscriptionTerminated,
    "subscriptions.trial.started": TrialStarted,
    "subscriptions.trial.extended": TrialExtended,
    "subscriptions.trial.ended": TrialEnded,
    "subscriptions.plan.created": PlanCreated,
    "subscriptions.plan.changed": PlanChanged,
    "subscriptions.plan.renewal_confirmed": PlanRenewalConfirmed,
    "subscriptions.plan.expiry_confirmed": PlanExpiryConfirmed,
    "subscriptions.plan.renewed": PlanRenewed,
    "subscriptions.plan.expired": PlanExpired,
    "subscriptions.otj_license.added": OtjLicenseAdded,
    "subscriptions.team_room.activated": TeamRoomActivated,
    "subscriptions.team_room.deactivated": TeamRoomDeactivated,
    "subscriptions.endpoint.activated": EndpointActivated,
    "subscriptions.endpoint.deactivated": EndpointDeactivated,
    "subscriptions.classic_subscription.activated": ClassicSubscriptionActivated,
    "subscriptions.classic_subscription.deactivated": ClassicSubscriptionDeactivated,
    "subscriptions.invitation_code.created": InvitationCodeCreated,
    "subscriptions.invitation_code.deactivated": InvitationCodeDeactivated,
}
