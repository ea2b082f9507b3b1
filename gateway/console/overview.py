"""The overview: requests by tier and decision over 24 hours, applications waiting for
review, grants expiring soon, and where the audit log stands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.admin import grants, orgs
from gateway.api import audit as audit_api
from gateway.audit.query import Filters
from gateway.console import chart
from gateway.console.guard import Allowed, RuntimeDep
from gateway.console.render import page
from gateway.console.sessions import Session
from gateway.errors import NotFound
from gateway.trust.lifecycle import OrgStatus

router = APIRouter()

EXPIRING = timedelta(days=30)


@router.get("/")
async def overview(
    request: Request,
    rt: RuntimeDep,
    session: Annotated[Session, Allowed("org.list", "grant.expiring", "audit.read")],
) -> Response:
    now = datetime.now(UTC)
    hours = chart.hours_until(now)
    series = {}
    for decision in ("allow", "deny"):
        found = await audit_api.counts(
            rt, Filters(since=hours[0], decision=decision), by="tier", bucket="hour"
        )
        series[decision] = chart.Series(
            {(datetime.fromisoformat(c["bucket"]), str(c["tier"])): c["count"] for c in found}
        )
    tiers = list(rt.admin.tiers.names)
    pending = [o for o in await orgs.list_orgs(rt.admin.engine)
               if o.status in (OrgStatus.APPLIED, OrgStatus.VERIFYING)]  # fmt: skip
    checkpoint: dict[str, Any] | None
    try:
        checkpoint = await audit_api.checkpoint(rt)
    except NotFound:
        checkpoint = None  # nothing signed yet
    return page(
        request,
        "overview.html",
        session=session,
        svg=chart.render(hours, series["allow"], series["deny"], tiers),
        tiers=tiers,
        totals={d: sum(s.counts.values()) for d, s in series.items()},
        pending=pending,
        expiring=await grants.expiring(rt.admin.engine, within=EXPIRING),
        checkpoint=checkpoint,
    )
