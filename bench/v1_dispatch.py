"""The ASGI layers in front of a `/v1` route: FastAPI's full stack vs `GatewayApp`'s direct
dispatch, CPU µs per request, in process (no server, no pipeline).

    .venv/bin/python bench/v1_dispatch.py [-n 20000] [--rounds 3]

Both apps carry the same routes as the gateway (the `/v1` routes first, then the
admin, OAuth, audit ... routers); each `/v1` route is replaced by a handler that answers
a fixed body at once, so what is timed is only what stands between the server and the
route: middleware, route matching, `Request`/`Response`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api import admin, audit, health, orgs, usage, v1
from gateway.app import GatewayApp


async def _answer(request: Request) -> Response:
    return Response(b'{"ok":true}', 200, media_type="application/json")


def _app(cls: type[FastAPI]) -> FastAPI:
    routes = [Route(r.path, _answer, methods=["POST"]) for r in v1.routes if isinstance(r, Route)]
    app = cls(v1_routes=routes) if cls is GatewayApp else cls()
    app.router.routes.extend(routes)
    for router in (health.router, orgs.router, admin.router, usage.router, audit.router):
        app.include_router(router)
    return app


SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/v1/chat/completions",
    "raw_path": b"/v1/chat/completions",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8080),
}


async def _per_request_us(app: FastAPI, n: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    for _ in range(n // 10):
        await app(dict(SCOPE), receive, send)
    t0 = time.process_time()
    for _ in range(n):
        await app(dict(SCOPE), receive, send)
    return (time.process_time() - t0) / n * 1e6


async def main(n: int, rounds: int) -> None:
    plain, direct = _app(FastAPI), _app(GatewayApp)
    for r in range(rounds):
        full = await _per_request_us(plain, n)
        fast = await _per_request_us(direct, n)
        print(
            f"round {r + 1}: FastAPI stack {full:6.1f} µs/req   GatewayApp /v1 dispatch "
            f"{fast:6.1f} µs/req   saved {full - fast:5.1f}"
        )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-n", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    asyncio.run(main(a.n, a.rounds))
