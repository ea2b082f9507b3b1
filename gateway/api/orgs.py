"""`/orgs`: any authenticated caller applies for an organization; its org admins (the
applicant first) prove the domain. Thin: each route is one admin operation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from gateway.admin import challenges, detail, orgs
from gateway.admin.actor import Actor
from gateway.admin.schemas import (
    ChallengePublic,
    ChallengeRequest,
    OrganizationCreate,
    OrganizationDetail,
    OrganizationPublic,
)
from gateway.api.admin_deps import Permit
from gateway.api.admin_schema import RowId, refusals
from gateway.api.deps import RuntimeDep

router = APIRouter(prefix="/orgs", tags=["orgs"], responses=refusals())


@router.post("", status_code=201, response_model=OrganizationPublic)
async def apply(
    body: OrganizationCreate, rt: RuntimeDep, actor: Annotated[Actor, Permit("org.apply")]
) -> OrganizationPublic:
    """Apply for verification; the caller becomes the organization's first org admin."""
    return await orgs.apply(rt.admin.engine, actor=actor, application=body)


@router.get("/{org_id}", response_model=OrganizationDetail)
async def show(
    org_id: str, rt: RuntimeDep, actor: Annotated[Actor, Permit("org.show")]
) -> OrganizationDetail:
    """The application with its proof attempts, grants, members and clients."""
    return await detail.show_org(rt.admin.engine, org_id=org_id)


@router.post("/{org_id}/challenges", status_code=201, response_model=ChallengePublic)
async def start_challenge(
    org_id: str,
    body: ChallengeRequest,
    rt: RuntimeDep,
    actor: Annotated[Actor, Permit("challenge.start")],
) -> ChallengePublic:
    """A new token to publish (DNS TXT or HTTPS file); the organization is `verifying`."""
    return await challenges.start_challenge(
        rt.admin.engine,
        actor=actor,
        org_id=org_id,
        method=body.method,
        ttl=rt.admin.challenge_ttl,
    )


@router.post("/{org_id}/challenges/{challenge_id}/check", response_model=ChallengePublic)
async def check_challenge(
    org_id: str,
    challenge_id: RowId,
    rt: RuntimeDep,
    actor: Annotated[Actor, Permit("challenge.check")],
) -> ChallengePublic:
    """Look for the token now; the result and what was seen are kept as evidence."""
    return await challenges.check_challenge(
        rt.admin.engine,
        actor=actor,
        checker=rt.admin.checker,
        org_id=org_id,
        challenge_id=challenge_id,
    )
