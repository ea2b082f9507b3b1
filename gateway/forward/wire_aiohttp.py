"""The upstream wire over aiohttp's own session: the default transport of the hot path.

One `aiohttp.ClientSession` per upstream pool, opened on first use (aiohttp needs the
running loop), with the settings the httpx client had: `pool_size` connections, httpx's
keep-alive expiry (5 s), connect and pool-wait bounded by `connect_timeout_s`, each read
by `read_timeout_s`, no total bound (a stream may last), no proxy from the environment,
httpx's trust store. The prober's httpx client shares this session (`share`), so probes
and requests use one pool as before.

Calling the session directly skips httpx's `Request`/`Response` and the httpx-aiohttp
adapter (~60-110 µs CPU per call, bench/upstream_call.py); the price is this module's own
mapping of aiohttp's exceptions to `WireError` kinds:

- `ClientConnectorError` (refused, DNS, TLS handshake) and `ConnectionTimeoutError`
  (connect or pool wait too slow): `connect`: no request went out;
- any other `TimeoutError` (`SocketTimeoutError`: no byte within `read_timeout_s`):
  `timeout`;
- any other `ClientError` (server disconnected, reset, payload cut short): `transport` —
  the request may have reached the model.
"""

from __future__ import annotations

import aiohttp
import httpx
from yarl import URL

from gateway.forward.wire import WireError

_KEEPALIVE_S = httpx.Limits().keepalive_expiry  # what the httpx-based client used


class AiohttpAnswer:
    __slots__ = ("_content", "_response", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._content = response.content
        self.status = response.status

    def header(self, name: str) -> str | None:
        return self._response.headers.get(name)

    async def read(self) -> bytes:
        try:
            return await self._content.readany()
        except TimeoutError as exc:
            raise WireError("timeout", exc) from exc
        except aiohttp.ClientError as exc:
            raise WireError("transport", exc) from exc

    async def aclose(self) -> None:
        if self._content.at_eof():
            self._response.release()  # the connection goes back to the pool
        else:
            # Left before its end (caller gone, too large, broken): the connection is
            # closed, so the upstream stops generating for nobody.
            self._response.close()


class AiohttpWire:
    def __init__(self, *, pool_size: int, connect_timeout_s: float, read_timeout_s: float) -> None:
        self._pool_size = pool_size
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout_s,  # waiting for a pool slot and connecting
            sock_connect=connect_timeout_s,
            sock_read=read_timeout_s,
        )
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}

    def share(self) -> aiohttp.ClientSession:
        """The session (opened if needed): for httpx-aiohttp's transport under the prober."""
        return self._session or self._open()

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._pool_size,
            keepalive_timeout=_KEEPALIVE_S,
            ssl=httpx.create_ssl_context(trust_env=False),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            # An HTTP(S)_PROXY in the environment must not reroute model traffic.
            trust_env=False,
            # One session serves every caller: a cookie one caller's answer set must not be
            # sent with the next caller's request. No jar also means no cookie filtering
            # per request and no parsing of Set-Cookie per answer.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self._session

    async def send(self, url: str, content: bytes, headers: dict[str, str]) -> AiohttpAnswer:
        session = self._session or self._open()
        target = self._urls.get(url)
        if target is None:
            target = self._urls[url] = URL(url)
        try:
            # allow_redirects off: a redirect could carry the request and its credential
            # elsewhere (the forward stage turns a 3xx into 502 upstream_redirect).
            response = await session.post(
                target, data=content, headers=headers, allow_redirects=False
            )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise WireError("connect", exc) from exc
        except TimeoutError as exc:
            raise WireError("timeout", exc) from exc
        except aiohttp.ClientError as exc:
            raise WireError("transport", exc) from exc
        return AiohttpAnswer(response)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
