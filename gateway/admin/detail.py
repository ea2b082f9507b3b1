"""One organization with everything an admin reviews: its application, proof attempts,
grants, members and clients (never a client's secret)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import challenges, clients, grants, members
from gateway.admin.orgs import get_org
from gateway.admin.schemas import OrganizationDetail


async def show_org(engine: AsyncEngine, *, org_id: str) -> OrganizationDetail:
    org = await get_org(engine, org_id=org_id)
    return OrganizationDetail(
        organization=org,
        challenges=await challenges.list_challenges(engine, org_id=org_id),
        grants=await grants.list_grants(engine, org_id=org_id),
        members=await members.list_members(engine, org_id=org_id),
        clients=await clients.list_clients(engine, org_id=org_id),
    )
