"""Data functions behind the admin CLI (and, later, the admin API); keyword arguments only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db.models import AuditEvent, Client, ModelEntry, Organization, TrustGrant
from gateway.identity.secrets import hash_secret, new_client_id, new_client_secret


@dataclass(frozen=True)
class IssuedCredentials:
    client_id: str
    client_secret: str  # shown once; only its hash is stored


async def create_org(engine: AsyncEngine, *, name: str, status: str = "verified") -> Organization:
    async with AsyncSession(engine, expire_on_commit=False) as session:
        org = Organization(name=name, status=status)
        session.add(org)
        await session.commit()
        return org


async def find_org(engine: AsyncEngine, *, name: str) -> Organization | None:
    async with AsyncSession(engine, expire_on_commit=False) as session:
        query = select(Organization).where(Organization.__table__.c.name == name)  # type: ignore[attr-defined]
        result = await session.exec(query)  # type: ignore[call-overload]
        return result.scalars().first()


async def set_org_status(engine: AsyncEngine, *, org_id: str, status: str) -> None:
    async with AsyncSession(engine) as session:
        org = await session.get(Organization, org_id)
        if org is None:
            raise LookupError(f"no organization {org_id}")
        org.status = status
        await session.commit()


async def grant_tier(
    engine: AsyncEngine,
    *,
    org_id: str,
    tier: str,
    granted_by: str,
    evidence: str = "",
    subject: str | None = None,
    expires_at: datetime | None = None,
) -> TrustGrant:
    async with AsyncSession(engine, expire_on_commit=False) as session:
        grant = TrustGrant(
            org_id=org_id,
            tier=tier,
            granted_by=granted_by,
            evidence=evidence,
            subject=subject,
            expires_at=expires_at,
        )
        session.add(grant)
        await session.commit()
        return grant


async def revoke_grant(engine: AsyncEngine, *, grant_id: int, at: datetime) -> None:
    async with AsyncSession(engine) as session:
        grant = await session.get(TrustGrant, grant_id)
        if grant is None:
            raise LookupError(f"no grant {grant_id}")
        grant.revoked_at = at
        await session.commit()


async def create_client(engine: AsyncEngine, *, org_id: str, name: str) -> IssuedCredentials:
    secret = new_client_secret()
    client = Client(id=new_client_id(), org_id=org_id, name=name, secret_hash=hash_secret(secret))
    issued = IssuedCredentials(client_id=client.id, client_secret=secret)
    async with AsyncSession(engine) as session:
        session.add(client)
        await session.commit()
    return issued


async def add_model(
    engine: AsyncEngine, *, name: str, upstream_url: str, upstream_model: str, tier_floor: str
) -> ModelEntry:
    async with AsyncSession(engine, expire_on_commit=False) as session:
        entry = await session.get(ModelEntry, name) or ModelEntry(
            name=name, upstream_url="", upstream_model="", tier_floor=""
        )
        entry.upstream_url, entry.upstream_model, entry.tier_floor = (
            upstream_url,
            upstream_model,
            tier_floor,
        )
        session.add(entry)
        await session.commit()
        return entry


async def recent_audit(engine: AsyncEngine, *, limit: int = 20) -> list[AuditEvent]:
    async with AsyncSession(engine) as session:
        query = select(AuditEvent).order_by(AuditEvent.ts.desc()).limit(limit)  # type: ignore[attr-defined]
        result = await session.exec(query)  # type: ignore[call-overload]
        return list(result.scalars().all())
