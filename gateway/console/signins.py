"""Console sign-ins and sign-outs as audit events, like every other admin action.

They are leaves of the same transparency log (`gateway/admin/auditlog.py`): an auditor
sees who opened the console and when, and every refused attempt. A refused attempt names
no account: what was typed as a name may be a password typed in the wrong field.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin.actor import Actor
from gateway.admin.auditlog import record_admin_event, record_refusal

# The subject of an event whose caller is not known (a refused sign-in).
ANONYMOUS = Actor(subject="console:anonymous")


async def signed_in(engine: AsyncEngine, *, actor: Actor, method: str) -> None:
    async with engine.begin() as conn:
        await record_admin_event(
            conn,
            actor=actor,
            action="console.sign_in",
            target={"method": method},
            before=None,
            after={"roles": list(actor.roles)},
        )


async def refused(engine: AsyncEngine, *, method: str, reason: str) -> None:
    await record_refusal(
        engine,
        actor=ANONYMOUS,
        action="console.sign_in",
        target={"method": method},
        reasons=(reason,),
    )


async def signed_out(engine: AsyncEngine, *, actor: Actor) -> None:
    async with engine.begin() as conn:
        await record_admin_event(
            conn,
            actor=actor,
            action="console.sign_out",
            target={},
            before={"roles": list(actor.roles)},
            after=None,
        )
