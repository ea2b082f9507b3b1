"""Usage for outcome events: from the upstream's usage object, or counted from a stream."""

from __future__ import annotations

from gateway.audit.event import Usage
from gateway.audit.usage import StreamUsage, parse_usage, usage_from_body


def test_usage_objects_of_each_api() -> None:
    chat = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    assert parse_usage(chat) == Usage(5, 7, 12)
    assert parse_usage({"input_tokens": 2, "output_tokens": 3}) == Usage(2, 3, 5)  # responses
    assert parse_usage({"prompt_tokens": 4, "total_tokens": 4}) == Usage(4, 0, 4)  # embeddings
    for bad in (None, [], {}, {"prompt_tokens": 1.5}, {"prompt_tokens": -1}, {"x": 1}):
        assert parse_usage(bad) is None
    assert parse_usage({"prompt_tokens": 2**60, "completion_tokens": 1}) == Usage(0, 1, 1)
    assert usage_from_body(b'{"usage": {"prompt_tokens": 1, "completion_tokens": 2}}') == Usage(
        1, 2, 3
    )
    assert usage_from_body(b'{"choices": []}') is None
    assert usage_from_body(b'not json, with "usage"') is None


def test_stream_usage_from_the_final_chunk_across_chunk_boundaries() -> None:
    body = (
        b'data: {"choices":[{"delta":{"content":"a"}}],"usage":null}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}'
        b"\n\ndata: [DONE]\n\n"
    )
    meter = StreamUsage()
    for i in range(0, len(body), 7):  # split anywhere, even inside a line
        meter.feed(body[i : i + 7])
    assert meter.result() == Usage(3, 1, 4)


def test_stream_usage_counted_when_the_upstream_sent_none() -> None:
    meter = StreamUsage()
    meter.feed(b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n')
    for word in (b"one", b"two", b"three"):
        meter.feed(b'data: {"choices":[{"delta":{"content":"' + word + b'"}}]}\n\n')
    meter.feed(b"data: [DONE]\n\n")
    assert meter.result() == Usage(0, 3, 3, source="counted")
    assert StreamUsage().result() is None
