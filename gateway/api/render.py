"""The renderers: one per wire format the gateway speaks, and nowhere else builds an error.

- OpenAI JSON errors, for `/v1` and the operational routes;
- the SSE error event, when a stream breaks after its headers were sent;
- RFC 6749 §5.2 errors, for the token endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.responses import Response

from gateway.errors import GatewayError
from gateway.reasons import Reason

JSON = "application/json"


def decision_headers(decision_id: str) -> dict[str, str]:
    # x-request-id too: the openai SDK exposes it to callers as `response._request_id`.
    return {"x-decision-id": decision_id, "x-request-id": decision_id}


def server_timing(laps: list[tuple[str, int]]) -> str:
    """`Server-Timing` (W3C): each stage's duration in ms, then their total."""
    parts = [f"{stage};dur={ns / 1e6:.3f}" for stage, ns in laps]
    parts.append(f"total;dur={sum(ns for _, ns in laps) / 1e6:.3f}")
    return ", ".join(parts)


def openai_error_body(exc: GatewayError) -> bytes:
    return orjson.dumps(
        {
            "error": {
                "message": exc.message,
                "type": exc.error_type,
                "code": exc.reason.value,
                "param": None,
            }
        }
    )


def openai_error(exc: GatewayError, decision_id: str | None = None) -> Response:
    headers = dict(exc.headers)
    if decision_id:
        headers |= decision_headers(decision_id)
    return Response(openai_error_body(exc), exc.status, headers, media_type=JSON)


def sse_error(exc: GatewayError) -> bytes:
    """An error event: the only honest signal left once a stream's headers are out."""
    return b"data: " + openai_error_body(exc) + b"\n\n"


def oauth_error(
    status: int,
    error: Reason,
    description: str,
    headers: Mapping[str, str] | None = None,
    *,
    reason: Reason | None = None,
) -> Response:
    """RFC 6749 §5.2; `reason` is added when the gateway's reason is not the `error` code."""
    doc = {"error": error.value, "error_description": description}
    if reason is not None:
        doc["reason"] = reason.value
    body = orjson.dumps(doc)
    # RFC 6749 §5.1: token responses, errors included, must not be cached.
    all_headers = {k.lower(): v for k, v in (headers or {}).items()}
    all_headers |= {"cache-control": "no-store", "pragma": "no-cache"}
    return Response(body, status, all_headers, media_type=JSON)
