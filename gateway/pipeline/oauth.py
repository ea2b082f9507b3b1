"""The OAuth endpoints' audit step: every answer of the issuer is an access decision.

A token request (granted or refused), a revocation and an introspection each become one
audit event, a leaf of the transparency log, committed through the same `AuditDraft` and
group-committing writer as a model call's, and durable before the answer is sent. No
record, no answer: if the write fails the caller gets 503 `temporarily_unavailable`
(reason `audit_unavailable`) and the token that was minted is dropped.

What is logged comes from the issuer's `OAuthFacts`: the client only once it
authenticated, the token's id (`jti`), never a secret, an assertion, a token or a hash
of the form (a typed secret's hash would be guessable offline).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

import orjson

from gateway.audit.event import Actor
from gateway.audit.record import AuditDraft
from gateway.audit.writer import AuditUnavailable
from gateway.issuer.service import TokenGranted, TokenRefused
from gateway.reasons import Reason
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

Answer = TokenGranted | TokenRefused

# issuer endpoint → (audit endpoint, audit action)
EVENTS: dict[str, tuple[str, str]] = {
    "token": ("oauth.token", "token_issue"),
    "revocation": ("oauth.revoke", "token_revoke"),
    "introspection": ("oauth.introspect", "token_introspect"),
}


async def token(
    rt: Runtime,
    *,
    form: dict[str, str],
    client_id: str | None,
    uri: str,
    headers: Mapping[str, str],
    dpop_proof: str | None,
    source: str | None,
    user_agent: str | None,
) -> Answer:
    """A client-credentials token request, decided by the issuer and audited."""

    async def decide() -> Answer:
        return await rt.issuer.token(
            form=form, client_id=client_id, uri=uri, headers=headers, dpop_proof=dpop_proof
        )

    return await _audited(rt, "token", decide, source=source, user_agent=user_agent)


async def client_endpoint(
    rt: Runtime,
    endpoint: str,
    *,
    form: dict[str, str],
    client_id: str | None,
    uri: str,
    headers: Mapping[str, str],
    source: str | None,
    user_agent: str | None,
) -> Answer:
    """Revocation or introspection (`endpoint` "revocation" / "introspection"), audited."""
    run = rt.issuer.revoke if endpoint == "revocation" else rt.issuer.introspect

    async def decide() -> Answer:
        return await run(form=form, client_id=client_id, uri=uri, headers=headers)

    return await _audited(rt, endpoint, decide, source=source, user_agent=user_agent)


async def refused(
    rt: Runtime,
    endpoint: str,
    refusal: TokenRefused,
    *,
    source: str | None,
    user_agent: str | None,
) -> Answer:
    """A request refused before the issuer saw it (malformed form, rate limit), audited."""

    async def decide() -> Answer:
        return refusal

    return await _audited(rt, endpoint, decide, source=source, user_agent=user_agent)


async def _audited(
    rt: Runtime,
    endpoint: str,
    decide: Callable[[], Awaitable[Answer]],
    *,
    source: str | None,
    user_agent: str | None,
) -> Answer:
    audit_endpoint, action = EVENTS[endpoint]
    draft = AuditDraft(endpoint=audit_endpoint, writer=rt.audit, metrics=rt.metrics)
    draft.action = action
    draft.source, draft.user_agent = source, user_agent
    try:
        answer = await decide()
    except Exception:
        log.exception("unexpected failure at the %s endpoint", endpoint)
        answer = TokenRefused(500, Reason.INTERNAL_ERROR, "Internal error; retry later.")
    return await settle(draft, answer)


async def settle(draft: AuditDraft, answer: Answer) -> Answer:
    """The one audit step of an OAuth answer: commit its event, or replace it by a 503."""
    facts = answer.facts
    draft.named = Actor(
        subject=facts.client_id,  # a client-credentials token's subject is its client
        org_id=facts.org_id,
        client_id=facts.client_id,
        token_id=facts.token_id,
    )
    draft.tier = facts.tier
    draft.detail = orjson.dumps(facts.detail).decode() if facts.detail else None
    if isinstance(answer, TokenGranted):
        allow, status, reasons = True, 200, (Reason.ALLOWED,)
    else:
        allow, status, reasons = False, answer.status, (answer.reason,)
    try:
        await draft.commit(allow=allow, status=status, reasons=reasons)
    except AuditUnavailable:
        log.error("audit unavailable for %s (%s)", draft.decision_id, reasons[0])
        return TokenRefused(
            503,
            Reason.AUDIT_UNAVAILABLE,
            "The audit log is unavailable; retry later.",
            error=Reason.TEMPORARILY_UNAVAILABLE,
        )
    # Sent as `x-decision-id`: the caller can name the event to an auditor.
    return replace(answer, decision_id=draft.decision_id)
