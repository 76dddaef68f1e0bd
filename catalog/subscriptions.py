"""Catalog entries of the subscriptions domain (NOTIFICATIONS.md 2.2, 28 types), with the
reminder series of section 4.1."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from herald.catalog.recipients import RENEWAL_GROUP
from herald.catalog.spec import NotificationSpec, ReminderSeries
from herald.schemas.common import Trial
from herald.schemas.subscriptions import (
    ClassicSubscriptionActivated,
    ClassicSubscriptionDeactivated,
    EndpointActivated,
    EndpointDeactivated,
    InvitationCodeCreated,
    InvitationCodeDeactivated,
    OtjLicenseAdded,
    PlanChanged,
    PlanCreated,
    PlanExpired,
    PlanExpiryConfirmed,
    PlanRenewalConfirmed,
    PlanRenewed,
    SubscriptionChanged,
    SubscriptionChangeFailed,
    SubscriptionCreated,
    SubscriptionRenewalFailed,
    SubscriptionRenewed,
    TeamRoomActivated,
    TeamRoomDeactivated,
    TrialEnded,
    TrialExtended,
    TrialStarted,
)

TrialEvent = TrialStarted | TrialExtended
SubscriptionEvent = SubscriptionCreated | SubscriptionChanged | SubscriptionRenewed
PlanEvent = PlanCreated | PlanChanged | PlanRenewed | PlanRenewalConfirmed | PlanExpiryConfirmed

TRIAL_EVENTS: Mapping[str, type[TrialEvent]] = {
    "subscriptions.trial.started": TrialStarted,
    "subscriptions.trial.extended": TrialExtended,
}
SUBSCRIPTION_EVENTS: Mapping[str, type[SubscriptionEvent]] = {
    "subscriptions.subscription.created": SubscriptionCreated,
    "subscriptions.subscription.changed": SubscriptionChanged,
    "subscriptions.subscription.renewed": SubscriptionRenewed,
}


class _AboutTrial(Protocol):
    """The `data` of every subscriptions.trial.* event."""

    @property
    def trial(self) -> Trial: ...


def _trial_kind(kind: str) -> Callable[[_AboutTrial], bool]:
    return lambda data: data.trial.kind == kind


def _trial_series(kind: str, offsets: tuple[int, ...]) -> ReminderSeries[TrialEvent]:
    return ReminderSeries(
        entity="trial.id",
        anchor="trial.ends_at",
        offsets=offsets,
        cycle_key="trial.ends_at",
        armed_while=_trial_kind(kind),
        armed_while_text=f"trial.kind = {kind}",
        arming_events=TRIAL_EVENTS,
        ending_events=("subscriptions.trial.ended",),
    )


def _subscription_series(
    offsets: tuple[int, ...], auto_renew: bool
) -> ReminderSeries[SubscriptionEvent]:
    return ReminderSeries(
        entity="subscription.id",
        anchor="subscription.term_ends_at",
        offsets=offsets,
        cycle_key="subscription.term_started_at",
        armed_while=lambda data: data.subscription.auto_renew is auto_renew,
        armed_while_text=f"subscription.auto_renew = {str(auto_renew).lower()}",
        arming_events=SUBSCRIPTION_EVENTS,
        ending_events=("subscriptions.subscription.terminated",),
    )


PLAN_EXPIRY_SERIES: ReminderSeries[PlanEvent] = ReminderSeries(
    entity="plan.id",
    anchor="plan.expires_at",
    offsets=(45, 30, 15, 3),
    cycle_key="plan.term_started_at",
    armed_while=lambda data: data.plan.renewal_decision == "none",
    armed_while_text="plan.renewal_decision = none",
    arming_events={
        "subscriptions.plan.created": PlanCreated,
        "subscriptions.plan.changed": PlanChanged,
        "subscriptions.plan.renewed": PlanRenewed,
        "subscriptions.plan.renewal_confirmed": PlanRenewalConfirmed,
        "subscriptions.plan.expiry_confirmed": PlanExpiryConfirmed,
    },
    ending_events=("subscriptions.plan.expired", "orders.order.canceled"),
)

# A tuple, not annotated: each entry keeps its own `NotificationSpec[<model>]` type (see
# catalog/orders.py).
SPECS = (
    NotificationSpec(
        id="subscription_changed",
        product="marketplace",
        trigger="subscriptions.subscription.changed",
        trigger_model=SubscriptionChanged,
        recipients=("actor", "customer_contact", "reseller_contact"),
    ),
    NotificationSpec(
        id="subscription_change_error",
        product="marketplace",
        trigger="subscriptions.subscription.change_failed",
        trigger_model=SubscriptionChangeFailed,
        recipients=("actor", "customer_contact", "reseller_contact", "distributor_contact"),
    ),
    NotificationSpec(
        id="subscription_renewed",
        product="marketplace",
        trigger="subscriptions.subscription.renewed",
        trigger_model=SubscriptionRenewed,
        recipients=("customer_contact", "reseller_contact"),
    ),
    NotificationSpec(
        id="subscription_renewal_error",
        product="marketplace",
        trigger="subscriptions.subscription.renewal_failed",
        trigger_model=SubscriptionRenewalFailed,
        recipients=("customer_contact", "reseller_contact", "distributor_contact"),
    ),
    NotificationSpec(
        id="subscription_auto_renewal_reminder",
        product="marketplace",
        kind="schedule",
        trigger="subscriptions.subscription.created",
        trigger_model=SubscriptionCreated,
        when="30 and 7 days before subscription.term_ends_at while auto_renew = true",
        series=_subscription_series((30, 7), auto_renew=True),
        recipients=("customer_contact", "reseller_contact"),
    ),
    NotificationSpec(
        id="subscription_expiry_reminder",
        product="marketplace",
        kind="schedule",
        trigger="subscriptions.subscription.created",
        trigger_model=SubscriptionCreated,
        when="30, 7 and 1 days before subscription.term_ends_at while auto_renew = false",
        series=_subscription_series((30, 7, 1), auto_renew=False),
        recipients=("customer_contact", "reseller_contact"),
    ),
    NotificationSpec(
        id="offer_trial_expiry",
        product="marketplace",
        kind="schedule",
        trigger="subscriptions.trial.started",
        trigger_model=TrialStarted,
        when="7 and 1 days before trial.ends_at for trial.kind = offer",
        series=_trial_series("offer", (7, 1)),
        recipients=("customer_contact", "partner_contact"),
    ),
    NotificationSpec(
        id="company_trial_created",
        product="partner_portal",
        trigger="subscriptions.trial.started",
        trigger_model=TrialStarted,
        when="trial.kind = company",
        condition=_trial_kind("company"),
        recipients=("partner_contact", "config(trial_activity)"),
    ),
    NotificationSpec(
        id="trial_reminder_end_user",
        product="partner_portal",
        kind="schedule",
        trigger="subscriptions.trial.started",
        trigger_model=TrialStarted,
        when="23 and 7 days before trial.ends_at for trial.kind = end_user",
        series=_trial_series("end_user", (23, 7)),
        recipients=("user", "config(trial_activity)"),  # draft 2 (NOTIFICATIONS.md 8)
    ),
    NotificationSpec(
        id="trial_extended_end_user",
        product="partner_portal",
        trigger="subscriptions.trial.extended",
        trigger_model=TrialExtended,
        when="trial.kind = end_user",
        condition=_trial_kind("end_user"),
        recipients=("user", "config(trial_activity)"),  # draft 2 (NOTIFICATIONS.md 8)
    ),
    NotificationSpec(
        id="trial_reminder_company",
        product="partner_portal",
        kind="schedule",
        trigger="subscriptions.trial.started",
        trigger_model=TrialStarted,
        when="23 and 7 days before trial.ends_at for trial.kind = company",
        series=_trial_series("company", (23, 7)),
        recipients=("customer_contact", "config(trial_activity)"),
    ),
    NotificationSpec(
        id="trial_extended_company",
        product="partner_portal",
        trigger="subscriptions.trial.extended",
        trigger_model=TrialExtended,
        when="trial.kind = company",
        condition=_trial_kind("company"),
        recipients=("customer_contact", "config(trial_activity)"),
    ),
    NotificationSpec(
        id="trial_ended_company",
        product="partner_portal",
        trigger="subscriptions.trial.ended",
        trigger_model=TrialEnded,
        when="trial.kind = company and reason is not converted",
        condition=lambda data: data.trial.kind == "company" and data.reason != "converted",
        recipients=("customer_contact", "config(trial_activity)"),
    ),
    NotificationSpec(
        id="plan_will_be_renewed",
        product="partner_portal",
        trigger="subscriptions.plan.renewal_confirmed",
        trigger_model=PlanRenewalConfirmed,
        recipients=RENEWAL_GROUP,
    ),
    NotificationSpec(
        id="plan_will_not_be_renewed",
        product="partner_portal",
        trigger="subscriptions.plan.expiry_confirmed",
        trigger_model=PlanExpiryConfirmed,
        recipients=RENEWAL_GROUP,
    ),
    NotificationSpec(
        id="plan_expiry_reminder",
        product="partner_portal",
        kind="schedule",
        trigger="subscriptions.plan.created",
        trigger_model=PlanCreated,
        when="45, 30, 15 and 3 days before plan.expires_at while renewal_decision = none",
        series=PLAN_EXPIRY_SERIES,
        recipients=RENEWAL_GROUP,
    ),
    NotificationSpec(
        id="plan_renewed",
        product="partner_portal",
        trigger="subscriptions.plan.renewed",
        trigger_model=PlanRenewed,
        recipients=RENEWAL_GROUP,
    ),
    NotificationSpec(
        id="plan_expired",
        product="partner_portal",
        trigger="subscriptions.plan.expired",
        trigger_model=PlanExpired,
        recipients=RENEWAL_GROUP,
    ),
    NotificationSpec(
        id="otj_license_added",
        product="partner_portal",
        trigger="subscriptions.otj_license.added",
        trigger_model=OtjLicenseAdded,
        recipients=("config(otj_distribution)",),
    ),
    NotificationSpec(
        id="otj_license_renewal",
        product="partner_portal",
        trigger="subscriptions.plan.renewal_confirmed",
        trigger_model=PlanRenewalConfirmed,
        when="plan.includes_otj = true",
        condition=lambda data: data.plan.includes_otj is True,
        recipients=("config(otj_distribution)",),
    ),
    NotificationSpec(
        id="team_room_activated",
        product="partner_portal",
        trigger="subscriptions.team_room.activated",
        trigger_model=TeamRoomActivated,
        recipients=("customer_contact", "config(team_rooms)"),
    ),
    NotificationSpec(
        id="team_room_deactivated",
        product="partner_portal",
        trigger="subscriptions.team_room.deactivated",
        trigger_model=TeamRoomDeactivated,
        recipients=("customer_contact", "config(team_rooms)"),
    ),
    NotificationSpec(
        id="endpoint_enabled",
        product="partner_portal",
        trigger="subscriptions.endpoint.activated",
        trigger_model=EndpointActivated,
        recipients=("partner_contact", "customer_contact"),
    ),
    NotificationSpec(
        id="endpoint_disabled",
        product="partner_portal",
        trigger="subscriptions.endpoint.deactivated",
        trigger_model=EndpointDeactivated,
        recipients=("partner_contact", "customer_contact"),
    ),
    NotificationSpec(
        id="classic_subscription_reactivated",
        product="partner_portal",
        trigger="subscriptions.classic_subscription.activated",
        trigger_model=ClassicSubscriptionActivated,
        recipients=("partner_contact",),
    ),
    NotificationSpec(
        id="classic_subscription_deactivated",
        product="partner_portal",
        trigger="subscriptions.classic_subscription.deactivated",
        trigger_model=ClassicSubscriptionDeactivated,
        recipients=("partner_contact",),
    ),
    NotificationSpec(
        id="invitation_code_activated",
        product="partner_portal",
        trigger="subscriptions.invitation_code.created",
        trigger_model=InvitationCodeCreated,
        recipients=("partner_contact", "customer_contact"),
    ),
    NotificationSpec(
        id="invitation_code_deactivated",
        product="partner_portal",
        trigger="subscriptions.invitation_code.deactivated",
        trigger_model=InvitationCodeDeactivated,
        recipients=("partner_contact", "customer_contact"),
    ),
)
