"""The tables. SQLite by default, PostgreSQL in production; the schema is owned by Alembic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
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
    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    name: str = Field(unique=True, max_length=200)
    # pending → active (verified by an admin) → suspended; only active orgs may call models.
    status: str = Field(default="pending", max_length=20)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class Client(SQLModel, table=True):
    """An OAuth client (client-credentials grant); the secret is stored only as a hash."""

    id: str = Field(primary_key=True, max_length=64)
    org_id: str = Field(foreign_key="organization.id", index=True, max_length=64)
    name: str = Field(max_length=200)
    secret_hash: str = Field(max_length=128)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    revoked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # Space-separated roles its tokens carry (`roles` claim), e.g. "auditor".
    roles: str = Field(default="", max_length=200, sa_column_kwargs={"server_default": ""})


class TrustGrant(SQLModel, table=True):
    """A tier held by an organization (or by one subject in it), until expiry or revocation."""

    __table_args__ = (Index("ix_trustgrant_org_subject", "org_id", "subject"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(foreign_key="organization.id", max_length=64)
    # None: the grant covers every subject of the organization.
    subject: str | None = Field(default=None, max_length=200)
    tier: str = Field(max_length=40)
    granted_by: str = Field(max_length=200)
    evidence: str = Field(default="", sa_column=Column(Text, nullable=False))
    granted_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    expires_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class ModelEntry(SQLModel, table=True):
    """A model the gateway serves: which upstream, under which name, from which tier up."""

    name: str = Field(primary_key=True, max_length=200)
    upstream_url: str = Field(max_length=500)
    # The model name the upstream knows; callers only ever see `name`.
    upstream_model: str = Field(max_length=200)
    tier_floor: str = Field(max_length=40)
    enabled: bool = True
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
