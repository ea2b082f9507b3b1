"""The tables. SQLite by default, PostgreSQL in production; the schema is owned by Alembic."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    LargeBinary,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes, stored in UTC on every backend.

    SQLite keeps no offset: without this, a grant expiring at 12:00+05:00 would be
    compared as 12:00 UTC and stay valid five hours too long.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware datetime (UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def _ts(*, nullable: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable)


def new_id() -> str:
    return uuid.uuid4().hex


class Organization(SQLModel, table=True):
    """An organization and where it stands in verification (see gateway/trust/lifecycle.py)."""

    # A unique index, not a constraint: SQLite can add it without rebuilding the table.
    __table_args__ = (Index("ix_organization_domain", "domain", unique=True),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    name: str = Field(unique=True, max_length=200)
    # applied → verifying → verified, or rejected, suspended, revoked; only verified orgs
    # hold anything above the lowest tier (gateway/trust/lifecycle.py).
    status: str = Field(default="applied", max_length=20)
    # The A-label (punycode) form, lower case, no trailing dot; None for orgs made before
    # domain proof existed. Unique: one organization per domain.
    domain: str | None = Field(default=None, max_length=253)
    sector: str | None = Field(default=None, max_length=60)  # gateway/trust/sectors.py
    country: str | None = Field(default=None, max_length=2)  # ISO 3166-1 alpha-2
    # What the applicant offered as evidence (free text for the reviewing admin).
    evidence: str = Field(default="", sa_column=Column(Text, nullable=False))
    applied_by: str | None = Field(default=None, max_length=200)
    # Why the last reject/suspend/revoke happened, shown to the applicant and auditors.
    status_reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    # Optimistic concurrency: every change is `UPDATE ... WHERE version = :seen`.
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    updated_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class Membership(SQLModel, table=True):
    """A subject's place in an organization: `defender` (uses models) or `org_admin`."""

    __table_args__ = (UniqueConstraint("org_id", "subject", name="uq_membership_org_subject"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(foreign_key="organization.id", max_length=64)
    subject: str = Field(index=True, max_length=200)
    role: str = Field(max_length=20)
    added_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class VerificationChallenge(SQLModel, table=True):
    """One domain-proof attempt: the token to publish, and what the check found."""

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(foreign_key="organization.id", index=True, max_length=64)
    method: str = Field(max_length=10)  # dns | https
    token: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    expires_at: datetime = Field(sa_column=_ts())
    checked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # None until checked; then passed | failed | error (resolver unreachable etc.)
    result: str | None = Field(default=None, max_length=10)
    # What the resolvers (or the web server) answered, verbatim and bounded: the proof.
    evidence: str = Field(default="", sa_column=Column(Text, nullable=False))


class Client(SQLModel, table=True):
    """An OAuth client (client-credentials grant); the secret is stored only as a hash."""

    id: str = Field(primary_key=True, max_length=64)
    org_id: str = Field(foreign_key="organization.id", index=True, max_length=64)
    name: str = Field(max_length=200)
    secret_hash: str = Field(max_length=128)
    # Space-separated roles its tokens carry (`admin`, `auditor`, `org_admin`); "" for a
    # defender's client, which only calls models.
    roles: str = Field(default="", max_length=200)
    # The client's public keys (a JWKS, JSON) for `private_key_jwt` (RFC 7523); None: the
    # client authenticates with its secret only.
    jwks: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    revoked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class TrustGrant(SQLModel, table=True):
    """A tier held by an organization (or by one subject in it), until expiry or revocation.

    Never deleted: a revoked grant keeps its row, so that "why was this allowed then" and
    "why is it refused now" (`grant_revoked`, `grant_expired`) both have an answer.
    """

    __table_args__ = (Index("ix_trustgrant_org_subject", "org_id", "subject"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(foreign_key="organization.id", max_length=64)
    # None: the grant covers every subject of the organization.
    subject: str | None = Field(default=None, max_length=200)
    tier: str = Field(max_length=40)
    granted_by: str = Field(max_length=200)
    evidence: str = Field(default="", sa_column=Column(Text, nullable=False))
    # Why it was granted, and (once revoked) why it was revoked. Grants are never deleted.
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    revoke_reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    granted_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    expires_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class ModelEntry(SQLModel, table=True):
    """A model the gateway serves, from which tier up; its upstreams are `UpstreamTarget`s."""

    name: str = Field(primary_key=True, max_length=200)
    tier_floor: str = Field(max_length=40)
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class UpstreamTargetBase(SQLModel):
    """One upstream serving a catalog model: where, under which name, with what weight."""

    model: str = Field(foreign_key="modelentry.name", max_length=200)
    name: str = Field(max_length=100)  # unique per model; names the target in audit and metrics
    url: str = Field(max_length=500)  # base URL of an OpenAI-compatible server (…/v1)
    # The model name the upstream knows; callers only ever see the catalog's name.
    upstream_model: str = Field(max_length=200)
    # Share of the model's traffic; 0 makes a fallback used only when no weighted target can.
    weight: int = Field(default=1, ge=0, le=1000)
    # A reference to the upstream's API key (`env:NAME` or `file:/path`), resolved by the
    # gateway when it loads the catalog; the key itself is never stored. None: the global
    # `upstream_api_key`.
    credential: str | None = Field(default=None, max_length=500)
    enabled: bool = True


class UpstreamTargetCreate(UpstreamTargetBase):
    # Extra request headers for this upstream (not secrets: those go in `credential`).
    headers: dict[str, str] = Field(default_factory=dict)


class UpstreamTargetPublic(UpstreamTargetBase):
    id: int
    headers: dict[str, str]


class UpstreamTarget(UpstreamTargetBase, table=True):
    __table_args__ = (UniqueConstraint("model", "name", name="uq_upstreamtarget_model_name"),)

    id: int | None = Field(default=None, primary_key=True)
    # A JSON object of extra request headers.
    headers: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class AuditEvent(SQLModel, table=True):
    """One row per access decision, allowed or denied, keyed by the decision id."""

    __table_args__ = (Index("ix_auditevent_subject_ts", "subject", "ts"),)

    id: str = Field(primary_key=True, max_length=64)
    ts: datetime = Field(sa_column=_ts())
    endpoint: str = Field(max_length=100)
    subject: str | None = Field(default=None, max_length=200)
    client_id: str | None = Field(default=None, max_length=64)
    org_id: str | None = Field(default=None, max_length=64)
    tier: str | None = Field(default=None, max_length=40)
    model: str | None = Field(default=None, max_length=200)
    decision: str = Field(max_length=10)
    reasons: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    status: int
    policy_version: str | None = Field(default=None, max_length=80)
    latency_ms: float
    request_hash: str | None = Field(default=None, max_length=64)
    token_id: str | None = Field(default=None, max_length=64)
    # Admin actions only: JSON {actor, action, target, before, after}.
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The upstream target that gave the answer (or the last one tried), and how many tries
    # the request took; None when the request never reached the forward stage.
    upstream_target: str | None = Field(default=None, max_length=100)
    upstream_tries: int | None = None


class ScreeningReportBase(SQLModel):
    """What a screening report says at a glance; the full report is its JSON `body`."""

    model_name: str = Field(foreign_key="modelentry.name", max_length=200)
    ran_by: str = Field(max_length=200)
    upstream_url: str = Field(max_length=500)
    upstream_model: str = Field(max_length=200)
    pack_version: str = Field(max_length=40)
    pack_sha256: str = Field(max_length=64)
    samples_per_condition: int
    # The highest upper 95% bound over the screened conditions: what thresholds compare with.
    max_ci_high: float
    sha256: str = Field(max_length=64)


class ScreeningReport(ScreeningReportBase, table=True):
    """One screening run of one catalog model; never updated, superseded by a newer one."""

    __table_args__ = (Index("ix_screeningreport_model_created", "model_name", "created_at"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    expires_at: datetime = Field(sa_column=_ts())
    # The canonical JSON text whose SHA-256 is `sha256`: re-hash it to check it.
    body: str = Field(sa_column=Column(Text, nullable=False))


class ScreeningReportPublic(ScreeningReportBase):
    id: str
    created_at: datetime
    expires_at: datetime


class UsageDailyBase(SQLModel):
    """Tokens used by one organization on one model in one UTC day."""

    org_id: str = Field(primary_key=True, max_length=64)
    model: str = Field(primary_key=True, max_length=200)
    day: date = Field(primary_key=True)
    requests: int = 0
    # 64-bit: a busy organization passes 2^31 tokens a day.
    prompt_tokens: int = Field(default=0, sa_type=BigInteger)
    completion_tokens: int = Field(default=0, sa_type=BigInteger)
    # Calls whose upstream reported no usage: their tokens were counted by the gateway.
    estimated_requests: int = 0


class UsageDaily(UsageDailyBase, table=True):
    """Summed in memory by each replica and added here every few seconds (an upsert)."""


class UsageDailyPublic(UsageDailyBase):
    total_tokens: int = 0


class SigningKey(SQLModel, table=True):
    """One of the issuer's signing keys; the private part sealed with the key-encryption key.

    The current key is the newest with `rotated_at` unset. A rotated key stops signing at
    `rotated_at` and keeps verifying (stays in the JWKS) until `retire_at`, when the last
    token it signed has expired.
    """

    kid: str = Field(primary_key=True, max_length=64)  # RFC 7638 thumbprint
    alg: str = Field(max_length=10)
    public_jwk: str = Field(sa_column=Column(Text, nullable=False))
    # AES-256-GCM under the key-encryption key (gateway/issuer/sealing.py); never logged.
    private_key: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    rotated_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    retire_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class RevokedToken(SQLModel, table=True):
    """An access token revoked before its expiry (RFC 7009); kept until it has expired."""

    jti: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(max_length=64)
    exp: datetime = Field(sa_column=_ts())
    revoked_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class OrgIssuer(SQLModel, table=True):
    """Binds an organization to a federated issuer it owns, optionally narrowed.

    A federated token maps to the organization only through such a row: same issuer, and
    where set, the same value of the issuer's organization claim and the same subject.
    """

    __table_args__ = (Index("ix_orgissuer_issuer", "issuer"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(foreign_key="organization.id", max_length=64)
    issuer: str = Field(max_length=500)
    # None: any value (the issuer belongs to this organization alone).
    org_claim: str | None = Field(default=None, max_length=200)
    subject: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


# The audit transparency log (gateway/audit/ledger.py; docs/architecture.md explains it).


def _bigint_key() -> Column[int]:
    return Column(BigInteger, primary_key=True, autoincrement=False)


def _blob() -> Column[bytes]:
    return Column(LargeBinary, nullable=False)


class TlogLeaf(SQLModel, table=True):
    """One leaf: the RFC 8785 bytes of one audit event, at a dense, unique index.

    With it are stored the hashes its append computed: its leaf hash and the hashes of
    the subtrees it completes (gateway/audit/tlog.py), so proofs read O(log n) rows.
    """

    __tablename__ = "tlog_leaf"
    __table_args__ = (UniqueConstraint("decision_id", "kind", name="uq_tlog_leaf_decision_kind"),)

    leaf_index: int = Field(sa_column=_bigint_key())
    decision_id: str = Field(max_length=64)  # the unique key below indexes it
    # "decision", "outcome", ...: one leaf of each kind per decision id at most.
    kind: str = Field(max_length=20)
    leaf_hash: bytes = Field(sa_column=_blob())
    # Hashes of the subtrees this leaf completes, levels 1, 2, ... (32 bytes each).
    nodes: bytes = Field(sa_column=_blob())
    event: bytes = Field(sa_column=_blob())


class TlogHead(SQLModel, table=True):
    """The single row writers lock to append (PostgreSQL), and checkpoint bookkeeping."""

    __tablename__ = "tlog_head"

    id: int = Field(primary_key=True)
    checkpoint_size: int = Field(sa_column=Column(BigInteger, nullable=False))
    checkpoint_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # Leaves below this index were archived: their events are gone, their hashes kept.
    pruned_size: int = Field(sa_column=Column(BigInteger, nullable=False))


class TlogCheckpoint(SQLModel, table=True):
    """A signed checkpoint (C2SP tlog-checkpoint in a signed note) of one tree size."""

    __tablename__ = "tlog_checkpoint"

    size: int = Field(sa_column=_bigint_key())
    root: bytes = Field(sa_column=_blob())
    note: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class PolicyArchive(SQLModel, table=True):
    """Every policy bundle that decided, kept by hash, so old decisions can be replayed."""

    __tablename__ = "policy_archive"

    sha256: str = Field(primary_key=True, max_length=64)
    version: str = Field(max_length=16)
    # {"file name": "Rego text", ...} as JSON, and the data file's exact text.
    modules: str = Field(sa_column=Column(Text, nullable=False))
    data_text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
