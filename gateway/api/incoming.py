"""What the API layer reads of a request's body: its chunks straight from ASGI `receive`.

A client that leaves before its body has arrived is `ClientGone` (audited as 499
`client_closed`), not Starlette's `ClientDisconnect` escaping as an unexpected failure
(a 500 and a stack trace in the log, found under load in CI). Reading `receive` directly
also spares the hot path `Request.stream()`'s bookkeeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.types import Receive

from gateway.forward.relay import ClientGone


async def body_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The body's non-empty chunks in order; raises ClientGone if the client left first."""
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
