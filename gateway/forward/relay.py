"""Relaying an upstream SSE body, and watching for the caller going away; framework-free.

A caller that disconnects must cancel the upstream call at once (a model generating for
nobody still costs GPU time), and the upstream response must always be closed so its
connection goes back to, or out of, the pool. `gateway.api.stream` drives an
`UpstreamStream` to the caller and closes it whatever happens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import httpx

from gateway.errors import UpstreamError
from gateway.forward.rename import SseRenamer
from gateway.reasons import Reason

log = logging.getLogger(__name__)
T = TypeVar("T")


class ClientGone(Exception):
    """The caller disconnected before the answer was ready."""


async def unless_disconnected(
    disconnected: Callable[[], Awaitable[None]], work: Callable[[], Awaitable[T]]
) -> T:
    """Run `work` in this task, cancelling it if the caller disconnects first.

    One watcher task rather than a task group: `work` keeps running in the request's own
    task, so its exceptions propagate unwrapped, and the per-request cost is one task.
    """
    task = asyncio.current_task()
    assert task is not None
    gone = asyncio.Event()

    async def watch() -> None:
        await disconnected()
        gone.set()
        task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await work()
    except asyncio.CancelledError:
        if not gone.is_set():
            raise  # cancelled from elsewhere (shutdown): not ours to swallow
        task.uncancel()
        raise ClientGone() from None
    finally:
        watcher.cancel()


class UpstreamStream:
    """An upstream SSE body, chunk by chunk (never buffered whole), model renamed.

    At most `limit` bytes are relayed; `on_end` runs once, when the stream is closed, with
    what went wrong (None, "stream_broken" or "too_large") so the forward stage can count
    it and release the target.
    """

    def __init__(
        self,
        upstream: httpx.Response,
        *,
        rename_to: str | None,
        limit: int | None = None,
        on_end: Callable[[str | None], None] | None = None,
    ) -> None:
        self._upstream = upstream
        self._renamer = SseRenamer(rename_to) if rename_to else None
        self._limit = limit
        self._on_end = on_end
        self._failure: str | None = None
        self.status = upstream.status_code
        self.completed = False  # True once the upstream ended the stream itself

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body; raises `UpstreamError` if the upstream breaks off or sends too much."""
        size = 0
        try:
            async for chunk in self._upstream.aiter_raw():
                size += len(chunk)
                if self._limit is not None and size > self._limit:
                    self._failure = "too_large"
                    log.warning("upstream stream exceeded %d bytes", self._limit)
                    raise UpstreamError(
                        Reason.UPSTREAM_TOO_LARGE, "The model server's answer is too large."
                    )
                out = self._renamer.feed(chunk) if self._renamer else chunk
                if out:
                    yield out
        except httpx.HTTPError as exc:
            self._failure = "stream_broken"
            log.warning("upstream stream broke: %s", type(exc).__name__)
            raise UpstreamError(
                Reason.UPSTREAM_ERROR, "The upstream stream ended abruptly."
            ) from exc
        if self._renamer and (rest := self._renamer.flush()):
            yield rest
        self.completed = True

    async def aclose(self) -> None:
        try:
            await self._upstream.aclose()
        finally:
            on_end, self._on_end = self._on_end, None  # once, however often it is closed
            if on_end is not None:
                on_end(self._failure)
