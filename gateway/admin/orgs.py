"""Organizations through their lifecycle: apply, review (approve, reject), suspend,
reinstate, revoke. Every move is a compare-and-set on `version` and writes its audit
event in the same transaction; of two admins acting at once, one wins and the other gets
a 409 naming what changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.admin import fields
from gateway.admin.actor import Actor
from gateway.admin.auditlog import record_admin_event, snapshot
from gateway.admin.schemas import OrganizationCreate, OrganizationPublic, TrustGrantPublic
from gateway.admin.store import CHALLENGE, GRANT, MEMBER, ORG, org_row, write
from gateway.db.models import new_id, utcnow
from gateway.errors import BadRequest, Conflict
from gateway.reasons import Reason
from gateway.trust.domains import normalise_domain
from gateway.trust.lifecycle import OrgAction, OrgStatus, allowed_from, next_status
from gateway.trust.proof import Result
from gateway.trust.sectors import check_country, check_sector
from gateway.trust.tiers import Tiers

# Runs inside the transition's transaction, after the status moved; returns what it did.
Effect = Callable[[AsyncConnection, dict[str, Any], datetime], Awaitable[dict[str, Any]]]


async def apply(
    engine: AsyncEngine, *, actor: Actor, application: OrganizationCreate
) -> OrganizationPublic:
    """Record an application; the applicant becomes the organization's first org admin."""
    name = fields.text(application.name, field="name", max_len=fields.MAX_NAME)
    domain = normalise_domain(application.domain)
    sector = check_sector(application.sector)
    country = check_country(application.country)
    evidence = fields.text(
        application.evidence, field="evidence", max_len=fields.MAX_EVIDENCE, required=False
    )
    now = utcnow()
    org: dict[str, Any] = {
        "id": new_id(),
        "name": name,
        "status": OrgStatus.APPLIED,
        "domain": domain,
        "sector": sector,
        "country": country,
        "evidence": evidence,
        "applied_by": actor.subject,
        "status_reason": "",
        "version": 1,
        "created_at": now,
        "updated_at": None,
    }
    try:
        async with write(engine) as conn:
            await _refuse_duplicate(conn, name=name, domain=domain)
            await conn.execute(insert(ORG), org)
            await conn.execute(
                insert(MEMBER),
                {
                    "org_id": org["id"],
                    "subject": actor.subject,
                    "role": "org_admin",
                    "added_by": actor.subject,
                    "created_at": now,
                },
            )
            await record_admin_event(
                conn,
                actor=actor,
                action="org.apply",
                target={"org_id": org["id"], "domain": domain},
                before=None,
                after=snapshot(org),
                org_id=org["id"],
            )
    except IntegrityError as exc:
        # Lost a race with an identical application between the check and the insert.
        raise Conflict(Reason.DOMAIN_TAKEN, f"{domain} is already registered.") from exc
    return OrganizationPublic.model_validate(org)


async def _refuse_duplicate(conn: AsyncConnection, *, name: str, domain: str) -> None:
    query = select(ORG.c.name, ORG.c.domain).where((ORG.c.name == name) | (ORG.c.domain == domain))
    for row in (await conn.execute(query)).all():
        if row.domain == domain:
            raise Conflict(
                Reason.DOMAIN_TAKEN, f"{domain} is already registered by another organization."
            )
        raise Conflict(Reason.NAME_TAKEN, f"An organization named {name!r} already exists.")


async def get_org(engine: AsyncEngine, *, org_id: str) -> OrganizationPublic:
    async with engine.connect() as conn:
        return OrganizationPublic.model_validate(await org_row(conn, org_id))


async def list_orgs(engine: AsyncEngine, *, status: str | None = None) -> list[OrganizationPublic]:
    query = select(ORG).order_by(ORG.c.created_at, ORG.c.name)
    if status is not None:
        if status not in OrgStatus.__members__.values():
            raise BadRequest(
                Reason.FIELD_INVALID,
                f"Unknown status {status[:20]!r}; one of: {', '.join(OrgStatus)}.",
            )
        query = query.where(ORG.c.status == status)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [OrganizationPublic.model_validate(dict(r)) for r in rows]


async def transition(
    engine: AsyncEngine,
    *,
    actor: Actor,
    org_id: str,
    action: OrgAction,
    reason: str | None = None,
    expected_version: int | None = None,
    effect: Effect | None = None,
) -> tuple[OrganizationPublic, dict[str, Any]]:
    """Move the organization by `action`, compare-and-set on its version, audited."""
    async with write(engine) as conn:
        before = await org_row(conn, org_id)
        if expected_version is not None and before["version"] != expected_version:
            raise _stale(before)
        target = next_status(before["status"], action)
        if target is None:
            raise Conflict(
                Reason.TRANSITION_NOT_ALLOWED,
                f"The organization is {before['status']}; {action} needs it to be "
                f"{' or '.join(allowed_from(action))}.",
            )
        now = utcnow()
        values: dict[str, Any] = {
            "status": target,
            "version": before["version"] + 1,
            "updated_at": now,
        }
        if reason is not None:
            values["status_reason"] = reason
        moved = await conn.execute(
            update(ORG)
            .where(ORG.c.id == org_id, ORG.c.version == before["version"])
            .values(**values)
        )
        if moved.rowcount != 1:
            raise _stale(await org_row(conn, org_id))
        done = await effect(conn, before, now) if effect else {}
        after = await org_row(conn, org_id)
        await record_admin_event(
            conn,
            actor=actor,
            action=f"org.{action}",
            target={"org_id": org_id, "reason": reason, **done},
            before=snapshot(before),
            after=snapshot(after),
            org_id=org_id,
            tier=done.get("tier"),
        )
    return OrganizationPublic.model_validate(after), done


