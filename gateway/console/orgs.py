"""Organizations: the review queue, one organization in full, and its lifecycle moves.

Every move is the admin operation the API's route calls (`gateway.admin.orgs`), with the
same permission check (`Change`) and therefore the same audit event; the page offers
only the moves the lifecycle allows now and the policy allows this user.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from gateway.admin import challenges, detail, orgs
from gateway.api import audit as audit_api
from gateway.audit.query import Filters
from gateway.console.guard import Allowed, Change, Posted, RuntimeDep, can
from gateway.console.render import page
from gateway.console.sessions import Session
from gateway.errors import BadRequest
from gateway.reasons import Reason
from gateway.trust.lifecycle import OrgAction, OrgStatus, next_status

router = APIRouter()

QUEUE = (OrgStatus.APPLIED, OrgStatus.VERIFYING)
MOVES = (
    OrgAction.APPROVE,
    OrgAction.REJECT,
    OrgAction.SUSPEND,
    OrgAction.REINSTATE,
    OrgAction.REVOKE,
)
HISTORY_ROWS = 200


@router.get("/orgs")
async def org_list(
    request: Request,
    rt: RuntimeDep,
    session: Annotated[Session, Allowed("org.list", "challenge.list")],
) -> Response:
    every = await orgs.list_orgs(rt.admin.engine)
    queue = [o for o in every if o.status in QUEUE]
    proofs: dict[str, str] = {}
    for org in queue:
        found = await challenges.list_challenges(rt.admin.engine, org_id=org.id)
        results = [c.result for c in found]
        proofs[org.id] = (
            "passed" if "passed" in results else (results[-1] or "pending") if results else "none"
        )
    return page(
        request,
        "orgs.html",
        session=session,
        queue=queue,
        others=[o for o in every if o.status not in QUEUE],
        proofs=proofs,
    )


@router.get("/orgs/{org_id}")
async def org_detail(
    request: Request,
    org_id: str,
    rt: RuntimeDep,
    session: Annotated[Session, Allowed("org.show")],
) -> Response:
    shown = await detail.show_org(rt.admin.engine, org_id=org_id)
    status = shown.organization.status
    target = {"org_id": org_id}
    moves = [
        m.value
        for m in MOVES
        if next_status(status, m) is not None and await can(rt, session, f"org.{m}", target)
    ]
    history: list[dict[str, Any]] = []
    if await can(rt, session, "audit.read", target):
        found = await audit_api.decisions(
            rt, Filters(org_id=org_id), limit=HISTORY_ROWS, cursor=None
        )
        history = list(reversed(found["decisions"]))  # newest first
    return page(
        request,
        "org.html",
        session=session,
        org=shown.organization,
        detail=shown,
        moves=moves,
        tiers=rt.admin.tiers.names[1:],
        history=history,
        done=request.query_params.get("done", "")[:20],
    )


def _done(org_id: str, action: str) -> RedirectResponse:
    return RedirectResponse(f"/console/orgs/{org_id}?done={action}", status_code=303)


def _int(form: dict[str, str], field: str) -> int | None:
    raw = form.get(field, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise BadRequest(Reason.FIELD_INVALID, f"{field} must be a whole number.")
    return int(raw)


@router.post("/orgs/{org_id}/approve")
async def approve(
    org_id: str, rt: RuntimeDep, change: Annotated[Posted, Change("org.approve")]
) -> Response:
    form = change.form
    await orgs.approve(
        rt.admin.engine,
        actor=change.session.actor,
        tiers=rt.admin.tiers,
        org_id=org_id,
        tier=form.get("tier", ""),
        days=_int(form, "days"),
        reason=form.get("reason", ""),
        expected_version=_int(form, "expected_version"),
    )
    return _done(org_id, "approve")


@router.post("/orgs/{org_id}/reject")
async def reject(
    org_id: str, rt: RuntimeDep, change: Annotated[Posted, Change("org.reject")]
) -> Response:
    await orgs.reject(rt.admin.engine, actor=change.session.actor, org_id=org_id,
                      reason=change.form.get("reason", ""),
                      expected_version=_int(change.form, "expected_version"))  # fmt: skip
    return _done(org_id, "reject")


@router.post("/orgs/{org_id}/suspend")
async def suspend(
    org_id: str, rt: RuntimeDep, change: Annotated[Posted, Change("org.suspend")]
) -> Response:
    await orgs.suspend(rt.admin.engine, actor=change.session.actor, org_id=org_id,
                       reason=change.form.get("reason", ""),
                       expected_version=_int(change.form, "expected_version"))  # fmt: skip
    return _done(org_id, "suspend")


@router.post("/orgs/{org_id}/reinstate")
async def reinstate(
    org_id: str, rt: RuntimeDep, change: Annotated[Posted, Change("org.reinstate")]
) -> Response:
    await orgs.reinstate(rt.admin.engine, actor=change.session.actor, org_id=org_id,
                         reason=change.form.get("reason", ""),
                         expected_version=_int(change.form, "expected_version"))  # fmt: skip
    return _done(org_id, "reinstate")


@router.post("/orgs/{org_id}/revoke")
async def revoke(
    org_id: str, rt: RuntimeDep, change: Annotated[Posted, Change("org.revoke")]
) -> Response:
    await orgs.revoke(rt.admin.engine, actor=change.session.actor, org_id=org_id,
                      reason=change.form.get("reason", ""),
                      expected_version=_int(change.form, "expected_version"))  # fmt: skip
    return _done(org_id, "revoke")
