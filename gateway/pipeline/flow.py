"""One request through every stage, top to bottom, and its one audit step.

    identity → body → routing → trust → policy → limits → forward → audit
                                                  (usage: debited and counted at response end)

Each public function returns an `Outcome` and never raises for a refusal; `settle` is the
only place an audit record is committed, and it runs for every outcome. No record, no
answer: if the write fails, the caller gets 503 `audit_unavailable` and the model's output
is dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from gateway.audit.event import PolicyRecord, policy_input_text
from gateway.audit.record import AuditDraft
from gateway.audit.writer import AuditUnavailable
from gateway.errors import Forbidden, GatewayError, NotFound, Unavailable
from gateway.forward.relay import ClientGone, OnEnd, UpstreamStream
from gateway.forward.upstream import (
    UpstreamRefused,
    adds_stream_usage,
    output_bound,
    prepare_body,
)
from gateway.identity.dpop import dpop_required
from gateway.identity.principal import Principal
from gateway.limits.limiter import Admission
from gateway.pipeline.body import parse_request, read_body
from gateway.pipeline.exchange import Answered, Call, Gone, Listed, Outcome, Refused, Streamed
from gateway.policy.decision import Decision
from gateway.policy.input import PolicyInput, RequestFacts
from gateway.reasons import Reason
from gateway.routing.catalog import Route
from gateway.routing.endpoints import ENDPOINTS
from gateway.runtime import Runtime
from gateway.trust.resolve import Trust
from gateway.usage.figures import Usage
from gateway.usage.meter import UsageMeter
from gateway.usage.text import prompt_estimate

log = logging.getLogger(__name__)

_POLICY_FAILED = frozenset({Reason.POLICY_ERROR, Reason.POLICY_UNAVAILABLE})

Steps = Callable[[Runtime, Call, AuditDraft], Awaitable[Outcome]]


async def handle(rt: Runtime, call: Call) -> Outcome:
    """Run the steps for `call.endpoint` and settle the audit record of what they decided."""
    draft = AuditDraft(endpoint=call.endpoint, writer=rt.audit, metrics=rt.metrics)
    draft.source, draft.user_agent = call.source, call.user_agent
    steps = _STEPS.get(call.endpoint, _proxy)
    rt.audit.entered()  # how many requests are in flight decides where the audit commits
    try:
        try:
            outcome = await steps(rt, call, draft)
        except Exception:
            log.exception("unexpected failure in %s", call.endpoint)
            outcome = _refused(draft, _internal(), allow=False)
        outcome = await settle(draft, outcome)
    finally:
        rt.audit.left()
    call.clock.lap("audit")
    return outcome


async def settle(draft: AuditDraft, outcome: Outcome) -> Outcome:
    """The one audit step: commit the record, or replace the outcome by a 503."""
    try:
        await draft.commit(allow=outcome.allow, status=outcome.status, reasons=outcome.reasons)
    except AuditUnavailable:
        log.error("audit unavailable for %s (%s)", draft.decision_id, outcome.reasons[0])
        if isinstance(outcome, Streamed):
            await outcome.stream.aclose()
        if isinstance(outcome, Gone):
            return outcome
        down = Unavailable(Reason.AUDIT_UNAVAILABLE, "The audit log is unavailable; retry later.")
        return _refused(draft, down, allow=outcome.allow)
    return outcome


async def _proxy(rt: Runtime, call: Call, draft: AuditDraft) -> Outcome:
    """A model call: chat, completions, responses or embeddings."""
    endpoint = ENDPOINTS[call.endpoint]
    # True once every stage that may refuse (identity … limits) has let the request through;
    # a later failure (upstream, caller gone) is then an allowed request that failed.
    cleared = False
    clock = call.clock  # a no-op unless Server-Timing is on
    try:
        principal = draft.principal = await _identify(rt, call)
        clock.lap("identity")
        raw = await read_body(call.body, declared=call.declared_length, limit=rt.body_limit)
        draft.request_hash = hashlib.sha256(raw).hexdigest()
        request = parse_request(raw, endpoint)
        clock.lap("body")
        route = await rt.catalog.lookup(request.model)
        draft.model = route.name
        clock.lap("catalog")
        trust = await rt.trust.resolve(principal)
        principal = _placed(draft, principal, trust)
        draft.tier = trust.tier
        clock.lap("trust")
        facts = RequestFacts(
            endpoint=endpoint.name,
            stream=request.stream,
            max_tokens=_first_int(request.body, endpoint.cap_fields),
        )
        decision = await _decide(
            rt, draft, PolicyInput(principal, trust, route, facts), replayable=True
        )
        _enforce(decision, trust, route)
        body = prepare_body(request.body, endpoint=endpoint, obligations=decision.obligations)
        clock.lap("policy")
        admission = await _admit(rt, draft, principal, trust, route, request.body, decision)
        clock.lap("limits")
        cleared = True
        meter = UsageMeter(
            request=request.body,
            tokenizer=rt.tokenizer,
            drop_usage_event=adds_stream_usage(request.body, endpoint),
        )
        try:
            answer = await rt.upstream.call(
                route=route,
                endpoint=endpoint,
                body=body,
                stream=request.stream,
                request_id=draft.decision_id,
                disconnected=call.disconnected,
                record=draft,
                usage=meter,
            )
        except BaseException:
            await admission.settle(None)  # no answer: free the slot, give the tokens back
            raise
        # A stream: until the upstream's headers; a whole body: until its last byte.
        clock.lap("upstream")
    except GatewayError as exc:
        return _refused(draft, exc, allow=cleared)
    except UpstreamRefused as exc:
        return Answered(
            decision_id=draft.decision_id,
            allow=True,
            status=exc.status,
            reasons=(Reason.UPSTREAM_ERROR,),
            body=exc.body,
            report=draft.report_delivery,
        )
    except ClientGone:
        return Gone(
            decision_id=draft.decision_id,
            allow=cleared,
            status=499,
            reasons=(Reason.CLIENT_CLOSED,),
        )
    ok = (Reason.ALLOWED,)
    ended = _on_end(rt, admission, principal, tier=trust.tier, model=route.name)
    if isinstance(answer, UpstreamStream):
        # Usage is known when the stream closes (`gateway.api.stream` always closes it).
        answer.on_end(ended)
        return Streamed(
            decision_id=draft.decision_id,
            allow=True,
            status=answer.status,
            reasons=ok,
            headers=admission.headers,
            stream=answer,
            report=draft.report_delivery,
        )
    usage = await meter.of_body(answer)
    await ended(usage)
    clock.lap("usage")
    return Answered(
        decision_id=draft.decision_id,
        allow=True,
        status=200,
        reasons=ok,
        headers=admission.headers,
        body=answer,
        report=draft.report_delivery,
        usage=usage,
    )


async def _admit(
    rt: Runtime,
    draft: AuditDraft,
    principal: Principal,
    trust: Trust,
    route: Route,
    body: dict[str, Any],
    decision: Decision,
) -> Admission:
    """The limits stage: the subject's request rate and the call's own limits, in one step."""
    endpoint, obligations = ENDPOINTS[draft.endpoint], decision.obligations
    return await rt.limits.admit(
        subject=principal.subject,
        org=principal.org_id,
        tier=trust.tier,
        model=route.name,
        caps=obligations.limits,
        # Tokens held until the response ends: the prompt's guess plus the output cap.
        reserve=prompt_estimate(body)
        + output_bound(body, endpoint=endpoint, obligations=obligations),
        request_id=draft.decision_id,
    )


def _on_end(
    rt: Runtime, admission: Admission, principal: Principal, *, tier: str, model: str
) -> OnEnd:
    """What happens once a call's usage is known: limits debited, usage counted."""

    async def ended(usage: Usage | None) -> None:
        await admission.settle(usage)
        if usage is not None:
            rt.usage.record(org_id=principal.org_id, model=model, tier=tier, usage=usage)

    return ended


