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
    """An upstream SSE body, chunk by chunk (never buffered whole), model renamed."""

    def __init__(self, upstream: httpx.Response, *, rename_to: str | None) -> None:
        self._upstream = upstream
        self._renamer = SseRenamer(rename_to) if rename_to else None
        self.status = upstream.status_code
        self.completed = False  # True once the upstream ended the stream itself

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body; raises `UpstreamError` if the upstream breaks off mid-stream."""
        try:
            async for chunk in self._upstream.aiter_raw():
                out = self._renamer.feed(chunk) if self._renamer else chunk
                if out:
                    yield out
        except httpx.HTTPError as exc:
            log.warning("upstream stream broke: %s", type(exc).__name__)
            raise UpstreamError(
                Reason.UPSTREAM_ERROR, "The upstream stream ended abruptly."
            ) from exc
        if self._renamer and (rest := self._renamer.flush()):
            yield rest
        self.completed = True

    async def aclose(self) -> None:
        await self._upstream.aclose()
