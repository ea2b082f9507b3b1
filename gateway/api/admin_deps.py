"""Who is calling the admin and `/orgs` APIs, and may they do this? As dependencies.

`CallerDep` verifies the bearer token and re-reads the client (a revoked client is
refused at once); its roles are the token's `roles` claim as far as the client still
holds them in the database, so removing a role takes effect on the next call.
`Permit("org.approve")` asks the admin policy (`policies/admin.rego`) about this action on
this target; a refusal is a 403 with the policy's reason, and is itself audited. No route
checks a permission in its body.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.admin import clients, grants, permission
from gateway.admin.actor import Actor
from gateway.admin.auditlog import record_refusal
from gateway.api.admin_schema import MAX_ROW_ID
from gateway.api.deps import RuntimeDep
from gateway.errors import Forbidden, GatewayError, NotFound
from gateway.reasons import Reason
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, scheme_name="bearer", bearerFormat="JWT")


async def current_actor(
    request: Request,
    rt: RuntimeDep,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Actor:
    principal = await rt.identity.authenticate(
        request.headers.get("authorization"),
        proof=request.headers.get("dpop"),
        method=request.method,
        path=request.url.path,
    )
    trust = await rt.trust.resolve(principal)  # client_revoked / client_unknown: 401
    roles = tuple(r for r in principal.roles if r in trust.roles)
    return Actor(
        subject=principal.subject,
        roles=roles,
        org_id=principal.org_id,
        client_id=principal.client_id,
    )


CallerDep = Annotated[Actor, Depends(current_actor)]

# Body fields the admin policy judges (whose org, which roles); all else it never sees.
_TARGET_FIELDS = ("org_id", "roles", "tier", "subject")


async def _target(rt: Any, request: Request) -> dict[str, Any]:
    params = request.path_params
    target: dict[str, Any] = {}
    if "org_id" in params:
        target["org_id"] = params["org_id"]
    elif "client_id" in params:
        client = await clients.get_client(rt.admin.engine, client_id=params["client_id"])
        target |= {"org_id": client.org_id, "client_id": client.id}
    elif "grant_id" in params:
        raw = str(params["grant_id"])
        # The route's own validation says why; no such grant either way (ids are INTEGER:
        # a larger number would fail in the database, not be missing).
        if not raw.isdigit() or int(raw) > MAX_ROW_ID:
            raise NotFound(Reason.GRANT_NOT_FOUND, f"No grant {raw[:40]!r}.")
        grant = await grants.get_grant(rt.admin.engine, grant_id=int(raw))
        target |= {"org_id": grant.org_id, "grant_id": grant.id}
    elif "org_id" in request.query_params:
        target["org_id"] = request.query_params["org_id"]
    if request.method in ("POST", "PUT") and await request.body():
        try:
            body = await request.json()
        except ValueError:
            body = None  # not JSON: the route's own validation refuses it with 400
        if isinstance(body, dict):
            for key in _TARGET_FIELDS:
                if key in body and key not in target and _well_typed(key, body[key]):
                    target[key] = body[key]
    return target


def _well_typed(key: str, value: Any) -> bool:
    """Only values of the shape the policy expects reach it; anything else is left to the
    route's validation (400), so a malformed body can never make the decision fail (503)."""
    if key == "roles":
        return isinstance(value, list) and all(isinstance(r, str) for r in value)
    return isinstance(value, str)


async def authorize(rt: Any, *, actor: Actor, action: str, target: dict[str, Any]) -> None:
    """The admin policy's decision on `action` for `actor`; a refusal is audited and raised.

    Shared with the console (gateway/console/guard.py), so a page and an API call are
    judged, and their refusals recorded, the same way.
    """
    try:
        await permission.require(
            rt.admin.policy, rt.admin.engine, actor=actor, action=action, target=target
        )
    except Forbidden as exc:
        await record_refusal(
            rt.admin.engine, actor=actor, action=action, target=target, reasons=exc.reasons
        )
        raise


def permit(action: str) -> Callable[..., Awaitable[Actor]]:
    """A dependency: the caller, once the admin policy allows `action` on the target."""

    async def check(request: Request, rt: RuntimeDep, actor: CallerDep) -> Actor:
        target = await _target(rt, request)
        await authorize(rt, actor=actor, action=action, target=target)
        # Permitted: a refusal the action meets later (its state) is audited by the
        # app's error handler with this (`audit_refused_action`).
        request.state.admin_action = (actor, action, target)
        return actor

    check.__name__ = f"permit_{action.replace('.', '_')}"
    return check


def Permit(action: str) -> Any:
    """`actor: Annotated[Actor, Permit("org.approve")]`: the caller, once permitted."""
    return Depends(permit(action))


async def audit_refused_action(rt: Runtime, request: Request, error: GatewayError) -> None:
    """A permitted admin change refused by its state (404, 409, ...) is an audit event,
    as its permission refusal would have been. A store that cannot take it (then down
    for the action too) is logged, and the caller still gets the action's own error."""
    permitted = getattr(request.state, "admin_action", None)
    if permitted is None or request.method in ("GET", "HEAD"):
        return  # reads (an unknown decision id) change nothing: not actions
    if not 400 <= error.status < 500 or error.status == 403:
        return
    actor, action, target = permitted
    try:
        await record_refusal(
            rt.admin.engine,
            actor=actor,
            action=action,
            target=target,
            reasons=error.reasons,
            status=error.status,
        )
    except Exception as exc:  # the answer stays the action's own error
        log.error("audit of a refused admin action failed: %s", type(exc).__name__)
