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
from collections.abc import AsyncGenerator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.demo.common import (
    EMBEDDING_DIMS,
    DemoError,
    EventStream,
    error_response,
    json_response,
    parse,
    prompt_text,
    reply_pieces,
    sse,
)
from gateway.demo.text_endpoints import completions, responses


async def chat_completions(request: Request) -> Response:
    try:
        body, knobs = await parse(request)
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(model, str) or not model:
            raise DemoError(400, "'model' is required and must be a string", "missing_model")
        if not isinstance(messages, list) or not messages:
            raise DemoError(
                400, "'messages' is required and must be a non-empty list", "missing_messages"
            )
    except DemoError as exc:
        return error_response(exc)
    pieces = reply_pieces(model, knobs, dict(request.headers), body)
    content = "".join(pieces)
    prompt, completion = len(prompt_text(messages).split()), len(content.split())
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
        reported = {} if knobs["no_usage"] else {"usage": usage}
        return json_response(
            {
                **base,
                "object": "chat.completion",
                **reported,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            }
        )

    opts = body.get("stream_options")
    include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
    include_usage = include_usage and not knobs["no_usage"]

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        extra = {"usage": None} if include_usage else {}
        return sse({**base, "object": "chat.completion.chunk", "choices": [choice], **extra})

    async def events() -> AsyncGenerator[bytes, None]:
        yield chunk({"role": "assistant", "content": ""}, None)
        for piece in pieces:
            await asyncio.sleep(knobs["delay"])
            yield chunk({"content": piece}, None)
        yield chunk({}, "stop")
        if include_usage:
            yield sse({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        yield sse(b"[DONE]")

    return EventStream(events(), request.app.state.stats, knobs["drop_after"])


def embed(text: str, dims: int = EMBEDDING_DIMS) -> list[float]:
    """Deterministic unit vector derived from a hash of the text."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [b / 127.5 - 1.0 for b in digest[:dims]]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


async def embeddings(request: Request) -> Response:
    try:
        body, knobs = await parse(request)
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
        return error_response(exc)
    await asyncio.sleep(knobs["delay"])
    data = []
    for index, text in enumerate(inputs):
        vector: list[float] | str = embed(text)
        if fmt == "base64":  # the openai SDK asks for base64 (little-endian float32) by default
            vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(len(t.split()) for t in inputs)
    reported = (
        {} if knobs["no_usage"] else {"usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    )
    return json_response(
        {"object": "list", "data": data, "model": body.get("model", ""), **reported}
    )


async def models(request: Request) -> Response:
    model = {"id": request.app.state.name, "object": "model", "created": 0, "owned_by": "demo"}
    return json_response({"object": "list", "data": [model]})


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def stats(request: Request) -> Response:
    return json_response(request.app.state.stats)


def create_upstream_app(name: str = "demo") -> Starlette:
    """Build the demo upstream; `name` is the model id listed by /v1/models."""

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
