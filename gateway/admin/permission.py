"""May this actor do this? Asked of the admin Rego policy (`tacgw.admin`), nowhere else.

The input is the actor (subject, its token's organization and roles), its memberships
as the database has them now, the action and its target. A deny raises `Forbidden` with
the policy's first reason; an engine that cannot decide raises `Unavailable` (fail closed).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin.actor import Actor
from gateway.admin.members import memberships_of
from gateway.errors import Forbidden, Unavailable
from gateway.policy.decision import AdminDecision
from gateway.policy.service import PolicyService
from gateway.reasons import Reason

_MESSAGES: dict[str, str] = {
    Reason.ADMIN_ROLE_REQUIRED: "This needs the admin role.",
    Reason.AUDITOR_READ_ONLY: "Auditors may read but not change anything.",
    Reason.NOT_YOUR_ORG: "Org admins act on their own organization only.",
    Reason.TIER_RAISE_FORBIDDEN: "Org admins cannot grant or restore a tier; an admin must.",
    Reason.ROLE_NOT_GRANTABLE: "Org admins may give their clients the org_admin role only.",
    Reason.UNKNOWN_ACTION: "Unknown admin action.",
}


async def decide(
    policy: PolicyService,
    engine: AsyncEngine,
    *,
    actor: Actor,
    action: str,
    target: dict[str, Any],
) -> AdminDecision:
    doc = {
        "principal": {"sub": actor.subject, "org_id": actor.org_id, "roles": list(actor.roles)},
        "memberships": await memberships_of(engine, subject=actor.subject),
        "action": action,
        "target": target,
    }
    return await policy.decide_admin(doc)


async def require(
    policy: PolicyService,
    engine: AsyncEngine,
    *,
    actor: Actor,
    action: str,
    target: dict[str, Any],
) -> AdminDecision:
    """The policy's allow, or the refusal as an error the API renders."""
    decision = await decide(policy, engine, actor=actor, action=action, target=target)
    if decision.allow:
        return decision
    # Every reason the engine passes on is a `Reason` (unknown ones became policy_error).
    first = Reason(decision.reasons[0])
    if first in (Reason.POLICY_ERROR, Reason.POLICY_UNAVAILABLE):
        raise Unavailable(first, "The permission decision could not be made; retry later.")
    message = _MESSAGES.get(first, "Not permitted.")
    raise Forbidden(first, message, reasons=decision.reasons)
