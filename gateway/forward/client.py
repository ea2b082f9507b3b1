"""The one upstream connection pool: a `Wire` for model calls, an httpx client for the rest.

`upstream.transport` chooses what carries the bytes. `aiohttp` (the default): model calls
go straight to an aiohttp session (`gateway.forward.wire_aiohttp`), and the httpx client
the prober uses runs over that same session through httpx-aiohttp's transport. `httpx`:
both go through httpx's own transport. Measured with bench/run.py at 16 concurrent
requests, the whole gateway cost 0.92 ms CPU per request over aiohttp (then through
httpx-aiohttp) and 2.15 ms over httpx's own transport; bench/upstream_call.py measures
the call itself each way.
"""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport

from gateway.forward.wire import Wire
from gateway.forward.wire_aiohttp import AiohttpWire
from gateway.forward.wire_httpx import HttpxWire
from gateway.settings import UpstreamSettings


class UpstreamPool:
    """`wire` for the `/v1` hot path, `client` (httpx's API) for probes; one pool."""

    def __init__(self, *, wire: Wire, client: httpx.AsyncClient) -> None:
        self.wire = wire
        self.client = client

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.wire.aclose()


def make_pool(settings: UpstreamSettings) -> UpstreamPool:
    timeout = httpx.Timeout(
        connect=settings.connect_timeout_s,
        read=settings.read_timeout_s,
        write=settings.connect_timeout_s,
        pool=settings.connect_timeout_s,
    )
    limits = httpx.Limits(
        max_connections=settings.pool_size, max_keepalive_connections=settings.pool_size
    )
    wire: Wire
    transport: httpx.AsyncBaseTransport
    if settings.transport == "aiohttp":
        aio = AiohttpWire(
            pool_size=settings.pool_size,
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
        )
        # The session is opened on first use by either side (aiohttp needs a running loop).
        transport = AiohttpTransport(client=aio.share, trust_env=False)
        wire = aio
    else:
        transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
        wire = HttpxWire(transport, timeout)
    # follow_redirects off (httpx's default, made explicit; the aiohttp transport also passes
    # allow_redirects=False): a redirect could send a request and its credential elsewhere.
    client = httpx.AsyncClient(
        transport=transport, timeout=timeout, trust_env=False, follow_redirects=False
    )
    return UpstreamPool(wire=wire, client=client)
