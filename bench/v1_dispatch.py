"""The API layer of a `/v1` call: CPU µs per request for everything between the server and
the pipeline (transport guard, dispatch, reading the headers and the body into a `Call`,
writing the answer), in process, without a server.

    .venv/bin/python bench/v1_dispatch.py [-n 20000] [--rounds 3]
    .venv/bin/python bench/v1_dispatch.py --before /tmp/tree-of-main   # alternate two trees

The app is the gateway's own (`create_app`, no lifespan: nothing is started), with the
pipeline's `handle` replaced by one that returns a fixed allowed answer, so that only the
API layer is timed. `--before DIR` runs the same measurement on the source tree DIR
(PYTHONPATH) and on this one, alternating, each round in a fresh process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]

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
    "headers": [
        (b"host", b"127.0.0.1:8080"),
        (b"user-agent", b"OpenAI/Python 2.8.1"),
        (b"accept", b"application/json"),
        (b"content-type", b"application/json"),
        (b"authorization", b"Bearer " + b"x" * 600),
        (b"content-length", b"64"),
    ],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8080),
}
BODY = b'{"model":"general","messages":[{"role":"user","content":"hi"}]}'.ljust(64)
ANSWER = b'{"id":"x","object":"chat.completion","choices":[]}'


def _app() -> Any:
    from gateway.api import v1
    from gateway.app import create_app
    from gateway.pipeline.exchange import Answered
    from gateway.settings import Settings

    async def handle(rt: Any, call: Any) -> Answered:
        async for _ in call.body:  # the pipeline reads the body
            pass
        return Answered(
            decision_id="0" * 32,
            allow=True,
            status=200,
            reasons=("allowed",),
            headers={"x-ratelimit-limit-requests": "1000", "x-ratelimit-remaining-requests": "9"},
            body=ANSWER,
            report=lambda delivery: None,  # the outcome leaf is queued after the answer
        )

    v1.handle = handle  # type: ignore[attr-defined]  # only the API layer is timed
    app = create_app(Settings(dev_mode=True, database_url="sqlite:///:memory:"))
    app.state.runtime = None
    return app


async def _per_request_us(app: Any, n: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    for _ in range(max(n // 10, 100)):
        await app(dict(SCOPE), receive, send)
    t0 = time.process_time()
    for _ in range(n):
        await app(dict(SCOPE), receive, send)
    return (time.process_time() - t0) / n * 1e6


def _one(n: int) -> float:
    return asyncio.run(_per_request_us(_app(), n))


def _in_tree(tree: Path, n: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "-n", str(n), "--rounds", "1", "--quiet"],
        env={**os.environ, "PYTHONPATH": str(tree)},
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return float(out.stdout.strip())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-n", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--before", type=Path, help="another source tree to alternate with")
    p.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.quiet:
        print(_one(a.n))
        return
    for r in range(a.rounds):
        load = Path("/proc/loadavg").read_text().split()[0]
        if a.before is None:
            print(f"round {r + 1}: {_one(a.n):6.1f} µs/req (load {load})")
            continue
        order = [("before", a.before), ("after", HERE)]
        if r % 2:
            order.reverse()
        got = {name: _in_tree(tree, a.n) for name, tree in order}
        print(
            f"round {r + 1}: before {got['before']:6.1f}  after {got['after']:6.1f} µs/req"
            f"  (load {load})"
        )


if __name__ == "__main__":
    main()
