"""`/admin`: review organizations, manage grants, members, clients and the catalog, and
start model screenings.

For bearer tokens with the `admin`, `org_admin` or `auditor` role; what each may do is
the admin policy's decision, taken in the `Permit(...)` dependency of every route.
Each route is one operation of `gateway.admin`; every change there is audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from gateway.admin import catalog, clients, detail, fields, grants, members, orgs
from gateway.admin.actor import Actor
from gateway.admin.auditlog import record_admin_event
from gateway.admin.catalog import ModelPublic
from gateway.admin.schemas import (
    Approval,
    ApproveRequest,
    ClientCreate,
    ClientPublic,
    GrantCreate,
    IssuedClient,
    MemberSet,
    MembershipPublic,
    OrganizationDetail,
    OrganizationPublic,
    ReasonRequest,
    ReinstateRequest,
    RevokeRequest,
    TrustGrantPublic,
)
from gateway.admin.screening import UnknownModel, Unscreenable
from gateway.admin.screening_runs import RunInProgress, ScreeningRun
from gateway.api.admin_deps import Permit
from gateway.api.admin_schema import RowId, refusals
from gateway.api.deps import RuntimeDep
from gateway.errors import BadRequest, Conflict, NotFound
from gateway.policy.service import PolicyReloadError
from gateway.reasons import Reason
from gateway.trust.lifecycle import OrgStatus

router = APIRouter(prefix="/admin", tags=["admin"], responses=refusals())


# organizations ---------------------------------------------------------------------------


@router.get("/orgs", response_model=list[OrganizationPublic])
async def list_orgs(
    rt: RuntimeDep,
    actor: Annotated[Actor, Permit("org.list")],
    status: Annotated[OrgStatus | None, Query()] = None,
) -> list[OrganizationPublic]:
    """Organizations, oldest application first; `status=applied` etc. to filter."""
    return await orgs.list_orgs(rt.admin.engine, status=status)


@router.get("/orgs/{org_id}", response_model=OrganizationDetail)
async def show_org(
    org_id: str, rt: RuntimeDep, actor: Annotated[Actor, Permit("org.show")]
) -> OrganizationDetail:
    return await detail.show_org(rt.admin.engine, org_id=org_id)


@router.post("/orgs/{org_id}/approve", response_model=Approval)
async def approve(
    org_id: str,
    body: ApproveRequest,
    rt: RuntimeDep,
    actor: Annotated[Actor, Permit("org.approve")],
) -> Approval:
    """verifying → verified, with an organization-wide grant of `tier` until its expiry."""
    org, grant = await orgs.approve(
        rt.admin.engine,
        actor=actor,
        tiers=rt.admin.tiers,
        org_id=org_id,
        tier=body.tier,
        days=body.days,
        expires_at=body.expires_at,
        reason=body.reason,
        expected_version=body.expected_version,
    )
    return Approval(organization=org, grant=grant)


@router.post("/orgs/{org_id}/reject", response_model=OrganizationPublic)
async def reject(
    org_id: str, body: ReasonRequest, rt: RuntimeDep, actor: Annotated[Actor, Permit("org.reject")]
) -> OrganizationPublic:
    return await orgs.reject(
        rt.admin.engine,
        actor=actor,
        org_id=org_id,
        reason=body.reason,
        expected_version=body.expected_version,
    )


@router.post("/orgs/{org_id}/suspend", response_model=OrganizationPublic)
async def suspend(
    org_id: str, body: ReasonRequest, rt: RuntimeDep, actor: Annotated[Actor, Permit("org.suspend")]
) -> OrganizationPublic:
    """Members are refused with `org_suspended` from their next request; grants are kept."""
    return await orgs.suspend(
        rt.admin.engine,
        actor=actor,
        org_id=org_id,
        reason=body.reason,
        expected_version=body.expected_version,
    )


@router.post("/orgs/{org_id}/reinstate", response_model=OrganizationPublic)
async def reinstate(
    org_id: str,
    body: ReinstateRequest,
    rt: RuntimeDep,
    actor: Annotated[Actor, Permit("org.reinstate")],
) -> OrganizationPublic:
    return await orgs.reinstate(
        rt.admin.engine,
        actor=actor,
        org_id=org_id,
        reason=body.reason,
        expected_version=body.expected_version,
    )


@router.post("/orgs/{org_id}/revoke", response_model=OrganizationPublic)
async def revoke(
    org_id: str, body: ReasonRequest, rt: RuntimeDep, actor: Annotated[Actor, Permit("org.revoke")]
) -> OrganizationPublic:
    """Final: every grant is revoked, members are refused with `org_revoked` at once."""
    return await orgs.revoke(
        rt.admin.engine,
        actor=actor,
        org_id=org_id,
        reason=body.reason,
        expected_version=body.expected_version,
    )


# grants ----------------------------------------------------------------------------------


@router.get("/grants", response_model=list[TrustGrantPublic])
async def list_grants(
    rt: RuntimeDep,
    actor: Annotated[Actor, Permit("grant.list")],
    org_id: str | None = None,
    subject: str | None = None,
    live: bool = False,
) -> list[TrustGrantPublic]:
    return await grants.list_grants(rt.admin.engine, org_id=org_id, subject=subject, live_only=live)


@router.get("/grants/expiring", response_model=list[TrustGrantPublic])
async def expiring(
    rt: RuntimeDep,
    actor: Annotated[Actor, Permit("grant.expiring")],
    days: int = Query(30, ge=1, le=3650),
) -> list[TrustGrantPublic]:
    """Live grants that lapse within `days`, soonest first."""
    return await grants.expiring(rt.admin.engine, within=timedelta(days=days))


@router.post("/grants", status_code=201, response_model=TrustGrantPublic)
async def create_grant(
    body: GrantCreate, rt: RuntimeDep, actor: Annotated[Actor, Permit("grant.create")]
) -> TrustGrantPublic:
    """A tier for an organization, or `verified` for one subject (never `critical`)."""
    return await grants.grant(
        rt.admin.engine,
        actor=actor,
        tiers=rt.admin.tiers,
        org_id=body.org_id,
        tier=body.tier,
        reason=body.reason,
        subject=body.subject,
        evidence=body.evidence,
        days=body.days,
        expires_at=body.expires_at,
    )


@router.post("/grants/{grant_id}/revoke", response_model=TrustGrantPublic)
async def revoke_grant(
    grant_id: RowId,
    body: RevokeRequest,
    rt: RuntimeDep,
    actor: Annotated[Actor, Permit("grant.revoke")],
) -> TrustGrantPublic:
    return await grants.revoke_grant(
        rt.admin.engine, actor=actor, grant_id=grant_id, reason=body.reason
    )


# members and clients ---------------------------------------------------------------------


@router.get("/orgs/{org_id}/members", response_model=list[MembershipPublic])
async def list_members(
    org_id: str, rt: RuntimeDep, actor: Annotated[Actor, Permit("member.list")]
) -> list[MembershipPublic]:
    return await members.list_members(rt.admin.engine, org_id=org_id)


# A subject as gateway/admin/fields.py `text` takes it: printable, not only white space.
Subject = Annotated[
    str, Path(max_length=fields.MAX_SUBJECT, pattern=r"^[^\x00-\x1f]*[^\s\x00-\x1f][^\x00-\x1f]*$")
]


@router.put("/orgs/{org_id}/members/{subject}", response_model=MembershipPublic)
async def set_member(
    org_id: str,
    subject: Subject,
    body: MemberSet,
    rt: RuntimeDep,
    actor: Annotated[Actor, Permit("member.set")],
) -> MembershipPublic:
    return await members.set_member(
        rt.admin.engine, actor=actor, org_id=org_id, subject=subject, role=body.role
    )


@router.delete("/orgs/{org_id}/members/{subject}", status_code=204)
async def remove_member(
    org_id: str,
    subject: Subject,
    rt: RuntimeDep,
    actor: Annotated[Actor, Permit("member.remove")],
) -> Response:
    await members.remove_member(rt.admin.engine, actor=actor, org_id=org_id, subject=subject)
    return Response(status_code=204)


@router.get("/orgs/{org_id}/clients", response_model=list[ClientPublic])
async def list_clients(
    org_id: str, rt: RuntimeDep, actor: Annotated[Actor, Permit("client.list")]
) -> list[ClientPublic]:
    return await clients.list_clients(rt.admin.engine, org_id=org_id)


@router.post("/orgs/{org_id}/clients", status_code=201, response_model=IssuedClient)
async def create_client(
    org_id: str,
    body: ClientCreate,
    rt: RuntimeDep,
    actor: Annotated[Actor, Permit("client.create")],
) -> IssuedClient:
    """A service client; its secret is in this answer only."""
    return await clients.create_client(
        rt.admin.engine, actor=actor, org_id=org_id, name=body.name, roles=body.roles
    )


@router.post("/clients/{client_id}/revoke", response_model=ClientPublic)
async def revoke_client(
    client_id: str, rt: RuntimeDep, actor: Annotated[Actor, Permit("client.revoke")]
) -> ClientPublic:
    return await clients.revoke_client(rt.admin.engine, actor=actor, client_id=client_id)


@router.post("/clients/{client_id}/rotate", response_model=IssuedClient)
async def rotate_client(
    client_id: str, rt: RuntimeDep, actor: Annotated[Actor, Permit("client.rotate")]
) -> IssuedClient:
    """A new secret, shown once; the old one stops working at once."""
    return await clients.rotate_client(rt.admin.engine, actor=actor, client_id=client_id)


# the catalog -----------------------------------------------------------------------------


@router.get("/models", response_model=list[ModelPublic])
async def list_models(
    rt: RuntimeDep, actor: Annotated[Actor, Permit("model.list")]
) -> list[ModelPublic]:
    return await catalog.list_models(rt.admin.engine)


@router.post("/models/{name}/disable", response_model=ModelPublic)
async def disable_model(
    name: str, rt: RuntimeDep, actor: Annotated[Actor, Permit("model.disable")]
) -> ModelPublic:
    return await catalog.disable_model(rt.admin.engine, actor=actor, name=name)


@router.delete("/models/{name}", status_code=204)
async def remove_model(
    name: str, rt: RuntimeDep, actor: Annotated[Actor, Permit("model.remove")]
) -> Response:
    await catalog.remove_model(rt.admin.engine, actor=actor, name=name)
    return Response(status_code=204)


# screening ---------------------------------------------------------------------------------


class ScreeningStart(BaseModel):
    # Samples per condition; default `screening.samples` from the settings.
    samples: int | None = Field(default=None, ge=1, le=10_000)


class ScreeningRunPublic(BaseModel):
    run_id: str
    model: str
    state: str  # running, done, failed, cancelled
    done: int
    total: int  # 0 until the first sample is counted
    ran_by: str
    started_at: datetime
    finished_at: datetime | None
    report_id: str | None  # once done: `tac-gateway screening show REPORT_ID`
    error: str | None

    @classmethod
    def of(cls, run: ScreeningRun) -> ScreeningRunPublic:
        return cls(
            run_id=run.id,
            model=run.model,
            state=run.state,
            done=run.done,
            total=run.total,
            ran_by=run.ran_by,
            started_at=run.started_at,
            finished_at=run.finished_at,
            report_id=run.report_id,
            error=run.error,
        )


@router.post("/models/{name}/screenings", status_code=202, response_model=ScreeningRunPublic)
async def start_screening(
    name: str,
    rt: RuntimeDep,
    actor: Annotated[Actor, Permit("model.screen")],
    body: ScreeningStart | None = None,
) -> ScreeningRunPublic:
    """Screen the model through its first enabled target, in the background; follow it with
    `GET /admin/screenings/{run_id}` on the same replica (docs/screening.md)."""
    samples = body.samples if body is not None else None
    try:
        run = await rt.admin.screenings.start(
            model_name=name, ran_by=f"admin:{actor.subject}", samples=samples
        )
    except UnknownModel:
        raise NotFound(
            Reason.MODEL_NOT_FOUND, f"The model '{name[:200]}' does not exist."
        ) from None
    except Unscreenable as exc:
        raise Conflict(Reason.MODEL_UNSCREENABLE, str(exc)[:500]) from None
    except RunInProgress as exc:
        raise Conflict(
            Reason.SCREENING_IN_PROGRESS, f"Run {exc.run_id} is screening this model already."
        ) from None
    async with rt.admin.engine.begin() as conn:
        await record_admin_event(
            conn,
            actor=actor,
            action="model.screen",
            target={"model": name},
            before=None,
            after={"run_id": run.id, "samples": samples},
            policy_version=rt.policy.version,
        )
    return ScreeningRunPublic.of(run)


@router.get("/screenings/{run_id}", response_model=ScreeningRunPublic)
async def show_screening(
    run_id: str, rt: RuntimeDep, actor: Annotated[Actor, Permit("screening.show")]
) -> ScreeningRunPublic:
    run = rt.admin.screenings.get(run_id)
    if run is None:
        raise NotFound(
            Reason.SCREENING_RUN_NOT_FOUND,
            "No screening run of that id on this replica (runs are kept in memory).",
        )
    return ScreeningRunPublic.of(run)


# policy ------------------------------------------------------------------------------------


class PolicyReloaded(BaseModel):
    previous_version: str
    version: str


@router.post("/policy/reload", response_model=PolicyReloaded)
async def reload_policy(
    rt: RuntimeDep, actor: Annotated[Actor, Permit("policy.reload")]
) -> PolicyReloaded:
    """Reload the policy directory (as SIGHUP does); a broken policy is refused with 400
    `policy_refused` and the one in use keeps serving."""
    previous = rt.policy.version
    try:
        version = await rt.reload_policy()
    except PolicyReloadError as exc:
        raise BadRequest(Reason.POLICY_REFUSED, str(exc)[:500]) from None
    async with rt.admin.engine.begin() as conn:
        await record_admin_event(
            conn,
            actor=actor,
            action="policy.reload",
            target={},
            before={"policy_version": previous},
            after={"policy_version": version},
            policy_version=version,
        )
    return PolicyReloaded(previous_version=previous, version=version)