async def _models(rt: Runtime, call: Call, draft: AuditDraft) -> Outcome:
    """`/v1/models` and `/v1/models/{id}`: only what the caller's tier may use.

    A model the caller may not use is a 404 like a model that does not exist, so a lower
    tier never learns that a higher-tier model is there.
    """
    try:
        principal = draft.principal = await _identify(rt, call)
        trust = await rt.trust.resolve(principal)
        principal = _placed(draft, principal, trust)
        draft.tier = trust.tier
        await rt.limits.hit(principal.subject, tier=trust.tier)
        routes = await rt.catalog.routes()
        if call.model_id is not None:
            draft.model = call.model_id[:200]
            route = routes.get(call.model_id)
            candidates = [route] if route is not None else []
        else:
            candidates = sorted(routes.values(), key=lambda r: r.name)
        facts = RequestFacts(endpoint=call.endpoint)
        visible = []
        for route in candidates:
            decision = await _decide(rt, draft, PolicyInput(principal, trust, route, facts))
            if decision.allow:
                visible.append(route.name)
            elif _POLICY_FAILED & set(decision.reasons):
                _enforce(decision, trust, route)  # raises: the decision could not be made
        if call.model_id is not None and not visible:
            raise NotFound(
                Reason.MODEL_NOT_FOUND, f"The model '{call.model_id[:200]}' does not exist."
            )
    except GatewayError as exc:
        return _refused(draft, exc, allow=False)
    return Listed(
        decision_id=draft.decision_id,
        allow=True,
        status=200,
        reasons=(Reason.ALLOWED,),
        models=tuple(visible),
        single=call.model_id is not None,
    )


