"""What the forward stage needs from an HTTP client, and the failure kinds it understands.

The `/v1` hot path sends one POST and reads its answer chunk by chunk; it does not need a
client's request and response objects, only this much. Two implementations:
`gateway.forward.wire_aiohttp` (aiohttp's session, the default) and
`gateway.forward.wire_httpx` (an httpx transport). Each maps its library's exceptions to
`WireError` with one of the kinds below, so the failover rules and reason codes in
`gateway.forward.upstream` and the stream relay in `gateway.forward.relay` are written
once, whichever library carries the bytes.
"""

from __future__ import annotations

from typing import Literal, Protocol

# connect: no connection was made, so nothing reached the model (safe to send again).
# pool: the gateway's own pool had no free connection in time (not the target's fault).
# timeout: the upstream did not answer, or stopped sending, within the read timeout.
# transport: anything else on the connection (reset, closed early, bad HTTP).
Kind = Literal["connect", "pool", "timeout", "transport"]


class WireError(Exception):
    """The exchange failed; `kind` says how, the library's exception is the cause."""

    def __init__(self, kind: Kind, cause: BaseException) -> None:
        super().__init__(kind)
        self.kind = kind
        self.cause_name = type(cause).__name__  # for logs and health reasons: no message


class Answer(Protocol):
    """An answer whose status and headers are in; its body not yet read."""

    status: int

    def header(self, name: str) -> str | None:
        """The value of the (lower-case) header `name`, or None."""
        ...

    async def read(self) -> bytes:
        """The next chunk of the body as it arrives (decoded), b"" at its end.

        Raises `WireError` ("timeout" or "transport") if the body breaks off."""
        ...

    async def aclose(self) -> None:
        """Release the connection: back to the pool if the body was read to its end,
        closed otherwise (the upstream then sees the caller go)."""
        ...


class Wire(Protocol):
    """Sends requests over one pooled set of connections; no redirect is ever followed."""

    async def send(self, url: str, content: bytes, headers: dict[str, str]) -> Answer:
        """POST `content`; return once the status line and headers are in.

        Raises `WireError` if no answer came."""
        ...

    async def aclose(self) -> None: ...
