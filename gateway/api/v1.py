"""The OpenAI-compatible API: each request becomes a `Call`, the pipeline decides, and the
`Outcome` is written back.

Plain ASGI, not FastAPI or Starlette routes: this is the hottest path, and a request
here needs no request object, header mapping, router scan or response object (measured
with bench/v1_dispatch.py). `V1App` finds the endpoint by exact path, reads the five
headers the pipeline uses in one pass over the raw list, and sends a whole answer as two
ASGI messages. Their OpenAPI description is declared separately, in
`gateway.api.v1_schema`; `routes` lists the same endpoints for FastAPI's route table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import orjson
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from gateway.api.incoming import body_chunks
from gateway.api.render import decision_headers, openai_error, server_timing
from gateway.api.stream import SseResponse
from gateway.audit.event import Delivery
from gateway.audit.usage import audit_usage
from gateway.errors import GatewayError, MethodNotAllowed, NotFound
from gateway.pipeline.exchange import Answered, Call, Gone, Listed, Outcome, Refused, Streamed
from gateway.pipeline.flow import handle
from gateway.pipeline.timing import NO_CLOCK, StageClock
from gateway.reasons import Reason
from gateway.runtime import Runtime

# path → (endpoint, the one method it serves)
_EXACT: dict[str, tuple[str, str]] = {
    "/v1/chat/completions": ("chat.completions", "POST"),
    "/v1/completions": ("completions", "POST"),
    "/v1/responses": ("responses", "POST"),
    "/v1/embeddings": ("embeddings", "POST"),
    "/v1/models": ("models", "GET"),
}
_RETRIEVE = "/v1/models/"
_WANTED = frozenset({b"authorization", b"content-length", b"dpop", b"user-agent"})
_JSON_TYPE = (b"content-type", b"application/json")


class V1App:
    """Every `/v1/...` request: the pipeline for a known endpoint and method, an audited
    404 or 405 otherwise. `state` is the app's (`runtime`, `server_timing`)."""

    def __init__(self, state: object) -> None:
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        model_id = None
        known = _EXACT.get(path)
        if known is None and path.startswith(_RETRIEVE) and len(path) > len(_RETRIEVE):
            known, model_id = ("models.retrieve", "GET"), path[len(_RETRIEVE) :]
        if known is None:
            refusal: GatewayError = NotFound(Reason.NOT_FOUND, f"There is no route {path[:200]}.")
            call = self._call(scope, receive, "unmatched", refusal=refusal)
        elif method != known[1]:
            refusal = MethodNotAllowed(
                Reason.METHOD_NOT_ALLOWED,
                f"{method} is not allowed on {path}; use {known[1]}.",
                headers={"Allow": known[1]},
            )
            call = self._call(scope, receive, "unmatched", refusal=refusal)
        else:
            call = self._call(scope, receive, known[0], model_id=model_id)
        runtime: Runtime = self._state.runtime  # type: ignore[attr-defined]
        outcome = await handle(runtime, call)
        timing = server_timing(call.clock.laps) if call.clock.laps else None
        await _respond(outcome, timing, scope, receive, send)

    def _call(self, scope: Scope, receive: Receive, endpoint: str, **extra: object) -> Call:
        found: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in _WANTED and name not in found:  # the first one, as Starlette reads
                found[name] = value
        declared = found.get(b"content-length")
        agent = found.get(b"user-agent")
        client = scope.get("client")
        return Call(
            endpoint=endpoint,
            authorization=_text(found.get(b"authorization")),
            disconnected=_disconnected(receive),
            body=body_chunks(receive),
            declared_length=int(declared) if declared and declared.isdigit() else None,
            method=scope["method"],
            path=scope["path"],
            dpop=_text(found.get(b"dpop")),
            source=client[0] if client else None,
            user_agent=_text(agent[:300]) if agent else None,
            clock=StageClock() if self._state.server_timing else NO_CLOCK,  # type: ignore[attr-defined]
            **extra,  # type: ignore[arg-type]
        )


def _text(value: bytes | None) -> str | None:
    # Header bytes are Latin-1 (RFC 9110 §5.5), as Starlette decodes them.
    return value.decode("latin-1") if value is not None else None


def _disconnected(receive: Receive) -> Callable[[], Awaitable[None]]:
    async def wait() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    return wait


async def _respond(
    outcome: Outcome, timing: str | None, scope: Scope, receive: Receive, send: Send
) -> None:
    headers = decision_headers(outcome.decision_id) | dict(outcome.headers)
    if timing is not None:
        headers["server-timing"] = timing
    if isinstance(outcome, Answered):
        await _send_json(send, outcome.status, headers, outcome.body)
        if outcome.report is not None:
            # After the last byte was handed to the server: how the answer ended.
            usage = audit_usage(outcome.usage)
            outcome.report(Delivery(outcome.status, usage, len(outcome.body), False))
        return
    if isinstance(outcome, Streamed):
        await SseResponse(outcome.stream, headers, report=outcome.report)(scope, receive, send)
        return
    if isinstance(outcome, Listed):
        await _send_json(send, 200, headers, _models_body(outcome))
        return
    if isinstance(outcome, Refused):
        response = openai_error(outcome.error, outcome.decision_id)
        if timing is not None:
            response.headers["server-timing"] = timing
        await response(scope, receive, send)
        return
    assert isinstance(outcome, Gone)
    # nginx's "client closed request": nobody reads it.
    await send(
        {"type": "http.response.start", "status": 499, "headers": [(b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b""})


async def _send_json(send: Send, status: int, headers: Mapping[str, str], body: bytes) -> None:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append(_JSON_TYPE)
    raw.append((b"content-length", str(len(body)).encode()))
    start: Message = {"type": "http.response.start", "status": status, "headers": raw}
    await send(start)
    await send({"type": "http.response.body", "body": body})


def _model(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "tac-gateway"}


def _models_body(listed: Listed) -> bytes:
    if listed.single:
        return orjson.dumps(_model(listed.models[0]))
    return orjson.dumps({"object": "list", "data": [_model(m) for m in listed.models]})


class _Endpoint:
    """One route of FastAPI's table, served by the same `V1App` (an ASGI endpoint)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await V1App(scope["app"].state)(scope, receive, send)


# Every method reaches the app, which audits a wrong one as 405 (Starlette would otherwise
# answer 405 itself, unaudited).
_ANY = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"]
_ENDPOINT = _Endpoint()

routes: list[BaseRoute] = [
    *(Route(path, _ENDPOINT, methods=_ANY) for path in _EXACT),
    Route("/v1/models/{model_id:path}", _ENDPOINT, methods=_ANY),
    # Last: anything else under /v1 is a 404 with a decision id and an audit record.
    Route("/v1/{rest:path}", _ENDPOINT, methods=_ANY),
]
