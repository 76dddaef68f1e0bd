"""`data` schemas of the users domain (EVENTS.md section 8)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from herald.schemas.base import ContractModel
from herald.schemas.common import CustomerParties, Domain, Organization, Person, Status, Tenant
from herald.schemas.scalars import Currency, LongText, Name, Timestamp, Url


class UserInvited(ContractModel):
    organization: Organization
    invitee: Person
    actor: Person | None = None
    role: Name | None = None
    action_url: Url
    expires_at: Timestamp | None = None


class UserPermissionsGranted(ContractModel):
    organization: Organization
    user: Person
    permissions: list[Name] = Field(min_length=1, max_length=100)
    actor: Person | None = None


class OrganizationInvited(ContractModel):
    inviter: Organization
    invitee: Person
    invitee_organization_name: Name | None = None
    action_url: Url
    expires_at: Timestamp | None = None
    actor: Person | None = None


class OrganizationApprovalRequested(ContractModel):
    organization: Organization
    parent: Organization
    actor: Person | None = None
    url: Url | None = None


class OrganizationStatusChanged(ContractModel):
    organization: Organization
    parent: Organization | None = None
    status: Status
    previous_status: Status
    reason: LongText | None = None
    actor: Person | None = None


class OrganizationRegistered(CustomerParties):
    user: Person


class OrganizationPreferredCurrencyReset(ContractModel):
    organization: Organization
    currency: Currency
    previous_currency: Currency
    reason: LongText | None = None


class TenantCreated(CustomerParties):
    tenant: Tenant
    actor: Person | None = None


class TenantImported(CustomerParties):
    tenant: Tenant


class PortalAccountCreated(ContractModel):
    organization: Organization
    partner: Organization | None = None
    user: Person
    action_url: Url
    expires_at: Timestamp | None = None
    deactivation_due_at: Timestamp
    actor: Person | None = None


class PortalAccountActivityRecorded(ContractModel):
    organization: Organization
    partner: Organization | None = None
    user: Person
    last_active_at: Timestamp
    deactivation_due_at: Timestamp


class PortalAccountDeactivated(ContractModel):
    organization: Organization
    partner: Organization | None = None
    user: Person
    reason: Literal["inactivity", "administrator", "deleted"]


class PortalAccountTwoFactorReset(ContractModel):
    organization: Organization
    partner: Organization | None = None
    user: Person
    account_product: Literal["partner_portal", "analytics"]
    action_url: Url | None = None
    actor: Person | None = None


class AnalyticsAccountInvited(ContractModel):
    organization: Organization
    partner: Organization | None = None
    user: Person
    action_url: Url
    expires_at: Timestamp | None = None
    actor: Person | None = None


class ServiceAccountInvited(CustomerParties):
    user: Person
    action_url: Url
    expires_at: Timestamp | None = None
    actor: Person | None = None


class ServiceAccountActivated(CustomerParties):
    user: Person


class ServiceAccountRecoveryRequested(CustomerParties):
    user: Person
    action_url: Url
    expires_at: Timestamp | None = None


class ServiceAccountDeactivated(CustomerParties):
    user: Person
    actor: Person | None = None


class ServiceAccountReactivated(CustomerParties):
    user: Person
    actor: Person | None = None


class ServiceAccountTwoFactorReset(CustomerParties):
    user: Person
    actor: Person | None = None


class DomainCreated(CustomerParties):
    domain: Domain
    actor: Person | None = None


EVENT_TYPES: dict[str, type[ContractModel]] = {
    "users.user.invited": UserInvited,
    "users.user.permissions_granted": UserPermissionsGranted,
    "users.organization.invited": OrganizationInvited,
    "users.organization.approval_requested": OrganizationApprovalRequested,
    "users.organization.status_changed": OrganizationStatusChanged,
    "users.organization.registered": OrganizationRegistered,
    "users.organization.preferred_currency_reset": OrganizationPreferredCurrencyReset,
    "users.tenant.created": TenantCreated,
    "users.tenant.imported": TenantImported,
    "users.portal_account.created": PortalAccountCreated,
    "users.portal_account.activity_recorded": PortalAccountActivityRecorded,
    "users.portal_account.deactivated": PortalAccountDeactivated,
    "users.portal_account.two_factor_reset": PortalAccountTwoFactorReset,
    "users.analytics_account.invited": AnalyticsAccountInvited,
    "users.service_account.invited": ServiceAccountInvited,
    "users.service_account.activated": ServiceAccountActivated,
    "users.service_account.recovery_requested": ServiceAccountRecoveryRequested,
    "users.service_account.deactivated": ServiceAccountDeactivated,
    "users.service_account.reactivated": ServiceAccountReactivated,
    "users.service_account.two_factor_reset": ServiceAccountTwoFactorReset,
    "users.domain.created": DomainCreated,
}
