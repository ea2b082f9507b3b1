"""Rendering errors in the OpenAI error format, the one shape every `/v1` caller gets."""

from __future__ import annotations

import orjson
from starlette.responses import Response

from gateway.errors import GatewayError


def error_body(*, message: str, error_type: str, code: str) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": error_type, "code": code, "param": None}}
    )


def error_response(exc: GatewayError, decision_id: str | None = None) -> Response:
    headers = dict(exc.headers)
    if decision_id:
        headers |= decision_headers(decision_id)
    return Response(
        error_body(message=exc.message, error_type=exc.error_type, code=exc.reason),
        status_code=exc.status,
        headers=headers,
        media_type="application/json",
    )


def decision_headers(decision_id: str) -> dict[str, str]:
    # x-request-id too: the openai SDK exposes it to callers as `response._request_id`.
    return {"x-decision-id": decision_id, "x-request-id": decision_id}
