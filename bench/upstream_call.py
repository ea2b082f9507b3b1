"""CPU per upstream call from the gateway's side: the gateway's own `Upstream.call` of two
source trees, alternating; or (`--raw`) the client layers alone.

    .venv/bin/python bench/upstream_call.py --before /tmp/tacgw-before [-n 2000] [--rounds 3]
    .venv/bin/python bench/upstream_call.py --raw       # httpx send / transport / aiohttp

Starts the demo upstream, then, one call at a time over one pooled connection:

- default: `gateway.forward.upstream.Upstream.call` as the `/v1` path makes it (a target
  chosen by the balancer, metrics, the caller's disconnect watched, the body renamed), a
  whole answer read and a 5-chunk stream relayed and closed, with
  `upstream.transport` = `--transport`. Each round runs a fresh process per tree
  (`PYTHONPATH=<tree>`; before, after, then after, before), so each tree's gateway code
  is what runs; the same venv serves both.
- `--raw`: the same small chat completion through httpx `AsyncClient.send`, the
  httpx-aiohttp transport called directly, and aiohttp alone (no gateway code).

CPU time of the calling process only (`time.process_time`), so the upstream's own work
is not counted; each line gives the 1-minute load average when the measure started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import orjson
from httpx_aiohttp import AiohttpTransport

HERE = Path(__file__).resolve().parents[1]
CHAT = {
    "model": "demo-general",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "Say hello in five words."}],
}
BODY = orjson.dumps(CHAT)
HEADERS = {
    "content-type": "application/json",
    "x-request-id": "bench",
    "accept": "application/json",
}
Way = tuple[str, Callable[[], Awaitable[None]]]


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


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


async def _measure(ways: list[Way], n: int) -> dict[str, dict[str, float]]:
    out = {}
    for name, call in ways:
        for _ in range(n // 10):
            await call()
        load = _load()
        t0 = time.process_time()
        for _ in range(n):
            await call()
        out[name] = {"us": (time.process_time() - t0) / n * 1e6, "load": load}
    return out


# -- the gateway's Upstream.call (runs in a child process, gateway from PYTHONPATH) ----


async def gateway_ways(base: str, n: int, transport: str) -> dict[str, dict[str, float]]:
    from gateway.forward import client as pools
    from gateway.forward.meters import Meters
    from gateway.forward.upstream import Upstream
    from gateway.metrics import Metrics
    from gateway.routing.balance import Balancer
    from gateway.routing.catalog import Route
    from gateway.routing.endpoints import ENDPOINTS
    from gateway.routing.health import Rules
    from gateway.routing.targets import Target
    from gateway.settings import UpstreamSettings

    settings = UpstreamSettings(transport=transport)  # type: ignore[arg-type]
    # Before this branch the pool was an httpx client (`make_client`); now `make_pool`.
    make = getattr(pools, "make_pool", None) or pools.make_client  # type: ignore[attr-defined]
    target = Target(
        model="general",
        name="demo",
        url=base,
        upstream_model="demo-general",
        weight=1,
        headers={"content-type": "application/json", "authorization": "Bearer bench"},
    )
    balancer = Balancer(Rules.from_settings(settings.health))
    balancer.sync([target])
    upstream = Upstream(
        make(settings),
        balancer=balancer,
        meters=Meters(Metrics()),
        retries=settings.retries_before_first_byte,
        max_response_bytes=settings.max_response_bytes,
    )
    route = Route(name="general", tier_floor="public", targets=(target,))
    endpoint = ENDPOINTS["chat.completions"]
    stream_body = {**CHAT, "stream": True, "demo": {"chunks": 5}}

    class Record:
        upstream_target: str | None = None
        upstream_tries: int | None = None

    async def never() -> None:
        await asyncio.Event().wait()

    async def whole() -> None:
        answer = await upstream.call(
            route=route, endpoint=endpoint, body=CHAT, stream=False, request_id="bench",
            disconnected=never, record=Record(),
        )  # fmt: skip
        assert isinstance(answer, bytes)

    async def streamed() -> None:
        answer = await upstream.call(
            route=route, endpoint=endpoint, body=stream_body, stream=True, request_id="bench",
            disconnected=never, record=Record(),
        )  # fmt: skip
        assert not isinstance(answer, bytes)
        try:
            async for _ in answer.chunks():
                pass
        finally:
            await answer.aclose()

    try:
        return await _measure(
            [("Upstream.call whole", whole), ("Upstream.call stream", streamed)], n
        )
    finally:
        await upstream.aclose()


# -- the client layers alone -------------------------------------------------------------


async def raw_ways(url: str, n: int) -> dict[str, dict[str, float]]:
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

    try:
        return await _measure(
            [
                ("httpx AsyncClient.send", via_client),
                ("transport directly", via_transport),
                ("aiohttp alone", via_aiohttp),
            ],
            n,
        )
    finally:
        await client.aclose()


def _child(tree: Path, base: str, a: argparse.Namespace) -> dict[str, dict[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, __file__, "--child", base, "-n", str(a.n), "--transport", a.transport]
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=900)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-n", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--before", type=Path, help="a source tree to alternate with this one")
    p.add_argument("--after", type=Path, default=HERE)
    p.add_argument("--transport", choices=["aiohttp", "httpx"], default="aiohttp")
    p.add_argument("--raw", action="store_true", help="the client layers alone, no gateway")
    p.add_argument("--child", help=argparse.SUPPRESS)  # base URL: measure and print JSON
    a = p.parse_args()
    if a.child:
        print(json.dumps(asyncio.run(gateway_ways(a.child, a.n, a.transport))))
        return
    port = _free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "gateway.demo.upstream", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    seen: dict[str, list[float]] = {}
    try:
        _wait(f"http://127.0.0.1:{port}/healthz", upstream)
        for rnd in range(a.rounds):
            if a.raw:
                runs = [("", asyncio.run(raw_ways(f"{base}/chat/completions", a.n)))]
            else:
                trees = [("before", a.before), ("after", a.after)] if a.before else [
                    ("this", a.after)
                ]  # fmt: skip
                if rnd % 2:
                    trees.reverse()
                runs = [(name, _child(tree, base, a)) for name, tree in trees]
            for tree_name, result in runs:
                for way, m in result.items():
                    label = f"{tree_name} {way}".strip()
                    seen.setdefault(label, []).append(m["us"])
                    print(
                        f"round {rnd + 1}  {label:32} {m['us']:7.1f} µs CPU/call  "
                        f"load {m['load']:.2f}",
                        flush=True,
                    )
        for label, values in seen.items():
            print(f"median {label:32} {statistics.median(values):7.1f} µs of {len(values)}")
    finally:
        upstream.terminate()
        upstream.wait(10)


if __name__ == "__main__":
    main()
