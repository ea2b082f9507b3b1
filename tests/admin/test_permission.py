"""Who may do what, decided by the admin Rego policy on the real database's memberships."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import orgs, permission
from gateway.admin.actor import Actor
from gateway.errors import Forbidden
from gateway.policy.bundle import load_bundle
from gateway.policy.embedded import EmbeddedEngine
from gateway.reasons import Reason
from tests.admin.flow import APPLICANT, application
from tests.support.services import POLICY_DIR


@pytest.fixture(scope="module")
def policy() -> EmbeddedEngine:
    return EmbeddedEngine(load_bundle(POLICY_DIR))


async def _refused(
    policy: EmbeddedEngine,
    engine: AsyncEngine,
    actor: Actor,
    action: str,
    target: dict[str, object],
) -> str:
    with pytest.raises(Forbidden) as err:
        await permission.require(policy, engine, actor=actor, action=action, target=target)
    return err.value.reason


async def test_applicant_proves_its_own_application_only(
    policy: EmbeddedEngine, engine: AsyncEngine
) -> None:
    """Applying makes the caller org admin of the application (by membership), nothing more."""
    mine = await orgs.apply(engine, actor=APPLICANT, application=application())
    other = await orgs.apply(
        engine,
        actor=Actor(subject="someone-else"),
        application=application(name="Other", domain="other-org.com"),
    )
    target = {"org_id": mine.id}
    await permission.require(
        policy, engine, actor=APPLICANT, action="challenge.start", target=target
    )
    assert (
        await _refused(policy, engine, APPLICANT, "challenge.start", {"org_id": other.id})
        == Reason.NOT_YOUR_ORG
    )
    assert (
        await _refused(policy, engine, APPLICANT, "org.approve", target)
        == Reason.TIER_RAISE_FORBIDDEN
    )


async def test_roles(policy: EmbeddedEngine, engine: AsyncEngine) -> None:
    """Defender cannot approve; org admin neither raises a tier nor reaches another org."""
    defender = Actor(subject="d", org_id="o1")
    org_admin = Actor(subject="oa", roles=("org_admin",), org_id="o1")
    auditor = Actor(subject="au", roles=("auditor",), org_id="ops")
    admin = Actor(subject="ad", roles=("admin",), org_id="ops")
    assert (
        await _refused(policy, engine, defender, "org.approve", {"org_id": "o1"})
        == Reason.ADMIN_ROLE_REQUIRED
    )
    await permission.require(policy, engine, actor=defender, action="org.apply", target={})
    assert (
        await _refused(policy, engine, org_admin, "grant.create", {"org_id": "o1"})
        == Reason.TIER_RAISE_FORBIDDEN
    )
    assert (
        await _refused(policy, engine, org_admin, "client.create", {"org_id": "o2"})
        == Reason.NOT_YOUR_ORG
    )
    assert (
        await _refused(
            policy, engine, org_admin, "client.create", {"org_id": "o1", "roles": ["admin"]}
        )
        == Reason.ROLE_NOT_GRANTABLE
    )
    await permission.require(
        policy,
        engine,
        actor=org_admin,
        action="client.create",
        target={"org_id": "o1", "roles": ["org_admin"]},
    )
    await permission.require(policy, engine, actor=auditor, action="org.list", target={})
    assert (
        await _refused(policy, engine, auditor, "org.revoke", {"org_id": "o1"})
        == Reason.AUDITOR_READ_ONLY
    )
    decision = await permission.require(
        policy, engine, actor=admin, action="org.revoke", target={"org_id": "o1"}
    )
    assert decision.allow and decision.policy_version
