"""The upstream wire over an httpx transport (setting `upstream.transport = "httpx"`).

httpx's own transport (httpcore), called directly with an `httpx.Request`: no client
layers (redirects are not followed below the client). httpx's exceptions map to
`WireError` kinds: `ConnectError`/`ConnectTimeout` → connect, `PoolTimeout` → pool,
other timeouts → timeout, any other `HTTPError` → transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from gateway.forward.wire import WireError


def _mapped(exc: httpx.HTTPError) -> WireError:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return WireError("connect", exc)
    if isinstance(exc, httpx.PoolTimeout):
        return WireError("pool", exc)
    if isinstance(exc, httpx.TimeoutException):
        return WireError("timeout", exc)
    return WireError("transport", exc)


class HttpxAnswer:
    """An `httpx.Response` opened as a stream (its body not read yet)."""

    __slots__ = ("_chunks", "_response", "status")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self._chunks: AsyncIterator[bytes] = response.aiter_bytes()

    def header(self, name: str) -> str | None:
        return self._response.headers.get(name)

    async def read(self) -> bytes:
        try:
            return await anext(self._chunks)
        except StopAsyncIteration:
            return b""
        except httpx.HTTPError as exc:
            raise _mapped(exc) from exc

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxWire:
    def __init__(self, transport: httpx.AsyncBaseTransport, timeout: httpx.Timeout) -> None:
        self._transport = transport
        # Set per request: the transport reads its timeouts from the request's extensions.
        self._extensions = {"timeout": timeout.as_dict()}
        self._urls: dict[str, httpx.URL] = {}

    async def send(self, url: str, content: bytes, headers: dict[str, str]) -> HttpxAnswer:
        target = self._urls.get(url)
        if target is None:
            target = self._urls[url] = httpx.URL(url)
        request = httpx.Request(
            "POST", target, content=content, headers=headers, extensions=self._extensions
        )
        try:
            response = await self._transport.handle_async_request(request)
        except httpx.HTTPError as exc:
            raise _mapped(exc) from exc
        return HttpxAnswer(response)

    async def aclose(self) -> None:
        await self._transport.aclose()
