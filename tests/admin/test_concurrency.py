"""Two (or eight) admins acting on one organization at once leave it consistent: one
move wins, the rest are refused with 409, and exactly one audit event and one grant
exist for the move that won. Concurrent tasks over separate connections."""

from __future__ import annotations

import asyncio
import itertools
import json

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import grants, orgs
from gateway.admin.actor import Actor
from gateway.errors import Conflict
from gateway.reasons import Reason
from gateway.trust.proof import ProofChecker
from gateway.trust.tiers import Tiers
from tests.admin.flow import admin_events, proved, verified
from tests.support.proof_servers import LoopbackDns

RACE = 8


def _outcomes(results: list[object]) -> tuple[list[object], list[Conflict]]:
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, Conflict)]
    unexpected = [r for r in results if isinstance(r, BaseException) and r not in lost]
    assert not unexpected, unexpected
    return won, lost


async def test_concurrent_approvals_and_rejections(
    engine: AsyncEngine, loopback_dns: LoopbackDns, checker: ProofChecker, tiers: Tiers
) -> None:
    """Half the admins approve, half reject, all at once: one decision, one grant at most."""
    org = await proved(engine, loopback_dns, checker)

    def act(i: int) -> object:
        admin = Actor(subject=f"admin-{i}", roles=("admin",))
        if i % 2:
            return orgs.reject(engine, actor=admin, org_id=org.id, reason=f"no ({i})")
        return orgs.approve(engine, actor=admin, tiers=tiers, org_id=org.id, tier="critical")

    results = await asyncio.gather(*(act(i) for i in range(RACE)), return_exceptions=True)  # type: ignore[arg-type]
    won, lost = _outcomes(list(results))
    assert len(won) == 1 and len(lost) == RACE - 1
    assert {c.reason for c in lost} <= {Reason.VERSION_CONFLICT, Reason.TRANSITION_NOT_ALLOWED}

    final = await orgs.get_org(engine, org_id=org.id)
    assert final.version == org.version + 1
    decisions = [
        json.loads(d)
        for e, d in await admin_events(engine, org.id)
        if e in ("admin.org.approve", "admin.org.reject")
    ]
    assert len(decisions) == 1
    assert decisions[0]["after"]["status"] == final.status
    expected_grants = 1 if final.status == "verified" else 0
    assert len(await grants.list_grants(engine, org_id=org.id)) == expected_grants


async def test_concurrent_suspend_reinstate_revoke(
    engine: AsyncEngine, loopback_dns: LoopbackDns, checker: ProofChecker, tiers: Tiers
) -> None:
    """Suspend and revoke racing on a verified org: the audit trail replays to the end state."""
    org = await verified(engine, loopback_dns, checker, tiers)
    admin = Actor(subject="admin-x", roles=("admin",))
    moves = [
        move
        for i in range(2)
        for move in (
            orgs.suspend(engine, actor=admin, org_id=org.id, reason=f"s{i}"),
            orgs.revoke(engine, actor=admin, org_id=org.id, reason=f"r{i}"),
            orgs.reinstate(engine, actor=admin, org_id=org.id),
        )
    ]
    results = await asyncio.gather(*moves, return_exceptions=True)
    won, _ = _outcomes(list(results))
    final = await orgs.get_org(engine, org_id=org.id)
    assert final.version == org.version + len(won)
    # Each event's `before` is the previous event's `after`: no lost update in between.
    chain = [json.loads(d) for _, d in await admin_events(engine, org.id)][-len(won) :]
    assert chain[0]["before"]["version"] == org.version
    for prev, nxt in itertools.pairwise(chain):
        assert prev["after"]["version"] == nxt["before"]["version"]
        assert prev["after"]["status"] == nxt["before"]["status"]
    assert chain[-1]["after"]["status"] == final.status
    live = [g for g in await grants.list_grants(engine, org_id=org.id) if g.live]
    assert bool(live) == (final.status != "revoked")


async def test_concurrent_grant_revocations(
    engine: AsyncEngine, loopback_dns: LoopbackDns, checker: ProofChecker, tiers: Tiers
) -> None:
    """Revoking one grant from several places at once: one revocation, the rest 409."""
    org = await verified(engine, loopback_dns, checker, tiers)
    (grant,) = await grants.list_grants(engine, org_id=org.id)
    admin = Actor(subject="admin-y", roles=("admin",))
    results = await asyncio.gather(
        *(
            grants.revoke_grant(engine, actor=admin, grant_id=grant.id, reason=f"r{i}")
            for i in range(RACE)
        ),
        return_exceptions=True,
    )
    won, lost = _outcomes(list(results))
    assert len(won) == 1
    assert {c.reason for c in lost} <= {Reason.ALREADY_REVOKED, Reason.VERSION_CONFLICT}
    events = [e for e, _ in await admin_events(engine, org.id) if e == "admin.grant.revoke"]
    assert len(events) == 1
