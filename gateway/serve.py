"""How the gateway is served in production, by the demo and by the benchmark alike."""

from __future__ import annotations

from typing import Any

import uvicorn
from starlette.types import ASGIApp

# uvloop + httptools: the fastest pair uvicorn offers. No access log: every request is
# already an audit row and a metric. Forwarded headers are not trusted by default.
_OPTIONS: dict[str, Any] = {
    "log_level": "warning",
    "access_log": False,
    "loop": "uvloop",
    "http": "httptools",
    "proxy_headers": False,
}


def run_server(app: ASGIApp, *, host: str, port: int) -> None:
    uvicorn.run(app, host=host, port=port, **_OPTIONS)


def run_workers(*, host: str, port: int, workers: int) -> None:
    """`workers` processes on one socket, each building its app from the environment
    (`TACGW_*` and `TACGW_CONFIG_FILE`): uvicorn's supervisor spawns them and restarts
    one that dies. Each has its own event loop, pools and caches; limits and the audit
    log are shared through the database and the limits storage."""
    uvicorn.run(
        "gateway.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **_OPTIONS,
    )
