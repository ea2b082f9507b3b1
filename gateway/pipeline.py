"""One request through every stage, top to bottom:

identity → body → routing → trust → policy → limits → forward → audit → respond.

Every exit, allowed or denied, goes through `AuditDraft.commit` exactly once, and the
row is durable before the response starts.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.errors import decision_headers, error_response
from gateway.audit.record import AuditDraft
from gateway.audit.writer import AuditUnavailable
from gateway.errors import BadRequest, Forbidden, GatewayError, PayloadTooLarge, Unavailable
from gateway.forward.relay import ClientGone, UpstreamStream
from gateway.forward.upstream import UpstreamRefused, prepare_body
from gateway.identity.principal import Principal
from gateway.policy.decision import Decision
from gateway.reasons import Reason
from gateway.routing.catalog import Route
from gateway.runtime import Runtime
from gateway.trust.resolve import Trust

log = logging.getLogger(__name__)

# endpoint name → upstream path below the route's base URL
PROXIED = {"chat.completions": "/chat/completions", "embeddings": "/embeddings"}


async def proxy(rt: Runtime, request: Request, endpoint: str) -> Response:
    audit = AuditDraft(endpoint=endpoint, writer=rt.audit, metrics=rt.metrics)
    # True once every stage that may refuse (identity … limits) has let the request through;
    # a later failure (upstream, caller gone) is then an allowed request that failed.
    cleared = False
    try:
        principal = rt.verifier.verify(request.headers.get("authorization"))
        audit.principal = principal
        raw = await read_body(request, rt.settings.max_body_bytes)
        audit.request_hash = hashlib.sha256(raw).hexdigest()
        body = parse_object(raw)
        route = await rt.catalog.lookup(body["model"])
        audit.model = route.name
        trust = await rt.trust.resolve(principal)
        audit.tier = trust.tier
        decision = await decide(rt, principal, trust, route, endpoint, body)
        audit.policy_version = decision.policy_version
        content = prepare_body(body, route, decision.obligations)
        await rt.limiter.hit(principal.subject)
        cleared = True
        stream = endpoint == "chat.completions" and body.get("stream") is True
        upstream = await rt.upstream.send(
            route=route,
            path=PROXIED[endpoint],
            content=content,
            stream=stream,
            request_id=audit.decision_id,
            receive=request.receive,
        )
    except GatewayError as exc:
        return await _refuse(audit, exc, allowed=cleared)
    except UpstreamRefused as exc:
        try:
            await audit.commit(allow=True, status=exc.status, reasons=(Reason.UPSTREAM_ERROR,))
        except AuditUnavailable:
            return error_response(_audit_down(), audit.decision_id)
        return Response(
            exc.body, exc.status, decision_headers(audit.decision_id), media_type="application/json"
        )
    except ClientGone:
        try:
            await audit.commit(allow=cleared, status=499, reasons=(Reason.CLIENT_CLOSED,))
        except AuditUnavailable:
            log.error("audit unavailable for %s (caller gone)", audit.decision_id)
        return Response(status_code=499)
    except Exception:
        log.exception("unexpected failure in %s", endpoint)
        return await _refuse(audit, _internal(), allowed=False)

    try:
        await audit.commit(allow=True, status=upstream.status_code, reasons=(Reason.ALLOWED,))
    except AuditUnavailable:
        # No durable record, no answer: the model's output is dropped (fail closed).
        await upstream.aclose()
        return error_response(_audit_down(), audit.decision_id)
    headers = decision_headers(audit.decision_id)
    if stream:
        return UpstreamStream(upstream, headers)
    return Response(upstream.content, upstream.status_code, headers, media_type="application/json")


async def list_models(rt: Runtime, request: Request) -> Response:
    """`/v1/models`: only what the caller's tier may use, each model asked of the policy."""
    audit = AuditDraft(endpoint="models", writer=rt.audit, metrics=rt.metrics)
    try:
        principal = rt.verifier.verify(request.headers.get("authorization"))
        audit.principal = principal
        trust = await rt.trust.resolve(principal)
        audit.tier = trust.tier
        await rt.limiter.hit(principal.subject)
        visible = []
        for route in (await rt.catalog.routes()).values():
            decision = await decide(rt, principal, trust, route, "models", {}, raise_on_deny=False)
            audit.policy_version = decision.policy_version
            if decision.allow:
                visible.append(route)
    except GatewayError as exc:
        return await _refuse(audit, exc, allowed=False)
    except Exception:
        log.exception("unexpected failure listing models")
        return await _refuse(audit, _internal(), allowed=False)
    try:
        await audit.commit(allow=True, status=200, reasons=(Reason.ALLOWED,))
    except AuditUnavailable:
        return error_response(_audit_down(), audit.decision_id)
    data = [
        {"id": r.name, "object": "model", "created": 0, "owned_by": "tac-gateway"}
        for r in sorted(visible, key=lambda r: r.name)
    ]
    return Response(
        orjson.dumps({"object": "list", "data": data}),
        200,
        decision_headers(audit.decision_id),
        media_type="application/json",
    )


async def decide(
    rt: Runtime,
    principal: Principal,
    trust: Trust,
    route: Route,
    endpoint: str,
    body: dict[str, Any],
    *,
    raise_on_deny: bool = True,
) -> Decision:
    doc = {
        "principal": principal.as_policy_input(),
        "trust": trust.as_policy_input(),
        "model": route.as_policy_input(),
        "request": {
            "endpoint": endpoint,
            "stream": body.get("stream") is True,
            "max_tokens": body.get("max_tokens"),
        },
    }
    decision = await rt.policy.decide(doc)
    failed = {Reason.POLICY_ERROR, Reason.POLICY_UNAVAILABLE} & set(decision.reasons)
    for reason in failed:
        rt.metrics.policy_failures.labels(rt.policy.name, reason).inc()
    if decision.allow or not raise_on_deny:
        return decision
    if failed:
        raise Unavailable(
            next(iter(failed)), "The access decision could not be made.", reasons=decision.reasons
        )
    raise Forbidden(decision.reasons[0], _deny_message(decision, route), reasons=decision.reasons)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest(Reason.INVALID_JSON, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest(Reason.INVALID_REQUEST, "The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest(Reason.INVALID_REQUEST, "The request must name a 'model'.")
    return body


async def _refuse(audit: AuditDraft, exc: GatewayError, *, allowed: bool) -> Response:
    try:
        await audit.commit(allow=allowed, status=exc.status, reasons=exc.reasons)
    except AuditUnavailable:
        log.error("audit unavailable while refusing %s (%s)", audit.decision_id, exc.reason)
        return error_response(_audit_down(), audit.decision_id)
    return error_response(exc, audit.decision_id)


def _deny_message(decision: Decision, route: Route) -> str:
    if Reason.TIER_TOO_LOW in decision.reasons:
        return f"Your verified tier does not include the model '{route.name}'."
    return "The access policy denied this request: " + ", ".join(decision.reasons) + "."


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(Reason.BODY_TOO_LARGE, f"The request body exceeds {limit} bytes.")


def _audit_down() -> GatewayError:
    return Unavailable(Reason.AUDIT_UNAVAILABLE, "The audit log is unavailable; retry later.")


def _internal() -> GatewayError:
    return GatewayError(Reason.INTERNAL_ERROR, "The gateway failed unexpectedly.")
