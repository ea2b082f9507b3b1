"""The demo server's legacy completions and Responses API, with the same knobs as chat."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.demo.common import (
    DemoError,
    EventStream,
    error_response,
    json_response,
    parse,
    reply_pieces,
    sse,
)


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_text_of(v.get("content", "")) if isinstance(v, dict) else str(v)
                        for v in value)  # fmt: skip
    return ""


async def _validated(request: Request, field: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    body, knobs = await parse(request)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise DemoError(400, "'model' is required and must be a string", "missing_model")
    if not isinstance(body.get(field), str | list) or not body.get(field):
        raise DemoError(400, f"'{field}' is required", f"missing_{field}")
    return body, knobs, model


async def completions(request: Request) -> Response:
    try:
        body, knobs, model = await _validated(request, "prompt")
    except DemoError as exc:
        return error_response(exc)
    pieces = reply_pieces(model, knobs, dict(request.headers), body)
    prompt = len(_text_of(body["prompt"]).split())
    completion = len("".join(pieces).split())
    usage = {"prompt_tokens": prompt, "completion_tokens": completion,
             "total_tokens": prompt + completion}  # fmt: skip
    base = {"id": f"cmpl-demo-{uuid.uuid4().hex[:24]}", "object": "text_completion",
            "created": int(time.time()), "model": model}  # fmt: skip

    def choice(text: str, finish: str | None) -> dict[str, Any]:
        return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}

    reported = {} if knobs["no_usage"] else {"usage": usage}
    if not body.get("stream"):
        await asyncio.sleep(knobs["delay"])
        return json_response({**base, "choices": [choice("".join(pieces), "stop")], **reported})

    async def events() -> AsyncGenerator[bytes, None]:
        for piece in pieces:
            await asyncio.sleep(knobs["delay"])
            yield sse({**base, "choices": [choice(piece, None)]})
        yield sse({**base, "choices": [choice("", "stop")], **reported})
        yield sse(b"[DONE]")

    return EventStream(events(), request.app.state.stats, knobs["drop_after"])


async def responses(request: Request) -> Response:
    try:
        body, knobs, model = await _validated(request, "input")
    except DemoError as exc:
        return error_response(exc)
    pieces = reply_pieces(model, knobs, dict(request.headers), body)
    text = "".join(pieces)
    rid, mid = f"resp_demo{uuid.uuid4().hex[:24]}", f"msg_demo{uuid.uuid4().hex[:24]}"
    inp, out = len(_text_of(body["input"]).split()), len(text.split())
    usage = {
        "input_tokens": inp,
        "output_tokens": out,
        "total_tokens": inp + out,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }

    def response(status: str, output_text: str | None) -> dict[str, Any]:
        output = []
        if output_text is not None:
            content = [{"type": "output_text", "text": output_text, "annotations": []}]
            output.append({"type": "message", "id": mid, "status": "completed",
                           "role": "assistant", "content": content})  # fmt: skip
        return {"id": rid, "object": "response", "created_at": int(time.time()),
                "status": status, "model": model, "output": output,
                "usage": usage if status == "completed" and not knobs["no_usage"]
                else None}  # fmt: skip

    if not body.get("stream"):
        await asyncio.sleep(knobs["delay"])
        return json_response(response("completed", text))

    async def events() -> AsyncGenerator[bytes, None]:
        seq = 0

        def event(kind: str, **fields: Any) -> bytes:
            nonlocal seq
            seq += 1
            payload = {"type": kind, "sequence_number": seq, **fields}
            return b"event: " + kind.encode() + b"\n" + sse(payload)

        yield event("response.created", response=response("in_progress", None))
        for piece in pieces:
            await asyncio.sleep(knobs["delay"])
            yield event("response.output_text.delta", item_id=mid, output_index=0,
                        content_index=0, delta=piece)  # fmt: skip
        yield event("response.completed", response=response("completed", text))

    return EventStream(events(), request.app.state.stats, knobs["drop_after"])
