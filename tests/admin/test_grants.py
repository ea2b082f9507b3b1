"""Grants: individuals get `verified` at most, grants lapse, revocation is recorded."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import catalog, clients, grants, members, orgs
from gateway.admin.actor import Actor
from gateway.errors import GatewayError
from gateway.reasons import Reason
from gateway.trust.proof import ProofChecker
from gateway.trust.tiers import Tiers
from tests.admin.flow import ADMIN, APPLICANT, admin_events, application, verified
from tests.support.proof_servers import LoopbackDns


async def _raises(reason: Reason, coro: object) -> GatewayError:
    with pytest.raises(GatewayError) as err:
        await coro  # type: ignore[misc]
    assert err.value.reason == reason, err.value.message
    return err.value


async def test_individual_grants(
    engine: AsyncEngine, loopback_dns: LoopbackDns, checker: ProofChecker, tiers: Tiers
) -> None:
    """A subject may be granted `verified`, never `critical`; grants need a verified org."""
    org = await verified(engine, loopback_dns, checker, tiers)
    err = await _raises(
        Reason.TIER_NOT_FOR_INDIVIDUALS,
        grants.grant(
            engine,
            actor=ADMIN,
            tiers=tiers,
            org_id=org.id,
            subject="analyst-1",
            tier="critical",
            reason="wants cyber",
        ),
    )
    assert "never to an individual" in err.message
    grant = await grants.grant(
        engine,
        actor=ADMIN,
        tiers=tiers,
        org_id=org.id,
        subject="analyst-1",
        tier="verified",
        reason="ID checked",
        evidence="passport seen by bob",
        days=90,
    )
    assert (grant.subject, grant.tier, grant.live) == ("analyst-1", "verified", True)
    assert [g.id for g in await grants.list_grants(engine, subject="analyst-1")] == [grant.id]

    applied = await orgs.apply(
        engine, actor=APPLICANT, application=application(name="New", domain="new-org.com")
    )
    await _raises(
        Reason.NOT_VERIFIED,
        grants.grant(
            engine, actor=ADMIN, tiers=tiers, org_id=applied.id, tier="verified", reason="early"
        ),
    )
    await _raises(
        Reason.FIELD_INVALID,
        grants.grant(engine, actor=ADMIN, tiers=tiers, org_id=org.id, tier="verified", reason=""),
    )


async def test_revoke_and_expiring(
    engine: AsyncEngine, loopback_dns: LoopbackDns, checker: ProofChecker, tiers: Tiers
) -> None:
    """Revocation keeps the row with its reason; `expiring` lists what lapses soon."""
    org = await verified(engine, loopback_dns, checker, tiers)
    soon = await grants.grant(
        engine,
        actor=ADMIN,
        tiers=tiers,
        org_id=org.id,
        subject="a",
        tier="verified",
        reason="r",
        days=5,
    )
    assert [g.id for g in await grants.expiring(engine, within=timedelta(days=7))] == [soon.id]
    assert len(await grants.expiring(engine, within=timedelta(days=366))) == 2

    revoked = await grants.revoke_grant(engine, actor=ADMIN, grant_id=soon.id, reason="left")
    assert (revoked.live, revoked.revoke_reason) == (False, "left")
    assert await grants.expiring(engine, within=timedelta(days=7)) == []
    await _raises(
        Reason.ALREADY_REVOKED,
        grants.revoke_grant(engine, actor=ADMIN, grant_id=soon.id, reason="again"),
    )
    await _raises(
        Reason.GRANT_NOT_FOUND, grants.revoke_grant(engine, actor=ADMIN, grant_id=999, reason="x")
    )
    event = json.loads(
        next(d for e, d in await admin_events(engine, org.id) if e == "admin.grant.revoke")
    )
    assert event["before"]["revoked_at"] is None and event["after"]["revoke_reason"] == "left"
    # Seen from a year on, nothing of today's is "expiring": it has lapsed already.
    later = datetime.now(UTC) + timedelta(days=400)
    assert await grants.expiring(engine, within=timedelta(days=7), now=later) == []


async def test_members_and_clients(engine: AsyncEngine) -> None:
    """Members get roles; clients get roles, a secret shown once, rotation and revocation."""
    org = await orgs.apply(engine, actor=APPLICANT, application=application())
    member = await members.set_member(
        engine, actor=APPLICANT, org_id=org.id, subject="bob", role="defender"
    )
    assert member.role == "defender"
    promoted = await members.set_member(
        engine, actor=APPLICANT, org_id=org.id, subject="bob", role="org_admin"
    )
    assert promoted.role == "org_admin"
    await _raises(
        Reason.FIELD_INVALID,
        members.set_member(engine, actor=APPLICANT, org_id=org.id, subject="bob", role="admin"),
    )
    await members.remove_member(engine, actor=APPLICANT, org_id=org.id, subject="bob")
    await _raises(
        Reason.MEMBER_NOT_FOUND,
        members.remove_member(engine, actor=APPLICANT, org_id=org.id, subject="bob"),
    )

    issued = await clients.create_client(
        engine, actor=ADMIN, org_id=org.id, name="SOC bot", roles=["org_admin"]
    )
    assert issued.client_secret.startswith("tacs_") and issued.roles == "org_admin"
    await _raises(
        Reason.FIELD_INVALID,
        clients.create_client(engine, actor=ADMIN, org_id=org.id, name="x", roles=["root"]),
    )
    rotated = await clients.rotate_client(engine, actor=ADMIN, client_id=issued.client_id)
    assert rotated.client_secret != issued.client_secret
    gone = await clients.revoke_client(engine, actor=ADMIN, client_id=issued.client_id)
    assert gone.revoked_at is not None
    await _raises(
        Reason.ALREADY_REVOKED,
        clients.rotate_client(engine, actor=ADMIN, client_id=issued.client_id),
    )
    (listed,) = await clients.list_clients(engine, org_id=org.id)
    assert listed.id == issued.client_id
    events = [e for e, _ in await admin_events(engine, org.id)]
    assert events.count("admin.member.set") == 2 and "admin.client.rotate" in events
    assert all(issued.client_secret not in (d or "") for _, d in await admin_events(engine, org.id))


async def test_model_disable_and_remove(engine: AsyncEngine) -> None:
    """A disabled model stays listed but not enabled; a removed one is gone; both audited."""
    from gateway.admin import ops

    await ops.add_model(
        engine,
        name="cyber",
        upstream_url="http://127.0.0.1:9/v1",
        upstream_model="c",
        tier_floor="critical",
    )
    admin = Actor.cli()
    assert (await catalog.disable_model(engine, actor=admin, name="cyber")).enabled is False
    assert [(m.name, m.enabled) for m in await catalog.list_models(engine)] == [("cyber", False)]
    await catalog.remove_model(engine, actor=admin, name="cyber")
    assert await catalog.list_models(engine) == []
    await _raises(Reason.MODEL_NOT_FOUND, catalog.remove_model(engine, actor=admin, name="cyber"))