def _stale(current: dict[str, Any]) -> Conflict:
    return Conflict(
        Reason.VERSION_CONFLICT,
        f"The organization changed meanwhile (now {current['status']}, version "
        f"{current['version']}); reload and try again.",
    )


async def approve(
    engine: AsyncEngine,
    *,
    actor: Actor,
    tiers: Tiers,
    org_id: str,
    tier: str,
    days: int | None = None,
    expires_at: datetime | None = None,
    reason: str = "",
    expected_version: int | None = None,
) -> tuple[OrganizationPublic, TrustGrantPublic]:
    """verifying → verified, with an organization-wide grant of `tier` until its expiry."""
    if tier not in tiers or tiers.rank(tier) == 0:
        raise BadRequest(
            Reason.TIER_UNKNOWN,
            f"Approve with one of: {', '.join(tiers.names[1:])}; {tier[:40]!r} is not one.",
        )
    note = fields.text(reason, field="reason", max_len=fields.MAX_REASON, required=False)

    async def grant(conn: AsyncConnection, before: dict[str, Any], now: datetime) -> dict[str, Any]:
        proof = await _passed_proof(conn, org_id)
        if tiers.rank(tier) == len(tiers.names) - 1 and not before["sector"]:
            # The top tier is for critical-infrastructure defenders: the sector says which.
            raise BadRequest(
                Reason.SECTOR_UNKNOWN,
                f"{tier} needs a critical-infrastructure sector on the organization.",
            )
        row = {
            "org_id": org_id,
            "subject": None,
            "tier": tier,
            "granted_by": actor.subject,
            "evidence": f"{proof['method']} proof, challenge {proof['id']}, "
            f"checked {proof['checked_at']:%Y-%m-%dT%H:%M:%SZ}:\n{proof['evidence']}",
            "reason": note,
            "revoke_reason": "",
            "granted_at": now,
            "expires_at": fields.expiry(days=days, expires_at=expires_at, now=now),
            "revoked_at": None,
        }
        result = await conn.execute(insert(GRANT).returning(GRANT.c.id), row)
        row["id"] = result.scalar_one()
        return {"tier": tier, "grant": snapshot(row)}

    org, done = await transition(
        engine,
        actor=actor,
        org_id=org_id,
        action=OrgAction.APPROVE,
        reason=note,
        expected_version=expected_version,
        effect=grant,
    )
    grant_row = dict(done["grant"])
    return org, TrustGrantPublic.model_validate({**grant_row, "live": True})


async def _passed_proof(conn: AsyncConnection, org_id: str) -> dict[str, Any]:
    query = (
        select(CHALLENGE)
        .where(CHALLENGE.c.org_id == org_id, CHALLENGE.c.result == Result.PASSED)
        .order_by(CHALLENGE.c.checked_at.desc())
        .limit(1)
    )
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise Conflict(
            Reason.PROOF_MISSING,
            "No domain proof has passed for this organization; check a challenge first.",
        )
    return dict(row)


async def reject(
    engine: AsyncEngine,
    *,
    actor: Actor,
    org_id: str,
    reason: str,
    expected_version: int | None = None,
) -> OrganizationPublic:
    return await _move(
        engine, actor, org_id, OrgAction.REJECT, reason, expected_version, reason_required=True
    )


async def suspend(
    engine: AsyncEngine,
    *,
    actor: Actor,
    org_id: str,
    reason: str,
    expected_version: int | None = None,
) -> OrganizationPublic:
    """verified → suspended: every member is refused (`org_suspended`); grants are kept."""
    return await _move(
        engine, actor, org_id, OrgAction.SUSPEND, reason, expected_version, reason_required=True
    )


async def reinstate(
    engine: AsyncEngine,
    *,
    actor: Actor,
    org_id: str,
    reason: str = "",
    expected_version: int | None = None,
) -> OrganizationPublic:
    """suspended → verified: grants that are still live count again."""
    return await _move(
        engine, actor, org_id, OrgAction.REINSTATE, reason, expected_version, reason_required=False
    )


async def _move(
    engine: AsyncEngine,
    actor: Actor,
    org_id: str,
    action: OrgAction,
    reason: str,
    expected_version: int | None,
    *,
    reason_required: bool,
) -> OrganizationPublic:
    """A status move that changes nothing but the organization row (and its audit event)."""
    why = fields.text(reason, field="reason", max_len=fields.MAX_REASON, required=reason_required)
    org, _ = await transition(
        engine,
        actor=actor,
        org_id=org_id,
        action=action,
        reason=why,
        expected_version=expected_version,
    )
    return org


async def revoke(
    engine: AsyncEngine,
    *,
    actor: Actor,
    org_id: str,
    reason: str,
    expected_version: int | None = None,
) -> OrganizationPublic:
    """→ revoked, for good: every grant of the organization is revoked with it."""
    why = fields.text(reason, field="reason", max_len=fields.MAX_REASON)

    async def revoke_grants(
        conn: AsyncConnection, before: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        result = await conn.execute(
            update(GRANT)
            .where(GRANT.c.org_id == org_id, GRANT.c.revoked_at.is_(None))
            .values(revoked_at=now, revoke_reason=f"organization revoked: {why}")
        )
        return {"grants_revoked": result.rowcount}

    org, _ = await transition(
        engine,
        actor=actor,
        org_id=org_id,
        action=OrgAction.REVOKE,
        reason=why,
        expected_version=expected_version,
        effect=revoke_grants,
    )
    return org
