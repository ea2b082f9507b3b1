"""Usage read from upstream answers: whole bodies of every endpoint, SSE streams event by
event (with the usage event the gateway asked for dropped), and the offline estimate."""

from __future__ import annotations

import orjson
import pytest

from gateway.forward.events import SseEvents
from gateway.usage.figures import Usage, usage_in_body
from gateway.usage.meter import UsageMeter
from gateway.usage.tokenizer import Tokenizer

CHAT = {
    "id": "c1",
    "object": "chat.completion",
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": '"usage": {}'}}],
    "usage": {
        "prompt_tokens": 12,
        "completion_tokens": 30,
        "total_tokens": 42,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 4},
    },
}
RESPONSES = {
    "object": "response",
    "status": "completed",
    "output": [{"type": "message", "content": [{"type": "output_text", "text": "hi"}]}],
    "usage": {
        "input_tokens": 7,
        "output_tokens": 3,
        "total_tokens": 10,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    },
}
EMBEDDINGS = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.5] * 1536}],
    "usage": {"prompt_tokens": 5, "total_tokens": 5},
}


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (CHAT, Usage(12, 30, 42)),
        (RESPONSES, Usage(7, 3, 10)),
        (EMBEDDINGS, Usage(5, 0, 5)),
        ({**CHAT, "usage": None}, None),
        ({"choices": []}, None),
    ],
    ids=["chat", "responses", "embeddings", "usage-null", "no-usage"],
)
def test_usage_in_whole_bodies(doc: dict[str, object], expected: Usage | None) -> None:
    """Both shapes of usage are read, nested `*_details` included; absent usage is None."""
    assert usage_in_body(orjson.dumps(doc)) == expected
    # Spaced JSON, as some servers write it.
    assert usage_in_body(orjson.dumps(doc, option=orjson.OPT_INDENT_2)) == expected


def test_usage_not_at_the_end_is_still_found() -> None:
    """A server that puts `usage` first (or a malformed tail) falls back to a full parse."""
    body = b'{"usage": {"prompt_tokens": 2, "completion_tokens": 1}, "choices": []}'
    assert usage_in_body(body) == Usage(2, 1, 3)
    assert usage_in_body(b"not json") is None


def sse(*docs: object) -> bytes:
    return b"".join(
        b"data: " + (d if isinstance(d, bytes) else orjson.dumps(d)) + b"\n\n" for d in docs
    )


CHUNK = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "a"}}]}
USAGE_CHUNK = {
    "object": "chat.completion.chunk",
    "choices": [],
    "usage": {"prompt_tokens": 4, "completion_tokens": 9, "total_tokens": 13},
}


def relay(
    meter: UsageMeter, stream: bytes, *, rename_to: str | None = None, size: int = 7
) -> bytes:
    """Feed `stream` through SseEvents in `size`-byte pieces, as the network might split it."""
    events = SseEvents(rename_to=rename_to, meter=meter)
    out = b"".join(events.feed(stream[i : i + size]) for i in range(0, len(stream), size))
    return out + events.flush()


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer()


@pytest.mark.parametrize("rename_to", [None, "catalog-name"])
async def test_stream_usage_event_dropped_when_the_gateway_asked(
    tokenizer: Tokenizer, rename_to: str | None
) -> None:
    """The caller did not ask for usage: its event is read, then dropped; the rest passes."""
    meter = UsageMeter(request={}, tokenizer=tokenizer, drop_usage_event=True)
    stream = sse(CHUNK, CHUNK, USAGE_CHUNK, b"[DONE]")
    out = relay(meter, stream, rename_to=rename_to)
    expected = sse(CHUNK, CHUNK, b"[DONE]")
    if rename_to is None:
        assert out == expected
    else:
        assert out.count(b'"model":"catalog-name"') == 0  # chunks without a model stay so
        assert [orjson.loads(line[6:]) for line in out.split(b"\n\n")[:2]] == [CHUNK, CHUNK]
    assert b'"usage"' not in out
    assert await meter.result() == Usage(4, 9, 13)


async def test_stream_usage_event_kept_when_the_caller_asked(tokenizer: Tokenizer) -> None:
    """The caller asked for usage itself: the event reaches it unchanged."""
    meter = UsageMeter(request={}, tokenizer=tokenizer, drop_usage_event=False)
    stream = sse(CHUNK, USAGE_CHUNK, b"[DONE]")
    assert relay(meter, stream) == stream
    assert await meter.result() == Usage(4, 9, 13)


async def test_responses_stream_usage_is_read_and_kept(tokenizer: Tokenizer) -> None:
    """The Responses API reports usage in `response.completed`; that event carries the whole
    response, so it is never dropped."""
    meter = UsageMeter(request={}, tokenizer=tokenizer, drop_usage_event=True)
    done = {"type": "response.completed", "response": RESPONSES}
    stream = b"event: response.completed\n" + sse(done)
    assert relay(meter, stream, size=5) == stream
    assert await meter.result() == Usage(7, 3, 10)


async def test_no_usage_is_estimated_with_the_bundled_tokenizer(tokenizer: Tokenizer) -> None:
    """An upstream that reports nothing: prompt and streamed output are counted offline
    (o200k_base), and the figure says it is an estimate."""
    request = {"messages": [{"role": "user", "content": "Hello there, how are you today?"}]}
    meter = UsageMeter(request=request, tokenizer=tokenizer, drop_usage_event=True)
    pieces = ["The quick", " brown fox", " jumps over the lazy dog."]
    chunks = [
        {"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces
    ]
    relay(meter, sse(*chunks, b"[DONE]"))
    usage = await meter.result()
    prompt = tokenizer.count_sync("Hello there, how are you today?")
    completion = tokenizer.count_sync("".join(pieces))
    assert usage == Usage(prompt, completion, prompt + completion, estimated=True)
    assert completion == 10  # o200k_base: "The quick brown fox jumps over the lazy dog."


async def test_whole_body_without_usage_is_estimated(tokenizer: Tokenizer) -> None:
    """A non-streamed answer without usage: its output text is counted, marked estimated."""
    meter = UsageMeter(request={"prompt": "Say hi"}, tokenizer=tokenizer)
    body = orjson.dumps({"choices": [{"index": 0, "text": "hi there"}]})
    usage = await meter.of_body(body)
    assert usage.estimated
    assert (usage.prompt, usage.completion) == (
        tokenizer.count_sync("Say hi"),
        tokenizer.count_sync("hi there"),
    )
