"""Domain proof as admin operations: start a challenge, check it, keep what was seen.

Starting one moves the organization to `verifying` (compare-and-set, audited). Checking
asks the resolvers or the web server outside any transaction (it may take seconds), then
records the result and the answer on the challenge row, audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.admin.actor import Actor
from gateway.admin.auditlog import record_admin_event, snapshot
from gateway.admin.orgs import transition
from gateway.admin.schemas import ChallengePublic
from gateway.admin.store import CHALLENGE, org_row, write
from gateway.db.models import utcnow
from gateway.errors import BadRequest, Conflict, NotFound
from gateway.reasons import Reason
from gateway.trust.lifecycle import OrgAction, OrgStatus
from gateway.trust.proof import Method, ProofChecker, Result, instructions, new_token


def _method(raw: str) -> Method:
    try:
        return Method(raw)
    except ValueError:
        raise BadRequest(
            Reason.FIELD_INVALID, f"Unknown proof method {raw[:20]!r}; use dns or https."
        ) from None


def _public(row: dict[str, Any], domain: str) -> ChallengePublic:
    return ChallengePublic.model_validate(
        {**row, "instructions": instructions(Method(row["method"]), domain, row["token"])}
    )


async def start_challenge(
    engine: AsyncEngine,
    *,
    actor: Actor,
    org_id: str,
    method: str,
    ttl: timedelta,
    expected_version: int | None = None,
) -> ChallengePublic:
    how = _method(method)

    async def create(
        conn: AsyncConnection, before: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        if not before["domain"]:
            raise Conflict(Reason.PROOF_MISSING, "The organization has no domain to prove.")
        row: dict[str, Any] = {
            "org_id": org_id,
            "method": how,
            "token": new_token(),
            "created_at": now,
            "expires_at": now + ttl,
            "checked_at": None,
            "result": None,
            "evidence": "",
        }
        result = await conn.execute(insert(CHALLENGE).returning(CHALLENGE.c.id), row)
        row["id"] = result.scalar_one()
        # The token is not secret (it is published), so the audit event may hold it.
        return {"challenge": snapshot(row), "domain": before["domain"]}

    _, done = await transition(
        engine,
        actor=actor,
        org_id=org_id,
        action=OrgAction.CHALLENGE,
        expected_version=expected_version,
        effect=create,
    )
    return _public(dict(done["challenge"]), done["domain"])


async def _load(conn: AsyncConnection, org_id: str, challenge_id: int) -> dict[str, Any]:
    query = select(CHALLENGE).where(CHALLENGE.c.id == challenge_id, CHALLENGE.c.org_id == org_id)
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise NotFound(
            Reason.CHALLENGE_NOT_FOUND, f"No challenge {challenge_id} for this organization."
        )
    return dict(row)


async def list_challenges(engine: AsyncEngine, *, org_id: str) -> list[ChallengePublic]:
    async with engine.connect() as conn:
        org = await org_row(conn, org_id)
        query = select(CHALLENGE).where(CHALLENGE.c.org_id == org_id).order_by(CHALLENGE.c.id)
        rows = (await conn.execute(query)).mappings().all()
    return [_public(dict(r), org["domain"] or "") for r in rows]


async def check_challenge(
    engine: AsyncEngine,
    *,
    actor: Actor,
    checker: ProofChecker,
    org_id: str,
    challenge_id: int,
    now: datetime | None = None,
) -> ChallengePublic:
    """Ask for the token now; record passed / failed / error with the answer as evidence."""
    async with engine.connect() as conn:
        org = await org_row(conn, org_id)
        challenge = await _load(conn, org_id, challenge_id)
    if challenge["result"] == Result.PASSED:
        return _public(challenge, org["domain"])  # proof stands; re-asking could only lose it
    if org["status"] != OrgStatus.VERIFYING:
        raise Conflict(
            Reason.TRANSITION_NOT_ALLOWED,
            f"The organization is {org['status']}; only a verifying organization is checked.",
        )
    when = now or utcnow()
    if challenge["expires_at"] <= when:
        raise Conflict(
            Reason.CHALLENGE_EXPIRED,
            f"Challenge {challenge_id} expired at {challenge['expires_at']:%Y-%m-%d %H:%M} UTC; "
            "start a new one.",
        )
    outcome = await checker.check(
        method=Method(challenge["method"]), domain=org["domain"], token=challenge["token"]
    )
    async with write(engine) as conn:
        values = {"checked_at": utcnow(), "result": outcome.result, "evidence": outcome.evidence}
        await conn.execute(
            update(CHALLENGE)
            # Never overwrite a pass recorded by a concurrent check.
            .where(CHALLENGE.c.id == challenge_id, CHALLENGE.c.result.is_distinct_from("passed"))
            .values(**values)
        )
        after = await _load(conn, org_id, challenge_id)
        await record_admin_event(
            conn,
            actor=actor,
            action="org.challenge.check",
            target={"org_id": org_id, "challenge_id": challenge_id, "result": after["result"]},
            before=snapshot(challenge),
            after=snapshot(after),
            org_id=org_id,
        )
    return _public(after, org["domain"])
