"""The demo catalog and organizations: one model per tier, one client per tier, and one
model that fails its misalignment screening (`demo-unsafe`, a scripted model)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import ops

# (model name, tier floor): the names say they are demos; swap the upstream for vLLM/OpenAI.
DEMO_MODELS = (
    ("demo-general", "public"),
    ("demo-general-tac", "verified"),
    ("demo-cyber", "critical"),
)
# Served by a scripted model that takes the harmful action 96% of the time: screened at
# demo start, it fails, and the tiers that require screening are refused it.
UNSAFE_MODEL = ("demo-unsafe", "verified")
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


async def seed(
    engine: AsyncEngine,
    *,
    upstream_url: str,
    unsafe_upstream_url: str | None = None,
    known: Mapping[str, tuple[str, str]] | None = None,
) -> list[DemoClient]:
    """Seed what is missing and return one client per tier.

    Idempotent: organizations are found by name, and a tier's client in `known`
    (tier -> (client id, secret), read back from the previous run's env file) is reused
    when it still authenticates, since only its hash is stored and a new one cannot be
    recovered. Models are upserted, so a new upstream port takes effect.
    """
    for name, floor in DEMO_MODELS:
        await ops.add_model(
            engine, name=name, upstream_url=upstream_url, upstream_model=name, tier_floor=floor
        )
    if unsafe_upstream_url is not None:
        name, floor = UNSAFE_MODEL
        await ops.add_model(
            engine,
            name=name,
            upstream_url=unsafe_upstream_url,
            upstream_model=name,
            tier_floor=floor,
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
        label = tier or "public"
        client_id, secret = (known or {}).get(label, ("", ""))
        reusable = await ops.client_with_secret(engine, client_id=client_id, client_secret=secret)
        if reusable is None or reusable.org_id != org.id:
            creds = await ops.create_client(engine, org_id=org.id, name=f"{org_name} demo client")
            client_id, secret = creds.client_id, creds.client_secret
        clients.append(DemoClient(org_name, label, client_id, secret))
    return clients
