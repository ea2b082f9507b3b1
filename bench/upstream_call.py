"""CPU per upstream call from the gateway's side: httpx `AsyncClient.send`, the client's
transport called directly (what `gateway.forward.upstream` does), and raw aiohttp.

    .venv/bin/python bench/upstream_call.py [-n 2000] [--rounds 3]

Starts the demo upstream, then sends the same small chat completion one at a time over
one pooled connection and reads the whole body, each way in turn; CPU time of this
process only (`time.process_time`), so the upstream's own work is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import orjson
from httpx_aiohttp import AiohttpTransport

BODY = orjson.dumps(
    {
        "model": "demo-general",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "Say hello in five words."}],
    }
)
HEADERS = {
    "content-type": "application/json",
    "x-request-id": "bench",
    "accept": "application/json",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("the demo upstream did not start")


async def run(url: str, n: int, rounds: int) -> None:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    transport = AiohttpTransport(limits=limits, trust_env=False)
    client = httpx.AsyncClient(transport=transport, trust_env=False)
    timeout = {"timeout": httpx.Timeout(5.0).as_dict()}
    target = httpx.URL(url)

    async def read(response: httpx.Response) -> None:
        async for _ in response.aiter_bytes():
            pass
        await response.aclose()

    async def via_client() -> None:
        request = httpx.Request("POST", target, content=BODY, headers=HEADERS, extensions=timeout)
        await read(await client.send(request, stream=True))

    async def via_transport() -> None:
        request = httpx.Request("POST", target, content=BODY, headers=HEADERS, extensions=timeout)
        await read(await transport.handle_async_request(request))

    await via_client()  # opens the aiohttp session
    session = transport.client
    assert isinstance(session, aiohttp.ClientSession)
    bounds = aiohttp.ClientTimeout(sock_connect=5, sock_read=5, connect=5)

    async def via_aiohttp() -> None:
        async with session.post(
            url, data=BODY, headers=HEADERS, allow_redirects=False, timeout=bounds
        ) as response:
            async for _ in response.content.iter_any():
                pass

    ways: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("httpx AsyncClient.send", via_client),
        ("transport directly", via_transport),
        ("aiohttp alone", via_aiohttp),
    ]
    try:
        for rnd in range(rounds):
            for name, call in ways:
                for _ in range(n // 10):
                    await call()
                t0 = time.process_time()
                for _ in range(n):
                    await call()
                cpu_us = (time.process_time() - t0) / n * 1e6
                print(f"round {rnd + 1}  {name:24} {cpu_us:7.1f} µs CPU/call")
    finally:
        await client.aclose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-n", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    port = _free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "gateway.demo.upstream", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(f"http://127.0.0.1:{port}/healthz", upstream)
        asyncio.run(run(f"http://127.0.0.1:{port}/v1/chat/completions", a.n, a.rounds))
    finally:
        upstream.terminate()
        upstream.wait(10)


if __name__ == "__main__":
    main()
