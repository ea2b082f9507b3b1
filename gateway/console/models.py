"""The model catalog: each model's tier floor, targets and screening status, and reports.

The same reads as `GET /admin/models` (`gateway.admin.catalog`) and the screening CLI
(`gateway.screening.store`); the policy's `model.list` and `screening.show` guard them.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.admin import catalog
from gateway.console.guard import Allowed, RuntimeDep
from gateway.console.render import page
from gateway.console.sessions import Session
from gateway.db.models import utcnow
from gateway.errors import NotFound
from gateway.reasons import Reason
from gateway.screening import store

router = APIRouter()


@router.get("/models")
async def model_list(
    request: Request,
    rt: RuntimeDep,
    session: Annotated[Session, Allowed("model.list", "screening.show")],
) -> Response:
    engine = rt.admin.engine
    return page(
        request,
        "models.html",
        session=session,
        models=await catalog.list_models(engine),
        screening=await store.statuses(engine, now=utcnow()),
        reports=await store.list_reports(engine, limit=50),
    )


@router.get("/models/reports/{report_id}")
async def report(
    request: Request,
    report_id: str,
    rt: RuntimeDep,
    session: Annotated[Session, Allowed("screening.show")],
) -> Response:
    row = await store.get_report(rt.admin.engine, report_id=report_id[:64])
    if row is None:
        raise NotFound(Reason.NOT_FOUND, f"No screening report {report_id[:64]!r}.")
    return page(
        request,
        "report.html",
        session=session,
        r=row,
        intact=store.verify(row),  # the stored body still hashes to the stored SHA-256
        body=orjson.loads(row.body),
    )
