"""`GET /admin/usage`: tokens used per organization, model and UTC day.

Readable by a token whose `roles` claim holds `admin` or `auditor`; the check is one
dependency (`UsageReader`), never repeated in a handler. Rows are what the replicas have
flushed (every `usage_flush_s`), so the current day lags by at most that.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from gateway.api.deps import RuntimeDep
from gateway.db.models import UsageDailyPublic
from gateway.errors import Forbidden
from gateway.identity.principal import Principal
from gateway.reasons import Reason
from gateway.usage.report import daily_usage

router = APIRouter(prefix="/admin", tags=["admin"])

READER_ROLES = frozenset({"admin", "auditor"})


def usage_reader(request: Request, rt: RuntimeDep) -> Principal:
    """The caller, if its verified token says it is an admin or an auditor."""
    principal = rt.identity.verify(request.headers.get("authorization"))
    if not READER_ROLES & set(principal.roles):
        raise Forbidden(
            Reason.ADMIN_ROLE_REQUIRED, "Reading usage needs the admin or auditor role."
        )
    return principal


UsageReader = Annotated[Principal, Depends(usage_reader)]


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
