"""Trust grants: give a tier (to an organization, or to one subject in it), revoke one,
list them, find the ones about to lapse. Grants are never deleted, only revoked.

The top tier goes only to whole organizations verified in a critical-infrastructure
sector (through `orgs.approve` or here), never to an individual.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import fields
from gateway.admin.actor import Actor
from gateway.admin.auditlog import record_admin_event, snapshot
from gateway.admin.schemas import TrustGrantPublic
from gateway.admin.store import GRANT, org_row, write
from gateway.db.models import utcnow
from gateway.errors import BadRequest, Conflict, NotFound
from gateway.reasons import Reason
from gateway.trust.lifecycle import OrgStatus
from gateway.trust.tiers import Tiers


def _public(row: Any, now: datetime) -> TrustGrantPublic:
    data = dict(row)
    live = data["revoked_at"] is None and (data["expires_at"] is None or data["expires_at"] > now)
    return TrustGrantPublic.model_validate({**data, "live": live})


async def grant(
    engine: AsyncEngine,
    *,
    actor: Actor,
    tiers: Tiers,
    org_id: str,
    tier: str,
    reason: str,
    subject: str | None = None,
    evidence: str = "",
    days: int | None = None,
    expires_at: datetime | None = None,
) -> TrustGrantPublic:
    if tier not in tiers or tiers.rank(tier) == 0:
        raise BadRequest(
            Reason.TIER_UNKNOWN,
            f"Grant one of: {', '.join(tiers.names[1:])}; {tier[:40]!r} is not one.",
        )
    top = tiers.rank(tier) == len(tiers.names) - 1
    if subject is not None:
        subject = fields.text(subject, field="subject", max_len=fields.MAX_SUBJECT)
        if top:
            raise BadRequest(
                Reason.TIER_NOT_FOR_INDIVIDUALS,
                f"{tier} is granted to verified critical-infrastructure organizations only, "
                "never to an individual.",
            )
    why = fields.text(reason, field="reason", max_len=fields.MAX_REASON)
    proof = fields.text(evidence, field="evidence", max_len=fields.MAX_EVIDENCE, required=False)
    now = utcnow()
    until = fields.expiry(days=days, expires_at=expires_at, now=now)
    async with write(engine) as conn:
        org = await org_row(conn, org_id)
        if org["status"] != OrgStatus.VERIFIED:
            raise Conflict(
                Reason.NOT_VERIFIED,
                f"The organization is {org['status']}; grants go to verified organizations.",
            )
        if top and not org["sector"]:
            raise BadRequest(
                Reason.SECTOR_UNKNOWN,
                f"{tier} needs a critical-infrastructure sector on the organization.",
            )
        row: dict[str, Any] = {
            "org_id": org_id,
            "subject": subject,
            "tier": tier,
            "granted_by": actor.subject,
            "evidence": proof,
            "reason": why,
            "revoke_reason": "",
            "granted_at": now,
            "expires_at": until,
            "revoked_at": None,
        }
        row["id"] = (await conn.execute(insert(GRANT).returning(GRANT.c.id), row)).scalar_one()
        await record_admin_event(
            conn,
            actor=actor,
            action="grant.create",
            target={"org_id": org_id, "subject": subject, "grant_id": row["id"]},
            before=None,
            after=snapshot(row),
            org_id=org_id,
            tier=tier,
        )
    return _public(row, now)


async def get_grant(engine: AsyncEngine, *, grant_id: int) -> TrustGrantPublic:
    async with engine.connect() as conn:
        row = (await conn.execute(select(GRANT).where(GRANT.c.id == grant_id))).mappings().first()
    if row is None:
        raise NotFound(Reason.GRANT_NOT_FOUND, f"No grant {grant_id}.")
    return _public(row, utcnow())


async def revoke_grant(
    engine: AsyncEngine, *, actor: Actor, grant_id: int, reason: str
) -> TrustGrantPublic:
    """Revoke at once: the next request under it is refused with `grant_revoked`."""
    why = fields.text(reason, field="reason", max_len=fields.MAX_REASON)
    async with write(engine) as conn:
        before = (
            (await conn.execute(select(GRANT).where(GRANT.c.id == grant_id))).mappings().first()
        )
        if before is None:
            raise NotFound(Reason.GRANT_NOT_FOUND, f"No grant {grant_id}.")
        now = utcnow()
        done = await conn.execute(
            update(GRANT)
            .where(GRANT.c.id == grant_id, GRANT.c.revoked_at.is_(None))
            .values(revoked_at=now, revoke_reason=why)
        )
        if done.rowcount != 1:
            raise Conflict(Reason.ALREADY_REVOKED, f"Grant {grant_id} is already revoked.")
        after = (await conn.execute(select(GRANT).where(GRANT.c.id == grant_id))).mappings().one()
        await record_admin_event(
            conn,
            actor=actor,
            action="grant.revoke",
            target={"grant_id": grant_id, "reason": why},
            before=snapshot(before),
            after=snapshot(after),
            org_id=after["org_id"],
            tier=after["tier"],
        )
    return _public(after, now)


async def list_grants(
    engine: AsyncEngine,
    *,
    org_id: str | None = None,
    subject: str | None = None,
    live_only: bool = False,
) -> list[TrustGrantPublic]:
    now = utcnow()
    query = select(GRANT).order_by(GRANT.c.id)
    if org_id is not None:
        query = query.where(GRANT.c.org_id == org_id)
    if subject is not None:
        query = query.where(GRANT.c.subject == subject)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    grants = [_public(r, now) for r in rows]
    return [g for g in grants if g.live] if live_only else grants


async def expiring(
    engine: AsyncEngine, *, within: timedelta, now: datetime | None = None
) -> list[TrustGrantPublic]:
    """Live grants that lapse within `within` from now, soonest first: what to renew."""
    if within <= timedelta(0):
        raise BadRequest(Reason.FIELD_INVALID, "The window must be at least one day.")
    start = now or utcnow()
    query = (
        select(GRANT)
        .where(
            GRANT.c.revoked_at.is_(None),
            GRANT.c.expires_at > start,
            GRANT.c.expires_at <= start + within,
        )
        .order_by(GRANT.c.expires_at)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_public(r, start) for r in rows]
