"""An organization through its lifecycle, on SQLite and PostgreSQL, every move audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import challenges, grants, members, orgs
from gateway.errors import BadRequest, Conflict, GatewayError
from gateway.reasons import Reason
from gateway.trust.proof import ProofChecker, Result, record_name
from gateway.trust.tiers import Tiers
from tests.admin.flow import ADMIN, APPLICANT, admin_events, application, proved, verified
from tests.support.proof_servers import LoopbackDns, LoopbackWeb


async def _raises(reason: Reason, coro: object) -> GatewayError:
    with pytest.raises(GatewayError) as err:
        await coro  # type: ignore[misc]
    assert err.value.reason == reason, err.value.message
    return err.value


async def test_apply_records_application_and_applicant_as_org_admin(engine: AsyncEngine) -> None:
    """An application is `applied`, normalised, and its applicant is the first org admin."""
    app = application(domain="Grid-Defenders.COM.")
    org = await orgs.apply(engine, actor=APPLICANT, application=app)
    assert (org.status, org.domain, org.sector, org.country, org.version) == (
        "applied",
        "grid-defenders.com",
        "energy",
        "US",
        1,
    )
    assert org.applied_by == APPLICANT.subject
    (member,) = await members.list_members(engine, org_id=org.id)
    assert (member.subject, member.role) == (APPLICANT.subject, "org_admin")
    assert await members.admin_of(engine, subject=APPLICANT.subject) == [org.id]
    ((endpoint, detail),) = await admin_events(engine, org.id)
    assert endpoint == "admin.org.apply"
    event = json.loads(detail)
    assert event["actor"]["subject"] == APPLICANT.subject
    assert event["before"] is None and event["after"]["status"] == "applied"


async def test_apply_refuses_duplicates_and_bad_fields(engine: AsyncEngine) -> None:
    """Same domain (any spelling) or name is a 409; each bad field is a 400 with its reason."""
    await orgs.apply(engine, actor=APPLICANT, application=application(domain="bücher.de"))
    dup = await _raises(
        Reason.DOMAIN_TAKEN,
        orgs.apply(
            engine,
            actor=APPLICANT,
            application=application(name="Other", domain="XN--BCHER-KVA.de"),
        ),
    )
    assert isinstance(dup, Conflict) and "already registered" in dup.message
    await _raises(
        Reason.NAME_TAKEN,
        orgs.apply(engine, actor=APPLICANT, application=application(domain="other.com")),
    )
    bad = [
        (dict(name="x" * 201), Reason.FIELD_INVALID),
        (dict(name="  "), Reason.FIELD_INVALID),
        (dict(domain="*.x.com"), Reason.DOMAIN_WILDCARD),
        (dict(domain="203.0.113.9"), Reason.DOMAIN_IS_IP),
        (dict(domain="org"), Reason.DOMAIN_PUBLIC_SUFFIX),
        (dict(sector="fintech"), Reason.SECTOR_UNKNOWN),
        (dict(country="XX"), Reason.COUNTRY_UNKNOWN),
        (dict(evidence="e" * 10_001), Reason.FIELD_INVALID),
    ]
    for change, reason in bad:
        fields = {**application(name="Fresh", domain="fresh.com").model_dump(), **change}
        err = await _raises(
            reason, orgs.apply(engine, actor=APPLICANT, application=type(application())(**fields))
        )
        assert isinstance(err, BadRequest)
    assert [o.name for o in await orgs.list_orgs(engine)] == ["Grid Defenders"]


async def test_dns_proof_then_approval_as_critical(
    engine: AsyncEngine, loopback_dns: LoopbackDns, checker: ProofChecker, tiers: Tiers
) -> None:
    """applied → verifying (challenge) → proof fails, then passes → verified with a grant."""
    org = await orgs.apply(engine, actor=APPLICANT, application=application())
    challenge = await challenges.start_challenge(
        engine, actor=APPLICANT, org_id=org.id, method="dns", ttl=timedelta(hours=1)
    )
    assert record_name("grid-defenders.com") in challenge.instructions
    assert (await orgs.get_org(engine, org_id=org.id)).status == "verifying"
    await _raises(
        Reason.PROOF_MISSING,
        orgs.approve(engine, actor=ADMIN, tiers=tiers, org_id=org.id, tier="critical"),
    )

    failed = await challenges.check_challenge(
        engine, actor=APPLICANT, checker=checker, org_id=org.id, challenge_id=challenge.id
    )
    assert failed.result == Result.FAILED and "NXDOMAIN" in failed.evidence

    loopback_dns.txt[record_name("grid-defenders.com")] = [challenge.token]
    passed = await challenges.check_challenge(
        engine, actor=APPLICANT, checker=checker, org_id=org.id, challenge_id=challenge.id
    )
    assert passed.result == Result.PASSED and challenge.token in passed.evidence

    approved, grant = await orgs.approve(
        engine, actor=ADMIN, tiers=tiers, org_id=org.id, tier="critical", reason="grid SOC"
    )
    assert (approved.status, approved.version) == ("verified", 3)
    assert (grant.tier, grant.subject, grant.granted_by, grant.live) == (
        "critical",
        None,
        ADMIN.subject,
        True,
    )
    assert grant.expires_at is not None
    assert timedelta(days=364) < grant.expires_at - datetime.now(UTC) <= timedelta(days=365)
    assert challenge.token in grant.evidence  # the resolver's answer travels with the grant

    events = await admin_events(engine, org.id)
    assert [e for e, _ in events] == [
        "admin.org.apply",
        "admin.org.challenge",
        "admin.org.challenge.check",
        "admin.org.challenge.check",
        "admin.org.approve",
    ]
    approve = json.loads(events[-1][1])
    assert (approve["before"]["status"], approve["after"]["status"]) == ("verifying", "verified")
    assert approve["target"]["grant"]["tier"] == "critical"
    assert approve["actor"]["subject"] == ADMIN.subject


async def test_https_proof_passes(
    engine: AsyncEngine, loopback_web: LoopbackWeb, checker: ProofChecker
) -> None:
    """The well-known file is the second method."""
    org = await orgs.apply(engine, actor=APPLICANT, application=application())
    challenge = await challenges.start_challenge(
        engine, actor=ADMIN, org_id=org.id, method="https", ttl=timedelta(hours=1)
    )
    loopback_web.files["grid-defenders.com"] = challenge.token
    checked = await challenges.check_challenge(
        engine, actor=ADMIN, checker=checker, org_id=org.id, challenge_id=challenge.id
    )
    assert checked.result == Result.PASSED


async def test_expired_challenge_and_bad_method_are_refused(
    engine: AsyncEngine, checker: ProofChecker
) -> None:
    """A challenge past its expiry is not checked; an unknown method is a 400."""
    org = await orgs.apply(engine, actor=APPLICANT, application=application())
    await _raises(
        Reason.FIELD_INVALID,
        challenges.start_challenge(
            engine, actor=ADMIN, org_id=org.id, method="email", ttl=timedelta(hours=1)
        ),
    )
    challenge = await challenges.start_challenge(
        engine, actor=ADMIN, org_id=org.id, method="dns", ttl=timedelta(hours=1)
    )
    await _raises(
        Reason.CHALLENGE_EXPIRED,
        challenges.check_challenge(
            engine,
            actor=ADMIN,
            checker=checker,
            org_id=org.id,
            challenge_id=challenge.id,
            now=datetime.now(UTC) + timedelta(hours=2),
        ),
    )
    await _raises(
        Reason.CHALLENGE_NOT_FOUND,
        challenges.check_challenge(
            engine, actor=ADMIN, checker=checker, org_id=org.id, challenge_id=challenge.id + 99
        ),
    )


async def test_lifecycle_moves_and_refusals(
    engine: AsyncEngine, loopback_dns: LoopbackDns, checker: ProofChecker, tiers: Tiers
) -> None:
    """suspend → reinstate → revoke (grants revoked with it); moves from a wrong state are 409s."""
    org = await verified(engine, loopback_dns, checker, tiers)
    await _raises(Reason.FIELD_INVALID, orgs.suspend(engine, actor=ADMIN, org_id=org.id, reason=""))
    await _raises(
        Reason.TRANSITION_NOT_ALLOWED,
        orgs.reject(engine, actor=ADMIN, org_id=org.id, reason="late"),
    )
    suspended = await orgs.suspend(engine, actor=ADMIN, org_id=org.id, reason="incident 42")
    assert (suspended.status, suspended.status_reason) == ("suspended", "incident 42")
    reinstated = await orgs.reinstate(engine, actor=ADMIN, org_id=org.id)
    assert reinstated.status == "verified"
    assert [g.live for g in await grants.list_grants(engine, org_id=org.id)] == [True]

    revoked = await orgs.revoke(engine, actor=ADMIN, org_id=org.id, reason="left the sector")
    assert revoked.status == "revoked"
    (grant,) = await grants.list_grants(engine, org_id=org.id)
    assert grant.revoked_at is not None and not grant.live
    assert "left the sector" in grant.revoke_reason
    err = await _raises(
        Reason.TRANSITION_NOT_ALLOWED, orgs.reinstate(engine, actor=ADMIN, org_id=org.id)
    )
    assert "revoked" in err.message and "suspended" in err.message
    await _raises(
        Reason.ORG_NOT_FOUND, orgs.suspend(engine, actor=ADMIN, org_id="nope", reason="x")
    )


async def test_reject_and_stale_version(engine: AsyncEngine) -> None:
    """A decision made on a stale version is refused; rejection is final."""
    org = await orgs.apply(engine, actor=APPLICANT, application=application())
    await _raises(
        Reason.VERSION_CONFLICT,
        orgs.reject(engine, actor=ADMIN, org_id=org.id, reason="no", expected_version=7),
    )
    rejected = await orgs.reject(
        engine, actor=ADMIN, org_id=org.id, reason="not an operator", expected_version=1
    )
    assert (rejected.status, rejected.version) == ("rejected", 2)
    await _raises(
        Reason.TRANSITION_NOT_ALLOWED,
        challenges.start_challenge(
            engine, actor=APPLICANT, org_id=org.id, method="dns", ttl=timedelta(hours=1)
        ),
    )


async def test_approval_tiers(
    engine: AsyncEngine, loopback_dns: LoopbackDns, checker: ProofChecker, tiers: Tiers
) -> None:
    """Only a tier above the lowest is approved; expiry is bounded and in the future."""
    org = await proved(engine, loopback_dns, checker)
    for tier in ("public", "root"):
        await _raises(
            Reason.TIER_UNKNOWN,
            orgs.approve(engine, actor=ADMIN, tiers=tiers, org_id=org.id, tier=tier),
        )
    await _raises(
        Reason.FIELD_INVALID,
        orgs.approve(engine, actor=ADMIN, tiers=tiers, org_id=org.id, tier="verified", days=0),
    )
    past = datetime.now(UTC) - timedelta(days=1)
    await _raises(
        Reason.FIELD_INVALID,
        orgs.approve(
            engine, actor=ADMIN, tiers=tiers, org_id=org.id, tier="verified", expires_at=past
        ),
    )
    # Nothing was half-done by the refused approvals.
    assert (await orgs.get_org(engine, org_id=org.id)).status == "verifying"
    assert await grants.list_grants(engine, org_id=org.id) == []
    _, grant = await orgs.approve(
        engine, actor=ADMIN, tiers=tiers, org_id=org.id, tier="verified", days=30
    )
    assert grant.expires_at is not None
    assert grant.expires_at - datetime.now(UTC) <= timedelta(days=30)
