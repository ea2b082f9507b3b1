"""Reading usage per organization, model and day, for the admin API and the CLI."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from gateway.db.access import RequestDb
from gateway.db.models import UsageDaily, UsageDailyPublic

_T = UsageDaily.__table__  # type: ignore[attr-defined]


async def daily_usage(
    db: RequestDb,
    *,
    org_id: str | None = None,
    model: str | None = None,
    since: date | None = None,
    until: date | None = None,
    limit: int = 1000,
) -> list[UsageDailyPublic]:
    """Rows newest day first, then by organization and model; `since`/`until` inclusive."""
    query = select(_T)
    if org_id is not None:
        query = query.where(_T.c.org_id == org_id)
    if model is not None:
        query = query.where(_T.c.model == model)
    if since is not None:
        query = query.where(_T.c.day >= since)
    if until is not None:
        query = query.where(_T.c.day <= until)
    query = query.order_by(_T.c.day.desc(), _T.c.org_id, _T.c.model).limit(limit)
    rows = await db.read(query, {})
    return [
        UsageDailyPublic(**row._mapping, total_tokens=row.prompt_tokens + row.completion_tokens)
        for row in rows
    ]
