"""Steps shared by the admin tests: apply, prove the domain over loopback DNS, approve."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import challenges, orgs
from gateway.admin.actor import Actor
from gateway.admin.schemas import OrganizationCreate, OrganizationPublic
from gateway.trust.proof import ProofChecker, Result, record_name
from gateway.trust.tiers import Tiers
from tests.support.proof_servers import LoopbackDns

ADMIN = Actor(subject="alice-admin", roles=("admin",))
APPLICANT = Actor(subject="tacc_applicant", roles=(), org_id="somewhere")
DAY = 86400


def application(
    name: str = "Grid Defenders", domain: str = "grid-defenders.com"
) -> OrganizationCreate:
    return OrganizationCreate(
        name=name, domain=domain, sector="energy", country="US", evidence="CISA letter 2026-11"
    )


async def proved(
    engine: AsyncEngine, dns: LoopbackDns, checker: ProofChecker, **kw: str
) -> OrganizationPublic:
    """An organization that applied and passed DNS proof (status `verifying`)."""
    org = await orgs.apply(engine, actor=APPLICANT, application=application(**kw))
    challenge = await challenges.start_challenge(
        engine, actor=APPLICANT, org_id=org.id, method="dns", ttl=timedelta(hours=1)
    )
    assert org.domain is not None
    dns.txt[record_name(org.domain)] = [challenge.token]
    checked = await challenges.check_challenge(
        engine, actor=APPLICANT, checker=checker, org_id=org.id, challenge_id=challenge.id
    )
    assert checked.result == Result.PASSED
    return await orgs.get_org(engine, org_id=org.id)


async def verified(
    engine: AsyncEngine, dns: LoopbackDns, checker: ProofChecker, tiers: Tiers, **kw: str
) -> OrganizationPublic:
    org = await proved(engine, dns, checker, **kw)
    approved, _ = await orgs.approve(
        engine, actor=ADMIN, tiers=tiers, org_id=org.id, tier="critical"
    )
    return approved


async def admin_events(engine: AsyncEngine, org_id: str) -> list[tuple[str, str]]:
    """(endpoint, detail) of the org's admin audit events, oldest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT endpoint, detail FROM auditevent WHERE org_id = :o "
                "AND endpoint LIKE 'admin.%' ORDER BY ts"
            ),
            {"o": org_id},
        )
        return [(r.endpoint, r.detail) for r in rows]
