"""The request body: read within its size limit, parsed, and checked before any stage uses it."""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.errors import BadRequest, PayloadTooLarge
from gateway.reasons import Reason
from gateway.routing.endpoints import Endpoint


@dataclass(frozen=True, slots=True)
class ModelRequest:
    body: dict[str, Any]
    model: str
    stream: bool


async def read_body(
    chunks: AsyncIterable[bytes] | None, *, declared: int | None, limit: int
) -> bytes:
    """The whole body, refused as soon as it is known to exceed `limit` bytes."""
    if declared is not None and declared > limit:
        raise _too_large(limit)
    parts, size = [], 0
    if chunks is None:
        return b""
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def parse_request(raw: bytes, endpoint: Endpoint) -> ModelRequest:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest(Reason.INVALID_JSON, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest(Reason.INVALID_REQUEST, "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest(Reason.INVALID_REQUEST, "The request must name a 'model'.")
    stream = body.get("stream")
    # null means not given; anything else but a boolean would leave the answer's format
    # (SSE or JSON) to the upstream's guess.
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest(Reason.INVALID_REQUEST, "'stream' must be a boolean.")
    if stream and not endpoint.streams:
        raise BadRequest(Reason.INVALID_REQUEST, f"'{endpoint.name}' does not stream.")
    return ModelRequest(body=body, model=model, stream=stream is True)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(Reason.BODY_TOO_LARGE, f"The request body exceeds {limit} bytes.")
