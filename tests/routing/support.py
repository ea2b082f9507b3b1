"""Upstream servers a routing test can start, kill and restart on the same port, and
small model servers that misbehave on purpose (always 5xx, slow, redirecting)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from gateway.admin import targets
from gateway.demo.upstream import create_upstream_app
from tests.support.gateway import RunningGateway
from tests.support.uvicorn_server import serve

MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


class Upstreams:
    """Named upstream servers on loopback; their apps (and counters) outlive a kill."""

    def __init__(self) -> None:
        self.apps: dict[str, Starlette] = {}
        self.ports: dict[str, int] = {}
        self._running: dict[str, contextlib.ExitStack] = {}

    def start(self, name: str, app: Starlette | None = None) -> str:
        """Serve `app` (default: a demo upstream) as `name`; its base URL with /v1."""
        app = self.apps.setdefault(name, app or create_upstream_app(name))
        stack = contextlib.ExitStack()
        base = stack.enter_context(serve(app, self.ports.get(name)))
        self.ports[name] = int(base.rsplit(":", 1)[1])
        self._running[name] = stack
        return f"{base}/v1"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}/v1"

    def kill(self, name: str) -> None:
        """Stop the server (in-flight requests finish; new connections are refused)."""
        self._running.pop(name).close()

    def restart(self, name: str) -> str:
        return self.start(name)

    def stats(self, name: str) -> dict[str, Any]:
        return dict(self.apps[name].state.stats)

    def requests(self, name: str) -> int:
        return int(self.apps[name].state.stats["requests"])

    def close(self) -> None:
        for stack in self._running.values():
            stack.close()
        self._running.clear()


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    servers = Upstreams()
    try:
        yield servers
    finally:
        servers.close()


def set_targets(gw: RunningGateway, model: str, *specs: dict[str, Any]) -> None:
    """Replace `model`'s targets with `specs` (keyword arguments of `add_target`)."""

    async def go(engine: Any) -> None:
        for old in await targets.list_targets(engine, model=model):
            await targets.remove_target(engine, model=model, name=old.name)
        for spec in specs:
            await targets.add_target(engine, model=model, **spec)

    gw.run(go)


def _counting(app: Starlette) -> Starlette:
    app.state.stats = {"requests": 0, "last_headers": {}}
    return app


def _count(request: Request) -> None:
    stats = request.app.state.stats
    stats["requests"] += 1
    stats["last_headers"] = dict(request.headers)


def status_app(status: int) -> Starlette:
    """A model server that answers every request with `status` (and /models with 200)."""

    async def answer(request: Request) -> Response:
        _count(request)
        body = {"error": {"message": f"always {status}", "type": "server_error", "code": None}}
        return JSONResponse(body, status_code=status)

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": []})

    return _counting(
        Starlette(
            routes=[
                Route("/v1/models", models, methods=["GET"]),
                Route("/v1/{rest:path}", answer, methods=["POST"]),
            ]
        )
    )


def slow_app(delay_s: float) -> Starlette:
    """A model server that sends nothing for `delay_s`, then a 200."""

    async def answer(request: Request) -> Response:
        _count(request)
        await asyncio.sleep(delay_s)
        return JSONResponse({"late": True})

    return _counting(Starlette(routes=[Route("/v1/{rest:path}", answer, methods=["POST"])]))


def redirect_app(location: str, status: int = 307) -> Starlette:
    """A model server that redirects every request to `location` + the same path."""

    async def answer(request: Request) -> Response:
        _count(request)
        return RedirectResponse(location + request.url.path.removeprefix("/v1"), status)

    return _counting(Starlette(routes=[Route("/v1/{rest:path}", answer, methods=["POST", "GET"])]))


def metric(gw: RunningGateway, name: str, **labels: str) -> float | None:
    """The value of the sample `name{labels}` on the gateway's /metrics, or None."""
    text = httpx.get(f"{gw.base_url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Poll `condition` until it holds; fail after `timeout_s` (a bound, not a measurement)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


class HangUp:
    """A model server that reads each request whole, then closes the connection without
    a byte of answer (a crash between receiving a request and answering it)."""

    def __init__(self) -> None:
        self.requests = 0
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def _handler(self) -> type[socketserver.StreamRequestHandler]:
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                length = 0
                while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                if line == b"":
                    return  # the gateway closed an idle pooled connection
                self.rfile.read(length)
                outer.requests += 1
                self.connection.shutdown(socket.SHUT_RDWR)

        return Handler

    def __enter__(self) -> HangUp:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
