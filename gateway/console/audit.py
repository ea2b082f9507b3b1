"""Decisions for auditors: filter, page through, open one, verify the log, export.

Reads go through the auditor API's own functions (`gateway.api.audit`), so a page shows
exactly what `/audit` answers; every page needs the policy's `audit.read`, as `/audit`.
Filter and verify answer htmx with the fragment only; without JavaScript they are plain
GET forms and links that load the whole page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.admin import orgs
from gateway.api import audit as audit_api
from gateway.audit.query import Filters
from gateway.console.guard import Allowed, RuntimeDep
from gateway.console.render import is_htmx, page
from gateway.console.sessions import Session
from gateway.errors import BadRequest
from gateway.reasons import Reason

router = APIRouter()

PAGE = 50
_TEXT = ("org", "subject", "model", "tier", "reason")


def _instant(raw: str, field: str) -> datetime | None:
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(Reason.FIELD_INVALID, f"{field} must be a date and time.") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)  # the form's times are UTC


def read_filters(request: Request) -> tuple[Filters, dict[str, str]]:
    """The filters of the query string, and the same as text to refill the form."""
    q = request.query_params
    shown = {k: q.get(k, "").strip()[:200] for k in (*_TEXT, "since", "until", "decision")}
    decision = shown["decision"]
    if decision not in ("", "allow", "deny"):
        raise BadRequest(Reason.FIELD_INVALID, "decision must be allow or deny.")
    filters = Filters(
        since=_instant(shown["since"], "since"),
        until=_instant(shown["until"], "until"),
        org_id=shown["org"] or None,
        subject=shown["subject"] or None,
        model=shown["model"] or None,
        tier=shown["tier"] or None,
        decision=decision or None,
        reason=shown["reason"] or None,
    )
    return filters, shown


def _query(shown: dict[str, str], **extra: str) -> str:
    return urlencode({k: v for k, v in {**shown, **extra}.items() if v})


@router.get("/audit")
async def decisions(
    request: Request,
    rt: RuntimeDep,
    session: Annotated[Session, Allowed("audit.read", "org.list")],
) -> Response:
    filters, shown = read_filters(request)
    cursor = request.query_params.get("cursor") or None
    found = await audit_api.decisions(rt, filters, limit=PAGE, cursor=cursor)
    context: dict[str, Any] = {
        "rows": found["decisions"],
        "next": _query(shown, cursor=found["next_cursor"]) if found["next_cursor"] else "",
        "first": _query(shown) if cursor else "",
        "query": _query(shown),
    }
    if is_htmx(request):
        return page(request, "audit_rows.html", session=session, **context)
    names = {o.id: o.name for o in await orgs.list_orgs(rt.admin.engine)}
    return page(request, "audit.html", session=session, f=shown, orgs=names, **context)


@router.get("/audit/events/{decision_id}")
async def event(
    request: Request,
    decision_id: str,
    rt: RuntimeDep,
    session: Annotated[Session, Allowed("audit.read")],
) -> Response:
    found = await audit_api.one_decision(rt, decision_id)
    return page(request, "event.html", session=session, e=found)


@router.get("/audit/verify")
async def verify(
    request: Request, rt: RuntimeDep, session: Annotated[Session, Allowed("audit.read")]
) -> Response:
    """Re-hash every leaf and check every checkpoint, as `GET /audit/verify` does."""
    result = await audit_api.verify(rt, start=None, end=None)
    template = "verify_result.html" if is_htmx(request) else "verify.html"
    return page(request, template, session=session, v=result)


@router.get("/audit/export")
async def export(
    request: Request, rt: RuntimeDep, session: Annotated[Session, Allowed("audit.read")]
) -> Response:
    """CSV rows of the filtered decisions, or the whole verifiable log as JSONL."""
    filters, _ = read_filters(request)
    kind = request.query_params.get("format", "csv")
    if kind not in ("csv", "jsonl"):
        raise BadRequest(Reason.FIELD_INVALID, "format must be csv or jsonl.")
    response = await audit_api.export(rt, filters, format=kind, start=None, end=None)  # type: ignore[arg-type]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"tacgw-audit-{stamp}.{kind}"
    response.headers["content-disposition"] = f'attachment; filename="{name}"'
    return response
