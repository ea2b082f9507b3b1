"""Data functions behind the admin CLI (and, later, the admin API); keyword arguments only."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.admin import targets
from gateway.db.models import (
    AuditEvent,
    Client,
    ModelEntry,
    Organization,
    OrgIssuer,
    TrustGrant,
)
from gateway.issuer.secrets import (
    hash_secret,
    new_client_id,
    new_client_secret,
    verify_secret,
)
from gateway.routing.targets import HTTP_SCHEMES, check_target_url


@dataclass(frozen=True)
class IssuedCredentials:
    client_id: str
    client_secret: str  # shown once; only its hash is stored


async def create_org(
    engine: AsyncEngine,
    *,
    name: str,
    status: str = "verified",
    sector: str | None = None,
    country: str | None = None,
) -> Organization:
    """Bootstrap an organization directly (no application, no proof): operators only."""
    async with AsyncSession(engine, expire_on_commit=False) as session:
        org = Organization(name=name, status=status, sector=sector, country=country)
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


def check_upstream_url(
    url: str, *, allowed_hosts: Sequence[str] = (), allowed_schemes: Sequence[str] = HTTP_SCHEMES
) -> str:
    """The URL, if it can be an upstream base URL; otherwise every call would fail with 502."""
    return check_target_url(url, allowed_hosts=allowed_hosts, allowed_schemes=allowed_schemes)


async def client_with_secret(
    engine: AsyncEngine, *, client_id: str, client_secret: str
) -> Client | None:
    """The client, if it exists, is not revoked and `client_secret` is its secret."""
    async with AsyncSession(engine) as session:
        client = await session.get(Client, client_id)
    if client is None or client.revoked_at is not None:
        return None
    return client if verify_secret(client_secret, client.secret_hash) else None


async def add_model(
    engine: AsyncEngine,
    *,
    name: str,
    tier_floor: str,
    upstream_url: str | None = None,
    upstream_model: str | None = None,
    allowed_hosts: Sequence[str] = (),
    allowed_schemes: Sequence[str] = HTTP_SCHEMES,
) -> ModelEntry:
    """Add a model or change its tier floor. With `upstream_url`, that URL becomes the
    model's only upstream target (the others are removed); manage several targets with
    `gateway.admin.targets`."""
    if upstream_url is not None:
        check_target_url(upstream_url, allowed_hosts=allowed_hosts, allowed_schemes=allowed_schemes)
    async with AsyncSession(engine, expire_on_commit=False) as session:
        entry = await session.get(ModelEntry, name)
        if entry is None:
            entry = ModelEntry(name=name, tier_floor=tier_floor)
        entry.tier_floor = tier_floor
        session.add(entry)
        await session.flush()
        if upstream_url is not None:
            await targets.replace_targets(
                session, model=name, url=upstream_url, upstream_model=upstream_model or name
            )
        await session.commit()
        return entry


async def recent_audit(engine: AsyncEngine, *, limit: int = 20) -> list[AuditEvent]:
    async with AsyncSession(engine) as session:
        query = select(AuditEvent).order_by(AuditEvent.ts.desc()).limit(limit)  # type: ignore[attr-defined]
        result = await session.exec(query)  # type: ignore[call-overload]
        return list(result.scalars().all())


async def list_orgs(engine: AsyncEngine) -> list[Organization]:
    async with AsyncSession(engine) as session:
        query = select(Organization).order_by(Organization.__table__.c.name)  # type: ignore[attr-defined]
        result = await session.exec(query)  # type: ignore[call-overload]
        return list(result.scalars().all())


async def active_tiers(engine: AsyncEngine, *, at: datetime) -> dict[str, list[str]]:
    """Organization id -> tiers of its grants that are neither revoked nor expired at `at`."""
    async with AsyncSession(engine) as session:
        result = await session.exec(select(TrustGrant))  # type: ignore[call-overload]
        tiers: dict[str, list[str]] = {}
        for grant in result.scalars().all():
            if grant.revoked_at is None and (grant.expires_at is None or grant.expires_at > at):
                tiers.setdefault(grant.org_id, []).append(grant.tier)
        return tiers


async def list_clients(engine: AsyncEngine, *, org_id: str | None = None) -> list[Client]:
    async with AsyncSession(engine) as session:
        query = select(Client).order_by(Client.created_at)  # type: ignore[arg-type]
        if org_id is not None:
            query = query.where(Client.__table__.c.org_id == org_id)  # type: ignore[attr-defined]
        result = await session.exec(query)  # type: ignore[call-overload]
        return list(result.scalars().all())


async def list_models(engine: AsyncEngine) -> list[ModelEntry]:
    async with AsyncSession(engine) as session:
        query = select(ModelEntry).order_by(ModelEntry.name)
        result = await session.exec(query)  # type: ignore[call-overload]
        return list(result.scalars().all())


def check_client_jwks(jwks: Any) -> dict[str, Any]:
    """A client's public JWKS for private_key_jwt, if usable: public asymmetric keys, each
    with a `kid`. A private key here would mean its owner handed it out: refused."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ValueError('a JWKS is a JSON object {"keys": [...]} with at least one key')
    for jwk in jwks["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") not in ("EC", "RSA", "OKP"):
            raise ValueError("every key must be an EC, RSA or OKP public key (no shared secrets)")
        if any(member in jwk for member in ("d", "p", "q", "dp", "dq", "qi")):
            raise ValueError(f"key {jwk.get('kid')!r} holds a private part: register public keys")
        if not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
            raise ValueError("every key needs a kid")
        try:
            jwt.PyJWK(jwk)
        except jwt.PyJWTError as exc:
            raise ValueError(f"key {jwk['kid']!r} is not a valid JWK: {exc}") from None
    return {"keys": jwks["keys"]}


async def set_client_jwks(
    engine: AsyncEngine, *, client_id: str, jwks: dict[str, Any] | None
) -> None:
    """Register (or with None, remove) the client's public keys for private_key_jwt."""
    stored = json.dumps(check_client_jwks(jwks)) if jwks is not None else None
    async with AsyncSession(engine) as session:
        client = await session.get(Client, client_id)
        if client is None:
            raise LookupError(f"no client {client_id}")
        client.jwks = stored
        await session.commit()


async def bind_issuer(
    engine: AsyncEngine,
    *,
    org_id: str,
    issuer: str,
    org_claim: str | None = None,
    subject: str | None = None,
) -> OrgIssuer:
    """Bind an organization to a federated issuer (narrowed by claim value and subject)."""
    async with AsyncSession(engine, expire_on_commit=False) as session:
        binding = OrgIssuer(
            org_id=org_id, issuer=issuer.rstrip("/"), org_claim=org_claim, subject=subject
        )
        session.add(binding)
        await session.commit()
        return binding


async def unbind_issuer(engine: AsyncEngine, *, binding_id: int) -> None:
    async with AsyncSession(engine) as session:
        binding = await session.get(OrgIssuer, binding_id)
        if binding is None:
            raise LookupError(f"no issuer binding {binding_id}")
        await session.delete(binding)
        await session.commit()


async def list_issuer_bindings(
    engine: AsyncEngine, *, org_id: str | None = None
) -> list[OrgIssuer]:
    async with AsyncSession(engine) as session:
        query = select(OrgIssuer).order_by(OrgIssuer.__table__.c.id)  # type: ignore[attr-defined]
        if org_id is not None:
            query = query.where(OrgIssuer.__table__.c.org_id == org_id)  # type: ignore[attr-defined]
        result = await session.exec(query)  # type: ignore[call-overload]
        return list(result.scalars().all())
