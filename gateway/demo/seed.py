"""The demo catalog and organizations: one model per tier, one client per tier."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import ops

# (model name, tier floor): the names say they are demos; swap the upstream for vLLM/OpenAI.
DEMO_MODELS = (
    ("demo-general", "public"),
    ("demo-general-tac", "verified"),
    ("demo-cyber", "critical"),
)
# (organization, tier granted by the demo admin, or None for the public baseline)
DEMO_ORGS = (
    ("Demo Public Co", None),
    ("Demo Verified Researchers", "verified"),
    ("Demo Grid Defenders", "critical"),
)


@dataclass(frozen=True)
class DemoClient:
    org: str
    tier: str
    client_id: str
    client_secret: str


async def seed(engine: AsyncEngine, *, upstream_url: str) -> list[DemoClient]:
    for name, floor in DEMO_MODELS:
        await ops.add_model(
            engine, name=name, upstream_url=upstream_url, upstream_model=name, tier_floor=floor
        )
    clients = []
    for org_name, tier in DEMO_ORGS:
        org = await ops.find_org(engine, name=org_name)
        if org is None:
            org = await ops.create_org(engine, name=org_name, status="verified")
            if tier is not None:
                await ops.grant_tier(
                    engine, org_id=org.id, tier=tier, granted_by="demo-admin", evidence="demo seed"
                )
        creds = await ops.create_client(engine, org_id=org.id, name=f"{org_name} demo client")
        clients.append(DemoClient(org_name, tier or "public", creds.client_id, creds.client_secret))
    return clients
