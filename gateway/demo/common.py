"""What the demo model server's endpoints share: knobs, errors, reply pieces, SSE framing."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, Callable
from contextlib import suppress
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")
EMBEDDING_DIMS = 8


class DemoError(Exception):
    """A request the demo server refuses, rendered as an OpenAI-format error."""

    def __init__(self, status: int, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def error_response(exc: DemoError) -> Response:
    kind = {429: "rate_limit_error"}.get(
        exc.status, "server_error" if exc.status >= 500 else "invalid_request_error"
    )
    return json_response(
        {"error": {"message": exc.message, "type": kind, "code": exc.code}}, exc.status
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # `true` is not a count


# knob -> (default, validity check, what a valid value is)
_KNOBS: dict[str, tuple[Any, Callable[[Any], bool], str]] = {
    "chunks": (5, lambda v: _is_int(v) and 1 <= v <= 10_000, "an integer in [1, 10000]"),
    "delay_ms": (
        0,
        lambda v: (_is_int(v) or isinstance(v, float)) and 0 <= v <= 60_000,
        "a number in [0, 60000]",
    ),
    "status": (None, lambda v: _is_int(v) and 400 <= v <= 599, "an integer in [400, 599]"),
    "drop_after": (None, lambda v: _is_int(v) and 0 <= v <= 10_000, "an integer in [0, 10000]"),
    "echo_headers": (False, lambda v: isinstance(v, bool), "a boolean"),
    # The reply is the JSON body this server received: shows what a proxy changed in it.
    "echo_body": (False, lambda v: isinstance(v, bool), "a boolean"),
    # Answer without any `usage`, like servers that do not report it.
    "no_usage": (False, lambda v: isinstance(v, bool), "a boolean"),
}


async def parse(request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
    """Record the request in the stats, then return (body, validated demo knobs)."""
    stats = request.app.state.stats
    stats["requests"] += 1
    stats["last_headers"] = dict(request.headers)
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise DemoError(400, f"malformed JSON body: {exc}", "invalid_json") from None
    if not isinstance(body, dict):
        raise DemoError(400, "request body must be a JSON object")
    demo = body.get("demo") or {}
    if not isinstance(demo, dict) or not set(demo) <= set(_KNOBS):
        raise DemoError(400, f"demo must be an object with keys among {sorted(_KNOBS)}")
    for key, (_, valid, what) in _KNOBS.items():
        if key in demo and not valid(demo[key]):
            raise DemoError(400, f"demo.{key} must be {what}")
    knobs = {key: demo.get(key, default) for key, (default, _, _) in _KNOBS.items()}
    if knobs["echo_headers"] and knobs["echo_body"]:
        raise DemoError(400, "demo.echo_headers and demo.echo_body exclude each other")
    if knobs["status"] is not None:
        raise DemoError(knobs["status"], f"demo: forced status {knobs['status']}", "demo_status")
    knobs["delay"] = knobs["delay_ms"] / 1000
    return body, knobs


def prompt_text(messages: list[Any]) -> str:
    parts: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):  # multi-part content: count the text parts only
            parts += [p.get("text", "") for p in content if isinstance(p, dict)]
    return " ".join(p for p in parts if isinstance(p, str))


def reply_pieces(
    model: str, knobs: dict[str, Any], headers: dict[str, str], body: dict[str, Any]
) -> list[str]:
    """The reply split into exactly `chunks` pieces; joined, they are the full reply."""
    n = knobs["chunks"]
    if knobs["echo_headers"] or knobs["echo_body"]:
        echoed = headers if knobs["echo_headers"] else body
        text = orjson.dumps(echoed, option=orjson.OPT_SORT_KEYS).decode()
        size = max(1, math.ceil(len(text) / n))
        return [text[i * size : (i + 1) * size] for i in range(n)]
    head = f"Demo model {model} says: {WORDS[0]}"
    return [head] + [f" {WORDS[i % len(WORDS)]}" for i in range(1, n)]


class EventStream(Response):
    """SSE response sending each event as its own body message.

    Starlette's StreamingResponse can neither drop a connection on purpose nor tell us
    reliably that the client left, so this drives the ASGI messages itself.
    """

    media_type = "text/event-stream"

    def __init__(
        self, events: AsyncGenerator[bytes, None], stats: dict[str, Any], drop_after: int | None
    ) -> None:
        self.events, self.stats, self.drop_after = events, stats, drop_after
        self.status_code, self.background = 200, None
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        producer = asyncio.ensure_future(self._produce(send))
        watcher = asyncio.ensure_future(self._until_disconnect(receive))
        try:
            await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also runs when the server cancels us on shutdown
            watcher.cancel()
            if not producer.done():
                producer.cancel()
            with suppress(asyncio.CancelledError, OSError):
                await producer

    @staticmethod
    async def _until_disconnect(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def _produce(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        sent = 0
        try:
            async for event in self.events:
                if self.drop_after is not None and sent >= self.drop_after:
                    # Returning without the final body message makes uvicorn close the
                    # socket mid-stream: the client sees a truncated chunked body.
                    self.stats["dropped_streams"] += 1
                    return
                await send({"type": "http.response.body", "body": event, "more_body": True})
                sent += 1
        except (asyncio.CancelledError, OSError):
            self.stats["cancelled_streams"] += 1  # client went away before the last chunk
            raise
        finally:
            await self.events.aclose()  # closes it if a send failed while it was suspended
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self.stats["completed_streams"] += 1


def sse(payload: Any) -> bytes:
    return b"data: %b\n\n" % (payload if isinstance(payload, bytes) else orjson.dumps(payload))
