"""Benchmark: the cost of the transport guard (gateway/api/hardening.py) per request.

Drives a bare ASGI app with and without `Hardening` around it, in-process, for a GET and
for a POST with a small body, and prints the difference in microseconds per request.

    .venv/bin/python bench/hardening.py --requests 200000
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from gateway.api.hardening import Hardening

HEADERS = [
    (b"host", b"127.0.0.1:8080"),
    (b"authorization", b"Bearer " + b"x" * 600),
    (b"content-type", b"application/json"),
    (b"content-length", b"120"),
    (b"user-agent", b"OpenAI/Python 1.50"),
    (b"accept", b"application/json"),
]


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["method"] == "POST":
        await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"a", b"b")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def run(target: Any, method: str, n: int) -> float:
    body = {"type": "http.request", "body": b"x" * 120, "more_body": False}

    async def receive() -> Any:
        return body

    async def send(message: Any) -> None:
        pass

    started = time.perf_counter()
    for _ in range(n):
        scope = {
            "type": "http",
            "method": method,
            "path": "/v1/chat/completions",
            "headers": HEADERS,
        }
        await target(scope, receive, send)
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200_000)
    args = parser.parse_args()
    guarded = Hardening(
        app,
        max_body_bytes=1 << 20,
        max_headers=100,
        max_header_bytes=32768,
        body_timeout_s=30,
        hsts=True,
    )
    print("| request | bare µs | guarded µs | cost µs |")
    print("|---|---|---|---|")
    for method in ("GET", "POST"):
        bare = min(asyncio.run(run(app, method, args.requests)) for _ in range(3))
        hard = min(asyncio.run(run(guarded, method, args.requests)) for _ in range(3))
        print(f"| {method} | {bare:.2f} | {hard:.2f} | {hard - bare:.2f} |")


if __name__ == "__main__":
    main()
