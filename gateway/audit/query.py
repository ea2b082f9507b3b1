"""Reading decisions for auditors: filters, cursor pages, one decision, counts per bucket.

Shared by the `/audit` API and the `audit` CLI. Synchronous functions over a `Connection`
(run them with `AsyncConnection.run_sync`), keyword arguments only. Decisions come from
the `auditevent` rows (indexed columns); each carries its outcome, if the response ended
while the gateway was up, from the log's outcome leaf.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Select, func, select

from gateway.audit.canonical import timestamp
from gateway.db.models import AuditEvent, TlogLeaf

AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]
LEAF = TlogLeaf.__table__  # type: ignore[attr-defined]
# A reason code as gateway/reasons.py spells them; also the API's declared pattern.
REASON_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_PAGE = 1000
BUCKETS = {"minute": 60, "hour": 3600, "day": 86400}


class BadQuery(ValueError):
    """A filter, cursor or bucket the auditor gave that cannot be used."""


@dataclass(frozen=True, slots=True)
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    org_id: str | None = None
    subject: str | None = None
    model: str | None = None
    tier: str | None = None
    decision: str | None = None  # "allow" or "deny"
    reason: str | None = None
    # `chat.completions`, `oauth.token`, `admin.org.approve`, …; a prefix ending in "."
    # (`oauth.`, `admin.`) matches every endpoint under it.
    endpoint: str | None = None


def _where(query: Select[Any], f: Filters) -> Select[Any]:
    c = AUDIT.c
    if f.since is not None:
        query = query.where(c.ts >= f.since)
    if f.until is not None:
        query = query.where(c.ts < f.until)
    for column, value in (
        (c.org_id, f.org_id),
        (c.subject, f.subject),
        (c.model, f.model),
        (c.tier, f.tier),
        (c.decision, f.decision),
    ):
        if value is not None:
            query = query.where(column == value)
    if f.reason is not None:
        # `reasons` is a JSON array of snake_case codes: match the quoted code exactly.
        if not REASON_CODE.match(f.reason):
            raise BadQuery("reason must be a reason code such as tier_too_low")
        query = query.where(c.reasons.like(f'%"{f.reason}"%'))
    if f.endpoint is not None:
        if not f.endpoint.replace("_", "").replace(".", "").isalnum():
            raise BadQuery("endpoint must be an endpoint name such as oauth.token or admin.")
        if f.endpoint.endswith("."):
            query = query.where(c.endpoint.startswith(f.endpoint, autoescape=True))
        else:
            query = query.where(c.endpoint == f.endpoint)
    return query


def _cursor(ts: datetime, decision_id: str) -> str:
    raw = orjson.dumps([timestamp(ts), decision_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(cursor: str) -> tuple[datetime, str]:
    try:
        ts, decision_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(ts), str(decision_id)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise BadQuery("invalid cursor") from exc


def decisions(
    conn: Connection, *, filters: Filters, limit: int = 100, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of decisions, oldest first, and the cursor of the next page (None: last)."""
    limit = max(1, min(limit, MAX_PAGE))
    query = _where(select(AUDIT), filters)
    if cursor is not None:
        ts, decision_id = _after(cursor)
        query = query.where((AUDIT.c.ts > ts) | ((AUDIT.c.ts == ts) & (AUDIT.c.id > decision_id)))
    rows = conn.execute(query.order_by(AUDIT.c.ts, AUDIT.c.id).limit(limit + 1)).all()
    page = [_decision(r) for r in rows[:limit]]
    _attach_outcomes(conn, page)
    more = len(rows) > limit
    return page, (_cursor(rows[limit - 1].ts, rows[limit - 1].id) if more else None)


def iter_decisions(conn: Connection, *, filters: Filters) -> Iterator[dict[str, Any]]:
    """Every matching decision, page by page (for exports)."""
    cursor: str | None = None
    while True:
        page, cursor = decisions(conn, filters=filters, limit=MAX_PAGE, cursor=cursor)
        yield from page
        if cursor is None:
            return


def decision(conn: Connection, *, decision_id: str) -> dict[str, Any] | None:
    """One decision by its full id, with its logged event(s) and leaf index."""
    row = conn.execute(select(AUDIT).where(AUDIT.c.id == decision_id)).first()
    if row is None:
        return None
    found = _decision(row)
    _attach_outcomes(conn, [found])
    leaves = conn.execute(
        select(LEAF.c.kind, LEAF.c.leaf_index, LEAF.c.event).where(
            LEAF.c.decision_id == decision_id
        )
    ).all()
    for kind, index, event in leaves:
        found[f"{kind}_leaf"] = {"index": index, "event": orjson.loads(bytes(event) or b"null")}
    return found


def counts(conn: Connection, *, filters: Filters, by: str, bucket: str) -> list[dict[str, Any]]:
    """How many decisions per time bucket and per decision, reason, tier or organization."""
    if bucket not in BUCKETS:
        raise BadQuery(f"bucket must be one of {', '.join(BUCKETS)}")
    if by not in ("decision", "reason", "tier", "org_id"):
        raise BadQuery("by must be decision, reason, tier or org_id")
    # Bucketing in Python keeps the SQL the same on SQLite and PostgreSQL; the rows read
    # are the two columns of the matching decisions.
    column = AUDIT.c.reasons if by == "reason" else AUDIT.c[by]
    query = _where(select(AUDIT.c.ts, column), filters)
    width = BUCKETS[bucket]
    tally: dict[tuple[int, str], int] = {}
    for ts, value in conn.execute(query):
        start = int(ts.timestamp()) // width * width
        keys = orjson.loads(value) if by == "reason" else [value]
        for key in keys:
            tally[(start, str(key))] = tally.get((start, str(key)), 0) + 1
    return [
        {"bucket": timestamp(datetime.fromtimestamp(start, UTC)), by: key, "count": n}
        for (start, key), n in sorted(tally.items())
    ]


def total(conn: Connection, *, filters: Filters) -> int:
    return int(conn.execute(_where(select(func.count()).select_from(AUDIT), filters)).scalar() or 0)


def _decision(row: Any) -> dict[str, Any]:
    return {
        "decision_id": row.id,
        "ts": timestamp(row.ts),
        "endpoint": row.endpoint,
        "subject": row.subject,
        "org_id": row.org_id,
        "client_id": row.client_id,
        "token_id": row.token_id,
        "tier": row.tier,
        "model": row.model,
        "decision": row.decision,
        "reasons": orjson.loads(row.reasons),
        "status": row.status,
        "policy_version": row.policy_version,
        "latency_ms": row.latency_ms,
        "request_sha256": row.request_hash,
    }


def _attach_outcomes(conn: Connection, page: list[dict[str, Any]]) -> None:
    """Each allowed model call's outcome event; None when the response never finished
    (the gateway stopped mid-stream) or the decision was a refusal."""
    ids = [d["decision_id"] for d in page]
    found: dict[str, Any] = {}
    if ids:
        rows = conn.execute(
            select(LEAF.c.decision_id, LEAF.c.event).where(
                LEAF.c.kind == "outcome", LEAF.c.decision_id.in_(ids)
            )
        )
        found = {i: orjson.loads(bytes(e)) for i, e in rows if e}
    for d in page:
        d["outcome"] = found.get(d["decision_id"])
