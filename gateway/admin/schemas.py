"""What admin operations take and give back (XCreate / XPublic), the API's models too."""

from __future__ import annotations

from datetime import datetime

import iso3166
from sqlmodel import Field, SQLModel

from gateway.admin.fields import (
    CLIENT_ROLES,
    MAX_EVIDENCE,
    MAX_GRANT_DAYS,
    MAX_NAME,
    MAX_REASON,
    MEMBER_ROLES,
)
from gateway.trust.domains import MAX_DOMAIN, domain_pattern
from gateway.trust.sectors import SECTORS

# What an application may hold, stated in the OpenAPI document only: the operation checks
# each field itself (gateway/admin/fields.py, gateway/trust/), so that the CLI and the API
# refuse a bad one with the same message.
# Free text that must say something (gateway/admin/fields.py `text`): printable, tabs and
# newlines allowed, at least one character that is not white space.
_PRINTABLE = r"[^\x00-\x08\x0b-\x1f]*"
_SAYS_SOMETHING = rf"^{_PRINTABLE}[^\s\x00-\x1f]{_PRINTABLE}$"
_ANY_TEXT = rf"^{_PRINTABLE}$"
_NAME = {"minLength": 1, "maxLength": MAX_NAME, "pattern": _SAYS_SOMETHING}
_DOMAIN = {
    "maxLength": MAX_DOMAIN,
    "pattern": domain_pattern(),
    "description": "A registrable domain (not an IP, a wildcard or a public suffix)",
}
_SECTOR = {"enum": list(SECTORS)}
_REASON = {"maxLength": MAX_REASON, "pattern": _SAYS_SOMETHING}
_OPTIONAL_REASON = {"maxLength": MAX_REASON, "pattern": _ANY_TEXT}
_DAYS = {"minimum": 1, "maximum": MAX_GRANT_DAYS}
# Which tiers an admin may grant comes from the policy data; the document lists them
# (gateway/api/admin_schema.py `describe_tiers`).
_GRANTABLE_TIER = {"x-tacgw-grantable-tier": True}
_COUNTRY = {"enum": sorted(iso3166.countries_by_alpha2)}


class OrganizationCreate(SQLModel):
    """An application for verification."""

    name: str = Field(schema_extra={"json_schema_extra": _NAME})
    domain: str = Field(schema_extra={"json_schema_extra": _DOMAIN})
    sector: str = Field(schema_extra={"json_schema_extra": _SECTOR})
    country: str = Field(schema_extra={"json_schema_extra": _COUNTRY})
    evidence: str = Field(
        "", schema_extra={"json_schema_extra": {"maxLength": MAX_EVIDENCE, "pattern": _ANY_TEXT}}
    )


class OrganizationPublic(SQLModel):
    id: str
    name: str
    status: str
    domain: str | None
    sector: str | None
    country: str | None
    evidence: str
    applied_by: str | None
    status_reason: str
    version: int
    created_at: datetime
    updated_at: datetime | None


class ChallengePublic(SQLModel):
    id: int
    org_id: str
    method: str
    token: str
    created_at: datetime
    expires_at: datetime
    checked_at: datetime | None
    result: str | None
    evidence: str
    instructions: str = ""


class TrustGrantPublic(SQLModel):
    id: int
    org_id: str
    subject: str | None = Field(description="None: the grant covers every member")
    tier: str
    granted_by: str
    evidence: str
    reason: str
    granted_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    revoke_reason: str
    live: bool = Field(description="neither revoked nor expired at the time of reading")


class MembershipPublic(SQLModel):
    org_id: str
    subject: str
    role: str
    added_by: str
    created_at: datetime


class ClientPublic(SQLModel):
    id: str
    org_id: str
    name: str
    roles: str
    created_at: datetime
    revoked_at: datetime | None


class IssuedClient(SQLModel):
    """A new (or rotated) client's credentials: the secret is shown this once only."""

    client_id: str
    client_secret: str
    org_id: str
    roles: str


class OrganizationDetail(SQLModel):
    organization: OrganizationPublic
    challenges: list[ChallengePublic]
    grants: list[TrustGrantPublic]
    members: list[MembershipPublic]
    clients: list[ClientPublic]


def _doc(**extra: object) -> dict[str, object]:
    return {"json_schema_extra": extra}


class ApproveRequest(SQLModel):
    tier: str = Field(
        description="verified, or critical for critical-infrastructure defenders",
        schema_extra=_doc(**_GRANTABLE_TIER),
    )
    days: int | None = Field(
        None, description="grant length; default 365, at most 1095", schema_extra=_doc(**_DAYS)
    )
    expires_at: datetime | None = Field(
        None, description="instead of days: an aware instant in the future"
    )
    reason: str = Field("", schema_extra=_doc(**_OPTIONAL_REASON))
    expected_version: int | None = Field(None, description="refuse if the org changed since")


class ReasonRequest(SQLModel):
    reason: str = Field(schema_extra=_doc(**_REASON))
    expected_version: int | None = None


class ReinstateRequest(SQLModel):
    reason: str = Field("", schema_extra=_doc(**_OPTIONAL_REASON))
    expected_version: int | None = None


class ChallengeRequest(SQLModel):
    method: str = Field(
        description="dns (TXT record) or https (well-known file)",
        schema_extra=_doc(enum=["dns", "https"]),
    )


class GrantCreate(SQLModel):
    org_id: str
    tier: str = Field(schema_extra=_doc(**_GRANTABLE_TIER))
    reason: str = Field(schema_extra=_doc(**_REASON))
    subject: str | None = Field(None, description="one subject (an individual); None: the org")
    evidence: str = Field("", schema_extra=_doc(maxLength=MAX_EVIDENCE, pattern=_ANY_TEXT))
    days: int | None = Field(None, schema_extra=_doc(**_DAYS))
    expires_at: datetime | None = Field(None, description="an aware instant in the future")


class RevokeRequest(SQLModel):
    reason: str = Field(schema_extra=_doc(**_REASON))


class MemberSet(SQLModel):
    role: str = Field(
        description="defender or org_admin", schema_extra=_doc(enum=list(MEMBER_ROLES))
    )


class ClientCreate(SQLModel):
    name: str = Field(schema_extra=_doc(**_NAME))
    roles: list[str] = Field(
        default_factory=list,
        description="admin, auditor, org_admin",
        schema_extra=_doc(items={"enum": list(CLIENT_ROLES)}),
    )


class Approval(SQLModel):
    organization: OrganizationPublic
    grant: TrustGrantPublic
