"""The ASGI response that relays an `UpstreamStream` to the caller as SSE.

It watches for the caller disconnecting (cancelling the relay at once), turns a mid-stream
upstream failure into an SSE error event, always closes the upstream response, and then
reports how the stream ended (bytes, usage, whether the caller left, the error that ended
it) for the audit log.
"""

from __future__ import annotations

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.api.render import sse_error
from gateway.audit.event import Delivery
from gateway.audit.usage import audit_usage
from gateway.errors import GatewayError
from gateway.forward.relay import UpstreamStream
from gateway.pipeline.exchange import Report


class SseResponse(Response):
    def __init__(
        self, stream: UpstreamStream, headers: dict[str, str], *, report: Report | None = None
    ) -> None:
        self._stream = stream
        self._report = report
        self._sent = 0
        self._caller_left = False
        self._error: str | None = None  # the reason of an error event that ended the stream
        self.status_code = stream.status
        self.background = None
        self.init_headers({**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})
        self.raw_headers.append((b"content-type", b"text/event-stream; charset=utf-8"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:

                async def pump() -> None:
                    await self._pump(send)
                    tg.cancel_scope.cancel()

                async def watch() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    self._caller_left = True
                    tg.cancel_scope.cancel()

                tg.start_soon(pump)
                tg.start_soon(watch)
        finally:
            # Shielded: a cancelled request must still release the upstream connection.
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()
            if self._report is not None:
                # Usage as the stream's meter counted it when it closed (gateway/usage).
                usage = audit_usage(self._stream.usage)
                delivery = Delivery(
                    self.status_code, usage, self._sent, self._caller_left, self._error
                )
                self._report(delivery)

    async def _pump(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        try:
            async for chunk in self._stream.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                self._sent += len(chunk)
        except GatewayError as exc:
            self._error = exc.reason.value
            await send({"type": "http.response.body", "body": sse_error(exc), "more_body": True})
        except OSError:
            self._caller_left = True
            return  # the caller went away mid-send
        await send({"type": "http.response.body", "body": b"", "more_body": False})
