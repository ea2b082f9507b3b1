"""What admin operations take and give back (XCreate / XPublic), the API's models too."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class OrganizationCreate(SQLModel):
    """An application for verification. Lengths are checked by the operation itself, so that
    the CLI and the API refuse a bad field with the same message."""

    name: str
    domain: str
    sector: str
    country: str
    evidence: str = ""


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


class ApproveRequest(SQLModel):
    tier: str = Field(description="verified, or critical for critical-infrastructure defenders")
    days: int | None = Field(None, description="grant length; default 365, at most 1095")
    expires_at: datetime | None = Field(None, description="instead of days: an aware instant")
    reason: str = ""
    expected_version: int | None = Field(None, description="refuse if the org changed since")


class ReasonRequest(SQLModel):
    reason: str
    expected_version: int | None = None


class ReinstateRequest(SQLModel):
    reason: str = ""
    expected_version: int | None = None


class ChallengeRequest(SQLModel):
    method: str = Field(description="dns (TXT record) or https (well-known file)")


class GrantCreate(SQLModel):
    org_id: str
    tier: str
    reason: str
    subject: str | None = Field(None, description="one subject (an individual); None: the org")
    evidence: str = ""
    days: int | None = None
    expires_at: datetime | None = None


class RevokeRequest(SQLModel):
    reason: str


class MemberSet(SQLModel):
    role: str = Field(description="defender or org_admin")


class ClientCreate(SQLModel):
    name: str
    roles: list[str] = Field(default_factory=list, description="admin, auditor, org_admin")


class Approval(SQLModel):
    organization: OrganizationPublic
    grant: TrustGrantPublic
