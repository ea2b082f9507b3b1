"""Console sign-ins and sign-outs as audit events, like every other admin action.

They are leaves of the same transparency log (`gateway/admin/auditlog.py`): an auditor
sees who opened the console and when, and every refused attempt. A refused attempt names
no account: what was typed as a name may be a password typed in the wrong field.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin.actor import Actor
from gateway.admin.auditlog import record_admin_event, record_refusal

# The subject of an event whose caller is not known (a refused sign-in).
ANONYMOUS = Actor(subject="console:anonymous")


async def signed_in(engine: AsyncEngine, *, actor: Actor, method: str) -> None:
    roles = {"roles": list(actor.roles)}
    await _done(engine, actor, "console.sign_in", {"method": method}, before=None, after=roles)


async def refused(engine: AsyncEngine, *, method: str, reason: str) -> None:
    await record_refusal(
        engine,
        actor=ANONYMOUS,
        action="console.sign_in",
        target={"method": method},
        reasons=(reason,),
    )


async def signed_out(engine: AsyncEngine, *, actor: Actor) -> None:
    roles = {"roles": list(actor.roles)}
    await _done(engine, actor, "console.sign_out", {}, before=roles, after=None)


async def _done(
    engine: AsyncEngine,
    actor: Actor,
    action: str,
    target: dict[str, Any],
    *,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    async with engine.begin() as conn:
        await record_admin_event(
            conn, actor=actor, action=action, target=target, before=before, after=after
        )
