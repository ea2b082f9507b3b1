"""Demo upstream: a tiny, deterministic OpenAI-compatible model server.

Owns the local stand-in for a model backend that the quickstart's demo catalog points at
and that tests use as a real HTTP/SSE upstream. It is NOT a model: replies are built from
a fixed word list. Behaviour is steered per request by an extra body field ``"demo"``
(``extra_body={"demo": {...}}`` in the openai SDK): ``chunks``, ``delay_ms``, ``status``,
``drop_after``, ``echo_headers``, ``echo_body``. Counters for tests live in
``app.state.stats`` and at ``GET /_demo/stats``.

Run: ``python -m gateway.demo.upstream --host 127.0.0.1 --port 8081``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import math
import struct
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from contextlib import suppress
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")
EMBEDDING_DIMS = 8


class DemoError(Exception):
    """A request the demo server refuses, rendered as an OpenAI-format error."""

    def __init__(self, status: int, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _error(exc: DemoError) -> Response:
    kind = {429: "rate_limit_error"}.get(
        exc.status, "server_error" if exc.status >= 500 else "invalid_request_error"
    )
    return _json({"error": {"message": exc.message, "type": kind, "code": exc.code}}, exc.status)


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
}


async def _parse(request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
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


def _prompt_text(messages: list[Any]) -> str:
    parts: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):  # multi-part content: count the text parts only
            parts += [p.get("text", "") for p in content if isinstance(p, dict)]
    return " ".join(p for p in parts if isinstance(p, str))


def _pieces(
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


class _EventStream(Response):
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


def _sse(payload: Any) -> bytes:
    return b"data: %b\n\n" % (payload if isinstance(payload, bytes) else orjson.dumps(payload))


async def chat_completions(request: Request) -> Response:
    try:
        body, knobs = await _parse(request)
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(model, str) or not model:
            raise DemoError(400, "'model' is required and must be a string", "missing_model")
        if not isinstance(messages, list) or not messages:
            raise DemoError(
                400, "'messages' is required and must be a non-empty list", "missing_messages"
            )
    except DemoError as exc:
        return _error(exc)
    pieces = _pieces(model, knobs, dict(request.headers), body)
    content = "".join(pieces)
    prompt, completion = len(_prompt_text(messages).split()), len(content.split())
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    base = {
        "id": f"chatcmpl-demo-{uuid.uuid4().hex[:24]}",
        "created": int(time.time()),
        "model": model,
    }

    if not body.get("stream"):
        await asyncio.sleep(knobs["delay"])
        message = {"role": "assistant", "content": content}
        return _json(
            {
                **base,
                "object": "chat.completion",
                "usage": usage,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            }
        )

    opts = body.get("stream_options")
    include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        extra = {"usage": None} if include_usage else {}
        return _sse({**base, "object": "chat.completion.chunk", "choices": [choice], **extra})

    async def events() -> AsyncGenerator[bytes, None]:
        yield chunk({"role": "assistant", "content": ""}, None)
        for piece in pieces:
            await asyncio.sleep(knobs["delay"])
            yield chunk({"content": piece}, None)
        yield chunk({}, "stop")
        if include_usage:
            yield _sse({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        yield _sse(b"[DONE]")

    return _EventStream(events(), request.app.state.stats, knobs["drop_after"])


def embed(text: str, dims: int = EMBEDDING_DIMS) -> list[float]:
    """Deterministic unit vector derived from a hash of the text."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [b / 127.5 - 1.0 for b in digest[:dims]]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


async def embeddings(request: Request) -> Response:
    try:
        body, knobs = await _parse(request)
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if (
            not isinstance(inputs, list)
            or not inputs
            or not all(isinstance(i, str) for i in inputs)
        ):
            raise DemoError(400, "'input' must be a string or a non-empty list of strings")
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise DemoError(400, "'encoding_format' must be 'float' or 'base64'")
    except DemoError as exc:
        return _error(exc)
    await asyncio.sleep(knobs["delay"])
    data = []
    for index, text in enumerate(inputs):
        vector: list[float] | str = embed(text)
        if fmt == "base64":  # the openai SDK asks for base64 (little-endian float32) by default
            vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(len(t.split()) for t in inputs)
    return _json(
        {
            "object": "list",
            "data": data,
            "model": body.get("model", ""),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


async def models(request: Request) -> Response:
    model = {"id": request.app.state.name, "object": "model", "created": 0, "owned_by": "demo"}
    return _json({"object": "list", "data": [model]})


async def healthz(request: Request) -> Response:
    return _json({"status": "ok"})


async def stats(request: Request) -> Response:
    return _json(request.app.state.stats)


def create_upstream_app(name: str = "demo") -> Starlette:
    """Build the demo upstream; `name` is the model id listed by /v1/models."""
    from gateway.demo.text_endpoints import completions, responses  # it imports this module

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/_demo/stats", stats, methods=["GET"]),
        ]
    )
    app.state.name = name
    app.state.stats = {
        "requests": 0,
        "completed_streams": 0,
        "cancelled_streams": 0,
        "dropped_streams": 0,
        "last_headers": {},
    }
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Demo OpenAI-compatible upstream (not a model).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--name", default="demo", help="model id listed by /v1/models")
    args = parser.parse_args(argv)
    uvicorn.run(
        create_upstream_app(args.name),
        host=args.host,
        port=args.port,
        loop="auto",
        http="auto",
        log_level="warning",
    )


if __name__ == "__main__":
    main()
