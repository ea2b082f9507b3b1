"""How the gateway is served in production, by the demo and by the benchmark alike."""

from __future__ import annotations

import uvicorn
from starlette.types import ASGIApp


def run_server(app: ASGIApp, *, host: str, port: int) -> None:
    # uvloop + httptools: the fastest pair uvicorn offers. No access log: every request is
    # already an audit row and a metric. Forwarded headers are not trusted by default.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        proxy_headers=False,
    )
