"""Catalog entries of the users domain (NOTIFICATIONS.md 2.3, 22 types)."""

from __future__ import annotations

from herald.catalog.spec import NotificationSpec, ReminderSeries

PORTAL_ACCOUNT_SERIES = ReminderSeries(
    entity="user.id",
    anchor="deactivation_due_at",
    offsets=(30,),
    cycle_key="deactivation_due_at",
    armed_while=lambda _data: True,
    armed_while_text="the account is active",
    arming_events=("users.portal_account.created", "users.portal_account.activity_recorded"),
    ending_events=("users.portal_account.deactivated",),
)

SPECS = [
    NotificationSpec(
        id="user_invitation",
        product="marketplace",
        trigger="users.user.invited",
        recipients=("invitee",),
    ),
    NotificationSpec(
        id="distributor_onboarding_invitation",
        product="marketplace",
        trigger="users.organization.invited",
        recipients=("invitee",),
    ),
    NotificationSpec(
        id="permissions_granted",
        product="marketplace",
        trigger="users.user.permissions_granted",
        recipients=("user",),
    ),
    NotificationSpec(
        id="csp_tenant_created_by_sync",
        product="marketplace",
        trigger="users.tenant.imported",
        recipients=("partner_contact", "distributor_contact"),
    ),
    NotificationSpec(
        id="tenant_created",
        product="marketplace",
        trigger="users.tenant.created",
        recipients=("distributor_contact", "reseller_contact"),
    ),
    NotificationSpec(
        id="organization_approval_pending",
        product="marketplace",
        trigger="users.organization.approval_requested",
        recipients=("parent_contact",),
    ),
    NotificationSpec(
        id="organization_status_changed",
        product="marketplace",
        trigger="users.organization.status_changed",
        when="organization.kind = end_customer",
        condition=lambda data: data.organization.kind == "end_customer",
        recipients=("organization_contact", "parent_contact"),
    ),
    NotificationSpec(
        id="customer_registered",
        product="marketplace",
        trigger="users.organization.registered",
        recipients=("partner_contact",),
    ),
    NotificationSpec(
        id="preferred_currency_reset",
        product="marketplace",
        trigger="users.organization.preferred_currency_reset",
        recipients=("organization_contact",),
    ),
    NotificationSpec(
        id="analytics_account_activation",
        product="partner_portal",
        trigger="users.analytics_account.invited",
        recipients=("user",),
    ),
    NotificationSpec(
        id="portal_account_activation",
        product="partner_portal",
        trigger="users.portal_account.created",
        recipients=("user",),
    ),
    NotificationSpec(
        id="portal_account_expiry_warning",
        product="partner_portal",
        kind="schedule",
        trigger="users.portal_account.created",
        when="30 days before deactivation_due_at",
        series=PORTAL_ACCOUNT_SERIES,
        recipients=("user",),
    ),
    NotificationSpec(
        id="portal_account_deactivated",
        product="partner_portal",
        trigger="users.portal_account.deactivated",
        when="reason = inactivity",
        condition=lambda data: data.reason == "inactivity",
        recipients=("user",),
    ),
    NotificationSpec(
        id="portal_account_2fa_reset",
        product="partner_portal",
        trigger="users.portal_account.two_factor_reset",
        recipients=("user",),
    ),
    NotificationSpec(
        id="service_account_activation",
        product="partner_portal",
        trigger="users.service_account.invited",
        recipients=("user",),
    ),
    NotificationSpec(
        id="service_account_welcome",
        product="partner_portal",
        trigger="users.service_account.activated",
        recipients=("user",),
    ),
    NotificationSpec(
        id="service_account_recovery",
        product="partner_portal",
        trigger="users.service_account.recovery_requested",
        recipients=("user",),
    ),
    NotificationSpec(
        id="service_account_deactivated",
        product="partner_portal",
        trigger="users.service_account.deactivated",
        recipients=("user",),
    ),
    NotificationSpec(
        id="service_account_reactivated",
        product="partner_portal",
        trigger="users.service_account.reactivated",
        recipients=("user",),
    ),
    NotificationSpec(
        id="service_account_2fa_reset",
        product="partner_portal",
        trigger="users.service_account.two_factor_reset",
        recipients=("user",),
    ),
    NotificationSpec(
        id="calling_domain_created",
        product="partner_portal",
        trigger="users.domain.created",
        when="domain.kind = calling",
        condition=lambda data: data.domain.kind == "calling",
        recipients=("partner_contact", "config(domains)"),
    ),
    NotificationSpec(
        id="microsoft_365_domain_created",
        product="partner_portal",
        trigger="users.domain.created",
        when="domain.kind = microsoft_365",
        condition=lambda data: data.domain.kind == "microsoft_365",
        recipients=("partner_contact", "config(domains)"),
    ),
]
