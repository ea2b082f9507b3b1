"""Relaying upstream answers to the caller, and watching for the caller going away.

A caller that disconnects must cancel the upstream call at once (a model generating for
nobody still costs GPU time), and the upstream response must always be closed so its
connection goes back to, or out of, the pool. Starlette's StreamingResponse leaves both to
garbage collection in some paths, so this module owns them explicitly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import httpx
import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

log = logging.getLogger(__name__)
T = TypeVar("T")


class ClientGone(Exception):
    """The caller disconnected before the answer was ready."""


async def unless_disconnected(receive: Receive, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` in this task, cancelling it if the caller disconnects first.

    One watcher task rather than a task group: `work` keeps running in the request's own
    task, so its exceptions propagate unwrapped, and the per-request cost is one task.
    """
    task = asyncio.current_task()
    assert task is not None
    gone = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
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


def sse_error(message: str, code: str) -> bytes:
    body = {"error": {"message": message, "type": "api_error", "code": code}}
    return b"data: " + orjson.dumps(body) + b"\n\n"


class UpstreamStream(Response):
    """Passes an upstream SSE body through chunk by chunk; never buffers it whole."""

    def __init__(self, upstream: httpx.Response, headers: dict[str, str]) -> None:
        self._upstream = upstream
        self.status_code = upstream.status_code
        self.background = None
        self.init_headers({**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})
        self.raw_headers.append((b"content-type", b"text/event-stream; charset=utf-8"))
        self.completed = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:

                async def pump() -> None:
                    await self._pump(send)
                    tg.cancel_scope.cancel()

                async def watch() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(pump)
                tg.start_soon(watch)
        finally:
            # Shielded: a cancelled request must still release the upstream connection.
            with anyio.CancelScope(shield=True):
                await self._upstream.aclose()

    async def _pump(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        try:
            async for chunk in self._upstream.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError as exc:
            # Headers are out already; the only honest signal left is an error event.
            log.warning("upstream stream broke: %s", type(exc).__name__)
            await send(
                {
                    "type": "http.response.body",
                    "more_body": True,
                    "body": sse_error("The upstream stream ended abruptly.", "upstream_error"),
                }
            )
        except OSError:
            return  # the caller went away mid-send
        else:
            self.completed = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
