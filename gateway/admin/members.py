"""An organization's members: subjects with a role in it (`defender` or `org_admin`)."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import fields
from gateway.admin.actor import Actor
from gateway.admin.auditlog import record_admin_event, snapshot
from gateway.admin.schemas import MembershipPublic
from gateway.admin.store import MEMBER, org_row, write
from gateway.db.models import utcnow
from gateway.errors import BadRequest, NotFound
from gateway.reasons import Reason

ROLES = fields.MEMBER_ROLES


async def set_member(
    engine: AsyncEngine, *, actor: Actor, org_id: str, subject: str, role: str
) -> MembershipPublic:
    """Add `subject` to the organization with `role`, or change its role."""
    who = fields.text(subject, field="subject", max_len=fields.MAX_SUBJECT)
    if role not in ROLES:
        raise BadRequest(
            Reason.FIELD_INVALID, f"Unknown member role {role[:20]!r}; one of: {', '.join(ROLES)}."
        )
    async with write(engine) as conn:
        await org_row(conn, org_id)
        where = (MEMBER.c.org_id == org_id) & (MEMBER.c.subject == who)
        before = (await conn.execute(select(MEMBER).where(where))).mappings().first()
        if before is None:
            await conn.execute(
                insert(MEMBER),
                {
                    "org_id": org_id,
                    "subject": who,
                    "role": role,
                    "added_by": actor.subject,
                    "created_at": utcnow(),
                },
            )
        else:
            await conn.execute(update(MEMBER).where(where).values(role=role))
        after = (await conn.execute(select(MEMBER).where(where))).mappings().one()
        await record_admin_event(
            conn,
            actor=actor,
            action="member.set",
            target={"org_id": org_id, "subject": who, "role": role},
            before=snapshot(before),
            after=snapshot(after),
            org_id=org_id,
        )
    return MembershipPublic.model_validate(dict(after))


async def remove_member(engine: AsyncEngine, *, actor: Actor, org_id: str, subject: str) -> None:
    async with write(engine) as conn:
        where = (MEMBER.c.org_id == org_id) & (MEMBER.c.subject == subject)
        before = (await conn.execute(select(MEMBER).where(where))).mappings().first()
        if before is None:
            raise NotFound(Reason.MEMBER_NOT_FOUND, f"{subject[:200]!r} is not a member.")
        await conn.execute(delete(MEMBER).where(where))
        await record_admin_event(
            conn,
            actor=actor,
            action="member.remove",
            target={"org_id": org_id, "subject": subject},
            before=snapshot(before),
            after=None,
            org_id=org_id,
        )


async def list_members(engine: AsyncEngine, *, org_id: str) -> list[MembershipPublic]:
    async with engine.connect() as conn:
        await org_row(conn, org_id)
        query = select(MEMBER).where(MEMBER.c.org_id == org_id).order_by(MEMBER.c.subject)
        rows = (await conn.execute(query)).mappings().all()
    return [MembershipPublic.model_validate(dict(r)) for r in rows]


async def admin_of(engine: AsyncEngine, *, subject: str) -> list[str]:
    """The organizations in which `subject` is an org admin."""
    return sorted(
        m["org_id"]
        for m in await memberships_of(engine, subject=subject)
        if m["role"] == "org_admin"
    )


async def memberships_of(engine: AsyncEngine, *, subject: str) -> list[dict[str, str]]:
    """`[{org_id, role}]` of `subject`: the admin policy's `memberships` input."""
    query = select(MEMBER.c.org_id, MEMBER.c.role).where(MEMBER.c.subject == subject)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [{"org_id": r.org_id, "role": r.role} for r in rows]
