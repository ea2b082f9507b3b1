"""The audit event of an admin action, written in the same transaction as the change.

Rows go to the one `auditevent` table: `endpoint` names the action (`admin.org.approve`),
`detail` holds `{actor, action, target, before, after}` as JSON. Being in the change's
transaction, a change without its event (or an event without its change) cannot happen.

Each event is also a leaf of the audit transparency log (`gateway/audit/ledger.py`),
appended in that same transaction under the log's append lock (the `tlog_head` row on
PostgreSQL; SQLite has one writer), exactly as the audit writer appends decisions: the
log has no holes where admin actions happened, and their order is the commit order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.admin.actor import Actor
from gateway.audit import ledger
from gateway.audit.canonical import canonical_bytes
from gateway.audit.event import Actor as EventActor
from gateway.audit.event import admin_event
from gateway.audit.ids import new_event_id
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
    event_id = new_event_id()
    detail = {
        "actor": actor.as_dict(),
        "action": action,
        "target": target,
        "before": before,
        "after": after,
    }
    row = {
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
    }
    await conn.execute(insert(_AUDIT), row)
    await _append_leaf(conn, actor=actor, action=action, row=row)
    return event_id


async def record_refusal(
    engine: AsyncEngine,
    *,
    actor: Actor,
    action: str,
    target: dict[str, Any],
    reasons: tuple[str, ...],
    status: int = 403,
) -> None:
    """A refused admin action is an event too: who tried what, and why it was refused
    (403: the policy; a 4xx after it: the state, e.g. 409 `proof_missing` on approve)."""
    # The target came from the caller's request: bounded before it is stored.
    shown = {k: str(v)[:200] for k, v in target.items()}
    detail = {"actor": actor.as_dict(), "action": action, "target": shown}
    org_id = target.get("org_id")
    if not isinstance(org_id, str) or len(org_id) > 64:
        org_id = None
    row = {
        "id": new_event_id(),
        "ts": utcnow(),
        "endpoint": f"admin.{action}",
        "subject": actor.subject,
        "client_id": actor.client_id,
        "org_id": org_id,
        "tier": None,
        "model": None,
        "decision": "deny",
        "reasons": orjson.dumps(list(reasons)).decode(),
        "status": status,
        "policy_version": None,
        "latency_ms": 0.0,
        "request_hash": None,
        "token_id": None,
        "detail": orjson.dumps(detail, default=str).decode(),
    }
    async with engine.begin() as conn:
        await conn.execute(insert(_AUDIT), row)
        await _append_leaf(conn, actor=actor, action=action, row=row)


async def _append_leaf(
    conn: AsyncConnection, *, actor: Actor, action: str, row: dict[str, Any]
) -> None:
    """The row's event as a leaf of the log, in the row's own transaction.

    No writer tip is passed: the append takes the lock and reads the log's edge, as any
    writer that is not the audit writer must. (The audit writer notices the log moved:
    on PostgreSQL from the size under the lock, on SQLite by its insert failing and being
    retried with the edge read again.) Checkpoints are the audit writer's timer's to sign.
    """
    event = admin_event(
        event_id=row["id"],
        ts=row["ts"],
        action=action,
        # Who acted, as the admin API knew it; the organization acted on is in `detail`.
        actor=EventActor(subject=actor.subject, org_id=actor.org_id, client_id=actor.client_id),
        tier=row["tier"],
        allow=row["decision"] == "allow",
        reasons=orjson.loads(row["reasons"]),
        status=row["status"],
        policy_version=row["policy_version"],
        detail=row["detail"],
    )
    leaf = ledger.LeafInput(row["id"], "decision", canonical_bytes(event))
    now = row["ts"]
    await conn.run_sync(lambda sync: ledger.append(sync, [leaf], now=now))
