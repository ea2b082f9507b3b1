"""Real servers that hold domain proof, on loopback: a DNS server (dnslib) answering TXT
records from a dict, and a web server answering `/.well-known/tacgw-challenge` per Host.

Tests put records in (`dns.txt[name] = [value]`, `web.files[domain] = body`) and point
the gateway's verification settings at them.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from dnslib import QTYPE, RCODE, RR, TXT
from dnslib.server import DNSLogger, DNSServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.support.uvicorn_server import serve

__all__ = ["LoopbackDns", "LoopbackWeb", "loopback_dns", "loopback_web", "silent_udp_port"]


@dataclass
class LoopbackDns:
    """Authoritative for whatever names `txt` holds; NXDOMAIN for everything else."""

    port: int = 0
    txt: dict[str, list[str]] = field(default_factory=dict)
    questions: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        self.questions.append(name)
        values = self.txt.get(name)
        if values is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:
            for value in values:
                # A character-string holds 255 bytes at most: longer values go in pieces.
                pieces = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
                reply.add_answer(RR(name, QTYPE.TXT, rdata=TXT(pieces), ttl=60))
        return reply


@contextlib.contextmanager
def run_dns() -> Iterator[LoopbackDns]:
    zone = LoopbackDns()
    quiet = DNSLogger(log="-recv,-send,-request,-reply,-truncated,-error,-data", prefix=False)
    server = DNSServer(zone, port=0, address="127.0.0.1", logger=quiet)
    zone.port = server.server.server_address[1]
    server.start_thread()
    try:
        yield zone
    finally:
        server.stop()
        server.server.server_close()


@pytest.fixture
def loopback_dns() -> Iterator[LoopbackDns]:
    with run_dns() as zone:
        yield zone


@dataclass
class LoopbackWeb:
    base_url: str = ""
    files: dict[str, str] = field(default_factory=dict)  # Host → body of the well-known file
    status: int = 200


def _web_app(web: LoopbackWeb) -> Starlette:
    async def well_known(request: Request) -> Response:
        host = request.headers.get("host", "").split(":")[0].lower()
        body = web.files.get(host)
        if body is None:
            return PlainTextResponse("not found", status_code=404)
        return PlainTextResponse(body, status_code=web.status)

    return Starlette(routes=[Route("/.well-known/tacgw-challenge", well_known)])


@pytest.fixture
def loopback_web() -> Iterator[LoopbackWeb]:
    web = LoopbackWeb()
    with serve(_web_app(web)) as base:
        web.base_url = base
        yield web


@pytest.fixture
def silent_udp_port() -> Iterator[int]:
    """A bound UDP port that never answers: a resolver that is down."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()
