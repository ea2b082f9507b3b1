"""Relaying an upstream SSE body, and watching for the caller going away; framework-free.

A caller that disconnects must cancel the upstream call at once (a model generating for
nobody still costs GPU time), and the upstream response must always be closed so its
connection goes back to, or out of, the pool. `gateway.api.stream` drives an
`UpstreamStream` to the caller and closes it whatever happens; closing is also when the
response has ended, so that is when its usage is known and the `on_end` callbacks run
(debiting token limits, recording usage).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from gateway.errors import UpstreamError
from gateway.forward.events import MalformedStream, SseEvents
from gateway.forward.wire import Answer, WireError
from gateway.reasons import Reason
from gateway.usage.figures import Usage
from gateway.usage.meter import UsageMeter

log = logging.getLogger(__name__)
T = TypeVar("T")
OnEnd = Callable[[Usage | None], Awaitable[None]]


class ClientGone(Exception):
    """The caller disconnected before the answer was ready."""


# Only a call still running after this long gets a watcher task: most answers come
# sooner, and a task per request (its `receive` future, its cancellation) cost ~10 µs of
# CPU each (bench/disconnect_watch.py). A caller who leaves is noticed at most this late.
WATCH_AFTER_S = 0.05


async def unless_disconnected(
    disconnected: Callable[[], Awaitable[None]], work: Callable[[], Awaitable[T]]
) -> T:
    """Run `work` in this task, cancelling it if the caller disconnects first.

    One watcher task rather than a task group: `work` keeps running in the request's own
    task, so its exceptions propagate unwrapped; and the watcher starts only once `work`
    has run `WATCH_AFTER_S`, so a quick call costs a timer, not a task.
    """
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    gone = False
    watcher: asyncio.Task[None] | None = None

    async def watch() -> None:
        nonlocal gone
        await disconnected()
        gone = True
        task.cancel()

    def start() -> None:
        nonlocal watcher
        watcher = loop.create_task(watch())

    timer = loop.call_later(WATCH_AFTER_S, start)
    try:
        return await work()
    except asyncio.CancelledError:
        if not gone:
            raise  # cancelled from elsewhere (shutdown): not ours to swallow
        task.uncancel()
        raise ClientGone() from None
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()


class UpstreamStream:
    """An upstream SSE body, chunk by chunk (never buffered whole), model renamed, metered.

    It reads the `Answer` of the pool's wire (`gateway.forward.wire`) as chunks arrive;
    closing it closes the upstream connection unless the body was read to its end.

    At most `limit` bytes are relayed. When the stream is closed (ended, failed or left),
    `on_release(failure)` runs first, with what went wrong (None, "stream_broken",
    "stream_malformed" or "too_large"), so the forward stage can count it and release the
    target; then the `on_end(usage)` callbacks (debiting token limits, recording usage).
    """

    def __init__(
        self,
        upstream: Answer,
        *,
        rename_to: str | None,
        meter: UsageMeter | None = None,
        limit: int | None = None,
        on_release: Callable[[str | None], None] | None = None,
    ) -> None:
        self._upstream = upstream
        self._events = SseEvents(rename_to=rename_to, meter=meter)
        self._meter = meter
        self._limit = limit
        self._on_release = on_release
        self._failure: str | None = None
        self.status = upstream.status
        self.completed = False  # True once the upstream ended the stream itself
        self.usage: Usage | None = None  # known once closed (if metered)
        self._on_end: list[OnEnd] = []
        self._ended = False

    def on_end(self, callback: OnEnd) -> None:
        """Run `callback(usage)` once, when the stream is closed (ended, failed or left)."""
        self._on_end.append(callback)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body; raises `UpstreamError` if the upstream breaks off or sends too much."""
        events = self._events
        size = 0
        try:
            read = self._upstream.read
            while chunk := await read():
                size += len(chunk)
                if self._limit is not None and size > self._limit:
                    self._failure = "too_large"
                    log.warning("upstream stream exceeded %d bytes", self._limit)
                    raise UpstreamError(
                        Reason.UPSTREAM_TOO_LARGE, "The model server's answer is too large."
                    )
                out = events.feed(chunk)
                if out:
                    yield out
            if rest := events.flush():
                yield rest
        except MalformedStream as exc:
            self._failure = "stream_malformed"
            log.warning("upstream stream malformed: %s", exc)
            if exc.relayed:  # the whole events that came before the bad one
                yield exc.relayed
            raise UpstreamError(
                Reason.UPSTREAM_MALFORMED, "The upstream sent a malformed event stream."
            ) from exc
        except WireError as exc:
            self._failure = "stream_broken"
            log.warning("upstream stream broke: %s (%s)", exc.kind, exc.cause_name)
            raise UpstreamError(
                Reason.UPSTREAM_ERROR, "The upstream stream ended abruptly."
            ) from exc
        self.completed = True

    async def aclose(self) -> None:
        """Release the upstream connection; the first call also ends the stream's accounting."""
        try:
            await self._upstream.aclose()
        finally:
            release, self._on_release = self._on_release, None  # once, however often closed
            if release is not None:
                release(self._failure)
        if self._ended:
            return
        self._ended = True
        if self._meter is not None:
            self.usage = await self._meter.result()
        for callback in self._on_end:
            try:
                await callback(self.usage)
            except Exception:
                # The caller has its answer; a failed debit must not turn into a failed close.
                log.exception("stream end callback failed")
