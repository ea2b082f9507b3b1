"""Hypothesis against the SSE relay (gateway/forward): whatever bytes the upstream sends,
cut wherever the network cuts them, the caller gets whole, well-formed events and then
either the normal end or one clean `upstream_malformed` error; never another exception,
never a partial event, and never a different answer because of where the cuts fell."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import httpx
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import UpstreamError
from gateway.forward.events import first_malformed
from gateway.forward.relay import UpstreamStream
from gateway.forward.wire_httpx import HttpxAnswer
from gateway.reasons import Reason

FUZZ = settings(max_examples=300, deadline=None)


class Chunks(httpx.AsyncByteStream):
    """An upstream body arriving in the given pieces (httpx's own stream interface)."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece


def cut(data: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({p % (len(data) + 1) for p in points})
    bounds = [0, *marks, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def relay(pieces: list[bytes], rename_to: str | None) -> tuple[list[bytes], Reason | None]:
    """What the caller receives: the relayed chunks, and the error that ended them."""
    upstream = httpx.Response(200, stream=Chunks(pieces))
    stream = UpstreamStream(HttpxAnswer(upstream), rename_to=rename_to)
    out: list[bytes] = []

    async def run() -> Reason | None:
        try:
            async for chunk in stream.chunks():
                out.append(chunk)
        except UpstreamError as exc:
            return exc.reason
        finally:
            await stream.aclose()
        return None

    return out, asyncio.run(run())


def is_whole_events(chunk: bytes) -> bool:
    return chunk.endswith((b"\n\n", b"\r\n\r\n"))


json_objects = st.dictionaries(
    st.sampled_from(["id", "model", "object", "choices", "x"]),
    st.text(max_size=12) | st.integers(-5, 5) | st.lists(st.text(max_size=4), max_size=2),
    max_size=4,
)
event = st.one_of(
    json_objects.map(lambda d: b"data: " + orjson.dumps(d) + b"\n\n"),
    json_objects.map(lambda d: b"data:" + orjson.dumps(d) + b"\r\n\r\n"),
    st.just(b": keep-alive\n\n"),
    json_objects.map(lambda d: b"event: error\ndata: " + orjson.dumps(d) + b"\n\n"),
)
well_formed = st.lists(event, max_size=6).map(lambda es: b"".join([*es, b"data: [DONE]\n\n"]))
cuts = st.lists(st.integers(min_value=0, max_value=10_000), max_size=8)


@FUZZ
@given(body=well_formed, points=cuts, rename=st.none() | st.just("general"))
def test_well_formed_streams_pass_whole_whatever_the_cuts(
    body: bytes, points: list[int], rename: str | None
) -> None:
    out, error = relay(cut(body, points), rename)
    assert error is None
    assert all(is_whole_events(chunk) for chunk in out)
    if rename is None:
        assert b"".join(out) == body  # byte for byte
    else:
        assert b"".join(out).count(b"\n\n") == body.count(b"\n\n")
    assert b"".join(out).endswith(b"data: [DONE]\n\n")


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=200),
        st.tuples(well_formed, st.binary(max_size=40), well_formed).map(b"".join),
    ),
    points=cuts,
    rename=st.none() | st.just("general"),
)
def test_any_bytes_end_in_events_or_one_clean_error(
    body: bytes, points: list[int], rename: str | None
) -> None:
    out, error = relay(cut(body, points), rename)
    assert error in (None, Reason.UPSTREAM_MALFORMED)
    relayed = b"".join(out)
    assert first_malformed(relayed) is None  # nothing malformed ever reaches the caller
    # Where the network cut the body changes nothing: the same events, the same end.
    assert (relayed, error) == (b"".join(relay([body], rename)[0]), relay([body], rename)[1])
