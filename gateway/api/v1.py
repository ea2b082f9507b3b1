"""The OpenAI-compatible API: each route turns the HTTP request into a `Call`, hands it to
the pipeline, and renders the `Outcome`.

Plain Starlette routes, not FastAPI ones: FastAPI's per-request dependency solving would
only add cost on the hottest path (measured with bench/run.py). Their OpenAPI description
is declared separately, in `gateway.api.v1_schema`.
"""

from __future__ import annotations

import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive

from gateway.api.incoming import body_chunks
from gateway.api.render import JSON, decision_headers, openai_error, server_timing
from gateway.api.stream import SseResponse
from gateway.audit.event import Delivery
from gateway.audit.usage import audit_usage
from gateway.errors import GatewayError, MethodNotAllowed, NotFound
from gateway.pipeline.exchange import Answered, Call, Gone, Listed, Outcome, Refused, Streamed
from gateway.pipeline.flow import handle
from gateway.pipeline.timing import NO_CLOCK, StageClock
from gateway.reasons import Reason
from gateway.runtime import Runtime


def _disconnected(receive: Receive):  # type: ignore[no-untyped-def]
    async def wait() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    return wait


def _call(request: Request, endpoint: str, **extra: object) -> Call:
    declared = request.headers.get("content-length")
    return Call(
        endpoint=endpoint,
        authorization=request.headers.get("authorization"),
        disconnected=_disconnected(request.receive),
        body=body_chunks(request.receive),
        declared_length=int(declared) if declared and declared.isdigit() else None,
        method=request.method,
        path=request.scope["path"],
        dpop=request.headers.get("dpop"),
        source=request.client.host if request.client else None,
        user_agent=(request.headers.get("user-agent") or "")[:300] or None,
        clock=StageClock() if request.app.state.server_timing else NO_CLOCK,
        **extra,  # type: ignore[arg-type]
    )


async def _run(request: Request, call: Call) -> Response:
    runtime: Runtime = request.app.state.runtime
    response = render(await handle(runtime, call))
    if call.clock.laps:
        response.headers["server-timing"] = server_timing(call.clock.laps)
    return response


def render(outcome: Outcome) -> Response:
    headers = decision_headers(outcome.decision_id) | dict(outcome.headers)
    if isinstance(outcome, Answered):
        done = BackgroundTask(_delivered, outcome) if outcome.report else None
        return Response(outcome.body, outcome.status, headers, media_type=JSON, background=done)
    if isinstance(outcome, Streamed):
        return SseResponse(outcome.stream, headers, report=outcome.report)
    if isinstance(outcome, Listed):
        return Response(_models_body(outcome), 200, headers, media_type=JSON)
    if isinstance(outcome, Refused):
        return openai_error(outcome.error, outcome.decision_id)
    assert isinstance(outcome, Gone)
    return Response(status_code=499)  # nginx's "client closed request": nobody reads it


def _delivered(outcome: Answered) -> None:
    """After a whole body was sent: its outcome (usage as the pipeline metered it)."""
    assert outcome.report is not None
    body = outcome.body
    outcome.report(Delivery(outcome.status, audit_usage(outcome.usage), len(body), False))


def _model(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "tac-gateway"}


def _models_body(listed: Listed) -> bytes:
    if listed.single:
        return orjson.dumps(_model(listed.models[0]))
    return orjson.dumps({"object": "list", "data": [_model(m) for m in listed.models]})


def _endpoint(name: str, method: str):  # type: ignore[no-untyped-def]
    """A handler for one path: the pipeline for `method`, an audited 405 for the others."""

    async def handler(request: Request) -> Response:
        if request.method != method:
            refusal: GatewayError = MethodNotAllowed(
                Reason.METHOD_NOT_ALLOWED,
                f"{request.method} is not allowed on {request.url.path}; use {method}.",
                headers={"Allow": method},
            )
            return await _run(request, _call(request, "unmatched", refusal=refusal))
        model_id = request.path_params.get("model_id")
        return await _run(request, _call(request, name, model_id=model_id))

    return handler


async def _not_found(request: Request) -> Response:
    refusal = NotFound(Reason.NOT_FOUND, f"There is no route {request.url.path[:200]}.")
    return await _run(request, _call(request, "unmatched", refusal=refusal))


# Every method reaches the handler, which audits a wrong one as 405 (Starlette would
# otherwise answer 405 itself, unaudited; a plain function endpoint defaults to GET).
_ANY = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

routes: list[BaseRoute] = [
    Route("/v1/chat/completions", _endpoint("chat.completions", "POST"), methods=_ANY),
    Route("/v1/completions", _endpoint("completions", "POST"), methods=_ANY),
    Route("/v1/responses", _endpoint("responses", "POST"), methods=_ANY),
    Route("/v1/embeddings", _endpoint("embeddings", "POST"), methods=_ANY),
    Route("/v1/models", _endpoint("models", "GET"), methods=_ANY),
    Route("/v1/models/{model_id:path}", _endpoint("models.retrieve", "GET"), methods=_ANY),
    # Last: anything else under /v1 is a 404 with a decision id and an audit record.
    Route("/v1/{rest:path}", _not_found, methods=_ANY),
]
