"""The audit event of an admin action, written in the same transaction as the change.

Rows go to the one `auditevent` table: `endpoint` names the action (`admin.org.approve`),
`detail` holds `{actor, action, target, before, after}` as JSON. Being in the change's
transaction, a change without its event (or an event without its change) cannot happen.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.admin.actor import Actor
from gateway.db.models import AuditEvent, utcnow
from gateway.reasons import Reason

_AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]


def snapshot(row: Any) -> dict[str, Any] | None:
    """A row mapping as JSON-ready data (datetimes as ISO text); None stays None."""
    if row is None:
        return None
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(row).items()}


async def record_admin_event(
    conn: AsyncConnection,
    *,
    actor: Actor,
    action: str,
    target: dict[str, Any],
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    org_id: str | None = None,
    tier: str | None = None,
    policy_version: str | None = None,
) -> str:
    event_id = uuid.uuid4().hex
    detail = {
        "actor": actor.as_dict(),
        "action": action,
        "target": target,
        "before": before,
        "after": after,
    }
    await conn.execute(
        insert(_AUDIT),
        {
            "id": event_id,
            "ts": utcnow(),
            "endpoint": f"admin.{action}",
            "subject": actor.subject,
            "client_id": actor.client_id,
            "org_id": org_id,
            "tier": tier,
            "model": None,
            "decision": "allow",
            "reasons": orjson.dumps([Reason.ALLOWED]).decode(),
            "status": 200,
            "policy_version": policy_version,
            "latency_ms": 0.0,
            "request_hash": None,
            "token_id": None,
            "detail": orjson.dumps(detail, default=str).decode(),
        },
    )
    return event_id


async def record_refusal(
    engine: AsyncEngine,
    *,
    actor: Actor,
    action: str,
    target: dict[str, Any],
    reasons: tuple[str, ...],
) -> None:
    """A refused admin action is an event too: who tried what, and why it was refused."""
    # The target came from the caller's request: bounded before it is stored.
    shown = {k: str(v)[:200] for k, v in target.items()}
    detail = {"actor": actor.as_dict(), "action": action, "target": shown}
    org_id = target.get("org_id")
    if not isinstance(org_id, str) or len(org_id) > 64:
        org_id = None
    async with engine.begin() as conn:
        await conn.execute(
            insert(_AUDIT),
            {
                "id": uuid.uuid4().hex,
                "ts": utcnow(),
                "endpoint": f"admin.{action}",
                "subject": actor.subject,
                "client_id": actor.client_id,
                "org_id": org_id,
                "tier": None,
                "model": None,
                "decision": "deny",
                "reasons": orjson.dumps(list(reasons)).decode(),
                "status": 403,
                "policy_version": None,
                "latency_ms": 0.0,
                "request_hash": None,
                "token_id": None,
                "detail": orjson.dumps(detail, default=str).decode(),
            },
        )