async def _unmatched(rt: Runtime, call: Call, draft: AuditDraft) -> Outcome:
    """A path or method the API does not have: refused, but audited with who asked."""
    assert call.refusal is not None
    # The refusal stands either way; an anonymous caller is recorded as such.
    with contextlib.suppress(GatewayError):
        draft.principal = await _identify(rt, call)
    return _refused(draft, call.refusal, allow=False)


_STEPS: dict[str, Steps] = {
    "models": _models,
    "models.retrieve": _models,
    "unmatched": _unmatched,
}


async def _decide(
    rt: Runtime, draft: AuditDraft, policy_input: PolicyInput, *, replayable: bool = False
) -> Decision:
    doc = policy_input.document()
    decision = await rt.policy.decide(doc)
    # Recorded on every row whose request reached the policy, allowed or denied.
    draft.policy_version = decision.policy_version
    if replayable:
        # The exact input and answer, so `audit explain` can evaluate them again later.
        draft.policy = PolicyRecord(
            version=decision.policy_version,
            bundle_sha256=rt.policy_digests.get(decision.policy_version),
            input=policy_input_text(doc),
            allow=decision.allow,
            reasons=decision.reasons,
            max_tokens=decision.obligations.max_tokens,
            keep_prompt=decision.obligations.keep_prompt,
        )
    for reason in _POLICY_FAILED & set(decision.reasons):
        rt.metrics.policy_failures.labels(rt.policy.name, reason).inc()
    return decision


async def _identify(rt: Runtime, call: Call) -> Principal:
    return await rt.identity.authenticate(
        call.authorization, proof=call.dpop, method=call.method, path=call.path
    )


def _placed(draft: AuditDraft, principal: Principal, trust: Trust) -> Principal:
    """A federated principal's organization, as the trust stage mapped it (audit, policy)."""
    if principal.federated:
        principal = draft.principal = replace(principal, org_id=trust.org_id)
    return principal


def _enforce(decision: Decision, trust: Trust, route: Route) -> None:
    """Raise the refusal a denying decision stands for."""
    if decision.allow:
        return
    if tuple(decision.reasons) == (Reason.DPOP_REQUIRED,):
        # RFC 9449 §7.1: a 401 with the DPoP challenge, so the client knows what to send.
        raise dpop_required()
    failed = _POLICY_FAILED & set(decision.reasons)
    if failed:
        raise Unavailable(
            Reason(min(failed)), "The access decision could not be made.", reasons=decision.reasons
        )
    raise Forbidden(
        Reason(decision.reasons[0]),
        _deny_message(decision, trust, route),
        reasons=decision.reasons,
    )


def _deny_message(decision: Decision, trust: Trust, route: Route) -> str:
    if Reason.TIER_TOO_LOW in decision.reasons:
        return (
            f"The model '{route.name}' needs the '{route.tier_floor}' tier; "
            f"your tier is '{trust.tier}'."
        )
    if Reason.MODEL_NOT_SCREENED in decision.reasons:
        return (
            f"The model '{route.name}' has no current misalignment screening report, which "
            f"the '{trust.tier}' tier requires."
        )
    if Reason.MODEL_FAILED_SCREENING in decision.reasons:
        return (
            f"The model '{route.name}' did not pass the misalignment screening the "
            f"'{trust.tier}' tier requires."
        )
    return "The access policy denied this request: " + ", ".join(decision.reasons) + "."


def _first_int(body: dict[str, object], fields: tuple[str, ...]) -> int | None:
    for name in fields:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _refused(draft: AuditDraft, exc: GatewayError, *, allow: bool) -> Refused:
    return Refused(
        decision_id=draft.decision_id,
        allow=allow,
        status=exc.status,
        reasons=exc.reasons,
        error=exc,
    )


def _internal() -> GatewayError:
    return GatewayError(Reason.INTERNAL_ERROR, "The gateway failed unexpectedly.")
