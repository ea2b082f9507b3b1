"""`GET /admin/usage`: tokens used per organization, model and UTC day.

Readable by admins and auditors: the admin policy decides (`Permit("usage.list")`, the
same dependency as every /admin route), never a check in the handler. Rows are what the
replicas have flushed (every `usage_flush_s`), so the current day lags by at most that.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from gateway.admin.actor import Actor
from gateway.api.admin_deps import Permit
from gateway.api.admin_schema import refusals
from gateway.api.deps import RuntimeDep
from gateway.db.models import UsageDailyPublic
from gateway.usage.report import daily_usage

router = APIRouter(prefix="/admin", tags=["admin"], responses=refusals())

UsageReader = Annotated[Actor, Permit("usage.list")]


class UsageList(BaseModel):
    object: str = "list"
    data: list[UsageDailyPublic]


@router.get("/usage", response_model=UsageList, summary="Token usage per organization, model, day")
async def usage(
    rt: RuntimeDep,
    _: UsageReader,
    org_id: str | None = None,
    model: str | None = None,
    since: Annotated[date | None, Query(description="First UTC day, inclusive")] = None,
    until: Annotated[date | None, Query(description="Last UTC day, inclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> UsageList:
    rows = await daily_usage(
        rt.store, org_id=org_id, model=model, since=since, until=until, limit=limit
    )
    return UsageList(data=rows)
